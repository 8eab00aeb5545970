/**
 * Byte-level tests for src/wire/wireguard.ts (whitepaper §5.4): message sizes,
 * field offsets, little-endian indices, messageType() rules, decoders' null on
 * malformed input, the transport counter (with the ≥2^53 case), and a
 * "garbage never throws" loop over random buffers through every decoder.
 */
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import {
  decodeCookieReply,
  decodeInitiation,
  decodeResponse,
  encodeCookieReply,
  encodeInitiation,
  encodeResponse,
  isTransport,
  macOffsets,
  messageType,
  readU32LE,
  transportCounter,
  writeU32LE,
} from '../../src/wire/wireguard.js';
import {
  COOKIE_REPLY_SIZE,
  INITIATION_SIZE,
  RESPONSE_SIZE,
  TRANSPORT_MIN_SIZE,
} from '../../src/dataplane/constants.js';
import { rng } from '../helpers/rng.js';
import { hex } from '../helpers/hex.js';

/** n bytes start, start+1, ... (mod 256): every field gets distinct, recognisable bytes. */
function fill(n: number, start: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (start + i) & 0xff;
  return b;
}


describe('constants', () => {
  it('message sizes are the whitepaper sizes', () => {
    assert.equal(INITIATION_SIZE, 148);
    assert.equal(RESPONSE_SIZE, 92);
    assert.equal(COOKIE_REPLY_SIZE, 64);
    assert.equal(TRANSPORT_MIN_SIZE, 32);
  });

  it('macOffsets: mac1 and mac2 are the last two 16-byte fields', () => {
    assert.deepEqual(macOffsets(148), { mac1: 116, mac2: 132 });
    assert.deepEqual(macOffsets(92), { mac1: 60, mac2: 76 });
  });
});

describe('little-endian u32 helpers', () => {
  it('read and write little-endian, unsigned, at an offset', () => {
    const b = new Uint8Array(10);
    writeU32LE(b, 3, 0x11223344);
    assert.equal(hex(b), '00000044332211000000');
    assert.equal(readU32LE(b, 3), 0x11223344);
    writeU32LE(b, 0, 0xffffffff);
    assert.equal(readU32LE(b, 0), 0xffffffff, 'unsigned, not -1');
    writeU32LE(b, 6, 0x80000000);
    assert.equal(hex(b.subarray(6)), '00000080');
    assert.equal(readU32LE(b, 6), 0x80000000);
  });
});

describe('messageType', () => {
  it('types 1..4 followed by three zero bytes', () => {
    for (const t of [1, 2, 3, 4]) assert.equal(messageType(new Uint8Array([t, 0, 0, 0]), 0, 4), t);
  });

  it('0 for any other first byte', () => {
    for (let t = 0; t < 256; t++) {
      if (t >= 1 && t <= 4) continue;
      assert.equal(messageType(new Uint8Array([t, 0, 0, 0, 0, 0]), 0, 6), 0, `type ${t}`);
    }
  });

  it('0 when any of the three reserved bytes is non-zero', () => {
    for (const t of [1, 2, 3, 4]) {
      for (let i = 1; i <= 3; i++) {
        for (const v of [1, 0x80, 0xff]) {
          const b = new Uint8Array([t, 0, 0, 0, 0]);
          b[i] = v;
          assert.equal(messageType(b, 0, b.length), 0, `type ${t} byte ${i} = ${v}`);
        }
      }
    }
  });

  it('0 when len < 4, regardless of the bytes', () => {
    const b = new Uint8Array([1, 0, 0, 0]);
    for (let len = 0; len < 4; len++) assert.equal(messageType(b, 0, len), 0);
    assert.equal(messageType(new Uint8Array(0), 0, 0), 0);
  });

  it('honours the offset', () => {
    const b = new Uint8Array([9, 9, 2, 0, 0, 0, 9]);
    assert.equal(messageType(b, 2, 4), 2);
    assert.equal(messageType(b, 2, 5), 2);
    assert.equal(messageType(b, 0, 7), 0);
    assert.equal(messageType(b, 3, 4), 0);
  });
});

