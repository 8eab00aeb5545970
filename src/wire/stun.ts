/**
 * STUN codec: RFC 8489 Binding, the RFC 5780 behaviour-discovery attributes,
 * and classic RFC 3489 messages. Pure: bytes in, fields out.
 *
 *   header (20):  0 0|type (14 bits) | length u16 | magic cookie 0x2112A442 | transaction id (12)
 *   classic:      type u16           | length u16 | transaction id (16, no cookie)
 *   attribute:    type u16 | length u16 | value, zero-padded to a multiple of 4
 *
 * The length counts the attributes only and is always a multiple of 4.
 * A classic (RFC 3489) message is one whose bytes 4..7 are not the cookie;
 * its transaction id is 16 bytes and it is answered with MAPPED-ADDRESS
 * instead of XOR-MAPPED-ADDRESS (RFC 8489 §11). Here the transaction id's
 * length tells the two apart: 12 bytes = RFC 8489, 16 bytes = classic.
 *
 * decodeStun() returns null for anything malformed (header bits, length,
 * attribute overrun, more than MAX_ATTRIBUTES attributes, a FINGERPRINT that
 * is not last or does not match); attribute values are views into the input,
 * never copies. MESSAGE-INTEGRITY is recognised but not verified (Warren does
 * not use STUN authentication); attributes after it other than FINGERPRINT
 * are ignored, as RFC 8489 §14.5 says.
 */
import { createRequire } from 'node:module';
import { crc32 } from 'node:zlib';
import type * as IpaddrModule from 'ipaddr.js';

// ipaddr.js is CommonJS with `export =` (see src/control/wgquick.ts).
const ipaddr = createRequire(import.meta.url)('ipaddr.js') as typeof IpaddrModule;

export const STUN_MAGIC_COOKIE = 0x2112a442;
export const STUN_HEADER_SIZE = 20;
/** FINGERPRINT = CRC-32 of the message before it, XOR this ("STUN"). */
export const STUN_FINGERPRINT_XOR = 0x5354554e;
export const STUN_TRANSACTION_ID_SIZE = 12;
export const STUN_CLASSIC_TRANSACTION_ID_SIZE = 16;
/** More attributes than this and a message is treated as garbage (a binding needs fewer than ten). */
export const MAX_ATTRIBUTES = 64;

export const BINDING_REQUEST = 0x0001;
export const BINDING_INDICATION = 0x0011;
export const BINDING_SUCCESS = 0x0101;
export const BINDING_ERROR = 0x0111;

/** Attribute types (RFC 8489 §18.3, RFC 5780 §7, RFC 3489 §11.2 for the classic ones). */
export const StunAttr = {
  MAPPED_ADDRESS: 0x0001,
  RESPONSE_ADDRESS: 0x0002, // RFC 3489, deprecated
  CHANGE_REQUEST: 0x0003,
  SOURCE_ADDRESS: 0x0004, // RFC 3489
  CHANGED_ADDRESS: 0x0005, // RFC 3489
  USERNAME: 0x0006,
  MESSAGE_INTEGRITY: 0x0008,
  ERROR_CODE: 0x0009,
  UNKNOWN_ATTRIBUTES: 0x000a,
  REALM: 0x0014,
  NONCE: 0x0015,
  MESSAGE_INTEGRITY_SHA256: 0x001c,
  USERHASH: 0x001e,
  XOR_MAPPED_ADDRESS: 0x0020,
  PADDING: 0x0026,
  RESPONSE_PORT: 0x0027,
  SOFTWARE: 0x8022,
  FINGERPRINT: 0x8028,
  RESPONSE_ORIGIN: 0x802b,
  OTHER_ADDRESS: 0x802c,
} as const;

/** CHANGE-REQUEST flags (RFC 5780 §7.2). */
export const CHANGE_IP = 0x04;
export const CHANGE_PORT = 0x02;

/** Message class bits of a type (0x0110 mask): request, indication, success, error. */
export const StunClass = { Request: 0x0000, Indication: 0x0010, Success: 0x0100, Error: 0x0110 } as const;

export interface StunAddress {
  ip: string;
  port: number;
}

export interface StunAttribute {
  type: number;
  value: Uint8Array;
}

