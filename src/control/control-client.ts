/**
 * The node's control client: registration (auth key + possession proofs),
 * node-key rotation, and the long-lived map stream — full netmap, then
 * versioned deltas — with keepalives both ways, a read deadline of twice the
 * keepalive interval (a half-open connection is noticed), reconnection with
 * exponential backoff and jitter, replicas tried in turn, and pinned TLS for a
 * self-signed server. It hands whole netmaps to its owner; it never touches the
 * data plane itself.
 */
import { request as httpsRequest } from 'node:https';
import type { ClientRequest, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import {
  makeProof, ChallengeResponse, RegisterResponse, RotateResponse, ServerFrame, parseOr400, matches, type Schema,
  type Netmap, type Change, type JsonValue,
} from '../wire/control.js';
import { encodeFrame, FrameDecoder } from '../wire/control-frames.js';
import { PinnedTls, isPinFailure } from './pinned-tls.js';
import type { NodeState, Registration } from './node-state.js';
import type { Logger } from '../util/log.js';

export class ControlError extends Error {
  constructor(readonly code: string, message: string, readonly status = 0, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ControlError';
  }
}

export interface ControlClientOptions {
  servers: string[];
  fingerprint: string | null;
  state: NodeState;
  hostname: string;
  endpoints: () => string[];
  /** What NAT traversal knows (home relay region, …): sent inside hostinfo as `netinfo`. */
  netinfo?: () => { [key: string]: JsonValue };
  log: Logger;
  onNetmap: (netmap: Netmap, version: number) => void;
  /** The server ended this node (deleted, key expired): stop using the netmap. */
  onFatal: (code: string, message: string) => void;
  backoffMinMs?: number;
  backoffMaxMs?: number;
  connectTimeoutMs?: number;
}

const b64 = (k: Uint8Array): string => Buffer.from(k).toString('base64');
const UPGRADE = 'warren-control/1';

export class ControlClient {
  private pinned: PinnedTls | null;
  private stopped = true;
  private socket: Socket | null = null;
  private req: ClientRequest | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private keepaliveTimer: NodeJS.Timeout | null = null;
  private deadlineTimer: NodeJS.Timeout | null = null;
  private attempt = 0;
  private serverIdx = 0;
  private netmap: Netmap | null = null;
  private version: number | null = null;
  private keepaliveMs = 30_000;
  connected = false;
  lastError: string | null = null;
  /** ControlError code of the last failure ('pin_mismatch', 'unreachable', ...). */
  lastErrorCode: string | null = null;

  constructor(private readonly opts: ControlClientOptions) {
    this.pinned = opts.fingerprint ? new PinnedTls({ fingerprint: opts.fingerprint, cacheFile: opts.state.pinnedCertPath() }) : null;
    const cached = opts.state.netmap();
    if (cached) {
      this.netmap = cached.netmap as Netmap;
      this.version = cached.version;
    }
  }

  // ------------------------------------------------------------ HTTPS

  private async tlsOptions(url: URL): Promise<ConnectionOptions> {
    if (!this.pinned) return {};
    return this.pinned.connectOptions(url.hostname, Number(url.port || 443));
  }

  private async json<T>(server: string, method: 'GET' | 'POST', path: string, body: unknown, schema: Schema<T>): Promise<T> {
    const url = new URL(path, server);
    let tls: ConnectionOptions;
    try {
      tls = await this.tlsOptions(url);
    } catch (err) {
      throw new ControlError((err as { code?: string }).code === 'EPIN' ? 'pin_mismatch' : 'unreachable', (err as Error).message, 0, { cause: err });
    }
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise<T>((resolve, reject) => {
      const req = httpsRequest(url, {
        method, ...tls, timeout: this.opts.connectTimeoutMs ?? 15_000,
        headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {},
      }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > 4 << 20) req.destroy(new Error('response too large'));
          else chunks.push(c);
        });
        res.on('end', () => {
          let v: unknown;
          try {
            v = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            return reject(new ControlError('bad_response', `${url.origin} answered ${res.statusCode} with something that is not JSON`, res.statusCode));
          }
          if ((res.statusCode ?? 500) >= 400) {
            const e = v as { error?: string; code?: string };
            return reject(new ControlError(e.code ?? 'http_error', e.error ?? `HTTP ${res.statusCode}`, res.statusCode));
          }
          if (!matches(schema, v)) return reject(new ControlError('bad_response', `${url.origin}${path}: malformed answer`, res.statusCode));
          resolve(v as T);
        });
      });
      req.on('timeout', () => req.destroy(new Error(`no answer from ${url.origin} within ${(this.opts.connectTimeoutMs ?? 15_000) / 1000} s`)));
      req.on('error', (err) => {
        void this.explainTlsError(url, err).then(reject, reject);
      });
      req.end(payload);
    });
  }

  /** Turn a failed pinned handshake into the clear pin-mismatch error when that is what it was. */
  private async explainTlsError(url: URL, err: Error): Promise<ControlError> {
    if (this.pinned && isPinFailure(err)) {
      try {
        await this.pinned.verifyServer(url.hostname, Number(url.port || 443));
      } catch (e) {
        return new ControlError('pin_mismatch', (e as Error).message, 0, { cause: e });
      }
    }
    return new ControlError('unreachable', `cannot reach ${url.origin}: ${err.message}`, 0, { cause: err });
  }

  private async challenge(server: string): Promise<ChallengeResponse> {
    return this.json<ChallengeResponse>(server, 'GET', '/v1/challenge', undefined, ChallengeResponse);
  }

  /** Try each server in turn; the first definite answer (success or a 4xx) wins. */
  private async eachServer<T>(fn: (server: string) => Promise<T>): Promise<T> {
    let last: unknown;
    for (let i = 0; i < this.opts.servers.length; i++) {
      const server = this.opts.servers[(this.serverIdx + i) % this.opts.servers.length]!;
      try {
        const r = await fn(server);
        this.serverIdx = (this.serverIdx + i) % this.opts.servers.length;
        return r;
      } catch (err) {
        last = err;
        if (err instanceof ControlError && err.status >= 400 && err.status < 500) throw err;
        if (err instanceof ControlError && err.code === 'pin_mismatch') throw err;
      }
    }
    throw last;
  }

  async register(authKey: string): Promise<Registration> {
    const st = this.opts.state;
    const machine = st.machineKey(), node = st.nodeKey(), disco = st.discoKey();
    return this.eachServer(async (server) => {
      const ch = await this.challenge(server);
      const serverKey = new Uint8Array(Buffer.from(ch.serverKey, 'base64'));
      const nonce = new Uint8Array(Buffer.from(ch.nonce, 'base64'));
      const r = await this.json<RegisterResponse>(server, 'POST', '/v1/register', {
        machine: makeProof('machine:register', nonce, serverKey, machine.privateKey, machine.publicKey),
        node: makeProof('node:register', nonce, serverKey, node.privateKey, node.publicKey),
        discoKey: b64(disco.publicKey), authKey, hostname: this.opts.hostname,
      }, RegisterResponse);
      return { nodeId: r.nodeId, name: r.name, addresses: r.addresses, keyExpiry: r.keyExpiry, tags: r.tags, server };
    });
  }

  /** Replace the node key, proving the machine key; identity and addresses stay. */
  async rotateNodeKey(): Promise<void> {
    const st = this.opts.state;
    const machine = st.machineKey(), disco = st.discoKey();
    const next = st.rotateNodeKey();
    await this.eachServer(async (server) => {
      const ch = await this.challenge(server);
      const serverKey = new Uint8Array(Buffer.from(ch.serverKey, 'base64'));
      const nonce = new Uint8Array(Buffer.from(ch.nonce, 'base64'));
      return this.json<RotateResponse>(server, 'POST', '/v1/rotate', {
        machine: makeProof('machine:rotate', nonce, serverKey, machine.privateKey, machine.publicKey),
        newNode: makeProof('node:rotate', nonce, serverKey, next.privateKey, next.publicKey),
        discoKey: b64(disco.publicKey),
      }, RotateResponse);
    });
    st.commitRotation();
    // closeStream() detaches the socket first, so its 'close' handler will not
    // reconnect: do it here, or the node stays off control after a rotation.
    this.closeStream('node key rotated');
    this.scheduleReconnect();
  }

  // ------------------------------------------------------- map stream

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.closeStream('stopping');
  }

  /** Our endpoints changed: tell the server now (and on every reconnect). */
  sendEndpoints(): void {
    this.send({ type: 'endpoints', endpoints: this.opts.endpoints() });
  }

  /** Our host info (netinfo: home relay region) changed: tell the server now. */
  sendHostinfo(): void {
    this.send({ type: 'hostinfo', hostinfo: this.hostinfo() });
  }

  private hostinfo(): { [key: string]: JsonValue } {
    const hi: { [key: string]: JsonValue } = { hostname: this.opts.hostname, os: process.platform, warren: '0.1.0' };
    if (this.opts.netinfo) hi['netinfo'] = this.opts.netinfo();
    return hi;
  }

  private send(frame: unknown): void {
    if (this.socket && this.connected) this.socket.write(encodeFrame(frame));
  }

  private closeStream(why: string): void {
    this.clearTimers();
    this.req?.destroy();
    this.req = null;
    if (this.socket) {
      this.socket.destroy();
      this.opts.log('debug', `control stream closed: ${why}`);
    }
    this.socket = null;
    this.connected = false;
  }

  private clearTimers(): void {
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.keepaliveTimer = this.deadlineTimer = null;
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.retryTimer) return;
    const min = this.opts.backoffMinMs ?? 1_000, max = this.opts.backoffMaxMs ?? 30_000;
    const base = Math.min(max, min * 2 ** Math.min(this.attempt, 10));
    const delay = base / 2 + Math.random() * (base / 2);
    this.attempt++;
    this.serverIdx = (this.serverIdx + 1) % this.opts.servers.length;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
  }

  private armDeadline(): void {
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = setTimeout(() => {
      this.opts.log('warn', `control stream silent for ${(2 * this.keepaliveMs) / 1000} s: reconnecting`);
      this.lastError = 'control stream went silent';
      this.closeStream('read deadline');
      this.scheduleReconnect();
    }, 2 * this.keepaliveMs);
  }

  private connect(): void {
    if (this.stopped) return;
    const server = this.opts.servers[this.serverIdx % this.opts.servers.length]!;
    void this.openStream(server).catch((err: Error) => {
      this.lastError = err.message;
      this.lastErrorCode = err instanceof ControlError ? err.code : 'unreachable';
      this.opts.log('warn', `control: ${err.message}`);
      this.closeStream('connect failed');
      this.scheduleReconnect();
    });
  }

  private async openStream(server: string): Promise<void> {
    const st = this.opts.state;
    const machine = st.machineKey(), node = st.nodeKey();
    const ch = await this.challenge(server);
    if (this.stopped) return;
    const serverKey = new Uint8Array(Buffer.from(ch.serverKey, 'base64'));
    const nonce = new Uint8Array(Buffer.from(ch.nonce, 'base64'));
    const url = new URL('/v1/map', server);
    const tls = await this.tlsOptions(url);
    await new Promise<void>((resolve, reject) => {
      const req = httpsRequest(url, {
        ...tls, method: 'GET', timeout: this.opts.connectTimeoutMs ?? 15_000,
        headers: { connection: 'Upgrade', upgrade: UPGRADE },
      });
      this.req = req;
      req.on('timeout', () => req.destroy(new Error(`no answer from ${url.origin}`)));
      req.on('error', (err) => void this.explainTlsError(url, err).then(reject, reject));
      req.on('response', (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let msg = `HTTP ${res.statusCode}`;
          try {
            msg = (JSON.parse(Buffer.concat(chunks).toString()) as { error?: string }).error ?? msg;
          } catch { /* keep the status */ }
          reject(new ControlError('upgrade_refused', `${url.origin} refused the map stream: ${msg}`, res.statusCode));
        });
      });
      req.on('upgrade', (_res, socket: Socket, head: Buffer) => {
        req.setTimeout(0);
        socket.setTimeout(0);
        socket.setNoDelay(true);
        this.socket = socket;
        this.connected = true;
        const decoder = new FrameDecoder();
        const onData = (chunk: Buffer): void => {
          let frames: unknown[];
          try {
            frames = decoder.push(chunk);
          } catch (err) {
            this.opts.log('warn', `control stream: ${(err as Error).message}`);
            socket.destroy();
            return;
          }
          for (const f of frames) this.onFrame(f);
        };
        socket.on('data', onData);
        socket.on('error', (err) => this.opts.log('debug', `control stream error: ${err.message}`));
        socket.on('close', () => {
          if (this.socket === socket) {
            this.connected = false;
            this.socket = null;
            this.clearTimers();
            this.scheduleReconnect();
          }
        });
        socket.write(encodeFrame({
          type: 'hello',
          machine: makeProof('machine:map', nonce, serverKey, machine.privateKey, machine.publicKey),
          nodeKey: b64(node.publicKey),
          version: this.version,
          endpoints: this.opts.endpoints(),
          hostinfo: this.hostinfo(),
        }));
        this.armDeadline();
        this.keepaliveTimer = setInterval(() => this.send({ type: 'keepalive' }), this.keepaliveMs);
        if (head.length) onData(head);
        resolve();
      });
      req.end();
    });
  }

  private onFrame(raw: unknown): void {
    const p = parseOr400(ServerFrame, raw);
    if (!p.ok) {
      this.opts.log('warn', `control stream: ignoring a malformed frame (${p.error})`);
      return;
    }
    this.armDeadline();
    const f = p.value;
    if (f.type === 'keepalive') return;
    if (f.type === 'error') {
      this.lastError = f.error;
      this.opts.log('warn', `control server: ${f.error} (${f.code})`);
      if (f.code === 'node_deleted' || f.code === 'key_expired' || f.code === 'unknown_node') {
        this.stopped = true;
        this.closeStream(f.code);
        this.opts.onFatal(f.code, f.error);
      }
      return;
    }
    if (f.type === 'full') this.netmap = f.netmap;
    else if (f.type === 'delta') {
      if (!this.netmap) {
        this.opts.log('warn', 'control stream: delta without a netmap; reconnecting for a full map');
        this.version = null;
        this.closeStream('delta without base');
        this.scheduleReconnect();
        return;
      }
      this.netmap = applyChanges(this.netmap, f.changes);
    }
    this.version = f.version;
    this.attempt = 0;
    this.lastError = null;
    this.lastErrorCode = null;
    const ka = this.netmap!.keepaliveMs;
    if (ka && ka !== this.keepaliveMs) {
      this.keepaliveMs = ka;
      if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
      this.keepaliveTimer = setInterval(() => this.send({ type: 'keepalive' }), this.keepaliveMs);
      this.armDeadline();
    }
    this.opts.state.setNetmap({ version: f.version, netmap: this.netmap });
    this.opts.onNetmap(this.netmap!, f.version);
  }

  get currentNetmap(): Netmap | null {
    return this.netmap;
  }

  get currentVersion(): number | null {
    return this.version;
  }
}

/** Apply a delta's changes to a netmap (returns a new object; the old one is never mutated). */
export function applyChanges(nm: Netmap, changes: Change[]): Netmap {
  let peers = nm.peers.slice();
  let self = nm.self;
  for (const c of changes) {
    if (c.op === 'self') self = c.node;
    else if (c.op === 'remove') peers = peers.filter((p) => p.id !== c.id);
    else if (c.op === 'upsert') {
      if (c.node.id === self.id) self = c.node;
      else {
        const i = peers.findIndex((p) => p.id === c.node.id);
        if (i >= 0) peers[i] = c.node;
        else peers.push(c.node);
      }
    }
  }
  return { ...nm, self, peers };
}
