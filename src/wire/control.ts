/**
 * Control protocol v1 messages (control-protocol.md): valibot schemas and their
 * types for the HTTPS requests/responses and the map-stream frames, plus the
 * possession proofs (NaCl box to the server key). Pure: no I/O, no clocks.
 *
 * Every object is strict (unknown fields are an error), every string and
 * array is bounded, keys are base64 (standard alphabet, padded, canonical).
 * Each schema is exported under the same name as its type, so
 * `parseOr400(RegisterRequest, body)` yields a `RegisterRequest`.
 */
import * as v from 'valibot';
import { isIPv4, isIPv6 } from 'node:net';
import { boxOpen, boxSeal, BOX_NONCE_LEN, BOX_TAG_LEN } from '../crypto/box.js';
import { KEY_LEN } from '../crypto/x25519.js';
import { MAX_ENDPOINTS } from './limits.js';

// ---------------------------------------------------------------- spec constants

export const CONTROL_PROTOCOL_VERSION = 1;
/** The `Upgrade:` token of `GET /v1/map`. */
export const MAP_UPGRADE_PROTOCOL = 'warren-control/1';
/** Request bodies above this are refused with 413. */
export const MAX_BODY_BYTES = 64 * 1024;
/** A challenge nonce lives this long and is single-use. */
export const CHALLENGE_TTL_MS = 60_000;
/** The client's hello must arrive this soon after the 101. */
export const HELLO_TIMEOUT_MS = 10_000;
/** Default map-stream keepalive; 2x without any frame means a dead stream. */
export const DEFAULT_KEEPALIVE_MS = 30_000;
export const NONCE_LEN = BOX_NONCE_LEN;

export const PROOF_PURPOSES = ['machine:register', 'node:register', 'machine:map', 'machine:rotate', 'node:rotate', 'node:relay'] as const;
export type ProofPurpose = (typeof PROOF_PURPOSES)[number];

/** Codes of the stream `error` frame listed in the spec (the schema accepts any snake_case code). */
export const STREAM_ERROR_CODES = ['node_deleted', 'key_expired', 'bad_proof', 'unknown_node', 'node_key_mismatch'] as const;

// ---------------------------------------------------------------- bounds (ours)

export { MAX_ENDPOINTS };
export const MAX_ADDRESSES = 16;
export const MAX_ALLOWED_IPS = 256;
export const MAX_TAGS = 32;
export const MAX_PEERS = 10_000;
export const MAX_CHANGES = 10_000;
export const MAX_AUTHKEY_LEN = 200;
export const MAX_HOSTINFO_BYTES = 4096;
export const MAX_HOSTINFO_DEPTH = 4;
const MAX_PURPOSE_LEN = 32;
const MAX_FILTER_RULES = 1024;
const MAX_FILTER_ITEMS = 256;

// ---------------------------------------------------------------- base64

const B64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function toB64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('base64');
}

/** Strict base64 decode (standard alphabet, padded, canonical); null if malformed or not `len` bytes. */
export function fromB64(s: unknown, len?: number): Uint8Array | null {
  if (typeof s !== 'string' || (len !== undefined && s.length !== 4 * Math.ceil(len / 3)) || !B64_RE.test(s)) return null;
  const bytes = Buffer.from(s, 'base64');
  if (bytes.toString('base64') !== s || (len !== undefined && bytes.length !== len)) return null;
  return new Uint8Array(bytes);
}

/** A base64 string whose decoded length is in [min, max]. */
function b64Bytes(min: number, max: number = min): v.GenericSchema<string> {
  return v.pipe(v.string(), v.rawCheck(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const s = dataset.value;
    if (s.length > 4 * Math.ceil(max / 3) || !B64_RE.test(s) || Buffer.from(s, 'base64').toString('base64') !== s) {
      addIssue({ message: s.length > 4 * Math.ceil(max / 3) && B64_RE.test(s) ? `too long for ${max} bytes` : 'not base64' });
      return;
    }
    const n = Buffer.byteLength(s, 'base64');
    if (n < min || n > max) addIssue({ message: min === max ? `must be ${min} bytes, got ${n}` : `must be ${min}..${max} bytes, got ${n}` });
  }));
}

