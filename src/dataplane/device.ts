/**
 * The WireGuard device: peers, the index table, cryptokey routing, the packet
 * path in both directions and the timers. Pure logic over injected I/O, clock
 * and crypto backends, so two devices can be wired together in one process
 * with a fake clock; the worker loop (engine-worker.ts) drives it from real
 * sockets and a TUN in batches.
 *
 * Packet path rules: no throwing, no logging, no allocation in steady state —
 * drops are counted by reason in `drops`. The batch entry points
 * (handleTunBatch, handleUdpBatch) decide per packet exactly as the
 * single-packet ones do, then seal or open the packets in one crypto call per
 * run (transport-batch.ts).
 */
import { AllowedIps, parsePrefix } from './allowed-ips.js';
import { REJECT_AFTER_MESSAGES, REKEY_AFTER_MESSAGES, MAX_STAGED_PACKETS, MESSAGE_COOKIE_REPLY,
  MESSAGE_INITIATION, MESSAGE_RESPONSE, MESSAGE_TRANSPORT, PRODUCTION_TIMERS, TRANSPORT_HEADER_SIZE,
  type TimerProfile } from './constants.js';
import { messageType, isTransport, transportCounter, readU32LE } from '../wire/wireguard.js';
import { endpointEquals, encodeEndpoint, formatEndpoint, ENDPOINT_LEN } from './endpoint.js';
import { staticIdentity, peerIdentity, type StaticIdentity } from './noise.js';
import { CookieChecker } from './cookie.js';
import { Peer } from './peer.js';
import type { Keypair } from './keypair.js';
import type { Clock } from './clock.js';
import type { TransportCrypto } from './transport-crypto.js';
import type { DeviceStatus } from './status.js';
import { HandshakeLayer, type TimestampSource } from './handshake.js';
import { SealRun, OpenBatch } from './transport-batch.js';

export interface PeerConfig {
  publicKey: Uint8Array;
  presharedKey?: Uint8Array | null;
  allowedIps: string[];
  endpoint?: { ip: string; port: number } | null;
  persistentKeepalive?: number;
  /** false: authenticated packets never move the endpoint; only setEndpoint() does (mesh path choice). Default true. */
  roaming?: boolean;
}

/** A complete, immutable description of what the device should be. */
export interface DeviceConfig {
  privateKey: Uint8Array;
  listenPort: number;
  fwMark: number;
  tun: string;
  peers: PeerConfig[];
  /** Test-only: behave as if under load (answer initiations without valid MAC2 with cookies). */
  forceUnderLoad?: boolean;
}

export interface DeviceIO {
  /** Send a datagram. Unless `buf` is the I/O layer's own batch buffer, consume it before returning. */
  sendUdp(buf: Uint8Array, off: number, len: number, dst: Uint8Array, dstOff: number): void;
  /** Deliver a decrypted IP packet to the TUN. Same ownership rule. */
  writeTun(buf: Uint8Array, off: number, len: number): void;
}

/** How often, at most, the device reports a peer's traffic to path choice. */
export const ACTIVITY_REPORT_MS = 1000;

export type Logger = (level: 'info' | 'warn' | 'debug', msg: string) => void;

export const DROP_REASONS = [
  'not_wireguard', 'malformed', 'unknown_index', 'expired_keypair', 'replay', 'decrypt', 'allowed_ips',
  'bad_inner_packet', 'bad_mac1', 'cookie_required', 'ratelimited', 'handshake_failed', 'unknown_peer',
  'stale_initiation', 'initiation_flood', 'unexpected_response', 'bad_cookie', 'no_route', 'no_endpoint',
  'staged_overflow', 'too_big',
] as const;
export type DropReason = (typeof DROP_REASONS)[number];

