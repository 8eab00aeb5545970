/**
 * PortMapper against behavioural fake gateways (test/helpers/fake-gateway.ts)
 * on loopback: discovery when the gateway speaks only one protocol, the
 * preference PCP > NAT-PMP > UPnP and the test knob that forces one,
 * renewal at half the lifetime, re-creation after a gateway restart (epoch
 * back, UPnP entry gone), delete on stop, the remembered port and PCP nonce,
 * a gateway change, and hostile gateways (garbage, truncated, wrong nonce,
 * private address, wrong port, spoofed source, off-gateway LOCATION, entity
 * bomb) that must never yield a mapping. Timers run on a fake clock; only
 * the loopback exchanges take real (short) time.
 */
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeClock } from '../../src/dataplane/clock.js';
import { PortMapper, type PortmapNet } from '../../src/nat/portmap/mapper.js';
import type { GatewayInfo } from '../../src/nat/portmap/gateway.js';
import type { PortmapProtocol } from '../../src/nat/portmap/driver.js';
import { FakeGateway, type FakeGatewayOptions, type FakeMisbehaviour, type FakeProtocol } from '../helpers/fake-gateway.js';

const PORT = 41641;
const PUBLIC = '11.1.0.2';

/** setTimeout on the fake clock: fires only when the test says so. */
class FakeScheduler {
  readonly clock = new FakeClock(0);
  private q: Array<{ at: number; fn: () => void }> = [];
  schedule = (fn: () => void, ms: number): (() => void) => {
    const item = { at: this.clock.now() + ms, fn };
    this.q.push(item);
    return () => {
      this.q = this.q.filter((x) => x !== item);
    };
  };
  /** Advance the clock to the next timer and run it. */
  fireNext(): number {
    this.q.sort((a, b) => a.at - b.at);
    const next = this.q.shift();
    assert.ok(next, 'a timer is armed');
    if (next.at > this.clock.now()) this.clock.advance(next.at - this.clock.now());
    next.fn();
    return next.at;
  }
  advance(ms: number): void {
    this.clock.advance(ms);
  }
  get nextAt(): number {
    return Math.min(...this.q.map((x) => x.at));
  }
}

async function closedUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const p = s.address().port;
  s.close();
  return p;
}

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Rig {
  gw: FakeGateway;
  mapper: PortMapper;
  sched: FakeScheduler;
  changes: number;
  env: GatewayInfo | null;
  log: string[];
}

async function rig(protocols: FakeProtocol[], o: {
  only?: PortmapProtocol; misbehave?: FakeMisbehaviour[]; memoryFile?: string; lifetimeSec?: number; sched?: FakeScheduler; gwOpts?: Partial<FakeGatewayOptions>;
} = {}): Promise<Rig> {
  const sched = o.sched ?? new FakeScheduler();
  const gw = await FakeGateway.start({
    bind: '127.0.0.1', protocols, externalIp: PUBLIC, udpPort: 0, ssdpPort: 0, misbehave: o.misbehave ?? [], spoofFrom: '127.0.0.2',
    now: () => sched.clock.now(), ...o.gwOpts,
  });
  cleanups.push(() => gw.close());
  const r: Rig = { gw, sched, changes: 0, env: { gateway: '127.0.0.1', iface: 'lo', local: '127.0.0.1' }, log: [], mapper: null as unknown as PortMapper };
  const net: Partial<PortmapNet> = {
    gatewayInfo: () => Promise.resolve(r.env),
    gatewayPort: gw.udpPort || await closedUdpPort(),
    ssdpPort: gw.ssdpPort || await closedUdpPort(),
    ssdpGroup: null,
    timing: { timeoutMs: 300, retransmitMs: 50 },
  };
  r.mapper = new PortMapper({
    internalPort: PORT, lifetimeSec: o.lifetimeSec ?? 10, pollMs: 2000, only: o.only ?? null, memoryFile: o.memoryFile ?? null,
    log: (_l, m) => r.log.push(m), clock: sched.clock, schedule: sched.schedule, net,
  });
  r.mapper.onChange = () => r.changes++;
  cleanups.push(() => r.mapper.stop({ deleteMapping: false }));
  r.mapper.start();
  await r.mapper.settled();
  return r;
}

/** Fire timers until `cond` holds (at most `n` of them). */
async function fireUntil(r: Rig, cond: () => boolean, n = 10): Promise<void> {
  for (let i = 0; i < n && !cond(); i++) {
    r.sched.fireNext();
    await r.mapper.settled();
  }
  assert.ok(cond(), 'condition reached');
}

