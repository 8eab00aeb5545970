/**
 * NAT traversal for one node: the owner of everything between WireGuard and
 * the wire that is not a packet's encryption. It
 *  - answers the engine's events: disco/STUN datagrams from the data socket,
 *    WireGuard messages to carry over a relay, peers with traffic;
 *  - keeps one PeerPaths (path choice) per peer and pushes each peer's current
 *    path to the engine as a 20-byte endpoint (direct address or relay);
 *  - speaks disco (sealed ping/pong/call-me-maybe) over UDP and the relays;
 *  - knows our endpoints (LAN addresses, STUN-discovered, port-mapped,
 *    static) and tells control and peers when they change;
 *  - runs netcheck, picks the home relay region, answers `warren ping`.
 */
import { randomBytes } from 'node:crypto';
import ipaddr from 'ipaddr.js';
import { encodeEndpoint, encodeRelayEndpoint, endpointIp, endpointPort, relayHandle, ENDPOINT_LEN } from '../dataplane/endpoint.js';
import type { Datagram } from '../dataplane/engine-protocol.js';
import type { EngineEvents } from '../dataplane/engine.js';
import { systemClock, type Clock } from '../dataplane/clock.js';
import { isDisco, openDisco, sealDiscoAfterNm, type DiscoMessage } from '../wire/disco.js';
import { boxBeforeNm } from '../crypto/box.js';
import { isStun } from '../wire/stun.js';
import { parseEndpoint, type Netmap, type NodeView, type RelayMap } from '../wire/control.js';
import { localEndpoints } from '../control/endpoints.js';
import { PeerPaths, type DirectAddr, type Path } from './peer-paths.js';
import type { PathTimers } from './path-timers.js';
import { RelayPool } from './relay-pool.js';
import { StunClient } from './stun-client.js';
import { chooseHome, runNetcheck, type NetcheckReport, type PortMappingReport } from './netcheck.js';

/** What Traversal needs of the port mapper (src/nat/portmap PortMapper). */
export interface PortMapSource {
  onChange: (() => void) | null;
  mappedEndpoint(): string | null;
  refresh(): Promise<PortMappingReport>;
}
import { BIRTHDAY_LIMITS, birthdayRole, peerMappingVaries, publicV4, randomPorts, type BirthdayLimits } from './birthday.js';

export interface TraversalEngine {
  readonly listenPort: number;
  readonly tun: string;
  events: EngineEvents | null;
  sendDatagrams(items: Datagram[]): void;
  relayReceive(items: Datagram[]): void;
  setEndpoints(items: Array<{ key: string; endpoint: Uint8Array | null }>): void;
  /** Extra IPv4 sockets for birthday-paradox probing (index 1..255 → local port). */
  setExtraSockets?(count: number, keep?: number[]): Promise<Map<number, number>>;
}

export interface KeyPairLike {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
}

export interface TraversalOptions {
  engine: TraversalEngine;
  nodeKey: KeyPairLike;
  discoKey: KeyPairLike;
  timers: PathTimers;
  /** Operator-set endpoints (a port forward, a load balancer): always advertised first. */
  staticEndpoints: string[];
  relayKeepaliveMs?: number;
  relayBackoff?: { minMs: number; maxMs: number };
  log: (level: 'info' | 'warn' | 'debug', msg: string) => void;
  /** Our endpoint list changed: tell control. */
  onEndpointsChanged(): void;
  /** Our home region changed: tell control (hostinfo.netinfo). */
  onNetinfoChanged(): void;
  clock?: Clock;
  /** Birthday-paradox limits (tests shorten them; sockets 0 turns it off). */
  birthday?: BirthdayLimits;
}

interface PeerEntry {
  key: string;
  keyBytes: Uint8Array;
  handle: number;
  name: string;
  disco: Uint8Array;
  discoB64: string;
  /** crypto_box_beforenm(peer disco key, our disco key), made on first use. */
  shared?: Uint8Array | null;
  homeRegion: number;
  paths: PeerPaths;
  /** Where the engine sends this peer's packets now (as pushed), for change detection. */
  pushed: string;
  /** With no relay at all, the netmap's first endpoint is a reasonable first guess. */
  guess: DirectAddr | null;
  lastPath: string;
  /** Last time (clock ms) traffic or a ping was seen for this peer. */
  lastActive: number;
  /** The peer's candidates from the netmap. */
  cands: DirectAddr[];
  /** The peer's own netcheck verdict (hard NAT = true). */
  mappingVaries: boolean | null;
  /** Since when the peer has been on the relay (Infinity: not on it). */
  relaySince: number;
  lastBirthday: number;
}

