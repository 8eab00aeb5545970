/**
 * A node's life and death on the tailnet, with the real warren-control,
 * warrend and warren binaries in namespaces on one bridge:
 *
 * - a deleted node, and a node whose key was expired, leave every peer's
 *   netmap within 5 s and their packets are refused: the victim's path to the
 *   control server is cut first (an nft DROP in its own namespace), so it
 *   never hears the news and keeps its old netmap and session — yet its pings
 *   die at the peer, whose data plane no longer holds its key and counts them
 *   as dropped (unknown session / unknown key). Once the path
 *   is back, the victim learns it was ended: an error health item, NeedsLogin
 *   (deleted) or "key expired" (expired);
 * - an ephemeral node vanishes (nodes list and peers' netmaps) once it has
 *   been offline for --ephemeral-timeout, not before; an ordinary node offline
 *   as long stays;
 * - node-key rotation: new key everywhere (self, peers, their data plane),
 *   same id and addresses, tunnels back both ways;
 * - the same reusable auth key on a new machine (even under the same
 *   hostname) gives a new identity, never the first node's;
 * - wrong, revoked, expired and used-up auth keys: `warren up` names the
 *   reason and exits non-zero, the server logs the refusal, nothing is created;
 * - certificate pinning: a wrong --login-server-fingerprint is refused naming
 *   both fingerprints; a node pinned to the server's certificate refuses the
 *   server once it comes back with a new one, and says so in its health.
 *
 * One control server (keepalive 2 s, housekeeping 300 ms, ephemeral timeout
 * 3 s) serves every test; "beta" is the long-lived peer. The tests run in
 * order and the pinning test, which replaces the server's certificate, is last.
 */
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { TestContext } from 'node:test';
import { Lab, waitFor } from '../helpers/lab.js';
import { MeshLab, WARREN_CONTROL, useControl } from '../helpers/mesh.js';
import type { ControlHandle, NodeHandle } from '../helpers/mesh.js';
import type { MeshStatus } from '../../src/control/mesh-status.js';
import type { AuthKeyRecord, NodeRecord } from '../../src/server/control/store.js';

const EPHEMERAL_TIMEOUT_MS = 3000;
/** The issue's bound for a deletion or expiry to reach every peer. */
const REMOVAL_DEADLINE_MS = 5000;

const lab = Lab.create('meshlife');
const m = new MeshLab(lab);
let c: ControlHandle;
let beta: NodeHandle;
let reusableKey: string;

after(() => lab.cleanup());

before(async () => {
  await m.init();
  c = await m.control({ args: ['--ephemeral-timeout', `${EPHEMERAL_TIMEOUT_MS / 1000}s`] });
  useControl(c);
  reusableKey = await c.authkey(['--reusable']);
  beta = await m.node('beta');
  await upOk(beta, reusableKey);
});

// ------------------------------------------------------------------ helpers

const bare = (cidr: string): string => cidr.replace(/\/\d+$/, '');

async function upOk(n: NodeHandle, key: string | null, extra: string[] = []): Promise<MeshStatus> {
  const r = await n.up(key, extra);
  assert.equal(r.code, 0, `warren up on ${n.name} failed: ${r.stderr}`);
  return waitFor(`${n.name} to be Running with an identity`, async () => {
    const s = await n.status();
    return s.backendState === 'Running' && s.self ? s : null;
  }, { timeoutMs: 15_000 });
}

function ipv4Of(s: MeshStatus): string {
  const a = s.self?.addresses.find((x) => !x.includes(':'));
  assert.ok(a, 'node has an IPv4 tailnet address');
  return bare(a);
}

async function ping(n: NodeHandle, ip: string, count = 1): Promise<boolean> {
  const r = await lab.sh(n.ns, ['ping', '-n', '-c', String(count), '-W', '1', ip], { allowFail: true, timeoutMs: 20_000 });
  return r.code === 0;
}

async function pingEventually(from: NodeHandle, ip: string, timeoutMs = 20_000): Promise<void> {
  await waitFor(`${from.name} to ping ${ip}`, () => ping(from, ip), { timeoutMs, intervalMs: 100 });
}

async function nodesList(): Promise<NodeRecord[]> {
  const r = await c.admin(['nodes', 'list', '--json']);
  assert.equal(r.code, 0, `nodes list: ${r.stderr}`);
  return JSON.parse(r.stdout) as NodeRecord[];
}

