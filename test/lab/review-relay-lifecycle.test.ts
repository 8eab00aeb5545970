/**
 * Review: the relay across `warren down`/`up` and `logout`/`up`. A node whose
 * router drops UDP (so the relay is its only path) and an easy-NAT peer:
 *  - `down` closes the node's relay connections; `up` opens them again and
 *    the tunnel works;
 *  - `logout` forgets the node key; `up --auth-key` registers a new one, and
 *    the relay and disco must use it: the tunnel works again over the relay.
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

async function pingsOverRelay(a: Member, b: Member): Promise<void> {
  const bIp = await tailnetV4(b.node);
  await waitFor(`${a.node.name} to ping ${b.node.name} (${bIp})`, async () => {
    const r = await tn.net.lab.sh(a.site.host, ['ping', '-c', '1', '-W', '1', bIp], { allowFail: true });
    return r.code === 0;
  }, { timeoutMs: 20_000, intervalMs: 200 });
  const p = (await a.node.status()).peers.find((q) => q.name === b.node.name);
  assert.equal(p?.path, `relay(${REGION.code})`);
}

describe('relay across down/up and logout/up', { timeout: 170_000 }, () => {
  let u: Member;
  let e: Member;
  before(async () => {
    tn = await createNatTailnet('revrl');
    [u, e] = await Promise.all([tn.node('ru', { nat: 'easy', udpBlocked: true }), tn.node('re', { nat: 'easy' })]);
  });
  after(() => tn?.close());

  test('works over the relay at first', async () => {
    await pingsOverRelay(u, e);
    await pingsOverRelay(e, u);
  });

  test('down closes the relay connections; up brings the tunnel back', async () => {
    assert.equal((await u.node.cli(['down'])).code, 0);
    await waitFor('relay connections closed', async () => (await u.node.status()).relays.length === 0, { timeoutMs: 5000 });
    assert.equal((await u.node.up(null)).code, 0);
    await pingsOverRelay(u, e);
    await pingsOverRelay(e, u);
  });

  test('logout then up with an auth key: a new node key, and the tunnel works over the relay again', async () => {
    const before = (await u.node.status()).self!.nodeKey;
    assert.equal((await u.node.cli(['logout'])).code, 0);
    const r = await u.node.up(tn.key);
    assert.equal(r.code, 0, r.stderr);
    const st = await waitFor('u running with a new key', async () => {
      const s = await u.node.status();
      return s.backendState === 'Running' && s.self && s.self.nodeKey !== before ? s : null;
    }, { timeoutMs: 15_000 });
    await waitFor('e to learn u\'s new key', async () => (await e.node.status()).peers.some((p) => p.nodeKey === st.self!.nodeKey), { timeoutMs: 10_000 });
    await pingsOverRelay(u, e);
    await pingsOverRelay(e, u);
  });
});
