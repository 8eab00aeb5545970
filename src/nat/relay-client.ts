/**
 * One connection to one relay server (relay-protocol.md): HTTPS to the
 * relay's URL (pinned by its SHA-256 fingerprint from the relay map, or
 * verified against the system CAs), upgrade to warren-relay/1, answer the
 * server's challenge with a proof of our node key, then packets both ways.
 *
 * - Reconnects with exponential backoff and jitter until close().
 * - Keepalives at least as often as the server asks (server-ok carries its
 *   interval); silence for twice that interval is a dead connection, so a
 *   half-open TCP connection is noticed and replaced.
 * - send() while not connected returns false and queues nothing: a packet is
 *   never carried into a later connection (the peer it was for may be gone,
 *   or may be someone else by then). A connection whose socket buffer is full
 *   (a slow relay) drops and counts instead of growing.
 * - ping() measures the round trip through the relay (ping/pong frames).
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import type { ConnectionOptions, TLSSocket } from 'node:tls';
import {
  DEFAULT_RELAY_KEEPALIVE_MS, FRAME_TYPE, MAX_PACKET_LEN, PING_LEN, RELAY_KEY_LEN, RELAY_PATH,
  RELAY_UPGRADE_PROTOCOL, RelayFrameReader, encodePacketFrame, encodeRelayFrame, makeRelayProof, relayChannel,
  type RelayFrame,
} from '../wire/relay-frames.js';
import { PinnedTls } from '../control/pinned-tls.js';
import { backoffDelay, httpsUpgrade, UpgradeRefusedError } from '../util/https-upgrade.js';

export type RelayClientState = 'connecting' | 'connected' | 'disconnected';

export interface RelayClientOptions {
  /** https://host:port from the relay map. */
  url: string;
  /** Pin (sha256 hex, any form normalizeFingerprint takes) or null = normal CA verification. */
  fingerprint: string | null;
  nodeKey: { privateKey: Uint8Array; publicKey: Uint8Array };
  /** A packet from `src` (a 32-byte node key). The buffers are only valid during the call. */
  onPacket(src: Uint8Array, data: Uint8Array): void;
  onPeerGone?(key: Uint8Array, reason: string): void;
  onState?(state: RelayClientState, detail?: string): void;
  log: (level: 'info' | 'warn' | 'debug', msg: string) => void;
  /** Default 30 s; the read deadline is 2× (the server's interval if it asks for a shorter one). */
  keepaliveMs?: number | undefined;
  backoff?: { minMs: number; maxMs: number } | undefined;
  /** Give up on a connection attempt (TCP, TLS, upgrade, proof) after this long; default 10 s. */
  connectTimeoutMs?: number | undefined;
  /** Bytes the socket may hold unsent before send() drops; default 1 MiB. */
  maxBufferedBytes?: number | undefined;
}

export interface RelayClientStats {
  connects: number;
  sent: number;
  sentBytes: number;
  /** send() refused: not connected, buffer full, or oversized. */
  sendDropped: number;
  received: number;
  receivedBytes: number;
  peerGone: number;
  /** Frames of a type this version does not know (ignored). */
  unknownFrames: number;
  deadlineExpired: number;
}

const DEFAULT_BACKOFF = { minMs: 500, maxMs: 30_000 };
const MAX_PENDING_PINGS = 64;

export class RelayClient {
  readonly stats: RelayClientStats = {
    connects: 0, sent: 0, sentBytes: 0, sendDropped: 0, received: 0, receivedBytes: 0, peerGone: 0, unknownFrames: 0, deadlineExpired: 0,
  };
  /** Last refusal or failure, for status displays. */
  lastError: string | null = null;
  /** Last health text the server sent ('' = healthy). */
  health = '';
  private readonly url: URL;
  private readonly host: string;
  private readonly port: number;
  private readonly pinned: PinnedTls | null;
  private readonly ownKeepaliveMs: number;
  private readonly maxBuffered: number;
  private stopped = true;
  private closing: Promise<void> | null = null;
  private socket: Socket | null = null;
  private abort: AbortController | null = null;
  private isConnected = false;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private keepaliveTimer: NodeJS.Timeout | null = null;
  private deadlineTimer: NodeJS.Timeout | null = null;
  private deadlineMs: number;
  private lastRead = 0;
  private readonly pings = new Map<string, { start: number; resolve(ms: number): void; reject(e: Error): void; timer: NodeJS.Timeout }>();

  constructor(private readonly o: RelayClientOptions) {
    this.url = new URL(o.url);
    if (this.url.protocol !== 'https:') throw new TypeError(`relay URL must be https://host[:port], got ${o.url}`);
    this.host = this.url.hostname.replace(/^\[(.*)\]$/, '$1');
    this.port = this.url.port === '' ? 443 : Number(this.url.port);
    this.pinned = o.fingerprint ? new PinnedTls({ fingerprint: o.fingerprint }) : null;
    this.ownKeepaliveMs = o.keepaliveMs ?? DEFAULT_RELAY_KEEPALIVE_MS;
    this.deadlineMs = 2 * this.ownKeepaliveMs;
    this.maxBuffered = o.maxBufferedBytes ?? 1 << 20;
  }

