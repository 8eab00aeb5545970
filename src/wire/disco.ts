/**
 * Disco: the sealed messages peers exchange to find a path to each other
 * (ping, pong, call-me-maybe), over the data socket and over the relay.
 * Pure codec: bytes in, fields out; no state.
 *
 *   datagram:  magic (6) | sender disco public key (32) | nonce (24) | box
 *   box:       NaCl crypto_box (X25519 + XSalsa20-Poly1305) of the plaintext,
 *              from the sender's disco private key to the receiver's disco
 *              public key: Poly1305 tag (16) || ciphertext (see src/crypto/box.ts)
 *   plaintext: type (1) | version (1) | payload
 *
 *   ping        type 1: txid (12) | sender's WireGuard node key (32) | padding (any length)
 *   pong        type 2: txid (12) | source seen (ip 16 | port u16be)
 *   callMeMaybe type 3: n × (ip 16 | port u16be), n ≤ MAX_CALL_ME_MAYBE_ENDPOINTS
 *
 * Addresses are 16 bytes, IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d); they
 * decode to text with IPv4 unmapped ("192.0.2.1", "2001:db8::1").
 *
 * The magic is "WR" then U+1F407 RABBIT in UTF-8: 57 52 F0 9F 90 87. It can be
 * neither of the other things the data socket carries:
 *  - WireGuard: byte 0 is 1..4 and bytes 1..3 are zero; ours starts 0x57.
 *  - STUN (RFC 8489 and classic RFC 3489): the two top bits of byte 0 are zero
 *    (0x57 = 0b01_010111), and RFC 8489 also has the cookie 21 12 A4 42 at
 *    bytes 4..7, where ours has 90 87.
 *
 * The sender key must be canonical (isCanonicalKey), so a datagram cannot be
 * re-labelled with another encoding of the same key.
 *
 * Forward compatibility: every version number is accepted, trailing bytes
 * after a known payload are ignored (for ping they are the padding), and an
 * unknown type decodes to { type: 'unknown' } — a newer peer's message is
 * skipped, not an error. Decoders never throw: garbage gives null.
 * Encoders throw DiscoError on a malformed message of our own (caller bug).
 */
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { isIPv4, isIPv6 } from 'node:net';
import type * as IpaddrModule from 'ipaddr.js';
import { BOX_BEFORENM_LEN, BOX_NONCE_LEN, BOX_TAG_LEN, boxOpen, boxOpenAfterNm, boxSeal, boxSealAfterNm } from '../crypto/box.js';
import { KEY_LEN } from '../crypto/x25519.js';
import { MAX_ENDPOINTS } from './limits.js';

// ipaddr.js is CommonJS with `export =` (see src/control/wgquick.ts).
const ipaddr = createRequire(import.meta.url)('ipaddr.js') as typeof IpaddrModule;

export const DISCO_MAGIC: Uint8Array = Uint8Array.of(0x57, 0x52, 0xf0, 0x9f, 0x90, 0x87);
export const DISCO_MAGIC_LEN = 6;
export const DISCO_KEY_LEN = KEY_LEN;
export const DISCO_NONCE_LEN = BOX_NONCE_LEN;
/** magic | sender key | nonce */
export const DISCO_HEADER_LEN = DISCO_MAGIC_LEN + DISCO_KEY_LEN + DISCO_NONCE_LEN;
/** Bytes a datagram adds around its plaintext: header and Poly1305 tag. */
export const DISCO_OVERHEAD = DISCO_HEADER_LEN + BOX_TAG_LEN;
/** The smallest datagram that can hold a message (type and version, empty payload). */
export const DISCO_MIN_LEN = DISCO_OVERHEAD + 2;

export const DISCO_VERSION = 0;
export const DISCO_PING = 1;
export const DISCO_PONG = 2;
export const DISCO_CALL_ME_MAYBE = 3;

