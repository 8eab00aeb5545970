/**
 * Tailnets on one warren-control, with the real binaries in namespaces on one
 * bridge: two nodes joined with auth keys of tailnet "red" reach each other;
 * a node joined with a key of tailnet "blue" is in neither's netmap and cannot
 * ping them, nor they it (all three are on the same LAN, so only the control
 * server's separation keeps them apart). The admin CLI shows the tailnet and
 * user of keys and nodes, `nodes list --tailnet` filters, and `tailnets list`
 * counts the nodes of each tailnet with its own IPv6 /48.
 */
import * as assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Lab, waitFor } from '../helpers/lab.js';
import { MeshLab, useControl } from '../helpers/mesh.js';
import type { ControlHandle, NodeHandle } from '../helpers/mesh.js';
import type { MeshStatus } from '../../src/control/mesh-status.js';
import type { AuthKeyRecord, NodeRecord, TailnetRecord } from '../../src/server/control/store.js';

const lab = Lab.create('meshtn');
const m = new MeshLab(lab);
let c: ControlHandle;
let red1: NodeHandle;
let red2: NodeHandle;
let blue1: NodeHandle;
const st: Record<string, MeshStatus> = {};

after(() => lab.cleanup());

const bare = (cidr: string): string => cidr.replace(/\/\d+$/, '');
const ipv4Of = (s: MeshStatus): string => bare(s.self!.addresses.find((x) => !x.includes(':'))!);
const ipv6Of = (s: MeshStatus): string => bare(s.self!.addresses.find((x) => x.includes(':'))!);

async function upOk(n: NodeHandle, key: string): Promise<MeshStatus> {
  const r = await n.up(key);
  assert.equal(r.code, 0, `warren up on ${n.name} failed: ${r.stderr}`);
  return waitFor(`${n.name} to be Running with an identity`, async () => {
    const s = await n.status();
    return s.backendState === 'Running' && s.self ? s : null;
  }, { timeoutMs: 15_000 });
}

async function ping(n: NodeHandle, ip: string, count = 1): Promise<boolean> {
  const r = await lab.sh(n.ns, ['ping', '-n', '-c', String(count), '-W', '1', ip], { allowFail: true, timeoutMs: 20_000 });
  return r.code === 0;
}

async function adminJson<T>(args: string[]): Promise<T> {
  const r = await c.admin([...args, '--json']);
  assert.equal(r.code, 0, `warren-control ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

before(async () => {
  await m.init();
  c = await m.control();
  useControl(c);
  const redKey = await c.authkey(['--reusable', '--tailnet', 'red', '--user', 'rita']);
  const blueKey = await c.authkey(['--reusable', '--tailnet', 'blue', '--user', 'bo']);
  [red1, red2, blue1] = await Promise.all([m.node('red1'), m.node('red2'), m.node('blue1')]);
  st['red1'] = await upOk(red1, redKey);
  st['red2'] = await upOk(red2, redKey);
  st['blue1'] = await upOk(blue1, blueKey);
});

test('nodes of one tailnet ping each other; a node of another tailnet is in no netmap and unreachable both ways', async () => {
  const r1 = st['red1']!, r2 = st['red2']!, b1 = st['blue1']!;
  await waitFor('red1 to ping red2', () => ping(red1, ipv4Of(r2)), { timeoutMs: 20_000, intervalMs: 100 });
  await waitFor('red2 to ping red1', () => ping(red2, ipv4Of(r1)), { timeoutMs: 20_000, intervalMs: 100 });
  assert.ok(await ping(red1, ipv6Of(r2)), 'red1 pings red2 over IPv6 too');
  // blue1 registered last and has been connected while red pinged: by now it would be in red's netmaps if it leaked.
  await waitFor('blue1 to be online on the server', async () => {
    const nodes = await adminJson<NodeRecord[]>(['nodes', 'list']);
    return nodes.find((n) => n.name === 'blue1')?.online === true;
  }, { timeoutMs: 15_000 });
  for (const [h, s] of [[red1, await red1.status()], [red2, await red2.status()]] as const) {
    assert.deepEqual(s.peers.map((p) => p.name), [h === red1 ? 'red2' : 'red1'], `${h.name}'s peers`);
  }
  assert.deepEqual((await blue1.status()).peers, [], 'blue1 is alone in its tailnet');
  assert.equal(await ping(red1, ipv4Of(b1), 2), false, 'red1 reached blue1');
  assert.equal(await ping(blue1, ipv4Of(r1), 2), false, 'blue1 reached red1');
  assert.equal(await ping(blue1, ipv6Of(r2), 1), false, 'blue1 reached red2 over IPv6');
  // Each tailnet has its own /48; IPv4 stays unique across the server.
  assert.notEqual(ipv6Of(r1).split(':').slice(0, 3).join(':'), ipv6Of(b1).split(':').slice(0, 3).join(':'));
  assert.equal(ipv6Of(r1).split(':').slice(0, 3).join(':'), ipv6Of(r2).split(':').slice(0, 3).join(':'));
  assert.equal(new Set([ipv4Of(r1), ipv4Of(r2), ipv4Of(b1)]).size, 3);
});

