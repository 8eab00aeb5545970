/**
 * One client connection on the relay, after the HTTP upgrade: the
 * challenge, the node-key proof (single-use nonce, RELAY_PROOF_TIMEOUT_MS to
 * answer), the admission check, then the session — frames in, forwarded by
 * the server; keepalives out every keepaliveMs; silence for 2 × keepaliveMs
 * closes it (a half-open connection is noticed). A framing error (garbage,
 * an oversized length, a malformed frame) closes this connection only.
 *
 * Sending is bounded: when the socket already holds maxQueueBytes unsent
 * (a slow reader), further packets for it are dropped and counted.
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import {
  RELAY_NONCE_LEN, RELAY_PROOF_TIMEOUT_MS, RelayFrameReader, encodeRelayFrame,
  verifyRelayProof, relayChannel, type RelayFrame,
} from '../../wire/relay-frames.js';
import { toB64 } from '../../wire/control.js';
import type { TokenBucket } from './token-bucket.js';
import type { RelayCounters } from './counters.js';

/** What a connection needs from its server. */
export interface ConnHost {
  readonly serverKey: { privateKey: Uint8Array; publicKey: Uint8Array };
  readonly keepaliveMs: number;
  readonly maxQueueBytes: number;
  readonly counters: RelayCounters;
  now(): number;
  /** The tailnet of an admitted key (base64), or why it is refused. */
  admit(keyB64: string): { tailnet: string } | { refused: string };
  newBucket(): TokenBucket;
  established(c: RelayConn): void;
  forward(c: RelayConn, dst: Uint8Array, data: Uint8Array): void;
  closed(c: RelayConn): void;
  log(level: 'info' | 'debug' | 'warn', msg: string): void;
}

export class RelayConn {
  state: 'proof' | 'session' | 'closed' = 'proof';
  /** Set once proven: the node key as bytes, base64, and a latin1 string (the server's map key). */
  key: Uint8Array | null = null;
  keyB64 = '';
  keyBin = '';
  tailnet = '';
  bucket: TokenBucket | null = null;
  /** Destination (latin1 key) → when we last told this client it is gone. */
  peerGoneAt: Map<string, number> | null = null;
  /** Packets for this client dropped because its socket was full. */
  queueDrops = 0;
  private readonly nonce = new Uint8Array(randomBytes(RELAY_NONCE_LEN));
  private readonly reader = new RelayFrameReader();
  private timer: NodeJS.Timeout | null = null;
  private keepalive: NodeJS.Timeout | null = null;
  private lastRead: number;

  constructor(readonly socket: Socket, readonly remote: string, private readonly host: ConnHost) {
    this.lastRead = host.now();
    socket.setNoDelay(true);
    socket.setTimeout(0);
    socket.on('data', (c: Buffer) => this.onData(c));
    socket.on('error', () => this.close());
    socket.on('close', () => this.close());
    this.timer = setTimeout(() => this.refuse('no proof of the node key in time', 'refusedOther'), RELAY_PROOF_TIMEOUT_MS);
  }

  /** The first frame, written right after the 101. */
  challengeFrame(): Buffer {
    return encodeRelayFrame({ type: 'server-challenge', serverKey: this.host.serverKey.publicKey, nonce: this.nonce });
  }

  /** Write a frame unless the socket is backed up (then drop it: false). */
  write(frame: Uint8Array): boolean {
    if (this.state === 'closed' || this.socket.writableLength > this.host.maxQueueBytes) return false;
    this.socket.write(frame);
    return true;
  }

  /** Tell the client why, then close (the reason frame goes out before the FIN). */
  refuse(reason: string, counter?: 'refusedProof' | 'refusedNotAdmitted' | 'refusedOther' | 'revoked' | 'replaced'): void {
    if (this.state === 'closed') return;
    if (counter) this.host.counters[counter]++;
    this.host.log('debug', `relay client ${this.remote}${this.keyB64 ? ` (${this.keyB64})` : ''}: ${reason}`);
    if (!this.socket.destroyed) {
      this.socket.end(encodeRelayFrame({ type: 'server-refused', reason }));
      setTimeout(() => this.socket.destroy(), 1000).unref();
    }
    this.close(false);
  }

  close(destroy = true): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.timer) clearTimeout(this.timer);
    if (this.keepalive) clearInterval(this.keepalive);
    this.timer = this.keepalive = null;
    if (destroy) this.socket.destroy();
    this.host.closed(this);
  }

  private onData(chunk: Buffer): void {
    if (this.state === 'closed') return;
    this.lastRead = this.host.now();
    const err = this.reader.push(chunk, (f) => this.onFrame(f));
    // onFrame may have closed us (a refusal): then the error is moot.
    if (err && (this.state as RelayConn['state']) !== 'closed') {
      this.host.counters[err.code === 'frame_too_large' ? 'oversizedFrames' : 'badFrames']++;
      this.host.log('debug', `relay client ${this.remote}: ${err.message}; closing`);
      this.close();
    }
  }

  private onFrame(f: RelayFrame): void {
    if (this.state === 'session') {
      if (f.type === 'send-packet') this.host.forward(this, f.key, f.data);
      else if (f.type === 'ping') {
        if (this.bucket!.take(13, this.host.now())) this.write(encodeRelayFrame({ type: 'pong', data: f.data }));
      } else if (f.type === 'unknown') this.host.counters.unknownFrames++;
      // keepalive, pong: reading them was the point (lastRead).
      return;
    }
    if (this.state !== 'proof') return;
    if (f.type !== 'client-proof') return this.refuse(`expected client-proof, got ${f.type}`, 'refusedOther');
    let channel: Uint8Array;
    try {
      channel = relayChannel(this.socket as TLSSocket);
    } catch {
      return this.refuse('no TLS keying material to bind the proof to', 'refusedOther');
    }
    const key = verifyRelayProof(f.nodeKey, f.box, this.host.serverKey.privateKey, this.nonce, channel);
    if (!key) return this.refuse('the proof does not open: the client does not hold that node key', 'refusedProof');
    const keyB64 = toB64(key);
    const a = this.host.admit(keyB64);
    if ('refused' in a) return this.refuse(a.refused, 'refusedNotAdmitted');
    this.key = Uint8Array.from(key);
    this.keyB64 = keyB64;
    this.keyBin = Buffer.from(key).toString('latin1');
    this.tailnet = a.tailnet;
    this.bucket = this.host.newBucket();
    this.state = 'session';
    clearTimeout(this.timer!);
    this.timer = null;
    this.socket.write(encodeRelayFrame({ type: 'server-ok', keepaliveMs: this.host.keepaliveMs }));
    this.keepalive = setInterval(() => this.write(encodeRelayFrame({ type: 'keepalive' })), this.host.keepaliveMs);
    this.armDeadline(2 * this.host.keepaliveMs);
    this.host.established(this);
  }

  /** Lazily re-armed: one timer per deadline period, not one per frame. */
  private armDeadline(ms: number): void {
    this.timer = setTimeout(() => {
      if (this.state !== 'session') return;
      const idle = this.host.now() - this.lastRead;
      const deadline = 2 * this.host.keepaliveMs;
      if (idle < deadline) return this.armDeadline(deadline - idle);
      this.host.counters.deadlineExpired++;
      this.host.log('debug', `relay client ${this.remote} (${this.keyB64}): silent for ${Math.round(idle)} ms; closing`);
      this.close();
    }, Math.max(1, ms));
  }
}
