/**
 * The coordination server's SQLite store, on real files in a temp directory:
 * auth keys, registration (one transaction), addresses, names, the change log,
 * durability across reopen, file mode, pragmas, migrations and bad files;
 * tailnets and users (and the migration of a pre-tailnet database into
 * "default"/"admin").
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import {
  HOST_SPACE,
  MAGIC_DNS_IPV4,
  MIGRATIONS,
  SCHEMA_VERSION,
  SqliteStore,
  StoreError,
  authKeyPrefix,
  formatIPv6,
  generateAuthKeySecret,
  hashSecret,
  isRefusal,
  nameCandidate,
  nameFromHostname,
  nextAllocatableHost,
} from '../../src/server/control/index.js';
import type { NodeRecord, RegisterNodeOptions } from '../../src/server/control/index.js';
import { changeFor, type LoggedChange } from '../../src/server/control/views.js';

const root = mkdtempSync(join(tmpdir(), 'warren-control-store-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
/** A database path in a fresh directory that does not exist yet. */
function dbPath(): string {
  return join(root, `t${n++}`, 'state', 'control.db');
}

const NOW = 1_700_000_000_000;
const DAY = 86_400_000;
const key = (): string => randomBytes(32).toString('base64');

function reg(secret: string, over: Partial<RegisterNodeOptions> = {}): RegisterNodeOptions {
  return {
    machineKey: key(),
    nodeKey: key(),
    discoKey: key(),
    hostname: 'pi-kitchen',
    authKeySecret: secret,
    now: NOW,
    defaultKeyExpiryMs: 180 * DAY,
    ...over,
  };
}

async function registered(s: SqliteStore, o: RegisterNodeOptions): Promise<NodeRecord> {
  const r = await s.registerNode(o);
  if (isRefusal(r)) assert.fail(`registration refused: ${r.error}`);
  return r.node;
}

async function withStore(fn: (s: SqliteStore, path: string) => Promise<void>): Promise<void> {
  const path = dbPath();
  const s = SqliteStore.open(path, { now: () => NOW });
  try {
    await fn(s, path);
  } finally {
    await s.close();
  }
}

/** 100.64.0.0/10 as a number range. */
function inCgnat(ip: string): boolean {
  const [a, b] = ip.split('.').map(Number) as [number, number];
  return a === 100 && b >= 64 && b <= 127;
}

test('an auth key secret is returned once; only its hash and a short prefix are stored', async () => {
  await withStore(async (s, path) => {
    const { record, key: secret } = await s.createAuthKey({ reusable: true, tags: ['tag:server'] });
    assert.match(secret, new RegExp(`^wkey-${record.id}-[0-9a-f]{32}$`));
    assert.equal(record.prefix, `${secret.slice(0, secret.indexOf('-', 5) + 5)}…`);
    assert.deepEqual(record.tags, ['tag:server']);
    assert.equal(record.createdAt, NOW);
    assert.deepEqual(await s.listAuthKeys(), [record]);
    await s.close();
    const raw = new Database(path, { readonly: true });
    const dump = JSON.stringify(raw.prepare('SELECT * FROM auth_keys').all());
    raw.close();
    assert.ok(!dump.includes(secret.slice(-28)), 'the secret itself is not stored');
  });
});

test('a single-use key is used up after one registration; nothing is created on failure', async () => {
  await withStore(async (s) => {
    const { record, key: secret } = await s.createAuthKey({});
    const a = await registered(s, reg(secret));
    assert.equal((await s.listAuthKeys())[0]!.usedCount, 1);
    assert.equal(a.authKeyId, record.id);
    assert.deepEqual(await s.redeemAuthKey(secret, NOW), { error: 'authkey_used' });
    const before = (await s.listNodes()).length;
    assert.deepEqual(await s.registerNode(reg(secret)), { error: 'authkey_used' });
    assert.equal((await s.listNodes()).length, before);
    assert.equal((await s.listAuthKeys())[0]!.usedCount, 1);
  });
});

