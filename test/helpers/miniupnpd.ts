/**
 * The real miniupnpd (Debian miniupnpd-nftables 2.3.1: UPnP-IGD, NAT-PMP
 * and PCP) as the home router of a NAT-lab site (nat-lab.ts). Its config
 * goes into a temp file: WAN `wan0`, LAN `lan0`, and the lab router's own
 * nft table `inet warren`, whose `miniupnpd`, `prerouting_miniupnpd` and
 * `postrouting_miniupnpd` chains are waiting for it. PCP's minimum lifetime
 * is lowered so tests can ask for ~10 s mappings. It runs in the foreground
 * (-d) with its own pid file. On SIGTERM miniupnpd 2.3.1 leaves its nft
 * rules in place and writes its leases to the lease file (reloaded at the
 * next start), so restart() also flushes its chains, removes the lease file
 * and flushes conntrack: a router reboot, with every mapping gone.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { Lab, LabProc } from './lab.js';
import { IFACES, NFT_TABLE, type Site } from './nat-lab.js';

export interface MiniUpnpd {
  proc: LabProc;
  conf: string;
  /** SIGTERM and start again: its mappings and rules are gone and its epoch starts from 0. */
  restart(): Promise<void>;
  stop(): Promise<void>;
  /** The DNAT rules it installed (nft list chain … prerouting_miniupnpd). */
  redirects(): Promise<string>;
  /** External UDP ports currently redirected. */
  mappedPorts(): Promise<number[]>;
}

export function miniupnpdConfig(o: { leaseFile: string; minLifetime: number }): string {
  return [
    `ext_ifname=${IFACES.wan}`,
    `listening_ip=${IFACES.lan}`,
    'http_port=0',
    'enable_natpmp=yes',
    'enable_upnp=yes',
    'secure_mode=yes',
    'system_uptime=no',
    `upnp_table_name=${NFT_TABLE}`,
    `upnp_nat_table_name=${NFT_TABLE}`,
    `min_lifetime=${o.minLifetime}`,
    'max_lifetime=86400',
    'clean_ruleset_interval=600',
    `lease_file=${o.leaseFile}`,
    `uuid=${randomUUID()}`,
    'allow 1024-65535 192.168.0.0/16 1024-65535',
    'deny 0-65535 0.0.0.0/0 0-65535',
    '',
  ].join('\n');
}

export async function startMiniupnpd(lab: Lab, site: Site, o: { minLifetime?: number } = {}): Promise<MiniUpnpd> {
  const dir = mkdtempSync(join(tmpdir(), `warren-upnpd-${site.name}-`));
  lab.trackPath(dir);
  const conf = join(dir, 'miniupnpd.conf');
  const leaseFile = join(dir, 'leases');
  writeFileSync(conf, miniupnpdConfig({ leaseFile, minLifetime: o.minLifetime ?? 5 }), { mode: 0o600 });
  const pidFile = join(dir, 'miniupnpd.pid');
  let starts = 0;
  const spawn = async (): Promise<LabProc> => {
    starts++;
    const p = lab.spawn(site.router, ['miniupnpd', '-d', '-f', conf, '-P', pidFile], { name: `miniupnpd-${site.name}-${starts}` });
    await p.waitForOutput(/Listening for NAT-PMP\/PCP traffic on port 5351/, 15_000);
    await p.waitForOutput(/HTTP listening on port \d+/, 15_000);
    return p;
  };
  const redirects = async (): Promise<string> =>
    (await lab.sh(site.router, ['nft', 'list', 'chain', 'inet', NFT_TABLE, 'prerouting_miniupnpd'])).stdout;
  const h: MiniUpnpd = {
    proc: await spawn(),
    conf,
    restart: async () => {
      await h.proc.stop('SIGTERM');
      const chains = ['miniupnpd', 'prerouting_miniupnpd', 'postrouting_miniupnpd'].map((c) => `flush chain inet ${NFT_TABLE} ${c}`);
      await lab.sh(site.router, ['nft', chains.join('; ')]);
      rmSync(leaseFile, { force: true });
      await site.flushConntrack();
      h.proc = await spawn();
    },
    stop: async () => {
      await h.proc.stop('SIGTERM');
    },
    redirects,
    mappedPorts: async () => [...(await redirects()).matchAll(/(?:0x11|udp) th dport (\d+)/g)].map((m) => Number(m[1])),
  };
  return h;
}
