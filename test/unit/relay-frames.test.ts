/**
 * Relay framing (src/wire/relay-frames.ts): a hex snapshot of every frame
 * type, round trips, streams split at every byte boundary, the size limit
 * enforced from the header alone, malformed frames, the node-key proof, and
 * a fuzz loop in which garbage may only ever end the stream, never throw.
 */
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import {
  FRAME_TYPE, MAX_PACKET_LEN, MAX_PAYLOAD_LEN, RELAY_HEADER_LEN, RelayFrameReader, decodeRelayFrame, encodePacketFrame,
  encodeRelayFrame, makeRelayProof, relayProofNonce, verifyRelayProof, type RelayFrame,
} from '../../src/wire/relay-frames.js';
import { generatePrivateKey, publicKeyOf } from '../../src/crypto/x25519.js';
import { rng } from '../helpers/rng.js';
import { createHash } from 'node:crypto';

const h = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const fill = (n: number, b: number): Uint8Array => new Uint8Array(n).fill(b);
const K1 = fill(32, 0x11), K2 = fill(32, 0x22), NONCE = fill(24, 0x33);

/** Every frame type once, with its exact bytes. */
const VECTORS: Array<[RelayFrame, string]> = [
  [{ type: 'server-challenge', serverKey: K1, nonce: NONCE }, '01 00000038' + '11'.repeat(32) + '33'.repeat(24)],
  [{ type: 'client-proof', nodeKey: K2, box: fill(50, 0x44) }, '02 00000052' + '22'.repeat(32) + '44'.repeat(50)],
  [{ type: 'server-ok', keepaliveMs: 30_000 }, '03 00000004 00007530'],
  [{ type: 'server-refused', reason: 'not admitted' }, '04 0000000c' + Buffer.from('not admitted').toString('hex')],
  [{ type: 'send-packet', key: K2, data: h('deadbeef') }, '05 00000024' + '22'.repeat(32) + 'deadbeef'],
  [{ type: 'recv-packet', key: K1, data: new Uint8Array(0) }, '06 00000020' + '11'.repeat(32)],
  [{ type: 'keepalive' }, '07 00000000'],
  [{ type: 'ping', data: h('0102030405060708') }, '08 00000008 0102030405060708'],
  [{ type: 'pong', data: h('0102030405060708') }, '09 00000008 0102030405060708'],
  [{ type: 'peer-gone', key: K1, reason: 'gone' }, '0a 00000024' + '11'.repeat(32) + '676f6e65'],
  [{ type: 'health', text: 'é' }, '0b 00000002 c3a9'],
  [{ type: 'unknown', code: 0x7f, payload: h('ff') }, '7f 00000001 ff'],
];

/** The frame with byte fields as hex (Buffer and Uint8Array views compare equal). */
function norm(f: RelayFrame): unknown {
  return Object.fromEntries(Object.entries(f).map(([k, v]) => [k, v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v]));
}

function readAll(bytes: Uint8Array, splits: number[] = []): { frames: unknown[]; error: string | null } {
  const r = new RelayFrameReader();
  const frames: unknown[] = [];
  let at = 0;
  let error: string | null = null;
  for (const cut of [...splits, bytes.length]) {
    const e = r.push(bytes.subarray(at, cut), (f) => frames.push(norm(f)));
    at = cut;
    if (e) error = e.code;
  }
  return { frames, error };
}

describe('relay frame encoding', () => {
  for (const [f, hex] of VECTORS) {
    it(`${f.type}: exact bytes and back`, () => {
      const bytes = encodeRelayFrame(f);
      assert.equal(bytes.toString('hex'), h(hex).toString('hex'));
      assert.deepEqual(norm(decodeRelayFrame(bytes[0]!, bytes.subarray(RELAY_HEADER_LEN))!), norm(f));
    });
  }

  it('the packet encoder matches the generic one', () => {
    const data = fill(1400, 0x5a);
    assert.deepEqual(encodePacketFrame(FRAME_TYPE['send-packet'], K1, data), encodeRelayFrame({ type: 'send-packet', key: K1, data }));
  });

  it('refuses wrong field sizes and oversized packets (caller bugs)', () => {
    assert.throws(() => encodeRelayFrame({ type: 'send-packet', key: fill(31, 0), data: new Uint8Array(1) }), RangeError);
    assert.throws(() => encodeRelayFrame({ type: 'send-packet', key: K1, data: new Uint8Array(MAX_PACKET_LEN + 1) }), RangeError);
    assert.throws(() => encodeRelayFrame({ type: 'ping', data: fill(7, 0) }), RangeError);
    assert.throws(() => encodeRelayFrame({ type: 'unknown', code: 0x05, payload: new Uint8Array(0) }), RangeError);
    assert.equal(encodeRelayFrame({ type: 'send-packet', key: K1, data: new Uint8Array(MAX_PACKET_LEN) }).length, RELAY_HEADER_LEN + MAX_PAYLOAD_LEN);
  });

  it('cuts long texts at a character boundary', () => {
    const f = encodeRelayFrame({ type: 'health', text: 'é'.repeat(600) });
    assert.equal(f.readUInt32BE(1), 1024);
    const g = encodeRelayFrame({ type: 'health', text: 'a' + 'é'.repeat(600) });
    assert.equal(g.readUInt32BE(1), 1023);
    assert.equal((decodeRelayFrame(0x0b, g.subarray(5)) as { text: string }).text, 'a' + 'é'.repeat(511));
  });
});

