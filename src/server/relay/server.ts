/**
 * warren-relay's HTTPS server: `GET /relay` upgraded to warren-relay/1
 * (relay-protocol.md), one RelayConn per client, and the forwarding between
 * them. A client is served only while its node key is admitted (the control
 * server's list, AdmissionSet); packets go only to a connected key of the
 * same tailnet. A destination that is absent (or in another tailnet — the
 * answer is the same, so nothing leaks) gets the sender a peer-gone, at most
 * once per destination per peerGoneIntervalMs. Each client has a byte-rate
 * token bucket (excess dropped and counted) and a bounded send queue.
 *
 * `GET /` answers 200 (a cheap HTTPS round trip for latency probes).
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { generatePrivateKey, publicKeyOf } from '../../crypto/x25519.js';
import {
  DEFAULT_RELAY_KEEPALIVE_MS, FRAME_TYPE, RELAY_HEADER_LEN, RELAY_PATH, RELAY_UPGRADE_PROTOCOL, encodePacketFrame, encodeRelayFrame,
} from '../../wire/relay-frames.js';
import type { Logger } from '../../util/log.js';
import { RelayConn, type ConnHost } from './conn.js';
import { TokenBucket } from './token-bucket.js';
import { newCounters, summarize, type RelayCounters } from './counters.js';
import type { AdmissionSet } from './admission-set.js';

export interface RelayRateLimit {
  bytesPerSec: number;
  burstBytes: number;
}

/** 16 Mbit/s, 1 MiB burst. */
export const DEFAULT_CLIENT_RATE: RelayRateLimit = { bytesPerSec: 2_000_000, burstBytes: 1 << 20 };
export const DEFAULT_MAX_QUEUE_BYTES = 512 * 1024;
export const DEFAULT_PEER_GONE_INTERVAL_MS = 5_000;

export interface RelayServerOptions {
  host: string;
  port: number;
  tls: { cert: string; key: string };
  admission: AdmissionSet;
  log: Logger;
  /** Keepalive interval; 2× silence closes a client. Default 30 s. */
  keepaliveMs?: number;
  clientRate?: RelayRateLimit;
  /** Unsent bytes a client's socket may hold before packets for it are dropped. */
  maxQueueBytes?: number;
  peerGoneIntervalMs?: number;
  /** Monotonic milliseconds (rate limits, deadlines); default performance.now. */
  now?: () => number;
}

export class RelayServer implements ConnHost {
  readonly counters: RelayCounters = newCounters();
  readonly serverKey: { privateKey: Uint8Array; publicKey: Uint8Array };
  readonly keepaliveMs: number;
  readonly maxQueueBytes: number;
  /** Sessions by node key (latin1 string of the 32 bytes). */
  private readonly clients = new Map<string, RelayConn>();
  /** Upgraded, not yet proven. */
  private readonly pending = new Set<RelayConn>();
  private server: Server | null = null;
  private healthText = '';
  private readonly rate: RelayRateLimit;
  private readonly peerGoneMs: number;
  private readonly unsubscribe: () => void;

  constructor(private readonly o: RelayServerOptions) {
    const priv = generatePrivateKey();
    this.serverKey = { privateKey: priv, publicKey: publicKeyOf(priv) };
    this.keepaliveMs = o.keepaliveMs ?? DEFAULT_RELAY_KEEPALIVE_MS;
    this.maxQueueBytes = o.maxQueueBytes ?? DEFAULT_MAX_QUEUE_BYTES;
    this.rate = o.clientRate ?? DEFAULT_CLIENT_RATE;
    this.peerGoneMs = o.peerGoneIntervalMs ?? DEFAULT_PEER_GONE_INTERVAL_MS;
    this.unsubscribe = o.admission.onRevoke((keys) => this.revoke(keys));
  }

  now(): number {
    return this.o.now ? this.o.now() : performance.now();
  }

  log(level: 'info' | 'debug' | 'warn', msg: string): void {
    this.o.log(level, msg);
  }

