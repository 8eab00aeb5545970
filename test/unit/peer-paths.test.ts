/**
 * Path choice for one peer (src/nat/peer-paths.ts) on a fake clock: a small
 * simulated network answers each ping from the addresses it can reach after
 * that address's round trip, and the harness runs tick() exactly at
 * nextDeadline, as the node's loop does. Covers: relay first; first pong wins;
 * a clearly faster path wins later (with hysteresis); heartbeats only while
 * active; fallback at the trust timeout and return when pongs resume; idle =
 * silent; resuming never waits for a pong; peer-driven pings (call-me-maybe,
 * pings direct and via the relay) with the minimum gap; pongs that must be
 * ignored; the caps; and a random-event run checking the invariants.
 */
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { FakeClock } from '../../src/dataplane/clock.js';
import { PRODUCTION_PATH_TIMERS, TEST_PATH_TIMERS, type PathTimers } from '../../src/nat/path-timers.js';
import {
  MAX_LEARNED_CANDIDATES,
  MAX_NETMAP_CANDIDATES,
  MAX_OUTSTANDING_PINGS,
  PeerPaths,
  type DirectAddr,
  type Path,
  type RelayAddr,
} from '../../src/nat/peer-paths.js';
import { rng } from '../helpers/rng.js';

const T = PRODUCTION_PATH_TIMERS;

const fmt = (to: DirectAddr | RelayAddr): string => ('relay' in to ? `relay:${to.relay}` : to.ip.includes(':') ? `[${to.ip}]:${to.port}` : `${to.ip}:${to.port}`);
const addr = (s: string): DirectAddr => {
  const i = s.lastIndexOf(':');
  return { ip: s.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(s.slice(i + 1)) };
};
const describePath = (p: Path): string => (p.kind === 'direct' ? fmt(p.addr) : p.kind === 'relay' ? `relay:${p.region}` : 'none');

interface Sent {
  to: string;
  txid: Uint8Array;
  at: number;
}

/** One PeerPaths on a fake clock with a simulated network behind it. */
class Sim {
  readonly clock = new FakeClock();
  readonly pings: Sent[] = [];
  callMeMaybes: number[] = [];
  /** Addresses that answer, and their round trip (ms). */
  readonly rtt = new Map<string, number>();
  private inflight: Array<{ at: number; txid: Uint8Array; from: DirectAddr }> = [];
  private n = 0;
  readonly pp: PeerPaths;

  constructor(timers: PathTimers = T, region = 1) {
    this.pp = new PeerPaths({
      clock: this.clock,
      timers,
      io: {
        sendPing: (to, txid) => {
          this.pings.push({ to: fmt(to), txid, at: this.clock.now() });
          const r = this.rtt.get(fmt(to));
          if (r !== undefined && !('relay' in to)) this.inflight.push({ at: this.clock.now() + r, txid, from: { ...to } });
        },
        sendCallMeMaybe: () => this.callMeMaybes.push(this.clock.now()),
      },
      random: (len) => {
        const b = new Uint8Array(len);
        new DataView(b.buffer).setUint32(0, ++this.n);
        return b;
      },
    });
    this.pp.setPeerHomeRegion(region);
  }

  get now(): number {
    return this.clock.now();
  }

  path(): string {
    return describePath(this.pp.current());
  }

  /** Advance `ms`, delivering pongs and ticking at each deadline; noteTraffic every `trafficEvery` ms if given. */
  run(ms: number, trafficEvery = 0): void {
    const end = this.now + ms;
    let nextTraffic = trafficEvery ? this.now : Infinity;
    for (let guard = 0; ; guard++) {
      assert.ok(guard < 1_000_000, 'the simulation does not settle');
      const nextPong = Math.min(...this.inflight.map((p) => p.at), Infinity);
      const t = Math.min(end, this.pp.nextDeadline, nextPong, nextTraffic);
      if (t > this.now) this.clock.advance(t - this.now);
      if (nextTraffic <= this.now) {
        this.pp.noteTraffic();
        nextTraffic = this.now + trafficEvery;
        if (nextTraffic >= end) nextTraffic = Infinity;
      }
      const due = this.inflight.filter((p) => p.at <= this.now);
      this.inflight = this.inflight.filter((p) => p.at > this.now);
      for (const p of due) this.pp.onPong(p.txid, p.from);
      if (this.pp.nextDeadline <= this.now) this.pp.tick();
      if (this.now >= end && t >= end) break;
    }
  }

