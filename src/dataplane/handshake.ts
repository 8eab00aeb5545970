/**
 * The handshake side of the device: sending initiations (with retries and
 * their rate limit), answering initiations, consuming responses and cookie
 * replies, load detection and per-source rate limiting (wireguard-go's
 * semantics). Messages here are rare, so allocation is fine.
 */
import { createInitiation, consumeInitiation, createResponse, consumeResponse } from './noise.js';
import { decodeInitiation, decodeResponse, decodeCookieReply } from '../wire/wireguard.js';
import { compareTai64n } from '../crypto/tai64n.js';
import { endpointCookieBytes, endpointIp, formatEndpoint } from './endpoint.js';
import { Keypair } from './keypair.js';
import { HANDSHAKE_INITIATION_RATE, HANDSHAKE_RATE_BURST, HANDSHAKE_RATE_PER_SEC, UNDER_LOAD_AFTER,
  UNDER_LOAD_QUEUE, REKEY_ATTEMPT_TIME, REKEY_TIMEOUT } from './constants.js';
import type { Device } from './device.js';
import type { Peer } from './peer.js';

/** Supplies TAI64N timestamps, each strictly later than every one handed out before (persisted across restarts). */
export interface TimestampSource {
  next(): Uint8Array;
}

const MAX_TIMER_HANDSHAKES = REKEY_ATTEMPT_TIME / REKEY_TIMEOUT; // 18 retries

export class HandshakeLayer {
  private underLoadUntil = -Infinity;
  private windowStart = 0;
  private windowCount = 0;
  private buckets = new Map<string, { tokens: number; last: number }>();
  private lastBucketGc = 0;
  private lastLogged = new Map<string, number>();

  constructor(private readonly dev: Device, private readonly timestamps: TimestampSource) {}

  // ---------------------------------------------------------------- load

  /** Under load: many handshake messages recently (or forced in tests). */
  private underLoad(now: number): boolean {
    if (this.dev.underLoadForced) return true;
    if (now - this.windowStart > 1000 / 8) {
      this.windowStart = now;
      this.windowCount = 0;
    }
    if (++this.windowCount > UNDER_LOAD_QUEUE / 8) this.underLoadUntil = now + UNDER_LOAD_AFTER;
    return now < this.underLoadUntil;
  }

