/**
 * Where no direct path exists, the relay carries everything: two nodes behind
 * hard NATs (endpoint-dependent mapping) stay relayed and work — ping and a
 * 10 MB transfer with matching checksums — and netcheck says the mapping
 * varies; a node whose router drops UDP (TCP 443 allowed) works over the
 * relay with a peer behind an easy NAT, and netcheck says UDP is blocked.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../helpers/lab.js';
import { createNatTailnet, REGION, type NatTailnet } from '../helpers/nat-tailnet.js';
import { tcpTransfer } from '../helpers/tcp-transfer.js';
import type { NodeHandle } from '../helpers/mesh.js';
import type { Site } from '../helpers/nat-lab.js';
import type { NetcheckReport } from '../../src/nat/netcheck.js';

type Member = { site: Site; node: NodeHandle };
let tn: NatTailnet;

const tailnetV4 = async (n: NodeHandle): Promise<string> => (await n.cli(['ip', '-4'])).stdout.trim();

async function netcheck(n: NodeHandle): Promise<NetcheckReport> {
  const r = await n.cli(['netcheck', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as NetcheckReport;
}

/** Ping and a 10 MB transfer from `a` to `b` through the tunnel; the path must stay the relay throughout. */
async function worksRelayed(a: Member, b: Member, port: number): Promise<void> {
  const lab = tn.net.lab;
  const bIp = await tailnetV4(b.node);
  await waitFor(`${a.node.name} sees ${b.node.name}'s home region`, async () => (await a.node.status()).peers.some((p) => p.name === b.node.name && p.homeRegion === REGION.id), { timeoutMs: 20_000 });
  const ping = await lab.sh(a.site.host, ['ping', '-c', '5', '-i', '0.2', '-W', '3', bIp], { allowFail: true });
  assert.equal(ping.code, 0, `ping ${b.node.name} over the relay:\n${ping.stdout}`);
  const r = await tcpTransfer(lab, a.site.host, b.site.host, bIp, port, 10 * 1024 * 1024);
  assert.equal(r.receivedBytes, 10 * 1024 * 1024);
  assert.equal(r.received, r.sent, 'checksums match');
  for (const [x, y] of [[a, b], [b, a]] as const) {
    const p = (await x.node.status()).peers.find((q) => q.name === y.node.name)!;
    assert.equal(p.path, 'relay(lab)', `${x.node.name} → ${y.node.name} stays on the relay (path ${p.path})`);
    assert.ok(p.rxBytes > 10_000_000 || p.txBytes > 10_000_000, `${x.node.name}: the bytes went through WireGuard`);
  }
}

describe('no direct path: the relay carries everything', { timeout: 170_000 }, () => {
  let h1: Member;
  let h2: Member;
  let u: Member;
  let e: Member;
  before(async () => {
    tn = await createNatTailnet('nathard');
    [h1, h2, u, e] = await Promise.all([
      tn.node('ha', { nat: 'hard' }),
      tn.node('hb', { nat: 'hard' }),
      tn.node('ub', { nat: 'easy', udpBlocked: true }),
      tn.node('eb', { nat: 'easy' }),
    ]);
  });
  after(() => tn?.close());

  test('hard NAT ↔ hard NAT: stays relayed and works (ping, 10 MB, checksums)', async () => {
    await worksRelayed(h1, h2, 5001);
  });

  test('netcheck behind the hard NAT: mapping varies, UDP works', async () => {
    const r = await netcheck(h1.node);
    assert.equal(r.udp, true);
    assert.equal(r.mappingVaries, true);
    assert.match(r.publicIPv4 ?? '', new RegExp(`^${h1.site.publicIp.replace(/\./g, '\\.')}:\\d+$`));
    assert.ok(r.regions[0]!.latencyMs !== null);
  });

  test('UDP blocked at one router (TCP 443 allowed): everything works over the relay', async () => {
    await worksRelayed(u, e, 5002);
    const r = await netcheck(u.node);
    assert.equal(r.udp, false, 'no STUN answer');
    assert.equal(r.publicIPv4, null);
    assert.equal(r.regions[0]!.via, 'relay', 'latency measured over the relay connection instead');
    assert.equal(r.preferredRegion, REGION.id);
    const text = (await u.node.cli(['netcheck'])).stdout;
    assert.match(text, /UDP: false/);
  });
});