interface BirthdayRun {
  peer: PeerEntry;
  role: 'hard' | 'easy';
  until: number;
  timer: NodeJS.Timeout | null;
  /** Spray pings carry txids starting with these bytes (hex), so their pongs are recognised. */
  prefix: string;
  sockets: number[];
  sent: number;
}

export interface PingResult {
  peer: string;
  via: string;
  latencyMs: number;
  /** Where the pong says our ping came from. */
  seenAs: string | null;
}

export interface PeerPathStatus {
  path: string | null;
  latencyMs: number | null;
  direct: boolean;
}

const b64 = (k: Uint8Array): string => Buffer.from(k).toString('base64');
const fmtAddr = (a: DirectAddr): string => (a.ip.includes(':') ? `[${a.ip}]:${a.port}` : `${a.ip}:${a.port}`);
const CGNAT = ipaddr.parseCIDR('100.64.0.0/10');

/** Put an extra socket's index (1..255) into an endpoint's byte [1]; 0/undefined = the main socket. */
function withSocket(ep: Uint8Array, socket: number | undefined): Uint8Array {
  if (socket) ep[1] = socket;
  return ep;
}

/**
 * This host's LAN candidates: interface addresses with the data port, except
 * carrier-NAT space (100.64.0.0/10) — that is only ever the inside of someone
 * else's NAT, and it is also where tailnet addresses live.
 */
export function lanEndpoints(port: number, tun: string, ifaces?: Parameters<typeof localEndpoints>[2]): string[] {
  return localEndpoints(port, tun, ifaces).filter((e) => {
    const p = parseEndpoint(e);
    if (!p || p.ip.includes(':')) return p !== null;
    return !ipaddr.parse(p.ip).match(CGNAT);
  });
}

export class Traversal {
  private readonly peers = new Map<string, PeerEntry>();
  private readonly byDisco = new Map<string, PeerEntry>();
  private readonly byHandle = new Map<number, PeerEntry>();
  private nextHandle = 1;
  private readonly relays: RelayPool;
  private readonly stun: StunClient;
  private readonly clock: Clock;
  private stunEndpoints: string[] = [];
  private lastEndpoints = '';
  private report: NetcheckReport | null = null;
  private netcheckRunning: Promise<NetcheckReport> | null = null;
  private tickTimer: NodeJS.Timeout | null = null;
  private tickAt = Infinity;
  private periodic: NodeJS.Timeout[] = [];
  private readonly pings = new Map<string, (r: { from: string; seenAs: string | null }) => void>();
  private relayMap: RelayMap = { regions: [] };
  private stopped = false;
  private lastRestun = 0;
  /** netinfo() as last reported to the owner (control): only a change is worth a netmap delta to every peer. */
  private lastNetinfo = '';
  private portmap: PortMapSource | null = null;
  readonly counters = {
    disco_rx: 0, disco_tx: 0, disco_bad: 0, disco_unknown_sender: 0, stun_rx: 0,
    /** WireGuard messages carried by relays, each way. */
    relay_wg_rx: 0, relay_wg_tx: 0, relay_rx_unknown_peer: 0,
  };