async function authkeyList(): Promise<AuthKeyRecord[]> {
  const r = await c.admin(['authkey', 'list', '--json']);
  assert.equal(r.code, 0, `authkey list: ${r.stderr}`);
  return JSON.parse(r.stdout) as AuthKeyRecord[];
}

/** The record of a secret key, found by the listed prefix (`wkey-<id>-abcd…`). */
async function keyRecord(secret: string): Promise<AuthKeyRecord> {
  const rec = (await authkeyList()).find((k) => secret.startsWith(k.prefix.replace(/…$/, '')));
  assert.ok(rec, `auth key ${secret.slice(0, 12)}… is in authkey list`);
  return rec;
}

/** Wait until `who`'s netmap lists a peer called `name`, and return that peer. */
async function peerIn(who: NodeHandle, name: string, timeoutMs = 15_000): Promise<MeshStatus['peers'][number]> {
  return waitFor(`${who.name} to list ${name} as a peer`, async () => (await who.status()).peers.find((p) => p.name === name), { timeoutMs });
}

/** Join a fresh node and check that it and beta reach each other over the tunnel. */
async function joinAndLink(name: string, key = reusableKey): Promise<{ n: NodeHandle; st: MeshStatus }> {
  const n = await m.node(name);
  const st = await upOk(n, key);
  await peerIn(beta, name);
  await peerIn(n, 'beta');
  const betaIp = ipv4Of(await beta.status());
  await pingEventually(n, betaIp);
  await pingEventually(beta, ipv4Of(st));
  return { n, st };
}

/** Drop TCP between a node's namespace and the control server, both ways, silently. */
async function cutControlPath(n: NodeHandle): Promise<() => Promise<void>> {
  const ctlIp = new URL(c.url).hostname;
  const port = new URL(c.url).port;
  const file = join(n.dir, 'cut-control.nft');
  writeFileSync(file, [
    'table inet wlcut {',
    '  chain out {',
    '    type filter hook output priority 0; policy accept;',
    `    ip daddr ${ctlIp} tcp dport ${port} drop`,
    '  }',
    '  chain in {',
    '    type filter hook input priority 0; policy accept;',
    `    ip saddr ${ctlIp} tcp sport ${port} drop`,
    '  }',
    '}',
    '',
  ].join('\n'));
  await lab.sh(n.ns, ['nft', '-f', file]);
  return async () => {
    await lab.sh(n.ns, ['nft', 'delete', 'table', 'inet', 'wlcut']);
  };
}

/** Packets beta's data plane dropped for coming from no known session or key. */
function refusedCount(s: MeshStatus): number {
  return (s.device.drops['unknown_index'] ?? 0) + (s.device.drops['unknown_peer'] ?? 0);
}

/**
 * The common part of deletion and expiry. With the victim cut off from
 * control (so it keeps its netmap and its session with beta), run `action`;
 * then beta drops the victim from its netmap within 5 s, beta's data plane
 * holds no peer for the victim's key, and pings die both ways although the
 * victim still lists beta. Restores the path and returns the victim's status
 * once it has heard from the control server that it was ended.
 */
