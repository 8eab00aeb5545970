/**
 * Path choice for one peer: where its WireGuard packets go now — a direct UDP
 * address, the peer's home relay region, or nowhere — and which disco pings
 * to send to find out (../shared/DESIGN.md, "Path selection"). Pure: no
 * sockets; an injected clock; timers are deadlines that tick() runs, as in
 * src/dataplane/peer.ts. The caller seals and sends the pings (PeerPathsIO),
 * answers pings with pongs and feeds what it hears back in.
 *
 * Rules:
 *  - Start on the relay, so the first packet flows at once ('none' only with
 *    neither a relay region nor a direct path ever confirmed; with no relay a
 *    direct path whose pongs stopped is still used — better than dropping).
 *  - Discovery round: ping every candidate not pinged for repingMs, and send a
 *    call-me-maybe over the relay (at most every repingMs) so the peer pings
 *    our endpoints at the same time (simultaneous open). A round runs when
 *    traffic starts, when new netmap candidates arrive during traffic, on
 *    every heartbeat while there is no trusted direct path (re-ping), every
 *    upgradeMs while the direct path is slower than goodEnoughLatencyMs, and
 *    at once when a direct path loses trust during traffic.
 *  - The first pong makes its candidate the path; later, a candidate whose
 *    pong is clearly faster (SWITCH_RATIO and SWITCH_MIN_GAIN_MS) replaces it.
 *  - While traffic flows (a packet within sessionActiveMs) the direct path is
 *    pinged every heartbeatMs. It is trusted for trustMs after its last pong;
 *    then traffic moves to the relay at once (or to another candidate still
 *    trusted) and the candidates keep being pinged.
 *  - Idle: heartbeats stop and nothing is sent; the path is remembered. When
 *    traffic resumes and it is no longer trusted, packets go via the relay at
 *    once while a round re-pings — traffic never waits for a pong.
 *  - The peer asking (call-me-maybe, a ping from a new address, a ping via the
 *    relay while we have no direct path) gets its addresses pinged at once,
 *    no sooner than minPingGapMs after the last ping to each (deferred, not
 *    dropped), whether or not we are active: the peer is.
 *  - A pong counts only for a txid we sent, within pingTimeoutMs, from the
 *    address it was sent to; anything via the relay never moves a direct path.
 *  - Bounded: MAX_NETMAP_CANDIDATES from control, MAX_LEARNED_CANDIDATES
 *    learned (the stalest evicted; forgotten after learnedTtlMs), and
 *    MAX_OUTSTANDING_PINGS txids (the oldest evicted).
 */
import { randomBytes } from 'node:crypto';
import type { Clock } from '../dataplane/clock.js';
import { MAX_ENDPOINTS } from '../wire/control.js';
import { DISCO_TXID_LEN, ipFrom16, ipTo16 } from '../wire/disco.js';
import type { PathTimers } from './path-timers.js';

/**
 * A direct address; `socket` (1..255) names one of the engine's extra UDP
 * sockets (a birthday-paradox winner) to send from, absent = the main socket.
 * A path is (local socket, remote address): the same address via another
 * socket is another candidate.
 */
export type DirectAddr = { ip: string; port: number; socket?: number };
export type RelayAddr = { relay: number };
export type Path = { kind: 'direct'; addr: DirectAddr } | { kind: 'relay'; region: number } | { kind: 'none' };

export interface PeerPathsIO {
  /** Seal and send a disco ping with this txid. */
  sendPing(to: DirectAddr | RelayAddr, txid: Uint8Array): void;
  /** Send our current endpoints to the peer via the relay. */
  sendCallMeMaybe(): void;
}

export interface PeerPathsOptions {
  clock: Clock;
  timers: PathTimers;
  io: PeerPathsIO;
  /** n random bytes (txids); crypto.randomBytes unless given. */
  random?: (n: number) => Uint8Array;
}

export interface CandidateStatus {
  addr: DirectAddr;
  latencyMs: number | null;
  /** Clock time of the last pong, null if none. */
  lastPong: number | null;
}

