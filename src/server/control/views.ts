/**
 * What the server tells nodes: NodeView for one node record, the full netmap
 * for a node (everyone else in its tailnet who is not expired; until a policy
 * exists every node may reach every other of its tailnet), and the translation
 * of global change-log entries into one node's deltas (its own record becomes
 * `self`; changes about other tailnets' nodes are dropped).
 */
import { DEFAULT_TAILNET, type NodeRecord } from './store.js';
import type { Change, Netmap, NodeView, RelayMap } from '../../wire/control.js';

export function nodeView(n: NodeRecord): NodeView {
  const addresses = [`${n.ipv4}/32`, `${n.ipv6}/128`];
  return {
    id: n.id, name: n.name, nodeKey: n.nodeKey, discoKey: n.discoKey, addresses, allowedIps: addresses.slice(),
    endpoints: n.endpoints.slice(0, 64), online: n.online, lastSeen: n.lastSeen, keyExpiry: n.keyExpiry,
    tags: n.tags, hostinfo: n.hostinfo as NodeView['hostinfo'], homeRegion: homeRegionOf(n.hostinfo),
  };
}

/**
 * The relay region a node reports as its home, from `hostinfo.netinfo.homeRegion`
 * (as Tailscale's PreferredDERP travels in its NetInfo); 0 when absent or invalid.
 */
export function homeRegionOf(hostinfo: Record<string, unknown>): number {
  const netinfo = hostinfo['netinfo'];
  if (typeof netinfo !== 'object' || netinfo === null || Array.isArray(netinfo)) return 0;
  const r = (netinfo as Record<string, unknown>)['homeRegion'];
  return typeof r === 'number' && Number.isInteger(r) && r >= 0 && r <= 65535 ? r : 0;
}

export const EMPTY_RELAY_MAP: RelayMap = { regions: [] };

export function isExpired(n: { keyExpiry: number | null }, now: number): boolean {
  return n.keyExpiry !== null && n.keyExpiry <= now;
}

export function buildNetmap(self: NodeRecord, all: NodeRecord[], now: number, keepaliveMs: number, relayMap: RelayMap = EMPTY_RELAY_MAP): Netmap {
  return {
    self: nodeView(self),
    peers: all.filter((n) => n.id !== self.id && n.tailnet === self.tailnet && !isExpired(n, now)).map(nodeView),
    dns: { nameservers: [], domains: [] },
    packetFilter: [{ src: ['*'], dst: ['*'] }],
    keepaliveMs,
    relayMap,
  };
}

/**
 * A change as logged: about one node, for the nodes of its tailnet (by name;
 * entries written before tailnets existed have none and mean "default").
 */
export type LoggedChange = { op: 'upsert'; node: NodeView; tailnet?: string } | { op: 'remove'; id: number; tailnet?: string } | { op: 'resync' };

/**
 * The same change as node `selfId` must see it; null = nothing for it. With
 * `now`, an upsert of another node whose key has expired goes out as a
 * removal, as in the full map: an expired node's later changes (going offline
 * when its stream is cut, new endpoints) must not put it back in peers' netmaps.
 */
export function changeFor(c: LoggedChange, selfId: number, now?: number, tailnet?: string): Change | null {
  if (c.op === 'resync') return null;
  if (tailnet !== undefined && (c.tailnet ?? DEFAULT_TAILNET) !== tailnet) return null;
  if (c.op === 'remove') return c.id === selfId ? null : { op: 'remove', id: c.id };
  if (c.node.id === selfId) return { op: 'self', node: c.node };
  if (now !== undefined && isExpired(c.node, now)) return { op: 'remove', id: c.node.id };
  return { op: 'upsert', node: c.node };
}