test('a reusable key registers many nodes, each a new identity with different addresses', async () => {
  await withStore(async (s) => {
    const { key: secret } = await s.createAuthKey({ reusable: true });
    const a = await registered(s, reg(secret));
    const b = await registered(s, reg(secret));
    const c = await registered(s, reg(secret));
    assert.equal(new Set([a.id, b.id, c.id]).size, 3);
    assert.equal(new Set([a.ipv4, b.ipv4, c.ipv4]).size, 3);
    assert.equal(new Set([a.ipv6, b.ipv6, c.ipv6]).size, 3);
    assert.deepEqual([a.name, b.name, c.name], ['pi-kitchen', 'pi-kitchen-2', 'pi-kitchen-3']);
    assert.equal((await s.listAuthKeys())[0]!.usedCount, 3);
    const rec = await s.redeemAuthKey(secret, NOW);
    assert.ok(!isRefusal(rec) && rec.reusable);
  });
});

test('expired, revoked and wrong keys are refused with their code, and nothing is created', async () => {
  await withStore(async (s) => {
    const expired = await s.createAuthKey({ reusable: true, expiresAt: NOW + 1000 });
    const revoked = await s.createAuthKey({ reusable: true });
    assert.equal(await s.revokeAuthKey(revoked.record.id), true);
    assert.equal(await s.revokeAuthKey(9999), false);
    const good = await s.createAuthKey({ reusable: true });
    const wrongSecret = `${good.key.slice(0, -1)}${good.key.endsWith('0') ? '1' : '0'}`;
    const cases: [string, number, string][] = [
      [expired.key, NOW + 1000, 'authkey_expired'],
      [revoked.key, NOW, 'authkey_revoked'],
      [wrongSecret, NOW, 'authkey_invalid'],
      [`wkey-9999-${'0'.repeat(32)}`, NOW, 'authkey_invalid'],
      ['wkey-1-short', NOW, 'authkey_invalid'],
      ['', NOW, 'authkey_invalid'],
    ];
    for (const [secret, now, code] of cases) {
      assert.deepEqual(await s.redeemAuthKey(secret, now), { error: code }, secret);
      assert.deepEqual(await s.registerNode(reg(secret, { now })), { error: code }, secret);
    }
    assert.equal((await s.listNodes()).length, 0);
    assert.deepEqual((await s.listAuthKeys()).map((k) => k.usedCount), [0, 0, 0]);
    // Not yet expired one millisecond earlier.
    assert.ok(!isRefusal(await s.registerNode(reg(expired.key, { now: NOW + 999 }))));
  });
});

test('re-registering a machine key returns the same node, addresses and name, with new keys', async () => {
  await withStore(async (s) => {
    const { key: secret } = await s.createAuthKey({ reusable: true });
    const o = reg(secret);
    const first = await s.registerNode(o);
    assert.ok(!isRefusal(first) && first.created);
    await registered(s, reg(secret)); // someone else in between
    const again = await s.registerNode({ ...o, nodeKey: key(), discoKey: key(), hostname: 'renamed-host', now: NOW + DAY });
    assert.ok(!isRefusal(again));
    assert.equal(again.created, false);
    const [a, b] = [first.node, again.node];
    assert.deepEqual([b.id, b.ipv4, b.ipv6, b.name, b.machineKey], [a.id, a.ipv4, a.ipv6, a.name, a.machineKey]);
    assert.notEqual(b.nodeKey, a.nodeKey);
    assert.equal(b.hostname, 'renamed-host');
    assert.equal(b.keyExpiry, NOW + DAY + 180 * DAY);
    assert.equal((await s.getNodeByNodeKey(a.nodeKey)), null, 'the old node key no longer names the node');
    assert.equal((await s.getNodeByNodeKey(b.nodeKey))!.id, a.id);
    assert.equal((await s.listAuthKeys())[0]!.usedCount, 3, 're-registration consumes the key too');
    assert.equal((await s.listNodes()).length, 2);
  });
});

