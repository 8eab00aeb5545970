/**
 * The port mapper: asks the default gateway to forward a public UDP port to
 * warrend's data socket, and keeps that mapping alive.
 *
 *   probe    PCP (ANNOUNCE), NAT-PMP (external address) and UPnP-IGD (SSDP,
 *            description) at once; report which the gateway speaks
 *   create   with the first supported of PCP > NAT-PMP > UPnP (or the one
 *            protocol a test forces), internal port = the data port,
 *            suggested external port = the one granted last time
 *   renew    at half the granted lifetime (the same request again); on
 *            failure retry until it expires, then drop it
 *   check    every poll: re-read the gateway and our address (a change
 *            drops the mapping and re-probes); ask the gateway whether it
 *            still has the mapping (PCP/NAT-PMP epoch, UPnP entry) and its
 *            public address (NAT-PMP, UPnP; PCP learns it at renewal), and
 *            map again at once if not (a restarted or renumbered gateway)
 *   stop     deletes the mapping when asked (`warren down`, clean shutdown)
 *
 * A grant becomes a candidate only if it is for our internal port and names
 * a public unicast IPv4 address (a private one means another NAT is in
 * front, so it would reach nobody). One operation at a time; timers come
 * from an injected scheduler and clock so tests can drive them.
 */
import ipaddr from 'ipaddr.js';
import { systemClock, type Clock } from '../../dataplane/clock.js';
import { discoverGateway, type GatewayInfo } from './gateway.js';
import { GatewaySocket, type ExchangeTiming } from './gateway-socket.js';
import { NatPmpClient } from './natpmp-client.js';
import { PcpClient } from './pcp-client.js';
import { UpnpClient, UPNP_MAX_BODY } from './upnp.js';
import { loadMemory, saveMemory, type PortmapMemory } from './memory.js';
import { PROTOCOL_NAMES, PROTOCOL_PREFERENCE, type Grant, type MapDriver, type MapRequest, type PortmapProtocol } from './driver.js';
import { NATPMP_PORT } from '../../wire/natpmp.js';
import { SSDP_GROUP, SSDP_PORT } from './igd.js';
import type { PortMappingReport } from '../netcheck.js';

export interface PortmapNet {
  gatewayInfo(): Promise<GatewayInfo | null>;
  /** The gateway's NAT-PMP/PCP port. */
  gatewayPort: number;
  ssdpPort: number;
  ssdpGroup: string | null;
  timing: ExchangeTiming;
  maxBodyBytes: number;
}

export const DEFAULT_PORTMAP_NET: PortmapNet = {
  gatewayInfo: () => discoverGateway(),
  gatewayPort: NATPMP_PORT,
  ssdpPort: SSDP_PORT,
  ssdpGroup: SSDP_GROUP,
  timing: { timeoutMs: 2000, retransmitMs: 250 },
  maxBodyBytes: UPNP_MAX_BODY,
};

/** Requested lifetime (RFC 6886 recommends 7200 s). */
export const DEFAULT_LIFETIME_SEC = 7200;
export const DEFAULT_POLL_MS = 60_000;
/** Longest lifetime we plan with, whatever the gateway grants. */
const MAX_PLANNED_LIFETIME_SEC = 86_400;
/** Deleting on the way down must not hold up a shutdown. */
const UNMAP_TIMING: ExchangeTiming = { timeoutMs: 1000, retransmitMs: 250 };

export interface PortMapperOptions {
  /** warrend's data port: the mapping's internal port. */
  internalPort: number;
  lifetimeSec?: number;
  /** How often to re-read the gateway and check the mapping. */
  pollMs?: number;
  /** Use only this protocol (a test knob); all are still probed and reported. */
  only?: PortmapProtocol | null;
  /** Where to remember the granted port and PCP nonce (null: nowhere). */
  memoryFile?: string | null;
  log: (level: 'info' | 'warn' | 'debug', msg: string) => void;
  clock?: Clock;
  /** Run `fn` after `ms`; returns a cancel function. Default: an unref'd setTimeout. */
  schedule?: (fn: () => void, ms: number) => () => void;
  net?: Partial<PortmapNet>;
}

export interface PortMapStatus {
  gateway: string | null;
  local: string | null;
  upnp: boolean | null;
  natpmp: boolean | null;
  pcp: boolean | null;
  /** The protocol of the current mapping. */
  protocol: PortmapProtocol | null;
  /** The public endpoint ("ip:port") while a mapping is held. */
  mapped: string | null;
  internalPort: number;
  /** Granted lifetime (s); 0 = permanent. */
  lifetimeSec: number | null;
  renewInMs: number | null;
  expiresInMs: number | null;
  /** Why the last attempt did not give a mapping. */
  lastError: string | null;
  counters: Record<string, number>;
}

