/**
 * The coordination server's SQLite store, on real files in a temp directory:
 * auth keys, registration (one transaction), addresses, names, the change log,
 * durability across reopen, file mode, pragmas, migrations and bad files.
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
  SCHEMA_VERSION,
  SqliteStore,
  StoreError,
  formatIPv6,
  isRefusal,
  nameCandidate,
  nameFromHostname,
  nextAllocatableHost,
} from '../../src/server/control/index.js';
import type { NodeRecord, RegisterNodeOptions } from '../../src/server/control/index.js';

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