test('a node key owned by another node is refused (node_key_in_use), and so is rotating onto it', async () => {
  await withStore(async (s) => {
    const { key: secret } = await s.createAuthKey({ reusable: true });
    const a = await registered(s, reg(secret));
    assert.deepEqual(await s.registerNode(reg(secret, { nodeKey: a.nodeKey })), { error: 'node_key_in_use' });
    assert.equal((await s.listNodes()).length, 1);
    assert.equal((await s.listAuthKeys())[0]!.usedCount, 1);
    const b = await registered(s, reg(secret));
    assert.deepEqual(await s.updateNodeKey(b.id, a.nodeKey, key(), null), { error: 'node_key_in_use' });
    assert.deepEqual(await s.updateNodeKey(12345, key(), key(), null), { error: 'node_not_found' });
    const nk = key();
    const rotated = await s.updateNodeKey(b.id, nk, b.discoKey, NOW + 5);
    assert.ok(!isRefusal(rotated));
    assert.deepEqual([rotated.nodeKey, rotated.keyExpiry, rotated.ipv4], [nk, NOW + 5, b.ipv4]);
  });
});

test('200 registrations get unique addresses and names inside 100.64.0.0/10 and the ULA /48', async () => {
  await withStore(async (s) => {
    const { key: secret } = await s.createAuthKey({ reusable: true });
    const prefix = await s.ipv6Prefix();
    assert.match(prefix, /^fd[0-9a-f]{2}:[0-9a-f:]*::\/48$/);
    const p48 = prefix.slice(0, -'::/48'.length);
    const nodes = await Promise.all(Array.from({ length: 200 }, () => s.registerNode(reg(secret, { hostname: 'Sim Node' }))));
    const ok = nodes.map((r) => (isRefusal(r) ? assert.fail(r.error) : r.node));
    for (const field of ['id', 'ipv4', 'ipv6', 'name', 'machineKey'] as const) {
      assert.equal(new Set(ok.map((x) => x[field])).size, 200, field);
    }
    for (const x of ok) {
      assert.ok(inCgnat(x.ipv4), x.ipv4);
      assert.notEqual(x.ipv4, MAGIC_DNS_IPV4);
      assert.ok(!/\.(0|255)$/.test(x.ipv4), x.ipv4);
      assert.ok(x.ipv6.startsWith(`${p48}:`), `${x.ipv6} in ${prefix}`);
      assert.match(x.name, /^sim-node(-\d+)?$/);
    }
    assert.equal(ok[0]!.ipv4, '100.64.0.1');
    assert.equal(ok[0]!.ipv6, `${p48}::1`);
    assert.equal(ok[199]!.ipv4, '100.64.0.200');
    assert.equal((await s.listNodes()).length, 200);
  });
});

test('the allocator skips .0, .255 and 100.100.100.100, wraps around, and does not soon reuse freed addresses', async () => {
  await withStore(async (s, path) => {
    const { key: secret } = await s.createAuthKey({ reusable: true });
    const raw = new Database(path);
    const setCursor = (v: number): unknown => raw.prepare(`UPDATE meta SET value = ? WHERE key = 'ipv4_cursor'`).run(String(v));
    // Just below 100.100.100.100 (host 0x246464): .99 → .101.
    setCursor(0x246462);
    assert.equal((await registered(s, reg(secret))).ipv4, '100.100.100.99');
    assert.equal((await registered(s, reg(secret))).ipv4, '100.100.100.101');
    // End of a /24: .254 → next /24's .1.
    setCursor(0x0001fd);
    assert.equal((await registered(s, reg(secret))).ipv4, '100.64.1.254');
    assert.equal((await registered(s, reg(secret))).ipv4, '100.64.2.1');
    // Top of the /10 wraps to the bottom, skipping addresses in use.
    setCursor(0);
    const low = await registered(s, reg(secret));
    assert.equal(low.ipv4, '100.64.0.1');
    assert.equal((await registered(s, reg(secret))).ipv4, '100.64.0.2');
    setCursor(HOST_SPACE - 3);
    assert.equal((await registered(s, reg(secret))).ipv4, '100.127.255.254');
    setCursor(HOST_SPACE - 3);
    assert.equal((await registered(s, reg(secret))).ipv4, '100.64.0.3', 'wrapped past .254 (taken) and .1, .2 (taken)');
    // A deleted node's address is not handed out next.
    assert.equal(await s.deleteNode(low.id), true);
    const e = await registered(s, reg(secret));
    assert.equal(e.ipv4, '100.64.0.4');
    raw.close();
    assert.equal(nextAllocatableHost(HOST_SPACE - 2), 1);
  });
});

