/**
 * JIT warm-up of the packet path. V8 runs new code in its interpreter and
 * compiles a function with TurboFan only after it has done a lot of work; a
 * lightly used tunnel (pings, SSH keystrokes) never gets there and pays for
 * the slow tiers on every packet. So the packet worker runs its real packet
 * path — its own DeviceIO, batch buffers, batch handlers and crypto backend
 * instance, the Device's batch entry points, allowed-IPs, replay window and
 * timers — over a few thousand synthetic packets between two throwaway
 * devices with random keys, in short steps while it has nothing else to do
 * (engine-worker.ts says when), and V8 optimizes that path early on.
 *
 * Safe: the throwaway devices are separate Device instances (their own
 * peers, index table, counters and drops); their datagrams are taken out of
 * the loop's send queue, and their one-at-a-time sends (handshake messages,
 * keepalives) diverted, before anything reaches a socket or the TUN; their
 * keys are zeroed, their indices freed, the batch slots they used zeroed and
 * the loop's queues emptied afterwards.
 *
 * Useful only if nothing real is new to the optimized code, because V8
 * compiles what it has seen and deoptimizes (back to the interpreter, where
 * the warm-up's work is lost) at the first thing it has not:
 *  - the call targets and object shapes are the real ones (the worker's io
 *    functions, its crypto object, the same classes);
 *  - what a real tunnel does now and then happens during the warm-up too,
 *    after V8 has started collecting feedback (it does from a function's 8th
 *    call, so what only happens first is not seen): a handshake through the
 *    batch path, keepalives sealed outside the batch buffers, the first
 *    packets of a new session, reordered and duplicate packets, packets with
 *    no route or for a peer without a session, activity reports, new timer
 *    deadlines;
 *  - a session's index is a random 32-bit number, often not a small integer:
 *    a keypair with large indices (and a zeroed one, whose counter is
 *    MAX_SAFE_INTEGER) is made first, so V8 lays out Keypair fields for that
 *    from the start instead of changing the layout (and deoptimizing) later.
 */
import { Device, type DeviceConfig, type DeviceIO } from './device.js';
import { Keypair } from './keypair.js';
import { PersistentTimestamps } from './timestamp-store.js';
import { encodeEndpoint, endpointEquals, ENDPOINT_LEN } from './endpoint.js';
import { TRANSPORT_HEADER_SIZE } from './constants.js';
import { generatePrivateKey, publicKeyOf } from '../crypto/x25519.js';
import type { Peer } from './peer.js';
import type { TransportCrypto } from './transport-crypto.js';
import type { Clock } from './clock.js';
import type { TimerProfile } from './constants.js';

/** The packet loop's pieces the warm-up drives: the worker's own, so V8 sees the real call targets. */
export interface WarmUpLoop {
  readonly io: DeviceIO;
  readonly crypto: TransportCrypto;
  readonly clock: Clock;
  readonly timers: TimerProfile;
  /** Bytes per slot in both batch buffers. */
  readonly slot: number;
  /** The TUN read batch: packet i at i*slot + 16, its length in tunLens[i]. */
  readonly tunIn: Uint8Array;
  readonly tunLens: Int32Array;
  /** The UDP receive batch: datagram i at i*slot, its length in udpLens[i], its 20-byte source in udpAddrs. */
  readonly udpIn: Uint8Array;
  readonly udpLens: Int32Array;
  readonly udpAddrs: Uint8Array;
  /** What io.sendUdp queued (to IPv4 endpoints) out of tunIn: n datagrams at offs[i], lens[i]. The warm-up empties it. */
  readonly sent: { n: number; readonly offs: Int32Array; readonly lens: Int32Array };
  /** How many packets io.writeTun queued out of udpIn. The warm-up empties it. */
  readonly delivered: { n: number };
  /** The real device's activity hook (null when it has none): the throwaway devices get the same. */
  readonly onActivity: Device['onActivity'];
  /** Handle TUN batch slots 0..n-1 on `dev` exactly as the poll loop does. */
  tunBatch(dev: Device, n: number): void;
  /** Handle UDP batch slots 0..n-1 on `dev` exactly as the poll loop does. */
  udpBatch(dev: Device, n: number): void;
  /** While set, what io.sendUdp would send one at a time (handshake messages, keepalives) goes to `sink` instead. */
  divert(sink: DeviceIO['sendUdp'] | null): void;
  /** Forget what the warm-up left in the loop's own queues (activity reports). */
  reset(): void;
}