export interface PeerPathsStatus {
  path: Path;
  /** Round trip of the direct path in use (its last pong); null on the relay or with none. */
  latencyMs: number | null;
  candidates: CandidateStatus[];
}

export interface PongResult {
  path: Path;
  latencyMs: number;
}

/** As many as control carries for a node. */
export const MAX_NETMAP_CANDIDATES = MAX_ENDPOINTS;
/** Candidates learned from the peer (call-me-maybe, pings) and not in the netmap. */
export const MAX_LEARNED_CANDIDATES = 32;
/** Pings awaiting a pong (a full round to every candidate fits). */
export const MAX_OUTSTANDING_PINGS = 128;
/** A working direct path is replaced only by one at most this fraction of its latency... */
export const SWITCH_RATIO = 0.9;
/** ...and at least this many milliseconds faster. */
export const SWITCH_MIN_GAIN_MS = 1;

const NONE: Path = Object.freeze({ kind: 'none' });

interface Candidate {
  readonly key: string;
  readonly addr: DirectAddr;
  /** The Path object current() hands out for this candidate. */
  readonly path: Path;
  fromNetmap: boolean;
  /** Last time the peer told us of it (call-me-maybe, ping); -Infinity if never. */
  learnedAt: number;
  lastPing: number;
  lastPong: number;
  latencyMs: number | null;
  /** A ping asked for by the peer, deferred to keep minPingGapMs; 0 = none. */
  pingDue: number;
}

interface Outstanding {
  key: string;
  sentAt: number;
}

function isUnroutable(b: Uint8Array): boolean {
  if (b[0] === 0xff) return true; // IPv6 multicast
  const mapped = b.subarray(0, 12).every((x, i) => x === (i < 10 ? 0 : 0xff));
  if (mapped) {
    const first = b[12]!;
    return first === 0 || (first >= 224 && first <= 239) || b.subarray(12).every((x) => x === 0xff);
  }
  return b.every((x) => x === 0);
}

/** Canonical form and map key of an address, or null for one that cannot be pinged. */
function canonical(a: DirectAddr): { key: string; addr: DirectAddr } | null {
  if (typeof a?.ip !== 'string' || !Number.isInteger(a.port) || a.port < 1 || a.port > 65535) return null;
  const b = ipTo16(a.ip);
  if (!b || isUnroutable(b)) return null;
  const ip = ipFrom16(b);
  const key = ip.includes(':') ? `[${ip}]:${a.port}` : `${ip}:${a.port}`;
  const sock = a.socket;
  if (sock !== undefined && sock !== 0) {
    if (!Number.isInteger(sock) || sock < 1 || sock > 255) return null;
    return { key: `${key}#${sock}`, addr: Object.freeze({ ip, port: a.port, socket: sock }) };
  }
  return { key, addr: Object.freeze({ ip, port: a.port }) };
}

const txidKey = (txid: Uint8Array): string => Buffer.from(txid).toString('hex');

export class PeerPaths {
  readonly counters = { pings: 0, pongs: 0, pongsIgnored: 0, callMeMaybes: 0, candidatesRefused: 0 };

  private readonly clock: Clock;
  private readonly timers: PathTimers;
  private readonly io: PeerPathsIO;
  private readonly random: (n: number) => Uint8Array;

  private region = 0;
  private relayPath: Path = NONE;
  private relayOnly = false;
  private readonly cands = new Map<string, Candidate>();
  private best: Candidate | null = null;
  /** Whether `best` was trusted when last looked at: tick() notices the moment it stops. */
  private bestTrusted = false;
  private readonly pending = new Map<string, Outstanding>();
  private lastTraffic = -Infinity;
  private lastRound = -Infinity;
  private lastCallMeMaybe = -Infinity;
  /** Next heartbeat; 0 = stopped (idle). */
  private tHeartbeat = 0;

  constructor(o: PeerPathsOptions) {
    this.clock = o.clock;
    this.timers = o.timers;
    this.io = o.io;
    this.random = o.random ?? ((n) => new Uint8Array(randomBytes(n)));
  }

  // ------------------------------------------------------------ inputs