test('tagged keys give non-expiring tagged nodes; ephemeral keys give ephemeral nodes', async () => {
  await withStore(async (s) => {
    const tagged = await s.createAuthKey({ tags: ['tag:appliance', 'tag:appliance', 'tag:exit'], ephemeral: true });
    assert.deepEqual(tagged.record.tags, ['tag:appliance', 'tag:exit']);
    const t = await registered(s, reg(tagged.key));
    assert.equal(t.keyExpiry, null);
    assert.deepEqual(t.tags, ['tag:appliance', 'tag:exit']);
    assert.equal(t.ephemeral, true);
    const plain = await s.createAuthKey({});
    const p = await registered(s, reg(plain.key));
    assert.equal(p.keyExpiry, NOW + 180 * DAY);
    assert.deepEqual(p.tags, []);
    assert.equal(p.ephemeral, false);
    await assert.rejects(s.createAuthKey({ tags: ['appliance'] }), (e: unknown) => e instanceof StoreError && e.code === 'invalid_argument');
  });
});

test('names derive from hostnames; rename validates the label and uniqueness', async () => {
  assert.equal(nameFromHostname('Pi Kitchen.local'), 'pi-kitchen-local');
  assert.equal(nameFromHostname('--__--'), 'node');
  assert.equal(nameFromHostname('x'.repeat(100)).length, 63);
  assert.equal(nameCandidate('x'.repeat(63), 12), `${'x'.repeat(60)}-12`);
  await withStore(async (s) => {
    const { key: secret } = await s.createAuthKey({ reusable: true });
    const a = await registered(s, reg(secret, { hostname: 'a' }));
    const b = await registered(s, reg(secret, { hostname: 'b' }));
    for (const bad of ['', 'Upper', '-lead', 'trail-', 'dot.ted', 'x'.repeat(64), 'spa ce', 'ünï']) {
      assert.deepEqual(await s.renameNode(a.id, bad), { error: 'name_invalid' }, bad);
    }
    assert.deepEqual(await s.renameNode(a.id, 'b'), { error: 'name_in_use' });
    assert.deepEqual(await s.renameNode(999, 'zzz'), { error: 'node_not_found' });
    const r = await s.renameNode(a.id, 'kitchen-pi');
    assert.ok(!isRefusal(r) && r.name === 'kitchen-pi');
    assert.ok(!isRefusal(await s.renameNode(a.id, 'kitchen-pi')), 'renaming to its own name is fine');
    assert.equal((await s.getNode(b.id))!.name, 'b');
    // A new node asking for a taken name gets a suffix.
    assert.equal((await registered(s, reg(secret, { hostname: 'Kitchen-Pi' }))).name, 'kitchen-pi-2');
  });
});

test('endpoints, hostinfo, online, expire and delete', async () => {
  await withStore(async (s) => {
    const { key: secret } = await s.createAuthKey({ reusable: true });
    const a = await registered(s, reg(secret));
    assert.deepEqual((await s.setEndpoints(a.id, ['192.0.2.1:41641']))!.endpoints, ['192.0.2.1:41641']);
    assert.deepEqual((await s.setHostinfo(a.id, { os: 'linux', n: 1 }))!.hostinfo, { os: 'linux', n: 1 });
    const on = (await s.setOnline(a.id, true, NOW + 10))!;
    assert.deepEqual([on.online, on.lastSeen], [true, NOW + 10]);
    assert.equal(await s.setAllOffline(NOW + 20), 1);
    const off = (await s.getNode(a.id))!;
    assert.deepEqual([off.online, off.lastSeen], [false, NOW + 20]);
    assert.equal((await s.expireNode(a.id, NOW + 30))!.keyExpiry, NOW + 30);
    assert.equal(await s.setEndpoints(999, []), null);
    const conn = (await s.markConnected(a.id, NOW + 40, ['192.0.2.9:1'], { os: 'pi' }))!;
    assert.deepEqual([conn.online, conn.lastSeen, conn.endpoints, conn.hostinfo], [true, NOW + 40, ['192.0.2.9:1'], { os: 'pi' }]);
    assert.equal(await s.markConnected(999, NOW, [], {}), null);
    assert.equal(await s.deleteNode(a.id), true);
    assert.equal(await s.deleteNode(a.id), false);
    assert.equal(await s.getNode(a.id), null);
    assert.equal(await s.getNodeByMachineKey(a.machineKey), null);
    // The machine key may register again, as a brand-new node.
    const again = await registered(s, reg(secret, { machineKey: a.machineKey }));
    assert.notEqual(again.id, a.id);
  });
});

