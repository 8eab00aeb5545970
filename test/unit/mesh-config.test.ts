/**
 * The pure pieces of mesh mode: netmap → engine and router snapshots, delta
 * application, the server's per-node view of changes, node state files, and
 * duration parsing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, statSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deviceConfig, routerConfig, pickEndpoint } from '../../src/control/netmap-config.js';
import { applyChanges } from '../../src/control/control-client.js';
import { changeFor, buildNetmap, nodeView } from '../../src/server/control/views.js';
import { NodeState } from '../../src/control/node-state.js';
import { parseDuration, formatDuration } from '../../src/util/duration.js';
import type { Netmap, NodeView } from '../../src/wire/control.js';
import type { NodeRecord } from '../../src/server/control/store.js';

const key = (n: number): string => Buffer.alloc(32, n).toString('base64');

function view(id: number, extra: Partial<NodeView> = {}): NodeView {
  const addresses = [`100.64.0.${id}/32`, `fd00::${id}/128`];
  return { id, name: `n${id}`, nodeKey: key(id), discoKey: key(100 + id), addresses, allowedIps: addresses, endpoints: [`10.0.0.${id}:41641`],
    online: true, lastSeen: null, keyExpiry: null, tags: [], hostinfo: {}, homeRegion: 0, ...extra };
}

function netmap(peers: NodeView[]): Netmap {
  return { self: view(1), peers, dns: { nameservers: [], domains: [] }, packetFilter: [{ src: ['*'], dst: ['*'] }], keepaliveMs: 30_000, relayMap: { regions: [] } };
}

test('deviceConfig: one peer per live node, its node key, allowed IPs and an endpoint; expired peers left out', () => {
  const now = 1_000_000;
  const nm = netmap([view(2), view(3, { keyExpiry: now - 1 }), view(4, { endpoints: ['[fd00::9]:5', '192.0.2.4:41641'] })]);
  const dc = deviceConfig(nm, { privateKey: new Uint8Array(32), listenPort: 41641, tun: 'warren0', now });
  assert.deepEqual(dc.peers.map((p) => Buffer.from(p.publicKey).toString('base64')), [key(2), key(4)]);
  assert.deepEqual(dc.peers[0]!.allowedIps, ['100.64.0.2/32', 'fd00::2/128']);
  assert.deepEqual(dc.peers[1]!.endpoint, { ip: '192.0.2.4', port: 41641 }, 'IPv4 endpoint preferred');
});

test('routerConfig: our addresses, per-peer /32 and /128 routes only, never 100.64.0.0/10', () => {
  const rc = routerConfig(netmap([view(2), view(3)]), 'warren0', 0);
  assert.deepEqual(rc.addresses, ['100.64.0.1/32', 'fd00::1/128']);
  assert.deepEqual(rc.routes, ['100.64.0.2/32', 'fd00::2/128', '100.64.0.3/32', 'fd00::3/128']);
  assert.ok(!rc.routes.some((r) => r.endsWith('/10')));
  assert.deepEqual(routerConfig(null, 'warren0', 0).routes, []);
});

test('pickEndpoint parses both forms and returns null for none', () => {
  assert.deepEqual(pickEndpoint(['[fd00::1]:7']), { ip: 'fd00::1', port: 7 });
  assert.equal(pickEndpoint([]), null);
});

test('applyChanges: upsert adds and replaces, remove drops, self replaces self; the input is untouched', () => {
  const nm = netmap([view(2)]);
  const out = applyChanges(nm, [
    { op: 'upsert', node: view(3) }, { op: 'upsert', node: view(2, { name: 'renamed' }) },
    { op: 'remove', id: 3 }, { op: 'self', node: view(1, { name: 'me' }) },
  ]);
  assert.deepEqual(out.peers.map((p) => p.name), ['renamed']);
  assert.equal(out.self.name, 'me');
  assert.equal(nm.peers[0]!.name, 'n2');
});

test('server changeFor: own upsert becomes self, own removal is not a delta, resync markers are skipped', () => {
  assert.deepEqual(changeFor({ op: 'upsert', node: view(1) }, 1), { op: 'self', node: view(1) });
  assert.deepEqual(changeFor({ op: 'upsert', node: view(2) }, 1), { op: 'upsert', node: view(2) });
  assert.equal(changeFor({ op: 'remove', id: 1 }, 1), null);
  assert.equal(changeFor({ op: 'resync' }, 1), null);
});

test('server buildNetmap: everyone else who has not expired', () => {
  const rec = (id: number, keyExpiry: number | null): NodeRecord => ({
    id, machineKey: key(50 + id), nodeKey: key(id), discoKey: key(100 + id), name: `n${id}`, hostname: `n${id}`, ipv4: `100.64.0.${id}`,
    ipv6: `fd00::${id}`, tags: [], ephemeral: false, createdAt: 0, lastSeen: null, online: true, keyExpiry, endpoints: [], hostinfo: {}, authKeyId: 1, tailnet: 'default', user: 'admin',
  });
  const nm = buildNetmap(rec(1, null), [rec(1, null), rec(2, null), rec(3, 5)], 10, 30_000);
  assert.deepEqual(nm.peers.map((p) => p.id), [2]);
  assert.deepEqual(nodeView(rec(2, null)).allowedIps, ['100.64.0.2/32', 'fd00::2/128']);
});

test('NodeState: keys persist, files are 0600 in a 0700 directory, rotation commits atomically, logout keeps the machine key', () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'wns-')), 'state');
  const st = new NodeState(dir);
  const m = st.machineKey(), n = st.nodeKey();
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  assert.equal(statSync(join(dir, 'machine-key')).mode & 0o777, 0o600);
  const again = new NodeState(dir);
  assert.deepEqual(again.machineKey().publicKey, m.publicKey);
  assert.deepEqual(again.nodeKey().publicKey, n.publicKey);
  const next = st.rotateNodeKey();
  assert.deepEqual(st.nodeKey().publicKey, n.publicKey, 'not committed yet');
  st.commitRotation();
  assert.deepEqual(st.nodeKey().publicKey, next.publicKey);
  st.setPrefs({ loginServers: ['https://x:1'], fingerprint: null, hostname: 'h', wantRunning: true });
  assert.equal(statSync(join(dir, 'prefs.json')).mode & 0o777, 0o600);
  st.logout();
  assert.equal(st.prefs(), null);
  assert.deepEqual(st.machineKey().publicKey, m.publicKey);
  assert.notDeepEqual(st.nodeKey().publicKey, next.publicKey, 'a fresh node key after logout');
  assert.match(readFileSync(join(dir, 'machine-key'), 'utf8'), /^[A-Za-z0-9+/]{43}=\n$/);
});

test('durations', () => {
  assert.equal(parseDuration('90s'), 90_000);
  assert.equal(parseDuration('180d'), 180 * 86_400_000);
  assert.equal(parseDuration('1500ms'), 1500);
  assert.throws(() => parseDuration('5 minutes'), /invalid duration "5 minutes"/);
  assert.equal(formatDuration(3_600_000), '1h');
});