async function endNodeWhileCutOff(t: TestContext, victim: NodeHandle, action: string[]): Promise<MeshStatus> {
  const vSt = await victim.status();
  const vKey = vSt.self!.nodeKey;
  const vIp = ipv4Of(vSt);
  const betaIp = ipv4Of(await beta.status());
  const restore = await cutControlPath(victim);
  // The cut must not touch the tunnel itself.
  assert.ok(await ping(victim, betaIp), `${victim.name} still pings beta with only its control path cut`);
  const devBefore = (await beta.status()).device.peers.find((p) => p.publicKey === vKey);
  assert.ok(devBefore && devBefore.latestHandshake > 0, `beta's data plane has a session with ${victim.name} before`);

  const t0 = Date.now();
  const r = await c.admin(action);
  assert.equal(r.code, 0, `${action.join(' ')}: ${r.stderr}`);
  const seen = await waitFor(`beta's netmap to drop ${victim.name}`, async () => {
    const s = await beta.status();
    return s.peers.some((p) => p.name === victim.name || p.nodeKey === vKey) ? null : s;
  }, { timeoutMs: REMOVAL_DEADLINE_MS + 2000, intervalMs: 50 });
  const elapsed = Date.now() - t0;
  assert.ok(elapsed <= REMOVAL_DEADLINE_MS, `${victim.name} left beta's netmap after ${elapsed} ms (bound ${REMOVAL_DEADLINE_MS} ms)`);
  t.diagnostic(`${action.join(' ')}: gone from beta's netmap after ${elapsed} ms`);
  // And the data plane followed the netmap: no peer, so no session, for that key.
  await waitFor(`beta's data plane to forget ${victim.name}'s key`, async () =>
    !(await beta.status()).device.peers.some((p) => p.publicKey === vKey), { timeoutMs: 3000 });
  assert.ok(!seen.peers.some((p) => p.addresses.some((a) => bare(a) === vIp)), 'no peer of beta holds the victim\'s address');

  // The victim has not heard (its control path is cut): it still lists beta and keeps sending.
  const stillThinks = await victim.status();
  assert.ok(stillThinks.peers.some((p) => p.name === 'beta'), `${victim.name} still has beta in its netmap (it was cut off)`);
  assert.ok(stillThinks.device.peers.length > 0, `${victim.name}'s data plane still has beta configured`);
  const refusedBefore = refusedCount(await beta.status());
  assert.equal(await ping(victim, betaIp, 3), false, `beta refuses ${victim.name}'s packets after it was ended`);
  assert.equal(await ping(beta, vIp, 1), false, `beta no longer sends to ${victim.name}`);
  const betaAfter = await beta.status();
  assert.ok(!betaAfter.device.peers.some((p) => p.publicKey === vKey), `still no session for ${victim.name}'s key on beta after its pings`);
  // The pings did arrive, and beta's data plane threw them away (unknown session index / unknown static key).
  const refusedAfter = refusedCount(betaAfter);
  assert.ok(refusedAfter > refusedBefore, `beta counted ${victim.name}'s packets as refused (${refusedBefore} → ${refusedAfter}; drops ${JSON.stringify(betaAfter.device.drops)})`);

  await restore();
  const told = await waitFor(`${victim.name} to learn it was ended`, async () => {
    const s = await victim.status();
    return s.health.some((h) => h.severity === 'error') && s.peers.length === 0 ? s : null;
  }, { timeoutMs: 20_000, intervalMs: 100 });
  t.diagnostic(`${victim.name}: ${told.backendState}; ${told.health.map((h) => `${h.code} (${h.severity}): ${h.text}`).join('; ')}`);
  return told;
}

// -------------------------------------------------------------------- tests

test('a deleted node leaves every netmap within 5 s, its packets are refused, and it is told so', async (t) => {
  const { n: alpha } = await joinAndLink('alpha');
  const before = (await nodesList()).length;
  const st = await endNodeWhileCutOff(t, alpha, ['nodes', 'delete', 'alpha']);
  assert.equal(st.backendState, 'NeedsLogin', `deleted node's state: ${JSON.stringify(st.health)}`);
  assert.ok(st.health.some((h) => h.severity === 'error' && /deleted|not registered/i.test(h.text)), `deleted node's health: ${JSON.stringify(st.health)}`);
  assert.ok(!st.health.some((h) => h.code === 'control_unreachable'), 'no claim that the tunnel runs on the last netmap');
  assert.equal(st.device.peers.length, 0, 'deleted node has no peers in its data plane');
  const nodes = await nodesList();
  assert.equal(nodes.length, before - 1);
  assert.ok(!nodes.some((x) => x.name === 'alpha'), 'alpha is gone from nodes list');
  await alpha.proc.stop('SIGTERM');
});

test('an expired node key leaves every netmap within 5 s, its packets are refused, and the node says its key expired', async (t) => {
  const { n: gamma, st: gSt } = await joinAndLink('gamma');
  const st = await endNodeWhileCutOff(t, gamma, ['nodes', 'expire', 'gamma']);
  const expiredItem = st.health.find((h) => h.code === 'key_expired');
  assert.ok(expiredItem, `gamma's health says its key expired: ${JSON.stringify(st.health)}`);
  assert.equal(expiredItem.severity, 'error');
  assert.match(expiredItem.text, /key has expired/);
  assert.equal(st.health.filter((h) => h.code === 'key_expired').length, 1, 'said once');
  assert.equal(st.backendState, 'NeedsLogin', 'an expired node needs a new login');
  assert.ok(!st.health.some((h) => h.code === 'control_unreachable'), 'no claim that the tunnel runs on the last netmap');
  assert.equal(st.device.peers.length, 0, 'an expired node keeps no peers in its data plane');
  // Expired is not deleted: the record (and its addresses) stay, with the expiry in the past.
  const rec = (await nodesList()).find((x) => x.name === 'gamma');
  assert.ok(rec, 'gamma is still in nodes list');
  assert.ok(rec.keyExpiry !== null && rec.keyExpiry <= Date.now(), `gamma's key expiry is past: ${rec.keyExpiry}`);
  assert.equal(`${rec.ipv4}/32`, gSt.self!.addresses.find((a) => !a.includes(':')));
  // It stays out of beta's netmap.
  assert.ok(!(await beta.status()).peers.some((p) => p.name === 'gamma'));
  await gamma.proc.stop('SIGTERM');
});

