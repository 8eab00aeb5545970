/**
 * Easy NAT ↔ hard NAT with no port mapping: ordinary pings cannot meet (the
 * hard side's port is different for every destination and Linux filters by
 * address and port), so the birthday-paradox technique runs — the hard side
 * opens 255 extra sockets toward the easy side, the easy side sprays 200
 * probes a second at random ports of the hard side's address — and a direct
 * path is in use within 30 s in at least 9 of 10 runs (each run from a fresh
 * `warren down`/`up` on both). The hard router masquerades into a narrow port
 * range (40000-41023, fully random) as the issue asks; the sprayer does not
 * know that and probes all of 1024-65535.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../helpers/lab.js';
import { createNatTailnet, REGION, type NatTailnet } from '../helpers/nat-tailnet.js';
import type { NodeHandle } from '../helpers/mesh.js';
import type { Site } from '../helpers/nat-lab.js';
import type { NetcheckReport } from '../../src/nat/netcheck.js';

type Member = { site: Site; node: NodeHandle };
let tn: NatTailnet;
const RUNS = Number(process.env['BIRTHDAY_RUNS'] ?? 10);
const WINDOW_MS = 30_000;

const pathOf = async (x: Member, y: Member): Promise<string> => (await x.node.status()).peers.find((p) => p.name === y.node.name)?.path ?? 'none';
const isDirect = (p: string): boolean => /^11\.\d+\.0\.\d+:\d+$/.test(p);

describe('easy NAT ↔ hard NAT, no port mapping: birthday paradox', { timeout: 175_000 }, () => {
  let easy: Member;
  let hard: Member;
  before(async () => {
    tn = await createNatTailnet('natbday');
    [easy, hard] = await Promise.all([tn.node('be', { nat: 'easy' }), tn.node('bh', { nat: 'hard', hardPorts: [40000, 41023] })]);
  });
  after(() => tn?.close());

  test(`direct within ${WINDOW_MS / 1000} s in at least 9 of ${RUNS} runs; relayed and working otherwise`, async (t) => {
    const lab = tn.net.lab;
    const verdict = async (m: Member): Promise<boolean | null> => {
      const r = await m.node.cli(['netcheck', '--json']);
      return r.code === 0 ? (JSON.parse(r.stdout) as NetcheckReport).mappingVaries : null;
    };
    assert.equal(await verdict(easy), false, 'the easy side knows it is easy');
    assert.equal(await verdict(hard), true, 'the hard side knows it is hard');
    const times: Array<number | null> = [];
    for (let run = 0; run < RUNS; run++) {
      for (const m of [easy, hard]) assert.equal((await m.node.cli(['down'])).code, 0);
      for (const m of [easy, hard]) assert.equal((await m.node.up(null)).code, 0);
      const hardIp = (await hard.node.cli(['ip', '-4'])).stdout.trim();
      await waitFor('both on the relay with each other\'s home region', async () =>
        (await easy.node.status()).peers.some((p) => p.name === 'bh' && p.homeRegion === REGION.id) &&
        (await hard.node.status()).peers.some((p) => p.name === 'be' && p.homeRegion === REGION.id), { timeoutMs: 20_000 });
      const started = Date.now();
      const stream = lab.spawn(easy.site.host, ['ping', '-i', '0.2', '-W', '1', hardIp], { name: 'ping-stream' });
      try {
        await stream.waitForOutput(/bytes from/, 10_000); // works over the relay from the start
        let at: number | null = null;
        try {
          await waitFor('direct both ways', async () => isDirect(await pathOf(easy, hard)) && isDirect(await pathOf(hard, easy)), { timeoutMs: WINDOW_MS, intervalMs: 200 });
          at = Date.now() - started;
        } catch {
          // Not this time: it must still work over the relay.
          const r = await lab.sh(easy.site.host, ['ping', '-c', '2', '-W', '2', hardIp], { allowFail: true });
          assert.equal(r.code, 0, 'relayed and working after a failed attempt');
        }
        times.push(at);
        t.diagnostic(`run ${run + 1}: ${at === null ? 'stayed relayed' : `direct after ${at} ms`} (easy→hard ${await pathOf(easy, hard)}, hard→easy ${await pathOf(hard, easy)})`);
      } finally {
        await stream.stop('SIGINT');
      }
    }
    const ok = times.filter((x) => x !== null).length;
    assert.ok(ok >= 9, `direct in ${ok} of ${RUNS} runs`);
  });
});