  get connected(): boolean {
    return this.isConnected;
  }

  start(): void {
    if (!this.stopped || this.closing) return;
    this.stopped = false;
    this.connect();
  }

  /** Send one packet to `dst` through the relay; false (nothing queued) unless connected and the socket has room. */
  send(dst: Uint8Array, data: Uint8Array): boolean {
    const s = this.socket;
    if (!this.isConnected || !s || dst.length !== RELAY_KEY_LEN || data.length > MAX_PACKET_LEN || s.writableLength > this.maxBuffered) {
      this.stats.sendDropped++;
      return false;
    }
    s.write(encodePacketFrame(FRAME_TYPE['send-packet'], dst, data));
    this.stats.sent++;
    this.stats.sentBytes += data.length;
    return true;
  }

  /** Round trip through the relay in ms; rejects when not connected, on disconnect, or after `timeoutMs` (default 5 s). */
  ping(timeoutMs = 5000): Promise<number> {
    const s = this.socket;
    if (!this.isConnected || !s) return Promise.reject(new Error(`relay ${this.url.host}: not connected`));
    if (this.pings.size >= MAX_PENDING_PINGS) return Promise.reject(new Error(`relay ${this.url.host}: too many pings in flight`));
    const data = new Uint8Array(randomBytes(PING_LEN));
    const id = Buffer.from(data).toString('hex');
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pings.delete(id);
        reject(new Error(`relay ${this.url.host}: no pong within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pings.set(id, { start: performance.now(), resolve, reject, timer });
      s.write(encodeRelayFrame({ type: 'ping', data }));
    });
  }

  /** Stop for good: close the connection, cancel retries, fail pending pings. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.stopped = true;
      if (this.retryTimer) clearTimeout(this.retryTimer);
      this.retryTimer = null;
      const s = this.socket;
      this.drop('closed');
      if (s && !s.closed) await new Promise<void>((resolve) => s.once('close', () => resolve()));
    })();
    return this.closing;
  }

  // ------------------------------------------------------------ connection

  private connect(): void {
    if (this.stopped) return;
    this.o.onState?.('connecting');
    const abort = new AbortController();
    this.abort = abort;
    void this.open(abort.signal).catch((err: Error) => {
      if (this.abort !== abort) return;
      this.lastError = err.message;
      this.o.log(this.attempt >= 3 ? 'warn' : 'debug', `relay ${this.url.host}: ${err.message}`);
      this.drop(err.message);
    });
  }

  /** Upgrade, challenge, proof; resolves once the server says ok. */
  private async open(signal: AbortSignal): Promise<void> {
    const timeoutMs = this.o.connectTimeoutMs ?? 10_000;
    const timer = setTimeout(() => {
      if (this.abort?.signal === signal) this.abort.abort(new Error(`no session within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    try {
      const socket = this.pinned
        ? await this.pinned.withPin(this.host, this.port, (tls) => this.upgrade(tls, signal))
        : await this.upgrade({}, signal);
      if (signal.aborted) {
        socket.destroy();
        throw signal.reason as Error;
      }
      await this.handshake(socket, signal);
    } finally {
      clearTimeout(timer);
    }
  }

  private async upgrade(tls: ConnectionOptions, signal: AbortSignal): Promise<Socket> {
    try {
      return await httpsUpgrade({ host: this.host, port: this.port, path: RELAY_PATH, protocol: RELAY_UPGRADE_PROTOCOL, tls, signal });
    } catch (e) {
      throw e instanceof UpgradeRefusedError ? new Error(`relay answered HTTP ${e.status} instead of upgrading: ${e.reason}`) : e;
    }
  }

  private handshake(socket: Socket, signal: AbortSignal): Promise<void> {
    this.socket = socket;
    const reader = new RelayFrameReader();
    let phase: 'challenge' | 'ok' | 'session' = 'challenge';
    return new Promise<void>((resolve, reject) => {
      const fail = (err: Error): void => {
        reject(err);
        socket.destroy();
      };
      signal.addEventListener('abort', () => {
        if (phase !== 'session') fail(signal.reason as Error);
      }, { once: true });
      const onFrame = (f: RelayFrame): void => {
        if (socket.destroyed) return;
        if (phase === 'session') return this.onFrame(f);
        if (f.type === 'server-refused') return fail(new Error(`relay refused us: ${f.reason}`));
        if (phase === 'challenge') {
          if (f.type !== 'server-challenge') return fail(new Error(`relay sent ${f.type} before its challenge`));
          try {
            const channel = relayChannel(socket as TLSSocket);
            socket.write(encodeRelayFrame(makeRelayProof(f, this.o.nodeKey, channel)));
          } catch (e) {
            return fail(new Error(`cannot answer the relay's challenge: ${(e as Error).message}`));
          }
          phase = 'ok';
          return;
        }
        if (f.type === 'health') return this.onFrame(f);
        if (f.type !== 'server-ok') return fail(new Error(`relay sent ${f.type} instead of server-ok`));
        phase = 'session';
        this.established(socket, f.keepaliveMs);
        resolve();
      };
      socket.on('data', (chunk: Buffer) => {
        this.lastRead = performance.now();
        const err = reader.push(chunk, onFrame);
        if (err) {
          this.o.log('warn', `relay ${this.url.host}: ${err.message}; reconnecting`);
          if (phase === 'session') this.lostSocket(socket, err.message);
          else fail(new Error(err.message));
        }
      });
      socket.on('error', (err) => this.o.log('debug', `relay ${this.url.host}: socket error: ${err.message}`));
      socket.on('close', () => {
        if (phase !== 'session') fail(new Error('relay closed the connection during the handshake'));
        else this.lostSocket(socket, 'connection closed');
      });
    });
  }

  private established(socket: Socket, serverKeepaliveMs: number): void {
    this.isConnected = true;
    this.attempt = 0;
    this.lastError = null;
    this.stats.connects++;
    const serverKa = serverKeepaliveMs > 0 ? serverKeepaliveMs : this.ownKeepaliveMs;
    const sendEvery = Math.min(this.ownKeepaliveMs, serverKa);
    this.deadlineMs = 2 * serverKa;
    this.keepaliveTimer = setInterval(() => {
      if (this.socket === socket && socket.writableLength < this.maxBuffered) socket.write(encodeRelayFrame({ type: 'keepalive' }));
    }, sendEvery);
    this.lastRead = performance.now();
    this.armDeadline(socket, this.deadlineMs);
    this.o.log('debug', `relay ${this.url.host}: connected (server keepalive ${serverKa} ms)`);
    this.o.onState?.('connected');
  }

  /** One timer per deadline period: re-armed lazily for the time left since the last read. */
  private armDeadline(socket: Socket, ms: number): void {
    this.deadlineTimer = setTimeout(() => {
      if (this.socket !== socket) return;
      const idle = performance.now() - this.lastRead;
      if (idle < this.deadlineMs) return this.armDeadline(socket, this.deadlineMs - idle);
      this.stats.deadlineExpired++;
      this.o.log('warn', `relay ${this.url.host}: silent for ${Math.round(idle)} ms (read deadline ${this.deadlineMs} ms); reconnecting`);
      this.lostSocket(socket, 'read deadline');
    }, Math.max(1, ms));
  }

  private onFrame(f: RelayFrame): void {
    switch (f.type) {
      case 'recv-packet':
        this.stats.received++;
        this.stats.receivedBytes += f.data.length;
        this.o.onPacket(f.key, f.data);
        return;
      case 'keepalive':
        return;
      case 'pong': {
        const id = Buffer.from(f.data).toString('hex');
        const p = this.pings.get(id);
        if (!p) return;
        this.pings.delete(id);
        clearTimeout(p.timer);
        p.resolve(performance.now() - p.start);
        return;
      }
      case 'ping':
        this.socket?.write(encodeRelayFrame({ type: 'pong', data: f.data }));
        return;
      case 'peer-gone':
        this.stats.peerGone++;
        this.o.onPeerGone?.(Uint8Array.from(f.key), f.reason);
        return;
      case 'health':
        if (f.text !== this.health) this.o.log(f.text ? 'warn' : 'info', `relay ${this.url.host}: health: ${f.text || 'ok'}`);
        this.health = f.text;
        return;
      case 'server-refused':
        this.lastError = f.reason;
        this.o.log('warn', `relay ${this.url.host}: the relay ended our session: ${f.reason}`);
        if (this.socket) this.lostSocket(this.socket, `refused: ${f.reason}`);
        return;
      case 'unknown':
        this.stats.unknownFrames++;
        return;
      default:
        // Handshake frames after the handshake: ignore.
        return;
    }
  }

  private lostSocket(socket: Socket, why: string): void {
    if (this.socket !== socket) return;
    this.drop(why);
  }

  /** Tear down the current connection (if any) and, unless stopped, schedule the next attempt. */
  private drop(why: string): void {
    const wasUp = this.isConnected || this.socket !== null || this.abort !== null;
    this.abort?.abort(new Error(why));
    this.abort = null;
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.keepaliveTimer = this.deadlineTimer = null;
    this.socket?.destroy();
    this.socket = null;
    this.isConnected = false;
    for (const p of this.pings.values()) {
      clearTimeout(p.timer);
      p.reject(new Error(`relay ${this.url.host}: ${why}`));
    }
    this.pings.clear();
    if (wasUp) this.o.onState?.('disconnected', why);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.retryTimer) return;
    const delay = backoffDelay(this.attempt++, this.o.backoff ?? DEFAULT_BACKOFF);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
  }
}
