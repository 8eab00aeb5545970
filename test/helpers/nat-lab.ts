/**
 * A little Internet out of network namespaces (shared/LAB.md): one
 * "internet" namespace that routes between sites and hosts the servers
 * (control, relay, STUN), and sites, each a LAN host behind a home router
 * that NATs — easy, hard, or not at all — optionally behind a carrier-grade
 * NAT as well. Built on Lab (test/helpers/lab.ts): unique namespace names,
 * every veth born inside its namespaces, every command under `ip netns exec`
 * or `ip -n`, everything torn down on close(), on exit and on failure.
 * Nothing is created in, or routed to, the machine's own namespace.
 *
 * Address plan (IPv4 only; the lab has no IPv6 beyond link-local):
 *
 *   servers          11.0.0.1 … 11.0.0.N /32 on the internet namespace's lo
 *   site i (1…250)   internet `s<i>` 11.i.0.1/24 ── `wan0` 11.i.0.2/24 of the
 *                    site's outermost router (the home router, or the
 *                    carrier router when cgnat); changeWanAddress() moves it
 *                    to 11.i.0.3, .4, …
 *   cgnat link       carrier `lan0` 100.64.i.1/24 ── home router `wan0`
 *                    100.64.i.2/24 (then .3, .4, … on changeWanAddress())
 *   NAT LAN          home router `lan0` 192.168.i.1/24 ── host `eth0` 192.168.i.2
 *   routed LAN       (nat 'none') router `lan0` 11.i.1.1/24 ── host `eth0`
 *                    11.i.1.2 (then .3, … on changeWanAddress()); the internet
 *                    routes 11.i.1.0/24 via 11.i.0.2
 *
 * 11.0.0.0/8 is ordinary unicast space: not RFC 1918, not 100.64.0.0/10, not
 * documentation (192.0.2/24, 198.51.100/24, 203.0.113/24) nor benchmarking
 * (198.18/15), so miniupnpd accepts a home router's 11.i.0.x as a WAN
 * address (issue 6). It never leaves the lab: these namespaces have no link
 * to, and no route toward, anything outside it.
 *
 * Each router (home and carrier) has ip_forward=1 and one nft table of its
 * own, `inet warren` (NFT_TABLE), in a fresh namespace, so the machine's
 * firewall is never touched:
 *   - `input`: on `wan0` accept established/related, count and drop the
 *     rest. Real routers drop unsolicited input, and the lab must too:
 *     otherwise a peer's early punch creates a conntrack entry on the router
 *     itself, the host's own packet then clashes with it, masquerade picks
 *     another port and easy↔easy punching fails (the test shows it).
 *   - `forward` (policy drop): `udp_block` (setUdpBlocked), established /
 *     related, `ct status dnat` (port mappings), `miniupnpd`, anything from
 *     the LAN; a 'none' router also forwards anything from the WAN to the LAN.
 *   - `postrouting` (nat): `postrouting_miniupnpd`, then out of `wan0`:
 *     easy: `masquerade` (Linux keeps the source port when it can:
 *     endpoint-independent mapping, port-restricted filtering);
 *     hard: `masquerade random,fully-random` (a new random port per
 *     destination), `to :A-B` for TCP/UDP with hardPorts; none: nothing.
 *   - `prerouting` (nat): `prerouting_miniupnpd`.
 * The `miniupnpd`, `prerouting_miniupnpd` and `postrouting_miniupnpd`
 * chains are empty, ready for miniupnpd-nftables run in the router namespace
 * with `ext_ifname=wan0`, `listening_ip=lan0`, `upnp_table_name=warren` and
 * `upnp_nat_table_name=warren` (tried with bookworm's 2.3.1: it takes
 * 11.i.0.2 as its public address and NAT-PMP and UPnP mappings land in these
 * chains).
 *
 * Not supported (rejected): cgnat with nat 'none' (a host straight on carrier
 * space) and cgnatKind 'none' (a carrier that routes 100.64/10 publicly).
 *
 * @example
 *   const net = await createNatLab();
 *   after(() => net.close());
 *   const a = await net.addSite('a', { nat: 'easy' });
 *   const b = await net.addSite('b', { nat: 'hard', cgnat: true });
 *   net.lab.spawn(net.internet, ['node', RELAY, '--listen', `${net.serverIps[0]}:443`]);
 *   net.lab.spawn(a.host, ['node', WARREND, ...]);
 */
import { Lab } from './lab.js';

export type NatKind = 'easy' | 'hard' | 'none';