export class Device {
  readonly clock: Clock;
  readonly log: Logger;
  readonly timers: TimerProfile;
  readonly drops: Record<DropReason, number>;
  readonly counters = {
    rx_packets: 0, tx_packets: 0, rx_keepalives: 0, tx_keepalives: 0, handshakes_initiated: 0,
    handshakes_completed: 0, handshakes_answered: 0, cookies_sent: 0, cookies_received: 0, endpoint_changes: 0,
  };
  self!: StaticIdentity;
  checker!: CookieChecker;
  readonly hs: HandshakeLayer;
  config: DeviceConfig | null = null;
  peers = new Map<string, Peer>();
  private table = new AllowedIps<Peer>();
  /** local index → session or handshake owner */
  readonly indices = new Map<number, { peer: Peer; keypair: Keypair | null }>();
  /** Earliest pending timer deadline (ms, monotonic); Infinity when none. */
  nextDeadline = Infinity;
  private scratch = new Uint8Array(65536 + 64);
  private readonly sealRun = new SealRun();
  private readonly openBatch = new OpenBatch();
  /**
   * Told (at most once per ACTIVITY_REPORT_MS per peer) that data flows to or
   * from a peer; `quietMs` is how long since the previous report (Infinity for
   * the first), so a listener can tell traffic starting from traffic going on.
   */
  onActivity: ((keyB64: string, quietMs: number) => void) | null = null;
  private readonly noteDeadline = (t: number): void => {
    if (t < this.nextDeadline) this.nextDeadline = t;
  };

  constructor(
    readonly io: DeviceIO,
    readonly crypto: TransportCrypto,
    opts: { clock: Clock; timestamps: TimestampSource; log?: Logger; timers?: TimerProfile },
  ) {
    this.clock = opts.clock;
    this.log = opts.log ?? (() => {});
    this.timers = opts.timers ?? PRODUCTION_TIMERS;
    this.drops = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;
    this.hs = new HandshakeLayer(this, opts.timestamps);
  }

  // ---------------------------------------------------------------- config

  /** Make the device match `cfg`. Sessions of unchanged peers survive. */
  reconfig(cfg: DeviceConfig): void {
    const keyChanged = !this.config || !Buffer.from(this.config.privateKey).equals(Buffer.from(cfg.privateKey));
    if (keyChanged) {
      for (const p of this.peers.values()) this.freeIndices(p.zeroAll());
      this.peers.clear();
      this.self = staticIdentity(cfg.privateKey);
      this.checker = new CookieChecker(this.self.mac1Key, this.self.cookieKey, this.clock);
    }
    const wanted = new Map<string, PeerConfig>();
    for (const pc of cfg.peers) wanted.set(Buffer.from(pc.publicKey).toString('base64'), pc);
    for (const [key, peer] of this.peers) {
      if (!wanted.has(key)) {
        this.freeIndices(peer.zeroAll());
        this.peers.delete(key);
      }
    }
    const table = new AllowedIps<Peer>();
    const fresh: Peer[] = [];
    for (const [key, pc] of wanted) {
      let peer = this.peers.get(key);
      const psk = pc.presharedKey ?? undefined;
      if (peer && !Buffer.from(peer.identity.presharedKey).equals(Buffer.from(psk ?? new Uint8Array(32)))) {
        this.freeIndices(peer.zeroAll());
        peer.identity = peerIdentity(this.self, pc.publicKey, psk);
      }
      if (!peer) {
        peer = new Peer(peerIdentity(this.self, pc.publicKey, psk), key, this.clock, this.timers, this.noteDeadline);
        this.peers.set(key, peer);
        fresh.push(peer);
        if (!peer.identity.staticStatic) this.log('warn', `peer ${key}: public key is a low-order point; handshakes with it are refused`);
      }
      const ep = pc.endpoint ? `${pc.endpoint.ip}|${pc.endpoint.port}` : null;
      if (ep !== peer.configuredEndpoint) {
        peer.configuredEndpoint = ep;
        if (pc.endpoint) peer.endpoint = encodeEndpoint(pc.endpoint.ip, pc.endpoint.port);
      }
      peer.roaming = pc.roaming ?? true;
      peer.persistentKeepalive = pc.persistentKeepalive ?? 0;
      if (peer.persistentKeepalive === 0) peer.tPersistentKeepalive = 0;
      peer.allowedIps = pc.allowedIps.slice();
      for (const cidr of pc.allowedIps) table.insert(parsePrefix(cidr), peer);
    }
    this.table = table;
    this.config = cfg;
    // Like wireguard-go: a peer with persistent keepalive says hello at once.
    for (const peer of fresh) if (peer.persistentKeepalive > 0 && peer.endpoint) this.sendKeepalive(peer);
  }

  /**
   * Path choice sets where a peer's packets go (a direct address or a relay
   * endpoint); null = nowhere yet. Packets that waited for a path go now.
   */
  setEndpoint(keyB64: string, ep: Uint8Array | null): void {
    const peer = this.peers.get(keyB64);
    if (!peer) return;
    const had = peer.endpoint;
    peer.endpoint = ep ? ep.slice(0, ENDPOINT_LEN) : null;
    if (ep && (!had || !endpointEquals(had, 0, ep, 0))) this.counters.endpoint_changes++;
    if (ep && !had && peer.staged.length) this.sendStaged(peer, false);
  }

