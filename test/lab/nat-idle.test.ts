/**
 * NAT mappings expire while a tailnet is idle: with both routers' conntrack
 * UDP timeouts at 10 s, after 60 s without traffic the next packets flow at
 * once (the first ping is answered — through the relay if the direct path is
 * no longer trusted, never held back waiting for a pong) and a direct path is
 * in use again within 2 s.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../helpers/lab.js';
import { createNatTailnet, REGION, type NatTailnet } from '../helpers/nat-tailnet.js';
import type { NodeHandle } from '../helpers/mesh.js';
import type { Site } from '../helpers/nat-lab.js';

type Member = { site: Site; node: NodeHandle };
let tn: NatTailnet;

const tailnetV4 = async (n: NodeHandle): Promise<string> => (await n.cli(['ip', '-4'])).stdout.trim();
const pathOf = async (x: Member, y: Member): Promise<string> => (await x.node.status()).peers.find((p) => p.name === y.node.name)?.path ?? 'none';
const isDirect = (p: string): boolean => /^11\.\d+\.0\.\d+:\d+$/.test(p);
const IDLE_MS = 60_000;

/** UDP conntrack entries on x's router from the WireGuard port (41641) to y's public address. */
async function udpEntries(x: Member, y: Member): Promise<number> {
  const r = await tn.net.lab.sh(x.site.router, ['conntrack', '-L', '-p', 'udp', '--orig-port-src', '41641', '--dst', y.site.publicIp], { allowFail: true });
  return r.stdout.split('\n').filter((l) => l.includes('udp')).length;
}

describe('idle NAT mappings', { timeout: 170_000 }, () => {
  let a: Member;
  let b: Member;
  before(async () => {
    tn = await createNatTailnet('natidle');
    [a, b] = await Promise.all([tn.node('ia', { nat: 'easy' }), tn.node('ib', { nat: 'easy' })]);
    for (const x of [a, b]) await x.site.setConntrackUdpTimeouts(10, 10);
  });
  after(() => tn?.close());

  test('after 60 s without traffic (conntrack UDP timeout 10 s) the next packets flow at once and go direct within 2 s', async (t) => {
    await waitFor('a sees b\'s home region', async () => (await a.node.status()).peers.some((p) => p.name === 'ib' && p.homeRegion === REGION.id), { timeoutMs: 20_000 });
    const bIp = await tailnetV4(b.node);
    const warm = await tn.net.lab.sh(a.site.host, ['ping', '-c', '3', '-i', '0.2', '-W', '3', bIp], { allowFail: true });
    assert.equal(warm.code, 0, warm.stdout);
    await waitFor('direct both ways', async () => isDirect(await pathOf(a, b)) && isDirect(await pathOf(b, a)), { timeoutMs: 5000 });
    const idleFrom = Date.now();
    // Idle: heartbeats stop once the session goes quiet, so the routers' mappings expire.
    await waitFor('60 s idle, with the NAT mappings gone', async () => Date.now() - idleFrom >= IDLE_MS && (await udpEntries(a, b)) === 0 && (await udpEntries(b, a)) === 0,
      { timeoutMs: IDLE_MS + 15_000, intervalMs: 1000 });
    t.diagnostic(`idle for ${Date.now() - idleFrom} ms; no UDP conntrack entries between the two left on either router`);
    const started = Date.now();
    const first = await tn.net.lab.sh(a.site.host, ['ping', '-c', '1', '-W', '2', bIp], { allowFail: true });
    assert.equal(first.code, 0, `the first ping after the idle period must be answered at once:\n${first.stdout}`);
    const rtt = Number(/time=([\d.]+) ms/.exec(first.stdout)?.[1]);
    t.diagnostic(`first ping after idle answered in ${rtt} ms`);
    const stream = tn.net.lab.spawn(a.site.host, ['ping', '-i', '0.2', '-W', '1', bIp], { name: 'ping-stream' });
    try {
      await waitFor('direct again within 2 s', async () => isDirect(await pathOf(a, b)) && isDirect(await pathOf(b, a)), { timeoutMs: Math.max(1, 2000 - (Date.now() - started)), intervalMs: 50 });
      t.diagnostic(`direct again ${Date.now() - started} ms after traffic resumed`);
    } finally {
      await stream.stop('SIGINT');
    }
  });
});