test('an ephemeral node vanishes after being offline for --ephemeral-timeout; an ordinary node does not', async (t) => {
  const ephKey = await c.authkey(['--ephemeral']);
  const { n: eph } = await joinAndLink('eph', ephKey);
  const { n: keeper } = await joinAndLink('keeper');
  const listed = await nodesList();
  assert.equal(listed.find((x) => x.name === 'eph')?.ephemeral, true, 'eph is registered as ephemeral');
  assert.equal(listed.find((x) => x.name === 'keeper')?.ephemeral, false);

  // The ordinary node goes first, so it has been offline at least as long as eph.
  await keeper.proc.stop('SIGTERM');
  const t0 = Date.now();
  await eph.proc.stop('SIGTERM');
  // Offline first, not gone.
  const offline = await waitFor('beta to see eph offline', async () => {
    const p = (await beta.status()).peers.find((x) => x.name === 'eph');
    assert.ok(p, 'eph is still in beta\'s netmap while its timeout runs');
    return p.online ? null : p;
  }, { timeoutMs: 5000 });
  assert.equal(offline.online, false);
  assert.ok(Date.now() - t0 < EPHEMERAL_TIMEOUT_MS, 'offline was observed before the timeout (the test can tell "offline" from "gone")');

  await waitFor('eph to vanish from nodes list', async () => !(await nodesList()).some((x) => x.name === 'eph'), { timeoutMs: 15_000, intervalMs: 100 });
  const gone = Date.now() - t0;
  assert.ok(gone >= EPHEMERAL_TIMEOUT_MS - 100, `eph was deleted after ${gone} ms offline, before the ${EPHEMERAL_TIMEOUT_MS} ms timeout`);
  t.diagnostic(`ephemeral node gone from nodes list ${gone} ms after its warrend stopped (timeout ${EPHEMERAL_TIMEOUT_MS} ms)`);
  await waitFor('beta\'s netmap to drop eph', async () => !(await beta.status()).peers.some((x) => x.name === 'eph'), { timeoutMs: 5000 });

  // The ordinary node has been offline longer and is still there, for the server and for beta.
  const k = (await nodesList()).find((x) => x.name === 'keeper');
  assert.ok(k && !k.online, 'keeper is still listed (offline)');
  const kp = (await beta.status()).peers.find((x) => x.name === 'keeper');
  assert.ok(kp && !kp.online, 'keeper is still in beta\'s netmap (offline)');
});

let delta: NodeHandle;

test('rotating the node key: peers learn the new key, tunnels come back, id and addresses stay', async () => {
  const j = await joinAndLink('delta');
  delta = j.n;
  const old = j.st.self!;
  const betaIp = ipv4Of(await beta.status());

  const r = await delta.cli(['debug', 'rotate-node-key']);
  assert.equal(r.code, 0, `rotate-node-key: ${r.stderr}`);
  const newKey = /new node key (\S+)/.exec(r.stdout)?.[1];
  assert.ok(newKey, `rotate-node-key prints the new key: ${r.stdout}`);
  assert.notEqual(newKey, old.nodeKey);

  const self = await waitFor('delta\'s own netmap to carry the new key', async () => {
    const s = await delta.status();
    return s.self?.nodeKey === newKey && s.controlConnected ? s.self : null;
  }, { timeoutMs: 15_000 });
  assert.equal(self.id, old.id, 'node id unchanged');
  assert.deepEqual(self.addresses, old.addresses, 'addresses unchanged');
  const seen = await waitFor('beta to learn delta\'s new key', async () => {
    const p = (await beta.status()).peers.find((x) => x.name === 'delta');
    return p?.nodeKey === newKey ? p : null;
  }, { timeoutMs: 10_000 });
  assert.equal(seen.id, old.id);
  assert.deepEqual(seen.addresses, old.addresses);
  const rec = (await nodesList()).find((x) => x.id === old.id);
  assert.equal(rec?.nodeKey, newKey, 'the server stores the new key');

  // Tunnels come back, both ways, on the new key; the old key is gone from beta's data plane.
  await pingEventually(delta, betaIp);
  await pingEventually(beta, ipv4Of(await delta.status()));
  const dev = (await beta.status()).device.peers;
  const cur = dev.find((p) => p.publicKey === newKey);
  assert.ok(cur && cur.latestHandshake > 0, 'beta has a session with delta\'s new key');
  assert.ok(!dev.some((p) => p.publicKey === old.nodeKey), 'beta no longer holds delta\'s old key');
});

