/**
 * The coordination server's storage contract: record types, the async `Store`
 * interface (SQLite today, PostgreSQL later), and the pure rules every
 * implementation shares — auth-key secrets, tailnet address math, node names.
 *
 * Expected refusals (a bad auth key, a name in use) are returned as
 * `{ error: code }` values so the HTTP layer can map them to 4xx answers;
 * `StoreError` is thrown only for faults (closed store, corrupt or too-new
 * database, exhausted address space, invalid arguments).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

// ---------------------------------------------------------------- records

export interface AuthKeyRecord {
  id: number;
  /** Safe to show in lists: `wkey-<id>-` and the first few characters, then `…`. */
  prefix: string;
  reusable: boolean;
  ephemeral: boolean;
  tags: string[];
  createdAt: number;
  expiresAt: number | null;
  usedCount: number;
  revoked: boolean;
  /** The tailnet its nodes join and the user they belong to (names). */
  tailnet: string;
  user: string;
}

export interface TailnetRecord {
  id: number;
  /** One lowercase DNS label; the tailnet of pre-tailnet databases is `default`. */
  name: string;
  /** The tailnet's own ULA /48; its nodes' IPv6 addresses come from it. */
  ipv6Prefix: string;
  createdAt: number;
  /** How many nodes it has. */
  nodes: number;
}

export interface NodeRecord {
  id: number;
  /** Base64 X25519 public keys. */
  machineKey: string;
  nodeKey: string;
  discoKey: string;
  /** Unique DNS-safe label. */
  name: string;
  hostname: string;
  /** Bare addresses, no prefix length: `100.64.0.1`, `fd12:3456:789a::1`. */
  ipv4: string;
  ipv6: string;
  tags: string[];
  ephemeral: boolean;
  createdAt: number;
  lastSeen: number | null;
  online: boolean;
  /** ms since the epoch; null = never expires (tagged nodes). */
  keyExpiry: number | null;
  endpoints: string[];
  hostinfo: Record<string, unknown>;
  authKeyId: number | null;
  /** The tailnet (name) the node is in: it sees and is seen by nodes of this tailnet only. */
  tailnet: string;
  /** The user (name) the node belongs to: the user of the auth key it registered with. */
  user: string;
}

export interface ChangeRecord {
  version: number;
  change: unknown;
  createdAt: number;
}

// ------------------------------------------------------------- arguments

export interface CreateAuthKeyOptions {
  reusable?: boolean;
  ephemeral?: boolean;
  /** `tag:name` each. */
  tags?: string[];
  /** Absolute expiry (ms since the epoch); null or absent = never. */
  expiresAt?: number | null;
  /** Creation time; the store's clock when absent. */
  now?: number;
  /** Tailnet name (a DNS label), created on first use; default `default`. */
  tailnet?: string;
  /** User name within the tailnet, created on first use; default `admin`. */
  user?: string;
}

export const DEFAULT_TAILNET = 'default';
export const DEFAULT_USER = 'admin';

export interface RegisterNodeOptions {
  machineKey: string;
  nodeKey: string;
  discoKey: string;
  hostname: string;
  authKeySecret: string;
  now: number;
  /** Key lifetime for nodes registered with an untagged key. */
  defaultKeyExpiryMs: number;
}

export type AuthKeyErrorCode = 'authkey_invalid' | 'authkey_revoked' | 'authkey_expired' | 'authkey_used';
/** `machine_in_other_tailnet`: the machine key is registered in another tailnet than the auth key's; nodes never move silently. */
export type RegisterErrorCode = AuthKeyErrorCode | 'node_key_in_use' | 'machine_in_other_tailnet';
export type UpdateNodeKeyErrorCode = 'node_not_found' | 'node_key_in_use';
export type RenameErrorCode = 'node_not_found' | 'name_invalid' | 'name_in_use';

/** An expected refusal, returned rather than thrown. */
export interface Refusal<C extends string> {
  error: C;
}

export function isRefusal<T extends object, C extends string>(r: T | Refusal<C>): r is Refusal<C> {
  return 'error' in r && typeof (r as { error: unknown }).error === 'string';
}

// -------------------------------------------------------------- interface

/** Everything warren-control keeps. All methods are async so a networked database can implement them. */
export interface Store {
  createAuthKey(opts: CreateAuthKeyOptions): Promise<{ record: AuthKeyRecord; key: string }>;
  listAuthKeys(): Promise<AuthKeyRecord[]>;
  /** False if there is no such key. */
  revokeAuthKey(id: number): Promise<boolean>;
  /** Checks a secret without consuming it (registerNode consumes, in its own transaction). */
  redeemAuthKey(secret: string, now: number): Promise<AuthKeyRecord | Refusal<AuthKeyErrorCode>>;

