/**
 * A static endpoint set by the operator (`warren up --static-endpoint
 * IP:PORT`) for a port forward on a hard-NAT router: it is advertised first,
 * and peers — even one behind another hard NAT, which could never punch
 * through otherwise — get a direct path to it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../helpers/lab.js';
import { createNatTailnet, REGION, TEST_ENV, type NatTailnet } from '../helpers/nat-tailnet.js';
import { NFT_TABLE } from '../helpers/nat-lab.js';
import { startNode, type NodeHandle } from '../helpers/mesh.js';
import type { Site } from '../helpers/nat-lab.js';

type Member = { site: Site; node: NodeHandle };
let tn: NatTailnet;

const tailnetV4 = async (n: NodeHandle): Promise<string> => (await n.cli(['ip', '-4'])).stdout.trim();
const pathOf = async (x: Member, y: Member): Promise<string> => (await x.node.status()).peers.find((p) => p.name === y.node.name)?.path ?? 'none';

/** The operator's port forward: UDP 41641 on the router's public address to the host, both ways. */
async function portForward(s: Site): Promise<void> {
  const nft = (rule: string): Promise<unknown> => tn.net.lab.sh(s.router, ['nft', rule]);
  await nft(`add rule inet ${NFT_TABLE} prerouting_miniupnpd iifname "wan0" udp dport 41641 dnat ip to ${s.lanIp}:41641`);
  await nft(`add rule inet ${NFT_TABLE} postrouting_miniupnpd oifname "wan0" ip saddr ${s.lanIp} udp sport 41641 snat ip to ${s.publicIp}:41641`);
}

describe('static endpoint (a port forward)', { timeout: 120_000 }, () => {
  let fwd: Member;
  let hard: Member;
  let easy: Member;
  before(async () => {
    tn = await createNatTailnet('natstatic');
    const site = await tn.net.addSite('sf', { nat: 'hard' });
    await portForward(site);
    const node = await startNode(tn.net.lab, site.host, site.lanIp, 'sf', { env: TEST_ENV });
    const up = await node.up(tn.key, ['--static-endpoint', `${site.publicIp}:41641`]);
    assert.equal(up.code, 0, up.stderr);
    fwd = { site, node };
    [hard, easy] = await Promise.all([tn.node('sh', { nat: 'hard' }), tn.node('se', { nat: 'easy' })]);
  });
  after(() => tn?.close());

  test('advertised first, and a peer behind another hard NAT goes direct to it', async () => {
    const st = await fwd.node.status();
    assert.equal(st.endpoints[0], `${fwd.site.publicIp}:41641`, `static endpoint first: ${st.endpoints.join(' ')}`);
    await waitFor('hard sees the static endpoint in the netmap', async () => {
      const r = await hard.node.cli(['status', '--json']);
      return r.code === 0 && (JSON.parse(r.stdout) as { peers: Array<{ name: string; homeRegion: number }> }).peers.some((p) => p.name === 'sf' && p.homeRegion === REGION.id);
    }, { timeoutMs: 20_000 });
    for (const peer of [hard, easy]) {
      const ping = await tn.net.lab.sh(peer.site.host, ['ping', '-c', '3', '-i', '0.3', '-W', '3', await tailnetV4(fwd.node)], { allowFail: true });
      assert.equal(ping.code, 0, ping.stdout);
      await waitFor(`${peer.node.name} → sf direct to the forwarded port`, async () => (await pathOf(peer, fwd)) === `${fwd.site.publicIp}:41641`, { timeoutMs: 5000 });
      await waitFor(`sf → ${peer.node.name} direct`, async () => /^11\./.test(await pathOf(fwd, peer)), { timeoutMs: 5000 });
    }
  });

  test('a malformed --static-endpoint is refused with a clear message', async () => {
    const r = await fwd.node.cli(['up', '--static-endpoint', '11.0.0.9']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--static-endpoint "11\.0\.0\.9" is not IP:PORT/);
  });
});