export const DISCO_TXID_LEN = 12;
/** An address on the wire: 16-byte IP, port u16be. */
export const DISCO_ADDR_LEN = 18;
const PING_PAYLOAD = DISCO_TXID_LEN + KEY_LEN;
const PONG_PAYLOAD = DISCO_TXID_LEN + DISCO_ADDR_LEN;
/** Size of a sealed ping without padding; a ping padded by n is DISCO_PING_LEN + n bytes. */
export const DISCO_PING_LEN = DISCO_MIN_LEN + PING_PAYLOAD;
/** As many as control carries for a node (64 × 18 + 80 = 1232 bytes: IPv6's minimum MTU less headers). */
export const MAX_CALL_ME_MAYBE_ENDPOINTS = MAX_ENDPOINTS;

export type DiscoAddr = { ip: string; port: number };

export interface DiscoPing {
  type: 'ping';
  txid: Uint8Array;
  /** The sender's WireGuard node key. */
  nodeKey: Uint8Array;
  /** Zero bytes appended (path-MTU probing); decoded: how many bytes followed the node key. Absent = 0. */
  padding?: number;
}

export interface DiscoPong {
  type: 'pong';
  txid: Uint8Array;
  /** Where the ping came from as the answering peer saw it (:: port 0 when it came via a relay). */
  src: DiscoAddr;
}

export interface DiscoCallMeMaybe {
  type: 'callMeMaybe';
  endpoints: DiscoAddr[];
}

/** A type this version does not know (from a newer peer): skip it. Encodes as type and version only. */
export interface DiscoUnknown {
  type: 'unknown';
  code: number;
  version: number;
}

export type DiscoMessage = DiscoPing | DiscoPong | DiscoCallMeMaybe | DiscoUnknown;

export class DiscoError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'DiscoError';
    this.code = code;
  }
}

// --------------------------------------------------------------- addresses

/** An IP in its 16-byte wire form (IPv4 mapped), or null if `ip` is not an address. */
export function ipTo16(ip: string): Uint8Array | null {
  if (isIPv4(ip)) return Uint8Array.from(ipaddr.IPv4.parse(ip).toIPv4MappedAddress().toByteArray());
  if (isIPv6(ip)) return Uint8Array.from(ipaddr.IPv6.parse(ip).toByteArray());
  return null;
}

/** Text of a 16-byte address: IPv4-mapped ones as plain IPv4. */
export function ipFrom16(b: Uint8Array): string {
  const v6 = ipaddr.fromByteArray(Array.from(b.subarray(0, 16))) as IpaddrModule.IPv6;
  return v6.isIPv4MappedAddress() ? v6.toIPv4Address().toString() : v6.toString();
}

function putAddr(out: Uint8Array, off: number, a: DiscoAddr): void {
  const ip = ipTo16(a.ip);
  if (!ip) throw new DiscoError('EADDR', `not an IP address: ${a.ip}`);
  if (!Number.isInteger(a.port) || a.port < 0 || a.port > 65535) throw new DiscoError('EADDR', `port out of range: ${a.port}`);
  out.set(ip, off);
  out[off + 16] = a.port >> 8;
  out[off + 17] = a.port & 0xff;
}

function readAddr(b: Uint8Array, off: number): DiscoAddr {
  return { ip: ipFrom16(b.subarray(off, off + 16)), port: (b[off + 16]! << 8) | b[off + 17]! };
}

// --------------------------------------------------------------- plaintext

function checkLen(what: string, b: Uint8Array, n: number): void {
  if (!(b instanceof Uint8Array) || b.length !== n) throw new DiscoError('ELEN', `${what} must be ${n} bytes`);
}

