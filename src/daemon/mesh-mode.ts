/**
 * Mesh mode: warrend as a tailnet node. Keeps its keys, prefs, registration
 * and last netmap in the state directory; brings the tunnel back from the
 * last netmap at start (even while control is unreachable); runs the control
 * client while the user wants to be up; turns every netmap into one engine
 * snapshot (reconfig) and one router state (apply). The LocalAPI gives the CLI
 * up/down/logout/status and key rotation. While up (and unless
 * `--no-port-mapping`), a PortMapper asks the router for a port to the data
 * socket; `warren down` and a clean shutdown delete that mapping.
 */
import { Engine } from '../dataplane/engine.js';
import { Router } from '../control/router.js';
import { NodeState, type Prefs } from '../control/node-state.js';
import type { ControlError } from '../control/control-client.js';
import { ControlClient } from '../control/control-client.js';
import { deviceConfig, routerConfig, MESH_MTU } from '../control/netmap-config.js';
import { Traversal } from '../nat/traversal.js';
import { PortMapper } from '../nat/portmap/mapper.js';
import { join } from 'node:path';
import { normalizeFingerprint } from '../control/pinned-tls.js';
import type { BackendState, HealthWarning, MeshStatus } from '../control/mesh-status.js';
import { LocalApiServer, LocalApiError, jsonObjectBody, type LocalApiRoute } from '../localapi/server.js';
import { parseEndpoint, type Netmap } from '../wire/control.js';
import type { Logger } from '../util/log.js';
import { untilStopped } from '../util/signals.js';
import type { TestKnobs } from './test-mode.js';
import { StartupTrim } from './startup-trim.js';

export interface MeshModeOptions {
  stateDir: string;
  tun: string;
  port: number;
  socketPath: string;
  knobs: TestKnobs;
  log: Logger;
  /** Control reconnect backoff (test profile shortens it). */
  backoffMinMs: number;
  backoffMaxMs: number;
}

const KEY_EXPIRY_WARNING_MS = 14 * 86_400_000;

export class MeshNode {
  private client: ControlClient | null = null;
  private netmap: Netmap | null = null;
  private version: number | null = null;
  /** Why the control server ended this node (deleted, key expired), until the next netmap or up. */
  private fatal: { code: string; text: string } | null = null;
  private applying: Promise<void> = Promise.resolve();
  private waiters: Array<() => void> = [];
  readonly traversal: Traversal;
  private portMapper: PortMapper | null = null;

  constructor(
    private readonly o: MeshModeOptions,
    private readonly state: NodeState,
    private readonly engine: Engine,
    private readonly router: Router,
    private readonly trim: StartupTrim | null = null,
  ) {
    this.traversal = new Traversal({
      engine,
      nodeKey: state.nodeKey(),
      discoKey: state.discoKey(),
      timers: o.knobs.pathTimers,
      birthday: o.knobs.birthday,
      staticEndpoints: state.prefs()?.staticEndpoints ?? [],
      relayKeepaliveMs: o.knobs.relayKeepaliveMs,
      relayBackoff: { minMs: o.backoffMinMs, maxMs: o.backoffMaxMs },
      log: o.log,
      onEndpointsChanged: () => this.client?.sendEndpoints(),
      onNetinfoChanged: () => this.client?.sendHostinfo(),
    });
    const cached = state.netmap();
    if (cached && state.registration()) {
      this.netmap = cached.netmap as Netmap;
      this.version = cached.version;
    }
  }

  get backendState(): BackendState {
    // Deleted or expired: nothing happens until "warren up" with an auth key.
    if (!this.state.registration() || this.fatal) return 'NeedsLogin';
    if (!this.state.prefs()?.wantRunning) return 'Stopped';
    return this.netmap ? 'Running' : 'Starting';
  }

  /** At daemon start: come back from the last netmap, then reconnect. */
  async resume(): Promise<void> {
    const prefs = this.state.prefs();
    if (prefs?.wantRunning && this.state.registration()) {
      if (this.netmap) {
        this.o.log('info', `restoring the tunnel from the saved netmap (version ${this.version}, ${this.netmap.peers.length} peers)`);
        await this.apply(this.netmap);
      }
      this.startClient(prefs);
    }
    await this.syncPortMapper();
  }

  /** Port mapping runs while the node is up and the owner has not turned it off. */
  private async syncPortMapper(): Promise<void> {
    const p = this.state.prefs();
    const want = !!p?.wantRunning && !!this.state.registration() && !this.fatal && !p.noPortMapping;
    if (want && !this.portMapper) {
      const k = this.o.knobs.portmap;
      this.portMapper = new PortMapper({
        internalPort: this.engine.listenPort, lifetimeSec: k.lifetimeSec, pollMs: k.pollMs, only: k.only,
        memoryFile: join(this.o.stateDir, 'portmap.json'), log: this.o.log,
      });
      this.traversal.setPortMapper(this.portMapper);
      this.portMapper.start();
    } else if (!want && this.portMapper) {
      const m = this.portMapper;
      this.portMapper = null;
      this.traversal.setPortMapper(null);
      await m.stop({ deleteMapping: true });
    }
  }