  pingsTo(a: string, since = -Infinity): number {
    return this.pings.filter((p) => p.to === a && p.at >= since).length;
  }

  pingsSince(t: number): Sent[] {
    return this.pings.filter((p) => p.at >= t);
  }

  last(a: string): Sent {
    const s = this.pings.filter((p) => p.to === a).at(-1);
    assert.ok(s, `no ping to ${a}`);
    return s;
  }
}

const A = '198.51.100.1:41641';
const B = '203.0.113.7:41641';
const C = '[2001:db8::7]:41641';

describe('starting out', () => {
  it('starts on the peer\'s home relay; none without one', () => {
    const s = new Sim();
    assert.equal(s.path(), 'relay:1');
    const none = new Sim(T, 0);
    assert.equal(none.path(), 'none');
    none.pp.setPeerHomeRegion(3);
    assert.equal(none.path(), 'relay:3');
    assert.deepEqual(s.pp.status(), { path: { kind: 'relay', region: 1 }, latencyMs: null, candidates: [] });
  });

  it('nothing is sent and nothing is due before traffic, even with candidates', () => {
    const s = new Sim();
    s.pp.setCandidates([A, B].map(addr));
    assert.equal(s.pp.nextDeadline, Infinity);
    s.run(300_000);
    assert.equal(s.pings.length, 0);
    assert.equal(s.callMeMaybes.length, 0);
  });

  it('traffic pings every candidate at once and sends one call-me-maybe; traffic stays on the relay meanwhile', () => {
    const s = new Sim();
    s.pp.setCandidates([A, B, C].map(addr));
    s.pp.noteTraffic();
    assert.deepEqual(s.pings.map((p) => p.to), [A, B, C]);
    assert.deepEqual(s.callMeMaybes, [s.now]);
    assert.equal(s.path(), 'relay:1');
    assert.equal(s.pp.outstandingPings, 3);
    s.pp.noteTraffic(); // already active: nothing more
    assert.equal(s.pings.length, 3);
  });

  it('candidates arriving during traffic are pinged at once (only the new ones)', () => {
    const s = new Sim();
    s.pp.setCandidates([addr(A)]);
    s.pp.noteTraffic();
    s.run(1000, 100);
    s.pp.setCandidates([A, B].map(addr));
    assert.equal(s.last(B).at, s.now);
    assert.equal(s.pingsTo(A), 1);
  });

  it('with no candidates, a call-me-maybe still goes out (the peer may reach us), no more than every repingMs', () => {
    const s = new Sim();
    s.run(20_000, 500);
    assert.ok(s.callMeMaybes.length >= 3 && s.callMeMaybes.length <= 5, `${s.callMeMaybes.length}`);
    for (let i = 1; i < s.callMeMaybes.length; i++) assert.ok(s.callMeMaybes[i]! - s.callMeMaybes[i - 1]! >= T.repingMs);
    const noRelay = new Sim(T, 0);
    noRelay.run(20_000, 500);
    assert.equal(noRelay.callMeMaybes.length, 0);
  });
});