export interface WarmUpOptions {
  /** Rounds of traffic (each a batch one way and one back). */
  rounds?: number;
  /** Stop after this much time in steps (ms, by cpuClock). */
  maxMs?: number;
  /** What maxMs and the report count (ms): the thread's CPU time where there is a way to read it; default the loop's clock. */
  cpuClock?: () => number;
}

export interface WarmUpReport {
  /** Synthetic packets that went through both devices. */
  packets: number;
  /** Time spent in steps, by cpuClock. */
  ms: number;
  /** false: the warm-up stopped early (the reason is in `note`). */
  complete: boolean;
  note: string;
}

/**
 * On the 2-core lab VM (Node 20) V8 had marked the whole batch path for
 * TurboFan by ~900 rounds; 1000 take 45-90 ms of CPU there. The cap bounds a
 * slower machine.
 */
export const WARM_UP_ROUNDS = 1000;
export const WARM_UP_MAX_MS = 150;

/** Batch sizes, in turn: mostly single packets (light traffic) with some small bursts. */
const BATCHES = [1, 1, 2, 1, 1, 4, 1, 1, 8, 1, 3, 1];
/** The round at which B starts a second handshake (well after feedback collection began). */
const REHANDSHAKE_ROUND = 48;
/** TEST-NET-1 (RFC 5737) endpoints: even a bug could not send anything anywhere. */
const EP = [encodeEndpoint('192.0.2.1', 1), encodeEndpoint('192.0.2.2', 2)] as const;
const V4 = [Uint8Array.of(10, 255, 0, 1), Uint8Array.of(10, 255, 0, 2)] as const;
const V6 = [
  Uint8Array.of(0xfd, 0x7a, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1),
  Uint8Array.of(0xfd, 0x7a, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2),
] as const;
const V6_TEXT = ['fd7a:ffff::1', 'fd7a:ffff::2'] as const;
/**
 * Destinations that go nowhere, from A: a peer with an endpoint but no
 * session (its packets wait for a handshake that never completes), a peer
 * without an endpoint (path choice has none yet), no peer at all.
 */
const NOWHERE = [Uint8Array.of(10, 252, 0, 9), Uint8Array.of(10, 250, 0, 9), Uint8Array.of(10, 251, 0, 9)] as const;

/**
 * A warm-up in steps, so the worker can run it in the gaps between real
 * packets: the first few make the throwaway devices and their first
 * handshake (a piece each), each later one runs rounds of traffic for about
 * the time given. Nothing is left diverted or queued in the loop between
 * steps. Never throws: a failure ends it (reported), and it cleans up after
 * itself once done or stopped.
 */
export class WarmUp {
  readonly devs: Device[] = [];
  readonly pending: Array<{ data: Uint8Array; dst: Uint8Array }> = [];
  /** Batch slots written so far (zeroed at the end). */
  slots = 1;
  private readonly keys = [generatePrivateKey(), generatePrivateKey()];
  private readonly rounds: number;
  private readonly maxMs: number;
  private readonly cpuClock: () => number;
  private round = -1;
  private packets = 0;
  private ms = 0;
  private note = '';
  private finished = false;
  private readonly sink: DeviceIO['sendUdp'] = (buf, off, len, dst, dstOff) => {
    this.pending.push({ data: buf.slice(off, off + len), dst: dst.slice(dstOff, dstOff + ENDPOINT_LEN) });
  };

  constructor(readonly loop: WarmUpLoop, opts: WarmUpOptions = {}) {
    this.rounds = opts.rounds ?? WARM_UP_ROUNDS;
    this.maxMs = opts.maxMs ?? WARM_UP_MAX_MS;
    this.cpuClock = opts.cpuClock ?? (() => loop.clock.now());
  }