test('the same reusable key on a new machine gets a new identity, never the first node\'s', async () => {
  assert.ok(delta, 'runs after the rotation test');
  const first = (await delta.status()).self!;
  // The same key, even under the same hostname, from a machine with its own machine key.
  const eps = await m.node('epsilon');
  const st = await upOk(eps, reusableKey, ['--hostname', 'delta']);
  const second = st.self!;
  assert.notEqual(second.id, first.id, 'a new node id');
  for (const a of second.addresses) assert.ok(!first.addresses.includes(a), `address ${a} is not the first node's`);
  const nodes = await nodesList();
  const d = nodes.find((x) => x.id === first.id);
  assert.ok(d, 'the first node still exists');
  assert.deepEqual([`${d.ipv4}/32`, `${d.ipv6}/128`], first.addresses, 'the first node keeps its addresses');
  assert.equal(d.nodeKey, first.nodeKey, 'the first node keeps its node key');
  assert.notEqual(nodes.find((x) => x.id === second.id)?.machineKey, d.machineKey);

  // Both identities are real and distinct on the tailnet.
  const deltaIp = ipv4Of(await delta.status());
  await pingEventually(eps, deltaIp);
  await pingEventually(delta, ipv4Of(st));
  const inBeta = await waitFor('beta to list both', async () => {
    const ps = (await beta.status()).peers;
    return ps.some((p) => p.id === first.id) && ps.some((p) => p.id === second.id) ? ps : null;
  });
  assert.notEqual(inBeta.find((p) => p.id === first.id)?.nodeKey, inBeta.find((p) => p.id === second.id)?.nodeKey);

  // Contrast: the first machine presenting the key again gets its own node back.
  const again = await upOk(delta, reusableKey);
  assert.equal(again.self!.id, first.id);
  assert.deepEqual(again.self!.addresses, first.addresses);
  await eps.proc.stop('SIGTERM');
});

test('wrong, revoked, expired and used-up auth keys: a clear reason, a non-zero exit, a server log line, nothing created', async () => {
  const zeta = await m.node('zeta');
  // Used up: a single-use key, used once by another node.
  const single = await c.authkey([]);
  const once = await m.node('once');
  await upOk(once, single);
  await once.proc.stop('SIGTERM');
  // Revoked, by the id from authkey list.
  const revoked = await c.authkey(['--reusable']);
  const revRec = await keyRecord(revoked);
  const rv = await c.admin(['authkey', 'revoke', String(revRec.id)]);
  assert.equal(rv.code, 0, `authkey revoke: ${rv.stderr}`);
  assert.equal((await keyRecord(revoked)).revoked, true);
  // Expired: one second of life, then wait until that moment is past.
  const expired = await c.authkey(['--reusable', '--expiry', '1s']);
  const expRec = await keyRecord(expired);
  assert.ok(expRec.expiresAt !== null);
  await waitFor('the 1 s auth key to be past its expiry', () => Date.now() > expRec.expiresAt! + 50, { timeoutMs: 5000 });
  // Wrong: a real key with its secret changed.
  const good = await c.authkey(['--reusable']);
  const wrong = good.slice(0, -4) + (good.endsWith('0000') ? '1111' : '0000');

  const cases: Array<{ what: string; key: string; reason: RegExp; log: string }> = [
    { what: 'wrong', key: wrong, reason: /auth key not recognised/, log: 'refused: auth key not recognised' },
    { what: 'revoked', key: revoked, reason: /auth key has been revoked/, log: 'refused: auth key has been revoked' },
    { what: 'expired', key: expired, reason: /auth key has expired/, log: 'refused: auth key has expired' },
    { what: 'used-up', key: single, reason: /single-use and has already been used/, log: 'refused: auth key was single-use and has already been used' },
  ];
  const before = await nodesList();
  for (const k of cases) {
    const logBefore = c.proc.output().split(k.log).length;
    const r = await zeta.up(k.key);
    assert.notEqual(r.code, 0, `${k.what} key: warren up must fail (stdout ${r.stdout})`);
    assert.match(r.stderr, k.reason, `${k.what} key: stderr names the reason`);
    assert.doesNotMatch(r.stdout, /Connected/);
    await waitFor(`the server to log the ${k.what} key's refusal`, () => c.proc.output().split(k.log).length > logBefore, { timeoutMs: 5000 });
    const after = await nodesList();
    assert.deepEqual(after.map((x) => x.id), before.map((x) => x.id), `${k.what} key: no node was created`);
    const zs = await zeta.status();
    assert.equal(zs.backendState, 'NeedsLogin', `${k.what} key: zeta is still not logged in`);
    assert.equal(zs.self, null);
  }
  // The refused attempts did not count as uses.
  assert.equal((await keyRecord(revoked)).usedCount, 0);
  assert.equal((await keyRecord(expired)).usedCount, 0);
  assert.equal((await keyRecord(single)).usedCount, 1);
});