/** type | version | payload. */
export function encodeDiscoPlain(msg: DiscoMessage): Uint8Array {
  switch (msg.type) {
    case 'ping': {
      checkLen('ping txid', msg.txid, DISCO_TXID_LEN);
      checkLen('ping node key', msg.nodeKey, KEY_LEN);
      const pad = msg.padding ?? 0;
      if (!Number.isInteger(pad) || pad < 0 || pad > 65535) throw new DiscoError('EPAD', `padding out of range: ${pad}`);
      const out = new Uint8Array(2 + PING_PAYLOAD + pad);
      out[0] = DISCO_PING;
      out.set(msg.txid, 2);
      out.set(msg.nodeKey, 2 + DISCO_TXID_LEN);
      return out;
    }
    case 'pong': {
      checkLen('pong txid', msg.txid, DISCO_TXID_LEN);
      const out = new Uint8Array(2 + PONG_PAYLOAD);
      out[0] = DISCO_PONG;
      out.set(msg.txid, 2);
      putAddr(out, 2 + DISCO_TXID_LEN, msg.src);
      return out;
    }
    case 'callMeMaybe': {
      const n = msg.endpoints.length;
      if (n > MAX_CALL_ME_MAYBE_ENDPOINTS) throw new DiscoError('ETOOMANY', `call-me-maybe holds at most ${MAX_CALL_ME_MAYBE_ENDPOINTS} endpoints, got ${n}`);
      const out = new Uint8Array(2 + n * DISCO_ADDR_LEN);
      out[0] = DISCO_CALL_ME_MAYBE;
      for (let i = 0; i < n; i++) putAddr(out, 2 + i * DISCO_ADDR_LEN, msg.endpoints[i]!);
      return out;
    }
    case 'unknown': {
      if (!Number.isInteger(msg.code) || msg.code < 0 || msg.code > 255 || !Number.isInteger(msg.version) || msg.version < 0 || msg.version > 255) {
        throw new DiscoError('ETYPE', 'unknown message code and version must be bytes');
      }
      return Uint8Array.of(msg.code, msg.version);
    }
  }
}

/** The message in a plaintext, or null if a known type's payload is short. Never throws. */
export function decodeDiscoPlain(b: Uint8Array): DiscoMessage | null {
  if (b.length < 2) return null;
  const type = b[0]!;
  const p = b.subarray(2);
  switch (type) {
    case DISCO_PING: {
      if (p.length < PING_PAYLOAD) return null;
      const m: DiscoPing = { type: 'ping', txid: p.slice(0, DISCO_TXID_LEN), nodeKey: p.slice(DISCO_TXID_LEN, PING_PAYLOAD) };
      if (p.length > PING_PAYLOAD) m.padding = p.length - PING_PAYLOAD;
      return m;
    }
    case DISCO_PONG:
      if (p.length < PONG_PAYLOAD) return null;
      return { type: 'pong', txid: p.slice(0, DISCO_TXID_LEN), src: readAddr(p, DISCO_TXID_LEN) };
    case DISCO_CALL_ME_MAYBE: {
      // A partial entry at the end is trailing garbage; entries past the bound are ignored.
      const n = Math.min(Math.floor(p.length / DISCO_ADDR_LEN), MAX_CALL_ME_MAYBE_ENDPOINTS);
      const endpoints: DiscoAddr[] = [];
      for (let i = 0; i < n; i++) endpoints.push(readAddr(p, i * DISCO_ADDR_LEN));
      return { type: 'callMeMaybe', endpoints };
    }
    default:
      return { type: 'unknown', code: type, version: b[1]! };
  }
}

// --------------------------------------------------------------- datagrams

/** True if `len` bytes at `off` start with the disco magic and are long enough to be a message. */
export function isDisco(buf: Uint8Array, off: number, len: number): boolean {
  if (len < DISCO_MIN_LEN || off < 0 || off + len > buf.length) return false;
  for (let i = 0; i < DISCO_MAGIC_LEN; i++) if (buf[off + i] !== DISCO_MAGIC[i]) return false;
  return true;
}

/**
 * A sealed datagram carrying `msg` from (senderPriv, senderPub) to receiverPub.
 * The nonce is random unless given (tests). Throws CryptoError on a malformed
 * or low-order key and DiscoError on a malformed message.
 */
