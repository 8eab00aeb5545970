/**
 * Review: after `warren debug rotate-node-key` the node reaches its peers
 * again, both ways (flat tailnet on one bridge, no relay).
 */
import * as assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Lab, waitFor } from '../helpers/lab.js';
import { MeshLab, useControl } from '../helpers/mesh.js';
import type { ControlHandle, NodeHandle } from '../helpers/mesh.js';
import type { MeshStatus } from '../../src/control/mesh-status.js';

const lab = Lab.create('revrot');
const m = new MeshLab(lab);
let c: ControlHandle;
let beta: NodeHandle;
let delta: NodeHandle;
let key: string;

after(() => lab.cleanup());

before(async () => {
  await m.init();
  c = await m.control();
  useControl(c);
  key = await c.authkey(['--reusable']);
  beta = await m.node('beta');
  delta = await m.node('delta');
  for (const n of [beta, delta]) assert.equal((await n.up(key)).code, 0);
});

const ipv4 = (s: MeshStatus): string => s.self!.addresses.find((a) => !a.includes(':'))!.replace(/\/\d+$/, '');

async function pingEventually(from: NodeHandle, ip: string, timeoutMs = 15_000): Promise<void> {
  await waitFor(`${from.name} to ping ${ip}`, async () => (await lab.sh(from.ns, ['ping', '-n', '-c', '1', '-W', '1', ip], { allowFail: true })).code === 0, { timeoutMs, intervalMs: 100 });
}

test('rotating the node key: tunnels come back both ways', async (t) => {
  const b = await waitFor('beta running', async () => { const s = await beta.status(); return s.self && s.peers.length ? s : null; }, { timeoutMs: 15_000 });
  const d = await waitFor('delta running', async () => { const s = await delta.status(); return s.self && s.peers.length ? s : null; }, { timeoutMs: 15_000 });
  await pingEventually(delta, ipv4(b));
  await pingEventually(beta, ipv4(d));
  const r = await delta.cli(['debug', 'rotate-node-key']);
  assert.equal(r.code, 0, r.stderr);
  const newKey = /new node key (\S+)/.exec(r.stdout)?.[1];
  await waitFor('beta to learn delta\'s new key', async () => (await beta.status()).peers.find((p) => p.nodeKey === newKey), { timeoutMs: 10_000 });
  try {
    await pingEventually(delta, ipv4(b));
    await pingEventually(beta, ipv4(d));
  } catch (e) {
    for (const n of [delta, beta]) {
      const s = await n.status();
      t.diagnostic(`${n.name}: peers ${JSON.stringify(s.peers.map((p) => ({ k: p.nodeKey.slice(0, 8), ep: p.endpoint, path: p.path })))} device ${JSON.stringify(s.device.peers)} drops ${JSON.stringify(s.device.drops)} nat ${JSON.stringify(s.natCounters)}`);
      t.diagnostic(`${n.name} log:\n${n.proc.tail(60)}`);
    }
    throw e;
  }
});