export interface StunMessage {
  type: number;
  /** 12 bytes (RFC 8489) or 16 bytes (classic RFC 3489: the cookie field is part of it). */
  transactionId: Uint8Array;
  classic: boolean;
  /** In order, excluding FINGERPRINT and anything after MESSAGE-INTEGRITY. */
  attributes: StunAttribute[];
  hasIntegrity: boolean;
  /** A FINGERPRINT was present (and matched: otherwise the message does not decode). */
  hasFingerprint: boolean;
}

/** One of StunClass. */
export function stunClass(type: number): number {
  return type & 0x0110;
}

export function stunMethod(type: number): number {
  return (type & 0x000f) | ((type & 0x00e0) >> 1) | ((type & 0x3e00) >> 2);
}

/** Message type of a method and a class (the inverse of stunMethod and stunClass). */
export function stunType(method: number, cls: number): number {
  return (method & 0x000f) | ((method & 0x0070) << 1) | ((method & 0x0f80) << 2) | (cls & 0x0110);
}

function u16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}

function u32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 0xff;
  b[o + 1] = v & 0xff;
}

function put32(b: Uint8Array, o: number, v: number): void {
  put16(b, o, v >>> 16);
  put16(b, o + 2, v & 0xffff);
}

/**
 * Cheap demultiplexing test for the shared data socket: an RFC 8489 message
 * (with the magic cookie) and nothing else. Checks the two zero bits, the
 * cookie at offset 4, and a length field that is a multiple of 4 and exactly
 * `len - 20`. That last check is what keeps WireGuard out even when a
 * message's index field happens to equal the cookie: a WireGuard message
 * starts with type 1..4 then three zero bytes, so its "length" field is 0
 * and it would have to be 20 bytes long — the shortest WireGuard message
 * (transport, empty payload) is 32. Classic RFC 3489 messages do not match.
 */
export function isStun(buf: Uint8Array, off: number, len: number): boolean {
  if (len < STUN_HEADER_SIZE || (buf[off]! & 0xc0) !== 0) return false;
  if (u32(buf, off + 4) !== STUN_MAGIC_COOKIE) return false;
  const msgLen = u16(buf, off + 2);
  return (msgLen & 3) === 0 && msgLen === len - STUN_HEADER_SIZE;
}

/** FINGERPRINT value for `b[0, end)` (the header's length must already cover the FINGERPRINT). */
function fingerprint(b: Uint8Array, end: number): number {
  return (crc32(b.subarray(0, end)) ^ STUN_FINGERPRINT_XOR) >>> 0;
}

/** Decode one STUN message (RFC 8489 or classic). Null on anything malformed; never throws. */
export function decodeStun(b: Uint8Array): StunMessage | null {
  if (b.length < STUN_HEADER_SIZE || (b[0]! & 0xc0) !== 0) return null;
  const msgLen = u16(b, 2);
  if ((msgLen & 3) !== 0 || msgLen !== b.length - STUN_HEADER_SIZE) return null;
  const classic = u32(b, 4) !== STUN_MAGIC_COOKIE;
  const attributes: StunAttribute[] = [];
  let hasIntegrity = false;
  let hasFingerprint = false;
  let count = 0;
  for (let o = STUN_HEADER_SIZE; o < b.length; ) {
    if (hasFingerprint || ++count > MAX_ATTRIBUTES) return null; // FINGERPRINT must be last
    if (o + 4 > b.length) return null;
    const type = u16(b, o);
    const len = u16(b, o + 2);
    const next = o + 4 + ((len + 3) & ~3);
    if (next > b.length) return null;
    const value = b.subarray(o + 4, o + 4 + len);
    if (type === StunAttr.FINGERPRINT) {
      if (len !== 4 || u32(value, 0) !== fingerprint(b, o)) return null;
      hasFingerprint = true;
    } else if (type === StunAttr.MESSAGE_INTEGRITY || type === StunAttr.MESSAGE_INTEGRITY_SHA256) {
      hasIntegrity = true;
    } else if (!hasIntegrity) {
      attributes.push({ type, value });
    }
    o = next;
  }
  const transactionId = classic ? b.subarray(4, 20) : b.subarray(8, 20);
  return { type: u16(b, 0), transactionId, classic, attributes, hasIntegrity, hasFingerprint };
}

