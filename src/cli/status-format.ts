/**
 * How `warren status` shows a DeviceStatus: pure functions, no I/O.
 *
 * formatStatus() renders text the way `wg show` does (same labels, units and time
 * wording; peers sorted by latest handshake, newest first; transfer omitted while
 * zero), plus a "drops:" line listing nonzero drop counters by reason.
 * formatStatusJson() is the stable `--json` form: the DeviceStatus with its fields in
 * declaration order and counter maps sorted by key, pretty-printed.
 */

import type { DeviceStatus, PeerStatus } from '../dataplane/status.js';

/** Renders `s` as `wg show` would; `now` is the current time in unix milliseconds. */
export function formatStatus(s: DeviceStatus, now: number): string {
  const nowSec = Math.floor(now / 1000);
  const lines: string[] = [];
  lines.push(`interface: ${s.tun}`);
  lines.push(`  public key: ${s.publicKey}`);
  if (s.listenPort) lines.push(`  listening port: ${s.listenPort}`);
  if (s.fwMark) lines.push(`  fwmark: 0x${s.fwMark.toString(16)}`);
  const drops = Object.entries(s.drops)
    .filter(([, n]) => n !== 0)
    .sort(([a], [b]) => compareStrings(a, b))
    .map(([reason, n]) => `${reason}=${n}`);
  if (drops.length) lines.push(`  drops: ${drops.join(', ')}`);

  for (const p of sortPeers(s.peers)) {
    lines.push('');
    lines.push(`peer: ${p.publicKey}`);
    if (p.presharedKey) lines.push('  preshared key: (hidden)');
    if (p.endpoint) lines.push(`  endpoint: ${p.endpoint}`);
    lines.push(`  allowed ips: ${p.allowedIps.length ? p.allowedIps.join(', ') : '(none)'}`);
    if (p.latestHandshake) lines.push(`  latest handshake: ${ago(p.latestHandshake, nowSec)}`);
    if (p.rxBytes || p.txBytes) {
      lines.push(`  transfer: ${formatBytes(p.rxBytes)} received, ${formatBytes(p.txBytes)} sent`);
    }
    if (p.persistentKeepalive) lines.push(`  persistent keepalive: every ${humanTime(p.persistentKeepalive)}`);
  }
  return lines.join('\n') + '\n';
}

/** The `--json` form: stable key order, two-space indent, trailing newline. */
export function formatStatusJson(s: DeviceStatus): string {
  return JSON.stringify(canonicalDevice(s), null, 2) + '\n';
}

/** "1 minute, 3 seconds ago", "Now", or a warning if the handshake is in the future. */
export function ago(thenSec: number, nowSec: number): string {
  if (nowSec === thenSec) return 'Now';
  if (nowSec < thenSec) return '(System clock wound backward; connection problems may ensue.)';
  return `${humanTime(nowSec - thenSec)} ago`;
}

/** Seconds as "1 year, 2 days, 3 hours, 4 minutes, 5 seconds", skipping zero parts. */
export function humanTime(seconds: number): string {
  const parts: [number, string][] = [
    [Math.floor(seconds / (365 * 24 * 3600)), 'year'],
    [Math.floor(seconds / (24 * 3600)) % 365, 'day'],
    [Math.floor(seconds / 3600) % 24, 'hour'],
    [Math.floor(seconds / 60) % 60, 'minute'],
    [seconds % 60, 'second'],
  ];
  return parts
    .filter(([n]) => n !== 0)
    .map(([n, unit]) => `${n} ${unit}${n === 1 ? '' : 's'}`)
    .join(', ');
}

/** Bytes as `wg show` prints them: "512 B", "1.21 KiB", "3.50 MiB", ... */
export function formatBytes(b: number): string {
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  if (b < 1024) return `${b} B`;
  let v = b / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(2)} ${units[i]}`;
}

/** Newest handshake first, never-handshaken last; ties keep their order. */
function sortPeers(peers: PeerStatus[]): PeerStatus[] {
  return [...peers].sort((a, b) => b.latestHandshake - a.latestHandshake);
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function sortedRecord(r: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of Object.keys(r).sort(compareStrings)) out[k] = r[k] as number;
  return out;
}

/* The mapped types make adding a field to DeviceStatus/PeerStatus a compile error
 * here, so the JSON form cannot silently drop it. */

function canonicalDevice(s: DeviceStatus): { [K in keyof DeviceStatus]-?: DeviceStatus[K] } {
  return {
    publicKey: s.publicKey,
    listenPort: s.listenPort,
    fwMark: s.fwMark,
    tun: s.tun,
    peers: s.peers.map(canonicalPeer),
    drops: sortedRecord(s.drops),
    counters: sortedRecord(s.counters),
  };
}

function canonicalPeer(p: PeerStatus): { [K in keyof PeerStatus]-?: PeerStatus[K] } {
  return {
    publicKey: p.publicKey,
    endpoint: p.endpoint,
    allowedIps: [...p.allowedIps],
    latestHandshake: p.latestHandshake,
    rxBytes: p.rxBytes,
    txBytes: p.txBytes,
    persistentKeepalive: p.persistentKeepalive,
    presharedKey: p.presharedKey,
  };
}