describe('choosing', () => {
  it('the first pong wins; a slower one later does not replace it', () => {
    const s = new Sim();
    s.rtt.set(A, 40).set(B, 20);
    s.pp.setCandidates([A, B].map(addr));
    s.pp.noteTraffic();
    s.run(19);
    assert.equal(s.path(), 'relay:1');
    s.run(1);
    assert.equal(s.path(), B);
    s.run(30);
    assert.equal(s.path(), B);
    const st = s.pp.status();
    assert.equal(st.latencyMs, 20);
    assert.deepEqual(st.candidates.map((c) => c.latencyMs), [40, 20]);
  });

  it('a clearly faster path replaces the working one later; a marginally faster one does not (hysteresis)', () => {
    const s = new Sim();
    s.rtt.set(A, 20).set(B, 19).set(C, 5);
    s.pp.setCandidates([addr(A)]);
    s.pp.noteTraffic();
    s.run(100, 100);
    assert.equal(s.path(), A);
    s.pp.setCandidates([A, B].map(addr));
    s.run(100, 100);
    assert.equal(s.path(), A, '19 ms is not 10% better than 20 ms');
    s.pp.setCandidates([A, B, C].map(addr));
    s.run(100, 100);
    assert.equal(s.path(), C);
    assert.equal(s.pp.status().latencyMs, 5);
  });

  it('an upgrade round every upgradeMs while the path is slower than good enough', () => {
    const s = new Sim();
    s.rtt.set(A, 30);
    s.pp.setCandidates([A, B].map(addr)); // B never answers
    s.run(200_000, 1000);
    assert.equal(s.path(), A);
    const toB = s.pings.filter((p) => p.to === B).map((p) => p.at - s.pings[0]!.at);
    assert.deepEqual(toB, [0, 60_000, 120_000, 180_000]);
  });

  it('a path that is good enough stops upgrade rounds: only heartbeats to it', () => {
    const s = new Sim();
    s.rtt.set(A, 2);
    s.pp.setCandidates([A, B].map(addr));
    s.run(200_000, 1000);
    assert.equal(s.path(), A);
    assert.equal(s.pingsTo(B), 1);
    assert.equal(s.callMeMaybes.length, 1);
  });

  it('a later faster pong is used even outside a round (call-me-maybe from the peer)', () => {
    const s = new Sim();
    s.rtt.set(A, 30).set(B, 3);
    s.pp.setCandidates([addr(A)]);
    s.run(5000, 1000);
    assert.equal(s.path(), A);
    s.pp.addCandidates([addr(B)], 'callmemaybe');
    s.run(10);
    assert.equal(s.path(), B);
  });
});

describe('heartbeats, trust and fallback', () => {
  it('heartbeats ping the chosen path every heartbeatMs while traffic flows', () => {
    const s = new Sim();
    s.rtt.set(A, 2);
    s.pp.setCandidates([addr(A)]);
    s.run(30_000, 500);
    const at = s.pings.filter((p) => p.to === A).map((p) => p.at - s.pings[0]!.at);
    assert.deepEqual(at, [0, 3000, 6000, 9000, 12000, 15000, 18000, 21000, 24000, 27000, 30000]);
    assert.equal(s.path(), A);
  });

  it('falls back to the relay exactly trustMs after the last pong, and keeps pinging', () => {
    const s = new Sim();
    s.rtt.set(A, 2);
    s.pp.setCandidates([A, B].map(addr));
    s.run(10_000, 200);
    assert.equal(s.path(), A);
    s.rtt.delete(A); // UDP dropped
    const lastPong = s.pp.status().candidates[0]!.lastPong!;
    const silentFrom = s.now;
    s.run(lastPong + T.trustMs - 1 - s.now, 200);
    assert.equal(s.path(), A);
    s.run(1, 200);
    assert.equal(s.path(), 'relay:1');
    assert.equal(s.pp.nextDeadline > s.now, true);
    s.run(30_000, 200);
    assert.equal(s.path(), 'relay:1');
    // Still pinged about every repingMs (rounds ride the heartbeat), B as well, and call-me-maybes keep going.
    const toA = s.pingsTo(A, silentFrom);
    assert.ok(toA >= 6 && toA <= 12, `${toA} pings to A`);
    assert.ok(s.pingsTo(B, silentFrom) >= 5);
    assert.ok(s.callMeMaybes.length >= 5);
  });

  it('while relayed, re-pings ride the heartbeat: packets themselves never trigger pings', () => {
    const s = new Sim();
    s.pp.setCandidates([A, B].map(addr)); // nobody answers
    s.run(60_000, 700);
    const t0 = s.pings[0]!.at;
    assert.ok(s.pings.length >= 20);
    for (const p of s.pings) assert.equal((p.at - t0) % T.heartbeatMs, 0, `ping at +${p.at - t0}`);
  });

  it('a round with nothing to ping sends no call-me-maybe', () => {
    const s = new Sim();
    s.rtt.set(A, 30); // slower than good enough: upgrade rounds, but A is just heartbeat-pinged each time
    s.pp.setCandidates([addr(A)]);
    s.run(200_000, 1000);
    assert.equal(s.path(), A);
    assert.deepEqual(s.callMeMaybes, [s.pings[0]!.at]);
  });

  it('returns to direct soon after pongs resume (within a re-ping and a heartbeat)', () => {
    const s = new Sim();
    s.rtt.set(A, 2);
    s.pp.setCandidates([addr(A)]);
    s.run(5000, 200);
    s.rtt.delete(A);
    s.run(20_000, 200);
    assert.equal(s.path(), 'relay:1');
    s.rtt.set(A, 2);
    const back = s.now;
    let t = 0;
    while (s.path() !== A && t < 20_000) {
      s.run(100, 200);
      t += 100;
    }
    assert.equal(s.path(), A);
    assert.ok(s.now - back <= T.repingMs + T.heartbeatMs + 2, `${s.now - back} ms`);
  });

  it('when the path stops, another candidate that answers takes over', () => {
    const s = new Sim();
    s.rtt.set(A, 10).set(B, 30);
    s.pp.setCandidates([A, B].map(addr));
    s.run(5000, 200);
    assert.equal(s.path(), A);
    s.rtt.delete(A);
    s.run(T.trustMs + 100, 200);
    assert.equal(s.path(), B);
  });

  it('falls to a candidate still trusted at the moment the path expires', () => {
    const s = new Sim();
    s.rtt.set(A, 10).set(B, 12);
    s.pp.setCandidates([A, B].map(addr));
    s.pp.noteTraffic();
    s.run(20);
    assert.equal(s.path(), A);
    s.rtt.delete(A);
    s.run(T.trustMs - 20 + 10); // A expired at 10 + trust; B (pong at 12) is trusted two more ms
    assert.equal(s.path(), B);
  });

  it('a test-profile session falls back within its 2.5 s trust', () => {
    const s = new Sim(TEST_PATH_TIMERS);
    s.rtt.set(A, 1);
    s.pp.setCandidates([addr(A)]);
    s.run(5000, 100);
    s.rtt.delete(A); // (a pong already in flight still arrives)
    const cut = s.now;
    for (let t = 0; t < 10_000 && s.path() === A; t++) s.run(1, 100);
    const lastPong = s.pp.status().candidates[0]!.lastPong!;
    assert.equal(s.now - lastPong, TEST_PATH_TIMERS.trustMs);
    assert.ok(s.now - cut <= TEST_PATH_TIMERS.trustMs + TEST_PATH_TIMERS.heartbeatMs, `${s.now - cut} ms after the cut`);
  });
});

