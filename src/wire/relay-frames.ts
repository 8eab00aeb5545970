/**
 * Relay framing (relay-protocol.md): after the HTTP upgrade both directions
 * carry frames
 *
 *   0      1               5                    5 + length
 *   +------+---------------+--------------------+
 *   | type | length u32 BE | payload (length)   |  next frame ...
 *   +------+---------------+--------------------+
 *
 * with these payloads (keys are 32-byte X25519 public keys):
 *
 *   0x01 server-challenge  server key (32) | nonce (24)          trailing bytes ignored
 *   0x02 client-proof      node key (32)   | box (41..72)        proof bound to nonce and TLS exporter
 *   0x03 server-ok         keepalive ms u32 BE                  trailing bytes ignored
 *   0x04 server-refused    reason (UTF-8, ≤ 1024 bytes)
 *   0x05 send-packet       destination key (32) | packet
 *   0x06 recv-packet       source key (32) | packet
 *   0x07 keepalive         (empty)                              trailing bytes ignored
 *   0x08 ping              8 opaque bytes                       trailing bytes ignored
 *   0x09 pong              the ping's 8 bytes                   trailing bytes ignored
 *   0x0a peer-gone         key (32) | reason (UTF-8, ≤ 1024 bytes)
 *   0x0b health            text (UTF-8, ≤ 1024 bytes; empty = healthy)
 *
 * Other type bytes decode as `unknown` frames, which receivers ignore (and
 * count): room to grow without a new version. A payload longer than
 * MAX_PAYLOAD_LEN is refused from its header alone; a known frame whose
 * payload does not fit its layout is malformed. Both leave the stream
 * unusable: the connection is closed.
 *
 * Pure: encoders return fresh Buffers; decoders return views into the input
 * (copy what you keep) and never throw.
 */
import { createHash } from 'node:crypto';
import { makeProof, toB64, verifyProof, type ProofPurpose } from './control.js';

/** `GET` path of the relay upgrade, and its `Upgrade:` token. */
export const RELAY_PATH = '/relay';
export const RELAY_UPGRADE_PROTOCOL = 'warren-relay/1';
/** Default keepalive interval; 2× without a frame means a dead connection. */
export const DEFAULT_RELAY_KEEPALIVE_MS = 30_000;
/** The client-proof must arrive this soon after the challenge (the nonce's lifetime). */
export const RELAY_PROOF_TIMEOUT_MS = 10_000;

export const RELAY_HEADER_LEN = 5;
/** Largest payload of any frame (the header is extra). */
export const MAX_PAYLOAD_LEN = 64 * 1024;
export const RELAY_KEY_LEN = 32;
export const RELAY_NONCE_LEN = 24;
/** Largest packet a send-packet / recv-packet frame carries. */
export const MAX_PACKET_LEN = MAX_PAYLOAD_LEN - RELAY_KEY_LEN;
export const PING_LEN = 8;
/** Reasons and health texts are cut to this many bytes. */
export const MAX_TEXT_LEN = 1024;
/** The proof box: 16-byte tag + (24-byte nonce + purpose of 1..32 bytes). */
export const MIN_PROOF_BOX_LEN = 16 + RELAY_NONCE_LEN + 1;
export const MAX_PROOF_BOX_LEN = 16 + RELAY_NONCE_LEN + 32;

export const FRAME_TYPE = {
  'server-challenge': 0x01,
  'client-proof': 0x02,
  'server-ok': 0x03,
  'server-refused': 0x04,
  'send-packet': 0x05,
  'recv-packet': 0x06,
  keepalive: 0x07,
  ping: 0x08,
  pong: 0x09,
  'peer-gone': 0x0a,
  health: 0x0b,
} as const;

export type RelayFrame =
  | { type: 'server-challenge'; serverKey: Uint8Array; nonce: Uint8Array }
  | { type: 'client-proof'; nodeKey: Uint8Array; box: Uint8Array }
  | { type: 'server-ok'; keepaliveMs: number }
  | { type: 'server-refused'; reason: string }
  | { type: 'send-packet'; key: Uint8Array; data: Uint8Array }
  | { type: 'recv-packet'; key: Uint8Array; data: Uint8Array }
  | { type: 'keepalive' }
  | { type: 'ping'; data: Uint8Array }
  | { type: 'pong'; data: Uint8Array }
  | { type: 'peer-gone'; key: Uint8Array; reason: string }
  | { type: 'health'; text: string }
  | { type: 'unknown'; code: number; payload: Uint8Array };

export type RelayFrameType = RelayFrame['type'];

// ---------------------------------------------------------------- encoding

const utf8Enc = new TextEncoder();