describe('handshake initiation (148 bytes)', () => {
  const fields = {
    sender: 0xa1b2c3d4,
    ephemeral: fill(32, 0x10),
    encStatic: fill(48, 0x40),
    encTimestamp: fill(28, 0x80),
  };

  it('encodes every field at its offset, MACs zero', () => {
    const b = encodeInitiation(fields);
    assert.equal(b.length, 148);
    assert.equal(hex(b.subarray(0, 4)), '01000000');
    assert.equal(hex(b.subarray(4, 8)), 'd4c3b2a1', 'sender is little-endian');
    assert.deepEqual(b.subarray(8, 40), fields.ephemeral);
    assert.deepEqual(b.subarray(40, 88), fields.encStatic);
    assert.deepEqual(b.subarray(88, 116), fields.encTimestamp);
    assert.equal(hex(b.subarray(116, 148)), '00'.repeat(32));
  });

  it('decodes what it encoded, including MACs written afterwards', () => {
    const b = encodeInitiation(fields);
    b.set(fill(16, 0xc0), 116);
    b.set(fill(16, 0xd0), 132);
    const m = decodeInitiation(b);
    assert.ok(m);
    assert.equal(m.sender, 0xa1b2c3d4);
    assert.deepEqual(m.ephemeral, fields.ephemeral);
    assert.deepEqual(m.encStatic, fields.encStatic);
    assert.deepEqual(m.encTimestamp, fields.encTimestamp);
    assert.deepEqual(m.mac1, fill(16, 0xc0));
    assert.deepEqual(m.mac2, fill(16, 0xd0));
    assert.equal(m.ephemeral.length, 32);
    assert.equal(m.encStatic.length, 48);
    assert.equal(m.encTimestamp.length, 28);
    assert.equal(m.mac1.length, 16);
    assert.equal(m.mac2.length, 16);
  });

  it('decodes views into the buffer (no copy)', () => {
    const b = encodeInitiation(fields);
    const m = decodeInitiation(b);
    assert.ok(m);
    assert.equal(m.ephemeral.buffer, b.buffer);
    assert.equal(m.ephemeral.byteOffset, b.byteOffset + 8);
    assert.equal(m.mac2.byteOffset, b.byteOffset + 132);
  });

  it('sender edge values', () => {
    for (const s of [0, 1, 0x7fffffff, 0x80000000, 0xffffffff]) {
      const m = decodeInitiation(encodeInitiation({ ...fields, sender: s }));
      assert.equal(m?.sender, s);
    }
  });

  it('a hand-built 148-byte message decodes', () => {
    const b = new Uint8Array(148);
    b.set([1, 0, 0, 0, 0x78, 0x56, 0x34, 0x12]);
    const m = decodeInitiation(b);
    assert.equal(m?.sender, 0x12345678);
  });

  it('null for wrong lengths, types and non-zero reserved bytes', () => {
    const b = encodeInitiation(fields);
    assert.equal(decodeInitiation(b.subarray(0, 147)), null);
    const longer = new Uint8Array(149);
    longer.set(b);
    assert.equal(decodeInitiation(longer), null);
    assert.equal(decodeInitiation(new Uint8Array(0)), null);
    for (const t of [0, 2, 3, 4, 5, 0xff]) {
      const c = new Uint8Array(b);
      c[0] = t;
      assert.equal(decodeInitiation(c), null, `type ${t}`);
    }
    for (let i = 1; i <= 3; i++) {
      const c = new Uint8Array(b);
      c[i] = 1;
      assert.equal(decodeInitiation(c), null, `reserved byte ${i}`);
    }
  });
});