/** A 32-byte X25519 public key in base64. */
export const b64Key = b64Bytes(KEY_LEN);
/** A 24-byte challenge nonce in base64. */
export const b64Nonce = b64Bytes(NONCE_LEN);
const b64Box = b64Bytes(BOX_TAG_LEN + NONCE_LEN + 1, BOX_TAG_LEN + NONCE_LEN + MAX_PURPOSE_LEN);

// ---------------------------------------------------------------- small field types

const LABEL_RE = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const DNS_NAME_RE = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;
const SNAKE_RE = /^[a-z][a-z0-9_]{0,63}$/;
const PRINTABLE_RE = /^[\x21-\x7e]+$/;

/** An integer in [min, max] (safe integers only). */
function int(min: number, max?: number): v.GenericSchema<number> {
  return max === undefined
    ? v.pipe(v.number(), v.safeInteger(), v.minValue(min))
    : v.pipe(v.number(), v.safeInteger(), v.minValue(min), v.maxValue(max));
}
/** A string matching `re` (else `message`), optionally at most `max` characters. */
function matching(re: RegExp, message: string, max?: number): v.GenericSchema<string> {
  return max === undefined ? v.pipe(v.string(), v.regex(re, message)) : v.pipe(v.string(), v.maxLength(max), v.regex(re, message));
}
/** A string for which `ok` holds (else `message`). */
function stringWhere(ok: (s: string) => boolean, message: string): v.GenericSchema<string> {
  return v.pipe(v.string(), v.check(ok, message));
}
/** An array of at most `max` items. */
function arrayOf<T>(item: v.GenericSchema<unknown, T>, max: number): v.GenericSchema<unknown, T[]> {
  return v.pipe(v.array(item), v.maxLength(max));
}
/**
 * A strict object (an unknown field is an error). valibot reports the first
 * unknown field only; the message counts the others.
 */
function strictObject<E extends v.ObjectEntries>(entries: E): v.StrictObjectSchema<E, v.ErrorMessage<v.StrictObjectIssue>> {
  return v.strictObject(entries, (issue) => {
    if (issue.expected !== 'never') return issue.message;
    const parent = issue.path?.[issue.path.length - 1]?.input;
    const extra = parent && typeof parent === 'object' ? Object.keys(parent).filter((k) => !Object.prototype.hasOwnProperty.call(entries, k)).length : 1;
    return extra > 1 ? `unknown field (and ${extra - 1} more)` : 'unknown field';
  });
}

/** A host name as a single DNS label: letters, digits, inner hyphens, 1..63 chars. */
export const hostname = matching(LABEL_RE, 'not a DNS label (letters, digits, inner hyphens, 1..63 chars)');
const dnsName = matching(DNS_NAME_RE, 'not a DNS name');
const ipAddress = stringWhere((s) => s.length <= 39 && (isIPv4(s) || (isIPv6(s) && !s.includes('%'))), 'not an IP address');
const id = int(0);
const ms = int(0);
const version = int(0);
const tag = matching(PRINTABLE_RE, 'not a tag (printable ASCII, no spaces)', 64);
const snakeCode = matching(SNAKE_RE, 'not a snake_case code');

/** "ip:port" or "[v6]:port" → parts, or null. Port 1..65535 without leading zeros, no zone ids. */
export function parseEndpoint(s: string): { ip: string; port: number } | null {
  if (s.length > 47) return null;
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([0-9.]+)):([1-9][0-9]{0,4})$/.exec(s);
  if (!m) return null;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return null;
  if (m[1] !== undefined) return isIPv6(m[1]) ? { ip: m[1], port } : null;
  return isIPv4(m[2]!) ? { ip: m[2]!, port } : null;
}

/** "a.b.c.d/n" or "v6/n" with n within the family's width. */
export function isCidr(s: string): boolean {
  if (s.length > 43) return false;
  const m = /^([0-9A-Fa-f:.]+)\/([0-9]{1,3})$/.exec(s);
  if (!m) return false;
  const bits = Number(m[2]);
  if (isIPv4(m[1]!)) return bits <= 32;
  return isIPv6(m[1]!) && bits <= 128;
}