  private reportActivity(peer: Peer, now: number): void {
    const quietMs = now - peer.lastActivityReport;
    peer.lastActivityReport = now;
    this.onActivity?.(peer.keyB64, quietMs);
  }

  get underLoadForced(): boolean {
    return this.config?.forceUnderLoad === true;
  }

  // ---------------------------------------------------------- index table

  newIndex(peer: Peer, keypair: Keypair | null): number {
    for (;;) {
      const idx = (Math.random() * 0x100000000) >>> 0;
      if (!this.indices.has(idx)) {
        this.indices.set(idx, { peer, keypair });
        return idx;
      }
    }
  }

  freeIndices(list: number[]): void {
    for (const i of list) this.indices.delete(i);
  }

  /** Zero a keypair that is being replaced and free its index. */
  discard(kp: Keypair | null): void {
    if (!kp) return;
    kp.zero();
    this.indices.delete(kp.localIndex);
  }

  // ------------------------------------------------------- inbound (UDP)

  /**
   * A datagram from the network. `src` holds the 20-byte source endpoint at
   * srcOff. Decrypted packets are handed to io.writeTun in place.
   */
  handleUdp(buf: Uint8Array, off: number, len: number, src: Uint8Array, srcOff: number): void {
    const type = messageType(buf, off, len);
    if (type === MESSAGE_TRANSPORT) return this.receiveTransport(buf, off, len, src, srcOff);
    if (type === 0) {
      this.drops.not_wireguard++;
      return;
    }
    const msg = buf.slice(off, off + len);
    const from = src.slice(srcOff, srcOff + ENDPOINT_LEN);
    if (type === MESSAGE_INITIATION) this.hs.receiveInitiation(msg, from);
    else if (type === MESSAGE_RESPONSE) this.hs.receiveResponse(msg, from);
    else if (type === MESSAGE_COOKIE_REPLY) this.hs.receiveCookieReply(msg);
  }

  /**
   * A batch of datagrams: datagram i is lens[i] bytes at i*slot (negative:
   * skip it), its source endpoint at src[i*20]. Same outcome as handleUdp on
   * each in turn, but each stretch of transport messages is opened in one
   * crypto call; any other message (a handshake message) is handled in its
   * place, after everything before it.
   */
  handleUdpBatch(buf: Uint8Array, slot: number, n: number, lens: Int32Array, src: Uint8Array): void {
    const batch = this.openBatch;
    const now = this.clock.now();
    for (let i = 0; i < n; i++) {
      const len = lens[i]!;
      if (len < 0) continue;
      const off = i * slot;
      if (messageType(buf, off, len) !== MESSAGE_TRANSPORT) {
        this.openPending(buf, src, now);
        this.handleUdp(buf, off, len, src, i * ENDPOINT_LEN);
        continue;
      }
      const kp = this.receivingSession(buf, off, len, now);
      if (!kp) continue;
      if (batch.full) this.openPending(buf, src, now);
      batch.add(kp, off, len, i * ENDPOINT_LEN);
    }
    this.openPending(buf, src, now);
  }

  private openPending(buf: Uint8Array, src: Uint8Array, now: number): void {
    const b = this.openBatch;
    if (b.n === 0) return;
    b.open(this.crypto, buf);
    for (let k = 0; k < b.n; k++) this.opened(b.kps[k]!, buf, b.offs[k]!, b.msgLens[k]!, b.lens[k]!, src, b.srcOffs[k]!, now);
    b.clear();
  }

  private receiveTransport(buf: Uint8Array, off: number, len: number, src: Uint8Array, srcOff: number): void {
    const now = this.clock.now();
    const kp = this.receivingSession(buf, off, len, now);
    if (!kp) return;
    this.opened(kp, buf, off, len, this.crypto.open(kp.recvKey, buf, off, len), src, srcOff, now);
  }

  /** The checks before decrypting: the session a transport message claims, if it may be opened (else counted as a drop). */
  private receivingSession(buf: Uint8Array, off: number, len: number, now: number): Keypair | null {
    if (!isTransport(buf, off, len)) {
      this.drops.malformed++;
      return null;
    }
    const kp = this.indices.get(readU32LE(buf, off + 4))?.keypair;
    if (!kp) {
      this.drops.unknown_index++;
      return null;
    }
    const counter = transportCounter(buf, off);
    if (counter < 0 || counter >= REJECT_AFTER_MESSAGES || now - kp.created >= this.timers.rejectAfterTime) {
      this.drops.expired_keypair++;
      return null;
    }
    if (!kp.replay.check(counter)) {
      this.drops.replay++;
      return null;
    }
    return kp;
  }