  constructor(private readonly o: TraversalOptions) {
    this.clock = o.clock ?? systemClock;
    this.relays = new RelayPool({
      nodeKey: o.nodeKey,
      onPacket: (region, src, data) => this.fromRelay(region, src, data),
      log: o.log,
      keepaliveMs: o.relayKeepaliveMs,
      backoff: o.relayBackoff,
      onHomeState: (up) => {
        if (up) this.netinfoChanged();
      },
    });
    this.stun = new StunClient({
      send: (data, ip, port) => this.sendUdp(data, { ip, port }),
    });
    o.engine.events = {
      datagrams: (items) => this.fromSocket(items),
      relaySend: (items) => this.toRelay(items),
      activity: (keys) => {
        const now = this.clock.now();
        const wasIdle = !this.anyActive();
        for (const k of keys) {
          const e = this.peers.get(k);
          if (!e) continue;
          e.lastActive = now;
          e.paths.noteTraffic();
        }
        if (wasIdle && now - this.lastRestun >= this.o.timers.reStunMs) void this.restun();
        this.kick();
      },
    };
    // Re-STUN only while some peer is active (as Tailscale does): an idle node sends nothing
    // but the 5-minute netcheck, and activity re-STUNs when it is due.
    this.periodic.push(setInterval(() => {
      if (this.anyActive()) void this.restun();
    }, o.timers.reStunMs));
    this.periodic.push(setInterval(() => void this.netcheck().catch(() => undefined), o.timers.netcheckMs));
    this.periodic.push(setInterval(() => this.checkEndpoints(), Math.min(5000, o.timers.reStunMs)));
    for (const t of this.periodic) t.unref();
  }

  // ------------------------------------------------------------ netmap

  /** A new netmap (null: down). Peers keep their path state across netmaps. */
  setNetmap(nm: Netmap | null): void {
    const relayMap = nm?.relayMap ?? { regions: [] };
    const mapChanged = JSON.stringify(relayMap) !== JSON.stringify(this.relayMap);
    this.relayMap = relayMap;
    if (mapChanged) {
      this.relays.setMap(relayMap);
      if (!this.relays.region(this.relays.homeRegion) && relayMap.regions[0]) {
        // Provisional home until netcheck measures: the first region, so peers can reach us at once.
        this.relays.setHome(relayMap.regions[0].id);
        this.netinfoChanged();
      }
      if (relayMap.regions.length) void this.netcheck().catch(() => undefined);
    }
    const wanted = new Set<string>();
    for (const p of nm?.peers ?? []) {
      wanted.add(p.nodeKey);
      this.upsertPeer(p);
    }
    for (const [key, e] of this.peers) {
      if (!wanted.has(key)) {
        this.peers.delete(key);
        // A peer that rotated its node key keeps its disco key: the new entry owns it now.
        if (this.byDisco.get(e.discoB64) === e) this.byDisco.delete(e.discoB64);
        this.byHandle.delete(e.handle);
      }
    }
    // The engine has just taken this netmap's snapshot and may have recreated peers (our own key
    // rotated, a peer's expiry renewed) without an endpoint: tell it every path again.
    for (const e of this.peers.values()) e.pushed = '';
    this.kick();
  }

  private upsertPeer(p: NodeView): void {
    let e = this.peers.get(p.nodeKey);
    if (e && e.discoB64 !== p.discoKey) {
      if (this.byDisco.get(e.discoB64) === e) this.byDisco.delete(e.discoB64);
      e.discoB64 = p.discoKey;
      e.disco = new Uint8Array(Buffer.from(p.discoKey, 'base64'));
      delete e.shared;
      this.byDisco.set(e.discoB64, e);
    }
    if (!e) {
      const handle = this.nextHandle++;
      const entry: PeerEntry = {
        key: p.nodeKey, keyBytes: new Uint8Array(Buffer.from(p.nodeKey, 'base64')), handle, name: p.name,
        disco: new Uint8Array(Buffer.from(p.discoKey, 'base64')), discoB64: p.discoKey, homeRegion: 0,
        paths: null as unknown as PeerPaths, pushed: '', guess: null, lastPath: '', lastActive: -Infinity,
        cands: [], mappingVaries: null, relaySince: Infinity, lastBirthday: -Infinity,
      };
      entry.paths = new PeerPaths({
        clock: this.clock,
        timers: this.o.timers,
        io: {
          sendPing: (to, txid) => this.sendPing(entry, to, txid),
          sendCallMeMaybe: () => this.sendCallMeMaybe(entry),
        },
      });
      e = entry;
      this.peers.set(p.nodeKey, e);
      this.byDisco.set(e.discoB64, e);
      this.byHandle.set(handle, e);
    }
    e.name = p.name;
    e.homeRegion = p.homeRegion;
    e.paths.setPeerHomeRegion(p.homeRegion || this.relays.homeRegion);
    const cands = p.endpoints.map(parseEndpoint).filter((x): x is DirectAddr => x !== null);
    e.paths.setCandidates(cands);
    e.cands = cands;
    e.mappingVaries = peerMappingVaries(p.hostinfo);
    e.guess = cands.find((c) => !c.ip.includes(':')) ?? cands[0] ?? null;
  }