export const endpoint = stringWhere((s) => parseEndpoint(s) !== null, 'not ip:port or [ipv6]:port');
const cidr = stringWhere(isCidr, 'not an address/prefix');
const endpoints = arrayOf(endpoint, MAX_ENDPOINTS);

// ---------------------------------------------------------------- hostinfo

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type Hostinfo = { [key: string]: JsonValue };

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Why `v` is not a small JSON object, or null. Iterative: deep garbage cannot blow the stack. */
export function hostinfoProblem(v: unknown): string | null {
  if (v === undefined) return 'missing';
  if (!isPlainObject(v)) return 'expected an object';
  const stack: { value: unknown; depth: number }[] = [{ value: v, depth: 1 }];
  let nodes = 0;
  while (stack.length > 0) {
    const { value, depth } = stack.pop()!;
    if (++nodes > MAX_HOSTINFO_BYTES / 2) return `more than ${MAX_HOSTINFO_BYTES} bytes`;
    if (value === null || typeof value === 'string' || typeof value === 'boolean') continue;
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) return 'not JSON (non-finite number)';
      continue;
    }
    const isArray = Array.isArray(value);
    if (!isArray && !isPlainObject(value)) return 'not JSON';
    if (depth > MAX_HOSTINFO_DEPTH) return `nested deeper than ${MAX_HOSTINFO_DEPTH}`;
    if (isArray) {
      for (const item of value as unknown[]) stack.push({ value: item, depth: depth + 1 });
    } else {
      for (const [k, item] of Object.entries(value as Record<string, unknown>)) {
        if (k === '__proto__') return 'reserved key __proto__';
        stack.push({ value: item, depth: depth + 1 });
      }
    }
  }
  // Depth and node count are bounded now, so stringify is cheap and safe.
  const size = Buffer.byteLength(JSON.stringify(v), 'utf8');
  return size > MAX_HOSTINFO_BYTES ? `${size} bytes, more than ${MAX_HOSTINFO_BYTES}` : null;
}

/** Free-form facts about a node (os, version, …): a JSON object of at most 4 KiB, nested at most 4 deep. */
export const Hostinfo = v.custom<Hostinfo>((x) => hostinfoProblem(x) === null, (issue) => hostinfoProblem(issue.input) ?? issue.message);

// ---------------------------------------------------------------- HTTPS requests

export const Proof = strictObject({ key: b64Key, nonce: b64Nonce, box: b64Box });
export type Proof = v.InferOutput<typeof Proof>;

export const ChallengeResponse = strictObject({
  serverKey: b64Key,
  nonce: b64Nonce,
  expiresInMs: int(1),
});
export type ChallengeResponse = v.InferOutput<typeof ChallengeResponse>;

export const RegisterRequest = strictObject({
  machine: Proof,
  node: Proof,
  discoKey: b64Key,
  authKey: v.pipe(v.string(), v.minLength(1), v.maxLength(MAX_AUTHKEY_LEN), v.regex(PRINTABLE_RE, 'not an auth key (printable ASCII)')),
  hostname,
});
export type RegisterRequest = v.InferOutput<typeof RegisterRequest>;

export const RegisterResponse = strictObject({
  nodeId: id,
  name: hostname,
  addresses: arrayOf(cidr, MAX_ADDRESSES),
  keyExpiry: v.nullable(ms),
  tags: arrayOf(tag, MAX_TAGS),
});
export type RegisterResponse = v.InferOutput<typeof RegisterResponse>;

export const RotateRequest = strictObject({ machine: Proof, newNode: Proof, discoKey: b64Key });
export type RotateRequest = v.InferOutput<typeof RotateRequest>;

export const RotateResponse = strictObject({ nodeId: id, keyExpiry: v.nullable(ms) });
export type RotateResponse = v.InferOutput<typeof RotateResponse>;

export const ErrorResponse = strictObject({ error: v.pipe(v.string(), v.maxLength(1024)), code: snakeCode });
export type ErrorResponse = v.InferOutput<typeof ErrorResponse>;

// ---------------------------------------------------------------- relay map

const REGION_CODE_RE = /^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/;
const FINGERPRINT_RE = /^[0-9a-f]{64}$/;
export const MAX_RELAY_REGIONS = 64;

