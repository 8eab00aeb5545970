/**
 * The data plane's status, as data: what `warren status` shows (like `wg show`).
 * Produced by the engine on request; plain JSON-serialisable objects.
 */

export interface PeerStatus {
  /** Base64 public key, in full, as in `wg show`. */
  publicKey: string;
  /** "IP:PORT" or "[IPv6]:PORT"; null until known. */
  endpoint: string | null;
  allowedIps: string[];
  /** Unix time in seconds of the latest completed handshake; 0 = never. */
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
  /** Seconds; 0 = off. */
  persistentKeepalive: number;
  presharedKey: boolean;
}

export interface DeviceStatus {
  /** Base64 public key of this device. */
  publicKey: string;
  listenPort: number;
  /** The mark on the tunnel's own UDP socket; 0 = none. */
  fwMark: number;
  /** TUN interface name. */
  tun: string;
  peers: PeerStatus[];
  /** Dropped packets by reason (stable snake_case reason names). */
  drops: Record<string, number>;
  /** Other counters (packets in/out, handshakes, cookies sent...). */
  counters: Record<string, number>;
}