describe('idle', () => {
  it('heartbeats stop sessionActiveMs after the last traffic; then nothing is sent and nothing is due', () => {
    const s = new Sim();
    s.rtt.set(A, 2);
    s.pp.setCandidates([addr(A)]);
    s.run(10_000, 500);
    const lastTraffic = s.now - 500;
    s.run(T.sessionActiveMs + T.heartbeatMs);
    const after = s.pingsSince(lastTraffic + T.sessionActiveMs);
    assert.deepEqual(after, []);
    assert.ok(s.pingsSince(lastTraffic).length > 0, 'heartbeats go on while the session counts as active');
    const before = s.pings.length;
    s.run(600_000);
    assert.equal(s.pings.length, before);
    assert.equal(s.pp.nextDeadline, Infinity);
    assert.equal(s.pp.status().candidates.length, 1, 'the path is remembered');
  });

  it('traffic after a long idle goes via the relay at once and re-pings; direct again after the pong', () => {
    const s = new Sim();
    s.rtt.set(A, 2);
    s.pp.setCandidates([A, B].map(addr));
    s.run(5000, 500);
    s.run(120_000);
    const cmm = s.callMeMaybes.length;
    s.pp.noteTraffic();
    assert.equal(s.path(), 'relay:1', 'never wait for a pong');
    assert.equal(s.pingsSince(s.now).length, 2);
    assert.equal(s.callMeMaybes.length, cmm + 1);
    s.run(2);
    assert.equal(s.path(), A);
  });

  it('a short pause within the session keeps the trusted path without a new round', () => {
    const s = new Sim();
    s.rtt.set(A, 2);
    s.pp.setCandidates([A, B].map(addr));
    s.run(5000, 500);
    const n = s.pingsTo(B);
    s.run(2000);
    s.pp.noteTraffic();
    assert.equal(s.path(), A);
    assert.equal(s.pingsTo(B), n);
  });

  it('without a relay the remembered path is still used after its trust runs out', () => {
    const s = new Sim(T, 0);
    assert.equal(s.path(), 'none');
    s.rtt.set(A, 2);
    s.pp.setCandidates([addr(A)]);
    s.run(3000, 500);
    assert.equal(s.path(), A);
    s.run(300_000);
    assert.equal(s.path(), A);
  });
});

