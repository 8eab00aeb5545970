/**
 * Tests for wn_seal / wn_open (native/warren_native.c via src/dataplane/io):
 * WireGuard transport framing byte for byte, equivalence with node:crypto's
 * ChaCha20-Poly1305 (anchored on RFC 8439 §2.8.2) and with @noble/ciphers,
 * padding, tampering, capacity, payloads past the C scratch buffer, the
 * batch variants, and use from a worker.
 */
import * as assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { HEADER_LEN, loadNative } from '../../src/dataplane/io/native.js';

const wn = loadNative();
const EBADMSG = -74;
const EMSGSIZE = -90;
const ENOKEY = -126;

/** WireGuard's nonce: 4 zero bytes || counter as little-endian u64. */
function wgNonce(counter: bigint): Buffer {
  const n = Buffer.alloc(12);
  n.writeBigUInt64LE(counter, 4);
  return n;
}

/** Reference seal with node:crypto, no AAD: ciphertext || tag. */
function refSeal(key: Uint8Array, counter: bigint, plain: Uint8Array): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, wgNonce(counter), { authTagLength: 16 });
  return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
}

/** Padded plaintext length, as WireGuard computes it (mtu 0: no cap). */
function padded(len: number, mtu: number): number {
  if (mtu === 0) return Math.ceil(len / 16) * 16;
  const last = len > mtu ? len % mtu : len;
  return len + Math.min(Math.ceil(last / 16) * 16, mtu) - last;
}

/** A packet buffer with the plaintext at +16 and room to seal. */
function packet(plain: Uint8Array, cap = plain.length + 64): Buffer {
  const pkt = Buffer.alloc(cap, 0xee);
  pkt.set(plain, HEADER_LEN);
  return pkt;
}

describe('node:crypto reference (RFC 8439 §2.8.2)', () => {
  it('reproduces the RFC AEAD vector, so it can stand as the reference', () => {
    const key = Buffer.from('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f', 'hex');
    const nonce = Buffer.from('070000004041424344454647', 'hex');
    const aad = Buffer.from('50515253c0c1c2c3c4c5c6c7', 'hex');
    const plain = Buffer.from(
      "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
    );
    const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
    c.setAAD(aad, { plaintextLength: plain.length });
    const ct = Buffer.concat([c.update(plain), c.final()]);
    assert.equal(
      ct.toString('hex'),
      'd31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b' +
        '1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc' +
        '3ff4def08e4b7a9de576d26586cec64b6116',
    );
    assert.equal(c.getAuthTag().toString('hex'), '1ae10b594f09e26a7e902ecbd0600691');
  });
});