  // ------------------------------------------------------------ paths → engine

  /** Run due timers, push changed paths to the engine, and sleep until the next deadline. */
  private kick(): void {
    if (this.stopped) return;
    const now = this.clock.now();
    const changes: Array<{ key: string; endpoint: Uint8Array | null }> = [];
    let next = Infinity;
    for (const e of this.peers.values()) {
      if (e.paths.nextDeadline <= now) e.paths.tick();
      const path = e.paths.current();
      const ep = this.endpointFor(e, path);
      const tag = ep ? Buffer.from(ep).toString('hex') : '';
      if (tag !== e.pushed) {
        e.pushed = tag;
        changes.push({ key: e.key, endpoint: ep });
      }
      if (path.kind === 'relay') e.relaySince = Math.min(e.relaySince, now);
      else e.relaySince = Infinity;
      const desc = this.describe(e, path);
      if (desc !== e.lastPath) {
        if (e.lastPath !== '' || desc !== 'none') this.o.log('info', `peer ${e.name}: path ${desc}`);
        if (path.kind === 'relay' && e.lastPath.startsWith('direct')) this.restunSoon();
        e.lastPath = desc;
      }
      next = Math.min(next, e.paths.nextDeadline);
    }
    this.o.engine.setEndpoints(changes);
    this.birthdayCheck(now);
    this.schedule(next);
  }

  private schedule(at: number): void {
    if (at === Infinity || (this.tickTimer && this.tickAt <= at)) return;
    if (this.tickTimer) clearTimeout(this.tickTimer);
    this.tickAt = at;
    this.tickTimer = setTimeout(() => {
      this.tickTimer = null;
      this.tickAt = Infinity;
      this.kick();
    }, Math.max(5, at - this.clock.now()));
    this.tickTimer.unref();
  }

  private endpointFor(e: PeerEntry, path: Path): Uint8Array | null {
    if (path.kind === 'direct') return withSocket(encodeEndpoint(path.addr.ip, path.addr.port), path.addr.socket);
    if (path.kind === 'relay') return encodeRelayEndpoint(path.region, e.handle);
    // No relay configured and nothing confirmed yet: try the address control gave us.
    return this.relayMap.regions.length === 0 && e.guess ? encodeEndpoint(e.guess.ip, e.guess.port) : null;
  }

  private describe(e: PeerEntry, path: Path): string {
    if (path.kind === 'direct') return `direct ${fmtAddr(path.addr)}`;
    if (path.kind === 'relay') return `relay(${this.regionCode(path.region)})`;
    return e.guess && this.relayMap.regions.length === 0 ? `guess ${fmtAddr(e.guess)}` : 'none';
  }

  private regionCode(id: number): string {
    return this.relays.region(id)?.code ?? String(id);
  }

  // ------------------------------------------------------------ disco

  /** The box key shared with a peer's disco key, made once; null if that key is unusable (a low-order point). */
  private sharedKey(e: PeerEntry): Uint8Array | null {
    if (e.shared === undefined) {
      try {
        e.shared = boxBeforeNm(e.disco, this.o.discoKey.privateKey);
      } catch {
        e.shared = null;
      }
    }
    return e.shared;
  }

  /** A sealed disco datagram for `e`; null (send nothing) if its disco key is unusable. */
  private seal(e: PeerEntry, msg: DiscoMessage): Uint8Array | null {
    const key = this.sharedKey(e);
    if (!key) return null;
    this.counters.disco_tx++;
    // With the cached key: an X25519 per message would cost ~1 ms, and every ping (even a replayed one) gets a pong.
    return sealDiscoAfterNm(msg, this.o.discoKey.publicKey, key);
  }

  private sendPing(e: PeerEntry, to: DirectAddr | { relay: number }, txid: Uint8Array): void {
    const pkt = this.seal(e, { type: 'ping', txid, nodeKey: this.o.nodeKey.publicKey });
    if (!pkt) return;
    if ('relay' in to) this.relays.send(to.relay, e.keyBytes, pkt);
    else this.sendUdp(pkt, to);
  }