  /** Token bucket per source IP, like wireguard-go's ratelimiter (20/s, burst 5). */
  private allow(ip: string, now: number): boolean {
    if (now - this.lastBucketGc > 1000) {
      this.lastBucketGc = now;
      for (const [k, b] of this.buckets) if (now - b.last > 1000) this.buckets.delete(k);
    }
    let b = this.buckets.get(ip);
    if (!b) {
      b = { tokens: HANDSHAKE_RATE_BURST, last: now };
      this.buckets.set(ip, b);
    }
    b.tokens = Math.min(HANDSHAKE_RATE_BURST, b.tokens + ((now - b.last) * HANDSHAKE_RATE_PER_SEC) / 1000);
    b.last = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /**
   * The cookie/MAC checks every handshake message passes first. Returns false
   * when the message must go no further (a cookie reply may have been sent).
   */
  private admit(msg: Uint8Array, from: Uint8Array): boolean {
    const dev = this.dev;
    const now = dev.clock.now();
    if (!dev.checker.checkMac1(msg)) {
      dev.drops.bad_mac1++;
      this.logLimited(endpointIp(from), now, `handshake message from ${formatEndpoint(from)} is not addressed to our public key (bad MAC1): that peer has a wrong public key for us`);
      return false;
    }
    if (!this.underLoad(now)) return true;
    const src = endpointCookieBytes(from);
    if (!dev.checker.checkMac2(msg, src)) {
      const reply = dev.checker.createReply(msg, src);
      dev.io.sendUdp(reply, 0, reply.length, from, 0);
      dev.counters.cookies_sent++;
      dev.drops.cookie_required++;
      return false;
    }
    if (!this.allow(endpointIp(from), now)) {
      dev.drops.ratelimited++;
      return false;
    }
    return true;
  }

  /** At most one line per source address per 10 s, so a flood cannot flood the log. */
  private logLimited(key: string, now: number, msg: string): void {
    const last = this.lastLogged.get(key);
    if (last !== undefined && now - last < 10_000) return;
    if (this.lastLogged.size > 1024) this.lastLogged.clear();
    this.lastLogged.set(key, now);
    this.dev.log('warn', msg);
  }

  // ----------------------------------------------------------- initiator

  sendInitiation(peer: Peer, isRetry: boolean): void {
    const dev = this.dev;
    const now = dev.clock.now();
    if (!isRetry) peer.handshakeAttempts = 0;
    if (now - peer.lastSentHandshake < dev.timers.rekeyTimeout) return;
    if (!peer.endpoint || !peer.identity.staticStatic) return;
    peer.lastSentHandshake = now;
    if (peer.handshake) dev.freeIndices([peer.handshake.localIndex]);
    const localIndex = dev.newIndex(peer, null);
    const { message, state } = createInitiation(dev.self, peer.identity, localIndex, this.timestamps.next());
    peer.handshake = { localIndex, state };
    peer.cookies.stamp(message);
    peer.timersAnyAuthenticatedPacketTraversal();
    peer.timersAnyAuthenticatedPacketSent();
    peer.timersHandshakeInitiated();
    peer.txBytes += message.length;
    dev.counters.handshakes_initiated++;
    dev.io.sendUdp(message, 0, message.length, peer.endpoint, 0);
  }

  retransmitExpired(peer: Peer): void {
    if (peer.handshakeAttempts > MAX_TIMER_HANDSHAKES) {
      peer.tSendKeepalive = 0;
      peer.staged = [];
      if (peer.tZeroKeyMaterial === 0) peer.timersSessionDerived();
      this.dev.log('info', `peer ${peer.keyB64}: handshake did not complete after ${MAX_TIMER_HANDSHAKES + 2} attempts, giving up`);
      return;
    }
    peer.handshakeAttempts++;
    this.dev.log('debug', `peer ${peer.keyB64}: handshake timed out, retrying (attempt ${peer.handshakeAttempts + 1})`);
    this.sendInitiation(peer, true);
  }

  receiveResponse(msg: Uint8Array, from: Uint8Array): void {
    const dev = this.dev;
    const m = decodeResponse(msg);
    if (!m) {
      dev.drops.malformed++;
      return;
    }
    if (!this.admit(msg, from)) return;
    const entry = dev.indices.get(m.receiver);
    const peer = entry?.peer;
    if (!peer || entry.keypair || !peer.handshake || peer.handshake.localIndex !== m.receiver) {
      dev.drops.unexpected_response++;
      return;
    }
    const keys = consumeResponse(dev.self, peer.identity, peer.handshake.state, m);
    if (!keys) {
      dev.drops.handshake_failed++;
      dev.log('warn', `handshake response from ${formatEndpoint(from)} for peer ${peer.keyB64} did not authenticate`);
      return;
    }
    const now = dev.clock.now();
    const kp = new Keypair(peer, keys.sendKey, keys.recvKey, m.receiver, m.sender, true, now);
    dev.indices.set(m.receiver, { peer, keypair: kp });
    peer.handshake = null;
    dev.discard(peer.next);
    peer.next = null;
    dev.discard(peer.previous);
    peer.previous = peer.current;
    peer.current = kp;
    if (peer.roaming || !peer.endpoint) peer.endpoint = from;
    peer.rxBytes += msg.length;
    peer.timersSessionDerived();
    peer.timersHandshakeComplete(Number(dev.clock.wallNs() / 1_000_000n));
    peer.timersAnyAuthenticatedPacketTraversal();
    peer.timersAnyAuthenticatedPacketReceived();
    dev.counters.handshakes_completed++;
    dev.log('debug', `peer ${peer.keyB64}: handshake complete (initiator)`);
    dev.sendStaged(peer, true);
  }

  // ----------------------------------------------------------- responder

  receiveInitiation(msg: Uint8Array, from: Uint8Array): void {
    const dev = this.dev;
    const m = decodeInitiation(msg);
    if (!m) {
      dev.drops.malformed++;
      return;
    }
    if (!this.admit(msg, from)) return;
    let found: Peer | undefined;
    const r = consumeInitiation(dev.self, m, (key) => {
      found = dev.peers.get(Buffer.from(key).toString('base64'));
      return found?.identity.staticStatic ?? null;
    });
    if (!r.ok) {
      if (r.reason === 'unknown_peer') {
        dev.drops.unknown_peer++;
        this.logLimited(endpointIp(from), dev.clock.now(), `handshake from ${formatEndpoint(from)} with unknown public key ${Buffer.from(r.peerKey).toString('base64')}: no such peer, ignored`);
      } else {
        dev.drops.handshake_failed++;
        this.logLimited(endpointIp(from), dev.clock.now(), `handshake initiation from ${formatEndpoint(from)} did not decrypt (${r.reason}): not addressed to our key, or corrupted`);
      }
      return;
    }
    const peer = found!;
    const now = dev.clock.now();
    if (compareTai64n(r.timestamp, peer.lastTimestamp) <= 0) {
      dev.drops.stale_initiation++;
      dev.log('debug', `peer ${peer.keyB64}: initiation timestamp not newer than the last one, dropped (replay)`);
      return;
    }
    if (now - peer.lastInitiationConsumed < HANDSHAKE_INITIATION_RATE) {
      dev.drops.initiation_flood++;
      return;
    }
    peer.lastTimestamp = new Uint8Array(r.timestamp);
    peer.lastInitiationConsumed = now;
    if (peer.handshake) {
      dev.freeIndices([peer.handshake.localIndex]);
      peer.handshake = null;
    }
    const localIndex = dev.newIndex(peer, null);
    const { message, keys } = createResponse(peer.identity, r.state, localIndex, m.sender);
    const kp = new Keypair(peer, keys.sendKey, keys.recvKey, localIndex, m.sender, false, now);
    dev.indices.set(localIndex, { peer, keypair: kp });
    dev.discard(peer.next);
    peer.next = kp;
    if (peer.roaming || !peer.endpoint) peer.endpoint = from;
    peer.rxBytes += msg.length;
    peer.cookies.stamp(message);
    peer.timersSessionDerived();
    peer.timersAnyAuthenticatedPacketTraversal();
    peer.timersAnyAuthenticatedPacketReceived();
    peer.timersAnyAuthenticatedPacketSent();
    peer.txBytes += message.length;
    dev.counters.handshakes_answered++;
    dev.io.sendUdp(message, 0, message.length, from, 0);
  }

  receiveCookieReply(msg: Uint8Array): void {
    const dev = this.dev;
    const m = decodeCookieReply(msg);
    if (!m) {
      dev.drops.malformed++;
      return;
    }
    const peer = dev.indices.get(m.receiver)?.peer;
    if (!peer || !peer.cookies.consumeReply(msg)) {
      dev.drops.bad_cookie++;
      return;
    }
    dev.counters.cookies_received++;
    dev.log('info', `peer ${peer.keyB64}: under load, sent us a cookie; the next handshake carries MAC2`);
  }
}