  get done(): boolean {
    return this.finished;
  }

  get a(): Device {
    return this.devs[0]!;
  }

  get b(): Device {
    return this.devs[1]!;
  }

  /** `dev`'s peer for the other device. */
  other(dev: Device): Peer {
    return dev.peers.values().next().value!;
  }

  /** Still making the throwaway devices and their first handshake (a step is one piece of that). */
  get settingUp(): boolean {
    return this.round < 0 && !this.finished;
  }

  /** One piece of the set-up, or rounds for about `sliceMs` (at least one). Returns false once done. */
  step(sliceMs: number): boolean {
    if (this.finished) return false;
    const loop = this.loop;
    const t0 = loop.clock.now();
    const c0 = this.cpuClock();
    loop.divert(this.sink);
    try {
      if (this.round < 0) this.setUpStep();
      else {
        do {
          const r = this.round++;
          occasional(this, r);
          const n = BATCHES[r % BATCHES.length]!;
          this.packets += exchange(this, 0, n, r) + exchange(this, 1, n, r);
          // Within a step, elapsed time stands in for CPU time (never less); cpuClock is read once a step.
        } while (this.round < this.rounds && loop.clock.now() - t0 < Math.min(sliceMs, this.maxMs - this.ms));
        if (this.round >= this.rounds) this.finished = true;
      }
    } catch (err) {
      this.note = (err as Error).message;
      this.finished = true;
    } finally {
      loop.divert(null);
      loop.reset();
      this.ms += this.cpuClock() - c0;
    }
    if (!this.finished && this.ms > this.maxMs) {
      this.stop(`stopped at the ${this.maxMs} ms cap ${this.round < 0 ? 'while setting up' : `after ${this.round} of ${this.rounds} rounds`}`);
    }
    if (this.finished) this.cleanUp();
    return !this.finished;
  }

  /** End it now (e.g. real traffic is warming the path anyway). */
  stop(why = 'stopped'): void {
    if (this.finished) return;
    this.finished = true;
    this.note ||= why;
    this.cleanUp();
  }

  report(): WarmUpReport {
    return { packets: this.packets, ms: this.ms, complete: this.finished && this.note === '', note: this.note };
  }

  /** Deliver what was sent one at a time, until quiet. */
  pump(): void {
    for (let step = 0; this.pending.length && step < 16; step++) this.deliverOne();
    if (this.pending.length) throw new Error('warm-up: the throwaway devices kept talking');
  }

  /** Deliver the oldest datagram sent one at a time (to A or B; anything else is dropped). */
  private deliverOne(): void {
    const loop = this.loop;
    const d = this.pending.shift()!;
    const to = endpointEquals(d.dst, 0, EP[0], 0) ? 0 : endpointEquals(d.dst, 0, EP[1], 0) ? 1 : -1;
    if (to < 0) return;
    loop.udpIn.set(d.data, 0);
    loop.udpLens[0] = d.data.length;
    loop.udpAddrs.set(EP[1 - to], 0);
    loop.udpBatch(this.devs[to]!, 1);
    loop.delivered.n = 0;
  }

  /**
   * The set-up in pieces of a few ms each (cold code: key derivation, the
   * handshake's Diffie-Hellmans): the devices and A's first packet, which
   * starts the handshake; then one handshake message per step.
   */
  private setUpStep(): void {
    const loop = this.loop;
    if (this.devs.length === 0) {
      const [ka, kb] = this.keys as [Uint8Array, Uint8Array];
      this.devs.push(makeDevice(loop, ka, publicKeyOf(kb), 0), makeDevice(loop, kb, publicKeyOf(ka), 1));
      widenKeypairFields(this.other(this.a), loop.clock.now());
      writeIp(loop, 0, 0, false, 84, V4[1]);
      loop.tunBatch(this.a, 1);
    } else if (this.pending.length) {
      this.deliverOne();
    }
    if (this.pending.length) return;
    if (!this.other(this.a).current || !this.other(this.b).current) throw new Error('warm-up: no session between the throwaway devices');
    this.round = 0;
  }