test('the change log: monotonic versions across reopen, slices, null once trimmed', async () => {
  const path = dbPath();
  let s = SqliteStore.open(path);
  assert.equal(await s.currentVersion(), 0);
  assert.deepEqual(await s.changesSince(0), []);
  for (let i = 1; i <= 5; i++) assert.equal(await s.appendChange({ op: 'remove', id: i }), i);
  await s.close();
  s = SqliteStore.open(path);
  assert.equal(await s.currentVersion(), 5);
  assert.equal(await s.appendChange({ op: 'upsert', node: { id: 6 } }), 6);
  const since3 = (await s.changesSince(3))!;
  assert.deepEqual(since3.map((c) => c.version), [4, 5, 6]);
  assert.deepEqual(since3[0]!.change, { op: 'remove', id: 4 });
  assert.equal(await s.changesSince(7), null, 'a version from the future gets a full map');
  assert.equal(await s.changesSince(-1), null);
  await s.trimChanges(2);
  assert.deepEqual((await s.changesSince(4))!.map((c) => c.version), [5, 6]);
  assert.equal(await s.changesSince(3), null);
  assert.deepEqual(await s.changesSince(6), []);
  await s.trimChanges(0);
  assert.equal(await s.changesSince(5), null);
  assert.deepEqual(await s.changesSince(6), []);
  await s.close();
  s = SqliteStore.open(path);
  assert.equal(await s.appendChange('x'), 7, 'versions are never reused, even after trimming everything');
  await assert.rejects(s.appendChange(undefined), (e: unknown) => e instanceof StoreError && e.code === 'invalid_argument');
  await s.close();
  await assert.rejects(s.currentVersion(), (e: unknown) => e instanceof StoreError && e.code === 'closed');
});

test('everything survives close and reopen', async () => {
  const path = dbPath();
  let s = SqliteStore.open(path, { now: () => NOW });
  const k = await s.createAuthKey({ reusable: true, tags: ['tag:a'], expiresAt: NOW + DAY });
  const a = await registered(s, reg(k.key));
  await s.setEndpoints(a.id, ['198.51.100.7:41641']);
  await s.revokeAuthKey((await s.createAuthKey({})).record.id);
  const prefix = await s.ipv6Prefix();
  const nodes = await s.listNodes();
  const keys = await s.listAuthKeys();
  await s.close();
  s = SqliteStore.open(path);
  assert.equal(await s.ipv6Prefix(), prefix);
  assert.deepEqual(await s.listNodes(), nodes);
  assert.deepEqual(await s.listAuthKeys(), keys);
  assert.ok(!isRefusal(await s.redeemAuthKey(k.key, NOW)));
  // The allocation cursor persisted too: the next node does not get a's address back.
  const b = await registered(s, reg(k.key));
  assert.equal(b.ipv4, '100.64.0.2');
  await s.close();
});

test('the database file is mode 0600 in a 0700 directory; WAL and synchronous=FULL', async () => {
  await withStore(async (s, path) => {
    await s.appendChange({});
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(statSync(join(path, '..')).mode & 0o777, 0o700);
    assert.equal(statSync(`${path}-wal`).mode & 0o777, 0o600);
    const raw = new Database(path);
    assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
    raw.close();
    // synchronous is per connection: look at the store's own.
    const db = (s as unknown as { db: Database.Database }).db;
    assert.equal(db.pragma('synchronous', { simple: true }), 2, 'FULL');
    assert.equal(db.pragma('foreign_keys', { simple: true }), 1);
  });
  // An existing file with a looser mode is tightened.
  const path = dbPath();
  await SqliteStore.open(path).close();
  chmodSync(path, 0o644);
  await SqliteStore.open(path).close();
  assert.equal(statSync(path).mode & 0o777, 0o600);
});

