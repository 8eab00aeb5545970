/**
 * What `warren status` shows in mesh mode (`--json` prints this object as is):
 * the backend state, this node, every peer with its tailnet addresses, whether
 * control says it is online, its endpoint and the data plane's view of it
 * (latest handshake, bytes), health warnings as data, and the raw device status.
 */
import type { DeviceStatus } from '../dataplane/status.js';
import type { PortMapStatus } from '../nat/portmap/mapper.js';

export type BackendState = 'NeedsLogin' | 'Stopped' | 'Starting' | 'Running';

export interface HealthWarning {
  code: string;
  severity: 'info' | 'warning' | 'error';
  text: string;
}

export interface MeshPeerStatus {
  id: number;
  name: string;
  addresses: string[];
  /** The control server's view: connected to it now. */
  online: boolean;
  lastSeen: number | null;
  nodeKey: string;
  /** Where WireGuard sends this peer's packets ("ip:port", or "relay(CODE)"). */
  endpoint: string | null;
  /** Path choice's view: "ip:port" (direct) or "relay(CODE)"; null = no path yet. */
  path: string | null;
  /** Round trip of the last disco pong on that path (ms). */
  pathLatencyMs: number | null;
  /** The relay region the peer calls home (0 = none). */
  homeRegion: number;
  /** Unix seconds; 0 = never. */
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
  keyExpiry: number | null;
}

export interface MeshStatus {
  mode: 'mesh';
  backendState: BackendState;
  controlUrl: string | null;
  controlConnected: boolean;
  self: { id: number; name: string; addresses: string[]; nodeKey: string; keyExpiry: number | null; tags: string[] } | null;
  peers: MeshPeerStatus[];
  health: HealthWarning[];
  netmapVersion: number | null;
  /** Our endpoints as advertised to control and peers. */
  endpoints: string[];
  /** Relay connections: region, whether connected, whether it is home. */
  relays: Array<{ region: number; code: string; connected: boolean; home: boolean }>;
  /** NAT traversal counters (disco and relay traffic, drops by reason). */
  natCounters: Record<string, number>;
  /** The router port mapping (UPnP / NAT-PMP / PCP): what the gateway offers and the mapped endpoint; null = off (`--no-port-mapping`, or down). */
  portMapping: PortMapStatus | null;
  device: DeviceStatus;
}