/** An https URL with a host and no path beyond "/" (where a relay server listens). */
const relayUrl = v.pipe(v.string(), v.maxLength(256), v.check((s) => {
  try {
    const u = new URL(s);
    return u.protocol === 'https:' && u.hostname !== '' && (u.pathname === '/' || u.pathname === '') && !u.search && !u.hash && !u.username;
  } catch {
    return false;
  }
}, 'not an https://host[:port] URL'));

export const RelayNode = strictObject({
  name: hostname,
  url: relayUrl,
  /** SHA-256 of the relay's certificate (lowercase hex), or null for a CA-signed certificate. */
  fingerprint: v.nullable(matching(FINGERPRINT_RE, 'not a SHA-256 fingerprint (64 lowercase hex digits)')),
  /** STUN servers on that host (ip:port); two addresses allow mapping-behaviour tests. */
  stun: arrayOf(endpoint, 4),
});
export type RelayNode = v.InferOutput<typeof RelayNode>;

export const RelayRegion = strictObject({
  id: int(1, 65535),
  code: matching(REGION_CODE_RE, 'not a region code (lowercase letters, digits, inner hyphens, 1..32 chars)'),
  name: v.pipe(v.string(), v.minLength(1), v.maxLength(64)),
  nodes: v.pipe(v.array(RelayNode), v.minLength(1), v.maxLength(16)),
});
export type RelayRegion = v.InferOutput<typeof RelayRegion>;

export const RelayMap = v.pipe(
  strictObject({ regions: arrayOf(RelayRegion, MAX_RELAY_REGIONS) }),
  v.rawCheck(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const ids = new Set<number>();
    dataset.value.regions.forEach((r, i) => {
      if (ids.has(r.id)) {
        addIssue({
          message: `region id ${r.id} appears twice`,
          path: [
            { type: 'object', origin: 'value', input: dataset.value, key: 'regions', value: dataset.value.regions },
            { type: 'array', origin: 'value', input: dataset.value.regions, key: i, value: r },
            { type: 'object', origin: 'value', input: r, key: 'id', value: r.id },
          ],
        });
      }
      ids.add(r.id);
    });
  }),
);
export type RelayMap = v.InferOutput<typeof RelayMap>;

// ---------------------------------------------------------------- netmap

export const NodeView = strictObject({
  id,
  name: hostname,
  nodeKey: b64Key,
  discoKey: b64Key,
  addresses: arrayOf(cidr, MAX_ADDRESSES),
  allowedIps: arrayOf(cidr, MAX_ALLOWED_IPS),
  endpoints,
  online: v.boolean(),
  lastSeen: v.nullable(ms),
  keyExpiry: v.nullable(ms),
  tags: arrayOf(tag, MAX_TAGS),
  hostinfo: Hostinfo,
  /** The relay region the node is connected to (its "home"), 0 when none. */
  homeRegion: int(0, 65535),
});
export type NodeView = v.InferOutput<typeof NodeView>;

const filterItems = arrayOf(matching(PRINTABLE_RE, 'not a filter item', 128), MAX_FILTER_ITEMS);

export const Netmap = strictObject({
  self: NodeView,
  peers: arrayOf(NodeView, MAX_PEERS),
  dns: strictObject({ nameservers: arrayOf(ipAddress, 16), domains: arrayOf(dnsName, 32) }),
  packetFilter: arrayOf(strictObject({ src: filterItems, dst: filterItems }), MAX_FILTER_RULES),
  keepaliveMs: int(1, 3_600_000),
  relayMap: RelayMap,
});
export type Netmap = v.InferOutput<typeof Netmap>;

export const Change = v.variant('op', [
  strictObject({ op: v.literal('upsert'), node: NodeView }),
  strictObject({ op: v.literal('remove'), id }),
  strictObject({ op: v.literal('self'), node: NodeView }),
]);
export type Change = v.InferOutput<typeof Change>;

// ---------------------------------------------------------------- map-stream frames

export const KeepaliveFrame = strictObject({ type: v.literal('keepalive') });
export type KeepaliveFrame = v.InferOutput<typeof KeepaliveFrame>;