/** UTF-8 of `s`, cut to `max` bytes without splitting a character. */
function textBytes(s: string, max = MAX_TEXT_LEN): Uint8Array {
  const b = utf8Enc.encode(s);
  if (b.length <= max) return b;
  let end = max;
  while (end > 0 && (b[end]! & 0xc0) === 0x80) end--;
  return b.subarray(0, end);
}

function frame(code: number, parts: Uint8Array[]): Buffer {
  let len = 0;
  for (const p of parts) len += p.length;
  if (len > MAX_PAYLOAD_LEN) throw new RangeError(`relay frame payload of ${len} bytes exceeds ${MAX_PAYLOAD_LEN}`);
  const out = Buffer.allocUnsafe(RELAY_HEADER_LEN + len);
  out[0] = code;
  out.writeUInt32BE(len, 1);
  let o = RELAY_HEADER_LEN;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function need(b: Uint8Array, len: number, what: string): Uint8Array {
  if (b.length !== len) throw new RangeError(`${what} must be ${len} bytes, got ${b.length}`);
  return b;
}

/**
 * Encode one frame. Throws RangeError on a field of the wrong size or a
 * packet over MAX_PACKET_LEN (a caller bug, never peer input).
 */
export function encodeRelayFrame(f: RelayFrame): Buffer {
  switch (f.type) {
    case 'server-challenge':
      return frame(0x01, [need(f.serverKey, RELAY_KEY_LEN, 'server key'), need(f.nonce, RELAY_NONCE_LEN, 'nonce')]);
    case 'client-proof':
      if (f.box.length < MIN_PROOF_BOX_LEN || f.box.length > MAX_PROOF_BOX_LEN) throw new RangeError(`proof box of ${f.box.length} bytes`);
      return frame(0x02, [need(f.nodeKey, RELAY_KEY_LEN, 'node key'), f.box]);
    case 'server-ok': {
      const b = Buffer.allocUnsafe(4);
      b.writeUInt32BE(Math.max(0, Math.min(0xffffffff, Math.round(f.keepaliveMs))), 0);
      return frame(0x03, [b]);
    }
    case 'server-refused':
      return frame(0x04, [textBytes(f.reason)]);
    case 'send-packet':
      return encodePacketFrame(0x05, f.key, f.data);
    case 'recv-packet':
      return encodePacketFrame(0x06, f.key, f.data);
    case 'keepalive':
      return Buffer.from(KEEPALIVE_BYTES);
    case 'ping':
      return frame(0x08, [need(f.data, PING_LEN, 'ping data')]);
    case 'pong':
      return frame(0x09, [need(f.data, PING_LEN, 'pong data')]);
    case 'peer-gone':
      return frame(0x0a, [need(f.key, RELAY_KEY_LEN, 'key'), textBytes(f.reason)]);
    case 'health':
      return frame(0x0b, [textBytes(f.text)]);
    case 'unknown':
      if (f.code in CODE_NAMES || f.code < 0 || f.code > 255) throw new RangeError(`0x${f.code.toString(16)} is not an unknown frame type`);
      return frame(f.code, [f.payload]);
  }
}

/**
 * A send-packet (0x05) or recv-packet (0x06) frame in one allocation: the
 * hot path's encoder. Throws RangeError on a bad key length or an oversized packet.
 */
export function encodePacketFrame(code: 0x05 | 0x06, key: Uint8Array, data: Uint8Array): Buffer {
  if (key.length !== RELAY_KEY_LEN) throw new RangeError(`key must be ${RELAY_KEY_LEN} bytes, got ${key.length}`);
  if (data.length > MAX_PACKET_LEN) throw new RangeError(`packet of ${data.length} bytes exceeds ${MAX_PACKET_LEN}`);
  const out = Buffer.allocUnsafe(RELAY_HEADER_LEN + RELAY_KEY_LEN + data.length);
  out[0] = code;
  out.writeUInt32BE(RELAY_KEY_LEN + data.length, 1);
  out.set(key, RELAY_HEADER_LEN);
  out.set(data, RELAY_HEADER_LEN + RELAY_KEY_LEN);
  return out;
}

const KEEPALIVE_BYTES = Buffer.from([0x07, 0, 0, 0, 0]);

// ---------------------------------------------------------------- decoding

const CODE_NAMES: Record<number, RelayFrameType> = Object.fromEntries(Object.entries(FRAME_TYPE).map(([k, v]) => [v, k as RelayFrameType]));

const utf8Dec = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function text(b: Uint8Array): string | null {
  if (b.length > MAX_TEXT_LEN) return null;
  try {
    return utf8Dec.decode(b);
  } catch {
    return null;
  }
}

/**
 * Decode one frame's payload given its type byte. Returns null when a known
 * frame's payload does not fit its layout (malformed); unknown type bytes
 * give `{type: 'unknown'}`. Byte fields are views into `payload`. Never throws.
 */
export function decodeRelayFrame(code: number, payload: Uint8Array): RelayFrame | null {
  const n = payload.length;
  if (n > MAX_PAYLOAD_LEN) return null;
  switch (code) {
    case 0x01:
      if (n < RELAY_KEY_LEN + RELAY_NONCE_LEN) return null;
      return { type: 'server-challenge', serverKey: payload.subarray(0, RELAY_KEY_LEN), nonce: payload.subarray(RELAY_KEY_LEN, RELAY_KEY_LEN + RELAY_NONCE_LEN) };
    case 0x02:
      if (n < RELAY_KEY_LEN + MIN_PROOF_BOX_LEN || n > RELAY_KEY_LEN + MAX_PROOF_BOX_LEN) return null;
      return { type: 'client-proof', nodeKey: payload.subarray(0, RELAY_KEY_LEN), box: payload.subarray(RELAY_KEY_LEN) };
    case 0x03:
      if (n < 4) return null;
      return { type: 'server-ok', keepaliveMs: ((payload[0]! << 24) >>> 0) + (payload[1]! << 16) + (payload[2]! << 8) + payload[3]! };
    case 0x04: {
      const reason = text(payload);
      return reason === null ? null : { type: 'server-refused', reason };
    }
    case 0x05:
    case 0x06:
      if (n < RELAY_KEY_LEN) return null;
      return { type: code === 0x05 ? 'send-packet' : 'recv-packet', key: payload.subarray(0, RELAY_KEY_LEN), data: payload.subarray(RELAY_KEY_LEN) };
    case 0x07:
      return { type: 'keepalive' };
    case 0x08:
    case 0x09:
      if (n < PING_LEN) return null;
      return { type: code === 0x08 ? 'ping' : 'pong', data: payload.subarray(0, PING_LEN) };
    case 0x0a: {
      if (n < RELAY_KEY_LEN) return null;
      const reason = text(payload.subarray(RELAY_KEY_LEN));
      return reason === null ? null : { type: 'peer-gone', key: payload.subarray(0, RELAY_KEY_LEN), reason };
    }
    case 0x0b: {
      const t = text(payload);
      return t === null ? null : { type: 'health', text: t };
    }
    default:
      return { type: 'unknown', code, payload };
  }
}

// ---------------------------------------------------------------- streams

/** Why a stream stopped being readable: a header announcing too much, or a malformed known frame. */
export type RelayStreamError = { code: 'frame_too_large'; message: string } | { code: 'frame_malformed'; message: string };

/**
 * Reassembles frames from arbitrary TCP chunks. Whole frames inside one
 * chunk are decoded in place (views into the chunk, no copy); a frame split
 * across chunks is gathered into one buffer of its exact size. An oversized
 * length is refused from the header, before any of its payload is buffered.
 *
 * push() never throws (unless `onFrame` does): it returns null while the
 * stream is fine, or the error that ended it — after which every push()
 * returns the same error and delivers nothing.
 */
export class RelayFrameReader {
  private readonly header = Buffer.alloc(RELAY_HEADER_LEN);
  private headerFill = 0;
  private body: Buffer | null = null;
  private bodyFill = 0;
  private failed: RelayStreamError | null = null;

  constructor(readonly maxPayload: number = MAX_PAYLOAD_LEN) {}

  get error(): RelayStreamError | null {
    return this.failed;
  }

  /** Bytes held for an incomplete frame. */
  get pending(): number {
    return this.headerFill + this.bodyFill;
  }

  push(chunk: Uint8Array, onFrame: (f: RelayFrame) => void): RelayStreamError | null {
    if (this.failed) return this.failed;
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      if (this.body === null) {
        if (this.headerFill === 0 && n - i >= RELAY_HEADER_LEN) {
          // Fast path: the header (and maybe the whole frame) is in this chunk.
          const code = chunk[i]!;
          const len = ((chunk[i + 1]! << 24) >>> 0) + (chunk[i + 2]! << 16) + (chunk[i + 3]! << 8) + chunk[i + 4]!;
          if (len > this.maxPayload) return this.fail('frame_too_large', `frame of ${len} bytes exceeds the ${this.maxPayload}-byte limit`);
          i += RELAY_HEADER_LEN;
          if (n - i >= len) {
            if (!this.deliver(code, chunk.subarray(i, i + len), onFrame)) return this.failed;
            i += len;
            continue;
          }
          this.header[0] = code;
          this.startBody(len);
          continue;
        }
        const m = Math.min(RELAY_HEADER_LEN - this.headerFill, n - i);
        this.header.set(chunk.subarray(i, i + m), this.headerFill);
        this.headerFill += m;
        i += m;
        if (this.headerFill < RELAY_HEADER_LEN) break;
        const len = this.header.readUInt32BE(1);
        if (len > this.maxPayload) return this.fail('frame_too_large', `frame of ${len} bytes exceeds the ${this.maxPayload}-byte limit`);
        this.startBody(len);
        if (len === 0) this.finishBody(onFrame);
        if (this.failed) return this.failed;
        continue;
      }
      const m = Math.min(this.body.length - this.bodyFill, n - i);
      this.body.set(chunk.subarray(i, i + m), this.bodyFill);
      this.bodyFill += m;
      i += m;
      if (this.bodyFill === this.body.length && !this.finishBody(onFrame)) return this.failed;
    }
    return this.failed;
  }

  private startBody(len: number): void {
    this.headerFill = 0;
    this.body = Buffer.allocUnsafe(len);
    this.bodyFill = 0;
  }

  private finishBody(onFrame: (f: RelayFrame) => void): boolean {
    const body = this.body!;
    this.body = null;
    this.bodyFill = 0;
    return this.deliver(this.header[0]!, body, onFrame);
  }

  private deliver(code: number, payload: Uint8Array, onFrame: (f: RelayFrame) => void): boolean {
    const f = decodeRelayFrame(code, payload);
    if (!f) {
      this.fail('frame_malformed', `malformed ${CODE_NAMES[code] ?? `0x${code.toString(16)}`} frame (${payload.length} bytes)`);
      return false;
    }
    onFrame(f);
    return true;
  }

  private fail(code: RelayStreamError['code'], message: string): RelayStreamError {
    const err = { code, message };
    this.failed = err;
    this.body = null;
    this.bodyFill = 0;
    this.headerFill = 0;
    return err;
  }
}

