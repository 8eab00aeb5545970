/**
 * `make bench`: throughput and latency through warrend↔warrend and through
 * stock wireguard-go↔wireguard-go on the same namespace topology in the same
 * run (iperf3 TCP both directions, single and 4 streams; ping), warrend's peak
 * RSS, and the ratios. Not a test: figures vary with the machine's load.
 */
import { Lab, twoHosts, type TwoHosts } from '../helpers/lab.js';
import { genKeyPair, startWireguardGo, wireguardGoVersion } from '../helpers/wg.js';
import { startWarrend } from '../helpers/warrend.js';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';

const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 8);
const SPARSE_PINGS = Number(process.env['BENCH_SPARSE_PINGS'] ?? 20);
/** The tunnel MTU on both sides (1420, WireGuard's default; BENCH_MTU=1280 for the IPv6 minimum). */
const MTU = Number(process.env['BENCH_MTU'] ?? 1420);

interface Figures {
  up: number; // Gbit/s, a → b
  down: number; // b → a (iperf3 -R)
  up4: number; // 4 parallel streams
  /** The first 30 pings after the handshake (cold: warrend's packet path not yet JIT-compiled). */
  pingColdMs: number;
  /** 300 pings after the throughput runs (steady state of a running daemon). */
  pingMs: number;
  /** Pings while an iperf3 stream fills the tunnel. */
  pingLoadMs: number;
  /** One ping a second on an otherwise quiet tunnel (the daemon sleeps between them). */
  pingSparseMs: number;
  rssMb?: number;
}

async function iperf(lab: Lab, h: TwoHosts, dst: string, args: string[]): Promise<number> {
  const srv = lab.spawn(h.b, ['iperf3', '-s', '-1', '--forceflush', '-B', dst], { name: 'iperf3-s' });
  await srv.waitForOutput(/Server listening/, 10_000);
  const r = await lab.sh(h.a, ['iperf3', '-c', dst, '-t', String(SECONDS), '-J', ...args], { timeoutMs: (SECONDS + 30) * 1000 });
  await srv.exited;
  const j = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } };
  return j.end.sum_received.bits_per_second / 1e9;
}

async function pingAvg(lab: Lab, ns: string, dst: string, count = 30, interval = '0.05'): Promise<number> {
  const r = await lab.sh(ns, ['ping', '-c', String(count), '-i', interval, '-W', '2', '-q', dst]);
  const m = /= [\d.]+\/([\d.]+)\//.exec(r.stdout);
  return m ? Number(m[1]) : NaN;
}

/** Ping while an iperf3 stream (a → b) fills the tunnel. */
async function pingUnderLoad(lab: Lab, h: TwoHosts, dst: string): Promise<number> {
  const srv = lab.spawn(h.b, ['iperf3', '-s', '-1', '--forceflush', '-B', dst], { name: 'iperf3-s' });
  await srv.waitForOutput(/Server listening/, 10_000);
  const load = lab.sh(h.a, ['iperf3', '-c', dst, '-t', '6'], { timeoutMs: 40_000 });
  await srv.waitForOutput(/Accepted connection/, 10_000);
  const ms = await pingAvg(lab, h.a, dst, 200, '0.02');
  await load;
  await srv.exited;
  return ms;
}

async function measure(lab: Lab, h: TwoHosts, dst: string): Promise<Figures> {
  await lab.sh(h.a, ['ping', '-c', '3', '-i', '0.2', '-W', '2', dst]); // handshake, not measured
  const pingColdMs = await pingAvg(lab, h.a, dst);
  const up = await iperf(lab, h, dst, []);
  const down = await iperf(lab, h, dst, ['-R']);
  const up4 = await iperf(lab, h, dst, ['-P', '4']);
  const pingMs = await pingAvg(lab, h.a, dst, 300, '0.01');
  const pingLoadMs = await pingUnderLoad(lab, h, dst);
  const pingSparseMs = await pingAvg(lab, h.a, dst, SPARSE_PINGS, '1');
  return { up, down, up4, pingColdMs, pingMs, pingLoadMs, pingSparseMs };
}

function rssPeakMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function runWarren(): Promise<Figures> {
  const lab = Lab.create('benchw');
  try {
    const h = await twoHosts(lab);
    const ka = genKeyPair(), kb = genKeyPair();
    const a = await startWarrend(lab, h.a, { privateKey: ka.privateKey, listenPort: 51820, mtu: MTU, addresses: ['10.88.0.1/24'],
      peers: [{ publicKey: kb.publicKey, allowedIps: ['10.88.0.2/32'], endpoint: `${h.bAddr}:51820` }] }, { env: { WARREN_TEST_MODE: '0', WARREN_LOG: 'info' } });
    const b = await startWarrend(lab, h.b, { privateKey: kb.privateKey, listenPort: 51820, mtu: MTU, addresses: ['10.88.0.2/24'],
      peers: [{ publicKey: ka.publicKey, allowedIps: ['10.88.0.1/32'], endpoint: `${h.aAddr}:51820` }] }, { env: { WARREN_TEST_MODE: '0', WARREN_LOG: 'info' } });
    const f = await measure(lab, h, '10.88.0.2');
    f.rssMb = Math.max(rssPeakMb(a.proc.pid), rssPeakMb(b.proc.pid));
    return f;
  } finally {
    await lab.cleanup();
  }
}

async function runWgGo(): Promise<Figures> {
  const lab = Lab.create('benchg');
  try {
    const h = await twoHosts(lab);
    const ka = genKeyPair(), kb = genKeyPair();
    await startWireguardGo(lab, h.a, { ifname: lab.uniqueIfname('wgba'), privateKey: ka.privateKey, listenPort: 51820, mtu: MTU, addresses: ['10.88.0.1/24'],
      peers: [{ publicKey: kb.publicKey, allowedIps: ['10.88.0.2/32'], endpoint: `${h.bAddr}:51820` }] });
    await startWireguardGo(lab, h.b, { ifname: lab.uniqueIfname('wgbb'), privateKey: kb.privateKey, listenPort: 51820, mtu: MTU, addresses: ['10.88.0.2/24'],
      peers: [{ publicKey: ka.publicKey, allowedIps: ['10.88.0.1/32'], endpoint: `${h.aAddr}:51820` }] });
    return await measure(lab, h, '10.88.0.2');
  } finally {
    await lab.cleanup();
  }
}

async function bareLink(): Promise<number> {
  const lab = Lab.create('benchl');
  try {
    const h = await twoHosts(lab);
    return await pingAvg(lab, h.a, h.bAddr, 300, '0.01');
  } finally {
    await lab.cleanup();
  }
}

async function main(): Promise<void> {
  const ver = await wireguardGoVersion();
  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, node ${process.version}; iperf3 ${SECONDS} s per run; MTU ${MTU}`);
  const bare = await bareLink();
  const g = await runWgGo();
  const w = await runWarren();
  const row = (name: string, a: number, b: number, unit: string, lowerIsBetter = false): string =>
    `${name.padEnd(28)} ${a.toFixed(3).padStart(9)} ${b.toFixed(3).padStart(12)} ${unit.padEnd(7)} ${(lowerIsBetter ? b / a : a / b).toFixed(2).padStart(6)}×`;
  console.log(`\n${'figure'.padEnd(28)} ${'warrend'.padStart(9)} ${('wireguard-go ' + ver.split('-')[0]).padStart(12)} unit    ratio (warrend/wg-go, >1 = better)`);
  console.log(row('TCP a→b, 1 stream', w.up, g.up, 'Gbit/s'));
  console.log(row('TCP b→a, 1 stream', w.down, g.down, 'Gbit/s'));
  console.log(row('TCP a→b, 4 streams', w.up4, g.up4, 'Gbit/s'));
  console.log(row('ping through tunnel', w.pingMs, g.pingMs, 'ms', true));
  console.log(row('added latency vs bare link', w.pingMs - bare, g.pingMs - bare, 'ms', true));
  console.log(row('added latency under load', w.pingLoadMs - bare, g.pingLoadMs - bare, 'ms', true));
  console.log(row(`added latency, 1 ping/s (${SPARSE_PINGS})`, w.pingSparseMs - bare, g.pingSparseMs - bare, 'ms', true));
  console.log(row('ping, first 30 (cold start)', w.pingColdMs, g.pingColdMs, 'ms', true));
  console.log(`bare veth ping: ${bare.toFixed(3)} ms; warrend peak RSS: ${w.rssMb?.toFixed(1)} MB`);
}

main().catch((err: Error) => {
  process.stderr.write(`bench failed: ${err.stack ?? err.message}\n`);
  process.exitCode = 1;
});
