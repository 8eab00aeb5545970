/**
 * Running warrend (and the warren CLI) inside lab namespaces: writes a
 * wg-quick file, starts `warrend --wg-config` with its own socket and state
 * directory, waits for "ready", and reads status through the real CLI.
 */
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Lab, LabProc } from './lab.js';
import type { DeviceStatus } from '../../src/dataplane/status.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const WARREND = join(ROOT, 'dist', 'src', 'cmd', 'warrend.js');
export const WARREN = join(ROOT, 'dist', 'src', 'cmd', 'warren.js');

export interface WgQuickPeerSpec {
  publicKey: string;
  presharedKey?: string;
  allowedIps: string[];
  endpoint?: string;
  persistentKeepalive?: number;
}

export interface WarrendSpec {
  privateKey: string;
  listenPort?: number;
  addresses: string[];
  mtu?: number;
  table?: string;
  fwMark?: string;
  peers: WgQuickPeerSpec[];
  /** Extra raw lines for [Interface]. */
  extra?: string[];
}

export function wgQuickText(s: WarrendSpec): string {
  const lines = ['[Interface]', `PrivateKey = ${s.privateKey}`];
  if (s.listenPort !== undefined) lines.push(`ListenPort = ${s.listenPort}`);
  if (s.addresses.length) lines.push(`Address = ${s.addresses.join(', ')}`);
  if (s.mtu) lines.push(`MTU = ${s.mtu}`);
  if (s.table) lines.push(`Table = ${s.table}`);
  if (s.fwMark) lines.push(`FwMark = ${s.fwMark}`);
  lines.push(...(s.extra ?? []));
  for (const p of s.peers) {
    lines.push('', '[Peer]', `PublicKey = ${p.publicKey}`);
    if (p.presharedKey) lines.push(`PresharedKey = ${p.presharedKey}`);
    lines.push(`AllowedIPs = ${p.allowedIps.join(', ')}`);
    if (p.endpoint) lines.push(`Endpoint = ${p.endpoint}`);
    if (p.persistentKeepalive) lines.push(`PersistentKeepalive = ${p.persistentKeepalive}`);
  }
  return lines.join('\n') + '\n';
}

export class Warrend {
  constructor(
    readonly lab: Lab,
    readonly ns: string,
    readonly proc: LabProc,
    readonly dir: string,
    readonly socket: string,
    readonly configPath: string,
    readonly tun: string,
  ) {}

  async cli(args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
    return this.lab.sh(this.ns, ['node', WARREN, '--socket', this.socket, ...args], { allowFail: true });
  }

  async status(): Promise<DeviceStatus> {
    const r = await this.cli(['status', '--json']);
    if (r.code !== 0) throw new Error(`warren status failed (${r.code}): ${r.stderr}`);
    return JSON.parse(r.stdout) as DeviceStatus;
  }

  async stop(): Promise<void> {
    await this.proc.stop('SIGTERM');
  }
}

export interface StartOptions {
  name?: string;
  tun?: string;
  env?: Record<string, string>;
  /** Wrap the command (e.g. ['faketime', '-f', '-1h']). */
  wrap?: string[];
  /** Reuse a state directory (restart). */
  dir?: string;
  waitReady?: boolean;
}

export async function startWarrend(lab: Lab, ns: string, spec: WarrendSpec | string, opts: StartOptions = {}): Promise<Warrend> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'warren-lab-'));
  if (!opts.dir) lab.trackPath(dir);
  const configPath = join(dir, 'wg.conf');
  writeFileSync(configPath, typeof spec === 'string' ? spec : wgQuickText(spec), { mode: 0o600 });
  const socket = join(dir, 'warrend.sock');
  const tun = opts.tun ?? 'wg0';
  const proc = lab.spawn(ns, [...(opts.wrap ?? []), 'node', WARREND, '--wg-config', configPath, '--tun', tun, '--socket', socket, '--state-dir', join(dir, 'state')], {
    name: opts.name ?? 'warrend',
    env: { WARREN_TEST_MODE: '1', WARREN_LOG: 'debug', ...opts.env },
  });
  if (opts.waitReady !== false) await proc.waitForOutput(/ready: /, 20_000);
  return new Warrend(lab, ns, proc, dir, socket, configPath, tun);
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
