/**
 * The relay connection goes silent (nft DROP both ways between a node and the
 * relay — nothing tells either side): the node notices within its read
 * deadline (2 × the 2 s test keepalive), says so in status, reconnects when
 * the path is back, and the tunnel works again. Packets sent while it was
 * down are never delivered later to anybody else: a third node receives
 * nothing through the relay and counts no stray WireGuard messages.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../helpers/lab.js';
import { createNatTailnet, REGION, RELAY_PORT, type NatTailnet } from '../helpers/nat-tailnet.js';
import type { NodeHandle } from '../helpers/mesh.js';
import type { Site } from '../helpers/nat-lab.js';

type Member = { site: Site; node: NodeHandle };
let tn: NatTailnet;

const READ_DEADLINE_MS = 2 * 2000;
const TABLE = 'warren_relaydrop';
const STRAY = ['unknown_index', 'decrypt', 'handshake_failed', 'unknown_peer', 'bad_mac1', 'malformed'] as const;

const tailnetV4 = async (n: NodeHandle): Promise<string> => (await n.cli(['ip', '-4'])).stdout.trim();
const homeUp = async (x: Member): Promise<boolean> => (await x.node.status()).relays.some((r) => r.home && r.connected);

describe('relay connection dropped silently', { timeout: 120_000 }, () => {
  let u: Member;
  let e: Member;
  let f: Member;
  before(async () => {
    tn = await createNatTailnet('natrdrop');
    // u has no UDP at all: every packet to or from it goes through the relay.
    [u, e, f] = await Promise.all([tn.node('ru', { nat: 'easy', udpBlocked: true }), tn.node('re', { nat: 'easy' }), tn.node('rf', { nat: 'easy' })]);
  });
  after(() => tn?.close());

  test('noticed within the read deadline, reconnected, and nothing queued reaches the wrong peer', async (t) => {
    const lab = tn.net.lab;
    const relayIp = new URL(tn.relay.url).hostname;
    await waitFor('u sees e\'s home region', async () => (await u.node.status()).peers.some((p) => p.name === 're' && p.homeRegion === REGION.id), { timeoutMs: 20_000 });
    const eIp = await tailnetV4(e.node);
    const ok = await lab.sh(u.site.host, ['ping', '-c', '2', '-i', '0.2', '-W', '3', eIp], { allowFail: true });
    assert.equal(ok.code, 0, ok.stdout);
    assert.ok(await homeUp(u));
    const fBefore = await f.node.status();

    const nft = (args: string): Promise<unknown> => lab.sh(u.site.host, ['nft', args]);
    await nft(`add table inet ${TABLE}`);
    await nft(`add chain inet ${TABLE} in { type filter hook input priority -10 ; policy accept ; }`);
    await nft(`add chain inet ${TABLE} out { type filter hook output priority -10 ; policy accept ; }`);
    await nft(`add rule inet ${TABLE} in ip saddr ${relayIp} tcp sport ${RELAY_PORT} drop`);
    await nft(`add rule inet ${TABLE} out ip daddr ${relayIp} tcp dport ${RELAY_PORT} drop`);
    const cut = Date.now();
    // Traffic while the relay is unreachable: packets for e that must never surface anywhere later.
    const during = lab.spawn(u.site.host, ['ping', '-i', '0.2', '-W', '1', eIp], { name: 'ping-during' });
    await waitFor('u notices the dead relay connection', async () => !(await homeUp(u)), { timeoutMs: READ_DEADLINE_MS + 3000, intervalMs: 100 });
    const noticed = Date.now() - cut;
    t.diagnostic(`noticed after ${noticed} ms (read deadline ${READ_DEADLINE_MS} ms)`);
    assert.ok(noticed <= READ_DEADLINE_MS + 2500, `noticed within the read deadline (+ one keepalive of slack): ${noticed} ms`);
    await during.stop('SIGINT');

    await nft(`delete table inet ${TABLE}`);
    const restored = Date.now();
    await waitFor('u reconnects to the relay', () => homeUp(u), { timeoutMs: 15_000, intervalMs: 100 });
    t.diagnostic(`reconnected ${Date.now() - restored} ms after the path came back`);
    await waitFor('the tunnel works again', async () => (await lab.sh(u.site.host, ['ping', '-c', '1', '-W', '2', eIp], { allowFail: true })).code === 0, { timeoutMs: 15_000, intervalMs: 200 });

    // f was never a destination: nothing came to it through the relay, and no stray WireGuard messages.
    const fAfter = await f.node.status();
    assert.equal(fAfter.natCounters['relay_wg_rx'], fBefore.natCounters['relay_wg_rx'], 'f received no WireGuard packets through the relay');
    for (const k of STRAY) assert.equal(fAfter.device.drops[k] ?? 0, fBefore.device.drops[k] ?? 0, `f: drops.${k}`);
  });
});