  private cleanUp(): void {
    const loop = this.loop;
    for (const dev of this.devs) discard(dev);
    this.devs.length = 0;
    this.pending.length = 0;
    for (const k of this.keys) k.fill(0);
    loop.tunIn.fill(0, 0, this.slots * loop.slot);
    loop.udpIn.fill(0, 0, this.slots * loop.slot);
    loop.tunLens.fill(0);
    loop.udpLens.fill(0);
    loop.udpAddrs.fill(0);
    loop.sent.n = 0;
    loop.delivered.n = 0;
  }
}

/** The whole warm-up in one go (see WarmUp). */
export function warmUp(loop: WarmUpLoop, opts: WarmUpOptions = {}): WarmUpReport {
  const w = new WarmUp(loop, opts);
  while (w.step(Infinity));
  return w.report();
}

/**
 * A throwaway device at EP[side] whose first peer is the other one. A also has
 * two peers nobody plays: C (an endpoint, never a session) and D (no endpoint,
 * paths left to path choice).
 */
function makeDevice(loop: WarmUpLoop, privateKey: Uint8Array, peerKey: Uint8Array, side: 0 | 1): Device {
  const dev = new Device(loop.io, loop.crypto, { clock: loop.clock, timestamps: new PersistentTimestamps(null, loop.clock), timers: loop.timers });
  dev.onActivity = loop.onActivity;
  const other = 1 - side;
  const config: DeviceConfig = {
    privateKey,
    listenPort: 0,
    fwMark: 0,
    tun: 'warm-up',
    peers: [{
      publicKey: peerKey,
      allowedIps: [`${V4[other].join('.')}/32`, side ? '10.254.0.0/16' : '10.253.0.0/16', `${V6_TEXT[other]}/128`, 'fd7a:fffe::/48'],
      endpoint: { ip: side ? '192.0.2.1' : '192.0.2.2', port: side ? 1 : 2 },
      // One side roams like stock WireGuard, the other leaves paths to path choice: both branches get feedback.
      roaming: side === 0,
    }],
  };
  if (side === 0) {
    config.peers.push(
      { publicKey: publicKeyOf(generatePrivateKey()), allowedIps: ['10.252.0.0/24'], endpoint: { ip: '192.0.2.3', port: 3 } },
      { publicKey: publicKeyOf(generatePrivateKey()), allowedIps: ['10.250.0.0/24'], roaming: false },
    );
  }
  dev.reconfig(config);
  return dev;
}

/** A keypair with indices that are not small integers, then zeroed: Keypair's fields are laid out for both from here on. */
function widenKeypairFields(peer: Peer, now: number): void {
  new Keypair(peer, new Uint8Array(32), new Uint8Array(32), 0xfffffffe, 0xfffffffd, true, now).zero();
}

/** What a real tunnel does now and then, at points spread over the run. */
function occasional(pair: WarmUp, r: number): void {
  const { a, b } = pair;
  if (r === REHANDSHAKE_ROUND) {
    // B never initiated (A did, first), so no rate limit applies; its keepalive confirms A's new session.
    b.hs.sendInitiation(pair.other(b), false);
    pair.pump();
  }
  if (r % 16 === 5) for (const dev of pair.devs) for (const p of dev.peers.values()) p.lastActivityReport = -Infinity;
  if (r % 16 === 9) a.nextDeadline = b.nextDeadline = Infinity;
  if (r % 32 === 13) {
    const dev = r % 64 < 32 ? a : b;
    dev.sendKeepalive(pair.other(dev));
    pair.pump();
  }
}

/**
 * One TUN batch of n packets from side `side` to the other: sealed, taken off
 * the send queue into the receive batch, opened and delivered. Some rounds
 * add a packet that goes nowhere, reorder or duplicate datagrams, or add a
 * message for an index nobody has (large and small in turn). Returns the
 * packets delivered; throws if any went missing.
 */