  /** The peer's home relay region; 0 = none known. */
  setPeerHomeRegion(region: number): void {
    if (region === this.region) return;
    this.region = region;
    this.relayPath = region ? Object.freeze({ kind: 'relay', region }) : NONE;
  }

  /** Send everything via the relay (no direct pings) while on; the direct path is remembered. */
  setRelayOnly(on: boolean): void {
    this.relayOnly = on;
    if (on) for (const c of this.cands.values()) c.pingDue = 0;
    else if (this.isActive(this.clock.now())) this.round(this.clock.now());
  }

  /** The peer's endpoints from the netmap; replaces the previous netmap set (learned ones stay). */
  setCandidates(eps: DirectAddr[]): void {
    const now = this.clock.now();
    const seen = new Set<string>();
    let fresh = false;
    for (const ep of eps) {
      if (seen.size >= MAX_NETMAP_CANDIDATES) break;
      const k = canonical(ep);
      if (!k || seen.has(k.key)) continue;
      seen.add(k.key);
      let c = this.cands.get(k.key);
      if (!c) {
        c = this.add(k.key, k.addr);
        fresh = true;
      }
      c.fromNetmap = true;
    }
    for (const c of this.cands.values()) {
      if (c.fromNetmap && !seen.has(c.key)) {
        c.fromNetmap = false;
        if (c.learnedAt === -Infinity) this.remove(c, now);
      }
    }
    this.prune(now);
    if (fresh && this.isActive(now) && !this.relayOnly) this.round(now);
  }

  /** Addresses the peer told us of: a call-me-maybe's endpoints, or the source of its ping. */
  addCandidates(eps: DirectAddr[], from: 'callmemaybe' | 'ping'): void {
    const now = this.clock.now();
    this.prune(now);
    const learned = this.learn(eps, now);
    if (this.relayOnly) return;
    if (from !== 'callmemaybe' && this.trustedBest(now)) return;
    // (A long list may have evicted its own first entries to make room.)
    for (const c of learned) if (this.cands.get(c.key) === c) this.pingSoon(c, now);
  }

  /** A disco ping from the peer (the caller answers it with a pong). */
  onPingReceived(from: DirectAddr | RelayAddr): void {
    if ('relay' in from) {
      const now = this.clock.now();
      if (this.relayOnly || this.trustedBest(now)) return;
      for (const c of this.cands.values()) this.pingSoon(c, now);
      return;
    }
    this.addCandidates([from], 'ping');
  }

  /** A pong from the peer. Null (ignored) unless it answers a ping of ours from where it was sent. */
  onPong(txid: Uint8Array, from: DirectAddr | RelayAddr): PongResult | null {
    const now = this.clock.now();
    this.expirePings(now);
    const id = txid.length === DISCO_TXID_LEN ? txidKey(txid) : '';
    const p = this.pending.get(id);
    const k = 'relay' in from ? null : canonical(from);
    if (!p || !k || k.key !== p.key) {
      this.counters.pongsIgnored++;
      return null;
    }
    this.pending.delete(id);
    const c = this.cands.get(p.key);
    if (!c) {
      this.counters.pongsIgnored++;
      return null;
    }
    this.counters.pongs++;
    c.lastPong = now;
    c.latencyMs = now - p.sentAt;
    const b = this.best;
    if (b !== c && (!b || !this.trusted(b, now) || this.faster(c, b))) this.best = c;
    if (this.best === c) this.bestTrusted = true;
    return { path: c.path, latencyMs: c.latencyMs };
  }

  /** Packets were sent to or received from this peer. Cheap while the session is already active. */
  noteTraffic(): void {
    const now = this.clock.now();
    const wasActive = this.isActive(now);
    this.lastTraffic = now;
    if (wasActive) return;
    if (this.tHeartbeat === 0) this.tHeartbeat = now + this.timers.heartbeatMs;
    this.prune(now);
    if (this.wantRound(now)) this.round(now);
  }

