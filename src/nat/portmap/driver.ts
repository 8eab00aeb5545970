/**
 * What the mapper asks of each protocol (PCP, NAT-PMP, UPnP-IGD): probe the
 * gateway, create or renew a mapping, check it is still there, delete it.
 * Drivers report what the gateway said; the mapper decides what to trust.
 */
import type { GatewayInfo } from './gateway.js';
import type { ExchangeTiming } from './gateway-socket.js';

export type PortmapProtocol = 'pcp' | 'natpmp' | 'upnp';

/** Preference when a gateway speaks several: PCP (nonces, epochs, explicit lifetimes), NAT-PMP (epochs), UPnP (neither). */
export const PROTOCOL_PREFERENCE: readonly PortmapProtocol[] = ['pcp', 'natpmp', 'upnp'];

export const PROTOCOL_NAMES: Record<PortmapProtocol, string> = { pcp: 'PCP', natpmp: 'NAT-PMP', upnp: 'UPnP' };

export interface MapRequest {
  internalPort: number;
  /** 0 = no preference. */
  suggestedExternalPort: number;
  lifetimeSec: number;
}

export interface Grant {
  /** The gateway's public address (null if it did not say). */
  externalIp: string | null;
  externalPort: number;
  /** Seconds; 0 = no expiry (a UPnP gateway that only does permanent leases). */
  lifetimeSec: number;
  /** The gateway lost its state since our previous exchange (epoch went back). */
  gatewayReset: boolean;
}

export type MapResult = { ok: true; grant: Grant } | { ok: false; error: string };

export type CheckResult = 'ok' | 'lost' | 'unknown';

export interface DriverContext {
  env: GatewayInfo;
  timing: ExchangeTiming;
  now(): number;
  /** Drop-and-count reasons, shared by all drivers of one mapper. */
  count(reason: string): void;
}

export interface MapDriver {
  readonly protocol: PortmapProtocol;
  /** Does the gateway speak this protocol? */
  probe(): Promise<boolean>;
  /** Create or renew (same request again) the mapping. */
  map(r: MapRequest): Promise<MapResult>;
  /** Is the mapping still there ('lost': the gateway forgot it; 'unknown': no answer)? */
  check(r: MapRequest, externalPort: number): Promise<CheckResult>;
  /** Delete the mapping (best effort, bounded by `timing`). */
  unmap(r: MapRequest, externalPort: number, timing: ExchangeTiming): Promise<void>;
  close(): void;
}