describe('pongs that do not count', () => {
  function pinged(): Sim {
    const s = new Sim();
    s.pp.setCandidates([A, B].map(addr));
    s.pp.noteTraffic();
    return s;
  }

  it('an unknown txid', () => {
    const s = pinged();
    assert.equal(s.pp.onPong(new Uint8Array(12).fill(9), addr(A)), null);
    assert.equal(s.pp.onPong(new Uint8Array(5), addr(A)), null);
    assert.equal(s.path(), 'relay:1');
    assert.equal(s.pp.counters.pongsIgnored, 2);
  });

  it('from an address other than the one pinged, or via the relay', () => {
    const s = pinged();
    const tA = s.last(A).txid;
    assert.equal(s.pp.onPong(tA, addr(B)), null);
    assert.equal(s.pp.onPong(tA, addr('198.51.100.1:41642')), null);
    assert.equal(s.pp.onPong(tA, { relay: 1 }), null);
    assert.equal(s.path(), 'relay:1');
    // The right pong still counts afterwards, once.
    s.clock.advance(7);
    assert.deepEqual(s.pp.onPong(tA, addr(A)), { path: { kind: 'direct', addr: addr(A) }, latencyMs: 7 });
    assert.equal(s.path(), A);
    assert.equal(s.pp.onPong(tA, addr(A)), null, 'a replayed pong');
  });

  it('an IPv4-mapped source matches the IPv4 address pinged', () => {
    const s = pinged();
    assert.ok(s.pp.onPong(s.last(A).txid, { ip: '::ffff:198.51.100.1', port: 41641 }));
    assert.equal(s.path(), A);
  });

  it('after pingTimeoutMs', () => {
    const s = pinged();
    s.clock.advance(T.pingTimeoutMs);
    assert.equal(s.pp.onPong(s.last(A).txid, addr(A)), null);
    assert.equal(s.pp.outstandingPings, 0);
  });

  it('for a candidate the netmap has since removed', () => {
    const s = pinged();
    s.pp.setCandidates([addr(B)]);
    assert.equal(s.pp.onPong(s.last(A).txid, addr(A)), null);
    assert.equal(s.path(), 'relay:1');
  });

  it('a relay pong never moves a working direct path', () => {
    const s = new Sim();
    s.rtt.set(A, 2);
    s.pp.setCandidates([addr(A)]);
    s.run(1000, 100);
    s.pp.onPingReceived({ relay: 1 });
    s.pp.onPong(s.last(A).txid, { relay: 1 });
    assert.equal(s.path(), A);
  });
});

describe('the peer asking', () => {
  it('a ping via the relay while we have no direct path pings every candidate at once, even when idle', () => {
    const s = new Sim();
    s.pp.setCandidates([A, B].map(addr));
    s.pp.onPingReceived({ relay: 1 });
    assert.deepEqual(s.pingsSince(s.now).map((p) => p.to), [A, B]);
    assert.equal(s.callMeMaybes.length, 0);
  });

  it('a ping via the relay while a direct path is trusted changes nothing', () => {
    const s = new Sim();
    s.rtt.set(A, 2);
    s.pp.setCandidates([A, B].map(addr));
    s.run(1000, 100);
    const n = s.pings.length;
    s.pp.onPingReceived({ relay: 1 });
    assert.equal(s.pings.length, n);
  });

  it('a direct ping from a new address makes it a candidate and pings it back at once', () => {
    const s = new Sim();
    s.rtt.set(B, 3);
    s.pp.onPingReceived(addr(B));
    assert.equal(s.last(B).at, s.now);
    assert.equal(s.pp.status().candidates.length, 1);
    s.run(3);
    assert.equal(s.path(), B);
  });

  it('asked-for pings keep minPingGapMs per address: deferred, not dropped', () => {
    const s = new Sim();
    s.pp.setCandidates([addr(A)]);
    s.pp.noteTraffic(); // pings A at t0
    const t0 = s.now;
    s.clock.advance(50);
    s.pp.onPingReceived(addr(A)); // the peer's ping crossed ours (simultaneous open)
    assert.equal(s.pingsTo(A), 1);
    assert.equal(s.pp.nextDeadline, t0 + T.minPingGapMs);
    s.pp.addCandidates([addr(A)], 'callmemaybe'); // same due time, not a second ping
    s.clock.advance(T.minPingGapMs - 50);
    s.pp.tick();
    assert.equal(s.pingsTo(A), 2);
    assert.equal(s.last(A).at, t0 + T.minPingGapMs);
    for (let i = 0; i < 20; i++) {
      s.pp.addCandidates([addr(A)], 'callmemaybe');
      s.run(10);
    }
    assert.ok(s.pingsTo(A) <= 2 + Math.ceil(200 / T.minPingGapMs) + 1);
  });

  it('call-me-maybe pings its endpoints even when idle and recently pinged (but not the others)', () => {
    const s = new Sim();
    s.pp.setCandidates([A, B, C].map(addr));
    s.pp.noteTraffic();
    s.run(1000);
    s.pp.addCandidates([A, C].map(addr), 'callmemaybe');
    assert.deepEqual(s.pingsSince(s.now).map((p) => p.to), [A, C]);
  });

  it('a direct ping while a path is trusted only adds the candidate (pinged in the next round)', () => {
    const s = new Sim();
    s.rtt.set(A, 30);
    s.pp.setCandidates([addr(A)]);
    s.run(1000, 100);
    s.pp.onPingReceived(addr(B));
    assert.equal(s.pingsTo(B), 0);
    assert.equal(s.pp.status().candidates.length, 2);
    s.run(T.upgradeMs, 100);
    assert.equal(s.pingsTo(B), 1);
  });
});

