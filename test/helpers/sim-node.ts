/**
 * A simulated tailnet node for scale and hostile-input tests: a client of the
 * control API with no TUN and no data plane. It holds its machine, node and
 * disco keys in memory, registers (challenge, then proofs made with
 * `makeProof`), opens the map stream (HTTPS upgrade to warren-control/1, hello
 * frame, FrameDecoder), applies full and delta frames to a local netmap with
 * the real client's `applyChanges`, answers keepalives, and can send endpoints
 * or anything else (raw bytes, arbitrary frames) for tests that misbehave.
 *
 * TLS: the server's certificate PEM is the only CA, and the leaf's SHA-256
 * must equal the given fingerprint — the same pinning the node does, without
 * a state directory.
 *
 * Every byte of every frame received is counted by frame type, so benchmarks
 * can tell delta traffic from full maps and keepalives.
 */
import { Agent, request as httpsRequest, type AgentOptions } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { PeerCertificate } from 'node:tls';
import { generatePrivateKey, publicKeyOf } from '../../src/crypto/x25519.js';
import {
  MAP_UPGRADE_PROTOCOL, ServerFrame, makeProof, parseOr400, toB64,
  type Change, type ChallengeResponse, type Netmap, type Proof, type ProofPurpose, type RegisterResponse,
} from '../../src/wire/control.js';
import { encodeFrame, FrameDecoder, FRAME_HEADER_LEN } from '../../src/wire/control-frames.js';
import { applyChanges } from '../../src/control/control-client.js';
import { normalizeFingerprint } from '../../src/control/pinned-tls.js';
import { join } from 'node:path';
import { ControlServer, type ControlServerOptions } from '../../src/server/control/server.js';
import { SqliteStore } from '../../src/server/control/sqlite-store.js';
import { loadOrCreateServerKey } from '../../src/server/control/challenges.js';
import { loadOrCreateSelfSigned } from '../../src/server/tls-cert.js';
import type { Logger } from '../../src/util/log.js';

export interface KeyPair {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
}

export function keyPair(): KeyPair {
  const privateKey = generatePrivateKey();
  return { privateKey, publicKey: publicKeyOf(privateKey) };
}

/** Where the server is and how to trust it. One per server; SimNodes sharing it share a keep-alive agent. */
export class SimServer {
  readonly url: URL;
  readonly fingerprint: string;
  readonly agent: Agent;

  constructor(url: string, readonly ca: string, fingerprint: string, agentOpts: AgentOptions = {}) {
    this.url = new URL(url);
    this.fingerprint = normalizeFingerprint(fingerprint);
    this.agent = new Agent({ keepAlive: true, maxSockets: 64, ...this.tls(), ...agentOpts });
  }

  /** TLS options: the pinned certificate as the only CA, and its exact fingerprint. */
  tls(): { ca: string[]; rejectUnauthorized: true; checkServerIdentity: (host: string, cert: PeerCertificate) => Error | undefined } {
    const pin = this.fingerprint;
    return {
      ca: [this.ca],
      rejectUnauthorized: true,
      checkServerIdentity: (_host, cert) => {
        const got = cert.fingerprint256 ? normalizeFingerprint(cert.fingerprint256) : '(none)';
        return got === pin ? undefined : new Error(`certificate fingerprint ${got} is not the pinned ${pin}`);
      },
    };
  }

  close(): void {
    this.agent.destroy();
  }
}

export interface HttpAnswer {
  status: number;
  body: unknown;
  text: string;
}

/**
 * One HTTPS request. `body` may be an object (sent as JSON), a string or a
 * Buffer (sent as is). Resolves with the status and the parsed JSON answer
 * (or the raw text when it is not JSON); rejects only on transport failure.
 * A kept-alive connection the server closed just as it was reused is retried
 * once on a fresh one (the server never saw the request).
 */
export async function httpJson(
  srv: SimServer,
  method: string,
  path: string,
  body?: unknown,
  opts: { headers?: Record<string, string | number>; timeoutMs?: number; chunked?: boolean; fresh?: boolean } = {},
): Promise<HttpAnswer> {
  try {
    return await httpOnce(srv, method, path, body, opts);
  } catch (err) {
    if (!(err as { reused?: boolean }).reused) throw err;
    return httpOnce(srv, method, path, body, { ...opts, fresh: true });
  }
}

