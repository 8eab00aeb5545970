/** Messages between the engine (main thread) and its packet worker. */
import type { DeviceConfig } from './device.js';
import type { DeviceStatus } from './status.js';
import type { TimerProfile } from './constants.js';

export interface WorkerInit {
  tunFd: number;
  udp4Fd: number;
  udp6Fd: number; // -1 when IPv6 is unavailable
  wakeFd: number;
  mtu: number;
  timers: TimerProfile;
  /** Where the highest handshake timestamp is persisted; null = memory only. */
  timestampPath: string | null;
  /** 'native' (default) or 'node' (node:crypto) for transport crypto. */
  crypto: 'native' | 'node';
  /** Post `activity` messages (path choice wants them; plain WireGuard mode does not). */
  activityReports: boolean;
}

/** A datagram and a 20-byte endpoint (src.dataplane/endpoint.ts): where it came from or goes to. */
export interface Datagram {
  data: Uint8Array;
  addr: Uint8Array;
}

export type ToWorker =
  | { type: 'reconfig'; config: DeviceConfig }
  /** Send disco/STUN datagrams from the data socket. */
  | { type: 'send'; items: Datagram[] }
  /** WireGuard messages that arrived through a relay (addr: the peer's relay endpoint). */
  | { type: 'relay-rx'; items: Datagram[] }
  /** Replace the extra UDP sockets (index 1..255 → fd); the worker answers 'sockets' once it no longer polls the old ones. */
  | { type: 'sockets'; id: number; set: Array<{ index: number; fd: number }> }
  /** Path choice: where each peer's packets go now (null = nowhere yet). */
  | { type: 'endpoints'; items: Array<{ key: string; endpoint: Uint8Array | null }> }
  | { type: 'status'; id: number }
  | { type: 'stop' };

export type FromWorker =
  | { type: 'ready'; crypto: string }
  | { type: 'status'; id: number; status: DeviceStatus }
  | { type: 'log'; level: 'info' | 'warn' | 'debug'; msg: string }
  /** Disco and STUN datagrams received on the data socket. */
  | { type: 'rx'; items: Datagram[] }
  /** WireGuard messages for peers whose path is a relay (addr: the relay endpoint). */
  | { type: 'relay-tx'; items: Datagram[] }
  | { type: 'sockets'; id: number }
  /** Peers with data flowing (each reported at most once a second). */
  | { type: 'activity'; keys: string[] }
  | { type: 'stopped' }
  | { type: 'fatal'; error: string };