// ---------------------------------------------------------------- the node-key proof

/** The proof purpose of a relay login (control.ts's possession-proof scheme). */
export const RELAY_PROOF_PURPOSE = 'node:relay' satisfies ProofPurpose;
/** TLS keying-material exporter (RFC 5705 / RFC 8446 §7.5) that binds a proof to its TLS connection. */
export const RELAY_EXPORTER_LABEL = 'EXPORTER-warren-relay-proof';
export const RELAY_EXPORTER_LEN = 32;

/** This connection's exporter value (a TLS socket's, with an empty context); both ends bind proofs to it. */
export function relayChannel(tls: { exportKeyingMaterial(length: number, label: string, context: Buffer): Buffer }): Uint8Array {
  return tls.exportKeyingMaterial(RELAY_EXPORTER_LEN, RELAY_EXPORTER_LABEL, Buffer.alloc(0));
}

/**
 * The nonce a relay proof is sealed with: SHA-256("warren-relay/1 proof" ||
 * challenge nonce || TLS exporter)[0..24]. Mixing in the exporter of this TLS
 * connection means a proof is good on this connection only: a relay that
 * passes another relay's challenge to its own client (to log in elsewhere as
 * that client) gets a proof the other relay's connection cannot open.
 */
export function relayProofNonce(nonce: Uint8Array, channel: Uint8Array): Uint8Array {
  const h = createHash('sha256').update('warren-relay/1 proof').update(nonce).update(channel).digest();
  return new Uint8Array(h.buffer, h.byteOffset, RELAY_NONCE_LEN);
}

