/**
 * WireGuard message codecs (whitepaper §5.4). Pure: bytes in, fields out.
 *
 *   initiation (148): type=1 |3 zero| sender u32le | ephemeral 32 | static 32+16 | timestamp 12+16 | mac1 16 | mac2 16
 *   response    (92): type=2 |3 zero| sender u32le | receiver u32le | ephemeral 32 | empty 0+16 | mac1 16 | mac2 16
 *   cookie      (64): type=3 |3 zero| receiver u32le | nonce 24 | cookie 16+16
 *   transport (≥32): type=4 |3 zero| receiver u32le | counter u64le | ciphertext (padded to 16) + 16
 *
 * Decoders return null for anything malformed (wrong type, length, reserved bytes):
 * callers drop and count, never throw on the packet path.
 */
export const MESSAGE_INITIATION = 1;
export const MESSAGE_RESPONSE = 2;
export const MESSAGE_COOKIE_REPLY = 3;
export const MESSAGE_TRANSPORT = 4;

export const INITIATION_SIZE = 148;
export const RESPONSE_SIZE = 92;
export const COOKIE_REPLY_SIZE = 64;
export const TRANSPORT_HEADER_SIZE = 16;
export const TRANSPORT_MIN_SIZE = 32; // header + empty padded payload + tag
/** Bytes WireGuard adds to each inner packet (header + tag), excluding padding. */
export const TRANSPORT_OVERHEAD = 32;


export interface Initiation {
  sender: number;
  ephemeral: Uint8Array;
  encStatic: Uint8Array;
  encTimestamp: Uint8Array;
  mac1: Uint8Array;
  mac2: Uint8Array;
}

export interface Response {
  sender: number;
  receiver: number;
  ephemeral: Uint8Array;
  encEmpty: Uint8Array;
  mac1: Uint8Array;
  mac2: Uint8Array;
}

export interface CookieReply {
  receiver: number;
  nonce: Uint8Array;
  encCookie: Uint8Array;
}

/** Message type of a datagram, or 0 if it does not look like WireGuard (type 1–4 then three zero bytes). */
export function messageType(buf: Uint8Array, off: number, len: number): number {
  if (len < 4) return 0;
  const t = buf[off]!;
  if (t < 1 || t > 4 || buf[off + 1] !== 0 || buf[off + 2] !== 0 || buf[off + 3] !== 0) return 0;
  return t;
}

function u32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

function putU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = (v >>> 16) & 0xff;
  b[o + 3] = (v >>> 24) & 0xff;
}

export { u32 as readU32LE, putU32 as writeU32LE };

export function decodeInitiation(b: Uint8Array): Initiation | null {
  if (b.length !== INITIATION_SIZE || messageType(b, 0, b.length) !== MESSAGE_INITIATION) return null;
  return {
    sender: u32(b, 4),
    ephemeral: b.subarray(8, 40),
    encStatic: b.subarray(40, 88),
    encTimestamp: b.subarray(88, 116),
    mac1: b.subarray(116, 132),
    mac2: b.subarray(132, 148),
  };
}

export function encodeInitiation(m: Omit<Initiation, 'mac1' | 'mac2'>): Uint8Array {
  const b = new Uint8Array(INITIATION_SIZE);
  b[0] = MESSAGE_INITIATION;
  putU32(b, 4, m.sender);
  b.set(m.ephemeral, 8);
  b.set(m.encStatic, 40);
  b.set(m.encTimestamp, 88);
  return b;
}

export function decodeResponse(b: Uint8Array): Response | null {
  if (b.length !== RESPONSE_SIZE || messageType(b, 0, b.length) !== MESSAGE_RESPONSE) return null;
  return {
    sender: u32(b, 4),
    receiver: u32(b, 8),
    ephemeral: b.subarray(12, 44),
    encEmpty: b.subarray(44, 60),
    mac1: b.subarray(60, 76),
    mac2: b.subarray(76, 92),
  };
}

export function encodeResponse(m: Omit<Response, 'mac1' | 'mac2'>): Uint8Array {
  const b = new Uint8Array(RESPONSE_SIZE);
  b[0] = MESSAGE_RESPONSE;
  putU32(b, 4, m.sender);
  putU32(b, 8, m.receiver);
  b.set(m.ephemeral, 12);
  b.set(m.encEmpty, 44);
  return b;
}

export function decodeCookieReply(b: Uint8Array): CookieReply | null {
  if (b.length !== COOKIE_REPLY_SIZE || messageType(b, 0, b.length) !== MESSAGE_COOKIE_REPLY) return null;
  return { receiver: u32(b, 4), nonce: b.subarray(8, 32), encCookie: b.subarray(32, 64) };
}

export function encodeCookieReply(m: CookieReply): Uint8Array {
  const b = new Uint8Array(COOKIE_REPLY_SIZE);
  b[0] = MESSAGE_COOKIE_REPLY;
  putU32(b, 4, m.receiver);
  b.set(m.nonce, 8);
  b.set(m.encCookie, 32);
  return b;
}

/** Offsets of the MACs within a handshake message (they cover everything before them). */
export function macOffsets(len: number): { mac1: number; mac2: number } {
  return { mac1: len - 32, mac2: len - 16 };
}

/** Transport header fields, read in place (no allocation). Returns false if malformed. */
export function isTransport(buf: Uint8Array, off: number, len: number): boolean {
  return len >= TRANSPORT_MIN_SIZE && messageType(buf, off, len) === MESSAGE_TRANSPORT;
}

/** The 64-bit counter of a transport message as a number, or -1 if ≥ 2^53. */
export function transportCounter(buf: Uint8Array, off: number): number {
  const lo = u32(buf, off + 8);
  const hi = u32(buf, off + 12);
  if (hi >= 0x200000) return -1;
  return hi * 0x100000000 + lo;
}