test('a database from a newer schema is refused clearly and left untouched', async () => {
  const path = dbPath();
  await SqliteStore.open(path).close();
  const raw = new Database(path);
  raw.prepare(`UPDATE meta SET value = ? WHERE key = 'schema_version'`).run(String(SCHEMA_VERSION + 1));
  raw.close();
  assert.throws(
    () => SqliteStore.open(path),
    (e: unknown) => e instanceof StoreError && e.code === 'schema_too_new' && e.message.includes(`schema version ${SCHEMA_VERSION + 1}`) && /upgrade/.test(e.message),
  );
  const check = new Database(path, { readonly: true });
  assert.equal(check.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).pluck().get(), String(SCHEMA_VERSION + 1));
  check.close();
});

test('random bytes or a foreign SQLite file fail with a clear error, not a crash', async () => {
  const path = dbPath();
  await SqliteStore.open(path).close(); // creates the directory
  rmSync(path);
  rmSync(`${path}-wal`, { force: true });
  rmSync(`${path}-shm`, { force: true });
  writeFileSync(path, randomBytes(8192));
  assert.throws(
    () => SqliteStore.open(path),
    (e: unknown) => e instanceof StoreError && e.code === 'corrupt' && e.message.includes(path) && /not a valid SQLite database or is corrupt/.test(e.message),
  );
  const other = join(root, `t${n++}-other.db`);
  const raw = new Database(other);
  raw.exec('CREATE TABLE stuff (x)');
  raw.close();
  assert.throws(() => SqliteStore.open(other), (e: unknown) => e instanceof StoreError && e.code === 'not_warren_db');
});

test('IPv6 text follows RFC 5952', () => {
  assert.equal(formatIPv6([0xfd12, 0x3456, 0x789a, 0, 0, 0, 0, 1]), 'fd12:3456:789a::1');
  assert.equal(formatIPv6([0xfd12, 0, 0, 0, 0, 0, 0x3f, 0]), 'fd12::3f:0');
  assert.equal(formatIPv6([0xfd12, 0, 0x1, 0, 0, 0, 0x24, 0x6464]), 'fd12:0:1::24:6464');
  assert.equal(formatIPv6([1, 0, 0, 2, 0, 0, 0, 3]), '1:0:0:2::3');
  assert.equal(formatIPv6([1, 2, 3, 4, 5, 6, 7, 8]), '1:2:3:4:5:6:7:8');
});

// --------------------------------------------------------------- tailnets