  /** After opening a message at buf[off] (plainLen < 0: it did not authenticate): the replay window, timers, delivery. */
  private opened(kp: Keypair, buf: Uint8Array, off: number, len: number, plainLen: number, src: Uint8Array, srcOff: number, now: number): void {
    if (plainLen < 0) {
      this.drops.decrypt++;
      return;
    }
    // The header is not touched by opening: the counter checked before is still there.
    if (!kp.replay.accept(transportCounter(buf, off))) {
      this.drops.replay++;
      return;
    }
    const peer = kp.peer;
    if (kp === peer.next) this.confirmNext(peer);
    // Endpoint roaming: any authenticated packet moves the endpoint (unless path choice owns it).
    if (!peer.endpoint || (peer.roaming && !endpointEquals(peer.endpoint, 0, src, srcOff))) {
      peer.endpoint = src.slice(srcOff, srcOff + ENDPOINT_LEN);
      this.counters.endpoint_changes++;
    }
    peer.rxBytes += len;
    peer.timersAnyAuthenticatedPacketTraversal();
    peer.timersAnyAuthenticatedPacketReceived();
    this.keepKeyFreshReceiving(peer, kp, now);
    if (plainLen === 0) {
      this.counters.rx_keepalives++;
      return;
    }
    peer.timersDataReceived();
    if (now - peer.lastActivityReport >= ACTIVITY_REPORT_MS) this.reportActivity(peer, now);
    this.deliver(peer, buf, off + TRANSPORT_HEADER_SIZE, plainLen);
  }

  /** An authenticated plaintext from `peer` at buf[p..p+plainLen): to the TUN if it is an IP packet from the peer's allowed IPs. */
  private deliver(peer: Peer, buf: Uint8Array, p: number, plainLen: number): void {
    const version = buf[p]! >> 4;
    let ipLen: number;
    let owner: Peer | undefined;
    if (version === 4 && plainLen >= 20) {
      ipLen = (buf[p + 2]! << 8) | buf[p + 3]!;
      owner = this.table.lookupV4(buf, p + 12);
    } else if (version === 6 && plainLen >= 40) {
      ipLen = 40 + ((buf[p + 4]! << 8) | buf[p + 5]!);
      owner = this.table.lookupV6(buf, p + 8);
    } else {
      this.drops.bad_inner_packet++;
      return;
    }
    if (ipLen > plainLen || ipLen < 20) {
      this.drops.bad_inner_packet++;
      return;
    }
    if (owner !== peer) {
      this.drops.allowed_ips++;
      return;
    }
    this.counters.rx_packets++;
    this.io.writeTun(buf, p, ipLen);
  }

  /** The responder's first data on a new session confirms it: next becomes current. */
  private confirmNext(peer: Peer): void {
    this.discard(peer.previous);
    peer.previous = peer.current;
    peer.current = peer.next;
    peer.next = null;
    peer.timersHandshakeComplete(Number(this.clock.wallNs() / 1_000_000n));
    this.counters.handshakes_completed++;
  }

  private keepKeyFreshReceiving(peer: Peer, kp: Keypair, now: number): void {
    if (peer.current !== kp || !kp.isInitiator || peer.sentLastMinuteHandshake) return;
    if (now - kp.created >= this.timers.rejectAfterTime - this.timers.keepaliveTimeout - this.timers.rekeyTimeout) {
      peer.sentLastMinuteHandshake = true;
      this.hs.sendInitiation(peer, false);
    }
  }

  // ------------------------------------------------------- outbound (TUN)

  /**
   * An IP packet from the TUN at buf[off..off+len), with 16 bytes of headroom
   * before `off` and room for padding and tag before `cap`.
   */
  handleTun(buf: Uint8Array, off: number, len: number, cap: number): void {
    const now = this.clock.now();
    const kp = this.sendingSession(buf, off, len, now);
    if (kp) this.sealOne(kp, buf, off, len, cap, now);
  }