  private sendCallMeMaybe(e: PeerEntry): void {
    const region = e.homeRegion || this.relays.homeRegion;
    if (!region) return;
    const endpoints = this.endpoints().map(parseEndpoint).filter((x): x is DirectAddr => x !== null);
    const pkt = this.seal(e, { type: 'callMeMaybe', endpoints });
    if (pkt) this.relays.send(region, e.keyBytes, pkt);
  }

  /** `relayedBy`: the node key the relay says sent it (for messages that came through a relay). */
  private handleDisco(data: Uint8Array, from: DirectAddr | { relay: number }, relayedBy?: Uint8Array): void {
    let e: PeerEntry | undefined;
    // Only peers' disco keys are worth a Diffie-Hellman; their shared keys are cached.
    const opened = openDisco(data, this.o.discoKey.privateKey, (sender) => {
      e = this.byDisco.get(b64(sender));
      if (!e) return null;
      return this.sharedKey(e);
    });
    if (!opened || !e) {
      if (e) this.counters.disco_bad++;
      else this.counters.disco_unknown_sender++;
      return;
    }
    if (relayedBy && b64(relayedBy) !== e.key) {
      // Sealed by this peer but sent through the relay by another node (a replay): not from the peer.
      this.counters.disco_bad++;
      return;
    }
    this.counters.disco_rx++;
    const m = opened.msg;
    if (m.type === 'ping') {
      if (b64(m.nodeKey) !== e.key) return; // a stale or foreign node key: not this peer any more
      const src = 'relay' in from ? { ip: '::', port: 0 } : from;
      const pong = this.seal(e, { type: 'pong', txid: m.txid, src });
      if (pong && 'relay' in from) this.relays.send(from.relay, e.keyBytes, pong);
      else if (pong) this.sendUdp(pong, from as DirectAddr);
      e.paths.onPingReceived(from);
    } else if (m.type === 'pong') {
      const b = this.bday;
      if (b && b.peer === e && !('relay' in from) && Buffer.from(m.txid.subarray(0, 6)).toString('hex') === b.prefix) {
        // A spray probe met one of the hard side's mappings: make it a candidate (path choice confirms it).
        this.o.log('info', `peer ${e.name}: birthday probe answered from ${fmtAddr(from)} after ${b.sent} probes`);
        e.paths.addCandidates([from], 'ping');
      }
      const waiter = this.pings.get(Buffer.from(m.txid).toString('hex'));
      if (waiter) {
        waiter({ from: 'relay' in from ? `relay(${this.regionCode(from.relay)})` : fmtAddr(from), seenAs: m.src.port ? fmtAddr(m.src) : null });
      }
      e.paths.onPong(m.txid, from);
    } else if (m.type === 'callMeMaybe') {
      e.paths.addCandidates(m.endpoints, 'callmemaybe');
    }
    this.kick();
  }

  // ------------------------------------------------------------ I/O

  private sendUdp(data: Uint8Array, to: DirectAddr): void {
    let addr: Uint8Array;
    try {
      addr = withSocket(encodeEndpoint(to.ip, to.port), to.socket);
    } catch {
      return;
    }
    this.o.engine.sendDatagrams([{ data, addr }]);
  }

  private fromSocket(items: Datagram[]): void {
    for (const d of items) {
      const sock = d.addr[1]!;
      const from: DirectAddr = sock ? { ip: endpointIp(d.addr), port: endpointPort(d.addr), socket: sock } : { ip: endpointIp(d.addr), port: endpointPort(d.addr) };
      if (isStun(d.data, 0, d.data.length)) {
        this.counters.stun_rx++;
        this.stun.handle(d.data, from);
      } else if (isDisco(d.data, 0, d.data.length)) this.handleDisco(d.data, from);
    }
  }

  private fromRelay(region: number, src: Uint8Array, data: Uint8Array): void {
    if (isDisco(data, 0, data.length)) return this.handleDisco(data, { relay: region }, src);
    const e = this.peers.get(b64(src));
    if (!e) {
      this.counters.relay_rx_unknown_peer++;
      return;
    }
    this.counters.relay_wg_rx++;
    // A copy: `data` is a view into the TLS read buffer (16 KiB), which postMessage would clone whole.
    this.o.engine.relayReceive([{ data: new Uint8Array(data), addr: encodeRelayEndpoint(region, e.handle) }]);
  }