describe('handshake response (92 bytes)', () => {
  const fields = {
    sender: 0x01020304,
    receiver: 0xfffefdfc,
    ephemeral: fill(32, 0x20),
    encEmpty: fill(16, 0x60),
  };

  it('encodes every field at its offset, MACs zero', () => {
    const b = encodeResponse(fields);
    assert.equal(b.length, 92);
    assert.equal(hex(b.subarray(0, 4)), '02000000');
    assert.equal(hex(b.subarray(4, 8)), '04030201');
    assert.equal(hex(b.subarray(8, 12)), 'fcfdfeff');
    assert.deepEqual(b.subarray(12, 44), fields.ephemeral);
    assert.deepEqual(b.subarray(44, 60), fields.encEmpty);
    assert.equal(hex(b.subarray(60, 92)), '00'.repeat(32));
  });

  it('decodes what it encoded', () => {
    const b = encodeResponse(fields);
    b.set(fill(16, 0xa0), 60);
    b.set(fill(16, 0xb0), 76);
    const m = decodeResponse(b);
    assert.ok(m);
    assert.equal(m.sender, 0x01020304);
    assert.equal(m.receiver, 0xfffefdfc);
    assert.deepEqual(m.ephemeral, fields.ephemeral);
    assert.deepEqual(m.encEmpty, fields.encEmpty);
    assert.deepEqual(m.mac1, fill(16, 0xa0));
    assert.deepEqual(m.mac2, fill(16, 0xb0));
  });

  it('null for wrong lengths, types and non-zero reserved bytes', () => {
    const b = encodeResponse(fields);
    assert.equal(decodeResponse(b.subarray(0, 91)), null);
    const longer = new Uint8Array(93);
    longer.set(b);
    assert.equal(decodeResponse(longer), null);
    assert.equal(decodeResponse(encodeInitiation({ sender: 1, ephemeral: fill(32, 0), encStatic: fill(48, 0), encTimestamp: fill(28, 0) })), null);
    for (const t of [0, 1, 3, 4]) {
      const c = new Uint8Array(b);
      c[0] = t;
      assert.equal(decodeResponse(c), null, `type ${t}`);
    }
    for (let i = 1; i <= 3; i++) {
      const c = new Uint8Array(b);
      c[i] = 0x80;
      assert.equal(decodeResponse(c), null, `reserved byte ${i}`);
    }
  });
});

describe('cookie reply (64 bytes)', () => {
  const fields = { receiver: 0xdeadbeef, nonce: fill(24, 0x30), encCookie: fill(32, 0x90) };

  it('encodes every field at its offset', () => {
    const b = encodeCookieReply(fields);
    assert.equal(b.length, 64);
    assert.equal(hex(b.subarray(0, 4)), '03000000');
    assert.equal(hex(b.subarray(4, 8)), 'efbeadde');
    assert.deepEqual(b.subarray(8, 32), fields.nonce);
    assert.deepEqual(b.subarray(32, 64), fields.encCookie);
  });

  it('decodes what it encoded', () => {
    const m = decodeCookieReply(encodeCookieReply(fields));
    assert.ok(m);
    assert.equal(m.receiver, 0xdeadbeef);
    assert.deepEqual(m.nonce, fields.nonce);
    assert.deepEqual(m.encCookie, fields.encCookie);
    assert.equal(m.nonce.length, 24);
    assert.equal(m.encCookie.length, 32);
  });

  it('null for wrong lengths, types and non-zero reserved bytes', () => {
    const b = encodeCookieReply(fields);
    assert.equal(decodeCookieReply(b.subarray(0, 63)), null);
    const longer = new Uint8Array(65);
    longer.set(b);
    assert.equal(decodeCookieReply(longer), null);
    for (const t of [0, 1, 2, 4]) {
      const c = new Uint8Array(b);
      c[0] = t;
      assert.equal(decodeCookieReply(c), null, `type ${t}`);
    }
    for (let i = 1; i <= 3; i++) {
      const c = new Uint8Array(b);
      c[i] = 0xff;
      assert.equal(decodeCookieReply(c), null, `reserved byte ${i}`);
    }
  });
});