  /** Run what is due (call when nextDeadline has passed; harmless earlier). */
  tick(): void {
    const now = this.clock.now();
    this.expirePings(now);
    this.prune(now);
    for (const c of this.cands.values()) if (c.pingDue !== 0 && c.pingDue <= now) this.ping(c, now);
    if (this.best && this.bestTrusted && !this.trusted(this.best, now)) {
      // Pongs stopped: another candidate still trusted, else the relay (current() already says so).
      this.bestTrusted = false;
      this.reselect(now);
      if (!this.bestTrusted && this.isActive(now) && !this.relayOnly) this.round(now);
    }
    if (this.tHeartbeat !== 0 && this.tHeartbeat <= now) {
      if (!this.isActive(now)) {
        this.tHeartbeat = 0;
      } else {
        this.tHeartbeat = now + this.timers.heartbeatMs;
        if (this.best && !this.relayOnly && this.trusted(this.best, now)) this.ping(this.best, now);
        if (this.wantRound(now)) this.round(now);
      }
    }
  }

  // ------------------------------------------------------------ outputs

  /** The earliest clock time tick() has something to do; Infinity if none. */
  get nextDeadline(): number {
    let t = this.tHeartbeat === 0 ? Infinity : this.tHeartbeat;
    if (this.best && this.bestTrusted) t = Math.min(t, this.best.lastPong + this.timers.trustMs);
    for (const c of this.cands.values()) if (c.pingDue !== 0) t = Math.min(t, c.pingDue);
    return t;
  }

  /** Where this peer's WireGuard packets go now. The returned objects are frozen and reused. */
  current(): Path {
    const b = this.relayOnly ? null : this.best;
    if (b && this.trusted(b, this.clock.now())) return b.path;
    if (this.region) return this.relayPath;
    return b ? b.path : NONE;
  }

  status(): PeerPathsStatus {
    this.prune(this.clock.now());
    const path = this.current();
    return {
      path,
      latencyMs: path.kind === 'direct' && this.best ? this.best.latencyMs : null,
      candidates: [...this.cands.values()].map((c) => ({
        addr: { ...c.addr },
        latencyMs: c.latencyMs,
        lastPong: c.lastPong === -Infinity ? null : c.lastPong,
      })),
    };
  }

  /** Pings awaiting a pong (at most MAX_OUTSTANDING_PINGS). */
  get outstandingPings(): number {
    this.expirePings(this.clock.now());
    return this.pending.size;
  }

  // ------------------------------------------------------------ internals

  private isActive(now: number): boolean {
    return now - this.lastTraffic < this.timers.sessionActiveMs;
  }

  private trusted(c: Candidate, now: number): boolean {
    return now < c.lastPong + this.timers.trustMs;
  }

  private trustedBest(now: number): boolean {
    return !this.relayOnly && this.best !== null && this.trusted(this.best, now);
  }

  /** Whether a pong's candidate is clearly faster than the working path (hysteresis). */
  private faster(c: Candidate, b: Candidate): boolean {
    if (c.latencyMs === null || b.latencyMs === null) return false;
    return c.latencyMs <= b.latencyMs * SWITCH_RATIO && b.latencyMs - c.latencyMs >= SWITCH_MIN_GAIN_MS;
  }

  private wantRound(now: number): boolean {
    if (this.relayOnly) return false;
    const b = this.best;
    if (!b || !this.trusted(b, now)) return true;
    if (b.latencyMs !== null && b.latencyMs <= this.timers.goodEnoughLatencyMs) return false;
    return now - this.lastRound >= this.timers.upgradeMs;
  }

  /** Ping every candidate not pinged for repingMs, and ask the peer to ping us. */
  private round(now: number): void {
    this.lastRound = now;
    let sent = 0;
    for (const c of this.cands.values()) {
      if (now - c.lastPing >= this.timers.repingMs) {
        this.ping(c, now);
        sent++;
      }
    }
    if ((sent > 0 || this.cands.size === 0) && this.region !== 0 && now - this.lastCallMeMaybe >= this.timers.repingMs) {
      this.lastCallMeMaybe = now;
      this.counters.callMeMaybes++;
      this.io.sendCallMeMaybe();
    }
  }