  private toRelay(items: Datagram[]): void {
    for (const d of items) {
      if (d.addr.length !== ENDPOINT_LEN) continue;
      const e = this.byHandle.get(relayHandle(d.addr));
      if (!e) continue;
      this.counters.relay_wg_tx++;
      this.relays.send(endpointPort(d.addr), e.keyBytes, d.data);
    }
  }

  // ------------------------------------------------------------ endpoints, STUN, netcheck

  /** Our endpoints as we advertise them: static first, then port-mapped, STUN-discovered, LAN. At most 64. */
  endpoints(): string[] {
    const mapped = this.portmap?.mappedEndpoint();
    const all = [...this.o.staticEndpoints, ...(mapped ? [mapped] : []), ...this.stunEndpoints, ...lanEndpoints(this.o.engine.listenPort, this.o.engine.tun)];
    // Only what control accepts: a STUN answer may say port 0, and one bad entry gets our map stream closed.
    return [...new Set(all)].filter((ep) => parseEndpoint(ep) !== null).slice(0, 64);
  }

  /** What control should know about our network (hostinfo.netinfo). */
  netinfo(): { homeRegion: number; mappingVaries: boolean | null; udp: boolean | null } {
    return { homeRegion: this.relays.homeRegion, mappingVaries: this.report?.mappingVaries ?? null, udp: this.report?.udp ?? null };
  }

  /**
   * netinfo() as it is sent to control now (in a hello or a hostinfo frame):
   * later changes are measured against what control really has, so a new
   * session that said "no home region yet" is corrected once one is chosen.
   */
  netinfoSent(): ReturnType<Traversal['netinfo']> {
    const n = this.netinfo();
    this.lastNetinfo = JSON.stringify(n);
    return n;
  }

  /** Tell the owner if netinfo() changed since control last heard it. */
  private netinfoChanged(): void {
    const now = JSON.stringify(this.netinfo());
    if (now === this.lastNetinfo) return;
    this.lastNetinfo = now;
    this.o.onNetinfoChanged();
  }

  private checkEndpoints(): void {
    const list = this.endpoints().join(',');
    if (list === this.lastEndpoints) return;
    const first = this.lastEndpoints === '';
    this.lastEndpoints = list;
    if (first) return;
    this.o.log('info', `our endpoints: ${list || '(none)'}`);
    this.o.onEndpointsChanged();
    // Peers we talk to hear it at once (control's delta follows); idle ones learn it from control.
    const now = this.clock.now();
    for (const e of this.peers.values()) if (now - e.lastActive < this.o.timers.sessionActiveMs) this.sendCallMeMaybe(e);
  }

  private anyActive(): boolean {
    const now = this.clock.now();
    for (const e of this.peers.values()) if (now - e.lastActive < this.o.timers.sessionActiveMs) return true;
    return false;
  }

  private restunSoon(): void {
    const now = this.clock.now();
    if (now - this.lastRestun < 1000) return;
    void this.restun();
  }

  /** Ask the STUN servers again what our data socket looks like from outside. */
  private async restun(): Promise<void> {
    this.lastRestun = this.clock.now();
    const servers = this.relayMap.regions.flatMap((r) => r.nodes.flatMap((n) => n.stun)).map(parseEndpoint).filter((x): x is DirectAddr => x !== null);
    const seen = new Set<string>();
    await Promise.all(servers.map(async (s) => {
      try {
        const r = await this.stun.query(s, { timeoutMs: 2000 });
        seen.add(fmtAddr(r.mapped));
      } catch {
        // unanswered
      }
    }));
    if (this.stopped) return;
    this.stunEndpoints = [...seen].sort();
    this.checkEndpoints();
  }

