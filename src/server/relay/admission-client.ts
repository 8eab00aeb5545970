/**
 * The relay's admission stream to the control server (relay-protocol.md,
 * "Admission"): `GET /relay/v1/admission` upgraded to
 * warren-relay-admission/1, authenticated by the shared relay secret as a
 * bearer token, over TLS pinned to the control server's certificate (or
 * verified against the system CAs). It fills an AdmissionSet from the full
 * list and patches it with deltas; keepalives both ways and a read deadline
 * of 2× control's interval notice a dead stream. While control is
 * unreachable it reconnects with backoff and the set keeps its last contents:
 * connected clients stay, new clients are checked against that list.
 */
import type { Socket } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import { encodeFrame, FrameDecoder } from '../../wire/control-frames.js';
import { parseOr400 } from '../../wire/control.js';
import { ADMISSION_PATH, ADMISSION_UPGRADE_PROTOCOL, AdmissionServerFrame, type AdmittedNode } from '../../wire/relay-admission.js';
import { PinnedTls } from '../../control/pinned-tls.js';
import { backoffDelay, httpsUpgrade, UpgradeRefusedError } from '../../util/https-upgrade.js';
import type { Logger } from '../../util/log.js';
import type { AdmissionSet } from './admission-set.js';

export interface AdmissionClientOptions {
  /** The control server, https://host:port. */
  url: string;
  /** Its certificate's SHA-256 pin, or null for a CA-signed certificate. */
  fingerprint: string | null;
  secret: Uint8Array;
  set: AdmissionSet;
  log: Logger;
  /** Called when the stream comes up or goes down (the relay turns it into a health text). */
  onState?(connected: boolean, detail: string): void;
  backoff?: { minMs: number; maxMs: number };
  connectTimeoutMs?: number;
}

export class AdmissionClient {
  connected = false;
  lastError: string | null = null;
  private readonly url: URL;
  private readonly pinned: PinnedTls | null;
  private stopped = true;
  private socket: Socket | null = null;
  private retry: NodeJS.Timeout | null = null;
  private keepalive: NodeJS.Timeout | null = null;
  private deadline: NodeJS.Timeout | null = null;
  private attempt = 0;
  /** Pages of a full list being received. */
  private pages: AdmittedNode[] | null = null;

  constructor(private readonly o: AdmissionClientOptions) {
    this.url = new URL(ADMISSION_PATH, o.url);
    if (this.url.protocol !== 'https:') throw new TypeError(`the control URL must be https://host[:port], got ${o.url}`);
    this.pinned = o.fingerprint ? new PinnedTls({ fingerprint: o.fingerprint }) : null;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    this.teardown();
  }

  private connect(): void {
    if (this.stopped) return;
    void this.open().catch((err: Error) => {
      this.lastError = err.message;
      this.o.log('warn', `admission stream to ${this.url.origin}: ${err.message}`);
      this.down(err.message);
    });
  }

  private async open(): Promise<void> {
    const host = this.url.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = Number(this.url.port || 443);
    const socket = this.pinned ? await this.pinned.withPin(host, port, (tls) => this.upgrade(tls)) : await this.upgrade({});
    if (this.stopped) {
      socket.destroy();
      return;
    }
    this.socket = socket;
    this.pages = null;
    const decoder = new FrameDecoder();
    socket.on('data', (chunk: Buffer) => {
      if (this.socket !== socket) return;
      let frames: unknown[];
      try {
        frames = decoder.push(chunk);
      } catch (err) {
        this.o.log('warn', `admission stream: ${(err as Error).message}; reconnecting`);
        return this.down((err as Error).message);
      }
      for (const f of frames) if (this.socket === socket) this.onFrame(f);
    });
    socket.on('error', (err) => this.o.log('debug', `admission stream: ${err.message}`));
    socket.on('close', () => {
      if (this.socket === socket) this.down('the control server closed the admission stream');
    });
    this.armDeadline(60_000);
  }

  private async upgrade(tls: ConnectionOptions): Promise<Socket> {
    try {
      return await httpsUpgrade({
        host: this.url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(this.url.port || 443), path: this.url.pathname,
        protocol: ADMISSION_UPGRADE_PROTOCOL, tls, timeoutMs: this.o.connectTimeoutMs,
        headers: { authorization: `Bearer ${Buffer.from(this.o.secret).toString('latin1')}` },
      });
    } catch (e) {
      if (!(e instanceof UpgradeRefusedError)) throw e;
      throw new Error(e.status === 401 ? `the control server refused our relay secret (HTTP 401: ${e.reason})` : `HTTP ${e.status}: ${e.reason}`);
    }
  }

  private onFrame(raw: unknown): void {
    const p = parseOr400(AdmissionServerFrame, raw);
    if (!p.ok) {
      this.o.log('warn', `admission stream: malformed frame (${p.error}); reconnecting`);
      return this.down('malformed frame');
    }
    const f = p.value;
    this.armDeadline(this.deadlineMs);
    if (f.type === 'keepalive') return;
    if (f.type === 'delta') {
      if (this.pages !== null || !this.o.set.loaded) return this.down('delta before the full list');
      this.o.set.apply(f.add, f.remove);
      return;
    }
    // full (first on every stream): control's keepalive interval, then pages until `final`.
    this.setKeepalive(f.keepaliveMs);
    (this.pages ??= []).push(...f.nodes);
    if (!f.final) return;
    const nodes = this.pages;
    this.pages = null;
    this.o.set.replace(nodes);
    if (!this.connected) {
      this.connected = true;
      this.attempt = 0;
      this.lastError = null;
      this.o.log('info', `admission stream to ${this.url.origin} up: ${nodes.length} admitted node keys`);
      this.o.onState?.(true, `${nodes.length} admitted node keys`);
    }
  }

  private kaMs = 30_000;

  private get deadlineMs(): number {
    return 2 * this.kaMs;
  }

  private setKeepalive(ms: number): void {
    this.kaMs = ms;
    if (this.keepalive) clearInterval(this.keepalive);
    const socket = this.socket;
    this.keepalive = setInterval(() => {
      if (socket && this.socket === socket) socket.write(encodeFrame({ type: 'keepalive' }));
    }, ms);
  }

  private armDeadline(ms: number): void {
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = setTimeout(() => {
      this.o.log('warn', `admission stream silent for ${ms / 1000} s: reconnecting (keeping the last list of ${this.o.set.size} node keys)`);
      this.down('read deadline');
    }, ms);
  }

  private teardown(): void {
    if (this.keepalive) clearInterval(this.keepalive);
    if (this.deadline) clearTimeout(this.deadline);
    this.keepalive = this.deadline = null;
    this.socket?.destroy();
    this.socket = null;
    this.pages = null;
  }

  private down(why: string): void {
    this.teardown();
    if (this.connected) {
      this.connected = false;
      this.o.log('warn', `admission stream down (${why}); serving from the last list of ${this.o.set.size} node keys`);
      this.o.onState?.(false, why);
    }
    this.lastError = why;
    if (this.stopped || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = null;
      this.connect();
    }, backoffDelay(this.attempt++, this.o.backoff ?? { minMs: 1000, maxMs: 30_000 }));
  }
}