/** The first attribute of `type`, or undefined. */
export function getAttr(m: StunMessage, type: number): Uint8Array | undefined {
  return m.attributes.find((a) => a.type === type)?.value;
}

/** Comprehension-required attributes (type < 0x8000) not in `known`, each listed once. */
export function unknownRequired(m: StunMessage, known: ReadonlySet<number>): number[] {
  const out: number[] = [];
  for (const a of m.attributes) if (a.type < 0x8000 && !known.has(a.type) && !out.includes(a.type)) out.push(a.type);
  return out;
}

// --- attribute values -------------------------------------------------------

function ipBytes(ip: string): Uint8Array {
  return Uint8Array.from(ipaddr.parse(ip).toByteArray());
}

function ipText(bytes: Uint8Array): string {
  return ipaddr.fromByteArray(Array.from(bytes)).toString();
}

/**
 * An address in its canonical text form (IPv6 compressed and lower case,
 * IPv4-mapped IPv6 as plain IPv4), for comparing addresses; throws if `ip`
 * is not an address.
 */
export function canonicalIp(ip: string): string {
  return ipaddr.process(ip).toString();
}

/** Address attribute value (MAPPED-ADDRESS, RESPONSE-ORIGIN, ...); `xor` = the 16 bytes cookie||txid for XOR-MAPPED-ADDRESS. */
function readAddr(v: Uint8Array, xor?: Uint8Array): StunAddress | null {
  if (v.length < 4) return null;
  const family = v[1];
  const size = family === 1 ? 4 : family === 2 ? 16 : 0;
  if (size === 0 || v.length !== 4 + size) return null;
  const addr = v.slice(4);
  let port = u16(v, 2);
  if (xor) {
    port ^= STUN_MAGIC_COOKIE >>> 16;
    for (let i = 0; i < size; i++) addr[i]! ^= xor[i]!;
  }
  return { ip: ipText(addr), port };
}

function writeAddr(addr: StunAddress, xor?: Uint8Array): Uint8Array {
  const ip = ipBytes(addr.ip);
  const v = new Uint8Array(4 + ip.length);
  v[1] = ip.length === 4 ? 1 : 2;
  put16(v, 2, xor ? addr.port ^ (STUN_MAGIC_COOKIE >>> 16) : addr.port);
  for (let i = 0; i < ip.length; i++) v[4 + i] = xor ? ip[i]! ^ xor[i]! : ip[i]!;
  return v;
}

/** cookie || transaction id: what XOR-MAPPED-ADDRESS is XORed with. */
function xorKey(transactionId: Uint8Array): Uint8Array {
  const k = new Uint8Array(16);
  put32(k, 0, STUN_MAGIC_COOKIE);
  k.set(transactionId.subarray(0, 12), 4);
  return k;
}

export function addressAttr(type: number, addr: StunAddress): StunAttribute {
  return { type, value: writeAddr(addr) };
}

export function xorMappedAttr(addr: StunAddress, transactionId: Uint8Array): StunAttribute {
  return { type: StunAttr.XOR_MAPPED_ADDRESS, value: writeAddr(addr, xorKey(transactionId)) };
}

export function changeRequestAttr(flags: number): StunAttribute {
  const value = new Uint8Array(4);
  put32(value, 0, flags & (CHANGE_IP | CHANGE_PORT));
  return { type: StunAttr.CHANGE_REQUEST, value };
}

export function softwareAttr(text: string): StunAttribute {
  return { type: StunAttr.SOFTWARE, value: new TextEncoder().encode(text.slice(0, 127)) };
}

/**
 * ERROR-CODE. Classic clients walk attributes by their length alone, with no
 * padding, so for them the reason is padded with spaces to a multiple of 4.
 */
export function errorCodeAttr(code: number, reason: string, classic = false): StunAttribute {
  let text = reason.slice(0, 127);
  if (classic) text = text.padEnd((text.length + 3) & ~3, ' ');
  const r = new TextEncoder().encode(text);
  const value = new Uint8Array(4 + r.length);
  value[2] = Math.floor(code / 100) & 0x07;
  value[3] = code % 100;
  value.set(r, 4);
  return { type: StunAttr.ERROR_CODE, value };
}