describe('candidates and bounds', () => {
  it('refuses what cannot be pinged; canonical forms are one candidate', () => {
    const s = new Sim();
    s.pp.setCandidates([
      { ip: 'nope', port: 1 }, { ip: '192.0.2.1', port: 0 }, { ip: '192.0.2.1', port: 70000 }, { ip: '0.0.0.0', port: 1 },
      { ip: '::', port: 1 }, { ip: '224.0.0.1', port: 1 }, { ip: 'ff02::1', port: 1 }, { ip: '255.255.255.255', port: 1 },
      { ip: '192.0.2.1', port: 1.5 }, { ip: '192.0.2.1', port: 5 }, { ip: '::ffff:192.0.2.1', port: 5 },
      { ip: '2001:DB8:0::1', port: 5 }, { ip: '2001:db8::1', port: 5 },
    ]);
    assert.deepEqual(s.pp.status().candidates.map((c) => c.addr), [{ ip: '192.0.2.1', port: 5 }, { ip: '2001:db8::1', port: 5 }]);
  });

  it('the netmap set is replaced; a removed path falls back to the relay', () => {
    const s = new Sim();
    s.rtt.set(A, 2);
    s.pp.setCandidates([A, B].map(addr));
    s.run(1000, 100);
    assert.equal(s.path(), A);
    s.pp.setCandidates([addr(B)]);
    assert.equal(s.path(), 'relay:1');
    assert.deepEqual(s.pp.status().candidates.map((c) => fmt(c.addr)), [B]);
  });

  it('a learned candidate outlives its removal from the netmap, then expires after learnedTtlMs', () => {
    const s = new Sim();
    s.pp.setCandidates([A, B].map(addr));
    s.pp.addCandidates([addr(A)], 'callmemaybe');
    s.pp.setCandidates([addr(B)]);
    assert.equal(s.pp.status().candidates.length, 2);
    s.clock.advance(T.learnedTtlMs);
    assert.deepEqual(s.pp.status().candidates.map((c) => fmt(c.addr)), [B]);
  });

  it(`at most ${MAX_NETMAP_CANDIDATES} from the netmap and ${MAX_LEARNED_CANDIDATES} learned (the stalest evicted, never the path)`, () => {
    const s = new Sim();
    const many = (prefix: string, n: number): DirectAddr[] => Array.from({ length: n }, (_, i) => ({ ip: `${prefix}.${i >> 8}.${i & 255}`, port: 1000 }));
    s.pp.setCandidates(many('10.1', 200));
    assert.equal(s.pp.status().candidates.length, MAX_NETMAP_CANDIDATES);
    s.rtt.set('10.2.0.0:1000', 2);
    s.pp.addCandidates(many('10.2', 1), 'callmemaybe');
    s.run(5);
    assert.equal(s.path(), '10.2.0.0:1000');
    for (let i = 0; i < 10; i++) {
      s.pp.addCandidates(many(`10.${3 + i}`, 100), 'callmemaybe');
      s.clock.advance(1);
    }
    const st = s.pp.status();
    assert.equal(st.candidates.length, MAX_NETMAP_CANDIDATES + MAX_LEARNED_CANDIDATES);
    assert.ok(st.candidates.some((c) => c.addr.ip === '10.2.0.0'), 'the path stays');
    assert.ok(st.candidates.some((c) => c.addr.ip === '10.12.0.31'), 'the newest stay');
    assert.ok(!st.candidates.some((c) => c.addr.ip.startsWith('10.11.')), 'the older ones went');
  });

  it(`at most ${MAX_OUTSTANDING_PINGS} pings await pongs (the oldest forgotten first)`, () => {
    const s = new Sim();
    const many = Array.from({ length: 64 }, (_, i) => ({ ip: `10.9.0.${i}`, port: 1 }));
    s.pp.setCandidates(many);
    s.pp.onPingReceived({ relay: 1 });
    const first = s.pings[0]!;
    for (let i = 0; i < 4; i++) {
      s.clock.advance(T.minPingGapMs);
      s.pp.onPingReceived({ relay: 1 });
    }
    assert.equal(s.pings.length, 64 * 5);
    assert.equal(s.pp.outstandingPings, MAX_OUTSTANDING_PINGS);
    assert.equal(s.pp.onPong(first.txid, addr(first.to)), null);
    const latest = s.pings.at(-1)!;
    assert.ok(s.pp.onPong(latest.txid, addr(latest.to)));
  });

  it('relay-only: no pings, packets via the relay; off again starts a round', () => {
    const s = new Sim();
    s.rtt.set(A, 2);
    s.pp.setCandidates([addr(A)]);
    s.pp.setRelayOnly(true);
    s.run(30_000, 500);
    s.pp.onPingReceived({ relay: 1 });
    s.pp.addCandidates([addr(B)], 'callmemaybe');
    assert.equal(s.pings.length, 0);
    assert.equal(s.path(), 'relay:1');
    s.pp.setRelayOnly(false);
    assert.equal(s.pingsTo(A), 1);
    s.run(2, 500);
    assert.equal(s.path(), A);
    s.pp.setRelayOnly(true);
    assert.equal(s.path(), 'relay:1');
  });
});