  private startClient(prefs: Prefs): void {
    this.client = new ControlClient({
      servers: prefs.loginServers, fingerprint: prefs.fingerprint, state: this.state, hostname: prefs.hostname,
      endpoints: () => this.traversal.endpoints(), netinfo: () => this.traversal.netinfoSent(), log: this.o.log,
      onNetmap: (nm, v) => {
        if (!this.netmap) this.trim?.arm('first netmap');
        this.netmap = nm;
        this.version = v;
        this.fatal = null;
        void this.apply(nm);
        for (const w of this.waiters.splice(0)) w();
      },
      onFatal: (code, msg) => {
        this.fatal = { code, text: `${msg} (${code})` };
        this.o.log('error', `control server ended this node: ${msg}`);
        this.netmap = null;
        this.state.setNetmap(null);
        if (code === 'node_deleted' || code === 'unknown_node') this.state.setRegistration(null);
        void this.syncPortMapper();
        void this.apply(null);
      },
      backoffMinMs: this.o.backoffMinMs, backoffMaxMs: this.o.backoffMaxMs,
    });
    this.client.start();
  }

  private stopClient(): void {
    this.client?.stop();
    this.client = null;
  }

  /** Make the data plane and the OS match a netmap (null = no peers, no addresses). Serialised. */
  apply(nm: Netmap | null): Promise<void> {
    this.applying = this.applying.then(async () => {
      const now = Date.now();
      const node = this.state.nodeKey();
      // logout forgets the node key and the next registration makes a new one: relays and disco must use it.
      this.traversal.setNodeKey(node);
      this.engine.reconfig(nm
        ? deviceConfig(nm, { privateKey: node.privateKey, listenPort: this.engine.listenPort, tun: this.engine.tun, now, forceUnderLoad: this.o.knobs.forceUnderLoad, pathChoice: true })
        : { privateKey: node.privateKey, listenPort: this.engine.listenPort, fwMark: 0, tun: this.engine.tun, peers: [] });
      // After the snapshot (same message queue): the engine knows the peers before their paths.
      this.traversal.setNetmap(nm);
      await this.router.apply(routerConfig(nm, this.engine.tun, now));
    }).catch((err: Error) => this.o.log('error', `applying the netmap: ${err.message}`));
    return this.applying;
  }