describe('transport header', () => {
  function transport(receiver: number, counter: bigint, payload = 16): Uint8Array {
    const b = new Uint8Array(16 + payload);
    const dv = new DataView(b.buffer);
    dv.setUint32(0, 4, true);
    dv.setUint32(4, receiver, true);
    dv.setBigUint64(8, counter, true);
    return b;
  }

  it('isTransport: type 4, three zero bytes, at least 32 bytes', () => {
    const b = transport(7, 9n);
    assert.equal(b.length, 32);
    assert.equal(isTransport(b, 0, 32), true);
    assert.equal(isTransport(b, 0, 31), false);
    assert.equal(isTransport(transport(7, 9n, 1500), 0, 1516), true);
    for (let i = 1; i <= 3; i++) {
      const c = new Uint8Array(b);
      c[i] = 1;
      assert.equal(isTransport(c, 0, 32), false, `reserved byte ${i}`);
    }
    for (const t of [0, 1, 2, 3, 5]) {
      const c = new Uint8Array(b);
      c[0] = t;
      assert.equal(isTransport(c, 0, 32), false, `type ${t}`);
    }
  });

  it('isTransport honours the offset', () => {
    const inner = transport(1, 2n);
    const outer = new Uint8Array(40);
    outer.set(inner, 5);
    assert.equal(isTransport(outer, 5, 32), true);
    assert.equal(isTransport(outer, 5, 31), false);
    assert.equal(isTransport(outer, 0, 37), false);
  });

  it('receiver index is little-endian at bytes 4..8', () => {
    const b = transport(0x11223344, 0n);
    assert.equal(hex(b.subarray(4, 8)), '44332211');
    assert.equal(readU32LE(b, 4), 0x11223344);
  });

  it('transportCounter reads the little-endian u64 at bytes 8..16', () => {
    const cases: [bigint, number][] = [
      [0n, 0],
      [1n, 1],
      [0xffn, 0xff],
      [0x100n, 0x100],
      [0xffffffffn, 0xffffffff],
      [0x100000000n, 0x100000000],
      [0x0102030405060708n & 0x1fffffffffffffn, Number(0x0102030405060708n & 0x1fffffffffffffn)],
      [2n ** 53n - 1n, Number.MAX_SAFE_INTEGER],
    ];
    for (const [c, want] of cases) assert.equal(transportCounter(transport(1, c), 0), want, `counter ${c}`);
    const b = new Uint8Array(32);
    b.set([4, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x00]);
    assert.equal(transportCounter(b, 0), 0x0002030405060708);
  });

  it('transportCounter is -1 for counters ≥ 2^53', () => {
    for (const c of [2n ** 53n, 2n ** 53n + 1n, 2n ** 60n, 2n ** 63n, 2n ** 64n - 1n, 0x0807060504030201n]) {
      assert.equal(transportCounter(transport(1, c), 0), -1, `counter ${c}`);
    }
  });

  it('transportCounter honours the offset', () => {
    const outer = new Uint8Array(64);
    outer.set(transport(1, 0x123456789an), 11);
    assert.equal(transportCounter(outer, 11), 0x123456789a);
  });
});

describe('garbage never throws', () => {
  it('100,000 random buffers (lengths 0..2000) through every decoder', () => {
    const rand = rng(0x5eed);
    const pool = new Uint8Array(2000 + 64);
    const headers = [1, 2, 3, 4];
    const sizes = [148, 92, 64, 32, 33, 147, 149, 91, 93, 63, 65, 31, 0, 1, 3, 4];
    let decoded = 0;
    for (let iter = 0; iter < 100_000; iter++) {
      // Half fully random lengths, half biased towards the interesting sizes.
      const len = rand() < 0.5 ? Math.floor(rand() * 2001) : sizes[Math.floor(rand() * sizes.length)]!;
      const off = Math.floor(rand() * 64);
      for (let i = 0; i < len; i++) pool[off + i] = (rand() * 256) | 0;
      // Often give it a plausible header so the decoders get past the type check.
      if (len >= 4 && rand() < 0.6) {
        pool[off] = headers[Math.floor(rand() * 4)]!;
        if (rand() < 0.8) pool.fill(0, off + 1, off + 4);
      }
      const b = pool.subarray(off, off + len);
      const t = messageType(b, 0, b.length);
      assert.ok(t >= 0 && t <= 4);
      assert.equal(messageType(pool, off, len), t);
      const i = decodeInitiation(b);
      const r = decodeResponse(b);
      const c = decodeCookieReply(b);
      if (i) {
        decoded++;
        assert.equal(len, 148);
        assert.equal(t, 1);
      }
      if (r) {
        decoded++;
        assert.equal(len, 92);
        assert.equal(t, 2);
      }
      if (c) {
        decoded++;
        assert.equal(len, 64);
        assert.equal(t, 3);
      }
      assert.ok([i, r, c].filter(Boolean).length <= 1);
      const tr = isTransport(pool, off, len);
      assert.equal(tr, t === 4 && len >= 32);
      if (tr) {
        const n = transportCounter(pool, off);
        assert.ok(n === -1 || (Number.isSafeInteger(n) && n >= 0));
      }
    }
    assert.ok(decoded > 1000, `only ${decoded} buffers decoded: the loop is not reaching the decoders`);
  });
});