function httpOnce(
  srv: SimServer,
  method: string,
  path: string,
  body?: unknown,
  opts: { headers?: Record<string, string | number>; timeoutMs?: number; chunked?: boolean; fresh?: boolean } = {},
): Promise<HttpAnswer> {
  const payload = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  const headers: Record<string, string | number> = { ...(payload ? { 'content-type': 'application/json' } : {}), ...opts.headers };
  if (payload && !opts.chunked && headers['content-length'] === undefined) headers['content-length'] = payload.length;
  return new Promise((resolve, reject) => {
    const req = httpsRequest(new URL(path, srv.url), {
      method, headers, ...(opts.fresh ? { agent: false, ...srv.tls() } : { agent: srv.agent }), timeout: opts.timeoutMs ?? 15_000,
    }, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch { /* keep the text */ }
        resolve({ status: res.statusCode ?? 0, body: parsed, text });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within ${opts.timeoutMs ?? 15_000} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      const e = Object.assign(new Error(`${method} ${path}: ${err.message}`, { cause: err }), { reused: req.reusedSocket && err.code === 'ECONNRESET' });
      reject(e);
    });
    if (payload && opts.chunked) {
      // Several writes without a content-length: chunked transfer encoding.
      for (let off = 0; off < payload.length; off += 16 * 1024) req.write(payload.subarray(off, off + 16 * 1024));
      req.end();
    } else req.end(payload);
  });
}

export interface Challenge {
  serverKey: Uint8Array;
  nonce: Uint8Array;
}

export async function fetchChallenge(srv: SimServer): Promise<Challenge> {
  const r = await httpJson(srv, 'GET', '/v1/challenge');
  if (r.status !== 200) throw new Error(`GET /v1/challenge: HTTP ${r.status} ${r.text}`);
  const c = r.body as ChallengeResponse;
  return { serverKey: new Uint8Array(Buffer.from(c.serverKey, 'base64')), nonce: new Uint8Array(Buffer.from(c.nonce, 'base64')) };
}

export function proof(purpose: ProofPurpose, ch: Challenge, key: KeyPair): Proof {
  return makeProof(purpose, ch.nonce, ch.serverKey, key.privateKey, key.publicKey);
}

/** Frame counters by type: how many, and their bytes on the wire (header included). */
export interface FrameStats {
  frames: Record<'full' | 'delta' | 'keepalive' | 'error' | 'other', number>;
  bytes: Record<'full' | 'delta' | 'keepalive' | 'error' | 'other', number>;
  /** All bytes read from the stream after the upgrade (TLS plaintext). */
  total: number;
}

const emptyStats = (): FrameStats => ({
  frames: { full: 0, delta: 0, keepalive: 0, error: 0, other: 0 },
  bytes: { full: 0, delta: 0, keepalive: 0, error: 0, other: 0 },
  total: 0,
});

export interface SimNodeOptions {
  hostname: string;
  authKey?: string;
  endpoints?: string[];
  hostinfo?: Record<string, unknown>;
  /** Validate each server frame with the protocol's schema (default true; the bench turns it off for speed). */
  validate?: boolean;
  /** Reply to every server keepalive with one (default true). */
  answerKeepalives?: boolean;
  machine?: KeyPair;
  node?: KeyPair;
  disco?: KeyPair;
}

export class SimNode {
  readonly machine: KeyPair;
  node: KeyPair;
  readonly disco: KeyPair;
  registration: RegisterResponse | null = null;
  netmap: Netmap | null = null;
  version: number | null = null;
  /** Error frames received, newest last. */
  readonly errors: Array<{ code: string; error: string }> = [];
  /** Problems on our side: malformed frames, a delta without a base. */
  readonly problems: string[] = [];
  stats: FrameStats = emptyStats();
  /** Frame types in arrival order (capped), for tests that look at the sequence. */
  readonly history: Array<{ type: string; version?: number }> = [];
  socket: Socket | null = null;
  closed = true;
  /** Called after every applied full or delta frame. */
  onUpdate: ((n: SimNode) => void) | null = null;
  private decoder = new FrameDecoder();
  private readonly sizer = new FrameSizer();
  private waiters = new Set<() => void>();

  constructor(readonly srv: SimServer, readonly o: SimNodeOptions) {
    this.machine = o.machine ?? keyPair();
    this.node = o.node ?? keyPair();
    this.disco = o.disco ?? keyPair();
  }

  get nodeKey(): string {
    return toB64(this.node.publicKey);
  }

  get machineKey(): string {
    return toB64(this.machine.publicKey);
  }

  /** The register request body for a challenge (exposed so tests can replay or tamper with it). */
  registerBody(ch: Challenge, authKey = this.o.authKey ?? ''): Record<string, unknown> {
    return {
      machine: proof('machine:register', ch, this.machine),
      node: proof('node:register', ch, this.node),
      discoKey: toB64(this.disco.publicKey),
      authKey,
      hostname: this.o.hostname,
    };
  }

