/**
 * Port mapping turns hard NAT ↔ hard NAT, which stays on the relay
 * (nat-hard.test.ts), into a direct path: a node behind a hard NAT whose
 * router runs miniupnpd maps its data port and a peer behind another hard
 * NAT goes direct to it, both ways. The same router with the owner's
 * `--no-port-mapping` maps nothing, and that pair stays relayed; turning it
 * back on (`--port-mapping`) maps again.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../helpers/lab.js';
import { createNatTailnet, REGION, TEST_ENV, type NatTailnet } from '../helpers/nat-tailnet.js';
import { startMiniupnpd, type MiniUpnpd } from '../helpers/miniupnpd.js';
import { startNode, type NodeHandle } from '../helpers/mesh.js';
import type { Site } from '../helpers/nat-lab.js';

type Member = { site: Site; node: NodeHandle; upnpd?: MiniUpnpd };
let tn: NatTailnet;

const tailnetV4 = async (n: NodeHandle): Promise<string> => (await n.cli(['ip', '-4'])).stdout.trim();
const pathOf = async (x: Member, y: Member): Promise<string> => (await x.node.status()).peers.find((p) => p.name === y.node.name)?.path ?? 'none';

describe('hard NAT ↔ hard NAT with a port-mapping router', { timeout: 150_000 }, () => {
  let mapped: Member;
  let off: Member;
  let hard: Member;
  before(async () => {
    tn = await createNatTailnet('pmhard');
    const make = async (name: string, upnp: boolean, upArgs: string[]): Promise<Member> => {
      const site = await tn.net.addSite(name, { nat: 'hard' });
      const upnpd = upnp ? await startMiniupnpd(tn.net.lab, site) : undefined;
      const node = await startNode(tn.net.lab, site.host, site.lanIp, name, { env: TEST_ENV });
      const up = await node.up(tn.key, upArgs);
      assert.equal(up.code, 0, up.stderr);
      return upnpd ? { site, node, upnpd } : { site, node };
    };
    [mapped, off, hard] = await Promise.all([make('hm', true, []), make('hn', true, ['--no-port-mapping']), make('hp', false, [])]);
  });
  after(() => tn?.close());

  test('the mapped node is reached directly from behind another hard NAT, both ways', async (t) => {
    await waitFor('hm mapped', async () => (await mapped.node.status()).portMapping?.mapped === `${mapped.site.publicIp}:41641`, { timeoutMs: 10_000 });
    await waitFor('hp knows hm\'s mapped endpoint and home region', async () => {
      const r = await hard.node.cli(['status', '--json']);
      return r.code === 0 && (JSON.parse(r.stdout) as { peers: Array<{ name: string; homeRegion: number }> }).peers.some((p) => p.name === 'hm' && p.homeRegion === REGION.id);
    }, { timeoutMs: 20_000 });
    const started = Date.now();
    const ping = await tn.net.lab.sh(hard.site.host, ['ping', '-c', '3', '-i', '0.3', '-W', '3', await tailnetV4(mapped.node)], { allowFail: true });
    assert.equal(ping.code, 0, ping.stdout);
    await waitFor('hp → hm direct to the mapped port', async () => (await pathOf(hard, mapped)) === `${mapped.site.publicIp}:41641`, { timeoutMs: 10_000 });
    await waitFor('hm → hp direct', async () => /^11\./.test(await pathOf(mapped, hard)), { timeoutMs: 10_000 });
    t.diagnostic(`direct both ways ${Date.now() - started} ms after the first ping`);
    const more = await tn.net.lab.sh(hard.site.host, ['ping', '-c', '5', '-i', '0.2', '-W', '2', await tailnetV4(mapped.node)], { allowFail: true });
    assert.equal(more.code, 0, more.stdout);
    assert.equal(await pathOf(hard, mapped), `${mapped.site.publicIp}:41641`, 'still direct');
  });

  test('--no-port-mapping: nothing is mapped and the same pair shape stays relayed', async () => {
    const st = await off.node.status();
    assert.equal(st.portMapping, null, 'no mapper runs');
    assert.deepEqual(await off.upnpd!.mappedPorts(), [], 'the router was never asked');
    assert.ok(!st.endpoints.some((e) => e === `${off.site.publicIp}:41641`));
    await waitFor('hp knows hn\'s home region', async () => (await hard.node.status()).peers.some((p) => p.name === 'hn' && p.homeRegion === REGION.id), { timeoutMs: 20_000 });
    const ping = await tn.net.lab.sh(hard.site.host, ['ping', '-c', '10', '-i', '0.5', '-W', '3', await tailnetV4(off.node)], { allowFail: true });
    assert.equal(ping.code, 0, ping.stdout);
    assert.equal(await pathOf(hard, off), 'relay(lab)', 'hard ↔ hard without a mapping stays on the relay');
    assert.equal(await pathOf(off, hard), 'relay(lab)');
  });

  test('--port-mapping turns it back on', async () => {
    const up = await off.node.cli(['up', '--port-mapping']);
    assert.equal(up.code, 0, up.stderr);
    await waitFor('hn mapped', async () => (await off.node.status()).portMapping?.mapped === `${off.site.publicIp}:41641`, { timeoutMs: 10_000 });
    assert.deepEqual(await off.upnpd!.mappedPorts(), [41641]);
    const both = await off.node.cli(['up', '--port-mapping', '--no-port-mapping']);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /--no-port-mapping or --port-mapping, not both/);
  });
});