describe('random events', () => {
  it('never throw; the bounds hold; a direct path is used only within trust of its pong (with a relay)', () => {
    const r = rng(7);
    const pool = Array.from({ length: 150 }, (_, i) => `10.${i % 3}.0.${i}:${1000 + (i % 5)}`);
    for (let run = 0; run < 20; run++) {
      const s = new Sim(run % 2 ? T : TEST_PATH_TIMERS);
      const timers = run % 2 ? T : TEST_PATH_TIMERS;
      for (let step = 0; step < 400; step++) {
        const x = r();
        const some = (n: number): DirectAddr[] => Array.from({ length: n }, () => addr(pool[Math.floor(r() * pool.length)]!));
        if (x < 0.1) s.pp.setCandidates(some(Math.floor(r() * 80)));
        else if (x < 0.2) s.pp.addCandidates(some(Math.floor(r() * 40)), r() < 0.5 ? 'ping' : 'callmemaybe');
        else if (x < 0.3) s.pp.onPingReceived(r() < 0.5 ? { relay: 1 } : some(1)[0]!);
        else if (x < 0.4) {
          const p = s.pings[Math.floor(r() * s.pings.length)];
          if (p) s.pp.onPong(p.txid, r() < 0.8 ? addr(p.to) : some(1)[0]!);
        } else if (x < 0.45) s.rtt.set(pool[Math.floor(r() * pool.length)]!, Math.floor(r() * 50));
        else if (x < 0.5) s.rtt.delete(pool[Math.floor(r() * pool.length)]!);
        else if (x < 0.52) s.pp.setRelayOnly(r() < 0.3);
        else s.run(Math.floor(r() * 3000), r() < 0.6 ? 200 : 0);
        const st = s.pp.status();
        assert.ok(st.candidates.length <= MAX_NETMAP_CANDIDATES + MAX_LEARNED_CANDIDATES);
        assert.ok(s.pp.outstandingPings <= MAX_OUTSTANDING_PINGS);
        if (st.path.kind === 'direct') {
          const c = st.candidates.find((k) => fmt(k.addr) === fmt((st.path as { addr: DirectAddr }).addr));
          assert.ok(c && c.lastPong !== null && s.now - c.lastPong < timers.trustMs);
        }
      }
    }
  });
});