  /** Connected (proven) clients. */
  get clientCount(): number {
    return this.clients.size;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  /** Whether `keyB64` has a session here now. */
  isConnected(keyB64: string): boolean {
    return this.clients.has(Buffer.from(keyB64, 'base64').toString('latin1'));
  }

  summary(): string {
    const m = process.memoryUsage();
    return `clients=${this.clients.size} pending=${this.pending.size} admitted=${this.o.admission.size} ` +
      `rss=${(m.rss / 1048576).toFixed(1)}MiB heap=${(m.heapUsed / 1048576).toFixed(1)}MiB ${summarize(this.counters)}`;
  }

  async start(): Promise<number> {
    const srv = createServer({ cert: this.o.tls.cert, key: this.o.tls.key, requestTimeout: 30_000, headersTimeout: 15_000, handshakeTimeout: 10_000 });
    srv.on('request', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res));
    srv.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.onUpgrade(req, socket, head));
    srv.on('tlsClientError', () => { /* scanners, probes, clients checking the pin */ });
    srv.on('clientError', (_e: Error, socket: Socket) => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(this.o.port, this.o.host, () => {
        srv.off('error', reject);
        resolve();
      });
    });
    this.server = srv;
    const addr = srv.address();
    return typeof addr === 'object' && addr ? addr.port : this.o.port;
  }

  async stop(): Promise<void> {
    this.unsubscribe();
    for (const c of [...this.clients.values(), ...this.pending]) c.close();
    await new Promise<void>((resolve) => {
      if (!this.server) return resolve();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    this.server = null;
  }

  /**
   * Tell every client about the relay's health ('' = fine), e.g. that it is
   * running on a stale admission list while control is unreachable.
   */
  setHealth(text: string): void {
    if (text === this.healthText) return;
    this.healthText = text;
    const f = encodeRelayFrame({ type: 'health', text });
    for (const c of this.clients.values()) c.write(f);
  }

  // ------------------------------------------------------------ HTTP

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    const [status, body] = path === '/' ? [200, 'warren-relay\n']
      : path === RELAY_PATH ? [426, `${RELAY_PATH} needs "Connection: Upgrade" and "Upgrade: ${RELAY_UPGRADE_PROTOCOL}"\n`]
        : [404, 'not found\n'];
    res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), ...(status === 426 ? { upgrade: RELAY_UPGRADE_PROTOCOL } : {}) });
    res.end(body);
    req.resume();
  }

  private onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const path = (req.url ?? '/').split('?')[0];
    const proto = (req.headers.upgrade ?? '').toLowerCase();
    if (path !== RELAY_PATH || proto !== RELAY_UPGRADE_PROTOCOL) {
      this.counters.badUpgrades++;
      const body = `only ${RELAY_PATH} upgrades, to ${RELAY_UPGRADE_PROTOCOL}\n`;
      socket.end(`HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
      return;
    }
    this.counters.upgrades++;
    const c = new RelayConn(socket, `${req.socket.remoteAddress}:${req.socket.remotePort}`, this);
    this.pending.add(c);
    socket.write(Buffer.concat([
      Buffer.from(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${RELAY_UPGRADE_PROTOCOL}\r\n\r\n`),
      c.challengeFrame(),
    ]));
    if (head.length) socket.unshift(head);
  }

  // ------------------------------------------------------------ ConnHost

  admit(keyB64: string): { tailnet: string } | { refused: string } {
    const a = this.o.admission;
    const tailnet = a.tailnetOf(keyB64);
    if (tailnet !== undefined) return { tailnet };
    return { refused: a.loaded ? 'this node key is not admitted: not a current node known to the control server (deleted, expired, or never registered)'
      : 'the relay has no admission list from the control server yet; try again later' };
  }

  newBucket(): TokenBucket {
    return new TokenBucket(this.rate.bytesPerSec, this.rate.burstBytes, this.now());
  }

  established(c: RelayConn): void {
    this.pending.delete(c);
    const old = this.clients.get(c.keyBin);
    this.clients.set(c.keyBin, c);
    if (old && old !== c) old.refuse('replaced by a newer connection with the same node key', 'replaced');
    this.counters.sessions++;
    if (this.healthText) c.write(encodeRelayFrame({ type: 'health', text: this.healthText }));
    this.o.log('debug', `relay client ${c.remote}: session for ${c.keyB64} (tailnet ${c.tailnet})`);
  }

  closed(c: RelayConn): void {
    this.pending.delete(c);
    if (c.keyBin && this.clients.get(c.keyBin) === c) this.clients.delete(c.keyBin);
  }

  /** The packet path: no logging, no promises; drop and count. */
  forward(src: RelayConn, dstKey: Uint8Array, data: Uint8Array): void {
    const now = this.now();
    if (!src.bucket!.take(data.length + RELAY_HEADER_LEN + 32, now)) {
      this.counters.droppedRateLimit++;
      return;
    }
    const k = Buffer.from(dstKey.buffer, dstKey.byteOffset, dstKey.length).toString('latin1');
    const dst = this.clients.get(k);
    if (!dst || dst.tailnet !== src.tailnet) {
      if (dst) this.counters.droppedOtherTailnet++;
      else this.counters.droppedNoPeer++;
      this.peerGone(src, k, dstKey, now);
      return;
    }
    if (!dst.write(encodePacketFrame(FRAME_TYPE['recv-packet'], src.key!, data))) {
      dst.queueDrops++;
      this.counters.droppedQueueFull++;
      return;
    }
    this.counters.packetsForwarded++;
    this.counters.bytesForwarded += data.length;
  }

  private peerGone(src: RelayConn, k: string, dstKey: Uint8Array, now: number): void {
    const seen = (src.peerGoneAt ??= new Map());
    const last = seen.get(k);
    if (last !== undefined && now - last < this.peerGoneMs) return;
    if (seen.size >= 1024) seen.clear();
    seen.set(k, now);
    if (src.write(encodeRelayFrame({ type: 'peer-gone', key: dstKey, reason: 'not connected to this relay' }))) this.counters.peerGoneSent++;
  }

  /** Control no longer admits these keys (base64): cut their sessions now. */
  private revoke(keys: string[]): void {
    for (const k of keys) {
      const c = this.clients.get(Buffer.from(k, 'base64').toString('latin1'));
      if (c) c.refuse('this node key is no longer admitted (the node was deleted or expired, or rotated its key)', 'revoked');
    }
  }
}