/** UNKNOWN-ATTRIBUTES; for classic clients an odd count repeats one so the length is a multiple of 4 (RFC 3489 §11.2.8). */
export function unknownAttributesAttr(types: number[], classic = false): StunAttribute {
  const list = classic && types.length % 2 === 1 ? [...types, types[0]!] : types;
  const value = new Uint8Array(2 * list.length);
  list.forEach((t, i) => put16(value, 2 * i, t));
  return { type: StunAttr.UNKNOWN_ATTRIBUTES, value };
}

/** The fields of a Binding message, each decoded if present. */
export interface StunFields {
  xorMapped?: StunAddress;
  mapped?: StunAddress;
  responseOrigin?: StunAddress;
  otherAddress?: StunAddress;
  sourceAddress?: StunAddress;
  changedAddress?: StunAddress;
  changeRequest?: { ip: boolean; port: boolean };
  software?: string;
  error?: { code: number; reason: string };
  unknownAttributes?: number[];
}

const ADDRESS_FIELDS: [number, keyof StunFields][] = [
  [StunAttr.MAPPED_ADDRESS, 'mapped'],
  [StunAttr.RESPONSE_ORIGIN, 'responseOrigin'],
  [StunAttr.OTHER_ADDRESS, 'otherAddress'],
  [StunAttr.SOURCE_ADDRESS, 'sourceAddress'],
  [StunAttr.CHANGED_ADDRESS, 'changedAddress'],
];

/** Decode the attributes Warren uses; null if one of them is malformed. */
export function readFields(m: StunMessage): StunFields | null {
  const f: StunFields = {};
  const xm = getAttr(m, StunAttr.XOR_MAPPED_ADDRESS);
  if (xm && !m.classic) {
    const a = readAddr(xm, xorKey(m.transactionId));
    if (!a) return null;
    f.xorMapped = a;
  }
  for (const [type, key] of ADDRESS_FIELDS) {
    const v = getAttr(m, type);
    if (!v) continue;
    const a = readAddr(v);
    if (!a) return null;
    (f as Record<string, StunAddress>)[key] = a;
  }
  const cr = getAttr(m, StunAttr.CHANGE_REQUEST);
  if (cr) {
    if (cr.length !== 4) return null;
    f.changeRequest = { ip: (cr[3]! & CHANGE_IP) !== 0, port: (cr[3]! & CHANGE_PORT) !== 0 };
  }
  const sw = getAttr(m, StunAttr.SOFTWARE);
  if (sw) f.software = new TextDecoder().decode(sw);
  const ec = getAttr(m, StunAttr.ERROR_CODE);
  if (ec) {
    if (ec.length < 4 || ec[3]! > 99 || (ec[2]! & 7) < 3) return null;
    f.error = { code: (ec[2]! & 7) * 100 + ec[3]!, reason: new TextDecoder().decode(ec.subarray(4)).trimEnd() };
  }
  const ua = getAttr(m, StunAttr.UNKNOWN_ATTRIBUTES);
  if (ua) {
    if (ua.length % 2 !== 0) return null;
    f.unknownAttributes = [];
    for (let i = 0; i < ua.length; i += 2) f.unknownAttributes.push(u16(ua, i));
  }
  return f;
}

// --- messages ------------------------------------------------------------

/**
 * Encode a message. A 16-byte transaction id makes a classic (RFC 3489)
 * message: no cookie, and FINGERPRINT is not allowed (classic clients do not
 * know it). Throws only on programmer error (bad transaction id length).
 */
export function encodeStun(m: { type: number; transactionId: Uint8Array; attributes: StunAttribute[]; fingerprint?: boolean }): Uint8Array {
  const classic = m.transactionId.length === STUN_CLASSIC_TRANSACTION_ID_SIZE;
  if (!classic && m.transactionId.length !== STUN_TRANSACTION_ID_SIZE) throw new RangeError('STUN transaction id must be 12 or 16 bytes');
  const withFp = m.fingerprint === true && !classic;
  let size = STUN_HEADER_SIZE + (withFp ? 8 : 0);
  for (const a of m.attributes) size += 4 + ((a.value.length + 3) & ~3);
  if (size - STUN_HEADER_SIZE > 0xffff) throw new RangeError('STUN message too long');
  const b = new Uint8Array(size);
  put16(b, 0, m.type & 0x3fff);
  put16(b, 2, size - STUN_HEADER_SIZE);
  if (classic) {
    b.set(m.transactionId, 4);
  } else {
    put32(b, 4, STUN_MAGIC_COOKIE);
    b.set(m.transactionId, 8);
  }
  let o = STUN_HEADER_SIZE;
  for (const a of m.attributes) {
    put16(b, o, a.type);
    put16(b, o + 2, a.value.length);
    b.set(a.value, o + 4);
    o += 4 + ((a.value.length + 3) & ~3);
  }
  if (withFp) {
    put16(b, o, StunAttr.FINGERPRINT);
    put16(b, o + 2, 4);
    put32(b, o + 4, fingerprint(b, o));
  }
  return b;
}