  /**
   * A batch of IP packets from the TUN: packet i is lens[i] bytes at
   * i*slot + 16 (the slot's first 16 bytes are headroom for the header, and
   * its message must fit in the slot). Same outcome as handleTun on each in
   * turn, but consecutive packets on one session are sealed in one crypto call.
   */
  handleTunBatch(buf: Uint8Array, slot: number, n: number, lens: Int32Array): void {
    const run = this.sealRun;
    const now = this.clock.now();
    for (let i = 0; i < n; i++) {
      const len = lens[i]!;
      const msgOff = i * slot;
      const kp = this.sendingSession(buf, msgOff + TRANSPORT_HEADER_SIZE, len, now);
      if (!kp || !this.fits(msgOff, len, msgOff + slot)) continue;
      const counter = kp.sendCounter++;
      if (!run.continues(kp, i, counter)) {
        this.sealRunOut(buf, slot, now);
        run.begin(kp, i, counter);
      }
      run.push(len);
    }
    this.sealRunOut(buf, slot, now);
  }

  /**
   * Cryptokey routing and the session to seal with: the current keypair if it
   * may still send, else the packet is staged (and a handshake started) or
   * dropped, and the result is null.
   */
  private sendingSession(buf: Uint8Array, off: number, len: number, now: number): Keypair | null {
    const version = len > 0 ? buf[off]! >> 4 : 0;
    let peer: Peer | undefined;
    if (version === 4 && len >= 20) peer = this.table.lookupV4(buf, off + 16);
    else if (version === 6 && len >= 40) peer = this.table.lookupV6(buf, off + 24);
    else {
      this.drops.bad_inner_packet++;
      return null;
    }
    if (!peer) {
      this.drops.no_route++;
      return null;
    }
    if (!peer.endpoint) {
      if (peer.roaming) {
        this.drops.no_endpoint++;
        return null;
      }
      // Path choice owns this peer and has no path yet: keep the packet for when it does.
      this.stage(peer, buf.slice(off, off + len));
      if (now - peer.lastActivityReport >= ACTIVITY_REPORT_MS) this.reportActivity(peer, now);
      return null;
    }
    const kp = peer.current;
    if (!kp || kp.sendCounter >= REJECT_AFTER_MESSAGES || now - kp.created >= this.timers.rejectAfterTime) {
      this.stage(peer, buf.slice(off, off + len));
      this.hs.sendInitiation(peer, false);
      return null;
    }
    return kp;
  }

  /** Whether the message for `plainLen` bytes fits between msgOff and cap; if not, a too_big drop (no counter spent). */
  private fits(msgOff: number, plainLen: number, cap: number): boolean {
    if (msgOff + this.crypto.sealedLength(plainLen) <= cap) return true;
    this.drops.too_big++;
    return false;
  }

  /** Seal and send one packet at buf[off] on `kp`. */
  private sealOne(kp: Keypair, buf: Uint8Array, off: number, len: number, cap: number, now: number): void {
    const msgOff = off - TRANSPORT_HEADER_SIZE;
    if (!this.fits(msgOff, len, cap)) return;
    const total = this.crypto.seal(kp.sendKey, kp.remoteIndex, kp.sendCounter++, buf, msgOff, len, cap);
    this.sent(kp, buf, msgOff, len, total, now);
  }

  private sealRunOut(buf: Uint8Array, slot: number, now: number): void {
    const run = this.sealRun;
    if (run.n === 0) return;
    run.seal(this.crypto, buf, slot);
    const kp = run.kp!;
    for (let k = 0; k < run.n; k++) this.sent(kp, buf, (run.start + k) * slot, run.plainLens[k]!, run.lens[k]!, now);
    run.clear();
  }

  /**
   * After sealing a message of `total` bytes at buf[msgOff]: timers, counters,
   * off to the I/O layer. total < 0: sealing failed; the packet is dropped, and
   * its counter stays spent (a nonce is never used twice under one key).
   */
  private sent(kp: Keypair, buf: Uint8Array, msgOff: number, plainLen: number, total: number, now: number): void {
    if (total < 0) {
      this.drops.too_big++;
      return;
    }
    const peer = kp.peer;
    peer.timersAnyAuthenticatedPacketTraversal();
    peer.timersAnyAuthenticatedPacketSent();
    if (plainLen > 0) {
      peer.timersDataSent();
      if (now - peer.lastActivityReport >= ACTIVITY_REPORT_MS) this.reportActivity(peer, now);
      this.counters.tx_packets++;
    } else this.counters.tx_keepalives++;
    peer.txBytes += total;
    this.io.sendUdp(buf, msgOff, total, peer.endpoint!, 0);
    // keepKeyFreshSending
    if (kp.sendCounter > REKEY_AFTER_MESSAGES || (kp.isInitiator && now - kp.created >= this.timers.rekeyAfterTime)) {
      this.hs.sendInitiation(peer, false);
    }
  }