  getNode(id: number): Promise<NodeRecord | null>;
  getNodeByMachineKey(machineKey: string): Promise<NodeRecord | null>;
  getNodeByNodeKey(nodeKey: string): Promise<NodeRecord | null>;
  /** All nodes, or only those of the named tailnet. */
  listNodes(tailnet?: string): Promise<NodeRecord[]>;
  listTailnets(): Promise<TailnetRecord[]>;
  /**
   * One transaction: validate the auth key, reuse the node of a known machine
   * key (same id, addresses and name) or create one, and consume the key.
   */
  registerNode(opts: RegisterNodeOptions): Promise<{ node: NodeRecord; created: boolean } | Refusal<RegisterErrorCode>>;
  updateNodeKey(id: number, nodeKey: string, discoKey: string, keyExpiry: number | null): Promise<NodeRecord | Refusal<UpdateNodeKeyErrorCode>>;
  /** These return null if there is no such node. */
  setEndpoints(id: number, endpoints: string[]): Promise<NodeRecord | null>;
  setHostinfo(id: number, hostinfo: Record<string, unknown>): Promise<NodeRecord | null>;
  setOnline(id: number, online: boolean, now: number): Promise<NodeRecord | null>;
  /** A node's map stream opened: online, its endpoints and host info, in one transaction. */
  markConnected(id: number, now: number, endpoints: string[], hostinfo: Record<string, unknown>): Promise<NodeRecord | null>;
  /** Marks every node offline (a server starting after a crash); returns how many were online. */
  setAllOffline(now: number): Promise<number>;
  renameNode(id: number, name: string): Promise<NodeRecord | Refusal<RenameErrorCode>>;
  /** Sets the node's key expiry to `now`. */
  expireNode(id: number, now: number): Promise<NodeRecord | null>;
  /** False if there is no such node. Its addresses become free (reused only after the cursor wraps). */
  deleteNode(id: number): Promise<boolean>;

  /** A tailnet's ULA /48 (default: the `default` tailnet), e.g. `fd12:3456:789a::/48`; StoreError `invalid_argument` if there is no such tailnet. */
  ipv6Prefix(tailnet?: string): Promise<string>;

  /** Appends a JSON-serialisable change; returns its version (monotonic, never reused). */
  appendChange(change: unknown): Promise<number>;
  /** Changes after `version`, oldest first; null if some of them are no longer retained. */
  changesSince(version: number): Promise<ChangeRecord[] | null>;
  currentVersion(): Promise<number>;
  /** Keeps only the newest `keep` changes. */
  trimChanges(keep: number): Promise<void>;

  close(): Promise<void>;
}

export type StoreErrorCode =
  | 'closed'
  | 'open_failed'
  | 'corrupt'
  | 'not_warren_db'
  | 'schema_too_new'
  | 'migration_failed'
  | 'address_space_full'
  | 'invalid_argument';

