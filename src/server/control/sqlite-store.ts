/**
 * The default Store: one SQLite file via better-sqlite3. WAL with
 * synchronous=FULL, so a committed registration (a granted address) survives
 * a power cut. The schema evolves through numbered migrations recorded in the
 * `meta` table; a database newer than this code is refused, never touched.
 *
 * better-sqlite3 is synchronous: each method runs to completion (every
 * multi-step operation in one transaction) and returns a settled promise.
 */
import Database from 'better-sqlite3';
import { closeSync, existsSync, fchmodSync, mkdirSync, openSync, constants as fsc } from 'node:fs';
import { dirname } from 'node:path';
import {
  DEFAULT_TAILNET,
  DEFAULT_USER,
  HOST_SPACE,
  StoreError,
  authKeyPrefix,
  authKeyRefusal,
  generateAuthKeySecret,
  generateUlaPrefix,
  hashSecret,
  hostToIPv4,
  hostToIPv6,
  isAllocatableHost,
  isValidNodeName,
  isValidTailnetName,
  isValidUserName,
  nameCandidate,
  nameFromHostname,
  nextAllocatableHost,
  normalizeTags,
  parseAuthKeyId,
  secretMatches,
} from './store.js';
import type {
  AuthKeyErrorCode,
  AuthKeyRecord,
  ChangeRecord,
  CreateAuthKeyOptions,
  NodeRecord,
  RegisterErrorCode,
  RegisterNodeOptions,
  Refusal,
  RenameErrorCode,
  Store,
  TailnetRecord,
  UpdateNodeKeyErrorCode,
} from './store.js';