export const HelloFrame = strictObject({
  type: v.literal('hello'),
  machine: Proof,
  nodeKey: b64Key,
  version: v.nullable(version),
  endpoints,
  hostinfo: Hostinfo,
});
export type HelloFrame = v.InferOutput<typeof HelloFrame>;

export const EndpointsFrame = strictObject({ type: v.literal('endpoints'), endpoints });
export type EndpointsFrame = v.InferOutput<typeof EndpointsFrame>;

export const HostinfoFrame = strictObject({ type: v.literal('hostinfo'), hostinfo: Hostinfo });
export type HostinfoFrame = v.InferOutput<typeof HostinfoFrame>;

export const ClientFrame = v.variant('type', [HelloFrame, KeepaliveFrame, EndpointsFrame, HostinfoFrame]);
export type ClientFrame = v.InferOutput<typeof ClientFrame>;

export const FullFrame = strictObject({ type: v.literal('full'), version, netmap: Netmap });
export type FullFrame = v.InferOutput<typeof FullFrame>;

export const DeltaFrame = strictObject({ type: v.literal('delta'), version, changes: arrayOf(Change, MAX_CHANGES) });
export type DeltaFrame = v.InferOutput<typeof DeltaFrame>;

export const ErrorFrame = strictObject({ type: v.literal('error'), code: snakeCode, error: v.pipe(v.string(), v.maxLength(1024)) });
export type ErrorFrame = v.InferOutput<typeof ErrorFrame>;

export const ServerFrame = v.variant('type', [FullFrame, DeltaFrame, KeepaliveFrame, ErrorFrame]);
export type ServerFrame = v.InferOutput<typeof ServerFrame>;

// ---------------------------------------------------------------- validation messages

export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: string };
/** Any schema of this module (what `parseOr400` takes). */
export type Schema<T> = v.GenericSchema<unknown, T>;

const MAX_ISSUES_SHOWN = 3;

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else {
      const s = String(p);
      const name = s.length > 40 ? `${s.slice(0, 40)}…` : s;
      out += out ? `.${name}` : name;
    }
  }
  return out;
}

function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let x = data;
  for (const p of path) {
    if (typeof x !== 'object' || x === null || !Object.prototype.hasOwnProperty.call(x, p)) return undefined;
    x = (x as Record<PropertyKey, unknown>)[p];
  }
  return x;
}

function kind(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'array';
  return typeof x;
}

function describeIssue(issue: v.BaseIssue<unknown>, keys: readonly PropertyKey[], data: unknown): string {
  const here = formatPath(keys);
  const at = (msg: string): string => `${here || '(body)'}: ${msg}`;
  const x = valueAt(data, keys);
  const limit = String(issue.requirement);
  switch (issue.type) {
    case 'strict_object':
      if (issue.expected === 'never') return at(issue.message.startsWith('unknown field') ? issue.message : 'unknown field');
      break;
    case 'variant': {
      if (keys.length === 0) break; // not an object at all
      const allowed = (issue.expected ?? '').replace(/^\((.*)\)$/, '$1').split(' | ').join(', ');
      if (x === undefined) return at(`missing (one of ${allowed})`);
      return at(`${typeof x === 'string' ? `"${x.slice(0, 40)}"` : kind(x)} is not one of ${allowed}`);
    }
    case 'safe_integer':
      return at(`expected int, got ${kind(x)}`);
    case 'max_length':
      return at(Array.isArray(issue.input) ? `too many items (max ${limit})` : `too long (max ${limit} characters)`);
    case 'min_length':
      if (Array.isArray(issue.input)) return at(`too few items (min ${limit})`);
      return at(limit === '1' ? 'empty' : `too short (min ${limit} characters)`);
    case 'max_value':
      return at(`must be <= ${limit}`);
    case 'min_value':
      return at(`must be >= ${limit}`);
    case 'regex': case 'check': case 'raw_check': case 'custom':
      return at(issue.message);
  }
  if (issue.kind === 'schema') {
    if (x === undefined) return at('missing');
    return at(`expected ${(issue.expected ?? 'something else').toLowerCase()}, got ${kind(x)}`);
  }
  return at(issue.message.replace(/^Invalid \w+: /, ''));
}