  /** Ping at once, or as soon as minPingGapMs allows. */
  private pingSoon(c: Candidate, now: number): void {
    const due = c.lastPing + this.timers.minPingGapMs;
    if (due <= now) this.ping(c, now);
    else if (c.pingDue === 0 || due < c.pingDue) c.pingDue = due;
  }

  private ping(c: Candidate, now: number): void {
    const txid = this.random(DISCO_TXID_LEN);
    this.expirePings(now);
    if (this.pending.size >= MAX_OUTSTANDING_PINGS) this.pending.delete(this.pending.keys().next().value!);
    this.pending.set(txidKey(txid), { key: c.key, sentAt: now });
    c.lastPing = now;
    c.pingDue = 0;
    this.counters.pings++;
    this.io.sendPing(c.addr.socket ? { ip: c.addr.ip, port: c.addr.port, socket: c.addr.socket } : { ip: c.addr.ip, port: c.addr.port }, txid);
  }

  /** Forget unanswered pings older than pingTimeoutMs (the map is in send order). */
  private expirePings(now: number): void {
    for (const [id, p] of this.pending) {
      if (now - p.sentAt < this.timers.pingTimeoutMs) break;
      this.pending.delete(id);
    }
  }

  private add(key: string, addr: DirectAddr): Candidate {
    const c: Candidate = {
      key, addr, path: Object.freeze({ kind: 'direct', addr }), fromNetmap: false,
      learnedAt: -Infinity, lastPing: -Infinity, lastPong: -Infinity, latencyMs: null, pingDue: 0,
    };
    this.cands.set(key, c);
    return c;
  }

  private remove(c: Candidate, now: number): void {
    this.cands.delete(c.key);
    if (this.best === c) {
      this.best = null;
      this.bestTrusted = false;
      this.reselect(now);
    }
  }

  /** The fastest trusted candidate becomes the path; with none, the remembered one stays (untrusted). */
  private reselect(now: number): void {
    let pick: Candidate | null = null;
    for (const c of this.cands.values()) {
      if (this.trusted(c, now) && (!pick || (c.latencyMs ?? Infinity) < (pick.latencyMs ?? Infinity))) pick = c;
    }
    if (pick) {
      this.best = pick;
      this.bestTrusted = true;
    }
  }

  private learnedOnly(c: Candidate): boolean {
    return !c.fromNetmap && c.learnedAt !== -Infinity;
  }

  private learnedAge(c: Candidate, now: number): number {
    return now - Math.max(c.learnedAt, c.lastPong);
  }

  private learn(eps: DirectAddr[], now: number): Candidate[] {
    const out: Candidate[] = [];
    for (const ep of eps.slice(0, MAX_LEARNED_CANDIDATES)) {
      const k = canonical(ep);
      if (!k) {
        this.counters.candidatesRefused++;
        continue;
      }
      let c = this.cands.get(k.key);
      if (!c) {
        if (!this.makeRoomForLearned(now)) {
          this.counters.candidatesRefused++;
          continue;
        }
        c = this.add(k.key, k.addr);
      }
      c.learnedAt = now;
      if (!out.includes(c)) out.push(c);
    }
    return out;
  }

  /** Room for one more learned candidate: evict the stalest one that is not the path. */
  private makeRoomForLearned(now: number): boolean {
    let count = 0;
    let victim: Candidate | null = null;
    for (const c of this.cands.values()) {
      if (!this.learnedOnly(c)) continue;
      count++;
      if (c !== this.best && (!victim || this.learnedAge(c, now) > this.learnedAge(victim, now))) victim = c;
    }
    if (count < MAX_LEARNED_CANDIDATES) return true;
    if (!victim) return false;
    this.remove(victim, now);
    return true;
  }

  /** Forget learned candidates not heard of for learnedTtlMs, and any over the cap. */
  private prune(now: number): void {
    let count = 0;
    for (const c of this.cands.values()) {
      if (!this.learnedOnly(c)) continue;
      if (this.learnedAge(c, now) >= this.timers.learnedTtlMs) this.remove(c, now);
      else count++;
    }
    while (count-- > MAX_LEARNED_CANDIDATES) this.makeRoomForLearned(now);
  }
}
