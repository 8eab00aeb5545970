/**
 * Relay test rigs: an in-process control server (with relay admission on)
 * and an in-process RelayServer fed by a real AdmissionClient, both on
 * 127.0.0.1; registered nodes (SimNode); and RawRelay, a hand-driven relay
 * client that records every frame and can misbehave (garbage, oversized
 * frames, wrong proofs), for tests the real RelayClient would never do.
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { startInProcessServer, SimNode, keyPair, type InProcessServer, type KeyPair } from './sim-node.js';
import { RelayServer, type RelayServerOptions } from '../../src/server/relay/server.js';
import { AdmissionSet } from '../../src/server/relay/admission-set.js';
import { AdmissionClient } from '../../src/server/relay/admission-client.js';
import { loadOrCreateSelfSigned } from '../../src/server/tls-cert.js';
import { normalizeFingerprint } from '../../src/control/pinned-tls.js';
import {
  RELAY_PATH, RELAY_UPGRADE_PROTOCOL, RelayFrameReader, encodeRelayFrame, makeRelayProof, relayChannel,
  type RelayFrame,
} from '../../src/wire/relay-frames.js';
import type { Logger } from '../../src/util/log.js';
import { httpsUpgrade } from '../../src/util/https-upgrade.js';

export interface RelayRig {
  control: InProcessServer;
  relay: RelayServer;
  admission: AdmissionSet;
  admissionClient: AdmissionClient;
  secret: Buffer;
  /** https://127.0.0.1:PORT of the relay, its certificate and pin. */
  url: string;
  ca: string;
  fingerprint: string;
  logs: string[];
  /** A node registered on control (default tailnet unless given). */
  node(name: string, tailnet?: string): Promise<SimNode>;
  stop(): Promise<void>;
}

export interface RelayRigOptions {
  controlKeepaliveMs?: number;
  relay?: Partial<Pick<RelayServerOptions, 'keepaliveMs' | 'clientRate' | 'maxQueueBytes' | 'peerGoneIntervalMs'>>;
  echo?: boolean;
}

export async function startRelayRig(dir: string, opts: RelayRigOptions = {}): Promise<RelayRig> {
  const secret = Buffer.from(randomBytes(24).toString('hex'));
  const control = await startInProcessServer(dir, { relaySecret: secret, keepaliveMs: opts.controlKeepaliveMs ?? 30_000, echo: opts.echo });
  const logs: string[] = [];
  const log: Logger = (level, msg) => {
    if (logs.length < 100_000) logs.push(`${level}: ${msg}`);
    if (opts.echo) process.stderr.write(`[relay] ${level}: ${msg}\n`);
  };
  const cert = await loadOrCreateSelfSigned(`${dir}/relay-tls`, { commonName: 'warren-relay' });
  const admission = new AdmissionSet();
  const relay = new RelayServer({ host: '127.0.0.1', port: 0, tls: { cert: cert.certPem, key: cert.keyPem }, admission, log, ...opts.relay });
  const port = await relay.start();
  const admissionClient = new AdmissionClient({
    url: control.sim.url.href, fingerprint: control.sim.fingerprint, secret, set: admission, log, backoff: { minMs: 50, maxMs: 200 },
    onState: (up) => relay.setHealth(up ? '' : 'control unreachable'),
  });
  admissionClient.start();
  const tailnetKeys = new Map<string, string>();
  const rig: RelayRig = {
    control, relay, admission, admissionClient, secret, url: `https://127.0.0.1:${port}`, ca: cert.certPem, fingerprint: cert.fingerprint, logs,
    node: async (name, tailnet = 'default') => {
      let key = tailnetKeys.get(tailnet);
      if (!key) {
        key = (await control.store.createAuthKey({ reusable: true, tailnet })).key;
        tailnetKeys.set(tailnet, key);
      }
      const n = new SimNode(control.sim, { hostname: name, authKey: key });
      await n.register();
      return n;
    },
    stop: async () => {
      admissionClient.stop();
      await relay.stop();
      await control.stop();
    },
  };
  return rig;
}