export interface SiteOptions {
  nat: NatKind;
  /** e.g. [40000, 41023] → TCP/UDP masquerade to :40000-41023 random,fully-random (hard only). */
  hardPorts?: [number, number];
  /** Double NAT: the home router's WAN is in 100.64.0.0/10 behind a carrier router. */
  cgnat?: boolean;
  /** The carrier router's NAT: 'easy' (default) or 'hard'. */
  cgnatKind?: NatKind;
  /** Drop UDP forwarded from (and to) the LAN at the home router; TCP still passes. */
  udpBlocked?: boolean;
}

export interface Site {
  name: string;
  /** Namespace of the LAN host (where warrend runs). */
  host: string;
  /** Namespace of the home router. */
  router: string;
  /** Namespace of the carrier-NAT router, when cgnat. */
  carrier?: string;
  /** The host's address on the LAN. */
  lanIp: string;
  /** The home router's LAN address (the host's default gateway). */
  lanGateway: string;
  /** The home router's current WAN address (100.64.i.x when cgnat). */
  wanIp: string;
  /** The address the internet sees (the carrier's public address when cgnat; the host's own for 'none'). */
  publicIp: string;
  /** At the home router, at once; also deletes its UDP conntrack entries so running flows die too. */
  setUdpBlocked(on: boolean): Promise<void>;
  /**
   * The ISP hands out a new public IP: a new address on the WAN side, the old
   * one removed, conntrack flushed; returns the new public IP. With cgnat both
   * the home router's 100.64 address and the carrier's public address change;
   * with nat 'none' the host itself is renumbered (lanIp changes too).
   */
  changeWanAddress(): Promise<string>;
  /** net.netfilter.nf_conntrack_udp_timeout{,_stream} in the router (and carrier) namespace; existing entries keep their current expiry until their next packet. */
  setConntrackUdpTimeouts(udp: number, stream: number): Promise<void>;
  /** `conntrack -F` in the home router: a router reboot. */
  flushConntrack(): Promise<void>;
}

export interface NatLab {
  lab: Lab;
  /** The "internet" namespace: routes between all sites and hosts the servers. */
  internet: string;
  /** Public addresses on the internet namespace's lo, for control/relay/STUN. */
  serverIps: string[];
  addSite(name: string, o: SiteOptions): Promise<Site>;
  close(): Promise<void>;
}

/** The nft table (family inet) every router of the lab owns. */
export const NFT_TABLE = 'warren';
/** Interface names inside each router namespace, and the host's. */
export const IFACES = { wan: 'wan0', lan: 'lan0', host: 'eth0' } as const;
export const MAX_SITES = 250;
const MAX_SERVER_IPS = 250;
/** Host octets 2…254 leave 253 addresses for the WAN and a renumbered routed host. */
const MAX_RENUMBERS = 252;

/** Public server address k (1-based). */
export const serverAddress = (k: number): string => `11.0.0.${k}`;

export interface RouterSpec {
  nat: NatKind;
  hardPorts?: [number, number] | undefined;
}

/** The router's whole nft ruleset, loaded in one transaction. */
export function routerRuleset(r: RouterSpec): string {
  const { wan, lan } = IFACES;
  const masquerade: string[] = [];
  if (r.nat === 'easy') masquerade.push(`oifname "${wan}" masquerade`);
  if (r.nat === 'hard' && r.hardPorts) {
    masquerade.push(`oifname "${wan}" meta l4proto { tcp, udp } masquerade to :${r.hardPorts[0]}-${r.hardPorts[1]} random,fully-random`);
  }
  if (r.nat === 'hard') masquerade.push(`oifname "${wan}" masquerade random,fully-random`);
  const routedIn = r.nat === 'none' ? [`iifname "${wan}" oifname "${lan}" accept`] : [];
  return `table inet ${NFT_TABLE} {
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "${wan}" ct state established,related accept
    iifname "${wan}" counter drop
  }
  chain forward {
    type filter hook forward priority filter; policy drop;
    jump udp_block
    ct state established,related accept
    ct status dnat accept
    jump miniupnpd
    iifname "${lan}" accept
${routedIn.map((l) => `    ${l}\n`).join('')}  }
  chain udp_block {
  }
  chain miniupnpd {
  }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    jump prerouting_miniupnpd
  }
  chain prerouting_miniupnpd {
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    jump postrouting_miniupnpd
${masquerade.map((l) => `    ${l}\n`).join('')}  }
  chain postrouting_miniupnpd {
  }
}
`;
}

