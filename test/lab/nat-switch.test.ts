/**
 * Switching paths never breaks a connection: a TCP transfer started while
 * relayed survives the upgrade to direct; one running on a direct path
 * survives the router suddenly dropping UDP (relay within 10 s) and returns to
 * direct once UDP is allowed again; when the router's WAN address changes the
 * node rediscovers its endpoint and the peers are direct again within 15 s.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../helpers/lab.js';
import { createNatTailnet, REGION, type NatTailnet } from '../helpers/nat-tailnet.js';
import { startTcpTransfer } from '../helpers/tcp-transfer.js';
import type { NodeHandle } from '../helpers/mesh.js';
import type { Site } from '../helpers/nat-lab.js';
import { TEST_PATH_TIMERS } from '../../src/nat/path-timers.js';

type Member = { site: Site; node: NodeHandle };
let tn: NatTailnet;

const tailnetV4 = async (n: NodeHandle): Promise<string> => (await n.cli(['ip', '-4'])).stdout.trim();
const pathOf = async (x: Member, y: Member): Promise<string> => (await x.node.status()).peers.find((p) => p.name === y.node.name)?.path ?? 'none';
const isDirect = (p: string): boolean => /^11\.\d+\.0\.\d+:\d+$/.test(p);

async function homeKnown(x: Member, y: Member): Promise<void> {
  await waitFor(`${x.node.name} sees ${y.node.name}'s home region`, async () => (await x.node.status()).peers.some((p) => p.name === y.node.name && p.homeRegion === REGION.id), { timeoutMs: 20_000 });
}

describe('path switches keep connections', { timeout: 170_000 }, () => {
  let a: Member;
  let b: Member;
  let c: Member;
  let d: Member;
  before(async () => {
    tn = await createNatTailnet('natswitch');
    [a, b, c, d] = await Promise.all([
      tn.node('sa', { nat: 'easy' }),
      tn.node('sb', { nat: 'easy' }),
      tn.node('sc', { nat: 'easy' }),
      tn.node('sd', { nat: 'easy' }),
    ]);
  });
  after(() => tn?.close());

  test('a transfer started while relayed survives the upgrade, then the fall back to the relay and the return to direct', async (t) => {
    await homeKnown(a, b);
    await homeKnown(b, a);
    assert.equal(await pathOf(a, b), 'relay(lab)', 'no traffic yet: the relay');
    const bIp = await tailnetV4(b.node);
    // 8 MB at 512 KiB/s: about 16 s, spanning every switch below.
    const xfer = await startTcpTransfer(tn.net.lab, a.site.host, b.site.host, bIp, 5101, 8 * 1024 * 1024, 512 * 1024);
    const seen = new Set<string>();
    await waitFor('upgrade to direct during the transfer', async () => {
      const p = await pathOf(a, b);
      seen.add(p);
      return isDirect(p);
    }, { timeoutMs: 5000 });
    assert.ok(seen.has('relay(lab)') || (await a.node.status()).natCounters['relay_wg_tx']! > 0, 'the transfer began on the relay');
    // The router suddenly drops UDP: back to the relay within 10 s.
    const blocked = Date.now();
    await b.site.setUdpBlocked(true);
    await waitFor('fallback to the relay within 10 s', async () => (await pathOf(a, b)) === 'relay(lab)' && (await pathOf(b, a)) === 'relay(lab)', { timeoutMs: 10_000 });
    t.diagnostic(`relayed ${Date.now() - blocked} ms after UDP was blocked`);
    // UDP allowed again: direct within the upgrade interval of the test profile (plus one re-ping round).
    const unblocked = Date.now();
    await b.site.setUdpBlocked(false);
    await waitFor('direct again after UDP returns', async () => isDirect(await pathOf(a, b)) && isDirect(await pathOf(b, a)), { timeoutMs: TEST_PATH_TIMERS.upgradeMs + TEST_PATH_TIMERS.repingMs + 1000 });
    t.diagnostic(`direct again ${Date.now() - unblocked} ms after UDP returned`);
    const r = await xfer.done;
    assert.equal(r.receivedBytes, 8 * 1024 * 1024, 'every byte arrived (no reset)');
    assert.equal(r.received, r.sent, 'checksums match');
  });

  test('the router\'s WAN address changes: new endpoint found, direct again within 15 s', async (t) => {
    await homeKnown(c, d);
    const dIp = await tailnetV4(d.node);
    const stream = tn.net.lab.spawn(c.site.host, ['ping', '-i', '0.2', '-W', '1', dIp], { name: 'ping-stream' });
    try {
      await waitFor('c ↔ d direct', async () => isDirect(await pathOf(c, d)) && isDirect(await pathOf(d, c)), { timeoutMs: 10_000 });
      const oldPublic = c.site.publicIp;
      const changed = Date.now();
      const newPublic = await c.site.changeWanAddress();
      assert.notEqual(newPublic, oldPublic);
      await waitFor('c advertises its new public endpoint', async () => (await c.node.status()).endpoints.some((e) => e.startsWith(`${newPublic}:`)), { timeoutMs: 15_000 });
      await waitFor('direct again via the new address within 15 s', async () => {
        const pd = await pathOf(d, c);
        return pd.startsWith(`${newPublic}:`) && isDirect(await pathOf(c, d));
      }, { timeoutMs: Math.max(1, 15_000 - (Date.now() - changed)) });
      t.diagnostic(`direct via ${newPublic} ${Date.now() - changed} ms after the change`);
      const ping = await tn.net.lab.sh(c.site.host, ['ping', '-c', '3', '-i', '0.2', '-W', '2', dIp], { allowFail: true });
      assert.equal(ping.code, 0, ping.stdout);
    } finally {
      await stream.stop('SIGINT');
    }
  });
});