/**
 * Validate `data` against `schema`. On failure the message names each bad
 * field by path, e.g. `machine.box: not base64` or `endpoints[2]: not ip:port
 * or [ipv6]:port` (the first few issues, joined by "; "). Never throws.
 */
export function parseOr400<T>(schema: Schema<T>, data: unknown): ParseResult<T> {
  let r: v.SafeParseResult<Schema<T>>;
  try {
    r = v.safeParse(schema, data);
  } catch (err) {
    return { ok: false, error: `(body): unparseable (${(err as Error).message})` };
  }
  if (r.success) return { ok: true, value: r.output };
  // One message per field: the first problem found with it.
  const seen = new Set<string>();
  const issues: { issue: v.BaseIssue<unknown>; keys: PropertyKey[] }[] = [];
  for (const issue of r.issues) {
    let keys = (issue.path ?? []).map((p) => p.key as PropertyKey);
    // valibot takes an array for an object (with every field missing): say so at the array.
    if ((issue.type === 'strict_object' || issue.type === 'variant') && keys.length > 0 && Array.isArray(valueAt(data, keys.slice(0, -1)))) {
      keys = keys.slice(0, -1);
      if (seen.has(formatPath(keys))) continue;
      seen.add(formatPath(keys));
      issues.push({ issue: { ...issue, kind: 'schema', type: 'array_as_object', expected: 'object' }, keys });
      continue;
    }
    const p = formatPath(keys) + (issue.expected === 'never' ? ' +keys' : '');
    if (seen.has(p)) continue;
    seen.add(p);
    issues.push({ issue, keys });
  }
  const shown = issues.slice(0, MAX_ISSUES_SHOWN).map((i) => describeIssue(i.issue, i.keys, data));
  if (issues.length > MAX_ISSUES_SHOWN) shown.push(`(and ${issues.length - MAX_ISSUES_SHOWN} more)`);
  return { ok: false, error: shown.join('; ') };
}

/** Whether `data` matches `schema` (no message). */
export function matches(schema: Schema<unknown>, data: unknown): boolean {
  try {
    return v.is(schema, data);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- possession proofs

const utf8 = new TextEncoder();

function proofMessage(nonce24: Uint8Array, purpose: string): Uint8Array {
  const p = utf8.encode(purpose);
  const m = new Uint8Array(nonce24.length + p.length);
  m.set(nonce24);
  m.set(p, nonce24.length);
  return m;
}

/**
 * Prove possession of `ourPrivate` for `purpose`: box = crypto_box(nonce ||
 * UTF-8(purpose), nonce, serverPublic, ourPrivate). Throws CryptoError on a
 * malformed nonce or a low-order server key.
 */
export function makeProof(purpose: ProofPurpose, nonce24: Uint8Array, serverPublic: Uint8Array, ourPrivate: Uint8Array, ourPublic: Uint8Array): Proof {
  const box = boxSeal(proofMessage(nonce24, purpose), nonce24, serverPublic, ourPrivate);
  return { key: toB64(ourPublic), nonce: toB64(nonce24), box: toB64(box) };
}

/**
 * Check a proof: its box opens with (serverPrivate, proof.key) and holds
 * exactly proof.nonce || purpose. When `expectedNonce` is given, proof.nonce
 * must also be that nonce (the challenge being consumed). Returns the proven
 * public key, or null for anything else; never throws, whatever `proof` is.
 */
export function verifyProof(proof: unknown, purpose: ProofPurpose, serverPrivate: Uint8Array, expectedNonce?: Uint8Array): Uint8Array | null {
  try {
    if (!isPlainObject(proof)) return null;
    const key = fromB64(proof['key'], KEY_LEN);
    const nonce = fromB64(proof['nonce'], NONCE_LEN);
    const box = fromB64(proof['box']);
    if (!key || !nonce || !box || box.length > BOX_TAG_LEN + NONCE_LEN + MAX_PURPOSE_LEN) return null;
    if (expectedNonce && !Buffer.from(expectedNonce).equals(nonce)) return null;
    const opened = boxOpen(box, nonce, key, serverPrivate);
    if (!opened || !Buffer.from(opened).equals(proofMessage(nonce, purpose))) return null;
    return key;
  } catch {
    return null;
  }
}
