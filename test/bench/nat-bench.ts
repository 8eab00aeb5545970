/**
 * `make bench`, NAT traversal: two nodes behind two easy NATs with control,
 * relay and STUN on the "internet" namespace (production timers). Over N
 * runs (default 20), each from a fresh start (`warren down`/`up` on both, so
 * no path is known): time to the first answered ping through the tunnel (it
 * goes via the relay) and time until path choice uses a direct path. Then
 * TCP throughput through the tunnel relayed (a pair behind hard NATs) and
 * direct (the easy pair). Not a test: figures vary with the machine's load.
 */
import { createNatTailnet } from '../helpers/nat-tailnet.js';
import { waitFor } from '../helpers/lab.js';
import type { NodeHandle } from '../helpers/mesh.js';
import type { Site } from '../helpers/nat-lab.js';
import { LocalApiClient } from '../../src/localapi/client.js';
import type { MeshStatus } from '../../src/control/mesh-status.js';

const RUNS = Number(process.env['BENCH_NAT_RUNS'] ?? 20);
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 8);
const BDAY_RUNS = Number(process.env['BENCH_BIRTHDAY_RUNS'] ?? 10);
type Member = { site: Site; node: NodeHandle };

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};

async function main(): Promise<void> {
  // The relay's per-client limit (16 Mbit/s by default) raised, to measure what the relay path can carry.
  const tn = await createNatTailnet('benchnat', { env: { WARREN_TEST_MODE: '0', WARREN_LOG: 'info' }, relayArgs: ['--client-rate-mbit', '2000', '--client-burst-kib', '8192'] });
  const lab = tn.net.lab;
  try {
    const [a, b, h1, h2, hx] = await Promise.all([
      tn.node('ba', { nat: 'easy' }), tn.node('bb', { nat: 'easy' }), tn.node('bh', { nat: 'hard' }), tn.node('bi', { nat: 'hard' }),
      tn.node('bx', { nat: 'hard' }),
    ]) as [Member, Member, Member, Member, Member];
    const ipOf = async (n: NodeHandle): Promise<string> => (await n.cli(['ip', '-4'])).stdout.trim();
    const bIp = await ipOf(b.node);
    const api = new LocalApiClient(a.node.socket);
    const first: number[] = [];
    const direct: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      for (const m of [a, b]) await m.node.cli(['down']);
      for (const m of [a, b]) {
        const r = await m.node.up(null);
        if (r.code !== 0) throw new Error(`up: ${r.stderr}`);
      }
      await waitFor('both see each other\'s home region', async () =>
        (await a.node.status()).peers.some((p) => p.name === 'bb' && p.homeRegion > 0 && p.path?.startsWith('relay(')) &&
        (await b.node.status()).peers.some((p) => p.name === 'ba' && p.homeRegion > 0), { timeoutMs: 30_000, intervalMs: 50 });
      const t0 = Date.now();
      const stream = lab.spawn(a.site.host, ['ping', '-i', '0.05', '-W', '5', bIp], { name: 'ping-stream' });
      await stream.waitForOutput(/bytes from/, 10_000);
      const tFirst = Date.now() - t0;
      // The LocalAPI socket is a file: ask it directly (a CLI process per poll would blur the figure).
      await waitFor('direct', async () => /^11\./.test((await api.status() as unknown as MeshStatus).peers.find((p) => p.name === 'bb')?.path ?? ''), { timeoutMs: 30_000, intervalMs: 10 });
      const tDirect = Date.now() - t0;
      await stream.stop('SIGINT');
      first.push(tFirst);
      direct.push(tDirect);
      process.stdout.write(`  run ${String(run + 1).padStart(2)}: first reply ${tFirst} ms, direct ${tDirect} ms\n`);
    }
    console.log(`time to first packet (ping answered, via the relay): median ${pct(first, 50)} ms, p90 ${pct(first, 90)} ms  (${RUNS} runs)`);
    console.log(`time to direct path:                                median ${pct(direct, 50)} ms, p90 ${pct(direct, 90)} ms`);

    // Easy ↔ hard (full port range, fully random): the birthday-paradox technique.
    const bday: Array<number | null> = [];
    const hxIp = await ipOf(hx.node);
    const apiX = new LocalApiClient(hx.node.socket);
    for (let run = 0; run < BDAY_RUNS; run++) {
      for (const m of [a, hx]) await m.node.cli(['down']);
      for (const m of [a, hx]) await m.node.up(null);
      await waitFor('both see each other\'s home region', async () =>
        (await a.node.status()).peers.some((p) => p.name === 'bx' && p.homeRegion > 0) &&
        (await hx.node.status()).peers.some((p) => p.name === 'ba' && p.homeRegion > 0), { timeoutMs: 30_000, intervalMs: 50 });
      // Netcheck has to have judged both NATs before a birthday attempt can start.
      await waitFor('netcheck done', async () => (await apiX.call('POST', '/v0/netcheck', {}) as { mappingVaries: boolean | null }).mappingVaries === true, { timeoutMs: 30_000, intervalMs: 500 });
      const t0 = Date.now();
      const stream = lab.spawn(a.site.host, ['ping', '-i', '0.2', '-W', '1', hxIp], { name: 'ping-stream' });
      let at: number | null = null;
      try {
        await waitFor('direct', async () => /^11\./.test((await api.status() as unknown as MeshStatus).peers.find((p) => p.name === 'bx')?.path ?? ''), { timeoutMs: 40_000, intervalMs: 50 });
        at = Date.now() - t0;
      } catch {
        // stayed relayed
      }
      await stream.stop('SIGINT');
      bday.push(at);
      process.stdout.write(`  birthday run ${String(run + 1).padStart(2)}: ${at === null ? 'stayed relayed (40 s)' : `direct after ${at} ms`}\n`);
    }
    const hits = bday.filter((x): x is number => x !== null);
    console.log(`easy ↔ hard NAT (full port range) via the birthday paradox: direct in ${hits.length}/${BDAY_RUNS} runs; ` +
      (hits.length ? `median ${pct(hits, 50)} ms, p90 ${pct(hits, 90)} ms, max ${Math.max(...hits)} ms (from the stream's first ping; the 3 s a peer spends on the relay before an attempt counts from when the relay path was chosen, which can be earlier)` : ''));

    const iperf = async (from: Member, to: Member, label: string): Promise<void> => {
      const dst = await ipOf(to.node);
      await lab.sh(from.site.host, ['ping', '-c', '3', '-i', '0.2', '-W', '3', dst]);
      const srv = lab.spawn(to.site.host, ['iperf3', '-s', '-1', '--forceflush', '-B', dst], { name: 'iperf3-s' });
      await srv.waitForOutput(/Server listening/, 10_000);
      const r = await lab.sh(from.site.host, ['iperf3', '-c', dst, '-t', String(SECONDS), '-J'], { timeoutMs: (SECONDS + 30) * 1000 });
      await srv.exited;
      const j = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } };
      const path = (await from.node.status()).peers.find((p) => p.name === to.node.name)?.path;
      console.log(`TCP through the tunnel, ${label.padEnd(8)} ${(j.end.sum_received.bits_per_second / 1e6).toFixed(0).padStart(5)} Mbit/s   (path ${path})`);
    };
    await iperf(a, b, 'direct');
    await iperf(h1, h2, 'relayed');
    console.log('(relayed: warren-relay with --client-rate-mbit 2000; its default per-client limit is 16 Mbit/s)');
  } finally {
    await tn.close();
  }
}

main().catch((err: Error) => {
  process.stderr.write(`nat bench failed: ${err.stack ?? err.message}\n`);
  process.exitCode = 1;
});
