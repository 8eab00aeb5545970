/**
 * The mesh commands of `warren`: up, down, logout, ip, and debug helpers.
 * Each is a thin call to the LocalAPI; warrend does the work and answers with
 * a message a user can act on.
 */
import { hostname as osHostname } from 'node:os';
import { UsageError, type Command } from './command.js';
import type { MeshStatus } from '../control/mesh-status.js';
import { isMeshStatus } from './mesh-status-format.js';
import { parseEndpoint } from '../wire/control.js';

function list(v: unknown): string[] {
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).map(String).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
}

/** A DNS label from the machine's hostname ("Pi.local" → "pi"). */
export function defaultHostname(): string {
  const label = osHostname().split('.')[0]!.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 63);
  return label || 'warren-node';
}

export const upCommand: Command = {
  name: 'up',
  summary: 'connect this node to the tailnet (register with an auth key the first time)',
  usage: [
    'Usage: warren up [--login-server URL]... [--auth-key KEY] [--hostname NAME] [--login-server-fingerprint SHA256]\n                 [--static-endpoint IP:PORT]... [--no-port-mapping | --port-mapping]',
    '',
    'Registers this node with the control server (first time, or after logout) and',
    'brings the tunnel up. Without flags, reconnects with the saved settings.',
    '',
    'Flags:',
    '  --login-server URL                 control server (https://host:port); repeat for replicas, tried in turn',
    '  --auth-key KEY                     auth key from "warren-control authkey create"',
    '  --hostname NAME                    name for this node (default: the machine\'s hostname)',
    '  --login-server-fingerprint SHA256  pin the control server\'s self-signed certificate',
    '                                     ("warren-control fingerprint" prints it)',
    '  --static-endpoint IP:PORT          also advertise this endpoint (a port forward or load balancer);',
    '                                     repeat or comma-separate for several',
    '  --no-port-mapping                  never ask the router for a port (UPnP, NAT-PMP, PCP); kept until',
    '                                     "warren up --port-mapping" turns it back on (the default)',
  ].join('\n'),
  options: {
    'login-server': { type: 'string', multiple: true },
    'auth-key': { type: 'string' },
    hostname: { type: 'string' },
    'login-server-fingerprint': { type: 'string' },
    'static-endpoint': { type: 'string', multiple: true },
    'no-port-mapping': { type: 'boolean' },
    'port-mapping': { type: 'boolean' },
  },
  async run({ values }, ctx) {
    const servers = list(values['login-server']);
    for (const s of servers) {
      let u: URL;
      try {
        u = new URL(s);
      } catch {
        throw new UsageError(`--login-server "${s}" is not a URL`, "Example: --login-server https://control.example:8443");
      }
      if (u.protocol !== 'https:') throw new UsageError(`--login-server "${s}" must be https://`, 'The control protocol only runs over TLS.');
    }
    if (values['no-port-mapping'] && values['port-mapping']) throw new UsageError('give --no-port-mapping or --port-mapping, not both', "Run 'warren up --help' for usage.");
    const body = {
      noPortMapping: values['no-port-mapping'] ? true : values['port-mapping'] ? false : undefined,
      loginServers: servers,
      authKey: values['auth-key'] as string | undefined,
      hostname: (values['hostname'] as string | undefined) ?? (servers.length ? defaultHostname() : undefined),
      fingerprint: values['login-server-fingerprint'] as string | undefined,
      staticEndpoints: values['static-endpoint'] === undefined ? undefined : list(values['static-endpoint']).map((e) => {
        if (!parseEndpoint(e)) throw new UsageError(`--static-endpoint "${e}" is not IP:PORT`, 'Example: --static-endpoint 198.51.100.7:41641 (IPv6: [2001:db8::7]:41641)');
        return e;
      }),
    };
    const r = (await ctx.client().call('POST', '/v0/up', body, {})) as { backendState: string; self: MeshStatus['self'] };
    const addrs = r.self ? r.self.addresses.map((a) => a.replace(/\/\d+$/, '')).join(', ') : '';
    ctx.io.stdout.write(r.self ? `Connected as ${r.self.name} (${addrs}).\n` : `${r.backendState}\n`);
    return 0;
  },
};

export const downCommand: Command = {
  name: 'down',
  summary: 'disconnect from the tailnet (keeps the registration)',
  usage: 'Usage: warren down',
  options: {},
  async run(_a, ctx) {
    await ctx.client().call('POST', '/v0/down', {}, {});
    ctx.io.stdout.write('Stopped. Run "warren up" to reconnect.\n');
    return 0;
  },
};

export const logoutCommand: Command = {
  name: 'logout',
  summary: 'disconnect and forget the registration (a new auth key is needed)',
  usage: 'Usage: warren logout',
  options: {},
  async run(_a, ctx) {
    await ctx.client().call('POST', '/v0/logout', {}, {});
    ctx.io.stdout.write('Logged out.\n');
    return 0;
  },
};

export const ipCommand: Command = {
  name: 'ip',
  summary: "print this node's (or a peer's) tailnet addresses",
  usage: 'Usage: warren ip [-4|-6] [PEER]\n\nPEER is a node name or one of its addresses.',
  options: { '4': { type: 'boolean', short: '4' }, '6': { type: 'boolean', short: '6' } },
  allowPositionals: true,
  async run({ values, positionals }, ctx) {
    if (positionals.length > 1) throw new UsageError('ip takes at most one peer', "Run 'warren ip --help' for usage.");
    if (values['4'] && values['6']) throw new UsageError('give -4 or -6, not both', "Run 'warren ip --help' for usage.");
    const st: unknown = await ctx.client().status();
    if (!isMeshStatus(st)) throw new Error('warrend runs in plain WireGuard mode; "warren ip" needs mesh mode');
    let addrs: string[];
    const want = positionals[0];
    if (want === undefined) {
      if (!st.self) throw new Error('not connected: run "warren up" first');
      addrs = st.self.addresses;
    } else {
      const p = st.peers.find((x) => x.name === want || x.addresses.some((a) => a.replace(/\/\d+$/, '') === want));
      if (!p) throw new Error(`no peer named "${want}" in the netmap`);
      addrs = p.addresses;
    }
    const bare = addrs.map((a) => a.replace(/\/\d+$/, '')).filter((a) => (values['4'] ? !a.includes(':') : values['6'] ? a.includes(':') : true));
    ctx.io.stdout.write(bare.join('\n') + '\n');
    return 0;
  },
};

export const debugCommand: Command = {
  name: 'debug',
  summary: 'maintenance actions (rotate-node-key)',
  usage: 'Usage: warren debug rotate-node-key\n\nrotate-node-key  replace this node\'s WireGuard key; identity and addresses stay',
  options: {},
  allowPositionals: true,
  async run({ positionals }, ctx) {
    if (positionals.length !== 1 || positionals[0] !== 'rotate-node-key') throw new UsageError('unknown debug action', "Run 'warren debug --help' for usage.");
    const r = (await ctx.client().call('POST', '/v0/rotate-node-key', {}, {})) as { nodeKey: string };
    ctx.io.stdout.write(`new node key ${r.nodeKey}\n`);
    return 0;
  },
};