  private stage(peer: Peer, packet: Uint8Array): void {
    if (peer.staged.length >= MAX_STAGED_PACKETS) {
      peer.staged.shift();
      this.drops.staged_overflow++;
    }
    peer.staged.push(packet);
  }

  /** Send what waited for a session; a keepalive if `keepaliveIfEmpty` and nothing waited. */
  sendStaged(peer: Peer, keepaliveIfEmpty: boolean): void {
    if (peer.staged.length === 0 && keepaliveIfEmpty) peer.staged.push(new Uint8Array(0));
    const kp = peer.current;
    const now = this.clock.now();
    if (!kp || !peer.endpoint || now - kp.created >= this.timers.rejectAfterTime) {
      if (peer.staged.length) this.hs.sendInitiation(peer, false);
      return;
    }
    const list = peer.staged;
    peer.staged = [];
    for (const pkt of list) {
      this.scratch.set(pkt, TRANSPORT_HEADER_SIZE);
      this.sealOne(kp, this.scratch, TRANSPORT_HEADER_SIZE, pkt.length, this.scratch.length, now);
    }
  }

  sendKeepalive(peer: Peer): void {
    if (peer.staged.length === 0) peer.staged.push(new Uint8Array(0));
    this.sendStaged(peer, false);
  }

  // ---------------------------------------------------------------- timers

  /** Fire every timer that is due. Call whenever the clock passes nextDeadline (and freely otherwise). */
  tick(): void {
    const now = this.clock.now();
    if (now < this.nextDeadline) return;
    this.nextDeadline = Infinity;
    for (const peer of this.peers.values()) {
      if (peer.tRetransmitHandshake && peer.tRetransmitHandshake <= now) {
        peer.tRetransmitHandshake = 0;
        this.hs.retransmitExpired(peer);
      }
      if (peer.tSendKeepalive && peer.tSendKeepalive <= now) {
        peer.tSendKeepalive = 0;
        this.sendKeepalive(peer);
        if (peer.needAnotherKeepalive) {
          peer.needAnotherKeepalive = false;
          peer.tSendKeepalive = now + this.timers.keepaliveTimeout;
        }
      }
      if (peer.tNewHandshake && peer.tNewHandshake <= now) {
        peer.tNewHandshake = 0;
        // No reply to our data within KEEPALIVE + REKEY_TIMEOUT: the session may be dead.
        this.hs.sendInitiation(peer, false);
      }
      if (peer.tZeroKeyMaterial && peer.tZeroKeyMaterial <= now) {
        peer.tZeroKeyMaterial = 0;
        this.freeIndices(peer.zeroAll());
        this.log('debug', `peer ${peer.keyB64}: key material expired and zeroed`);
      }
      if (peer.tPersistentKeepalive && peer.tPersistentKeepalive <= now) {
        peer.tPersistentKeepalive = 0;
        if (peer.persistentKeepalive > 0) this.sendKeepalive(peer);
      }
      for (const t of [peer.tRetransmitHandshake, peer.tSendKeepalive, peer.tNewHandshake, peer.tZeroKeyMaterial, peer.tPersistentKeepalive]) {
        if (t && t < this.nextDeadline) this.nextDeadline = t;
      }
    }
  }

  // ---------------------------------------------------------------- status

  status(): DeviceStatus {
    const cfg = this.config;
    return {
      publicKey: this.self ? Buffer.from(this.self.publicKey).toString('base64') : '',
      listenPort: cfg?.listenPort ?? 0,
      fwMark: cfg?.fwMark ?? 0,
      tun: cfg?.tun ?? '',
      peers: [...this.peers.values()].map((p) => ({
        publicKey: p.keyB64,
        endpoint: p.endpoint ? formatEndpoint(p.endpoint) : null,
        allowedIps: p.allowedIps.slice(),
        latestHandshake: Math.floor(p.lastHandshakeWallMs / 1000),
        rxBytes: p.rxBytes,
        txBytes: p.txBytes,
        persistentKeepalive: p.persistentKeepalive,
        presharedKey: p.identity.presharedKey.some((b) => b !== 0),
      })),
      drops: { ...this.drops },
      counters: { ...this.counters },
    };
  }
}
