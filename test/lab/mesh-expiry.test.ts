/**
 * Node key expiry as the operator sets it: with --key-expiry shorter than the
 * 14-day warning window a node warns (health key_expiry_soon) with the expiry
 * the server granted; a node registered with a tagged key never expires and
 * does not warn.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Lab } from '../helpers/lab.js';
import { MeshLab, useControl } from '../helpers/mesh.js';

const lab = Lab.create('expiry');
after(() => lab.cleanup());

test('--key-expiry sets node key lifetimes; a node warns 14 days ahead; tagged nodes never expire', async () => {
  const m = new MeshLab(lab);
  await m.init();
  const c = await m.control({ args: ['--key-expiry', '10d'] });
  useControl(c);
  const plain = await m.node('plain');
  const t0 = Date.now();
  const r = await plain.up(await c.authkey(['--reusable']));
  assert.equal(r.code, 0, r.stderr);
  const st = await plain.status();
  const expiry = st.self!.keyExpiry!;
  assert.ok(Math.abs(expiry - (t0 + 10 * 86_400_000)) < 60_000, `expiry ~10 days ahead: ${new Date(expiry).toISOString()}`);
  const warn = st.health.find((h) => h.code === 'key_expiry_soon');
  assert.ok(warn, `health: ${JSON.stringify(st.health)}`);
  assert.equal(warn.severity, 'warning');
  assert.match(warn.text, /expires in 10 days/);

  const tagged = await m.node('tagged');
  assert.equal((await tagged.up(await c.authkey(['--tags', 'tag:appliance']))).code, 0);
  const ts = await tagged.status();
  assert.equal(ts.self!.keyExpiry, null);
  assert.deepEqual(ts.self!.tags, ['tag:appliance']);
  assert.ok(!ts.health.some((h) => h.code.startsWith('key_')), `health: ${JSON.stringify(ts.health)}`);
});
