/**
 * warren-control's HTTPS server: challenges, registration, node-key rotation,
 * and the upgrade to the map stream; plus the housekeeping timer (ephemeral
 * nodes that stayed offline, node keys that expired). Every request body is
 * bounded and validated; bad input gets a 4xx with a message naming the field,
 * never a crash and never a half-written database (mutations are single store
 * transactions).
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Store, NodeRecord } from './store.js';
import { isRefusal } from './store.js';
import { Challenges, type ServerKey } from './challenges.js';
import { Hub } from './hub.js';
import { MapSession } from './map-session.js';
import {
  MAX_BODY_BYTES, MAP_UPGRADE_PROTOCOL, RegisterRequest, RotateRequest, parseOr400, verifyProof, fromB64, toB64,
  type HelloFrame, type ProofPurpose,
  type RelayMap,
} from '../../wire/control.js';
import type { Logger } from '../../util/log.js';
import { RelayAdmission, refuseAdmissionDisabled } from './relay-admission.js';
import { ADMISSION_PATH } from '../../wire/relay-admission.js';

export interface ControlServerOptions {
  store: Store;
  serverKey: ServerKey;
  tls: { cert: string; key: string };
  host: string;
  port: number;
  log: Logger;
  keepaliveMs: number;
  /** Relay regions handed to every node in its netmap (none by default). */
  relayMap?: RelayMap;
  /** The secret relays present on the admission stream; without it relay admission is off. */
  relaySecret?: Uint8Array;
  ephemeralTimeoutMs: number;
  defaultKeyExpiryMs: number;
  housekeepingMs: number;
  now?: () => number;
}

class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

const AUTH_STATUS: Record<string, number> = {
  authkey_invalid: 401, authkey_revoked: 401, authkey_expired: 401, authkey_used: 401, node_key_in_use: 409, node_not_found: 404,
  machine_in_other_tailnet: 409,
};
const AUTH_TEXT: Record<string, string> = {
  authkey_invalid: 'auth key not recognised',
  authkey_revoked: 'auth key has been revoked',
  authkey_expired: 'auth key has expired',
  authkey_used: 'auth key was single-use and has already been used',
  node_key_in_use: 'that node key belongs to another node',
  node_not_found: 'no such node',
  machine_in_other_tailnet: 'this machine is registered in another tailnet; delete that node first (nodes never move between tailnets)',
};

export class ControlServer {
  readonly hub: Hub;
  private server: Server | null = null;
  private readonly challenges: Challenges;
  private readonly now: () => number;
  private housekeeping: NodeJS.Timeout | null = null;
  private readonly pending = new Set<MapSession>();
  readonly relayAdmission: RelayAdmission | null = null;

  constructor(private readonly o: ControlServerOptions) {
    this.now = o.now ?? Date.now;
    this.challenges = new Challenges(this.now);
    this.hub = new Hub({ store: o.store, keepaliveMs: o.keepaliveMs, now: this.now, log: o.log, relayMap: o.relayMap });
    if (o.relaySecret) {
      const ra = new RelayAdmission({ store: o.store, secret: o.relaySecret, keepaliveMs: o.keepaliveMs, log: o.log, now: this.now });
      this.hub.listeners.add((changes) => ra.onChanges(changes));
      this.relayAdmission = ra;
    }
  }