describe('wn_seal', () => {
  // The RFC's key and plaintext under WireGuard's nonce (counter 0x4746454443424140, so the
  // nonce is 00000000 || 40..47 where the RFC has 07000000 || 40..47) and no AAD.
  const key = Buffer.from('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f', 'hex');
  const counter = 0x4746454443424140n;
  const plain = Buffer.from(
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
  );

  it('writes the exact transport message for a known input', () => {
    const pkt = packet(plain);
    const n = wn.seal(key, 0xdeadbeef, counter, pkt, plain.length, 1420, pkt.length);
    assert.equal(n, 16 + 128 + 16); // 114 bytes padded to 128
    const msg = pkt.subarray(0, n);
    assert.equal(msg.subarray(0, 16).toString('hex'), '04000000' + 'efbeadde' + '4041424344454647');
    const padPlain = Buffer.concat([plain, Buffer.alloc(128 - plain.length)]);
    const fromNode = refSeal(key, counter, padPlain);
    const fromNoble = chacha20poly1305(key, wgNonce(counter)).encrypt(padPlain);
    assert.deepEqual(msg.subarray(16), fromNode);
    assert.deepEqual(new Uint8Array(msg.subarray(16)), fromNoble);
    // Snapshot (agreed by node:crypto and @noble/ciphers above). It differs from the RFC's
    // ciphertext from the first byte: the nonce's first word (07000000 there) is keyed in too.
    assert.equal(
      msg.subarray(16).toString('hex'),
      'a479cb54628946d6f4042a8e384ef4bd2fbc7330b8be55eb2d8dc18aaa51d66a8ec1f8d3619a258db0ac56956015b7b4' +
        '937e9b8e6aa957b3dc0214d803d77660aabc913092971da8f207171ce7843608162e2e759d8efc25d8d0936990af63c8' +
        '20ba87e8a955b5c8274ef7d10f6fafd046471b145776aca2f7cf6a61d21664252fb1f5bad2ee98e9648bb17f432dcce4',
    );
    assert.equal(pkt[n], 0xee, 'nothing written past the message');
  });

  it('matches node:crypto on random data of every length 0..1500', () => {
    const key2 = randomBytes(32);
    const pkt = Buffer.alloc(1600);
    for (let len = 0; len <= 1500; len++) {
      const plainN = randomBytes(len);
      const ctr = BigInt(len) * 0x1_0000_0001n + 7n;
      pkt.fill(0xa5);
      pkt.set(plainN, 16);
      const n = wn.seal(key2, len, ctr, pkt, len, 0, pkt.length);
      const body = padded(len, 0);
      assert.equal(n, 32 + body, `length ${len}`);
      const want = refSeal(key2, ctr, Buffer.concat([plainN, Buffer.alloc(body - len)]));
      assert.ok(pkt.subarray(16, n).equals(want), `ciphertext for length ${len}`);
      assert.equal(wn.open(key2, pkt, n), body);
      assert.ok(pkt.subarray(16, 16 + len).equals(plainN), `round trip for length ${len}`);
    }
  });

  it('pads to 16 with zeros, capped at the MTU as wireguard-go does', () => {
    const key2 = randomBytes(32);
    const cases: [len: number, mtu: number, body: number][] = [
      [0, 1420, 0], // keepalive: header + tag only
      [1, 1420, 16],
      [16, 1420, 16],
      [17, 1420, 32],
      [1419, 1420, 1420], // would be 1424: capped at the MTU
      [1420, 1420, 1420],
      [1420, 0, 1424],
      [1280, 1280, 1280],
    ];
    for (const [len, mtu, body] of cases) {
      const pkt = packet(Buffer.alloc(len, 0x11), 1600);
      const n = wn.seal(key2, 1, 9n, pkt, len, mtu, pkt.length);
      assert.equal(n, 32 + body, `len ${len} mtu ${mtu}`);
      const d = createDecipheriv('chacha20-poly1305', key2, wgNonce(9n), { authTagLength: 16 });
      d.setAuthTag(pkt.subarray(n - 16, n));
      const clear = Buffer.concat([d.update(pkt.subarray(16, n - 16)), d.final()]);
      assert.ok(clear.subarray(0, len).equals(Buffer.alloc(len, 0x11)));
      assert.ok(clear.subarray(len).equals(Buffer.alloc(body - len)), 'padding is zeros');
    }
  });

  it('writes the header little-endian for any receiver index and counter', () => {
    const key2 = randomBytes(32);
    for (const [idx, ctr] of [
      [0, 0n],
      [0xffffffff, 0xfffffffffffffffen],
      [0x01020304, 0x0102030405060708n],
    ] as const) {
      const pkt = packet(Buffer.alloc(4));
      const n = wn.seal(key2, idx, ctr, pkt, 4, 1420, pkt.length);
      assert.equal(pkt.readUInt32LE(0), 4);
      assert.equal(pkt.readUInt32LE(4), idx);
      assert.equal(pkt.readBigUInt64LE(8), ctr);
      assert.ok(pkt.subarray(16, n).equals(refSeal(key2, ctr, Buffer.alloc(16))));
    }
    // A plain number works as the counter too (no BigInt on the hot path).
    const pkt = packet(Buffer.alloc(4));
    wn.seal(key2, 1, Number.MAX_SAFE_INTEGER, pkt, 4, 1420, pkt.length);
    assert.equal(pkt.readBigUInt64LE(8), BigInt(Number.MAX_SAFE_INTEGER));
  });

  it('refuses a message that would not fit in cap, touching nothing', () => {
    const key2 = randomBytes(32);
    const pkt = packet(Buffer.alloc(100, 1), 160);
    const before = Buffer.from(pkt);
    assert.equal(wn.seal(key2, 1, 1n, pkt, 100, 1420, 16 + 112 + 16 - 1), EMSGSIZE);
    assert.ok(pkt.equals(before));
    assert.equal(wn.seal(key2, 1, 1n, pkt, 100, 1420, 16 + 112 + 16), 144);
  });

  it('works on a subarray: koffi passes the view with its offset, in place', () => {
    const key2 = randomBytes(32);
    const big = Buffer.alloc(4096, 0x33);
    const view = big.subarray(1001, 1001 + 200);
    const plainN = randomBytes(50);
    view.set(plainN, 16);
    const n = wn.seal(key2, 7, 3n, view, 50, 1420, view.length);
    assert.equal(n, 96);
    assert.equal(big[1000], 0x33);
    assert.equal(big.readUInt32LE(1001), 4);
    assert.equal(big[1001 + 96], 0x33);
    assert.ok(big.subarray(1017, 1001 + 96).equals(refSeal(key2, 3n, Buffer.concat([plainN, Buffer.alloc(14)]))));
  });
});