function exchange(pair: WarmUp, side: 0 | 1, n: number, r: number): number {
  const loop = pair.loop;
  const from = pair.devs[side]!;
  const to = pair.devs[1 - side]!;
  const dst = V4[1 - side];
  const astray = r % 4 === 1 ? r % (n + 1) : -1;
  const slots = n + (astray >= 0 ? 1 : 0);
  for (let i = 0, k = 0; i < slots; i++) {
    if (i === astray) {
      writeIp(loop, i, side, false, 84, side === 0 ? NOWHERE[(r >> 2) % 3]! : NOWHERE[2]);
      continue;
    }
    writeIp(loop, i, side, (r + side * 4) % 8 === 7 && k === 0, (r + k) % 23 === 0 ? 1280 : (r + k) % 5 === 0 ? 40 : 84, dst);
    k++;
  }
  loop.tunBatch(from, slots);
  const sent = loop.sent;
  if (sent.n !== n) throw new Error(`warm-up: ${sent.n} of ${n} packets sealed`);
  const swap = n >= 2 && r % 16 === 7;
  let m = 0;
  const take = (i: number): void => {
    const off = sent.offs[i]!;
    const len = sent.lens[i]!;
    loop.udpIn.set(loop.tunIn.subarray(off, off + len), m * loop.slot);
    loop.udpLens[m] = len;
    loop.udpAddrs.set(EP[side], m * ENDPOINT_LEN);
    m++;
  };
  for (let i = 0; i < n; i++) take(swap && i < 2 ? 1 - i : i);
  if (r % 64 === 21) take(0);
  sent.n = 0;
  if (r % 16 === 15 && side === 0) {
    const o = m * loop.slot;
    loop.udpIn.fill(0, o, o + 48);
    loop.udpIn[o] = 4;
    new DataView(loop.udpIn.buffer, loop.udpIn.byteOffset + o + 4, 4).setUint32(0, r % 32 === 31 ? 0x9e3779b9 : 0x1e3779b9, true);
    loop.udpLens[m] = 48;
    loop.udpAddrs.set(EP[side], m * ENDPOINT_LEN);
    m++;
  }
  pair.slots = Math.max(pair.slots, slots, m);
  loop.udpBatch(to, m);
  const got = loop.delivered.n;
  loop.delivered.n = 0;
  if (got !== n) throw new Error(`warm-up: ${got} of ${n} packets delivered`);
  pair.pump(); // A's one initiation to C, which nobody plays, is dropped there
  return n;
}

/** An IP header (v4 or v6) from side `side` to `dst4` (v4) or the other side (v6) in TUN batch slot i, `len` bytes in all. */
function writeIp(loop: WarmUpLoop, i: number, side: 0 | 1, v6: boolean, len: number, dst4: Uint8Array): void {
  const buf = loop.tunIn;
  const p = i * loop.slot + TRANSPORT_HEADER_SIZE;
  if (v6) {
    len = Math.max(len, 48);
    buf.fill(0, p, p + 8);
    buf[p] = 0x60;
    buf[p + 4] = (len - 40) >> 8;
    buf[p + 5] = (len - 40) & 0xff;
    buf[p + 6] = 58; // ICMPv6
    buf[p + 7] = 64;
    buf.set(V6[side], p + 8);
    buf.set(V6[1 - side], p + 24);
  } else {
    buf.fill(0, p, p + 12);
    buf[p] = 0x45;
    buf[p + 2] = len >> 8;
    buf[p + 3] = len & 0xff;
    buf[p + 8] = 64;
    buf[p + 9] = 1; // ICMP
    buf.set(V4[side], p + 12);
    buf.set(dst4, p + 16);
  }
  loop.tunLens[i] = len;
}

/** Zero a throwaway device's secrets and free its indices. */
function discard(dev: Device): void {
  for (const p of dev.peers.values()) {
    dev.freeIndices(p.zeroAll());
    p.staged = [];
    p.identity.staticStatic?.fill(0);
    p.identity.presharedKey.fill(0);
  }
  dev.self?.privateKey.fill(0);
  dev.peers.clear();
  dev.onActivity = null;
}