  /** Register (challenge + proofs); throws with the server's message on refusal. */
  async register(authKey?: string): Promise<RegisterResponse> {
    const ch = await fetchChallenge(this.srv);
    const r = await httpJson(this.srv, 'POST', '/v1/register', this.registerBody(ch, authKey));
    if (r.status !== 200) throw new Error(`register ${this.o.hostname}: HTTP ${r.status} ${r.text}`);
    this.registration = r.body as RegisterResponse;
    return this.registration;
  }

  /** The hello frame for a challenge. */
  helloFrame(ch: Challenge, version: number | null = this.version): Record<string, unknown> {
    return {
      type: 'hello',
      machine: proof('machine:map', ch, this.machine),
      nodeKey: this.nodeKey,
      version,
      endpoints: this.o.endpoints ?? [],
      hostinfo: this.o.hostinfo ?? { hostname: this.o.hostname, os: 'sim' },
    };
  }

  /**
   * Open the map stream: the upgrade, then `hello` (a fresh challenge's
   * proof) unless `hello: false`. Resolves once the stream is upgraded, not
   * when the first map arrives (use waitFor).
   */
  async connect(opts: { hello?: boolean | Record<string, unknown>; headers?: Record<string, string> } = {}): Promise<Socket> {
    const hello = opts.hello ?? true;
    const frame = hello === true ? this.helloFrame(await fetchChallenge(this.srv)) : hello === false ? null : hello;
    const socket = await openMapStream(this.srv, opts.headers);
    this.attach(socket);
    if (frame) socket.write(encodeFrame(frame));
    return socket;
  }

  private attach(socket: Socket): void {
    this.socket = socket;
    this.closed = false;
    this.decoder = new FrameDecoder();
    this.sizer.reset();
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (this.socket === socket) {
        this.closed = true;
        this.notify();
      }
    });
  }

  private onData(chunk: Buffer): void {
    this.stats.total += chunk.length;
    this.sizer.push(chunk);
    let frames: unknown[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.problems.push(`framing: ${(err as Error).message}`);
      this.socket?.destroy();
      return;
    }
    for (const raw of frames) this.onFrame(raw, this.sizer.sizes.shift() ?? 0);
    this.notify();
  }

  private onFrame(raw: unknown, size: number): void {
    const type = (raw as { type?: unknown }).type;
    const kind = type === 'full' || type === 'delta' || type === 'keepalive' || type === 'error' ? type : 'other';
    this.stats.frames[kind]++;
    this.stats.bytes[kind] += size;
    if (this.history.length < 10_000) this.history.push({ type: kind, version: (raw as { version?: number }).version });
    if (this.o.validate !== false) {
      const p = parseOr400(ServerFrame, raw);
      if (!p.ok) {
        this.problems.push(`malformed ${kind} frame: ${p.error}`);
        return;
      }
    }
    if (kind === 'keepalive') {
      if (this.o.answerKeepalives !== false) this.send({ type: 'keepalive' });
      return;
    }
    if (kind === 'error') {
      this.errors.push(raw as { code: string; error: string });
      return;
    }
    if (kind === 'full') {
      const f = raw as { version: number; netmap: Netmap };
      this.netmap = f.netmap;
      this.version = f.version;
    } else if (kind === 'delta') {
      const f = raw as { version: number; changes: Change[] };
      if (!this.netmap) {
        this.problems.push(`delta (version ${f.version}) before any full map`);
        return;
      }
      this.netmap = applyChanges(this.netmap, f.changes);
      this.version = f.version;
    } else {
      this.problems.push(`unknown frame type ${String(type)}`);
      return;
    }
    this.onUpdate?.(this);
  }

  send(frame: unknown): void {
    if (this.socket && !this.closed) this.socket.write(encodeFrame(frame));
  }

  sendRaw(bytes: Uint8Array): void {
    if (this.socket && !this.closed) this.socket.write(bytes);
  }

  sendEndpoints(endpoints: string[]): void {
    this.send({ type: 'endpoints', endpoints });
  }

  /** Resolve when `pred` holds (checked after every received chunk and on close); reject after `timeoutMs`. */
  waitFor(what: string, pred: (n: SimNode) => boolean, timeoutMs = 10_000): Promise<void> {
    if (pred(this)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!pred(this)) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`${this.o.hostname}: timed out after ${timeoutMs} ms waiting for ${what} (version ${this.version}, ` +
          `${this.netmap?.peers.length ?? 'no'} peers, closed ${this.closed}, errors ${JSON.stringify(this.errors)}, problems ${JSON.stringify(this.problems.slice(0, 3))})`));
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  /** Wait for the stream to close; returns the last error frame, if any. */
  async waitClosed(timeoutMs = 10_000): Promise<{ code: string; error: string } | undefined> {
    await this.waitFor('the stream to close', (n) => n.closed, timeoutMs);
    return this.errors.at(-1);
  }

  resetStats(): void {
    this.stats = emptyStats();
  }

  close(): void {
    this.socket?.destroy();
    this.closed = true;
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }
}

