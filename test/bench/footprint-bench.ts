/**
 * `make bench`, footprint: what warrend costs to keep running, next to Debian's
 * wireguard-go 0.0.20220316 where that has a counterpart. Not a test: figures
 * vary with the machine's load.
 *
 * 1. Memory while carrying traffic, 100 peers (and 1,000): a real tailnet in
 *    namespaces — warren-control, two warrend nodes in mesh mode (production
 *    timers) and a swarm of simulated nodes (sim-swarm.ts) registered with the
 *    same server, so each real node's netmap lists N peers. iperf3 runs
 *    between the two real nodes; VmRSS of both warrend processes (main thread
 *    and packet worker: one process) is sampled, VmHWM read at the end, the JS
 *    heaps (main and worker) taken from a Node diagnostic report. Traffic
 *    starts once warrend has dropped its start-up pages (at ready and 5 s
 *    after its first netmap: daemon/startup-trim.ts); VmHWM still includes
 *    the start-up peak.
 *    The same for two wireguard-go and, for reference, two warrend in plain
 *    WireGuard mode, each given 100 peers (1 real, 99 keys with addresses).
 * 2. Idle CPU: once traffic has stopped, utime+stime over a window, % of a core.
 * 3. Start-up to tunnel-up: from spawning warrend until a ping through the
 *    tunnel is answered — a restart of a registered node (state directory and
 *    saved netmap), and a first `warren up` on an empty state directory. Median.
 * 4. Crypto cost per byte: the native helper's seal (test/bench/crypto-bench.ts
 *    measures it) against `openssl speed -evp chacha20-poly1305 -bytes 1420`.
 *
 *   node dist/test/bench/footprint-bench.js       (as root)
 *   FOOTPRINT_PEERS=100,1000  FOOTPRINT_TRAFFIC_SECONDS=10  FOOTPRINT_IDLE_SECONDS=40  FOOTPRINT_RUNS=5
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab, twoHosts, waitFor } from '../helpers/lab.js';
import { MeshLab, startControl, startNode, useControl, type NodeHandle } from '../helpers/mesh.js';
import { startSimSwarm } from '../helpers/sim-swarm.js';
import { cpuPercent, procMem, RssSampler } from '../helpers/proc-stats.js';
import { startWireguardGo, wireguardGoVersion, type KeyPair } from '../helpers/wg.js';
import { generatePrivateKey, publicKeyOf } from '../../src/crypto/x25519.js';
import { startWarrend, WARREND } from '../helpers/warrend.js';

const PEERS = (process.env['FOOTPRINT_PEERS'] ?? '100,1000').split(',').map(Number).filter((n) => n >= 2);
const TRAFFIC_S = Number(process.env['FOOTPRINT_TRAFFIC_SECONDS'] ?? 10);
const IDLE_S = Number(process.env['FOOTPRINT_IDLE_SECONDS'] ?? 40);
const RUNS = Number(process.env['FOOTPRINT_RUNS'] ?? 5);
/** Production timers and logging, as a box runs. */
const PROD = { WARREN_TEST_MODE: '0', WARREN_LOG: 'info' };
const PACKET = 1420;
const CRYPTO_BENCH = join(fileURLToPath(new URL('.', import.meta.url)), 'crypto-bench.js');

/**
 * The node flags warrend's bin runs with (its shebang: `#!/usr/bin/env -S node FLAGS`).
 * The helpers start `node warrend.js`, which skips the shebang: the bench hands
 * them the same flags in NODE_OPTIONS, so it measures warrend as installed.
 */
function warrendFlags(file = WARREND): string {
  const first = readFileSync(file, 'utf8').split('\n', 1)[0] ?? '';
  return /^#!\/usr\/bin\/env -S node\b(.*)$/.exec(first)?.[1]?.trim() ?? '';
}
const FLAGS = warrendFlags();
/** warrend's environment: production timers, and its bin's flags. */
const WARREND_ENV: Record<string, string> = { ...PROD, ...(FLAGS ? { NODE_OPTIONS: FLAGS } : {}) };

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const say = (s: string): void => void process.stdout.write(`${s}\n`);

// ------------------------------------------------------------------ shared measurements