/** Migration i (0-based) brings the schema to version i + 1. Append only; never edit a shipped one. */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE auth_keys (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    secret_hash BLOB    NOT NULL,
    prefix      TEXT    NOT NULL,
    reusable    INTEGER NOT NULL CHECK (reusable IN (0, 1)),
    ephemeral   INTEGER NOT NULL CHECK (ephemeral IN (0, 1)),
    tags        TEXT    NOT NULL DEFAULT '[]',
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    used_count  INTEGER NOT NULL DEFAULT 0,
    revoked     INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1))
  ) STRICT;
  CREATE TABLE nodes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    machine_key TEXT    NOT NULL UNIQUE,
    node_key    TEXT    NOT NULL UNIQUE,
    disco_key   TEXT    NOT NULL,
    name        TEXT    NOT NULL UNIQUE,
    hostname    TEXT    NOT NULL,
    addr_host   INTEGER NOT NULL UNIQUE,
    ipv4        TEXT    NOT NULL UNIQUE,
    ipv6        TEXT    NOT NULL UNIQUE,
    tags        TEXT    NOT NULL DEFAULT '[]',
    ephemeral   INTEGER NOT NULL CHECK (ephemeral IN (0, 1)),
    created_at  INTEGER NOT NULL,
    last_seen   INTEGER,
    online      INTEGER NOT NULL DEFAULT 0 CHECK (online IN (0, 1)),
    key_expiry  INTEGER,
    endpoints   TEXT    NOT NULL DEFAULT '[]',
    hostinfo    TEXT    NOT NULL DEFAULT '{}',
    auth_key_id INTEGER REFERENCES auth_keys(id) ON DELETE SET NULL
  ) STRICT;
  CREATE TABLE changes (
    version    INTEGER PRIMARY KEY,
    change     TEXT    NOT NULL,
    created_at INTEGER NOT NULL
  ) STRICT;
  `,
  // 2: tailnets and users. Existing data moves into the tailnet "default" (which
  // takes over the server-wide ULA prefix from meta) and its user "admin".
  // IPv4 addresses and node names stay unique across the whole server.
  `
  CREATE TABLE tailnets (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL UNIQUE,
    ipv6_prefix TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
  ) STRICT;
  CREATE TABLE users (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    tailnet_id INTEGER NOT NULL REFERENCES tailnets(id),
    name       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (tailnet_id, name)
  ) STRICT;
  INSERT INTO tailnets (name, ipv6_prefix, created_at)
    SELECT 'default', value, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) FROM meta WHERE key = 'ula_prefix';
  INSERT INTO users (tailnet_id, name, created_at) SELECT id, 'admin', created_at FROM tailnets WHERE name = 'default';
  ALTER TABLE auth_keys ADD COLUMN tailnet_id INTEGER REFERENCES tailnets(id);
  ALTER TABLE auth_keys ADD COLUMN user_id INTEGER REFERENCES users(id);
  ALTER TABLE nodes ADD COLUMN tailnet_id INTEGER REFERENCES tailnets(id);
  ALTER TABLE nodes ADD COLUMN user_id INTEGER REFERENCES users(id);
  UPDATE auth_keys SET tailnet_id = (SELECT id FROM tailnets WHERE name = 'default'),
    user_id = (SELECT u.id FROM users u JOIN tailnets t ON t.id = u.tailnet_id WHERE t.name = 'default' AND u.name = 'admin');
  UPDATE nodes SET tailnet_id = (SELECT id FROM tailnets WHERE name = 'default'),
    user_id = (SELECT u.id FROM users u JOIN tailnets t ON t.id = u.tailnet_id WHERE t.name = 'default' AND u.name = 'admin');
  CREATE INDEX nodes_tailnet ON nodes (tailnet_id);
  `,
];
export const SCHEMA_VERSION = MIGRATIONS.length;

export interface SqliteStoreOptions {
  /** The clock for timestamps the caller does not pass (auth key and change creation). */
  now?: () => number;
  /** How long to wait for another process's write lock (ms). */
  busyTimeoutMs?: number;
}

interface AuthKeyRow {
  id: number;
  secret_hash: Buffer;
  prefix: string;
  reusable: number;
  ephemeral: number;
  tags: string;
  created_at: number;
  expires_at: number | null;
  used_count: number;
  revoked: number;
  tailnet_id: number | null;
  user_id: number | null;
  /** Joined names. */
  tailnet: string | null;
  user: string | null;
}

interface NodeRow {
  id: number;
  machine_key: string;
  node_key: string;
  disco_key: string;
  name: string;
  hostname: string;
  addr_host: number;
  ipv4: string;
  ipv6: string;
  tags: string;
  ephemeral: number;
  created_at: number;
  last_seen: number | null;
  online: number;
  key_expiry: number | null;
  endpoints: string;
  hostinfo: string;
  auth_key_id: number | null;
  tailnet_id: number | null;
  user_id: number | null;
  /** Joined names. */
  tailnet: string | null;
  user: string | null;
}

/** Rows with their tailnet and user names joined in (a row without one belongs to "default"/"admin"). */
const KEY_SELECT = `SELECT k.*, t.name AS tailnet, u.name AS user FROM auth_keys k
  LEFT JOIN tailnets t ON t.id = k.tailnet_id LEFT JOIN users u ON u.id = k.user_id`;
const NODE_SELECT = `SELECT n.*, t.name AS tailnet, u.name AS user FROM nodes n
  LEFT JOIN tailnets t ON t.id = n.tailnet_id LEFT JOIN users u ON u.id = n.user_id`;

function toAuthKey(r: AuthKeyRow): AuthKeyRecord {
  return {
    id: r.id,
    prefix: r.prefix,
    reusable: r.reusable === 1,
    ephemeral: r.ephemeral === 1,
    tags: JSON.parse(r.tags) as string[],
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    usedCount: r.used_count,
    revoked: r.revoked === 1,
    tailnet: r.tailnet ?? DEFAULT_TAILNET,
    user: r.user ?? DEFAULT_USER,
  };
}

function toNode(r: NodeRow): NodeRecord {
  return {
    id: r.id,
    machineKey: r.machine_key,
    nodeKey: r.node_key,
    discoKey: r.disco_key,
    name: r.name,
    hostname: r.hostname,
    ipv4: r.ipv4,
    ipv6: r.ipv6,
    tags: JSON.parse(r.tags) as string[],
    ephemeral: r.ephemeral === 1,
    createdAt: r.created_at,
    lastSeen: r.last_seen,
    online: r.online === 1,
    keyExpiry: r.key_expiry,
    endpoints: JSON.parse(r.endpoints) as string[],
    hostinfo: JSON.parse(r.hostinfo) as Record<string, unknown>,
    authKeyId: r.auth_key_id,
    tailnet: r.tailnet ?? DEFAULT_TAILNET,
    user: r.user ?? DEFAULT_USER,
  };
}

function sqliteCode(err: unknown): string | undefined {
  return err instanceof Database.SqliteError ? err.code : undefined;
}

/** Creates the file with mode 0600 (its directory 0700) before SQLite sees it; tightens an existing file. */
function prepareFile(path: string): void {
  const dir = dirname(path);
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  const fd = openSync(path, fsc.O_RDWR | fsc.O_CREAT, 0o600);
  try {
    fchmodSync(fd, 0o600);
  } finally {
    closeSync(fd);
  }
}

/** Reads the schema version, applies pending migrations, each in its own transaction. */
function migrate(db: Database.Database, path: string): void {
  const tables = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`).pluck().all() as string[];
  if (tables.length > 0 && !tables.includes('meta')) {
    throw new StoreError('not_warren_db', `${path} is an SQLite database but not a warren-control one (it has no meta table); refusing to modify it`);
  }
  db.exec(`CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT`);
  const readVersion = (): number => {
    const v = db.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).pluck().get() as string | undefined;
    const n = v === undefined ? 0 : Number(v);
    if (!Number.isInteger(n) || n < 0) throw new StoreError('corrupt', `${path}: schema_version ${JSON.stringify(v)} is not a version number`);
    return n;
  };
  const tooNew = (v: number): StoreError =>
    new StoreError(
      'schema_too_new',
      `${path} has schema version ${v}, but this warren-control only knows versions up to ${SCHEMA_VERSION}; ` +
        'it was written by a newer release — upgrade warren-control (the database was not modified)',
    );
  const setVersion = db.prepare(`INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`);
  for (;;) {
    const v = readVersion();
    if (v > SCHEMA_VERSION) throw tooNew(v);
    if (v === SCHEMA_VERSION) return;
    db.transaction(() => {
      // Re-read under the write lock: another process may have migrated meanwhile.
      const now = readVersion();
      if (now !== v) return;
      try {
        db.exec(MIGRATIONS[v]!);
      } catch (err) {
        throw new StoreError('migration_failed', `${path}: migration to schema version ${v + 1} failed: ${(err as Error).message}`, { cause: err });
      }
      setVersion.run(String(v + 1));
    }).immediate();
  }
}