function checkOptions(name: string, o: SiteOptions): void {
  if (!/^[a-z0-9]{1,12}$/.test(name)) throw new Error(`site name must be 1-12 of [a-z0-9]: ${JSON.stringify(name)}`);
  if (o.hardPorts) {
    const [lo, hi] = o.hardPorts;
    if (o.nat !== 'hard') throw new Error(`site ${name}: hardPorts needs nat 'hard'`);
    if (!(Number.isInteger(lo) && Number.isInteger(hi) && lo >= 1 && lo <= hi && hi <= 65535)) {
      throw new Error(`site ${name}: bad hardPorts ${lo}-${hi}`);
    }
  }
  if (o.cgnat && o.nat === 'none') throw new Error(`site ${name}: cgnat needs a home router that NATs (nat 'easy' or 'hard')`);
  if (o.cgnat && o.cgnatKind === 'none') throw new Error(`site ${name}: cgnatKind 'none' is not supported (a carrier NAT translates)`);
  if (!o.cgnat && o.cgnatKind !== undefined) throw new Error(`site ${name}: cgnatKind without cgnat`);
}

class NatSite implements Site {
  readonly host: string;
  readonly router: string;
  readonly carrier?: string;
  lanIp: string;
  readonly lanGateway: string;
  wanIp: string;
  publicIp: string;
  /** Generation of the outer (public) and inner (100.64 or routed-host) addresses. */
  private generation = 0;

  constructor(
    private readonly lab: Lab,
    readonly name: string,
    private readonly index: number,
    private readonly o: SiteOptions,
    ns: { host: string; router: string; carrier?: string },
  ) {
    this.host = ns.host;
    this.router = ns.router;
    if (ns.carrier !== undefined) this.carrier = ns.carrier;
    const i = index;
    this.lanGateway = o.nat === 'none' ? `11.${i}.1.1` : `192.168.${i}.1`;
    this.lanIp = o.nat === 'none' ? `11.${i}.1.2` : `192.168.${i}.2`;
    this.wanIp = o.cgnat ? `100.64.${i}.2` : `11.${i}.0.2`;
    this.publicIp = o.cgnat ? `11.${i}.0.2` : o.nat === 'none' ? this.lanIp : this.wanIp;
  }

  private get routers(): string[] {
    return this.carrier === undefined ? [this.router] : [this.router, this.carrier];
  }

  /** Wire up the site's namespaces (already created) to the internet namespace. */
  async build(internet: string): Promise<void> {
    const { lab, o, index: i } = this;
    const { wan, lan, host: eth } = IFACES;
    const outer = this.carrier ?? this.router;
    const uplink = `s${i}`;
    await lab.veth(internet, uplink, outer, wan);
    await lab.addr(internet, uplink, `11.${i}.0.1/24`);
    await lab.addr(outer, wan, `11.${i}.0.2/24`);
    await lab.route(outer, 'add', 'default', 'via', `11.${i}.0.1`);
    if (this.carrier !== undefined) {
      await lab.veth(this.carrier, lan, this.router, wan);
      await lab.addr(this.carrier, lan, `100.64.${i}.1/24`);
      await lab.addr(this.router, wan, `100.64.${i}.2/24`);
      await lab.route(this.router, 'add', 'default', 'via', `100.64.${i}.1`);
      await this.setupRouter(this.carrier, { nat: o.cgnatKind ?? 'easy' });
    }
    await lab.veth(this.router, lan, this.host, eth);
    await lab.addr(this.router, lan, `${this.lanGateway}/24`);
    await lab.addr(this.host, eth, `${this.lanIp}/24`);
    await lab.route(this.host, 'add', 'default', 'via', this.lanGateway);
    if (o.nat === 'none') await lab.route(internet, 'add', `11.${i}.1.0/24`, 'via', `11.${i}.0.2`);
    await this.setupRouter(this.router, { nat: o.nat, hardPorts: o.hardPorts });
    if (o.udpBlocked) await this.setUdpBlocked(true);
  }