export class StoreError extends Error {
  override name = 'StoreError';
  constructor(
    readonly code: StoreErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

// -------------------------------------------------------------- auth keys

const SECRET_RE = /^wkey-([1-9][0-9]{0,14})-([0-9a-f]{32})$/;
const TAG_RE = /^tag:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** A fresh secret for key `id`: `wkey-<id>-<32 hex chars>` (128 random bits). */
export function generateAuthKeySecret(id: number): string {
  return `wkey-${id}-${randomBytes(16).toString('hex')}`;
}

/** The part of a secret that is safe to show. */
export function authKeyPrefix(secret: string): string {
  const m = SECRET_RE.exec(secret);
  if (!m) throw new StoreError('invalid_argument', 'not an auth key secret');
  return `wkey-${m[1]!}-${m[2]!.slice(0, 4)}…`;
}

/** The key id named by a secret, or null if it is not shaped like one. */
export function parseAuthKeyId(secret: string): number | null {
  const m = SECRET_RE.exec(secret);
  return m ? Number(m[1]) : null;
}

export function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

const DUMMY_HASH = Buffer.alloc(32);

/** Constant-time comparison of a presented secret with a stored SHA-256 (null: no such key). */
export function secretMatches(secret: string, stored: Uint8Array | null): boolean {
  const presented = hashSecret(secret);
  const against = stored && stored.length === 32 ? stored : DUMMY_HASH;
  return timingSafeEqual(presented, against) && stored !== null;
}

/** Why a matching key may not be used now, or null if it may. */
export function authKeyRefusal(k: AuthKeyRecord, now: number): AuthKeyErrorCode | null {
  if (k.revoked) return 'authkey_revoked';
  if (k.expiresAt !== null && now >= k.expiresAt) return 'authkey_expired';
  if (!k.reusable && k.usedCount >= 1) return 'authkey_used';
  return null;
}

/** Validates and de-duplicates ACL tags (`tag:name`). */
export function normalizeTags(tags: readonly string[] | undefined): string[] {
  const out: string[] = [];
  for (const t of tags ?? []) {
    if (typeof t !== 'string' || !TAG_RE.test(t)) {
      throw new StoreError('invalid_argument', `invalid tag ${JSON.stringify(t)}: expected tag:name (lowercase letters, digits, dashes)`);
    }
    if (!out.includes(t)) out.push(t);
  }
  return out;
}

// -------------------------------------------------------------- addresses

/** Host numbers index 100.64.0.0/10: host h is 100.64.0.0 + h. */
export const IPV4_BASE = (100 << 24) | (64 << 16);
export const HOST_SPACE = 1 << 22;
/** 100.100.100.100, MagicDNS; never given to a node. Its IPv6 twin is prefix + the same host number. */
export const MAGIC_DNS_HOST = ((100 - 64) << 16) | (100 << 8) | 100;
export const MAGIC_DNS_IPV4 = '100.100.100.100';

/** A host number we hand out: not .0 or .255 of any /24, not MagicDNS. */
export function isAllocatableHost(h: number): boolean {
  const low = h & 0xff;
  return h > 0 && h < HOST_SPACE && low !== 0 && low !== 0xff && h !== MAGIC_DNS_HOST;
}

/** The next allocatable host number after `h`, wrapping around the /10. */
export function nextAllocatableHost(h: number): number {
  let c = h;
  do c = c + 1 >= HOST_SPACE ? 1 : c + 1;
  while (!isAllocatableHost(c));
  return c;
}

export function hostToIPv4(h: number): string {
  const a = (IPV4_BASE + h) >>> 0;
  return `${a >>> 24}.${(a >>> 16) & 0xff}.${(a >>> 8) & 0xff}.${a & 0xff}`;
}

/** A random RFC 4193 ULA /48: fd + 40 random bits. */
export function generateUlaPrefix(): string {
  const b = randomBytes(5);
  const g = [0xfd00 | b[0]!, (b[1]! << 8) | b[2]!, (b[3]! << 8) | b[4]!];
  return `${formatIPv6([...g, 0, 0, 0, 0, 0])}/48`;
}

/** The 3 leading groups of a `xxxx:xxxx:xxxx::/48` prefix. */
function prefixGroups(prefix48: string): number[] {
  const m = /^(fd[0-9a-f]{2}):([0-9a-f]{1,4})(?::([0-9a-f]{1,4}))?::\/48$/.exec(prefix48)
    ?? /^(fd[0-9a-f]{2})::\/48$/.exec(prefix48);
  if (!m) throw new StoreError('corrupt', `stored IPv6 prefix ${JSON.stringify(prefix48)} is not a ULA /48`);
  return [parseInt(m[1]!, 16), parseInt(m[2] ?? '0', 16), parseInt(m[3] ?? '0', 16)];
}

/** prefix + host number in the low 32 bits: host 1 → `fdxx:xxxx:xxxx::1`. */
export function hostToIPv6(prefix48: string, h: number): string {
  return formatIPv6([...prefixGroups(prefix48), 0, 0, 0, (h >>> 16) & 0xffff, h & 0xffff]);
}

/** RFC 5952 text for 8 groups: lowercase, longest zero run (≥ 2) as `::`. */
export function formatIPv6(groups: readonly number[]): string {
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

// ------------------------------------------------------------------ names

const LABEL_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** A valid node name: one lowercase DNS label. */
export function isValidNodeName(name: string): boolean {
  return LABEL_RE.test(name);
}

/** A valid tailnet name: one lowercase DNS label. */
export function isValidTailnetName(name: unknown): name is string {
  return typeof name === 'string' && LABEL_RE.test(name);
}

const USER_RE = /^[A-Za-z0-9](?:[A-Za-z0-9._@+-]{0,62}[A-Za-z0-9])?$/;

/** A valid user name: 1–64 letters, digits and `._@+-`, starting and ending with a letter or digit. */
export function isValidUserName(name: unknown): name is string {
  return typeof name === 'string' && USER_RE.test(name);
}

/** The name a hostname asks for: lowercased, other characters → `-`, trimmed to 63. */
export function nameFromHostname(hostname: string): string {
  const s = hostname
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+/, '')
    .slice(0, 63)
    .replace(/-+$/, '');
  return s === '' ? 'node' : s;
}

/** `base`, then `base-2`, `base-3`, … (truncating `base` so each fits in 63). */
export function nameCandidate(base: string, n: number): string {
  if (n <= 1) return base;
  const suffix = `-${n}`;
  const stem = base.slice(0, 63 - suffix.length).replace(/-+$/, '');
  return `${stem === '' ? 'node' : stem}${suffix}`;
}
