/**
 * What the mapper remembers across restarts, in the state directory
 * (portmap.json, atomic, 0600): the external port the gateway granted last
 * time, asked for again so peers' cached endpoints stay right, and the PCP
 * mapping nonce, so a restarted agent renews its own PCP mapping instead of
 * being refused or given a second one. A missing or corrupt file is no memory.
 */
import { readFileSync } from 'node:fs';
import { writeFileAtomicSync } from '../../util/atomic-write.js';

export interface PortmapMemory {
  externalPort: number;
  /** 24 hex digits, or null. */
  pcpNonce: string | null;
}

export function loadMemory(path: string): PortmapMemory | null {
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as Partial<PortmapMemory>;
    const port = v.externalPort;
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) return null;
    const nonce = typeof v.pcpNonce === 'string' && /^[0-9a-f]{24}$/.test(v.pcpNonce) ? v.pcpNonce : null;
    return { externalPort: port, pcpNonce: nonce };
  } catch {
    return null;
  }
}

export function saveMemory(path: string, m: PortmapMemory): void {
  writeFileAtomicSync(path, JSON.stringify(m) + '\n');
}