/** Wire sizes (header included) of the frames completed so far, in order: cheaper than re-encoding each frame. */
class FrameSizer {
  readonly sizes: number[] = [];
  private readonly header = Buffer.alloc(FRAME_HEADER_LEN);
  private headerFill = 0;
  private bodyLeft = -1;
  private current = 0;

  reset(): void {
    this.sizes.length = 0;
    this.headerFill = 0;
    this.bodyLeft = -1;
  }

  push(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.bodyLeft < 0) {
        const n = Math.min(FRAME_HEADER_LEN - this.headerFill, chunk.length - i);
        chunk.copy(this.header, this.headerFill, i, i + n);
        this.headerFill += n;
        i += n;
        if (this.headerFill < FRAME_HEADER_LEN) break;
        this.headerFill = 0;
        this.bodyLeft = this.header.readUInt32BE(0);
        this.current = FRAME_HEADER_LEN + this.bodyLeft;
      }
      const n = Math.min(this.bodyLeft, chunk.length - i);
      i += n;
      this.bodyLeft -= n;
      if (this.bodyLeft === 0) {
        this.sizes.push(this.current);
        this.bodyLeft = -1;
      }
    }
  }
}

/**
 * `GET /v1/map` with `Connection: Upgrade`; resolves with the upgraded socket,
 * rejects with the status and body when the server answers without upgrading.
 */
export function openMapStream(srv: SimServer, headers: Record<string, string> = {}, path = '/v1/map'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(new URL(path, srv.url), {
      method: 'GET', agent: false, ...srv.tls(), timeout: 15_000,
      headers: { connection: 'Upgrade', upgrade: MAP_UPGRADE_PROTOCOL, ...headers },
    });
    req.on('timeout', () => req.destroy(new Error(`${path}: no answer to the upgrade`)));
    req.on('error', (err) => reject(new Error(`upgrade ${path}: ${err.message}`, { cause: err })));
    req.on('response', (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => reject(Object.assign(new Error(`${path}: HTTP ${res.statusCode} ${Buffer.concat(chunks).toString('utf8')}`), {
        status: res.statusCode, body: Buffer.concat(chunks).toString('utf8'),
      })));
    });
    req.on('upgrade', (_res: IncomingMessage, socket: Socket, head: Buffer) => {
      req.setTimeout(0);
      socket.setTimeout(0);
      socket.setNoDelay(true);
      if (head.length) socket.unshift(head);
      resolve(socket);
    });
    req.end();
  });
}

// ---------------------------------------------------------------- an in-process server for sims

export interface InProcessServer {
  server: ControlServer;
  store: SqliteStore;
  sim: SimServer;
  dir: string;
  dbPath: string;
  port: number;
  /** Every line the server logged, as "level: message". */
  logs: string[];
  stop(): Promise<void>;
}

/**
 * A ControlServer on 127.0.0.1 (ephemeral port) with a SqliteStore, server key
 * and self-signed certificate in `dir`. Loopback only: no namespace needed.
 */
export async function startInProcessServer(
  dir: string,
  opts: Partial<Pick<ControlServerOptions, 'keepaliveMs' | 'housekeepingMs' | 'ephemeralTimeoutMs' | 'defaultKeyExpiryMs' | 'relaySecret'>> & { echo?: boolean; keepLogs?: boolean } = {},
): Promise<InProcessServer> {
  const dbPath = join(dir, 'control.db');
  const store = SqliteStore.open(dbPath);
  const cert = await loadOrCreateSelfSigned(dir, { commonName: '127.0.0.1' });
  const logs: string[] = [];
  const log: Logger = (level, msg) => {
    if (opts.keepLogs !== false && logs.length < 200_000) logs.push(`${level}: ${msg}`);
    if (opts.echo) process.stderr.write(`[control] ${level}: ${msg}\n`);
  };
  const server = new ControlServer({
    store, serverKey: loadOrCreateServerKey(dir), tls: { cert: cert.certPem, key: cert.keyPem }, host: '127.0.0.1', port: 0, log,
    keepaliveMs: opts.keepaliveMs ?? 30_000, housekeepingMs: opts.housekeepingMs ?? 10_000,
    ephemeralTimeoutMs: opts.ephemeralTimeoutMs ?? 30 * 60_000, defaultKeyExpiryMs: opts.defaultKeyExpiryMs ?? 180 * 86_400_000,
    relaySecret: opts.relaySecret,
  });
  const port = await server.start();
  const sim = new SimServer(`https://127.0.0.1:${port}`, cert.certPem, cert.fingerprint);
  let stopped = false;
  return {
    server, store, sim, dir, dbPath, port, logs,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      sim.close();
      await server.stop();
      await store.close();
    },
  };
}