  private waitForNetmap(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  async up(req: { loginServers?: string[]; authKey?: string; hostname?: string; fingerprint?: string; staticEndpoints?: string[]; noPortMapping?: boolean }): Promise<unknown> {
    const old = this.state.prefs();
    const servers = req.loginServers?.length ? req.loginServers : old?.loginServers ?? [];
    if (!servers.length) throw new LocalApiError(400, 'no control server: give --login-server URL');
    let fingerprint: string | null = old && servers.join() === old.loginServers.join() ? old.fingerprint : null;
    if (req.fingerprint) {
      try {
        fingerprint = normalizeFingerprint(req.fingerprint);
      } catch (e) {
        throw new LocalApiError(400, (e as Error).message);
      }
    }
    const staticEndpoints = req.staticEndpoints ?? old?.staticEndpoints ?? [];
    const noPortMapping = req.noPortMapping ?? old?.noPortMapping ?? false;
    const prefs: Prefs = { loginServers: servers, fingerprint, hostname: req.hostname ?? old?.hostname ?? 'warren-node', wantRunning: true, staticEndpoints, noPortMapping };
    this.traversal.setStaticEndpoints(staticEndpoints);
    const reg = this.state.registration();
    const sameServer = reg && servers.includes(reg.server);
    if (!req.authKey && !sameServer) throw new LocalApiError(400, 'this node is not registered with that control server yet: give --auth-key');
    this.stopClient();
    if (req.authKey) {
      const probe = new ControlClient({
        servers, fingerprint, state: this.state, hostname: prefs.hostname, endpoints: () => [], log: this.o.log,
        onNetmap: () => {}, onFatal: () => {},
      });
      try {
        const r = await probe.register(req.authKey);
        if (reg && reg.server !== r.server) this.state.setNetmap(null);
        this.state.setRegistration(r);
        this.o.log('info', `registered as ${r.name} (node ${r.nodeId}) ${r.addresses.join(' ')}`);
      } catch (err) {
        const e = err as ControlError;
        this.o.log('warn', `registration refused: ${e.message}`);
        throw new LocalApiError(e.status >= 400 && e.status < 500 ? e.status : 502, e.message);
      }
    }
    this.state.setPrefs(prefs);
    this.fatal = null;
    this.startClient(prefs);
    await this.syncPortMapper();
    await this.waitForNetmap(10_000);
    const st = this.status(null);
    return { backendState: st.backendState, self: st.self };
  }

  async down(): Promise<void> {
    const p = this.state.prefs();
    if (p) this.state.setPrefs({ ...p, wantRunning: false });
    this.stopClient();
    await this.syncPortMapper();
    await this.apply(null);
  }

  async logout(): Promise<void> {
    await this.down();
    this.state.logout();
    this.netmap = null;
    this.version = null;
  }

  async rotateNodeKey(): Promise<{ nodeKey: string }> {
    if (!this.client) throw new LocalApiError(409, 'not connected: run "warren up" first');
    try {
      await this.client.rotateNodeKey();
    } catch (e) {
      throw new LocalApiError(502, `rotation failed: ${(e as Error).message}`);
    }
    this.traversal.setNodeKey(this.state.nodeKey());
    if (this.netmap) await this.apply(this.netmap);
    return { nodeKey: Buffer.from(this.state.nodeKey().publicKey).toString('base64') };
  }

  status(device: MeshStatus['device'] | null): MeshStatus {
    const reg = this.state.registration();
    const nm = this.netmap;
    const health: HealthWarning[] = [];
    const now = Date.now();
    if (this.fatal) {
      health.push(this.fatal.code === 'key_expired'
        ? { code: 'key_expired', severity: 'error', text: 'this node\'s key has expired and the control server ended its session: run "warren up --auth-key KEY"' }
        : { code: 'control_ended', severity: 'error', text: this.fatal.text });
    } else if (this.client && !this.client.connected && this.client.lastErrorCode === 'pin_mismatch') {
      health.push({ code: 'control_pin_mismatch', severity: 'error', text: `${this.client.lastError}; the tunnel runs on the last netmap` });
    } else if (this.client && !this.client.connected) {
      // (Not after a fatal answer: the client has stopped and the netmap is gone.)
      health.push({ code: 'control_unreachable', severity: 'warning', text: `not connected to the control server${this.client.lastError ? `: ${this.client.lastError}` : ''}; the tunnel runs on the last netmap` });
    }
    const expiry = nm?.self.keyExpiry ?? reg?.keyExpiry ?? null;
    if (expiry !== null && expiry - now < KEY_EXPIRY_WARNING_MS && !health.some((h) => h.code === 'key_expired')) {
      health.push(expiry <= now
        ? { code: 'key_expired', severity: 'error', text: 'this node\'s key has expired: run "warren up --auth-key KEY"' }
        : { code: 'key_expiry_soon', severity: 'warning', text: `this node's key expires in ${Math.ceil((expiry - now) / 86_400_000)} days` });
    }
    const byKey = new Map((device?.peers ?? []).map((p) => [p.publicKey, p]));
    return {
      mode: 'mesh',
      backendState: this.backendState,
      controlUrl: this.state.prefs()?.loginServers[0] ?? null,
      controlConnected: this.client?.connected ?? false,
      self: nm ? { id: nm.self.id, name: nm.self.name, addresses: nm.self.addresses, nodeKey: nm.self.nodeKey, keyExpiry: nm.self.keyExpiry, tags: nm.self.tags }
        : reg ? { id: reg.nodeId, name: reg.name, addresses: reg.addresses, nodeKey: Buffer.from(this.state.nodeKey().publicKey).toString('base64'), keyExpiry: reg.keyExpiry, tags: reg.tags } : null,
      peers: (nm?.peers ?? []).map((p) => {
        const d = byKey.get(p.nodeKey);
        const path = this.traversal.peerStatus(p.nodeKey);
        return {
          id: p.id, name: p.name, addresses: p.addresses, online: p.online, lastSeen: p.lastSeen, nodeKey: p.nodeKey,
          endpoint: d?.endpoint ?? null, path: path.path, pathLatencyMs: path.latencyMs, homeRegion: p.homeRegion,
          latestHandshake: d?.latestHandshake ?? 0, rxBytes: d?.rxBytes ?? 0, txBytes: d?.txBytes ?? 0,
          keyExpiry: p.keyExpiry,
        };
      }),
      health,
      netmapVersion: this.version,
      endpoints: this.traversal.endpoints(),
      relays: this.traversal.relayStatus(),
      natCounters: { ...this.traversal.counters },
      portMapping: this.portMapper?.status() ?? null,
      device: device ?? { publicKey: '', listenPort: this.engine.listenPort, fwMark: 0, tun: this.engine.tun, peers: [], drops: {}, counters: {} },
    };
  }

  /** `warren ping`: one disco ping to a peer named by name, tailnet address or node key. */
  async ping(peer: string, timeoutMs: number): Promise<unknown> {
    const nm = this.netmap;
    if (!nm) throw new LocalApiError(409, 'not connected: run "warren up" first');
    const p = nm.peers.find((x) => x.name === peer || x.nodeKey === peer || x.addresses.some((a) => a.replace(/\/\d+$/, '') === peer));
    if (!p) throw new LocalApiError(404, `no such peer "${peer}" in the netmap`);
    try {
      return await this.traversal.ping(p.nodeKey, timeoutMs);
    } catch (e) {
      throw new LocalApiError(504, (e as Error).message);
    }
  }

  async netcheck(): Promise<unknown> {
    if (!this.netmap) throw new LocalApiError(409, 'not connected: run "warren up" first (netcheck uses the relay map from the control server)');
    return this.traversal.netcheck();
  }

  async shutdown(): Promise<void> {
    this.stopClient();
    const m = this.portMapper;
    this.portMapper = null;
    await m?.stop({ deleteMapping: true });
    await this.traversal.stop();
  }
}

function optString(v: unknown, name: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new LocalApiError(400, `${name} must be a string`);
  return v;
}

export async function runMeshMode(o: MeshModeOptions): Promise<number> {
  const { log } = o;
  const state = new NodeState(o.stateDir);
  state.machineKey();
  const engine = await Engine.start({ tunName: o.tun, mtu: MESH_MTU, listenPort: o.port, timers: o.knobs.timers, stateDir: o.stateDir, crypto: o.knobs.crypto, activityReports: true, log });
  const router = new Router({ log: (m) => log('debug', m) });
  const trim = new StartupTrim({ delayMs: o.knobs.trimDelayMs, log });
  const node = new MeshNode(o, state, engine, router, trim);
  log('info', `tunnel ${engine.tun} ready, UDP ${engine.listenPort}; state in ${o.stateDir}`);
  const routes: LocalApiRoute[] = [
    { method: 'GET', path: '/v0/status', handle: async () => node.status(await engine.status()) },
    {
      method: 'POST', path: '/v0/up', handle: (r) => {
        const b = jsonObjectBody(r.body);
        const servers = b['loginServers'];
        if (servers !== undefined && (!Array.isArray(servers) || servers.some((s) => typeof s !== 'string'))) throw new LocalApiError(400, 'loginServers must be a list of URLs');
        const stat = b['staticEndpoints'];
        if (stat !== undefined && (!Array.isArray(stat) || stat.some((s) => typeof s !== 'string' || !parseEndpoint(s)))) throw new LocalApiError(400, 'staticEndpoints must be a list of IP:PORT');
        const noPm = b['noPortMapping'];
        if (noPm !== undefined && typeof noPm !== 'boolean') throw new LocalApiError(400, 'noPortMapping must be true or false');
        return node.up({ loginServers: servers as string[] | undefined, authKey: optString(b['authKey'], 'authKey'), hostname: optString(b['hostname'], 'hostname'), fingerprint: optString(b['fingerprint'], 'fingerprint'), staticEndpoints: stat as string[] | undefined, noPortMapping: noPm });
      },
    },
    {
      method: 'POST', path: '/v0/ping', handle: (r) => {
        const b = jsonObjectBody(r.body);
        const peer = b['peer'];
        const t = b['timeoutMs'] ?? 2000;
        if (typeof peer !== 'string' || !peer) throw new LocalApiError(400, 'peer must be a name, address or node key');
        if (typeof t !== 'number' || !Number.isInteger(t) || t < 1 || t > 60_000) throw new LocalApiError(400, 'timeoutMs must be an integer from 1 to 60000');
        return node.ping(peer, t);
      },
    },
    { method: 'POST', path: '/v0/netcheck', handle: () => node.netcheck() },
    { method: 'POST', path: '/v0/down', handle: () => node.down() },
    { method: 'POST', path: '/v0/logout', handle: () => node.logout() },
    { method: 'POST', path: '/v0/rotate-node-key', handle: () => node.rotateNodeKey() },
  ];
  const api = new LocalApiServer({ socketPath: o.socketPath, routes, log: (m) => log('debug', m) });
  try {
    await node.resume();
    await api.start();
  } catch (err) {
    await node.shutdown();
    await router.teardown().catch(() => undefined);
    await engine.stop();
    throw err;
  }
  log('info', `ready: ${node.backendState}; LocalAPI at ${o.socketPath}`);
  trim.arm('start-up', 0);
  return untilStopped(log, async () => {
    trim.stop();
    await api.stop().catch(() => undefined);
    await node.shutdown();
    await router.teardown().catch((e: Error) => log('warn', `removing routes: ${e.message}`));
    await engine.stop();
  });
}