/** A Binding request; `change` asks an RFC 5780 server to answer from its other IP and/or port. */
export function encodeBindingRequest(
  transactionId: Uint8Array,
  opts: { changeIp?: boolean; changePort?: boolean; software?: string; fingerprint?: boolean } = {},
): Uint8Array {
  const attributes: StunAttribute[] = [];
  if (opts.changeIp || opts.changePort) attributes.push(changeRequestAttr((opts.changeIp ? CHANGE_IP : 0) | (opts.changePort ? CHANGE_PORT : 0)));
  if (opts.software) attributes.push(softwareAttr(opts.software));
  return encodeStun({ type: BINDING_REQUEST, transactionId, attributes, fingerprint: opts.fingerprint });
}

/**
 * A Binding success response. RFC 8489 requests get XOR-MAPPED-ADDRESS,
 * RESPONSE-ORIGIN, OTHER-ADDRESS, SOFTWARE and FINGERPRINT; classic requests
 * (16-byte id) get what an RFC 3489 client understands: MAPPED-ADDRESS,
 * SOURCE-ADDRESS and CHANGED-ADDRESS, nothing else (the stock `stun` client
 * refuses a response with an attribute below 0x8000 it does not know, and
 * misreads strings whose length is not a multiple of 4).
 */
export function encodeBindingSuccess(
  transactionId: Uint8Array,
  r: { mapped: StunAddress; responseOrigin?: StunAddress; otherAddress?: StunAddress; software?: string },
): Uint8Array {
  const classic = transactionId.length === STUN_CLASSIC_TRANSACTION_ID_SIZE;
  const attributes: StunAttribute[] = [];
  if (classic) {
    attributes.push(addressAttr(StunAttr.MAPPED_ADDRESS, r.mapped));
    if (r.responseOrigin) attributes.push(addressAttr(StunAttr.SOURCE_ADDRESS, r.responseOrigin));
    if (r.otherAddress) attributes.push(addressAttr(StunAttr.CHANGED_ADDRESS, r.otherAddress));
  } else {
    attributes.push(xorMappedAttr(r.mapped, transactionId));
    if (r.responseOrigin) attributes.push(addressAttr(StunAttr.RESPONSE_ORIGIN, r.responseOrigin));
    if (r.otherAddress) attributes.push(addressAttr(StunAttr.OTHER_ADDRESS, r.otherAddress));
    if (r.software) attributes.push(softwareAttr(r.software));
  }
  return encodeStun({ type: BINDING_SUCCESS, transactionId, attributes, fingerprint: true });
}

/**
 * An error response (e.g. 400 Bad Request, 420 Unknown Attribute with the
 * attributes that were not understood) to a Binding request, or to a
 * request of another `method`.
 */
export function encodeBindingError(
  transactionId: Uint8Array,
  e: { code: number; reason: string; unknown?: number[]; software?: string; method?: number },
): Uint8Array {
  const classic = transactionId.length === STUN_CLASSIC_TRANSACTION_ID_SIZE;
  const attributes: StunAttribute[] = [errorCodeAttr(e.code, e.reason, classic)];
  if (e.unknown && e.unknown.length > 0) attributes.push(unknownAttributesAttr(e.unknown, classic));
  if (e.software && !classic) attributes.push(softwareAttr(e.software));
  const type = e.method === undefined ? BINDING_ERROR : stunType(e.method, StunClass.Error);
  return encodeStun({ type, transactionId, attributes, fingerprint: true });
}
