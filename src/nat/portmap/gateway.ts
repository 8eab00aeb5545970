/**
 * Where port-mapping requests go: the IPv4 default gateway, read from
 * /proc/net/route (no shelling out), and the local address the kernel would
 * use to reach it (a connected UDP socket's name — connecting sends nothing).
 *
 * /proc/net/route has a header line, then one route per line, tab separated:
 *   Iface Destination Gateway Flags RefCnt Use Metric Mask MTU Window IRTT
 * with addresses as 8 hex digits in host (little-endian) byte order.
 */
import { createSocket } from 'node:dgram';
import { readFile } from 'node:fs/promises';

export interface GatewayInfo {
  /** The default gateway's IPv4 address. */
  gateway: string;
  /** The interface the default route uses. */
  iface: string;
  /** Our address toward the gateway (what it sees as the request's source). */
  local: string;
}

const RTF_UP = 0x1;
const RTF_GATEWAY = 0x2;

function hexIp(h: string): string | null {
  if (!/^[0-9A-Fa-f]{8}$/.test(h)) return null;
  const n = parseInt(h, 16);
  return `${n & 0xff}.${(n >>> 8) & 0xff}.${(n >>> 16) & 0xff}.${n >>> 24}`;
}

/** The default route with the lowest metric, or null. Never throws on odd input. */
export function parseProcNetRoute(text: string): { gateway: string; iface: string } | null {
  let best: { gateway: string; iface: string; metric: number } | null = null;
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const [iface, dest, gw, flagsHex, , , metricText, mask] = f as [string, string, string, string, string, string, string, string];
    const flags = parseInt(flagsHex, 16);
    if (dest !== '00000000' || mask !== '00000000' || !Number.isInteger(flags) || (flags & (RTF_UP | RTF_GATEWAY)) !== (RTF_UP | RTF_GATEWAY)) continue;
    const gateway = hexIp(gw);
    const metric = Number(metricText);
    if (!gateway || gateway === '0.0.0.0' || !Number.isInteger(metric)) continue;
    if (!best || metric < best.metric) best = { gateway, iface, metric };
  }
  return best && { gateway: best.gateway, iface: best.iface };
}

/** The local IPv4 address a datagram to `ip` would leave from; null if there is no route. */
export function localAddressToward(ip: string, port = 9): Promise<string | null> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    const done = (v: string | null): void => {
      try {
        s.close();
      } catch {
        // already closed
      }
      resolve(v);
    };
    s.once('error', () => done(null));
    try {
      s.connect(port, ip, () => {
        try {
          const a = s.address().address;
          done(a && a !== '0.0.0.0' ? a : null);
        } catch {
          done(null);
        }
      });
    } catch {
      done(null);
    }
  });
}

/** The default gateway and our address toward it, or null (no default route, no /proc). */
export async function discoverGateway(routeFile = '/proc/net/route'): Promise<GatewayInfo | null> {
  let text: string;
  try {
    text = await readFile(routeFile, 'utf8');
  } catch {
    return null;
  }
  const r = parseProcNetRoute(text);
  if (!r) return null;
  const local = await localAddressToward(r.gateway);
  return local ? { ...r, local } : null;
}
