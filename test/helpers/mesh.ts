/**
 * A tailnet in namespaces: a "lan" namespace with a bridge, the control server
 * in its own namespace, and nodes (warrend in mesh mode), each on the bridge
 * with 10.210.0.N/24 and fd7a:5741:210::N/64. Commands run through the real
 * CLIs (warren-control, warren) inside the namespaces.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Lab, LabProc } from './lab.js';
import { WARREN, WARREND } from './warrend.js';
import type { MeshStatus } from '../../src/control/mesh-status.js';

export const WARREN_CONTROL = WARREND.replace(/warrend\.js$/, 'warren-control.js');

export interface ControlHandle {
  ns: string;
  dir: string;
  url: string;
  fingerprint: string;
  proc: LabProc;
  adminSocket: string;
  admin(args: string[]): Promise<{ stdout: string; stderr: string; code: number }>;
  authkey(flags?: string[]): Promise<string>;
  restart(): Promise<void>;
}

export interface NodeHandle {
  name: string;
  ns: string;
  addr: string;
  dir: string;
  socket: string;
  proc: LabProc;
  cli(args: string[]): Promise<{ stdout: string; stderr: string; code: number }>;
  status(): Promise<MeshStatus>;
  up(key: string | null, extra?: string[]): Promise<{ stdout: string; stderr: string; code: number }>;
  restart(): Promise<void>;
}

export class MeshLab {
  lan = '';
  private n = 0;
  readonly env: Record<string, string>;

  constructor(readonly lab: Lab, env: Record<string, string> = {}) {
    this.env = { WARREN_TEST_MODE: '1', WARREN_LOG: 'debug', WARREN_TIMERS: 'test', ...env };
  }

  async init(): Promise<void> {
    this.lan = await this.lab.ns('lan');
    await this.lab.sh(this.lan, ['ip', 'link', 'add', 'br0', 'type', 'bridge']);
    await this.lab.sh(this.lan, ['ip', 'link', 'set', 'br0', 'up']);
  }

  /** A host on the bridge: returns its namespace and IPv4 address. */
  async host(name: string): Promise<{ ns: string; addr: string }> {
    const i = ++this.n;
    const ns = await this.lab.ns(name);
    const port = `p${i}`;
    await this.lab.veth(ns, 'eth0', this.lan, port);
    await this.lab.sh(this.lan, ['ip', 'link', 'set', port, 'master', 'br0']);
    await this.lab.addr(ns, 'eth0', `10.210.0.${i}/24`);
    await this.lab.addr(ns, 'eth0', `fd7a:5741:210::${i}/64`);
    return { ns, addr: `10.210.0.${i}` };
  }

  async control(opts: { env?: Record<string, string>; args?: string[] } = {}): Promise<ControlHandle> {
    const { ns, addr } = await this.host('ctl');
    return startControl(this.lab, ns, addr, { ...opts, env: { ...this.env, ...opts.env } });
  }

  async node(name: string, opts: { env?: Record<string, string> } = {}): Promise<NodeHandle> {
    const { ns, addr } = await this.host(name);
    return startNode(this.lab, ns, addr, name, { env: { ...this.env, ...opts.env } });
  }
}

/**
 * warren-control serving in namespace `ns` on `addr`:8443 (self-signed unless
 * `args` give a certificate), with the test keepalive and housekeeping.
 */
export async function startControl(lab: Lab, ns: string, addr: string, opts: { env?: Record<string, string>; args?: string[] } = {}): Promise<ControlHandle> {
  const dir = mkdtempSync(join(tmpdir(), 'warren-ctl-'));
  lab.trackPath(dir);
  const adminSocket = join(dir, 'admin.sock');
  const testKnobs: Record<string, string> = opts.env?.['WARREN_TEST_MODE'] === '1' ? { WARREN_CONTROL_KEEPALIVE: '2s', WARREN_CONTROL_HOUSEKEEPING: '300ms' } : {};
  const env = { ...testKnobs, ...opts.env };
  const tls = opts.args?.includes('--tls-cert') ? [] : ['--tls-self-signed'];
  const start = async (): Promise<LabProc> => {
    const p = lab.spawn(ns, ['node', WARREN_CONTROL, 'serve', '--listen', `${addr}:8443`, '--db', `sqlite:${join(dir, 'control.db')}`,
      ...tls, '--admin-socket', adminSocket, ...(opts.args ?? [])], { name: 'warren-control', env });
    await p.waitForOutput(/ready/, 20_000);
    return p;
  };
  const h: ControlHandle = {
    ns, dir, url: `https://${addr}:8443`, fingerprint: '', adminSocket, proc: await start(),
    admin: (args) => lab.sh(ns, ['node', WARREN_CONTROL, ...args, '--admin-socket', adminSocket], { allowFail: true }),
    authkey: async (flags = ['--reusable']) => {
      const r = await h.admin(['authkey', 'create', ...flags]);
      if (r.code !== 0) throw new Error(`authkey create: ${r.stderr}`);
      return r.stdout.trim();
    },
    restart: async () => {
      await h.proc.stop('SIGTERM');
      h.proc = await start();
    },
  };
  const certArg = opts.args?.indexOf('--tls-cert') ?? -1;
  const fp = await lab.sh(ns, ['node', WARREN_CONTROL, 'fingerprint', ...(certArg >= 0 ? ['--tls-cert', opts.args![certArg + 1]!] : ['--state-dir', dir])]);
  h.fingerprint = fp.stdout.trim();
  return h;
}

/** warrend (mesh mode, UDP 41641) in namespace `ns`; `addr` is just remembered. */
export async function startNode(lab: Lab, ns: string, addr: string, name: string, opts: { env?: Record<string, string>; args?: string[] } = {}): Promise<NodeHandle> {
  const dir = mkdtempSync(join(tmpdir(), `warren-${name}-`));
  lab.trackPath(dir);
  const socket = join(dir, 'warrend.sock');
  const start = async (): Promise<LabProc> => {
    const p = lab.spawn(ns, ['node', WARREND, '--state-dir', join(dir, 'state'), '--socket', socket, '--port', '41641', ...(opts.args ?? [])], { name: `warrend-${name}`, env: opts.env });
    await p.waitForOutput(/ready: /, 20_000);
    return p;
  };
  const h: NodeHandle = {
    name, ns, addr, dir, socket, proc: await start(),
    cli: (args) => lab.sh(ns, ['node', WARREN, '--socket', socket, ...args], { allowFail: true, timeoutMs: 60_000 }),
    status: async () => {
      const r = await h.cli(['status', '--json']);
      if (r.code !== 0) throw new Error(`warren status (${name}): ${r.stderr}`);
      return JSON.parse(r.stdout) as MeshStatus;
    },
    up: (key, extra = []) => h.cli(['up', ...(ctlUrl ? ['--login-server', ctlUrl] : []), ...(key ? ['--auth-key', key] : []), '--hostname', name,
      ...(ctlFp ? ['--login-server-fingerprint', ctlFp] : []), ...extra]),
    restart: async () => {
      await h.proc.stop('SIGTERM');
      h.proc = await start();
    },
  };
  return h;
}

let ctlUrl = '';
let ctlFp = '';
/** Nodes' `up()` uses this control server by default. */
export function useControl(c: { url: string; fingerprint: string }): void {
  ctlUrl = c.url;
  ctlFp = c.fingerprint;
}
