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

interface Figures {
  up: number; // Gbit/s, a → b
  down: number; // b → a (iperf3 -R)
  up4: number; // 4 parallel streams
  pingMs: number;
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

async function pingAvg(lab: Lab, ns: string, dst: string): Promise<number> {
  const r = await lab.sh(ns, ['ping', '-c', '30', '-i', '0.05', '-W', '2', dst]);
  const m = /= [\d.]+\/([\d.]+)\//.exec(r.stdout);
  return m ? Number(m[1]) : NaN;
}

async function measure(lab: Lab, h: TwoHosts, dst: string): Promise<Figures> {
  await lab.sh(h.a, ['ping', '-c', '3', '-i', '0.2', '-W', '2', dst]); // handshake and warm-up, not measured
  const pingMs = await pingAvg(lab, h.a, dst);
  const up = await iperf(lab, h, dst, []);
  const down = await iperf(lab, h, dst, ['-R']);
  const up4 = await iperf(lab, h, dst, ['-P', '4']);
  return { up, down, up4, pingMs };
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
    const a = await startWarrend(lab, h.a, { privateKey: ka.privateKey, listenPort: 51820, addresses: ['10.88.0.1/24'],
      peers: [{ publicKey: kb.publicKey, allowedIps: ['10.88.0.2/32'], endpoint: `${h.bAddr}:51820` }] }, { env: { WARREN_TEST_MODE: '0', WARREN_LOG: 'info' } });
    const b = await startWarrend(lab, h.b, { privateKey: kb.privateKey, listenPort: 51820, addresses: ['10.88.0.2/24'],
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
    await startWireguardGo(lab, h.a, { ifname: lab.uniqueIfname('wgba'), privateKey: ka.privateKey, listenPort: 51820, addresses: ['10.88.0.1/24'],
      peers: [{ publicKey: kb.publicKey, allowedIps: ['10.88.0.2/32'], endpoint: `${h.bAddr}:51820` }] });
    await startWireguardGo(lab, h.b, { ifname: lab.uniqueIfname('wgbb'), privateKey: kb.privateKey, listenPort: 51820, addresses: ['10.88.0.2/24'],
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
    return await pingAvg(lab, h.a, h.bAddr);
  } finally {
    await lab.cleanup();
  }
}

async function main(): Promise<void> {
  const ver = await wireguardGoVersion();
  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, node ${process.version}; iperf3 ${SECONDS} s per run; MTU 1420`);
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
  console.log(`bare veth ping: ${bare.toFixed(3)} ms; warrend peak RSS: ${w.rssMb?.toFixed(1)} MB`);
}

main().catch((err: Error) => {
  process.stderr.write(`bench failed: ${err.stack ?? err.message}\n`);
  process.exitCode = 1;
});