  /** Measure the network now (one at a time), and re-pick the home region. */
  netcheck(): Promise<NetcheckReport> {
    if (this.netcheckRunning) return this.netcheckRunning;
    this.netcheckRunning = Promise.all([runNetcheck({
      regions: this.relayMap.regions,
      stun: (server, timeoutMs) => this.stun.query(server, { timeoutMs }),
      relayPing: (region, timeoutMs) => this.relays.ping(region, timeoutMs),
      timeoutMs: 2000,
    }), this.portmap?.refresh().catch(() => null) ?? null]).then(([report, portMapping]) => {
      if (portMapping) report.portMapping = portMapping;
      this.report = report;
      const seen = new Set<string>();
      if (report.publicIPv4) seen.add(report.publicIPv4);
      if (report.publicIPv6) seen.add(report.publicIPv6);
      // Behind a hard NAT this endpoint only works for the STUN server, but it costs peers one ping to find out.
      this.stunEndpoints = [...seen];
      this.lastRestun = this.clock.now();
      const home = chooseHome(this.relays.homeRegion, report.regions);
      if (home !== this.relays.homeRegion) {
        this.o.log('info', `home relay region: ${this.regionCode(home)}`);
        this.relays.setHome(home);
        for (const e of this.peers.values()) if (!e.homeRegion) e.paths.setPeerHomeRegion(home);
      }
      this.netinfoChanged();
      this.checkEndpoints();
      return report;
    }).finally(() => {
      this.netcheckRunning = null;
    });
    return this.netcheckRunning;
  }

  get lastReport(): NetcheckReport | null {
    return this.report;
  }

  // ------------------------------------------------------------ birthday paradox

  private bday: BirthdayRun | null = null;

  /** Start, or end, a birthday attempt (one at a time per node). */
  private birthdayCheck(now: number): void {
    const b = this.bday;
    if (b) {
      const gone = this.peers.get(b.peer.key) !== b.peer;
      if (gone || now >= b.until || b.peer.paths.current().kind === 'direct') {
        if (!gone) this.o.log('info', `peer ${b.peer.name}: birthday attempt ${b.peer.paths.current().kind === 'direct' ? 'succeeded' : 'gave up (staying on the relay)'} after ${b.sent} probes`);
        this.stopBirthday();
      }
      return;
    }
    const L = this.o.birthday ?? BIRTHDAY_LIMITS;
    if (L.sockets <= 0 || this.stopped || !this.o.engine.setExtraSockets) return;
    for (const e of this.peers.values()) {
      if (now - e.lastActive >= this.o.timers.sessionActiveMs || now - e.relaySince < L.relayFirstMs || now - e.lastBirthday < L.cooldownMs) continue;
      const role = birthdayRole(this.report?.mappingVaries ?? null, e.mappingVaries);
      const targets = publicV4(e.cands);
      if (!role || !targets.length) continue;
      e.lastBirthday = now;
      this.startBirthday(e, role, targets, L, now);
      return;
    }
  }

  private startBirthday(e: PeerEntry, role: 'hard' | 'easy', targets: DirectAddr[], L: BirthdayLimits, now: number): void {
    const run: BirthdayRun = { peer: e, role, until: now + L.durationMs, timer: null, prefix: randomBytes(6).toString('hex'), sockets: [], sent: 0 };
    this.bday = run;
    this.o.log('info', `peer ${e.name}: no direct path; birthday attempt as the ${role} side (${role === 'hard' ? `${L.sockets} sockets` : `${L.probesPerSec} probes/s`}, ${L.durationMs / 1000} s)`);
    const txid = (): Uint8Array => {
      const t = new Uint8Array(12);
      t.set(Buffer.from(run.prefix, 'hex'));
      t.set(randomBytes(6), 6);
      return t;
    };
    if (role === 'hard') {
      void this.o.engine.setExtraSockets!(L.sockets, this.socketsInUse()).then((socks) => {
        if (this.bday !== run) return;
        run.sockets = [...socks.keys()].filter((i) => !this.socketsInUse().includes(i));
        const round = (): void => {
          if (this.bday !== run) return;
          for (const t of targets) {
            const pkt = this.seal(e, { type: 'ping', txid: txid(), nodeKey: this.o.nodeKey.publicKey });
            if (!pkt) return;
            this.o.engine.sendDatagrams(run.sockets.map((sock) => ({ data: pkt, addr: withSocket(encodeEndpoint(t.ip, t.port), sock) })));
            run.sent += run.sockets.length;
          }
          run.timer = setTimeout(round, L.hardRoundMs);
        };
        round();
      }).catch((err: Error) => this.o.log('warn', `birthday sockets: ${err.message}`));
    } else {
      const ips = [...new Set(targets.map((t) => t.ip))];
      const tickMs = 50;
      const perTick = Math.max(1, Math.round((L.probesPerSec * tickMs) / 1000));
      const spray = (): void => {
        if (this.bday !== run) return;
        const pkt = this.seal(e, { type: 'ping', txid: txid(), nodeKey: this.o.nodeKey.publicKey });
        if (!pkt) return;
        const items: Datagram[] = [];
        for (const ip of ips) for (const port of randomPorts(perTick)) items.push({ data: pkt, addr: encodeEndpoint(ip, port) });
        this.o.engine.sendDatagrams(items);
        run.sent += items.length;
        run.timer = setTimeout(spray, tickMs);
      };
      spray();
    }
    this.schedule(run.until);
  }