export function sealDisco(
  msg: DiscoMessage,
  senderPriv: Uint8Array,
  senderPub: Uint8Array,
  receiverPub: Uint8Array,
  nonce: Uint8Array = new Uint8Array(randomBytes(DISCO_NONCE_LEN)),
): Uint8Array {
  checkLen('sender public key', senderPub, KEY_LEN);
  return frame(senderPub, nonce, boxSeal(encodeDiscoPlain(msg), nonce, receiverPub, senderPriv));
}

/**
 * sealDisco with the shared key made beforehand (boxBeforeNm(receiverPub,
 * senderPriv)): no Diffie-Hellman per message, for a sender that answers
 * many. Same bytes as sealDisco for the same nonce.
 */
export function sealDiscoAfterNm(
  msg: DiscoMessage,
  senderPub: Uint8Array,
  sharedKey: Uint8Array,
  nonce: Uint8Array = new Uint8Array(randomBytes(DISCO_NONCE_LEN)),
): Uint8Array {
  checkLen('sender public key', senderPub, KEY_LEN);
  checkLen('shared key', sharedKey, BOX_BEFORENM_LEN);
  return frame(senderPub, nonce, boxSealAfterNm(encodeDiscoPlain(msg), nonce, sharedKey));
}

function frame(senderPub: Uint8Array, nonce: Uint8Array, sealed: Uint8Array): Uint8Array {
  const out = new Uint8Array(DISCO_HEADER_LEN + sealed.length);
  out.set(DISCO_MAGIC, 0);
  out.set(senderPub, DISCO_MAGIC_LEN);
  out.set(nonce, DISCO_MAGIC_LEN + DISCO_KEY_LEN);
  out.set(sealed, DISCO_HEADER_LEN);
  return out;
}

/**
 * Decides about a sender before any Diffie-Hellman is spent on it:
 * false/null/undefined = drop (not a peer of ours), true = open with X25519,
 * a 32-byte key = crypto_box_beforenm(senderPub, receiverPriv), cached by the caller.
 */
export type DiscoSenderLookup = (sender: Uint8Array) => Uint8Array | boolean | null | undefined;

export interface OpenedDisco {
  /** The sender's disco public key (a copy). */
  sender: Uint8Array;
  msg: DiscoMessage;
}

/**
 * Whether a 32-byte X25519 public key is in canonical form: u < 2^255 − 19
 * (hence top bit clear). X25519 ignores the top bit and reduces u mod p, so
 * without this check one sender would have several encodings — one identity
 * per key is what the receiver's lookup relies on.
 */
export function isCanonicalKey(k: Uint8Array): boolean {
  if (k.length !== KEY_LEN || k[31]! > 0x7f) return false;
  if (k[31]! < 0x7f || k[0]! < 0xed) return true;
  for (let i = 1; i < 31; i++) if (k[i] !== 0xff) return true;
  return false;
}

/** Open a disco datagram addressed to receiverPriv. Null on anything wrong; never throws. */
export function openDisco(buf: Uint8Array, receiverPriv: Uint8Array, lookupSender?: DiscoSenderLookup): OpenedDisco | null {
  if (!isDisco(buf, 0, buf.length)) return null;
  const sender = buf.slice(DISCO_MAGIC_LEN, DISCO_MAGIC_LEN + DISCO_KEY_LEN);
  if (!isCanonicalKey(sender)) return null;
  const nonce = buf.subarray(DISCO_MAGIC_LEN + DISCO_KEY_LEN, DISCO_HEADER_LEN);
  const sealed = buf.subarray(DISCO_HEADER_LEN);
  let plain: Uint8Array | null;
  try {
    const known = lookupSender ? lookupSender(sender) : true;
    if (!known) return null;
    plain = known === true ? boxOpen(sealed, nonce, sender, receiverPriv) : boxOpenAfterNm(sealed, nonce, known);
  } catch {
    return null;
  }
  if (!plain) return null;
  const msg = decodeDiscoPlain(plain);
  return msg ? { sender, msg } : null;
}