test('auth keys name a tailnet and user (created on first use); nodes join the key\'s tailnet with IPv6 from its own /48', async () => {
  await withStore(async (s) => {
    const dflt = await s.createAuthKey({ reusable: true });
    assert.deepEqual([dflt.record.tailnet, dflt.record.user], ['default', 'admin']);
    const alpha = await s.createAuthKey({ reusable: true, tailnet: 'alpha', user: 'alice@example.com' });
    const beta = await s.createAuthKey({ reusable: true, tailnet: 'beta', user: 'bob' });
    assert.deepEqual([alpha.record.tailnet, alpha.record.user, beta.record.tailnet, beta.record.user], ['alpha', 'alice@example.com', 'beta', 'bob']);
    assert.deepEqual((await s.listAuthKeys()).map((k) => `${k.tailnet}/${k.user}`), ['default/admin', 'alpha/alice@example.com', 'beta/bob']);
    for (const bad of [{ tailnet: 'Not A Label' }, { tailnet: '' }, { user: '' }, { user: 'no spaces' }]) {
      await assert.rejects(s.createAuthKey(bad), (e: unknown) => e instanceof StoreError && e.code === 'invalid_argument', JSON.stringify(bad));
    }
    const d = await registered(s, reg(dflt.key, { hostname: 'd' }));
    const a = await registered(s, reg(alpha.key, { hostname: 'a' }));
    const b = await registered(s, reg(beta.key, { hostname: 'b' }));
    assert.deepEqual([d.tailnet, d.user, a.tailnet, a.user, b.tailnet, b.user], ['default', 'admin', 'alpha', 'alice@example.com', 'beta', 'bob']);
    // IPv4 is unique across the whole server; IPv6 comes from each tailnet's prefix.
    assert.deepEqual([d.ipv4, a.ipv4, b.ipv4], ['100.64.0.1', '100.64.0.2', '100.64.0.3']);
    const prefixes = await Promise.all(['default', 'alpha', 'beta'].map((t) => s.ipv6Prefix(t)));
    assert.equal(new Set(prefixes).size, 3);
    assert.equal(await s.ipv6Prefix(), prefixes[0]);
    await assert.rejects(s.ipv6Prefix('nope'), (e: unknown) => e instanceof StoreError && e.code === 'invalid_argument');
    [d, a, b].forEach((n, i) => assert.equal(n.ipv6, `${prefixes[i]!.replace(/::\/48$/, '')}::${i + 1}`));
    assert.deepEqual((await s.listTailnets()).map((t) => [t.name, t.ipv6Prefix, t.nodes]), [
      ['default', prefixes[0], 1], ['alpha', prefixes[1], 1], ['beta', prefixes[2], 1],
    ]);
    assert.deepEqual((await s.listNodes('alpha')).map((n) => n.id), [a.id]);
    assert.deepEqual(await s.listNodes('nope'), []);
    assert.equal((await s.listNodes()).length, 3);
    // A second key for an existing tailnet and a new user reuses the tailnet.
    const alpha2 = await s.createAuthKey({ tailnet: 'alpha', user: 'carol' });
    const a2 = await registered(s, reg(alpha2.key, { hostname: 'a2' }));
    assert.equal(a2.tailnet, 'alpha');
    assert.equal(a2.user, 'carol');
    assert.equal(await s.ipv6Prefix('alpha'), prefixes[1]);
    assert.equal((await s.listTailnets()).length, 3);
  });
});

test('re-registering a machine with a key of another tailnet is refused (machine_in_other_tailnet); nothing moves or is consumed', async () => {
  await withStore(async (s) => {
    const alpha = await s.createAuthKey({ reusable: true, tailnet: 'alpha' });
    const beta = await s.createAuthKey({ tailnet: 'beta' });
    const o = reg(alpha.key);
    const a = await registered(s, o);
    assert.deepEqual(await s.registerNode({ ...o, authKeySecret: beta.key, nodeKey: key() }), { error: 'machine_in_other_tailnet' });
    assert.deepEqual(await s.getNode(a.id), a);
    assert.equal((await s.listAuthKeys()).find((k) => k.id === beta.record.id)!.usedCount, 0, 'the refused key was not consumed');
    // The same tailnet (another user) re-registers it in place: same id and addresses, the new user.
    const alice = await s.createAuthKey({ tailnet: 'alpha', user: 'alice' });
    const r = await s.registerNode({ ...o, authKeySecret: alice.key, nodeKey: key() });
    if (isRefusal(r)) assert.fail(r.error);
    assert.equal(r.created, false);
    assert.deepEqual([r.node.id, r.node.ipv4, r.node.ipv6, r.node.tailnet, r.node.user], [a.id, a.ipv4, a.ipv6, 'alpha', 'alice']);
  });
});

test('a fresh database\'s "default" tailnet uses the prefix kept in meta', async () => {
  await withStore(async (s, path) => {
    const raw = new Database(path, { readonly: true });
    const meta = raw.prepare(`SELECT value FROM meta WHERE key = 'ula_prefix'`).pluck().get();
    raw.close();
    assert.equal(await s.ipv6Prefix('default'), meta);
    assert.deepEqual((await s.listTailnets()).map((t) => t.name), ['default']);
  });
});

