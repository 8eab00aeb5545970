/**
 * Control protocol v1 messages (control-protocol.md): zod schemas and their
 * types for the HTTPS requests/responses and the map-stream frames, plus the
 * possession proofs (NaCl box to the server key). Pure: no I/O, no clocks.
 *
 * Every object is strict (unknown fields are an error), every string and
 * array is bounded, keys are base64 (standard alphabet, padded, canonical).
 * Each schema is exported under the same name as its type, so
 * `parseOr400(RegisterRequest, body)` yields a `RegisterRequest`.
 */
import * as z from 'zod';
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
function b64Bytes(min: number, max: number = min): z.ZodString {
  return z.string().superRefine((s, ctx) => {
    if (s.length > 4 * Math.ceil(max / 3) || !B64_RE.test(s) || Buffer.from(s, 'base64').toString('base64') !== s) {
      ctx.addIssue({ code: 'custom', message: s.length > 4 * Math.ceil(max / 3) && B64_RE.test(s) ? `too long for ${max} bytes` : 'not base64' });
      return;
    }
    const n = Buffer.byteLength(s, 'base64');
    if (n < min || n > max) ctx.addIssue({ code: 'custom', message: min === max ? `must be ${min} bytes, got ${n}` : `must be ${min}..${max} bytes, got ${n}` });
  });
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

/** A host name as a single DNS label: letters, digits, inner hyphens, 1..63 chars. */
export const hostname = z.string().regex(LABEL_RE, 'not a DNS label (letters, digits, inner hyphens, 1..63 chars)');
const dnsName = z.string().regex(DNS_NAME_RE, 'not a DNS name');
const ipAddress = z.string().refine((s) => s.length <= 39 && (isIPv4(s) || (isIPv6(s) && !s.includes('%'))), 'not an IP address');
const id = z.int().min(0);
const ms = z.int().min(0);
const version = z.int().min(0);
const tag = z.string().max(64).regex(PRINTABLE_RE, 'not a tag (printable ASCII, no spaces)');
const snakeCode = z.string().regex(SNAKE_RE, 'not a snake_case code');

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

export const endpoint = z.string().refine((s) => parseEndpoint(s) !== null, 'not ip:port or [ipv6]:port');
const cidr = z.string().refine(isCidr, 'not an address/prefix');
const endpoints = z.array(endpoint).max(MAX_ENDPOINTS);

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
export const Hostinfo = z.custom<Hostinfo>().superRefine((v, ctx) => {
  const problem = hostinfoProblem(v);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

// ---------------------------------------------------------------- HTTPS requests

export const Proof = z.strictObject({ key: b64Key, nonce: b64Nonce, box: b64Box });
export type Proof = z.infer<typeof Proof>;

export const ChallengeResponse = z.strictObject({
  serverKey: b64Key,
  nonce: b64Nonce,
  expiresInMs: z.int().min(1),
});
export type ChallengeResponse = z.infer<typeof ChallengeResponse>;

export const RegisterRequest = z.strictObject({
  machine: Proof,
  node: Proof,
  discoKey: b64Key,
  authKey: z.string().min(1).max(MAX_AUTHKEY_LEN).regex(PRINTABLE_RE, 'not an auth key (printable ASCII)'),
  hostname,
});
export type RegisterRequest = z.infer<typeof RegisterRequest>;

export const RegisterResponse = z.strictObject({
  nodeId: id,
  name: hostname,
  addresses: z.array(cidr).max(MAX_ADDRESSES),
  keyExpiry: ms.nullable(),
  tags: z.array(tag).max(MAX_TAGS),
});
export type RegisterResponse = z.infer<typeof RegisterResponse>;

export const RotateRequest = z.strictObject({ machine: Proof, newNode: Proof, discoKey: b64Key });
export type RotateRequest = z.infer<typeof RotateRequest>;

export const RotateResponse = z.strictObject({ nodeId: id, keyExpiry: ms.nullable() });
export type RotateResponse = z.infer<typeof RotateResponse>;

export const ErrorResponse = z.strictObject({ error: z.string().max(1024), code: snakeCode });
export type ErrorResponse = z.infer<typeof ErrorResponse>;

// ---------------------------------------------------------------- relay map

const REGION_CODE_RE = /^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/;
const FINGERPRINT_RE = /^[0-9a-f]{64}$/;
export const MAX_RELAY_REGIONS = 64;

/** An https URL with a host and no path beyond "/" (where a relay server listens). */
const relayUrl = z.string().max(256).refine((s) => {
  try {
    const u = new URL(s);
    return u.protocol === 'https:' && u.hostname !== '' && (u.pathname === '/' || u.pathname === '') && !u.search && !u.hash && !u.username;
  } catch {
    return false;
  }
}, 'not an https://host[:port] URL');

export const RelayNode = z.strictObject({
  name: hostname,
  url: relayUrl,
  /** SHA-256 of the relay's certificate (lowercase hex), or null for a CA-signed certificate. */
  fingerprint: z.string().regex(FINGERPRINT_RE, 'not a SHA-256 fingerprint (64 lowercase hex digits)').nullable(),
  /** STUN servers on that host (ip:port); two addresses allow mapping-behaviour tests. */
  stun: z.array(endpoint).max(4),
});
export type RelayNode = z.infer<typeof RelayNode>;

export const RelayRegion = z.strictObject({
  id: z.int().min(1).max(65535),
  code: z.string().regex(REGION_CODE_RE, 'not a region code (lowercase letters, digits, inner hyphens, 1..32 chars)'),
  name: z.string().min(1).max(64),
  nodes: z.array(RelayNode).min(1).max(16),
});
export type RelayRegion = z.infer<typeof RelayRegion>;

export const RelayMap = z.strictObject({ regions: z.array(RelayRegion).max(MAX_RELAY_REGIONS) }).superRefine((m, ctx) => {
  const ids = new Set<number>();
  m.regions.forEach((r, i) => {
    if (ids.has(r.id)) ctx.addIssue({ code: 'custom', path: ['regions', i, 'id'], message: `region id ${r.id} appears twice` });
    ids.add(r.id);
  });
});
export type RelayMap = z.infer<typeof RelayMap>;

// ---------------------------------------------------------------- netmap

export const NodeView = z.strictObject({
  id,
  name: hostname,
  nodeKey: b64Key,
  discoKey: b64Key,
  addresses: z.array(cidr).max(MAX_ADDRESSES),
  allowedIps: z.array(cidr).max(MAX_ALLOWED_IPS),
  endpoints,
  online: z.boolean(),
  lastSeen: ms.nullable(),
  keyExpiry: ms.nullable(),
  tags: z.array(tag).max(MAX_TAGS),
  hostinfo: Hostinfo,
  /** The relay region the node is connected to (its "home"), 0 when none. */
  homeRegion: z.int().min(0).max(65535),
});
export type NodeView = z.infer<typeof NodeView>;

const filterItems = z.array(z.string().max(128).regex(PRINTABLE_RE, 'not a filter item')).max(MAX_FILTER_ITEMS);

export const Netmap = z.strictObject({
  self: NodeView,
  peers: z.array(NodeView).max(MAX_PEERS),
  dns: z.strictObject({ nameservers: z.array(ipAddress).max(16), domains: z.array(dnsName).max(32) }),
  packetFilter: z.array(z.strictObject({ src: filterItems, dst: filterItems })).max(MAX_FILTER_RULES),
  keepaliveMs: z.int().min(1).max(3_600_000),
  relayMap: RelayMap,
});
export type Netmap = z.infer<typeof Netmap>;

export const Change = z.discriminatedUnion('op', [
  z.strictObject({ op: z.literal('upsert'), node: NodeView }),
  z.strictObject({ op: z.literal('remove'), id }),
  z.strictObject({ op: z.literal('self'), node: NodeView }),
]);
export type Change = z.infer<typeof Change>;

// ---------------------------------------------------------------- map-stream frames

export const KeepaliveFrame = z.strictObject({ type: z.literal('keepalive') });
export type KeepaliveFrame = z.infer<typeof KeepaliveFrame>;

export const HelloFrame = z.strictObject({
  type: z.literal('hello'),
  machine: Proof,
  nodeKey: b64Key,
  version: version.nullable(),
  endpoints,
  hostinfo: Hostinfo,
});
export type HelloFrame = z.infer<typeof HelloFrame>;

export const EndpointsFrame = z.strictObject({ type: z.literal('endpoints'), endpoints });
export type EndpointsFrame = z.infer<typeof EndpointsFrame>;

export const HostinfoFrame = z.strictObject({ type: z.literal('hostinfo'), hostinfo: Hostinfo });
export type HostinfoFrame = z.infer<typeof HostinfoFrame>;

export const ClientFrame = z.discriminatedUnion('type', [HelloFrame, KeepaliveFrame, EndpointsFrame, HostinfoFrame]);
export type ClientFrame = z.infer<typeof ClientFrame>;

export const FullFrame = z.strictObject({ type: z.literal('full'), version, netmap: Netmap });
export type FullFrame = z.infer<typeof FullFrame>;

export const DeltaFrame = z.strictObject({ type: z.literal('delta'), version, changes: z.array(Change).max(MAX_CHANGES) });
export type DeltaFrame = z.infer<typeof DeltaFrame>;

export const ErrorFrame = z.strictObject({ type: z.literal('error'), code: snakeCode, error: z.string().max(1024) });
export type ErrorFrame = z.infer<typeof ErrorFrame>;

export const ServerFrame = z.discriminatedUnion('type', [FullFrame, DeltaFrame, KeepaliveFrame, ErrorFrame]);
export type ServerFrame = z.infer<typeof ServerFrame>;

// ---------------------------------------------------------------- validation messages

export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: string };

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
  let v = data;
  for (const p of path) {
    if (typeof v !== 'object' || v === null || !Object.prototype.hasOwnProperty.call(v, p)) return undefined;
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return v;
}

function kind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function describeIssue(issue: z.core.$ZodIssue, data: unknown): string {
  const here = formatPath(issue.path);
  const at = (msg: string, path = here): string => `${path || '(body)'}: ${msg}`;
  switch (issue.code) {
    case 'unrecognized_keys': {
      const key = formatPath([...issue.path, issue.keys[0] ?? '']);
      const more = issue.keys.length > 1 ? ` (and ${issue.keys.length - 1} more)` : '';
      return at(`unknown field${more}`, key);
    }
    case 'invalid_type': {
      const v = valueAt(data, issue.path);
      if (v === undefined) return at('missing');
      return at(`expected ${issue.expected}, got ${kind(v)}`);
    }
    case 'invalid_union': {
      if (issue.discriminator !== undefined && 'options' in issue && issue.options) {
        const options = issue.options;
        const v = valueAt(data, issue.path);
        const allowed = options.map((o) => `"${String(o)}"`).join(', ');
        if (v === undefined) return at(`missing (one of ${allowed})`);
        const got = typeof v === 'string' ? `"${v.slice(0, 40)}"` : kind(v);
        return at(`${got} is not one of ${allowed}`);
      }
      return at('matches no allowed form');
    }
    case 'too_big':
      if (issue.origin === 'array') return at(`too many items (max ${String(issue.maximum)})`);
      if (issue.origin === 'string') return at(`too long (max ${String(issue.maximum)} characters)`);
      return at(`must be <= ${String(issue.maximum)}`);
    case 'too_small':
      if (issue.origin === 'array') return at(`too few items (min ${String(issue.minimum)})`);
      if (issue.origin === 'string') return at(issue.minimum === 1 ? 'empty' : `too short (min ${String(issue.minimum)} characters)`);
      return at(`must be >= ${String(issue.minimum)}`);
    default:
      return at(issue.message.replace(/^Invalid input: /, ''));
  }
}

/**
 * Validate `data` against `schema`. On failure the message names each bad
 * field by path, e.g. `machine.box: not base64` or `endpoints[2]: not ip:port
 * or [ipv6]:port` (the first few issues, joined by "; "). Never throws.
 */
export function parseOr400<T>(schema: z.ZodType<T>, data: unknown): ParseResult<T> {
  let r: ReturnType<typeof schema.safeParse>;
  try {
    r = schema.safeParse(data);
  } catch (err) {
    return { ok: false, error: `(body): unparseable (${(err as Error).message})` };
  }
  if (r.success) return { ok: true, value: r.data };
  // One message per field: the first problem found with it.
  const seen = new Set<string>();
  const issues = r.error.issues.filter((i) => {
    const p = formatPath(i.path) + (i.code === 'unrecognized_keys' ? ' +keys' : '');
    if (seen.has(p)) return false;
    seen.add(p);
    return true;
  });
  const shown = issues.slice(0, MAX_ISSUES_SHOWN).map((i) => describeIssue(i, data));
  if (issues.length > MAX_ISSUES_SHOWN) shown.push(`(and ${issues.length - MAX_ISSUES_SHOWN} more)`);
  return { ok: false, error: shown.join('; ') };
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