export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly now: () => number;
  private closed = false;
  private readonly s;

  private constructor(db: Database.Database, opts: SqliteStoreOptions) {
    this.db = db;
    this.now = opts.now ?? Date.now;
    this.initMeta();
    this.s = this.prepareStatements();
  }

  /**
   * Opens (creating if needed) the database at `path`: file mode 0600, WAL,
   * synchronous=FULL, foreign keys on, migrations applied. Throws StoreError
   * with code `corrupt`, `not_warren_db`, `schema_too_new`, `migration_failed`
   * or `open_failed`.
   */
  static open(path: string, opts: SqliteStoreOptions = {}): SqliteStore {
    let db: Database.Database;
    try {
      if (path !== ':memory:') prepareFile(path);
      db = new Database(path);
    } catch (err) {
      throw new StoreError('open_failed', `cannot open control database ${path}: ${(err as Error).message}`, { cause: err });
    }
    try {
      db.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs ?? 5000))}`);
      const mode = db.pragma('journal_mode = WAL', { simple: true }) as string;
      if (path !== ':memory:' && mode.toLowerCase() !== 'wal') {
        throw new StoreError('open_failed', `${path}: could not switch to WAL journal mode (got ${mode})`);
      }
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      migrate(db, path);
      return new SqliteStore(db, opts);
    } catch (err) {
      db.close();
      if (err instanceof StoreError) throw err;
      const code = sqliteCode(err);
      if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT' || code?.startsWith('SQLITE_CORRUPT_')) {
        throw new StoreError('corrupt', `${path} is not a valid SQLite database or is corrupt (${code}); refusing to start — restore it from a backup or move it aside`, { cause: err });
      }
      throw new StoreError('open_failed', `cannot open control database ${path}: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * Per-database values created once: the address cursor, the change version,
   * and the tailnet "default" with its user "admin" (its ULA prefix is kept in
   * meta too, where databases before tailnets had their only one).
   */
  private initMeta(): void {
    const get = this.db.prepare(`SELECT value FROM meta WHERE key = ?`).pluck();
    const put = this.db.prepare(`INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)`);
    this.db.transaction(() => {
      put.run('ula_prefix', generateUlaPrefix());
      put.run('ipv4_cursor', '0');
      put.run('change_version', '0');
      const now = this.now();
      this.db.prepare(`INSERT OR IGNORE INTO tailnets (name, ipv6_prefix, created_at) VALUES (?, ?, ?)`).run(DEFAULT_TAILNET, get.get('ula_prefix'), now);
      this.db
        .prepare(`INSERT OR IGNORE INTO users (tailnet_id, name, created_at) SELECT id, ?, ? FROM tailnets WHERE name = ?`)
        .run(DEFAULT_USER, now, DEFAULT_TAILNET);
      // Rows without a tailnet (none unless a pre-tailnet database had no prefix yet) belong to "default"/"admin".
      for (const table of ['auth_keys', 'nodes']) {
        this.db.prepare(
          `UPDATE ${table} SET tailnet_id = (SELECT id FROM tailnets WHERE name = @t),
             user_id = (SELECT u.id FROM users u JOIN tailnets t ON t.id = u.tailnet_id WHERE t.name = @t AND u.name = @u)
           WHERE tailnet_id IS NULL`,
        ).run({ t: DEFAULT_TAILNET, u: DEFAULT_USER });
      }
    }).immediate();
  }

  private prepareStatements() {
    const db = this.db;
    return {
      metaGet: db.prepare(`SELECT value FROM meta WHERE key = ?`).pluck(),
      metaSet: db.prepare(`UPDATE meta SET value = ? WHERE key = ?`),
      keyInsert: db.prepare(
        `INSERT INTO auth_keys (secret_hash, prefix, reusable, ephemeral, tags, created_at, expires_at, tailnet_id, user_id)
         VALUES (x'', '', ?, ?, ?, ?, ?, ?, ?)`,
      ),
      keySetSecret: db.prepare(`UPDATE auth_keys SET secret_hash = ?, prefix = ? WHERE id = ?`),
      keyGet: db.prepare(`${KEY_SELECT} WHERE k.id = ?`),
      keyList: db.prepare(`${KEY_SELECT} ORDER BY k.id`),
      keyRevoke: db.prepare(`UPDATE auth_keys SET revoked = 1 WHERE id = ?`),
      keyUse: db.prepare(`UPDATE auth_keys SET used_count = used_count + 1 WHERE id = ?`),
      nodeGet: db.prepare(`${NODE_SELECT} WHERE n.id = ?`),
      nodeByMachine: db.prepare(`${NODE_SELECT} WHERE n.machine_key = ?`),
      nodeByNodeKey: db.prepare(`${NODE_SELECT} WHERE n.node_key = ?`),
      nodeList: db.prepare(`${NODE_SELECT} ORDER BY n.id`),
      nodeListIn: db.prepare(`${NODE_SELECT} WHERE t.name = ? ORDER BY n.id`),
      tailnetId: db.prepare(`SELECT id FROM tailnets WHERE name = ?`).pluck(),
      tailnetPrefix: db.prepare(`SELECT ipv6_prefix FROM tailnets WHERE name = ?`).pluck(),
      tailnetPrefixById: db.prepare(`SELECT ipv6_prefix FROM tailnets WHERE id = ?`).pluck(),
      tailnetPrefixTaken: db.prepare(`SELECT id FROM tailnets WHERE ipv6_prefix = ?`).pluck(),
      tailnetInsert: db.prepare(`INSERT INTO tailnets (name, ipv6_prefix, created_at) VALUES (?, ?, ?)`),
      tailnetList: db.prepare(
        `SELECT t.id, t.name, t.ipv6_prefix, t.created_at, (SELECT COUNT(*) FROM nodes n WHERE n.tailnet_id = t.id) AS nodes FROM tailnets t ORDER BY t.id`,
      ),
      userId: db.prepare(`SELECT id FROM users WHERE tailnet_id = ? AND name = ?`).pluck(),
      userInsert: db.prepare(`INSERT INTO users (tailnet_id, name, created_at) VALUES (?, ?, ?)`),
      nodeNameTaken: db.prepare(`SELECT id FROM nodes WHERE name = ?`).pluck(),
      nodeHostsFrom: db.prepare(`SELECT addr_host FROM nodes WHERE addr_host >= ? ORDER BY addr_host`).pluck(),
      nodeInsert: db.prepare(
        `INSERT INTO nodes (machine_key, node_key, disco_key, name, hostname, addr_host, ipv4, ipv6, tags, ephemeral, created_at, key_expiry, auth_key_id,
           tailnet_id, user_id)
         VALUES (@machineKey, @nodeKey, @discoKey, @name, @hostname, @host, @ipv4, @ipv6, @tags, @ephemeral, @createdAt, @keyExpiry, @authKeyId,
           @tailnetId, @userId)`,
      ),
      nodeReauth: db.prepare(
        `UPDATE nodes SET node_key = @nodeKey, disco_key = @discoKey, hostname = @hostname, tags = @tags, ephemeral = @ephemeral,
           key_expiry = @keyExpiry, auth_key_id = @authKeyId, user_id = @userId WHERE id = @id`,
      ),
      nodeSetKey: db.prepare(`UPDATE nodes SET node_key = ?, disco_key = ?, key_expiry = ? WHERE id = ?`),
      nodeSetEndpoints: db.prepare(`UPDATE nodes SET endpoints = ? WHERE id = ?`),
      nodeSetHostinfo: db.prepare(`UPDATE nodes SET hostinfo = ? WHERE id = ?`),
      nodeSetOnline: db.prepare(`UPDATE nodes SET online = ?, last_seen = ? WHERE id = ?`),
      nodeAllOffline: db.prepare(`UPDATE nodes SET online = 0, last_seen = ? WHERE online = 1`),
      nodeRename: db.prepare(`UPDATE nodes SET name = ? WHERE id = ?`),
      nodeExpire: db.prepare(`UPDATE nodes SET key_expiry = ? WHERE id = ?`),
      nodeDelete: db.prepare(`DELETE FROM nodes WHERE id = ?`),
      changeInsert: db.prepare(`INSERT INTO changes (version, change, created_at) VALUES (?, ?, ?)`),
      changesAfter: db.prepare(`SELECT version, change, created_at FROM changes WHERE version > ? ORDER BY version`),
      changeOldest: db.prepare(`SELECT MIN(version) FROM changes`).pluck(),
      changesTrim: db.prepare(`DELETE FROM changes WHERE version <= ?`),
    };
  }

  private live(): void {
    if (this.closed) throw new StoreError('closed', 'the control store is closed');
  }

  private metaNumber(key: string): number {
    return Number(this.s.metaGet.get(key) as string);
  }

  private nodeById(id: number): NodeRecord | null {
    const r = this.s.nodeGet.get(id) as NodeRow | undefined;
    return r ? toNode(r) : null;
  }

  // ------------------------------------------------------------ auth keys

  async createAuthKey(opts: CreateAuthKeyOptions): Promise<{ record: AuthKeyRecord; key: string }> {
    this.live();
    const tags = normalizeTags(opts.tags);
    const expiresAt = opts.expiresAt ?? null;
    if (expiresAt !== null && !Number.isSafeInteger(expiresAt)) throw new StoreError('invalid_argument', 'expiresAt must be an integer (ms)');
    const createdAt = opts.now ?? this.now();
    const tailnet = opts.tailnet ?? DEFAULT_TAILNET;
    const user = opts.user ?? DEFAULT_USER;
    if (!isValidTailnetName(tailnet)) throw new StoreError('invalid_argument', `invalid tailnet name ${JSON.stringify(tailnet)}: want one lowercase DNS label`);
    if (!isValidUserName(user)) throw new StoreError('invalid_argument', `invalid user name ${JSON.stringify(user)}: want 1-64 letters, digits and ._@+-`);
    return this.db.transaction(() => {
      const tailnetId = this.ensureTailnet(tailnet, createdAt);
      const userId = this.ensureUser(tailnetId, user, createdAt);
      const id = Number(
        this.s.keyInsert.run(opts.reusable ? 1 : 0, opts.ephemeral ? 1 : 0, JSON.stringify(tags), createdAt, expiresAt, tailnetId, userId).lastInsertRowid,
      );
      const key = generateAuthKeySecret(id);
      this.s.keySetSecret.run(hashSecret(key), authKeyPrefix(key), id);
      return { record: toAuthKey(this.s.keyGet.get(id) as AuthKeyRow), key };
    }).immediate();
  }

  /** The id of tailnet `name`, created (with a fresh ULA /48) if it does not exist. Call inside a transaction. */
  private ensureTailnet(name: string, now: number): number {
    const id = this.s.tailnetId.get(name) as number | undefined;
    if (id !== undefined) return id;
    let prefix = generateUlaPrefix();
    while (this.s.tailnetPrefixTaken.get(prefix) !== undefined) prefix = generateUlaPrefix();
    return Number(this.s.tailnetInsert.run(name, prefix, now).lastInsertRowid);
  }

  /** The id of user `name` in a tailnet, created if it does not exist. Call inside a transaction. */
  private ensureUser(tailnetId: number, name: string, now: number): number {
    const id = this.s.userId.get(tailnetId, name) as number | undefined;
    return id ?? Number(this.s.userInsert.run(tailnetId, name, now).lastInsertRowid);
  }

  async listTailnets(): Promise<TailnetRecord[]> {
    this.live();
    return (this.s.tailnetList.all() as { id: number; name: string; ipv6_prefix: string; created_at: number; nodes: number }[]).map((r) => ({
      id: r.id, name: r.name, ipv6Prefix: r.ipv6_prefix, createdAt: r.created_at, nodes: r.nodes,
    }));
  }

  async listAuthKeys(): Promise<AuthKeyRecord[]> {
    this.live();
    return (this.s.keyList.all() as AuthKeyRow[]).map(toAuthKey);
  }

  async revokeAuthKey(id: number): Promise<boolean> {
    this.live();
    return this.s.keyRevoke.run(id).changes > 0;
  }

  async redeemAuthKey(secret: string, now: number): Promise<AuthKeyRecord | Refusal<AuthKeyErrorCode>> {
    this.live();
    return this.checkAuthKey(secret, now);
  }

  private checkAuthKey(secret: string, now: number): AuthKeyRecord | Refusal<AuthKeyErrorCode> {
    const id = typeof secret === 'string' ? parseAuthKeyId(secret) : null;
    const row = id === null ? undefined : (this.s.keyGet.get(id) as AuthKeyRow | undefined);
    if (!secretMatches(typeof secret === 'string' ? secret : '', row?.secret_hash ?? null) || !row) return { error: 'authkey_invalid' };
    const rec = toAuthKey(row);
    const refusal = authKeyRefusal(rec, now);
    return refusal ? { error: refusal } : rec;
  }

  // ---------------------------------------------------------------- nodes

  async getNode(id: number): Promise<NodeRecord | null> {
    this.live();
    return this.nodeById(id);
  }

  async getNodeByMachineKey(machineKey: string): Promise<NodeRecord | null> {
    this.live();
    const r = this.s.nodeByMachine.get(machineKey) as NodeRow | undefined;
    return r ? toNode(r) : null;
  }

  async getNodeByNodeKey(nodeKey: string): Promise<NodeRecord | null> {
    this.live();
    const r = this.s.nodeByNodeKey.get(nodeKey) as NodeRow | undefined;
    return r ? toNode(r) : null;
  }

  async listNodes(tailnet?: string): Promise<NodeRecord[]> {
    this.live();
    return ((tailnet === undefined ? this.s.nodeList.all() : this.s.nodeListIn.all(tailnet)) as NodeRow[]).map(toNode);
  }

  async registerNode(o: RegisterNodeOptions): Promise<{ node: NodeRecord; created: boolean } | Refusal<RegisterErrorCode>> {
    this.live();
    return this.db.transaction((): { node: NodeRecord; created: boolean } | Refusal<RegisterErrorCode> => {
      const key = this.checkAuthKey(o.authKeySecret, o.now);
      if ('error' in key) return key;
      const keyRow = this.s.keyGet.get(key.id) as AuthKeyRow;
      const tailnetId = keyRow.tailnet_id ?? (this.s.tailnetId.get(DEFAULT_TAILNET) as number);
      const userId = keyRow.user_id ?? this.ensureUser(tailnetId, DEFAULT_USER, o.now);
      const existing = this.s.nodeByMachine.get(o.machineKey) as NodeRow | undefined;
      if (existing && existing.tailnet_id !== tailnetId) return { error: 'machine_in_other_tailnet' };
      const owner = this.s.nodeByNodeKey.get(o.nodeKey) as NodeRow | undefined;
      if (owner && owner.id !== existing?.id) return { error: 'node_key_in_use' };
      const tagged = key.tags.length > 0;
      const fields = {
        nodeKey: o.nodeKey,
        discoKey: o.discoKey,
        hostname: o.hostname,
        tags: JSON.stringify(key.tags),
        ephemeral: key.ephemeral ? 1 : 0,
        keyExpiry: tagged ? null : o.now + o.defaultKeyExpiryMs,
        authKeyId: key.id,
        userId,
      };
      let id: number;
      if (existing) {
        this.s.nodeReauth.run({ ...fields, id: existing.id });
        id = existing.id;
      } else {
        const host = this.allocateHost();
        id = Number(
          this.s.nodeInsert.run({
            ...fields,
            machineKey: o.machineKey,
            name: this.uniqueName(nameFromHostname(o.hostname)),
            host,
            ipv4: hostToIPv4(host),
            ipv6: hostToIPv6(this.s.tailnetPrefixById.get(tailnetId) as string, host),
            createdAt: o.now,
            tailnetId,
          }).lastInsertRowid,
        );
      }
      this.s.keyUse.run(key.id);
      return { node: this.nodeById(id)!, created: !existing };
    }).immediate();
  }

  /** The next free host number after the cursor (wrapping, skipping used ones); advances the cursor. */
  private allocateHost(): number {
    const start = nextAllocatableHost(this.metaNumber('ipv4_cursor'));
    const host = this.firstFreeHost(start, HOST_SPACE) ?? this.firstFreeHost(1, start);
    if (host === null) throw new StoreError('address_space_full', 'no free address left in 100.64.0.0/10');
    this.s.metaSet.run(String(host), 'ipv4_cursor');
    return host;
  }

  /** The lowest allocatable, unused host number in [lo, hi), or null. */
  private firstFreeHost(lo: number, hi: number): number | null {
    const up = (x: number): number => {
      while (x < HOST_SPACE && !isAllocatableHost(x)) x++;
      return x;
    };
    let c = up(lo);
    for (const used of this.s.nodeHostsFrom.iterate(c) as IterableIterator<number>) {
      if (c >= hi || used > c) break;
      c = up(c + 1);
    }
    return c < hi ? c : null;
  }

  private uniqueName(base: string): string {
    for (let n = 1; ; n++) {
      const name = nameCandidate(base, n);
      if (this.s.nodeNameTaken.get(name) === undefined) return name;
    }
  }

  async updateNodeKey(id: number, nodeKey: string, discoKey: string, keyExpiry: number | null): Promise<NodeRecord | Refusal<UpdateNodeKeyErrorCode>> {
    this.live();
    return this.db.transaction((): NodeRecord | Refusal<UpdateNodeKeyErrorCode> => {
      if (!this.nodeById(id)) return { error: 'node_not_found' };
      const owner = this.s.nodeByNodeKey.get(nodeKey) as NodeRow | undefined;
      if (owner && owner.id !== id) return { error: 'node_key_in_use' };
      this.s.nodeSetKey.run(nodeKey, discoKey, keyExpiry, id);
      return this.nodeById(id)!;
    }).immediate();
  }

  async setEndpoints(id: number, endpoints: string[]): Promise<NodeRecord | null> {
    this.live();
    return this.s.nodeSetEndpoints.run(JSON.stringify(endpoints), id).changes > 0 ? this.nodeById(id) : null;
  }

  async setHostinfo(id: number, hostinfo: Record<string, unknown>): Promise<NodeRecord | null> {
    this.live();
    return this.s.nodeSetHostinfo.run(JSON.stringify(hostinfo), id).changes > 0 ? this.nodeById(id) : null;
  }

  async setOnline(id: number, online: boolean, now: number): Promise<NodeRecord | null> {
    this.live();
    return this.s.nodeSetOnline.run(online ? 1 : 0, now, id).changes > 0 ? this.nodeById(id) : null;
  }

  async markConnected(id: number, now: number, endpoints: string[], hostinfo: Record<string, unknown>): Promise<NodeRecord | null> {
    this.live();
    return this.db.transaction((): NodeRecord | null => {
      if (this.s.nodeSetOnline.run(1, now, id).changes === 0) return null;
      this.s.nodeSetEndpoints.run(JSON.stringify(endpoints), id);
      this.s.nodeSetHostinfo.run(JSON.stringify(hostinfo), id);
      return this.nodeById(id);
    }).immediate();
  }

  async setAllOffline(now: number): Promise<number> {
    this.live();
    return this.s.nodeAllOffline.run(now).changes;
  }

  async renameNode(id: number, name: string): Promise<NodeRecord | Refusal<RenameErrorCode>> {
    this.live();
    if (typeof name !== 'string' || !isValidNodeName(name)) return { error: 'name_invalid' };
    return this.db.transaction((): NodeRecord | Refusal<RenameErrorCode> => {
      if (!this.nodeById(id)) return { error: 'node_not_found' };
      const holder = this.s.nodeNameTaken.get(name) as number | undefined;
      if (holder !== undefined && holder !== id) return { error: 'name_in_use' };
      this.s.nodeRename.run(name, id);
      return this.nodeById(id)!;
    }).immediate();
  }

  async expireNode(id: number, now: number): Promise<NodeRecord | null> {
    this.live();
    return this.s.nodeExpire.run(now, id).changes > 0 ? this.nodeById(id) : null;
  }

  async deleteNode(id: number): Promise<boolean> {
    this.live();
    return this.s.nodeDelete.run(id).changes > 0;
  }

  async ipv6Prefix(tailnet: string = DEFAULT_TAILNET): Promise<string> {
    this.live();
    const prefix = this.s.tailnetPrefix.get(tailnet) as string | undefined;
    if (prefix === undefined) throw new StoreError('invalid_argument', `no tailnet ${JSON.stringify(tailnet)}`);
    return prefix;
  }

  // ----------------------------------------------------------- change log

  async appendChange(change: unknown): Promise<number> {
    this.live();
    const json = JSON.stringify(change) as string | undefined;
    if (json === undefined) throw new StoreError('invalid_argument', 'a change must be JSON-serialisable');
    const createdAt = this.now();
    return this.db.transaction(() => {
      const version = this.metaNumber('change_version') + 1;
      this.s.changeInsert.run(version, json, createdAt);
      this.s.metaSet.run(String(version), 'change_version');
      return version;
    }).immediate();
  }

  async changesSince(version: number): Promise<ChangeRecord[] | null> {
    this.live();
    return this.db.transaction((): ChangeRecord[] | null => {
      const current = this.metaNumber('change_version');
      if (!Number.isSafeInteger(version) || version < 0 || version > current) return null;
      if (version === current) return [];
      const oldest = this.s.changeOldest.get() as number | null;
      if (oldest === null || oldest > version + 1) return null;
      return (this.s.changesAfter.all(version) as { version: number; change: string; created_at: number }[]).map((r) => ({
        version: r.version,
        change: JSON.parse(r.change) as unknown,
        createdAt: r.created_at,
      }));
    })();
  }

  async currentVersion(): Promise<number> {
    this.live();
    return this.metaNumber('change_version');
  }

  async trimChanges(keep: number): Promise<void> {
    this.live();
    if (!Number.isSafeInteger(keep) || keep < 0) throw new StoreError('invalid_argument', 'keep must be a non-negative integer');
    this.s.changesTrim.run(this.metaNumber('change_version') - keep);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }
}