test('a schema-1 database (before tailnets) migrates into tailnet "default" and user "admin" with the same addresses', async () => {
  const path = dbPath();
  await SqliteStore.open(path).close(); // creates the directory and a current file; replace it with a v1 one
  for (const f of [path, `${path}-wal`, `${path}-shm`]) rmSync(f, { force: true });
  const PREFIX = 'fd12:3456:789a::/48';
  const raw = new Database(path);
  raw.exec(`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT`);
  for (const m of MIGRATIONS.slice(0, 1)) raw.exec(m);
  const putMeta = raw.prepare(`INSERT INTO meta (key, value) VALUES (?, ?)`);
  for (const [k, v] of [['schema_version', '1'], ['ula_prefix', PREFIX], ['ipv4_cursor', '2'], ['change_version', '1']]) putMeta.run(k, v);
  const secret = generateAuthKeySecret(1);
  raw.prepare(`INSERT INTO auth_keys (id, secret_hash, prefix, reusable, ephemeral, tags, created_at, used_count) VALUES (1, ?, ?, 1, 0, '[]', ?, 2)`)
    .run(hashSecret(secret), authKeyPrefix(secret), NOW);
  const machines = [key(), key()];
  const insertNode = raw.prepare(
    `INSERT INTO nodes (machine_key, node_key, disco_key, name, hostname, addr_host, ipv4, ipv6, ephemeral, created_at, key_expiry, auth_key_id)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, 1)`,
  );
  insertNode.run(machines[0], key(), key(), 'old-one', 'old-one', 1, '100.64.0.1', 'fd12:3456:789a::1', NOW, NOW + DAY);
  insertNode.run(machines[1], key(), key(), 'old-two', 'old-two', 2, '100.64.0.2', 'fd12:3456:789a::2', NOW, NOW + DAY);
  const oldChange = { op: 'upsert', node: { id: 2, name: 'old-two' } };
  raw.prepare(`INSERT INTO changes (version, change, created_at) VALUES (1, ?, ?)`).run(JSON.stringify(oldChange), NOW);
  raw.close();

  const s = SqliteStore.open(path, { now: () => NOW });
  try {
    const check = new Database(path, { readonly: true });
    assert.equal(check.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).pluck().get(), String(SCHEMA_VERSION));
    check.close();
    assert.deepEqual((await s.listTailnets()).map((t) => [t.name, t.ipv6Prefix, t.nodes]), [['default', PREFIX, 2]]);
    const nodes = await s.listNodes();
    assert.deepEqual(nodes.map((x) => [x.name, x.ipv4, x.ipv6, x.tailnet, x.user]), [
      ['old-one', '100.64.0.1', 'fd12:3456:789a::1', 'default', 'admin'],
      ['old-two', '100.64.0.2', 'fd12:3456:789a::2', 'default', 'admin'],
    ]);
    assert.deepEqual((await s.listNodes('default')).map((x) => x.id), nodes.map((x) => x.id));
    const [k] = await s.listAuthKeys();
    assert.deepEqual([k!.tailnet, k!.user, k!.usedCount], ['default', 'admin', 2]);
    // The old key still works: a re-registration keeps the addresses, a new node continues the cursor in the same prefix.
    const again = await registered(s, reg(secret, { machineKey: machines[0]! }));
    assert.deepEqual([again.id, again.ipv4, again.ipv6, again.tailnet], [nodes[0]!.id, '100.64.0.1', 'fd12:3456:789a::1', 'default']);
    const fresh = await registered(s, reg(secret, { hostname: 'new-one' }));
    assert.deepEqual([fresh.ipv4, fresh.ipv6, fresh.tailnet, fresh.user], ['100.64.0.3', 'fd12:3456:789a::3', 'default', 'admin']);
    // A key of a new tailnet cannot take over a migrated machine.
    const other = await s.createAuthKey({ tailnet: 'other' });
    assert.deepEqual(await s.registerNode(reg(other.key, { machineKey: machines[1]! })), { error: 'machine_in_other_tailnet' });
    // Old change-log entries (no tailnet) count as "default".
    const [logged] = (await s.changesSince(0))!;
    assert.deepEqual(logged!.change, oldChange);
    assert.notEqual(changeFor(logged!.change as LoggedChange, 1, undefined, 'default'), null);
    assert.equal(changeFor(logged!.change as LoggedChange, 1, undefined, 'other'), null);
  } finally {
    await s.close();
  }
  // And reopening a migrated database changes nothing.
  const s2 = SqliteStore.open(path);
  assert.deepEqual((await s2.listTailnets()).map((t) => [t.name, t.ipv6Prefix, t.nodes]), [['default', PREFIX, 3], ['other', await s2.ipv6Prefix('other'), 0]]);
  await s2.close();
});
