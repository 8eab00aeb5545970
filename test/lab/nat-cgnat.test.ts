/**
 * Double NAT whose outer WAN is carrier-grade NAT space (100.64.0.0/10, the
 * same block as tailnet addresses): the easy↔easy, hard↔hard and UDP-blocked
 * scenarios still work, the 100.64 WAN address is never advertised as an
 * endpoint, and the box's own 100.64 route to its gateway is left alone
 * (only per-peer /32 routes go on the TUN).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../helpers/lab.js';
import { createNatTailnet, REGION, type NatTailnet } from '../helpers/nat-tailnet.js';
import { tcpTransfer } from '../helpers/tcp-transfer.js';
import type { NodeHandle } from '../helpers/mesh.js';
import type { Site } from '../helpers/nat-lab.js';

type Member = { site: Site; node: NodeHandle };
let tn: NatTailnet;

const tailnetV4 = async (n: NodeHandle): Promise<string> => (await n.cli(['ip', '-4'])).stdout.trim();
const pathOf = async (x: Member, y: Member): Promise<string> => (await x.node.status()).peers.find((p) => p.name === y.node.name)?.path ?? 'none';
const isDirect = (p: string): boolean => /^11\.\d+\.0\.\d+:\d+$/.test(p);

async function pingOk(x: Member, y: Member): Promise<void> {
  await waitFor(`${x.node.name} sees ${y.node.name}'s home region`, async () => (await x.node.status()).peers.some((p) => p.name === y.node.name && p.homeRegion === REGION.id), { timeoutMs: 20_000 });
  const r = await tn.net.lab.sh(x.site.host, ['ping', '-c', '3', '-i', '0.2', '-W', '3', await tailnetV4(y.node)], { allowFail: true });
  assert.equal(r.code, 0, `${x.node.name} → ${y.node.name}:\n${r.stdout}`);
}

async function transferOk(x: Member, y: Member, port: number): Promise<void> {
  const r = await tcpTransfer(tn.net.lab, x.site.host, y.site.host, await tailnetV4(y.node), port, 2 * 1024 * 1024);
  assert.equal(r.received, r.sent, 'checksums match');
}

describe('carrier-grade NAT (outer WAN in 100.64.0.0/10)', { timeout: 170_000 }, () => {
  let e1: Member;
  let e2: Member;
  let h1: Member;
  let h2: Member;
  let u1: Member;
  before(async () => {
    tn = await createNatTailnet('natcgn');
    [e1, e2, h1, h2, u1] = await Promise.all([
      tn.node('ce', { nat: 'easy', cgnat: true }),
      tn.node('cf', { nat: 'easy', cgnat: true }),
      tn.node('ch', { nat: 'hard', cgnat: true }),
      tn.node('ci', { nat: 'hard', cgnat: true, cgnatKind: 'hard' }),
      tn.node('cu', { nat: 'easy', cgnat: true, udpBlocked: true }),
    ]);
  });
  after(() => tn?.close());

  test('easy ↔ easy behind carrier NAT: direct, and no 100.64 WAN address advertised', async () => {
    assert.match(e1.site.wanIp, /^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\./, 'the home router\'s WAN is carrier space');
    await pingOk(e1, e2);
    await waitFor('direct both ways', async () => isDirect(await pathOf(e1, e2)) && isDirect(await pathOf(e2, e1)), { timeoutMs: 5000 });
    const p = await pathOf(e1, e2);
    assert.ok(p.startsWith(`${e2.site.publicIp}:`), `direct to the carrier's public address (${p})`);
    await transferOk(e1, e2, 5201);
    const st = await e1.node.status();
    assert.ok(!st.endpoints.some((x) => x.startsWith('100.')), `no carrier-side address among endpoints: ${st.endpoints.join(' ')}`);
    // The router's own 100.64 route (to its gateway) is untouched; the tunnel has /32s only.
    const routes = await tn.net.lab.sh(e1.site.router, ['ip', '-4', 'route', 'show']);
    assert.match(routes.stdout, /100\.64\./, 'the router still reaches its carrier gateway');
    const hostRoutes = await tn.net.lab.sh(e1.site.host, ['ip', '-4', 'route', 'show', 'dev', 'warren0']);
    for (const line of hostRoutes.stdout.trim().split('\n').filter(Boolean)) assert.match(line, /^100\.\d+\.\d+\.\d+ /, `only per-peer /32 routes on the TUN: ${line}`);
  });

  test('hard ↔ hard behind carrier NAT: relayed and working', async () => {
    await pingOk(h1, h2);
    await transferOk(h1, h2, 5202);
    assert.equal(await pathOf(h1, h2), 'relay(lab)');
  });

  test('UDP blocked behind carrier NAT: relayed and working', async () => {
    await pingOk(u1, e1);
    await transferOk(u1, e1, 5203);
    assert.equal(await pathOf(u1, e1), 'relay(lab)');
  });
});