/**
 * The client-proof frame answering a server-challenge on the TLS connection
 * whose exporter is `channel`: control.ts's possession proof for
 * 'node:relay' over relayProofNonce(), carried as bytes (the nonce is not
 * sent; both ends derive it). Throws CryptoError on a low-order server key.
 */
export function makeRelayProof(challenge: { serverKey: Uint8Array; nonce: Uint8Array }, node: { privateKey: Uint8Array; publicKey: Uint8Array }, channel: Uint8Array): RelayFrame {
  const p = makeProof(RELAY_PROOF_PURPOSE, relayProofNonce(challenge.nonce, channel), challenge.serverKey, node.privateKey, node.publicKey);
  return { type: 'client-proof', nodeKey: node.publicKey, box: new Uint8Array(Buffer.from(p.box, 'base64')) };
}

/** The node key a client-proof proves for this connection (its nonce and TLS exporter), or null. Never throws. */
export function verifyRelayProof(nodeKey: Uint8Array, box: Uint8Array, serverPrivate: Uint8Array, nonce: Uint8Array, channel: Uint8Array): Uint8Array | null {
  const n = relayProofNonce(nonce, channel);
  return verifyProof({ key: toB64(nodeKey), nonce: toB64(n), box: toB64(box) }, RELAY_PROOF_PURPOSE, serverPrivate, n);
}