/** iperf3 TCP from `from` to `dst` (served in `to`); Gbit/s received. */
async function iperf(lab: Lab, from: string, to: string, dst: string, seconds: number): Promise<number> {
  const srv = lab.spawn(to, ['iperf3', '-s', '-1', '--forceflush', '-B', dst], { name: 'iperf3-s' });
  await srv.waitForOutput(/Server listening/, 10_000);
  const r = await lab.sh(from, ['iperf3', '-c', dst, '-t', String(seconds), '-J'], { timeoutMs: (seconds + 30) * 1000 });
  await srv.exited;
  return (JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second / 1e9;
}

async function pingOnce(lab: Lab, ns: string, dst: string): Promise<void> {
  await waitFor(`ping ${dst}`, async () => (await lab.sh(ns, ['ping', '-n', '-c', '1', '-W', '1', dst], { allowFail: true })).code === 0,
    { timeoutMs: 30_000, intervalMs: 100 });
}

interface Load {
  gbit: number;
  /** Max VmRSS sampled while iperf3 ran, per process (MiB). */
  rss: number[];
  /** VmHWM after it, per process. */
  hwm: number[];
  anon: number[];
  file: number[];
}

/** TCP through the tunnel for TRAFFIC_S while sampling the processes' RSS. */
async function underLoad(lab: Lab, from: string, to: string, dst: string, pids: number[]): Promise<Load> {
  await pingOnce(lab, from, dst);
  const sampler = new RssSampler(pids);
  const gbit = await iperf(lab, from, to, dst, TRAFFIC_S);
  const rss = sampler.stop();
  const mem = pids.map(procMem);
  return { gbit, rss, hwm: mem.map((m) => m.hwmMb), anon: mem.map((m) => m.anonMb), file: mem.map((m) => m.fileMb) };
}

/** Idle CPU after traffic: a short settle, then the window. */
async function idle(pids: number[]): Promise<number[]> {
  await new Promise((r) => setTimeout(r, 2000)); // let the last ACKs and timers run out before the window opens
  return cpuPercent(pids, IDLE_S);
}

/** JS heap in use (main thread, packet worker) from a Node diagnostic report (SIGUSR2; NODE_OPTIONS set at spawn). */
async function heaps(pid: number, dir: string): Promise<{ main: number; worker: number }> {
  process.kill(pid, 'SIGUSR2');
  const file = await waitFor(`diagnostic report of ${pid}`, () => readdirSync(dir).find((f) => f.includes(`.${pid}.`) && f.endsWith('.json')) ?? false,
    { timeoutMs: 10_000, intervalMs: 50 });
  let report: { javascriptHeap: { usedMemory: number }; workers?: Array<{ javascriptHeap?: { usedMemory: number } }> } | undefined;
  await waitFor('a complete report', () => {
    try {
      report = JSON.parse(readFileSync(join(dir, file), 'utf8')) as typeof report;
      return true;
    } catch {
      return false;
    }
  }, { timeoutMs: 10_000, intervalMs: 50 });
  rmSync(join(dir, file), { force: true });
  const mb = (b: number | undefined): number => (b ?? NaN) / 1048576;
  return { main: mb(report!.javascriptHeap.usedMemory), worker: mb(report!.workers?.[0]?.javascriptHeap?.usedMemory) };
}

/**
 * warrend drops the pages it touched only while starting once it is ready and
 * 5 s after its first netmap (daemon/startup-trim.ts); a box runs for months
 * after that, so memory under traffic is measured from then on. VmHWM still
 * shows the start-up peak.
 */
async function startupTrimmed(proc: { waitForOutput(re: RegExp, timeoutMs: number): Promise<RegExpMatchArray> }, reason = 'start-up'): Promise<void> {
  await proc.waitForOutput(new RegExp(`dropped [\\d.]+ MB of start-up pages \\(${reason}\\)`), 30_000);
}

// ------------------------------------------------------------------ the tailnet (mesh mode)

interface MeshFigures {
  peers: number;
  swarm: string;
  /** VmRSS right after `warren up` and the peers' arrival, and once warrend has dropped its start-up pages. */
  upRss: number[];
  trimmedRss: number[];
  load: Load;
  heap: Array<{ main: number; worker: number }>;
  idleCpu: number[];
  restartMs: number[];
  firstUpMs: number[];
}

/**
 * From spawning (`start` is called at t0) until a ping from `ns` to `dst`
 * through the tunnel is answered: a shell loop of `ping -D` that retries
 * while there is no route yet. Milliseconds (the reply's own timestamp).
 */
async function toTunnelUp(lab: Lab, ns: string, dst: string, start: () => Promise<unknown>): Promise<number> {
  const t0 = Date.now();
  const pinger = lab.spawn(ns, ['timeout', '60', 'sh', '-c',
    `until ping -D -n -c 1 -w 30 -i 0.02 ${dst} 2>/dev/null; do sleep 0.02; done`], { name: 'ping-until-up' });
  await start();
  const st = await pinger.exited;
  const m = /^\[(\d+\.\d+)\] \d+ bytes from/m.exec(pinger.output());
  if (st.code !== 0 || !m) throw new Error(`no ping answered through the tunnel (${pinger.describeExit()}):\n${pinger.tail()}`);
  return Number(m[1]) * 1000 - t0;
}

async function meshFigures(peers: number, startup: boolean): Promise<MeshFigures> {
  const lab = Lab.create(`fp${peers}`);
  try {
    const reports = mkdtempSync(join(tmpdir(), 'warren-fp-reports-'));
    lab.trackPath(reports);
    const env = { ...PROD, NODE_OPTIONS: `${FLAGS} --report-on-signal --report-signal=SIGUSR2 --report-directory=${reports}`.trim() };
    const m = new MeshLab(lab, PROD);
    await m.init();
    const c = await m.host('ctl');
    const ctl = await startControl(lab, c.ns, c.addr, { env: PROD });
    useControl(ctl);
    const key = await ctl.authkey(['--reusable']);
    // The swarm first: the real nodes then get one full map, as after a reboot, not a thousand deltas.
    const s = await m.host('sims');
    const swarm = await startSimSwarm(lab, s.ns, { control: ctl, authKey: key, count: peers - 1, host: s.addr });
    const hosts = [await m.host('fa'), await m.host('fb')];
    const [a, b] = await Promise.all(hosts.map((h, i) => startNode(lab, h.ns, h.addr, `f${'ab'[i]}`, { env }))) as [NodeHandle, NodeHandle];
    for (const n of [a, b]) {
      const r = await n.up(key);
      if (r.code !== 0) throw new Error(`warren up: ${r.stderr}`);
    }
    await waitFor(`both nodes list ${peers} online peers`, async () => {
      for (const n of [a, b]) if ((await n.status()).peers.filter((p) => p.online).length !== peers) return false;
      return true;
    }, { timeoutMs: 60_000 + peers * 50, intervalMs: 250 });
    const bIp = (await b.cli(['ip', '-4'])).stdout.trim();
    const upRss = [a, b].map((n) => procMem(n.proc.pid).rssMb);
    await Promise.all([a.proc, b.proc].map((p) => startupTrimmed(p, 'first netmap')));
    const trimmedRss = [a, b].map((n) => procMem(n.proc.pid).rssMb);
    const load = await underLoad(lab, a.ns, b.ns, bIp, [a.proc.pid, b.proc.pid]);
    const heap = [await heaps(a.proc.pid, reports), await heaps(b.proc.pid, reports)];
    const idleCpu = await idle([a.proc.pid, b.proc.pid]);

    const restartMs: number[] = [];
    const firstUpMs: number[] = [];
    if (startup) {
      for (let i = 0; i < RUNS; i++) {
        await a.proc.stop('SIGTERM');
        restartMs.push(await toTunnelUp(lab, a.ns, bIp, () => a.restart()));
      }
      const f = await m.host('fresh');
      for (let i = 0; i < RUNS; i++) {
        let node: NodeHandle | undefined;
        firstUpMs.push(await toTunnelUp(lab, f.ns, bIp, async () => {
          node = await startNode(lab, f.ns, f.addr, `fresh${i}`, { env: WARREND_ENV });
          const r = await node.up(key);
          if (r.code !== 0) throw new Error(`warren up: ${r.stderr}`);
        }));
        await node!.proc.stop('SIGTERM');
        await ctl.admin(['nodes', 'delete', `fresh${i}`]);
      }
    }
    return { peers, swarm: `${swarm.count} simulated nodes registered in ${swarm.registerS} s, synced in ${swarm.syncS} s`, upRss, trimmedRss, load, heap, idleCpu, restartMs, firstUpMs };
  } finally {
    await lab.cleanup();
  }
}

// ------------------------------------------------------------------ plain WireGuard: wireguard-go and warrend --wg-config

interface PlainFigures {
  load: Load;
  idleCpu: number[];
}

/**
 * A key pair from random bytes (src/crypto/x25519.ts, no key-generation job). wg.ts's
 * genKeyPair (generateKeyPairSync, then a JWK export) deadlocked Node 20.20 here once in
 * ~200 calls: a GC inside the export ran an earlier KeyGenJob's destructor, which waited
 * on a mutex the thread already held.
 */
function keyPair(): KeyPair {
  const priv = generatePrivateKey();
  return { privateKey: Buffer.from(priv).toString('base64'), publicKey: Buffer.from(publicKeyOf(priv)).toString('base64') };
}

/** Two wireguard-go or two warrend (plain mode) with 100 peers each: the other one and 99 keys that never speak. */
async function plainFigures(kind: 'wireguard-go' | 'warrend', peers: number): Promise<PlainFigures> {
  const lab = Lab.create(kind === 'warrend' ? 'fpplainw' : 'fpplaing');
  try {
    const h = await twoHosts(lab);
    const extra: KeyPair[] = Array.from({ length: peers - 1 }, () => keyPair());
    const others = extra.map((k, i) => ({ publicKey: k.publicKey, allowedIps: [`10.89.${i >> 8}.${i & 255}/32`] }));
    const ka = keyPair(), kb = keyPair();
    const side = (self: KeyPair, peer: KeyPair, addr: string, peerAddr: string, peerHost: string) => ({
      privateKey: self.privateKey, listenPort: 51820, addresses: [`${addr}/24`],
      peers: [{ publicKey: peer.publicKey, allowedIps: [`${peerAddr}/32`], endpoint: `${peerHost}:51820` }, ...others],
    });
    const sa = side(ka, kb, '10.88.0.1', '10.88.0.2', h.bAddr);
    const sb = side(kb, ka, '10.88.0.2', '10.88.0.1', h.aAddr);
    let pids: number[];
    if (kind === 'warrend') {
      const a = await startWarrend(lab, h.a, sa, { env: WARREND_ENV });
      const b = await startWarrend(lab, h.b, sb, { env: WARREND_ENV });
      pids = [a.proc.pid, b.proc.pid];
      await Promise.all([a.proc, b.proc].map((p) => startupTrimmed(p)));
    } else {
      const a = await startWireguardGo(lab, h.a, { ifname: lab.uniqueIfname('fpga'), ...sa });
      const b = await startWireguardGo(lab, h.b, { ifname: lab.uniqueIfname('fpgb'), ...sb });
      pids = [a.proc.pid, b.proc.pid];
    }
    const load = await underLoad(lab, h.a, h.b, '10.88.0.2', pids);
    return { load, idleCpu: await idle(pids) };
  } finally {
    await lab.cleanup();
  }
}

// ------------------------------------------------------------------ crypto

interface CryptoFigures {
  opensslBps: number;
  batchedBps: number;
  perPacketBps: number;
  /** wn_open_batch, including crypto-bench's copy of each sealed message back into place. */
  openBatchedBps: number;
}

/** Rounds of (openssl, crypto-bench) in turn; the best of each counts: on a shared machine other work only ever slows a run. */
const CRYPTO_ROUNDS = 3;

function cryptoFigures(): CryptoFigures {
  const best: CryptoFigures = { opensslBps: 0, batchedBps: 0, perPacketBps: 0, openBatchedBps: 0 };
  for (let round = 0; round < CRYPTO_ROUNDS; round++) {
    // openssl's last line: "ChaCha20-Poly1305   1234567.89k" (thousands of bytes per second)
    const ssl = execFileSync('openssl', ['speed', '-seconds', '3', '-evp', 'chacha20-poly1305', '-bytes', String(PACKET)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const sslK = /([\d.]+)k\s*$/.exec(ssl.trim());
    // The native seal, as crypto-bench measures it (2 s per case).
    const out = execFileSync(process.execPath, [CRYPTO_BENCH, '2'], { encoding: 'utf8' });
    const pps = (label: RegExp): number => Number(new RegExp(`${label.source}\\s+([\\d,]+) packets/s`, 'm').exec(out)?.[1]?.replace(/,/g, '') ?? NaN);
    const r = {
      opensslBps: sslK ? Number(sslK[1]) * 1000 : NaN,
      batchedBps: pps(/^wn_seal_batch via koffi, \d+ packets per call/) * PACKET,
      perPacketBps: pps(/^wn_seal via koffi, one call per packet/) * PACKET,
      openBatchedBps: pps(/^wn_open_batch via koffi, \d+ per call \(\+ their copy\)/) * PACKET,
    };
    say(`  crypto round ${round + 1}: openssl ${(r.opensslBps / 1e9).toFixed(2)} GB/s, wn_seal_batch ${(r.batchedBps / 1e9).toFixed(2)} GB/s, wn_seal ${(r.perPacketBps / 1e9).toFixed(2)} GB/s, ` +
      `wn_open_batch ${(r.openBatchedBps / 1e9).toFixed(2)} GB/s`);
    for (const k of Object.keys(best) as Array<keyof CryptoFigures>) best[k] = Math.max(best[k], r[k]);
  }
  return best;
}

// ------------------------------------------------------------------ the report

const f1 = (x: number): string => x.toFixed(1);
const mx = (xs: number[]): number => Math.max(...xs);

function printMesh(f: MeshFigures): void {
  say(`mesh mode, ${f.peers} peers per node (${f.swarm}); two warrend nodes, iperf3 between them at ${f.load.gbit.toFixed(2)} Gbit/s`);
  say(`  node      | RSS after up | after start-up trim | max RSS under traffic | peak (VmHWM) | anon / file    | JS heap main / worker | idle CPU`);
  ['sender', 'receiver'].forEach((role, i) => say(`  ${role.padEnd(9)} | ${`${f1(f.upRss[i]!)} MB`.padEnd(12)} | ${`${f1(f.trimmedRss[i]!)} MB`.padEnd(19)} | ${`${f1(f.load.rss[i]!)} MB`.padEnd(21)} | ` +
    `${`${f1(f.load.hwm[i]!)} MB`.padEnd(12)} | ${`${f1(f.load.anon[i]!)} / ${f1(f.load.file[i]!)} MB`.padEnd(14)} | ` +
    `${`${f1(f.heap[i]!.main)} / ${f1(f.heap[i]!.worker)} MB`.padEnd(21)} | ${f.idleCpu[i]!.toFixed(2)} %`));
  if (f.restartMs.length) {
    say(`  start-up to tunnel-up, restart with saved netmap: ${f.restartMs.map((x) => x.toFixed(0)).join(', ')} ms`);
    say(`  start-up to tunnel-up, first "warren up":         ${f.firstUpMs.map((x) => x.toFixed(0)).join(', ')} ms`);
  }
}

const printPlain = (name: string, p: PlainFigures): void =>
  say(`plain WireGuard, 100 peers, ${name}: ${p.load.gbit.toFixed(2)} Gbit/s, max RSS ${p.load.rss.map(f1).join(' / ')} MB ` +
    `(anon ${p.load.anon.map(f1).join(' / ')}, file ${p.load.file.map(f1).join(' / ')}), idle ${p.idleCpu.map((x) => x.toFixed(2)).join(' / ')} %`);

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces, TUN)');
  const wg = `wireguard-go ${(await wireguardGoVersion()).split('-')[0]}`;
  say(`footprint: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, node ${process.version}; iperf3 ${TRAFFIC_S} s, idle window ${IDLE_S} s, start-up median of ${RUNS}`);
  say(`warrend runs with its bin's node flags: ${FLAGS || '(none)'}`);
  const mesh: MeshFigures[] = [];
  for (const [i, n] of PEERS.entries()) {
    say(`… tailnet with ${n} peers per node`);
    mesh.push(await meshFigures(n, i === 0));
    printMesh(mesh.at(-1)!);
  }
  const g = await plainFigures('wireguard-go', 100);
  printPlain(wg, g);
  const w = await plainFigures('warrend', 100);
  printPlain('warrend --wg-config', w);
  say('… crypto');
  const cr = cryptoFigures();
  say(`crypto, best of ${CRYPTO_ROUNDS} rounds: openssl ${(cr.opensslBps / 1e9).toFixed(2)} GB/s; wn_seal_batch ${(cr.batchedBps / 1e9).toFixed(2)} GB/s; wn_seal per packet ${(cr.perPacketBps / 1e9).toFixed(2)} GB/s; ` +
    `wn_open_batch ${(cr.openBatchedBps / 1e9).toFixed(2)} GB/s (with a copy of each message)`);

  const m100 = mesh[0]!;
  const row = (name: string, warren: string, target: string, ok: boolean, peer = '', ratio = ''): void =>
    say(`${name.padEnd(52)} ${warren.padStart(10)}  ${target.padEnd(9)} ${(ok ? 'met' : 'MISSED').padEnd(7)} ${peer.padStart(9)}  ${ratio}`);
  say('');
  say(`${'figure'.padEnd(52)} ${'warrend'.padStart(10)}  ${'target'.padEnd(9)} ${''.padEnd(7)} ${'wg-go'.padStart(9)}  ratio (peer: ${wg}, Debian)`);
  const rss = mx(m100.load.rss);
  const gRss = mx(g.load.rss);
  row(`RSS, ${m100.peers} peers, carrying traffic (mesh, max of 2 nodes)`, `${f1(rss)} MB`, '≤ 80 MB', rss <= 80, `${f1(gRss)} MB`,
    `${(rss / gRss).toFixed(1)}× ${wg}'s (plain, 100 peers)`);
  row(`  same, warrend --wg-config (plain, 100 peers)`, `${f1(mx(w.load.rss))} MB`, '≤ 80 MB', mx(w.load.rss) <= 80, `${f1(gRss)} MB`,
    `${(mx(w.load.rss) / gRss).toFixed(1)}× ${wg}'s`);
  const info = (name: string, warren: string, note: string): void => say(`${name.padEnd(52)} ${warren.padStart(10)}  ${note}`);
  info('  peak during start-up, before the trim (VmHWM, mesh)', `${f1(mx(m100.load.hwm))} MB`, '(no target: memory is measured from the start-up trim on)');
  for (const f of mesh.slice(1)) info(`RSS, ${f.peers} peers, carrying traffic (mesh)`, `${f1(mx(f.load.rss))} MB`, '(the target is for 100 peers)');
  const cpu = mx(m100.idleCpu);
  const gCpu = mx(g.idleCpu);
  row(`idle CPU, ${m100.peers} peers (mesh, max of 2 nodes)`, `${cpu.toFixed(2)} %`, '< 1 %', cpu < 1, `${gCpu.toFixed(2)} %`,
    gCpu > 0 ? `${(cpu / gCpu).toFixed(1)}× ${wg}'s` : `${wg}: 0 ticks in ${IDLE_S} s`);
  if (m100.restartMs.length) {
    row(`start-up to tunnel-up: restart (median of ${RUNS})`, `${(median(m100.restartMs) / 1000).toFixed(2)} s`, '< 2 s', median(m100.restartMs) < 2000);
    row(`start-up to tunnel-up: first warren up (median of ${RUNS})`, `${(median(m100.firstUpMs) / 1000).toFixed(2)} s`, '< 2 s', median(m100.firstUpMs) < 2000);
  }
  const cost = cr.opensslBps / cr.batchedBps;
  row('crypto cost/byte vs openssl (wn_seal_batch, 1420 B)', `${cost.toFixed(2)}×`, '≤ 1.5×', cost <= 1.5, '', `openssl ${(cr.opensslBps / 1e9).toFixed(2)} GB/s, warren ${(cr.batchedBps / 1e9).toFixed(2)} GB/s`);
  row('  same, wn_open_batch (+ a copy per message)', `${(cr.opensslBps / cr.openBatchedBps).toFixed(2)}×`, '≤ 1.5×', cr.opensslBps / cr.openBatchedBps <= 1.5);
  info('  same, wn_seal one koffi call per packet', `${(cr.opensslBps / cr.perPacketBps).toFixed(2)}×`,
    '(the packet worker seals and opens whole batches; single calls are for staged and relayed packets)');
}

main().catch((err: Error) => {
  process.stderr.write(`footprint bench failed: ${err.stack ?? err.message}\n`);
  process.exitCode = 1;
});
