/**
 * `warren ping` and `warren netcheck`: what NAT traversal sees. ping sends
 * disco pings (not ICMP) to a peer and prints each pong with the path it took
 * — "via relay(CODE)" while relayed, "via IP:PORT" once direct — so a user
 * watches a connection upgrade; netcheck prints what the network around this
 * node looks like.
 */
import { UsageError, type Command } from './command.js';
import type { NetcheckReport } from '../nat/netcheck.js';
import type { PingResult } from '../nat/traversal.js';

/** A pause between pings that the CLI's tests can shorten. */
const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export const pingCommand: Command = {
  name: 'ping',
  summary: 'ping a peer over the tailnet\'s own protocol and show the path each pong took',
  usage: [
    'Usage: warren ping [-c N] [--interval MS] [--timeout MS] [--until-direct] PEER',
    '',
    'Sends disco pings to PEER (a node name, tailnet address or node key) and prints',
    'each pong with its path ("via relay(CODE)" or "via IP:PORT") and round-trip time.',
    '',
    'Flags:',
    '  -c N             number of pings (default 10)',
    '  --interval MS    pause between pings in ms (default 1000)',
    '  --timeout MS     wait this long for each pong (default 2000)',
    '  --until-direct   stop as soon as a pong arrives on a direct path',
  ].join('\n'),
  options: {
    count: { type: 'string', short: 'c' },
    interval: { type: 'string' },
    timeout: { type: 'string' },
    'until-direct': { type: 'boolean' },
  },
  allowPositionals: true,
  async run({ values, positionals }, ctx) {
    if (positionals.length !== 1) throw new UsageError('ping needs exactly one PEER', "Run 'warren ping --help' for usage.");
    const num = (name: string, dflt: number, min: number): number => {
      const v = values[name];
      if (v === undefined) return dflt;
      const n = Number(v);
      if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer >= ${min}, not "${String(v)}"`, "Run 'warren ping --help' for usage.");
      return n;
    };
    const count = num('count', 10, 1);
    const interval = num('interval', 1000, 0);
    const timeoutMs = num('timeout', 2000, 1);
    let answered = 0;
    for (let i = 0; i < count; i++) {
      if (i > 0) await wait(interval);
      try {
        const r = (await ctx.client().call('POST', '/v0/ping', { peer: positionals[0], timeoutMs }, {})) as PingResult;
        answered++;
        ctx.io.stdout.write(`pong from ${r.peer} via ${r.via} in ${r.latencyMs.toFixed(1)} ms\n`);
        if (values['until-direct'] && !r.via.startsWith('relay(')) break;
      } catch (e) {
        const msg = (e as Error).message;
        if (/no such peer|not connected/.test(msg)) throw e;
        ctx.io.stdout.write(`timeout: ${msg}\n`);
      }
    }
    return answered > 0 ? 0 : 1;
  },
};

export function formatNetcheck(r: NetcheckReport): string {
  const yesNo = (b: boolean | null): string => (b === null ? 'unknown' : b ? 'yes' : 'no');
  const lines = [
    'Report:',
    `  * UDP: ${r.udp ? 'true' : 'false'}`,
    `  * IPv4: ${r.publicIPv4 ? `yes, ${r.publicIPv4}` : 'no'}`,
    `  * IPv6: ${r.publicIPv6 ? `yes, ${r.publicIPv6}` : 'no'}`,
    `  * MappingVariesByDestIP: ${r.mappingVaries === null ? 'unknown' : String(r.mappingVaries)}`,
    `  * PortMapping: UPnP ${yesNo(r.portMapping.upnp)}, NAT-PMP ${yesNo(r.portMapping.natpmp)}, PCP ${yesNo(r.portMapping.pcp)}${r.portMapping.mapped ? `, mapped ${r.portMapping.mapped}` : ''}`,
    `  * Nearest relay: ${r.regions.find((x) => x.id === r.preferredRegion)?.code ?? 'none reachable'}`,
    '  * Relay latency:',
    ...r.regions.map((x) => `    - ${x.code}: ${x.latencyMs === null ? 'unreachable' : `${x.latencyMs.toFixed(1)} ms (${x.via})`}`),
  ];
  return lines.join('\n') + '\n';
}

export const netcheckCommand: Command = {
  name: 'netcheck',
  summary: 'measure this node\'s network: UDP, public endpoint, NAT type, relay latency',
  usage: [
    'Usage: warren netcheck [--json]',
    '',
    'Asks the relay regions\' STUN servers, from the tunnel\'s own UDP socket, how this',
    'node looks from outside, and measures each relay region\'s latency.',
    '',
    'Flags:',
    '  --json   print the report as JSON',
  ].join('\n'),
  options: { json: { type: 'boolean' } },
  async run({ values }, ctx) {
    const r = (await ctx.client().call('POST', '/v0/netcheck', {}, {})) as NetcheckReport;
    ctx.io.stdout.write(values.json ? JSON.stringify(r, null, 2) + '\n' : formatNetcheck(r));
    return 0;
  },
};