interface Active {
  protocol: PortmapProtocol;
  driver: MapDriver;
  externalIp: string;
  externalPort: number;
  lifetimeSec: number;
  renewAt: number;
  expiresAt: number;
}

const defaultSchedule = (fn: () => void, ms: number): (() => void) => {
  const t = setTimeout(fn, ms);
  t.unref();
  return () => clearTimeout(t);
};

const sameEnv = (a: GatewayInfo | null, b: GatewayInfo | null): boolean =>
  a === b || (a !== null && b !== null && a.gateway === b.gateway && a.local === b.local);

function publicIPv4(ip: string | null): ip is string {
  if (ip === null || !ipaddr.IPv4.isValidFourPartDecimal(ip)) return false;
  return ipaddr.IPv4.parse(ip).range() === 'unicast';
}

export class PortMapper {
  /** Called when mappedEndpoint() changes. */
  onChange: (() => void) | null = null;
  private readonly clock: Clock;
  private readonly schedule: (fn: () => void, ms: number) => () => void;
  private readonly net: PortmapNet;
  private readonly lifetimeSec: number;
  private readonly pollMs: number;
  private env: GatewayInfo | null = null;
  private drivers: Map<PortmapProtocol, MapDriver> = new Map();
  private support: Record<PortmapProtocol, boolean | null> = { pcp: null, natpmp: null, upnp: null };
  private probedAt = -Infinity;
  private checkedAt = -Infinity;
  private mapping: Active | null = null;
  private memory: PortmapMemory | null;
  private chain: Promise<void> = Promise.resolve();
  private cancelTimer: (() => void) | null = null;
  private started = false;
  private stopped = false;
  private lastError: string | null = null;
  readonly counters: Record<string, number> = { created: 0, renewed: 0, renew_failed: 0, lost: 0, gateway_reset: 0, rejected_grant: 0 };

  constructor(private readonly o: PortMapperOptions) {
    this.clock = o.clock ?? systemClock;
    this.schedule = o.schedule ?? defaultSchedule;
    this.net = { ...DEFAULT_PORTMAP_NET, ...o.net };
    this.lifetimeSec = o.lifetimeSec ?? DEFAULT_LIFETIME_SEC;
    this.pollMs = o.pollMs ?? DEFAULT_POLL_MS;
    this.memory = o.memoryFile ? loadMemory(o.memoryFile) : null;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    void this.run('start');
  }

  /** Re-probe now (netcheck) and report. */
  async refresh(): Promise<PortMappingReport> {
    if (this.started && !this.stopped) await this.run('refresh');
    return this.report();
  }

  mappedEndpoint(): string | null {
    return this.mapping ? `${this.mapping.externalIp}:${this.mapping.externalPort}` : null;
  }

  report(): PortMappingReport {
    return { ...this.support, mapped: this.mappedEndpoint() };
  }

  status(): PortMapStatus {
    const m = this.mapping;
    const now = this.clock.now();
    const left = (t: number | undefined): number | null => (t === undefined || t === Infinity ? null : Math.max(0, Math.round(t - now)));
    return {
      gateway: this.env?.gateway ?? null, local: this.env?.local ?? null, ...this.support,
      protocol: m?.protocol ?? null, mapped: this.mappedEndpoint(), internalPort: this.o.internalPort,
      lifetimeSec: m?.lifetimeSec ?? null, renewInMs: left(m?.renewAt), expiresInMs: left(m?.expiresAt),
      lastError: this.lastError, counters: { ...this.counters },
    };
  }

  /** Resolves when the operation under way (if any) is done. */
  settled(): Promise<void> {
    return this.chain;
  }

