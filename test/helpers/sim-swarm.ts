/**
 * Many simulated tailnet nodes (sim-node.ts) in one process inside a lab
 * namespace, registered with a real warren-control and each holding its map
 * stream, so real warrend nodes of the same tailnet see them as online peers.
 * They have no data plane: their endpoints are ports on the swarm's own
 * address that nobody answers.
 *
 *   startSimSwarm(lab, ns, { control, authKey, count, host })
 *
 * Run as a script by that function:
 *   node dist/test/helpers/sim-swarm.js URL CA_FILE FINGERPRINT COUNT HOST   (auth key in WARREN_SIM_AUTHKEY)
 * It prints "registered N in S s", then "synced N in S s" once every sim's
 * netmap lists the other N-1, and stays until signalled.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Lab, LabProc } from './lab.js';
import { SimNode, SimServer } from './sim-node.js';

const SCRIPT = fileURLToPath(import.meta.url);
/** Registrations and stream set-ups in flight at once. */
const WIDTH = 16;

export interface SimSwarm {
  proc: LabProc;
  count: number;
  registerS: number;
  syncS: number;
  stop(): Promise<void>;
}

export interface SimSwarmOptions {
  /** The control server: its URL, fingerprint and state directory (which holds tls-cert.pem). */
  control: { url: string; fingerprint: string; dir: string };
  authKey: string;
  count: number;
  /** The swarm namespace's address: the sims advertise HOST:40000+i as endpoints. */
  host: string;
}

export async function startSimSwarm(lab: Lab, ns: string, o: SimSwarmOptions): Promise<SimSwarm> {
  const proc = lab.spawn(ns, ['node', SCRIPT, o.control.url, join(o.control.dir, 'tls-cert.pem'), o.control.fingerprint, String(o.count), o.host], {
    name: 'sim-swarm', env: { WARREN_SIM_AUTHKEY: o.authKey },
  });
  const reg = await proc.waitForOutput(/registered \d+ in ([\d.]+) s/, 30_000 + o.count * 100);
  const sync = await proc.waitForOutput(/synced \d+ in ([\d.]+) s/, 30_000 + o.count * 100);
  return { proc, count: o.count, registerS: Number(reg[1]), syncS: Number(sync[1]), stop: async () => void await proc.stop('SIGTERM') };
}

async function pool<T>(items: T[], width: number, fn: (x: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (i < items.length) await fn(items[i++]!);
  }));
}

async function swarmMain(args: string[]): Promise<void> {
  const [url, caFile, fingerprint, countText, host] = args;
  const count = Number(countText);
  const authKey = process.env['WARREN_SIM_AUTHKEY'] ?? '';
  const srv = new SimServer(url!, readFileSync(caFile!, 'utf8'), fingerprint!, { maxSockets: WIDTH });
  const sims = Array.from({ length: count }, (_, i) => new SimNode(srv, {
    hostname: `sim${i}`, authKey, endpoints: [`${host}:${40000 + i}`], validate: false,
  }));
  let t = performance.now();
  await pool(sims, WIDTH, async (s) => void await s.register());
  process.stdout.write(`registered ${count} in ${((performance.now() - t) / 1000).toFixed(1)} s\n`);
  t = performance.now();
  await pool(sims, WIDTH, async (s) => void await s.connect());
  await Promise.all(sims.map((s) => s.waitFor(`${count - 1} peers`, (n) => (n.netmap?.peers.length ?? 0) >= count - 1, 120_000)));
  process.stdout.write(`synced ${count} in ${((performance.now() - t) / 1000).toFixed(1)} s\n`);
  const stop = (): void => {
    for (const s of sims) s.close();
    srv.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (process.argv[1] === SCRIPT) {
  swarmMain(process.argv.slice(2)).catch((e: Error) => {
    process.stderr.write(`sim-swarm: ${e.stack ?? e.message}\n`);
    process.exit(1);
  });
}
