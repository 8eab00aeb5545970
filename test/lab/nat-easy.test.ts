/**
 * Two nodes behind two easy NATs (endpoint-independent mapping), control and
 * relay on the "internet": the first packets flow through the relay at once,
 * a direct path is in use within 5 s, and `warren ping` shows both phases;
 * netcheck says the mapping does not vary and finds the public endpoint;
 * status shows each peer's path.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../helpers/lab.js';
import { createNatTailnet, REGION, type NatTailnet } from '../helpers/nat-tailnet.js';
import type { NodeHandle } from '../helpers/mesh.js';
import type { Site } from '../helpers/nat-lab.js';
import type { NetcheckReport } from '../../src/nat/netcheck.js';

let tn: NatTailnet;
let a: { site: Site; node: NodeHandle };
let b: { site: Site; node: NodeHandle };
let c: { site: Site; node: NodeHandle };

const tailnetV4 = async (n: NodeHandle): Promise<string> => (await n.cli(['ip', '-4'])).stdout.trim();
const peerPath = async (n: NodeHandle, peer: string): Promise<string | null> => (await n.status()).peers.find((p) => p.name === peer)?.path ?? null;

describe('easy NAT ↔ easy NAT', { timeout: 150_000 }, () => {
  before(async () => {
    tn = await createNatTailnet('nateasy');
    a = await tn.node('ea', { nat: 'easy' });
    b = await tn.node('eb', { nat: 'easy' });
    c = await tn.node('ec', { nat: 'easy' });
  });
  after(() => tn?.close());

  test('the first tunnel packets go through the relay, then direct within 5 s', async (t) => {
    const cIp = await tailnetV4(c.node);
    await waitFor('a sees c\'s home region', async () => (await a.node.status()).peers.some((p) => p.name === 'ec' && p.homeRegion === REGION.id), { timeoutMs: 20_000 });
    const before = (await a.node.status()).natCounters;
    const started = Date.now();
    // The first traffic between a and c: nothing direct is known, so the handshake goes through the relay.
    const icmp = await tn.net.lab.sh(a.site.host, ['ping', '-c', '1', '-W', '3', cIp], { allowFail: true });
    assert.equal(icmp.code, 0, `first ICMP ping through the tunnel failed:\n${icmp.stdout}`);
    const after1 = (await a.node.status()).natCounters;
    assert.ok(after1['relay_wg_tx']! > before['relay_wg_tx']! && after1['relay_wg_rx']! > before['relay_wg_rx']!,
      `WireGuard went through the relay first: ${JSON.stringify({ before, after: after1 })}`);
    await waitFor('a uses a direct path to c within 5 s', async () => (await peerPath(a.node, 'ec'))?.startsWith('11.') ?? false, { timeoutMs: Math.max(1, 5000 - (Date.now() - started)) });
    t.diagnostic(`direct after ${Date.now() - started} ms`);
    await waitFor('c uses a direct path to a', async () => (await peerPath(c.node, 'ea'))?.startsWith('11.') ?? false, { timeoutMs: 5000 });
    const st = await a.node.status();
    const peer = st.peers.find((p) => p.name === 'ec')!;
    assert.equal(peer.endpoint, peer.path, 'WireGuard sends where path choice says');
    const more = await tn.net.lab.sh(a.site.host, ['ping', '-c', '3', '-i', '0.2', '-W', '2', cIp], { allowFail: true });
    assert.equal(more.code, 0, more.stdout);
    assert.ok(st.relays.some((x) => x.home && x.connected && x.code === 'lab'), `home relay connected: ${JSON.stringify(st.relays)}`);
    assert.ok(st.endpoints.some((e) => e.startsWith(`${a.site.publicIp}:`)), `a advertises its STUN endpoint: ${st.endpoints.join(' ')}`);
    assert.ok(!st.endpoints.some((e) => e.startsWith('100.')), 'never a carrier-NAT address');
    const text = (await a.node.cli(['status'])).stdout;
    assert.match(text, /ec\s+.*direct 11\./, text);
  });

  test('warren ping shows both phases: via relay first, then via the direct address', async (t) => {
    await waitFor('a sees b\'s home region', async () => (await a.node.status()).peers.some((p) => p.name === 'eb' && p.homeRegion === REGION.id), { timeoutMs: 20_000 });
    const started = Date.now();
    const r = await a.node.cli(['ping', '-c', '30', '--interval', '200', '--timeout', '1000', '--until-direct', 'eb']);
    t.diagnostic(`warren ping (${Date.now() - started} ms):\n${r.stdout}`);
    const lines = r.stdout.trim().split('\n');
    assert.equal(r.code, 0, r.stderr);
    assert.match(lines[0]!, /^pong from eb via relay\(lab\) in [\d.]+ ms$/, 'the first pong comes through the relay');
    assert.match(lines.at(-1)!, /^pong from eb via 11\.\d+\.0\.\d+:\d+ in [\d.]+ ms$/, 'then a direct path, to b\'s public address');
    assert.ok(Date.now() - started < 5000 + 2000, 'direct within 5 s (plus CLI start-up)');
    await waitFor('b uses a direct path to a', async () => (await peerPath(b.node, 'ea'))?.startsWith('11.') ?? false, { timeoutMs: 5000 });
  });

  test('netcheck: UDP, public endpoint, mapping does not vary, relay latency', async () => {
    const r = await a.node.cli(['netcheck', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const rep = JSON.parse(r.stdout) as NetcheckReport;
    assert.equal(rep.udp, true);
    assert.equal(rep.publicIPv4, `${a.site.publicIp}:41641`, 'easy NAT keeps the port');
    assert.equal(rep.mappingVaries, false);
    assert.equal(rep.preferredRegion, REGION.id);
    assert.equal(rep.regions[0]!.via, 'stun');
    assert.ok(rep.regions[0]!.latencyMs! >= 0 && rep.regions[0]!.latencyMs! < 1000, `latency ${rep.regions[0]!.latencyMs}`);
    const text = await a.node.cli(['netcheck']);
    assert.match(text.stdout, /MappingVariesByDestIP: false/);
    assert.match(text.stdout, /lab: [\d.]+ ms \(stun\)/);
  });
});