describe('relay frame decoding', () => {
  it('ignores trailing bytes where the spec says so', () => {
    assert.deepEqual(norm(decodeRelayFrame(0x03, h('00000bb8 ffff'))!), { type: 'server-ok', keepaliveMs: 3000 });
    assert.deepEqual(norm(decodeRelayFrame(0x07, h('00'))!), { type: 'keepalive' });
    assert.deepEqual(norm(decodeRelayFrame(0x08, h('0102030405060708 09'))!), { type: 'ping', data: '0102030405060708' });
  });

  it('returns null for payloads that do not fit the layout', () => {
    for (const [code, payload] of [
      [0x01, fill(55, 0)], [0x02, fill(32 + 40, 0)], [0x02, fill(32 + 73, 0)], [0x03, fill(3, 0)], [0x04, h('ff')],
      [0x05, fill(31, 0)], [0x06, new Uint8Array(0)], [0x08, fill(7, 0)], [0x09, new Uint8Array(0)], [0x0a, fill(31, 0)],
      [0x0a, Buffer.concat([K1, h('c3')])], [0x0b, fill(1025, 0x61)],
    ] as const) {
      assert.equal(decodeRelayFrame(code, payload), null, `type 0x${code.toString(16)}, ${payload.length} bytes`);
    }
  });

  it('reads the big-endian keepalive interval as unsigned', () => {
    assert.deepEqual(norm(decodeRelayFrame(0x03, h('ffffffff'))!), { type: 'server-ok', keepaliveMs: 0xffffffff });
  });
});