  async start(): Promise<number> {
    await this.o.store.setAllOffline(this.now());
    await this.o.store.appendChange({ op: 'resync' });
    if (this.relayAdmission) await this.hub.serial(() => this.relayAdmission!.load());
    const srv = createServer({ cert: this.o.tls.cert, key: this.o.tls.key, requestTimeout: 30_000, headersTimeout: 15_000 });
    srv.on('request', (req: IncomingMessage, res: ServerResponse) => void this.onRequest(req, res));
    srv.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.onUpgrade(req, socket, head));
    srv.on('tlsClientError', () => { /* scanners and bad pins: nothing to do */ });
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(this.o.port, this.o.host, () => resolve());
    });
    this.server = srv;
    this.housekeeping = setInterval(() => void this.hub.serial(() => this.sweep()).catch((e: Error) => this.o.log('warn', `housekeeping: ${e.message}`)), this.o.housekeepingMs);
    const addr = srv.address();
    return typeof addr === 'object' && addr ? addr.port : this.o.port;
  }

  async stop(): Promise<void> {
    if (this.housekeeping) clearInterval(this.housekeeping);
    this.relayAdmission?.close();
    for (const s of [...this.hub.sessions.values(), ...this.pending]) s.close();
    await new Promise<void>((resolve) => {
      if (!this.server) return resolve();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    await this.hub.serial(async () => undefined);
  }

  // ------------------------------------------------------------- HTTP

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const send = (status: number, body: unknown): void => {
      const data = JSON.stringify(body);
      // After a 413 the rest of the body is not read: close instead of keeping the connection.
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), ...(status === 413 ? { connection: 'close' } : {}) });
      res.end(data);
    };
    try {
      const path = (req.url ?? '/').split('?')[0];
      const route = this.routes[`${req.method} ${path}`];
      if (!route) {
        const known = Object.keys(this.routes).some((k) => k.endsWith(` ${path}`));
        if (path === '/v1/map') throw new HttpError(426, 'upgrade_required', `the map stream needs "Connection: Upgrade" and "Upgrade: ${MAP_UPGRADE_PROTOCOL}"`);
        throw known ? new HttpError(405, 'method_not_allowed', `${req.method} is not allowed on ${path}`) : new HttpError(404, 'not_found', `no such endpoint: ${path}`);
      }
      const body = route.body ? await readJson(req) : undefined;
      send(200, await route.handle(body));
    } catch (err) {
      if (err instanceof HttpError) {
        if (err.status === 401 || err.status === 409) this.o.log('info', `${req.method} ${req.url} from ${req.socket.remoteAddress}: refused: ${err.message}`);
        send(err.status, { error: err.message, code: err.code });
      } else {
        this.o.log('error', `${req.method} ${req.url}: ${(err as Error).stack ?? err}`);
        send(500, { error: 'internal error', code: 'internal' });
      }
    }
  }

  private readonly routes: Record<string, { body: boolean; handle(body: unknown): unknown }> = {
    'GET /v1/challenge': { body: false, handle: () => this.challenge() },
    'POST /v1/register': { body: true, handle: (b) => this.register(b) },
    'POST /v1/rotate': { body: true, handle: (b) => this.rotate(b) },
  };

  private challenge(): unknown {
    const { nonce, expiresInMs } = this.challenges.issue();
    return { serverKey: toB64(this.o.serverKey.publicKey), nonce: toB64(nonce), expiresInMs };
  }

  /** Verify proofs that share one nonce and consume it; returns the proven keys (b64). */
  private prove(proofs: Array<[unknown, ProofPurpose]>): string[] {
    const first = proofs[0]![0] as { nonce: string };
    const nonce = fromB64(first.nonce, 24);
    if (!nonce || !this.challenges.consume(nonce)) throw new HttpError(401, 'bad_challenge', 'unknown or expired challenge nonce: fetch a new one from /v1/challenge');
    return proofs.map(([proof, purpose]) => {
      const key = verifyProof(proof, purpose, this.o.serverKey.privateKey, nonce);
      if (!key) throw new HttpError(401, 'bad_proof', `proof for ${purpose} does not open: the sender does not hold that key`);
      return toB64(key);
    });
  }

  private async register(body: unknown): Promise<unknown> {
    const p = parseOr400(RegisterRequest, body);
    if (!p.ok) throw new HttpError(400, 'bad_request', p.error);
    const r = p.value;
    const [machineKey, nodeKey] = this.prove([[r.machine, 'machine:register'], [r.node, 'node:register']]);
    return this.hub.serial(async () => {
      const out = await this.o.store.registerNode({
        machineKey: machineKey!, nodeKey: nodeKey!, discoKey: r.discoKey, hostname: r.hostname, authKeySecret: r.authKey,
        now: this.now(), defaultKeyExpiryMs: this.o.defaultKeyExpiryMs,
      });
      if (isRefusal(out)) throw new HttpError(AUTH_STATUS[out.error] ?? 400, out.error, AUTH_TEXT[out.error] ?? out.error);
      const n = out.node;
      this.o.log('info', `${out.created ? 'registered new' : 're-registered'} node ${n.id} (${n.name}) ${n.ipv4} ${n.ipv6}`);
      this.hub.kick(n.id, 'node_key_mismatch', 'the node re-registered');
      await this.hub.publish([this.hub.upsert(n)]);
      return { nodeId: n.id, name: n.name, addresses: [`${n.ipv4}/32`, `${n.ipv6}/128`], keyExpiry: n.keyExpiry, tags: n.tags };
    });
  }

  private async rotate(body: unknown): Promise<unknown> {
    const p = parseOr400(RotateRequest, body);
    if (!p.ok) throw new HttpError(400, 'bad_request', p.error);
    const r = p.value;
    const [machineKey, newKey] = this.prove([[r.machine, 'machine:rotate'], [r.newNode, 'node:rotate']]);
    return this.hub.serial(async () => {
      const n = await this.o.store.getNodeByMachineKey(machineKey!);
      if (!n) throw new HttpError(404, 'unknown_node', 'this machine key is not registered');
      const expiry = n.tags.length ? null : this.now() + this.o.defaultKeyExpiryMs;
      const out = await this.o.store.updateNodeKey(n.id, newKey!, r.discoKey, expiry);
      if (isRefusal(out)) throw new HttpError(AUTH_STATUS[out.error] ?? 400, out.error, AUTH_TEXT[out.error] ?? out.error);
      this.o.log('info', `node ${n.id} (${n.name}) rotated its node key`);
      this.hub.kick(n.id, 'node_key_mismatch', 'node key rotated; reconnect with the new key');
      await this.hub.publish([this.hub.upsert(out)]);
      return { nodeId: out.id, keyExpiry: out.keyExpiry };
    });
  }

  // -------------------------------------------------------- map stream

  private onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const path = (req.url ?? '/').split('?')[0];
    if (path === ADMISSION_PATH) {
      if (this.relayAdmission) this.relayAdmission.handleUpgrade(req, socket, head, (fn) => this.hub.serial(fn));
      else refuseAdmissionDisabled(socket);
      return;
    }
    if (path !== '/v1/map' || (req.headers.upgrade ?? '').toLowerCase() !== MAP_UPGRADE_PROTOCOL) {
      const body = JSON.stringify({ error: `only /v1/map upgrades, to ${MAP_UPGRADE_PROTOCOL}`, code: 'bad_upgrade' });
      socket.end(`HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
      return;
    }
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${MAP_UPGRADE_PROTOCOL}\r\n\r\n`);
    const s = new MapSession(socket, `${req.socket.remoteAddress}:${req.socket.remotePort}`, this.o.keepaliveMs, {
      hello: (sess, f) => this.hello(sess, f),
      endpoints: (sess, eps) => this.hub.serial(() => this.setEndpoints(sess, eps)),
      hostinfo: (sess, hi) => this.hub.serial(async () => {
        const n = await this.o.store.setHostinfo(sess.nodeId!, hi);
        if (n) await this.hub.publish([this.hub.upsert(n)]);
      }),
      closed: (sess) => this.closed(sess),
    }, (m) => this.o.log('info', m));
    this.pending.add(s);
    if (head.length) socket.unshift(head);
  }

  private async hello(s: MapSession, f: HelloFrame): Promise<void> {
    const nonce = fromB64(f.machine.nonce, 24);
    if (!nonce || !this.challenges.consume(nonce)) return s.fail('bad_proof', 'unknown or expired challenge nonce');
    const key = verifyProof(f.machine, 'machine:map', this.o.serverKey.privateKey, nonce);
    if (!key) return s.fail('bad_proof', 'machine-key proof does not open');
    await this.hub.serial(async () => {
      if (s.isClosed) return;
      const n = await this.o.store.getNodeByMachineKey(toB64(key));
      if (!n) return s.fail('unknown_node', 'this machine is not registered (deleted, or never joined): run warren up with an auth key');
      if (n.nodeKey !== f.nodeKey) return s.fail('node_key_mismatch', 'node key does not match the registered one');
      if (this.hub.isExpired(n)) return s.fail('key_expired', 'node key expired: re-authenticate with warren up');
      const old = this.hub.sessions.get(n.id);
      if (old) {
        this.hub.sessions.delete(n.id); // replaced: its close must not mark the node offline
        old.fail('replaced', 'a newer map stream for this node replaced this one');
      }
      this.pending.delete(s);
      const rec: NodeRecord = (await this.o.store.markConnected(n.id, this.now(), f.endpoints, f.hostinfo)) ?? n;
      // Tell the others first; this session joins the hub only for its own first sync,
      // so it never sees a delta before its base map.
      await this.hub.publish([this.hub.upsert(rec)]);
      this.hub.sessions.set(n.id, s);
      s.established(n.id);
      await this.hub.sync(s, rec, f.version);
      this.o.log('debug', `node ${n.id} (${n.name}) connected from ${s.remote}, client version ${f.version}`);
    });
  }

  private async setEndpoints(s: MapSession, eps: string[]): Promise<void> {
    const n = await this.o.store.getNode(s.nodeId!);
    if (!n || JSON.stringify(n.endpoints) === JSON.stringify(eps)) return;
    const rec = await this.o.store.setEndpoints(n.id, eps);
    if (rec) await this.hub.publish([this.hub.upsert(rec)]);
  }

  private closed(s: MapSession): void {
    this.pending.delete(s);
    const id = s.nodeId;
    if (id === null || this.hub.sessions.get(id) !== s) return;
    this.hub.sessions.delete(id);
    void this.hub.serial(async () => {
      if (this.hub.sessions.has(id)) return;
      const rec = await this.o.store.setOnline(id, false, this.now());
      if (rec) await this.hub.publish([this.hub.upsert(rec)]);
    }).catch((e: Error) => this.o.log('warn', `marking node ${id} offline: ${e.message}`));
  }

  // ------------------------------------------------------ housekeeping

  private readonly expiredAnnounced = new Set<number>();

  /** Ephemeral nodes offline too long are deleted; expired node keys are cut off. */
  async sweep(): Promise<void> {
    this.challenges.gc();
    const now = this.now();
    for (const n of await this.o.store.listNodes()) {
      if (n.ephemeral && !n.online && n.lastSeen !== null && now - n.lastSeen >= this.o.ephemeralTimeoutMs) {
        await this.o.store.deleteNode(n.id);
        this.o.log('info', `ephemeral node ${n.id} (${n.name}) offline for ${Math.round((now - n.lastSeen) / 1000)} s: deleted`);
        await this.hub.publish([this.hub.remove(n)]);
        continue;
      }
      if (this.hub.isExpired(n)) {
        if (!this.expiredAnnounced.has(n.id)) {
          this.expiredAnnounced.add(n.id);
          this.hub.kick(n.id, 'key_expired', 'node key expired: re-authenticate with warren up');
          await this.hub.publish([this.hub.remove(n)]);
        }
      } else this.expiredAnnounced.delete(n.id);
    }
  }

  // ------------------------------------------------------ admin actions

  async deleteNode(id: number): Promise<boolean> {
    return this.hub.serial(async () => {
      const n = await this.o.store.getNode(id);
      const ok = n !== null && (await this.o.store.deleteNode(id));
      if (ok) {
        this.hub.kick(id, 'node_deleted', 'this node was deleted by the administrator');
        await this.hub.publish([this.hub.remove(n)]);
      }
      return ok;
    });
  }

  async expireNode(id: number): Promise<NodeRecord | null> {
    return this.hub.serial(async () => {
      const n = await this.o.store.expireNode(id, this.now());
      if (n) await this.sweep();
      return n;
    });
  }

  async renameNode(id: number, name: string): Promise<NodeRecord> {
    return this.hub.serial(async () => {
      const r = await this.o.store.renameNode(id, name);
      if (isRefusal(r)) throw new Error(r.error === 'name_invalid' ? `"${name}" is not a valid DNS label` : r.error === 'name_in_use' ? `the name "${name}" is taken` : 'no such node');
      await this.hub.publish([this.hub.upsert(r)]);
      return r;
    });
  }
}

function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_BODY_BYTES) {
      req.resume();
      return reject(new HttpError(413, 'too_large', `request body over ${MAX_BODY_BYTES} bytes`));
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      if (size > MAX_BODY_BYTES) return; // already refused; discarded until the 413 closes the connection
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        chunks.length = 0;
        reject(new HttpError(413, 'too_large', `request body over ${MAX_BODY_BYTES} bytes`));
      } else chunks.push(c);
    });
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      if (!text) return reject(new HttpError(400, 'bad_request', 'empty body: a JSON object is required'));
      try {
        resolve(JSON.parse(text));
      } catch (e) {
        reject(new HttpError(400, 'bad_json', `body is not JSON: ${(e as Error).message}`));
      }
    });
    // The client went away mid-body: nobody to answer, and not a server fault.
    req.on('error', (e) => reject(new HttpError(400, 'aborted', `request body cut short: ${e.message}`)));
  });
}