for (const p of ['pcp', 'natpmp', 'upnp'] as const) {
  test(`a gateway that speaks only ${p}: found, reported, and maps the data port`, async () => {
    const r = await rig([p]);
    const st = r.mapper.status();
    assert.deepEqual({ upnp: st.upnp, natpmp: st.natpmp, pcp: st.pcp }, { upnp: p === 'upnp', natpmp: p === 'natpmp', pcp: p === 'pcp' });
    assert.equal(st.protocol, p);
    assert.equal(r.mapper.mappedEndpoint(), `${PUBLIC}:${PORT}`);
    assert.deepEqual(r.mapper.report(), { upnp: p === 'upnp', natpmp: p === 'natpmp', pcp: p === 'pcp', mapped: `${PUBLIC}:${PORT}` });
    const m = r.gw.mappings();
    assert.equal(m.length, 1);
    assert.deepEqual({ ip: m[0]!.internalIp, port: m[0]!.internalPort, ext: m[0]!.externalPort, life: m[0]!.lifetime }, { ip: '127.0.0.1', port: PORT, ext: PORT, life: 10 });
    assert.equal(r.changes, 1);
    assert.equal(st.lifetimeSec, 10);
    assert.equal(st.renewInMs, 5000);
  });
}

test('all three: PCP is preferred; the test knob forces another; all are still reported', async () => {
  const a = await rig(['pcp', 'natpmp', 'upnp']);
  assert.equal(a.mapper.status().protocol, 'pcp');
  assert.equal(a.gw.mappings()[0]!.protocol, 'pcp');
  for (const only of ['natpmp', 'upnp'] as const) {
    const b = await rig(['pcp', 'natpmp', 'upnp'], { only });
    const st = b.mapper.status();
    assert.equal(st.protocol, only);
    assert.deepEqual([st.upnp, st.natpmp, st.pcp], [true, true, true]);
  }
  const c = await rig(['natpmp'], { only: 'pcp' });
  assert.equal(c.mapper.mappedEndpoint(), null);
  assert.match(c.mapper.status().lastError ?? '', /does not speak PCP/);
});

for (const p of ['pcp', 'natpmp', 'upnp'] as const) {
  test(`${p}: renewed at half the lifetime, before it runs out`, async () => {
    const r = await rig([p]);
    const renewedAt: number[] = [];
    while (r.sched.clock.now() < 32_000) {
      const before = r.mapper.status().counters['renewed']!;
      const at = r.sched.fireNext();
      await r.mapper.settled();
      const m = r.gw.mappings()[0];
      assert.ok(m, `still mapped at ${at} ms (the gateway expires it after 10 s without renewal)`);
      if (r.mapper.status().counters['renewed']! > before) {
        renewedAt.push(at);
        assert.equal(m.expiresAt, at + 10_000, 'the gateway extended it from the renewal');
      }
    }
    assert.deepEqual(renewedAt, [5000, 10_000, 15_000, 20_000, 25_000, 30_000]);
    assert.equal(r.changes, 1, 'renewal does not change the endpoint');
  });

  test(`${p}: a restarted gateway (state gone, epoch from 0) gets the mapping re-created`, async () => {
    const r = await rig([p], { lifetimeSec: 600 });
    r.gw.restart();
    assert.equal(r.gw.mappings().length, 0);
    // The next poll (2 s) notices: epoch back (PCP/NAT-PMP) or entry gone (UPnP).
    await fireUntil(r, () => r.gw.mappings().length === 1, 3);
    assert.ok(r.sched.clock.now() <= 2000, 'within one poll');
    assert.equal(r.mapper.status().counters['lost'], 1);
    assert.equal(r.mapper.mappedEndpoint(), `${PUBLIC}:${PORT}`);
  });

  test(`${p}: stop deletes the mapping at the gateway`, async () => {
    const r = await rig([p]);
    assert.equal(r.gw.mappings().length, 1);
    await r.mapper.stop({ deleteMapping: true });
    assert.equal(r.gw.mappings().length, 0);
    assert.equal(r.mapper.mappedEndpoint(), null);
    assert.equal(r.changes, 2);
  });
}

test('upnp: a router that comes back on another HTTP port is found again and the mapping re-created', async () => {
  const r = await rig(['upnp'], { lifetimeSec: 600 });
  const oldHttp = r.gw.httpPort;
  r.gw.close();
  const gw2 = await FakeGateway.start({ bind: '127.0.0.1', protocols: ['upnp'], externalIp: PUBLIC, ssdpPort: r.gw.ssdpPort, now: () => r.sched.clock.now() });
  cleanups.push(() => gw2.close());
  assert.notEqual(gw2.httpPort, oldHttp);
  await fireUntil(r, () => gw2.mappings().length === 1, 3);
  assert.equal(r.mapper.mappedEndpoint(), `${PUBLIC}:${PORT}`);
  assert.ok((r.mapper.status().counters['upnp_rediscover'] ?? 0) >= 1);
});

for (const p of ['pcp', 'natpmp', 'upnp'] as const) {
  test(`${p}: the router's new public address is advertised (at the next poll, or renewal for PCP)`, async () => {
    const r = await rig([p]);
    r.gw.setExternalIp('11.9.0.9');
    await fireUntil(r, () => r.mapper.mappedEndpoint() === `11.9.0.9:${PORT}`, 3);
    assert.ok(r.sched.clock.now() <= (p === 'pcp' ? 5000 : 2000), `within ${r.sched.clock.now()} ms`);
    assert.equal(r.changes, 2);
  });
}