  /** Stop; with deleteMapping, ask the gateway to remove the mapping first (bounded). */
  async stop(o: { deleteMapping: boolean } = { deleteMapping: true }): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.cancelTimer?.();
    this.cancelTimer = null;
    await this.chain;
    const m = this.mapping;
    if (m && o.deleteMapping) {
      await m.driver.unmap(this.request(m.externalPort), m.externalPort, UNMAP_TIMING).catch(() => undefined);
      this.o.log('info', `port mapping: deleted ${this.mappedEndpoint()} (${PROTOCOL_NAMES[m.protocol]})`);
    }
    this.mapping = null;
    this.closeDrivers();
    if (m) this.onChange?.();
  }

  // ------------------------------------------------------------ the one loop

  private run(reason: 'start' | 'timer' | 'refresh'): Promise<void> {
    const next = this.chain.then(() => this.step(reason)).catch((e: Error) => {
      this.o.log('warn', `port mapping: ${e.message}`);
    }).then(() => this.arm());
    this.chain = next;
    return next;
  }

  private arm(): void {
    if (this.stopped) return;
    this.cancelTimer?.();
    const now = this.clock.now();
    const at = Math.min(this.mapping?.renewAt ?? Infinity, now + this.pollMs);
    this.cancelTimer = this.schedule(() => {
      this.cancelTimer = null;
      void this.run('timer');
    }, Math.max(0, at - now));
  }

  private async step(reason: 'start' | 'timer' | 'refresh'): Promise<void> {
    if (this.stopped) return;
    const env = await this.net.gatewayInfo().catch(() => null);
    if (this.stopped) return;
    if (!sameEnv(env, this.env)) this.switchEnv(env);
    if (!this.env) {
      this.lastError = 'no default gateway';
      return;
    }
    const now = this.clock.now();
    const anySupported = Object.values(this.support).some(Boolean);
    // Nothing to map with: probe again only now and then (netcheck asks too).
    const probeDue = this.probedAt === -Infinity || (reason === 'refresh' && now - this.probedAt > 5000)
      || (!this.mapping && !anySupported && now - this.probedAt >= 5 * this.pollMs);
    if (probeDue) await this.probe();
    if (this.stopped) return;
    if (this.mapping && reason === 'timer' && now - this.checkedAt >= this.pollMs - 1) await this.check();
    if (this.mapping && this.clock.now() >= this.mapping.renewAt) await this.renew();
    if (!this.mapping && !this.stopped) await this.create();
  }

  private switchEnv(env: GatewayInfo | null): void {
    if (this.env || env) this.o.log('info', `port mapping: gateway ${env ? `${env.gateway} (our address ${env.local})` : 'none'}${this.env ? `, was ${this.env.gateway} (${this.env.local})` : ''}`);
    const had = this.mapping !== null;
    this.mapping = null;
    this.closeDrivers();
    this.env = env;
    this.support = { pcp: null, natpmp: null, upnp: null };
    this.probedAt = -Infinity;
    if (env) {
      const ctx = {
        env, timing: this.net.timing, now: () => this.clock.now(),
        count: (r: string): void => {
          this.counters[r] = (this.counters[r] ?? 0) + 1;
        },
      };
      const target = (): { ip: string; port: number } => ({ ip: env.gateway, port: this.net.gatewayPort });
      const sock = (p: string): GatewaySocket => new GatewaySocket(target, (r) => ctx.count(`${p}_${r}`));
      const nonce = this.memory?.pcpNonce ? new Uint8Array(Buffer.from(this.memory.pcpNonce, 'hex')) : undefined;
      this.drivers.set('pcp', new PcpClient(sock('pcp'), ctx, nonce));
      this.drivers.set('natpmp', new NatPmpClient(sock('natpmp'), ctx));
      this.drivers.set('upnp', new UpnpClient(ctx, { ssdpPort: this.net.ssdpPort, ssdpGroup: this.net.ssdpGroup, maxBodyBytes: this.net.maxBodyBytes }));
    }
    if (had) this.onChange?.();
  }

  private closeDrivers(): void {
    for (const d of this.drivers.values()) d.close();
    this.drivers.clear();
  }

  private async probe(): Promise<void> {
    const order = [...this.drivers.values()];
    const results = await Promise.all(order.map((d) => d.probe().catch(() => false)));
    if (this.stopped) return;
    const before = JSON.stringify(this.support);
    order.forEach((d, i) => {
      this.support[d.protocol] = results[i]!;
    });
    this.probedAt = this.clock.now();
    if (JSON.stringify(this.support) !== before) {
      const has = PROTOCOL_PREFERENCE.filter((p) => this.support[p]).map((p) => PROTOCOL_NAMES[p]);
      this.o.log('info', `port mapping: gateway ${this.env?.gateway} speaks ${has.length ? has.join(', ') : 'none of UPnP, NAT-PMP, PCP'}`);
    }
  }

  private request(suggested: number): MapRequest {
    return { internalPort: this.o.internalPort, suggestedExternalPort: suggested, lifetimeSec: this.lifetimeSec };
  }

  /** A grant we can advertise, or the reason not. */
  private vet(p: PortmapProtocol, g: Grant): string | null {
    if (!publicIPv4(g.externalIp)) return `the gateway's address ${g.externalIp ?? '(none)'} is not public (another NAT in front?)`;
    if (!(g.externalPort >= 1 && g.externalPort <= 65535)) return `external port ${g.externalPort}`;
    if (g.lifetimeSec === 0 && p !== 'upnp') return 'lifetime 0';
    return null;
  }

  private install(p: PortmapProtocol, driver: MapDriver, g: Grant): void {
    const now = this.clock.now();
    const life = Math.min(g.lifetimeSec, MAX_PLANNED_LIFETIME_SEC);
    const before = this.mappedEndpoint();
    this.mapping = {
      protocol: p, driver, externalIp: g.externalIp!, externalPort: g.externalPort, lifetimeSec: g.lifetimeSec,
      renewAt: life ? now + (life * 1000) / 2 : Infinity, expiresAt: life ? now + life * 1000 : Infinity,
    };
    this.checkedAt = now;
    this.lastError = null;
    const nonce = driver instanceof PcpClient ? Buffer.from(driver.nonce).toString('hex') : this.memory?.pcpNonce ?? null;
    if (this.o.memoryFile && (this.memory?.externalPort !== g.externalPort || this.memory.pcpNonce !== nonce)) {
      this.memory = { externalPort: g.externalPort, pcpNonce: nonce };
      try {
        saveMemory(this.o.memoryFile, this.memory);
      } catch (e) {
        this.o.log('warn', `port mapping: cannot remember the port: ${(e as Error).message}`);
      }
    }
    if (this.mappedEndpoint() !== before) this.onChange?.();
  }

  private async create(): Promise<void> {
    const order = this.o.only ? [this.o.only] : PROTOCOL_PREFERENCE;
    const errors: string[] = [];
    for (const p of order) {
      const d = this.drivers.get(p);
      if (!d || !this.support[p]) continue;
      const r = await d.map(this.request(this.memory?.externalPort ?? this.o.internalPort));
      if (this.stopped) return;
      const why = r.ok ? this.vet(p, r.grant) : r.error;
      if (r.ok && why) this.counters['rejected_grant']!++;
      if (!r.ok || why) {
        errors.push(`${PROTOCOL_NAMES[p]}: ${why}`);
        continue;
      }
      this.counters['created']!++;
      this.install(p, d, r.grant);
      this.o.log('info', `port mapping: ${PROTOCOL_NAMES[p]} maps ${this.mappedEndpoint()} → :${this.o.internalPort} for ${r.grant.lifetimeSec || '∞'} s`);
      return;
    }
    this.lastError = errors.join('; ') || (this.o.only && !this.support[this.o.only] ? `the gateway does not speak ${PROTOCOL_NAMES[this.o.only]}` : 'the gateway offers no port mapping');
  }

  private async renew(): Promise<void> {
    const m = this.mapping!;
    const r = await m.driver.map(this.request(m.externalPort));
    if (this.stopped || this.mapping !== m) return;
    const why = r.ok ? this.vet(m.protocol, r.grant) : r.error;
    if (r.ok && !why) {
      if (r.grant.gatewayReset) {
        this.counters['gateway_reset']!++;
        this.o.log('info', `port mapping: the gateway lost its state (restarted?); mapping re-created`);
      }
      this.counters['renewed']!++;
      this.install(m.protocol, m.driver, r.grant);
      return;
    }
    this.counters['renew_failed']!++;
    const now = this.clock.now();
    if (now >= m.expiresAt) {
      this.o.log('warn', `port mapping: ${this.mappedEndpoint()} expired (renewal: ${why})`);
      this.lastError = `renewal failed: ${why}`;
      this.mapping = null;
      this.probedAt = -Infinity; // ask the gateway afresh what it speaks
      this.onChange?.();
      return;
    }
    m.renewAt = now + Math.max(1000, (m.expiresAt - now) / 4);
  }

  private async check(): Promise<void> {
    const m = this.mapping!;
    this.checkedAt = this.clock.now();
    const c = await m.driver.check(this.request(m.externalPort), m.externalPort);
    if (this.stopped || this.mapping !== m || c !== 'lost') return;
    this.counters['lost']!++;
    this.o.log('info', `port mapping: the gateway lost ${this.mappedEndpoint()} (restarted?) or has a new public address; mapping again`);
    m.renewAt = this.clock.now();
  }
}