describe('wn_open', () => {
  const key = randomBytes(32);
  function sealed(len: number, counter = 5n): { pkt: Buffer; n: number; plain: Buffer } {
    const plain = randomBytes(len);
    const pkt = packet(plain);
    const n = wn.seal(key, 1, counter, pkt, len, 1420, pkt.length);
    return { pkt, n, plain };
  }

  it('opens a message sealed by node:crypto with the same framing', () => {
    const plain = randomBytes(64);
    const hdr = Buffer.alloc(16);
    hdr.writeUInt32LE(4, 0);
    hdr.writeUInt32LE(99, 4);
    hdr.writeBigUInt64LE(1234n, 8);
    const pkt = Buffer.concat([hdr, refSeal(key, 1234n, plain)]);
    assert.equal(wn.open(key, pkt, pkt.length), 64);
    assert.ok(pkt.subarray(16, 80).equals(plain));
  });

  it('rejects any flipped bit in the counter, ciphertext or tag', () => {
    const { pkt, n } = sealed(48);
    const pristine = Buffer.from(pkt);
    for (let byte = 8; byte < n; byte++) {
      pkt.set(pristine);
      pkt[byte]! ^= 1 << byte % 8;
      assert.equal(wn.open(key, pkt, n), EBADMSG, `flip in byte ${byte}`);
    }
    pkt.set(pristine);
    assert.equal(wn.open(key, pkt, n), 48);
  });

  it('rejects a wrong key, a truncated message and one shorter than header + tag', () => {
    const { pkt, n } = sealed(32);
    const pristine = Buffer.from(pkt);
    assert.equal(wn.open(randomBytes(32), pkt, n), EBADMSG);
    pkt.set(pristine);
    assert.equal(wn.open(key, pkt, n - 1), EBADMSG);
    for (const len of [0, 1, 31, -1]) assert.equal(wn.open(key, pkt, len), EBADMSG);
    pkt.set(pristine);
    assert.equal(wn.open(key, pkt, n), 32);
  });

  it('opens a keepalive (no payload) to length 0', () => {
    const { pkt, n } = sealed(0);
    assert.equal(n, 32);
    assert.equal(wn.open(key, pkt, n), 0);
  });
});

describe('payloads past the 2048-byte scratch', () => {
  // wn_seal / wn_open run the first 2048 payload bytes through a per-thread
  // scratch and the rest in place: lengths around that edge, and far past it.
  const SCRATCH = 2048;
  const lengths: number[] = [];
  for (let len = 1980; len <= 2120; len++) lengths.push(len);
  lengths.push(4095, 4096, 4097, 9000, 16384, 65000);

  it('seals exactly as node:crypto and opens back, at every length', () => {
    for (const len of lengths) {
      const key = randomBytes(32);
      const ctr = BigInt(len) * 0x1_0000_0003n;
      const plain = randomBytes(len);
      const pkt = packet(plain);
      const n = wn.seal(key, 3, ctr, pkt, len, 0, pkt.length);
      const body = padded(len, 0);
      assert.equal(n, 32 + body, `length ${len}`);
      assert.ok(pkt.subarray(16, n).equals(refSeal(key, ctr, Buffer.concat([plain, Buffer.alloc(body - len)]))), `ciphertext for ${len}`);
      assert.equal(pkt[n], 0xee, `nothing written past the message (${len})`);
      assert.equal(wn.open(key, pkt, n), body);
      assert.ok(pkt.subarray(16, 16 + len).equals(plain), `round trip for ${len}`);
    }
  });

  it('opens messages sealed by node:crypto', () => {
    for (const len of [2047, 2048, 2049, 2064, 65000]) {
      const key = randomBytes(32);
      const plain = randomBytes(len);
      const hdr = Buffer.alloc(16);
      hdr.writeUInt32LE(4, 0);
      hdr.writeBigUInt64LE(77n, 8);
      const pkt = Buffer.concat([hdr, refSeal(key, 77n, plain)]);
      assert.equal(wn.open(key, pkt, pkt.length), len);
      assert.ok(pkt.subarray(16, 16 + len).equals(plain), `plaintext for ${len}`);
    }
  });

  it('rejects a flipped bit in the first chunk, past it, or in the tag; a rejected message of up to 2048 payload bytes is left untouched', () => {
    for (const len of lengths) {
      const key = randomBytes(32);
      const pkt = packet(randomBytes(len));
      const n = wn.seal(key, 1, 5n, pkt, len, 0, pkt.length);
      const body = n - 32;
      const sealed = Buffer.from(pkt);
      const spots = [16, 16 + Math.min(body, SCRATCH) - 1, n - 17, n - 16, n - 1];
      if (body > SCRATCH) spots.push(16 + SCRATCH, 16 + SCRATCH + 1);
      for (const at of spots) {
        pkt.set(sealed);
        pkt[at]! ^= 0x10;
        const forged = Buffer.from(pkt);
        assert.equal(wn.open(key, pkt, n), EBADMSG, `flip at ${at} of ${n}`);
        if (body <= SCRATCH) assert.ok(pkt.equals(forged), `left as it was: flip at ${at} of ${n}`);
      }
    }
  });

  it('keeps each key apart when calls alternate between keys', () => {
    const keys = [randomBytes(32), randomBytes(32)];
    for (const len of [100, 2100, 65000, 2100, 100]) {
      for (const [k, key] of keys.entries()) {
        const plain = randomBytes(len);
        const pkt = packet(plain);
        const n = wn.seal(key, 1, BigInt(k), pkt, len, 0, pkt.length);
        const body = padded(len, 0);
        assert.ok(pkt.subarray(16, n).equals(refSeal(key, BigInt(k), Buffer.concat([plain, Buffer.alloc(body - len)]))), `key ${k}, ${len}`);
      }
    }
  });
});