test('renewal failing: retried until the lifetime runs out, then dropped', async () => {
  const r = await rig(['natpmp']);
  r.gw.close();
  await fireUntil(r, () => r.mapper.mappedEndpoint() === null, 20);
  assert.ok(r.sched.clock.now() >= 10_000, 'kept until it expired');
  assert.ok(r.mapper.status().counters['renew_failed']! >= 2);
  assert.equal(r.changes, 2);
});

test('the granted port and the PCP nonce are remembered and asked for again', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'warren-pm-'));
  const memoryFile = join(dir, 'portmap.json');
  writeFileSync(memoryFile, JSON.stringify({ externalPort: 45000, pcpNonce: null }));
  const a = await rig(['pcp'], { memoryFile });
  assert.equal(a.mapper.mappedEndpoint(), `${PUBLIC}:45000`);
  const saved = JSON.parse(readFileSync(memoryFile, 'utf8')) as { externalPort: number; pcpNonce: string };
  assert.equal(saved.externalPort, 45000);
  assert.equal(saved.pcpNonce, a.gw.mappings()[0]!.nonce);
  // A restart (no delete: a crash): the new agent renews its own mapping with the same nonce.
  await a.mapper.stop({ deleteMapping: false });
  const sched = a.sched;
  const b = new PortMapper({
    internalPort: PORT, lifetimeSec: 10, pollMs: 2000, memoryFile, log: () => undefined, clock: sched.clock, schedule: sched.schedule,
    net: { gatewayInfo: () => Promise.resolve({ gateway: '127.0.0.1', iface: 'lo', local: '127.0.0.1' }), gatewayPort: a.gw.udpPort, ssdpGroup: null, ssdpPort: await closedUdpPort(), timing: { timeoutMs: 300, retransmitMs: 50 } },
  });
  cleanups.push(() => b.stop({ deleteMapping: false }));
  b.start();
  await b.settled();
  assert.equal(b.mappedEndpoint(), `${PUBLIC}:45000`);
  assert.equal(a.gw.mappings().length, 1);
  assert.equal(a.gw.mappings()[0]!.nonce, saved.pcpNonce);
});

test('a new gateway (or address): the old mapping is dropped and the new gateway probed', async () => {
  const r = await rig(['pcp']);
  const gw2 = await FakeGateway.start({ bind: '127.0.0.3', protocols: ['pcp'], externalIp: '11.2.0.2', udpPort: r.gw.udpPort, now: () => r.sched.clock.now() });
  cleanups.push(() => gw2.close());
  r.env = { gateway: '127.0.0.3', iface: 'lo', local: '127.0.0.1' };
  await fireUntil(r, () => r.mapper.mappedEndpoint() === `11.2.0.2:${PORT}`, 2);
  assert.equal(r.changes, 3, 'mapped, dropped, mapped again');
  assert.equal(r.mapper.status().gateway, '127.0.0.3');
  r.env = null;
  await fireUntil(r, () => r.mapper.mappedEndpoint() === null, 2);
  assert.equal(r.mapper.status().lastError, 'no default gateway');
});

const HOSTILE: Array<[FakeMisbehaviour, FakeProtocol[], string]> = [
  ['garbage', ['pcp', 'natpmp', 'upnp'], 'random bytes for every answer'],
  ['truncated', ['pcp', 'natpmp'], 'answers cut in half'],
  ['wrong-nonce', ['pcp'], 'a PCP answer with another nonce'],
  ['private-ip', ['pcp', 'natpmp', 'upnp'], 'a private "public" address'],
  ['wrong-port', ['pcp', 'natpmp'], 'a mapping for another internal port'],
  ['spoof', ['pcp', 'natpmp', 'upnp'], 'answers from another address'],
  ['foreign-location', ['upnp'], 'SSDP pointing off the gateway'],
  ['bad-xml', ['upnp'], 'an entity-bomb description'],
];

for (const [bad, protocols, what] of HOSTILE) {
  test(`hostile gateway (${what}): no mapping, no candidate, no crash`, async () => {
    const r = await rig(protocols, { misbehave: [bad] });
    await fireUntil(r, () => true, 1);
    const st = r.mapper.status();
    assert.equal(r.mapper.mappedEndpoint(), null);
    assert.equal(r.changes, 0, 'never announced a candidate');
    const drops = Object.entries(st.counters).filter(([k, v]) => v > 0 && !['created', 'renewed'].includes(k));
    assert.ok(drops.length > 0 || st.lastError, `counted or explained: ${JSON.stringify(st)}`);
    if (bad === 'foreign-location') assert.equal(r.gw.requests.foreignHttp, 0, 'never fetched the foreign LOCATION');
    if (bad === 'spoof') assert.ok((st.counters['pcp_foreign'] ?? 0) > 0 && (st.counters['ssdp_foreign'] ?? 0) > 0, JSON.stringify(st.counters));
    if (bad === 'wrong-nonce') assert.ok((st.counters['pcp_nonce_mismatch'] ?? 0) > 0);
    if (bad === 'private-ip') assert.match(st.lastError ?? '', /not public/);
  });
}
