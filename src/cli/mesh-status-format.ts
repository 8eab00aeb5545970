/** `warren status` text for mesh mode: one line per node, then health warnings. */
import type { MeshStatus } from '../control/mesh-status.js';
import { ago, formatBytes } from './status-format.js';
import { PROTOCOL_NAMES } from '../nat/portmap/driver.js';

export function isMeshStatus(s: unknown): s is MeshStatus {
  return typeof s === 'object' && s !== null && (s as { mode?: unknown }).mode === 'mesh';
}

function v4(addrs: string[]): string {
  return (addrs.find((a) => !a.includes(':')) ?? addrs[0] ?? '-').replace(/\/\d+$/, '');
}

function pathText(p: MeshStatus['peers'][number]): string {
  const path = p.path ?? p.endpoint;
  if (!path) return 'no path yet';
  const ms = p.pathLatencyMs !== null && p.pathLatencyMs !== undefined ? ` ${p.pathLatencyMs.toFixed(1)} ms` : '';
  return path.startsWith('relay(') ? `${path}${ms}` : `direct ${path}${ms}`;
}

export function formatMeshStatus(s: MeshStatus, now: number): string {
  const lines: string[] = [];
  if (s.backendState !== 'Running' || !s.self) {
    lines.push(`${s.backendState}${s.backendState === 'NeedsLogin' ? ': run "warren up --login-server URL --auth-key KEY"' : s.backendState === 'Stopped' ? ': run "warren up"' : ''}`);
  }
  if (s.self) lines.push(`${v4(s.self.addresses).padEnd(16)}${s.self.name.padEnd(24)}this node${s.controlConnected ? '' : ' (control unreachable)'}`);
  const pm = s.portMapping;
  if (pm?.mapped) lines.push(`${''.padEnd(40)}port mapping: ${pm.mapped} → :${pm.internalPort} (${pm.protocol ? PROTOCOL_NAMES[pm.protocol] : '?'} via ${pm.gateway})`);
  for (const p of s.peers) {
    const state = [
      p.online ? 'online' : p.lastSeen ? `offline, last seen ${ago(Math.floor(p.lastSeen / 1000), Math.floor(now / 1000))}` : 'offline',
      pathText(p),
      p.latestHandshake ? `handshake ${ago(p.latestHandshake, Math.floor(now / 1000))}` : 'no handshake',
      p.rxBytes || p.txBytes ? `rx ${formatBytes(p.rxBytes)} tx ${formatBytes(p.txBytes)}` : '',
    ].filter(Boolean).join('; ');
    lines.push(`${v4(p.addresses).padEnd(16)}${p.name.padEnd(24)}${state}`);
  }
  for (const h of s.health) lines.push(`# ${h.severity}: ${h.text}`);
  return lines.join('\n') + '\n';
}