test('admin CLI: tailnet and user of keys and nodes, nodes list --tailnet, tailnets list', async () => {
  const keys = await adminJson<AuthKeyRecord[]>(['authkey', 'list']);
  assert.deepEqual(keys.map((k) => [k.tailnet, k.user, k.usedCount]), [['red', 'rita', 2], ['blue', 'bo', 1]]);
  const red = await adminJson<NodeRecord[]>(['nodes', 'list', '--tailnet', 'red']);
  assert.deepEqual(red.map((n) => [n.name, n.tailnet, n.user]), [['red1', 'red', 'rita'], ['red2', 'red', 'rita']]);
  const blue = await adminJson<NodeRecord[]>(['nodes', 'list', '--tailnet', 'blue']);
  assert.deepEqual(blue.map((n) => [n.name, n.tailnet, n.user]), [['blue1', 'blue', 'bo']]);
  assert.deepEqual(await adminJson<NodeRecord[]>(['nodes', 'list', '--tailnet', 'nosuch']), []);
  assert.equal((await adminJson<NodeRecord[]>(['nodes', 'list'])).length, 3);

  const table = await c.admin(['nodes', 'list', '--tailnet', 'red']);
  assert.equal(table.code, 0, table.stderr);
  const [header, ...rows] = table.stdout.trim().split('\n');
  assert.match(header!, /\bTAILNET\b.*\bUSER\b/);
  assert.equal(rows.length, 2, table.stdout);
  for (const row of rows) assert.match(row, /\bred\s+rita\b/);
  assert.match((await c.admin(['authkey', 'list'])).stdout, /TAILNET\s+USER[\s\S]*\bblue\s+bo\b/);

  const tailnets = await adminJson<TailnetRecord[]>(['tailnets', 'list']);
  assert.deepEqual(tailnets.map((t) => [t.name, t.nodes]), [['default', 0], ['red', 2], ['blue', 1]]);
  const redPrefix = tailnets.find((t) => t.name === 'red')!.ipv6Prefix;
  assert.ok(ipv6Of(st['red1']!).startsWith(redPrefix.replace(/::\/48$/, ':')), `${ipv6Of(st['red1']!)} not in ${redPrefix}`);
  const plain = await c.admin(['tailnets', 'list']);
  assert.match(plain.stdout, /^NAME\s+IPV6 PREFIX\s+NODES\n/);
  assert.match(plain.stdout, new RegExp(`\\nred\\s+${redPrefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s+2\\n`));

  const bad = await c.admin(['authkey', 'create', '--tailnet', 'Bad Name']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /invalid tailnet name/);
});
