/**
 * This node's candidate UDP endpoints as it reports them to control: every
 * global unicast address of the host's interfaces (not loopback, not link-local,
 * not the tunnel itself) with the data port. NAT-discovered endpoints join
 * these later.
 */
import { networkInterfaces } from 'node:os';

export function localEndpoints(port: number, tun: string, ifaces: ReturnType<typeof networkInterfaces> = networkInterfaces()): string[] {
  const out: string[] = [];
  for (const [name, addrs] of Object.entries(ifaces)) {
    if (name === tun || name === 'lo') continue;
    for (const a of addrs ?? []) {
      if (a.internal) continue;
      if (a.family === 'IPv4') out.push(`${a.address}:${port}`);
      else if (!a.address.toLowerCase().startsWith('fe80')) out.push(`[${a.address}]:${port}`);
    }
  }
  return out.sort((x, y) => Number(x.startsWith('[')) - Number(y.startsWith('['))).slice(0, 64);
}