/** Resolve when `pred()` holds, polling every 10 ms; reject after `timeoutMs` naming `what`. */
export async function until(what: string, pred: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A copy of a frame whose byte fields no longer point into a socket chunk. */
function own(f: RelayFrame): RelayFrame {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(f)) out[k] = v instanceof Uint8Array ? Uint8Array.from(v) : v;
  return out as RelayFrame;
}

/** Hand-driven relay connection: every received frame is kept in `frames`. */
export class RawRelay {
  readonly frames: RelayFrame[] = [];
  /** Answer every keepalive with one (as a live client does); off = a client gone silent. */
  answerKeepalives = true;
  socket!: Socket;
  closed = false;
  streamError: string | null = null;
  private readonly reader = new RelayFrameReader();

  constructor(readonly url: string, readonly ca: string, readonly fingerprint: string) {}

  /** Upgrade (optionally with another path/protocol); resolves with the socket, rejects with the HTTP status text. */
  async open(path = RELAY_PATH, protocol = RELAY_UPGRADE_PROTOCOL): Promise<void> {
    const pin = normalizeFingerprint(this.fingerprint);
    const u = new URL(this.url);
    const socket = await httpsUpgrade({
      host: u.hostname, port: Number(u.port), path, protocol, timeoutMs: 10_000,
      tls: { ca: [this.ca], rejectUnauthorized: true, checkServerIdentity: (_h, cert) => (normalizeFingerprint(cert.fingerprint256) === pin ? undefined : new Error('pin')) },
    });
    this.socket = socket;
    socket.on('data', (c: Buffer) => this.onData(c));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
    });
  }

  private onData(c: Buffer): void {
    const e = this.reader.push(c, (f) => {
      if (f.type === 'keepalive') {
        if (this.answerKeepalives && !this.socket.destroyed) this.socket.write(encodeRelayFrame({ type: 'keepalive' }));
        return;
      }
      this.frames.push(own(f));
    });
    if (e) this.streamError = e.code;
  }

  of<T extends RelayFrame['type']>(type: T): Array<Extract<RelayFrame, { type: T }>> {
    return this.frames.filter((f): f is Extract<RelayFrame, { type: T }> => f.type === type);
  }

  async waitFor<T extends RelayFrame['type']>(type: T, timeoutMs = 5000, count = 1): Promise<Extract<RelayFrame, { type: T }>> {
    await until(`${count} ${type} frame(s) (have ${this.frames.map((f) => f.type).join(',')}; closed ${this.closed})`, () => this.of(type).length >= count, timeoutMs);
    return this.of(type)[count - 1]!;
  }

  /** This connection's TLS exporter, which every proof on it must be bound to. */
  channel(): Uint8Array {
    return relayChannel(this.socket as TLSSocket);
  }

  send(f: RelayFrame): void {
    this.socket.write(encodeRelayFrame(f));
  }

  sendRaw(b: Uint8Array): void {
    this.socket.write(b);
  }

  /** Answer the challenge proving `key`; resolves with the server's verdict. */
  async login(key: KeyPair): Promise<RelayFrame> {
    const ch = await this.waitFor('server-challenge');
    this.send(makeRelayProof(ch, key, this.channel()));
    await until('server-ok or server-refused', () => this.frames.some((f) => f.type === 'server-ok' || f.type === 'server-refused') || this.closed);
    return this.frames.find((f) => f.type === 'server-ok' || f.type === 'server-refused') ?? { type: 'server-refused', reason: '(closed)' };
  }

  async waitClosed(timeoutMs = 5000): Promise<void> {
    await until('the relay to close the connection', () => this.closed, timeoutMs);
  }

  close(): void {
    this.socket?.destroy();
  }
}

/** Open a RawRelay and log in as `key`. */
export async function rawLogin(rig: { url: string; ca: string; fingerprint: string }, key: KeyPair): Promise<{ r: RawRelay; verdict: RelayFrame }> {
  const r = new RawRelay(rig.url, rig.ca, rig.fingerprint);
  await r.open();
  return { r, verdict: await r.login(key) };
}

export { keyPair, type KeyPair };