test('a control server with a certificate other than the pinned one is refused, naming both fingerprints', async (t) => {
  const fpA = c.fingerprint.replace(/^sha256:/, '');
  const zeta = await m.node('pinz');
  const before = (await nodesList()).map((x) => x.id);

  // 1. A wrong pin at `warren up`.
  const random = randomBytes(32).toString('hex');
  const r1 = await zeta.cli(['up', '--login-server', c.url, '--auth-key', reusableKey, '--hostname', 'pinz', '--login-server-fingerprint', `sha256:${random}`]);
  assert.notEqual(r1.code, 0, 'warren up with a wrong pin fails');
  assert.ok(r1.stderr.includes(random), `the error names the pinned fingerprint: ${r1.stderr}`);
  assert.ok(r1.stderr.includes(fpA), `the error names the server's fingerprint: ${r1.stderr}`);
  assert.match(r1.stderr, /refusing to connect/);
  assert.deepEqual((await nodesList()).map((x) => x.id), before, 'nothing was registered');
  assert.equal((await zeta.status()).backendState, 'NeedsLogin');

  // 2. The server comes back with a new self-signed certificate; beta is pinned to the old one.
  assert.equal((await beta.status()).controlConnected, true);
  rmSync(join(c.dir, 'tls-cert.pem'));
  rmSync(join(c.dir, 'tls-key.pem'));
  await c.restart();
  const fpB = (await lab.sh(c.ns, ['node', WARREN_CONTROL, 'fingerprint', '--state-dir', c.dir])).stdout.trim().replace(/^sha256:/, '');
  assert.match(fpB, /^[0-9a-f]{64}$/, 'the new certificate has a fingerprint');
  assert.notEqual(fpB, fpA, 'the restarted server has a new certificate');

  const warned = await waitFor('beta to report the pin mismatch', async () => {
    const s = await beta.status();
    const h = s.health.find((x) => x.text.includes(fpA) && x.text.includes(fpB));
    return h && !s.controlConnected ? { s, h } : null;
  }, { timeoutMs: 20_000, intervalMs: 100 });
  assert.match(warned.h.text, /pinned/);
  assert.equal(warned.h.code, 'control_pin_mismatch');
  assert.equal(warned.h.severity, 'error');
  t.diagnostic(`beta's health: ${warned.h.code} (${warned.h.severity}): ${warned.h.text}`);
  // It keeps refusing: several attempts, never a connection.
  const attempts = (): number => beta.proc.output().split(`presented a certificate with SHA-256 ${fpB}`).length - 1;
  const seenAttempts = attempts();
  await waitFor('beta to retry and refuse again', () => attempts() >= seenAttempts + 2, { timeoutMs: 15_000 });
  const st = await beta.status();
  assert.equal(st.controlConnected, false, 'beta never connects to the unpinned server');
  assert.ok(st.health.some((x) => x.text.includes(fpB)));
  const rec = (await nodesList()).find((x) => x.name === 'beta');
  assert.equal(rec?.online, false, 'the server never saw beta come back');

  // 3. A new node given the old pin (another instance's certificate) is refused too.
  const r3 = await zeta.cli(['up', '--login-server', c.url, '--auth-key', reusableKey, '--hostname', 'pinz', '--login-server-fingerprint', `sha256:${fpA}`]);
  assert.notEqual(r3.code, 0);
  assert.ok(r3.stderr.includes(fpA) && r3.stderr.includes(fpB), `the error names both fingerprints: ${r3.stderr}`);
  assert.deepEqual((await nodesList()).map((x) => x.id), before, 'still nothing registered');
});
