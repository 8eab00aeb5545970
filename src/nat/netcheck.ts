/**
 * Netcheck: what the network around this node looks like, measured from the
 * data socket itself (the only socket whose NAT mapping matters). STUN to
 * every STUN address of every relay region at once gives: whether UDP gets
 * out at all, our public endpoint per family, each region's latency, and —
 * when two different server addresses answer — whether the NAT maps each
 * destination to a different port ("hard" NAT). A region that does not
 * answer STUN (UDP blocked) is measured through its relay connection
 * instead, so even a UDP-less node picks a sensible home.
 */
import { parseEndpoint, type RelayRegion } from '../wire/control.js';
import type { StunResult } from './stun-client.js';

export interface RegionLatency {
  id: number;
  code: string;
  latencyMs: number | null;
  /** How the latency was measured. */
  via: 'stun' | 'relay' | null;
}

export interface PortMappingReport {
  upnp: boolean | null;
  natpmp: boolean | null;
  pcp: boolean | null;
  /** The mapped public endpoint, when a gateway granted one. */
  mapped: string | null;
}

export interface NetcheckReport {
  /** Some STUN server answered over UDP. */
  udp: boolean;
  /** Our public endpoint as STUN servers see it ("ip:port"). */
  publicIPv4: string | null;
  publicIPv6: string | null;
  /** true = the NAT gives each destination its own port (hard NAT); null = unknown (fewer than two server addresses answered). */
  mappingVaries: boolean | null;
  /** Filled in by port mapping (null: not probed). */
  portMapping: PortMappingReport;
  regions: RegionLatency[];
  /** The region with the lowest latency (0 = none reachable). */
  preferredRegion: number;
  /** Unix ms when the report was made. */
  at: number;
}

export interface NetcheckDeps {
  regions: readonly RelayRegion[];
  stun(server: { ip: string; port: number }, timeoutMs: number): Promise<StunResult>;
  /** Round trip over the region's relay (TCP); used when STUN gets no answer. */
  relayPing?(region: number, timeoutMs: number): Promise<number>;
  timeoutMs?: number;
  now?: () => number;
}

const fmt = (e: { ip: string; port: number }): string => (e.ip.includes(':') ? `[${e.ip}]:${e.port}` : `${e.ip}:${e.port}`);

export async function runNetcheck(d: NetcheckDeps): Promise<NetcheckReport> {
  const timeoutMs = d.timeoutMs ?? 3000;
  const answers: Array<{ region: number; r: StunResult }> = [];
  await Promise.all(d.regions.flatMap((region) => region.nodes.flatMap((node) => node.stun.map(async (s) => {
    const server = parseEndpoint(s);
    if (!server) return;
    try {
      answers.push({ region: region.id, r: await d.stun(server, timeoutMs) });
    } catch {
      // no answer from this server: counted by its absence
    }
  }))));
  const regions: RegionLatency[] = await Promise.all(d.regions.map(async (region) => {
    const rtts = answers.filter((a) => a.region === region.id).map((a) => a.r.rttMs);
    if (rtts.length) return { id: region.id, code: region.code, latencyMs: Math.min(...rtts), via: 'stun' as const };
    if (d.relayPing) {
      try {
        return { id: region.id, code: region.code, latencyMs: await d.relayPing(region.id, timeoutMs), via: 'relay' as const };
      } catch {
        // unreachable over TCP as well
      }
    }
    return { id: region.id, code: region.code, latencyMs: null, via: null };
  }));
  const v4 = answers.filter((a) => !a.r.mapped.ip.includes(':'));
  const v6 = answers.filter((a) => a.r.mapped.ip.includes(':'));
  const reachable = regions.filter((r) => r.latencyMs !== null).sort((a, b) => a.latencyMs! - b.latencyMs!);
  return {
    udp: answers.length > 0,
    publicIPv4: v4[0] ? fmt(v4[0].r.mapped) : null,
    publicIPv6: v6[0] ? fmt(v6[0].r.mapped) : null,
    mappingVaries: mappingVaries(v4.map((a) => a.r)) ?? mappingVaries(v6.map((a) => a.r)),
    portMapping: { upnp: null, natpmp: null, pcp: null, mapped: null },
    regions,
    preferredRegion: reachable[0]?.id ?? 0,
    at: (d.now ?? Date.now)(),
  };
}

/** Whether answers from different server addresses saw different mappings; null if fewer than two addresses answered. */
export function mappingVaries(results: StunResult[]): boolean | null {
  const byServer = new Map<string, string>();
  for (const r of results) byServer.set(r.server.ip, fmt(r.mapped));
  if (byServer.size < 2) return null;
  return new Set(byServer.values()).size > 1;
}

/**
 * The home region to use given a fresh report: keep the current one unless it
 * is unreachable or another is clearly better (less than two thirds of its
 * latency and at least 5 ms less), so equal regions do not flap.
 */
export function chooseHome(current: number, regions: RegionLatency[]): number {
  const best = regions.filter((r) => r.latencyMs !== null).sort((a, b) => a.latencyMs! - b.latencyMs!)[0];
  if (!best) return current;
  const cur = regions.find((r) => r.id === current);
  if (!cur || cur.latencyMs === null) return best.id;
  return best.latencyMs! < (cur.latencyMs * 2) / 3 && cur.latencyMs - best.latencyMs! >= 5 ? best.id : current;
}
