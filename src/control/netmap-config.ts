/**
 * From a netmap to what the data plane and the OS should be: the engine's
 * DeviceConfig (peers, their node keys, allowed IPs, an endpoint each) and the
 * router's RouterConfig (our tailnet addresses, one /32 or /128 route per peer
 * address — never the whole 100.64.0.0/10, which may be the box's own WAN under
 * carrier NAT). Pure functions: snapshots in, snapshots out.
 */
import { parseEndpoint, type Netmap, type NodeView } from '../wire/control.js';
import type { DeviceConfig, PeerConfig } from '../dataplane/device.js';
import type { RouterConfig } from './router.js';

export const MESH_MTU = 1280;

/** The first reported IPv4 endpoint, else the first (a first guess when nothing else is known). */
export function pickEndpoint(endpoints: string[]): { ip: string; port: number } | null {
  const parsed = endpoints.map(parseEndpoint).filter((e): e is { ip: string; port: number } => e !== null);
  return parsed.find((e) => !e.ip.includes(':')) ?? parsed[0] ?? null;
}

export function isUsablePeer(p: NodeView, now: number): boolean {
  return p.keyExpiry === null || p.keyExpiry > now;
}

/**
 * The engine snapshot for a netmap. With `pathChoice` (mesh mode with NAT
 * traversal) peers get no endpoint and no roaming: path choice sets where each
 * peer's packets go; without it, the first reported endpoint (flat networks).
 */
export function deviceConfig(netmap: Netmap, opts: { privateKey: Uint8Array; listenPort: number; tun: string; now: number; forceUnderLoad?: boolean; pathChoice?: boolean }): DeviceConfig {
  const peers: PeerConfig[] = netmap.peers.filter((p) => isUsablePeer(p, opts.now)).map((p) => ({
    publicKey: new Uint8Array(Buffer.from(p.nodeKey, 'base64')),
    allowedIps: p.allowedIps,
    endpoint: opts.pathChoice ? null : pickEndpoint(p.endpoints),
    persistentKeepalive: 0,
    roaming: !opts.pathChoice,
  }));
  return { privateKey: opts.privateKey, listenPort: opts.listenPort, fwMark: 0, tun: opts.tun, peers, forceUnderLoad: opts.forceUnderLoad };
}

export function routerConfig(netmap: Netmap | null, tun: string, now: number): RouterConfig {
  const addresses = netmap ? netmap.self.addresses : [];
  const routes = netmap ? [...new Set(netmap.peers.filter((p) => isUsablePeer(p, now)).flatMap((p) => p.allowedIps))] : [];
  return { tun, mtu: MESH_MTU, addresses, routes, table: 'auto', fwMark: 0 };
}