  private async setupRouter(ns: string, spec: RouterSpec): Promise<void> {
    await this.lab.sh(ns, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    await this.lab.sh(ns, ['nft', routerRuleset(spec)]);
  }

  async setUdpBlocked(on: boolean): Promise<void> {
    const chain = `inet ${NFT_TABLE} udp_block`;
    const rules = on
      ? [`add rule ${chain} meta l4proto udp iifname "${IFACES.lan}" drop`, `add rule ${chain} meta l4proto udp oifname "${IFACES.lan}" drop`]
      : [];
    await this.lab.sh(this.router, ['nft', [`flush chain ${chain}`, ...rules].join('; ')]);
    // Exit status 1 means "nothing to delete".
    if (on) await this.lab.sh(this.router, ['conntrack', '-D', '-p', 'udp'], { allowFail: true });
  }

  async changeWanAddress(): Promise<string> {
    if (this.generation >= MAX_RENUMBERS) throw new Error(`site ${this.name}: out of addresses to renumber into`);
    const i = this.index;
    const next = this.generation + 3;
    this.generation++;
    const { wan, host: eth } = IFACES;
    if (this.o.nat === 'none') {
      const ip = `11.${i}.1.${next}`;
      await this.renumber(this.host, eth, this.lanIp, ip, this.lanGateway);
      this.lanIp = ip;
      this.publicIp = ip;
    } else if (this.carrier !== undefined) {
      const inner = `100.64.${i}.${next}`;
      const outer = `11.${i}.0.${next}`;
      await this.renumber(this.router, wan, this.wanIp, inner, `100.64.${i}.1`);
      await this.renumber(this.carrier, wan, this.publicIp, outer, `11.${i}.0.1`);
      this.wanIp = inner;
      this.publicIp = outer;
    } else {
      const ip = `11.${i}.0.${next}`;
      await this.renumber(this.router, wan, this.wanIp, ip, `11.${i}.0.1`);
      this.wanIp = ip;
      this.publicIp = ip;
    }
    for (const ns of this.routers) await this.lab.sh(ns, ['conntrack', '-F']);
    return this.publicIp;
  }

  /** Add the new address, remove the old one, make sure the default route survived. */
  private async renumber(ns: string, ifname: string, oldIp: string, newIp: string, gateway: string): Promise<void> {
    // Without promote_secondaries, removing the old (primary) address would take the new one with it.
    await this.lab.sh(ns, ['sysctl', '-q', '-w', `net.ipv4.conf.${ifname}.promote_secondaries=1`]);
    await this.lab.addr(ns, ifname, `${newIp}/24`);
    await this.lab.sh(ns, ['ip', 'addr', 'del', `${oldIp}/24`, 'dev', ifname]);
    await this.lab.route(ns, 'replace', 'default', 'via', gateway);
  }

  async setConntrackUdpTimeouts(udp: number, stream: number): Promise<void> {
    for (const n of [udp, stream]) if (!(Number.isInteger(n) && n > 0)) throw new Error(`bad conntrack timeout ${n}`);
    for (const ns of this.routers) {
      await this.lab.sh(ns, ['sysctl', '-q', '-w', `net.netfilter.nf_conntrack_udp_timeout=${udp}`, `net.netfilter.nf_conntrack_udp_timeout_stream=${stream}`]);
    }
  }

  async flushConntrack(): Promise<void> {
    await this.lab.sh(this.router, ['conntrack', '-F']);
  }
}

/** The internet namespace with its server addresses; sites are added with addSite(). */
export async function createNatLab(o: { serverIps?: number; tag?: string } = {}): Promise<NatLab> {
  const count = o.serverIps ?? 2;
  if (!(Number.isInteger(count) && count >= 1 && count <= MAX_SERVER_IPS)) throw new Error(`serverIps must be 1…${MAX_SERVER_IPS}`);
  const lab = Lab.create(o.tag ?? 'nat');
  try {
    const internet = await lab.ns('internet');
    await lab.sh(internet, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    const serverIps = Array.from({ length: count }, (_, k) => serverAddress(k + 1));
    for (const ip of serverIps) await lab.addr(internet, 'lo', `${ip}/32`);
    const names = new Set<string>();
    let sites = 0;
    return {
      lab,
      internet,
      serverIps,
      async addSite(name, siteOptions) {
        checkOptions(name, siteOptions);
        if (names.has(name)) throw new Error(`site ${name} exists already`);
        if (sites >= MAX_SITES) throw new Error(`at most ${MAX_SITES} sites`);
        names.add(name);
        const index = ++sites;
        const host = await lab.ns(`${name}-host`);
        const router = await lab.ns(`${name}-rtr`);
        const carrier = siteOptions.cgnat ? await lab.ns(`${name}-cgn`) : undefined;
        const site = new NatSite(lab, name, index, siteOptions, carrier === undefined ? { host, router } : { host, router, carrier });
        await site.build(internet);
        return site;
      },
      close: () => lab.cleanup(),
    };
  } catch (err) {
    await lab.cleanup().catch(() => {});
    throw err;
  }
}