describe('RelayFrameReader', () => {
  const frames = VECTORS.map(([f]) => f);
  const stream = Buffer.concat(frames.map((f) => encodeRelayFrame(f)));

  it('reads a whole stream in one chunk', () => {
    assert.deepEqual(readAll(stream), { frames: frames.map(norm), error: null });
  });

  it('reads the stream split at every byte boundary, and one byte at a time', () => {
    for (let cut = 0; cut <= stream.length; cut++) assert.deepEqual(readAll(stream, [cut]).frames, frames.map(norm), `cut at ${cut}`);
    const bytewise = Array.from({ length: stream.length }, (_, i) => i);
    assert.deepEqual(readAll(stream, bytewise), { frames: frames.map(norm), error: null });
  });

  it('refuses an oversized length from the header alone', () => {
    const r = new RelayFrameReader();
    const seen: unknown[] = [];
    assert.equal(r.push(encodeRelayFrame({ type: 'keepalive' }), (f) => seen.push(f)), null);
    const e = r.push(h('05 00010021'), (f) => seen.push(f)); // 64 KiB + 33: one byte too many
    assert.equal(e?.code, 'frame_too_large');
    assert.equal(r.pending, 0);
    // Failed for good: nothing more is delivered.
    assert.equal(r.push(encodeRelayFrame({ type: 'keepalive' }), (f) => seen.push(f))?.code, 'frame_too_large');
    assert.equal(seen.length, 1);
    // Split header: the limit is still enforced before any payload is buffered.
    const r2 = new RelayFrameReader();
    assert.equal(r2.push(h('05 0001'), () => undefined), null);
    assert.equal(r2.push(h('0021'), () => undefined)?.code, 'frame_too_large');
  });

  it('accepts exactly the largest payload, split or whole', () => {
    const big = encodeRelayFrame({ type: 'send-packet', key: K1, data: fill(MAX_PACKET_LEN, 7) });
    assert.equal(readAll(big).frames.length, 1);
    assert.equal(readAll(big, [3, 100, 40_000]).frames.length, 1);
  });

  it('ends the stream on a malformed known frame', () => {
    const bad = Buffer.concat([encodeRelayFrame({ type: 'keepalive' }), h('05 00000002 0102'), encodeRelayFrame({ type: 'keepalive' })]);
    assert.deepEqual(readAll(bad), { frames: [{ type: 'keepalive' }], error: 'frame_malformed' });
    assert.equal(readAll(bad, [7]).error, 'frame_malformed');
  });

  it('never throws on garbage (fuzz)', () => {
    const rand = rng(0x5eed);
    const byte = (): number => Math.floor(rand() * 256);
    let delivered = 0, failed = 0;
    for (let round = 0; round < 3000; round++) {
      const r = new RelayFrameReader(round % 2 ? MAX_PAYLOAD_LEN : 64);
      // Half the rounds: valid frames with random bit flips; half: pure noise.
      let bytes: Buffer;
      if (round % 2) {
        bytes = Buffer.concat(Array.from({ length: 1 + Math.floor(rand() * 5) }, () => encodeRelayFrame(VECTORS[Math.floor(rand() * VECTORS.length)]![0])));
        for (let k = 0; k < 1 + rand() * 4; k++) bytes[Math.floor(rand() * bytes.length)] ^= 1 << Math.floor(rand() * 8);
      } else {
        bytes = Buffer.from(Array.from({ length: Math.floor(rand() * 200) }, byte));
        if (round % 4 === 0) bytes[1] = bytes[2] = bytes[3] = 0; // small lengths: exercise the payload decoders
      }
      let at = 0;
      while (at < bytes.length) {
        const n = 1 + Math.floor(rand() * 40);
        if (r.push(bytes.subarray(at, at + n), () => delivered++)) {
          failed++;
          break;
        }
        at += n;
      }
      for (let code = 0; code < 256; code += 1 + Math.floor(rand() * 16)) decodeRelayFrame(code, bytes.subarray(0, Math.floor(rand() * bytes.length)));
    }
    assert.ok(delivered > 1000 && failed > 100, `delivered ${delivered}, failed ${failed}`);
  });
});

describe('the node-key proof', () => {
  it('derives the sealing nonce from the challenge and the TLS exporter (vector)', () => {
    assert.equal(Buffer.from(relayProofNonce(fill(24, 0x33), fill(32, 0x77))).toString('hex'),
      createHash('sha256').update('warren-relay/1 proof').update(fill(24, 0x33)).update(fill(32, 0x77)).digest().subarray(0, 24).toString('hex'));
  });

  const serverPriv = generatePrivateKey();
  const challenge = { serverKey: publicKeyOf(serverPriv), nonce: fill(24, 9) };
  const nodePriv = generatePrivateKey();
  const node = { privateKey: nodePriv, publicKey: publicKeyOf(nodePriv) };
  const channel = fill(32, 0x77);

  it('opens for the holder of the key, on this nonce and TLS channel only', () => {
    const f = makeRelayProof(challenge, node, channel) as Extract<RelayFrame, { type: 'client-proof' }>;
    assert.equal(f.box.length, 16 + 24 + 'node:relay'.length);
    // Through the wire and back.
    const back = decodeRelayFrame(0x02, encodeRelayFrame(f).subarray(5)) as typeof f;
    assert.deepEqual(verifyRelayProof(back.nodeKey, back.box, serverPriv, challenge.nonce, channel), node.publicKey);
    assert.equal(verifyRelayProof(back.nodeKey, back.box, serverPriv, fill(24, 8), channel), null);
    assert.equal(verifyRelayProof(back.nodeKey, back.box, serverPriv, challenge.nonce, fill(32, 0x78)), null);
  });

  it('fails for a claimed key the sender does not hold, and for other purposes', () => {
    const f = makeRelayProof(challenge, node, channel) as Extract<RelayFrame, { type: 'client-proof' }>;
    const other = publicKeyOf(generatePrivateKey());
    assert.equal(verifyRelayProof(other, f.box, serverPriv, challenge.nonce, channel), null);
    const tampered = Uint8Array.from(f.box);
    tampered[20]! ^= 1;
    assert.equal(verifyRelayProof(f.nodeKey, tampered, serverPriv, challenge.nonce, channel), null);
    assert.equal(verifyRelayProof(f.nodeKey, f.box, generatePrivateKey(), challenge.nonce, channel), null);
    assert.equal(verifyRelayProof(fill(3, 0), fill(50, 0), serverPriv, challenge.nonce, channel), null);
  });
});
