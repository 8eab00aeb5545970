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
}

export type ToWorker =
  | { type: 'reconfig'; config: DeviceConfig }
  | { type: 'status'; id: number }
  | { type: 'stop' };

export type FromWorker =
  | { type: 'ready'; crypto: string }
  | { type: 'status'; id: number; status: DeviceStatus }
  | { type: 'log'; level: 'info' | 'warn' | 'debug'; msg: string }
  | { type: 'stopped' }
  | { type: 'fatal'; error: string };