  private stopBirthday(): void {
    const b = this.bday;
    if (!b) return;
    this.bday = null;
    if (b.timer) clearTimeout(b.timer);
    // The winner (a socket a direct path now uses) stays; the rest close.
    if (b.role === 'hard') void this.o.engine.setExtraSockets?.(0, this.socketsInUse()).catch(() => undefined);
  }

  /** Extra sockets that some peer's current path sends from. */
  private socketsInUse(): number[] {
    const out: number[] = [];
    for (const e of this.peers.values()) {
      const p = e.paths.current();
      if (p.kind === 'direct' && p.addr.socket) out.push(p.addr.socket);
    }
    return out;
  }

  // ------------------------------------------------------------ ping, status

  /** One disco ping to a peer over its current path (or the relay); resolves with the pong. */
  async ping(key: string, timeoutMs: number): Promise<PingResult> {
    const e = this.peers.get(key);
    if (!e) throw new Error('no such peer');
    e.lastActive = this.clock.now();
    e.paths.noteTraffic();
    this.kick();
    const path = e.paths.current();
    const txid = new Uint8Array(randomBytes(12));
    const hex = Buffer.from(txid).toString('hex');
    const sent = this.clock.now();
    const answer = new Promise<{ from: string; seenAs: string | null }>((resolve, reject) => {
      const t = setTimeout(() => {
        this.pings.delete(hex);
        reject(new Error(`no pong from ${e.name} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pings.set(hex, (r) => {
        clearTimeout(t);
        this.pings.delete(hex);
        resolve(r);
      });
    });
    if (path.kind === 'direct') this.sendPing(e, path.addr, txid);
    else {
      const region = path.kind === 'relay' ? path.region : e.homeRegion || this.relays.homeRegion;
      if (region) this.sendPing(e, { relay: region }, txid);
      else if (e.guess) this.sendPing(e, e.guess, txid);
    }
    const r = await answer;
    return { peer: e.name, via: r.from, latencyMs: this.clock.now() - sent, seenAs: r.seenAs };
  }

  peerStatus(key: string): PeerPathStatus {
    const e = this.peers.get(key);
    if (!e) return { path: null, latencyMs: null, direct: false };
    const st = e.paths.status();
    const desc = st.path.kind === 'direct' ? fmtAddr(st.path.addr) : st.path.kind === 'relay' ? `relay(${this.regionCode(st.path.region)})` : null;
    return { path: desc, latencyMs: st.latencyMs, direct: st.path.kind === 'direct' };
  }

  relayStatus(): ReturnType<RelayPool['status']> {
    return this.relays.status();
  }

  /** Port mapping on (a mapper) or off (null): its granted endpoint is one of ours. */
  setPortMapper(m: PortMapSource | null): void {
    if (this.portmap) this.portmap.onChange = null;
    this.portmap = m;
    if (m) m.onChange = () => this.checkEndpoints();
    this.checkEndpoints();
  }

  setStaticEndpoints(eps: string[]): void {
    this.o.staticEndpoints = eps.slice();
    this.checkEndpoints();
  }

  /** Our node key changed (rotation, or a new registration after logout); the same key again changes nothing. */
  setNodeKey(k: KeyPairLike): void {
    if (Buffer.from(k.publicKey).equals(Buffer.from(this.o.nodeKey.publicKey))) return;
    this.o.nodeKey = k;
    this.relays.setNodeKey(k);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopBirthday();
    for (const t of this.periodic) clearInterval(t);
    if (this.tickTimer) clearTimeout(this.tickTimer);
    this.o.engine.events = null;
    this.stun.close();
    await this.relays.close();
  }
}