describe('batch variants', () => {
  it('wn_seal_batch equals wn_seal with consecutive counters', () => {
    const key = randomBytes(32);
    const slot = 1500;
    const count = 40;
    const buf = Buffer.alloc(slot * count);
    const lens = new Int32Array(count);
    const plains = Array.from({ length: count }, (_, i) => randomBytes((i * 37) % 1400));
    plains.forEach((p, i) => {
      buf.set(p, i * slot + 16);
      lens[i] = p.length;
    });
    lens[5] = 1470; // too big for the slot once padded and tagged
    assert.equal(wn.sealBatch(key, 77, 1000, buf, slot, count, lens, 1420), count - 1);
    assert.equal(lens[5], EMSGSIZE);
    for (let i = 0; i < count; i++) {
      if (i === 5) continue;
      const one = packet(plains[i]!, slot);
      const n = wn.seal(key, 77, 1000 + i, one, plains[i]!.length, 1420, slot);
      assert.equal(lens[i], n);
      assert.ok(buf.subarray(i * slot, i * slot + n).equals(one.subarray(0, n)), `packet ${i}`);
    }
  });

  it('wn_open_batch opens with per-packet keys, skipping negative key indexes', () => {
    const keys = randomBytes(64);
    const slot = 256;
    const count = 6;
    const buf = Buffer.alloc(slot * count);
    const offs = new Int32Array(count).fill(8);
    const lens = new Int32Array(count);
    const keyIdx = Int32Array.from([0, 1, 0, 1, -1, 1]);
    for (let i = 0; i < count; i++) {
      const pkt = buf.subarray(i * slot + 8, (i + 1) * slot);
      pkt.fill(i + 1, 16, 16 + 32);
      lens[i] = wn.seal(keys.subarray(32 * Math.max(0, keyIdx[i]!)), i, i, pkt, 32, 1420, pkt.length);
    }
    buf[3 * slot + 8 + 20]! ^= 0xff; // corrupt packet 3
    assert.equal(wn.openBatch(keys, keyIdx, buf, slot, count, offs, lens), 4);
    assert.deepEqual(Array.from(lens), [32, 32, 32, EBADMSG, ENOKEY, 32]);
    assert.ok(buf.subarray(5 * slot + 24, 5 * slot + 56).equals(Buffer.alloc(32, 6)));
  });
});

describe('from a worker thread', () => {
  it('seals the same bytes in a worker as on the main thread', async () => {
    const key = randomBytes(32);
    const plain = randomBytes(300);
    const pkt = packet(plain);
    const n = wn.seal(key, 3, 42n, pkt, plain.length, 1420, pkt.length);
    const url = new URL('../../src/dataplane/io/native.js', import.meta.url).href;
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      import(workerData.url).then((m) => {
        const wn = m.loadNative();
        const pkt = Buffer.alloc(workerData.plain.length + 64);
        pkt.set(workerData.plain, 16);
        const n = wn.seal(workerData.key, 3, 42n, pkt, workerData.plain.length, 1420, pkt.length);
        parentPort.postMessage(pkt.subarray(0, n));
      });`;
    const w = new Worker(code, { eval: true, workerData: { url, key, plain } });
    const got = await new Promise<Uint8Array>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
    await w.terminate();
    assert.ok(Buffer.from(got).equals(pkt.subarray(0, n)));
  });
});
