/**
 * Published test vectors for src/crypto/: X25519 (RFC 7748 §5.2, §6.1),
 * BLAKE2s (RFC 7693 Appendix B and the Appendix E self-test, the BLAKE2
 * reference keyed KAT), HMAC-BLAKE2s and the Noise KDF against textbook
 * constructions, ChaCha20-Poly1305 (RFC 8439 §2.8.2, Appendix A.5),
 * XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03 §A.3.1) and TAI64N.
 *
 * Every expected value is typed in as hex. The only code used as a reference
 * is written here (a from-the-RFC BLAKE2s, RFC 2104 HMAC, RFC 5869 HKDF) and
 * is itself pinned to the published vectors before it is trusted.
 */
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import {
  CryptoError,
  KEY_LEN,
  clamp,
  dh,
  generatePrivateKey,
  privateKeyObject,
  publicKeyObject,
  publicKeyOf,
} from '../../src/crypto/x25519.js';
import { hash, hmac, kdf, mac } from '../../src/crypto/blake2s.js';
import { TAG_LEN, nonceFor, open, seal, xopen, xseal } from '../../src/crypto/aead.js';
import { TAI64N_LEN, compareTai64n, tai64n, tai64nToNs } from '../../src/crypto/tai64n.js';
import { h, hex } from '../helpers/hex.js';

/** 00 01 02 .. (n-1) mod 256 */
function seq(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = i & 0xff;
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

// ---------------------------------------------------------------------------
// A reference BLAKE2s written from RFC 7693 §3 (any key length 0..32, any
// output length 1..32). It is validated against the published vectors below
// before anything is compared with it.
// ---------------------------------------------------------------------------

const B2S_IV = [
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];
const SIGMA = [
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
  [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
  [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
  [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
  [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
  [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
  [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
  [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
  [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
  [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
];

function rotr(x: number, n: number): number {
  return ((x >>> n) | (x << (32 - n))) >>> 0;
}

function compress(hs: number[], block: Uint8Array, t: number, last: boolean): void {
  const m: number[] = [];
  for (let i = 0; i < 16; i++) {
    m.push((block[4 * i]! | (block[4 * i + 1]! << 8) | (block[4 * i + 2]! << 16) | (block[4 * i + 3]! << 24)) >>> 0);
  }
  const v = [...hs, ...B2S_IV];
  v[12] = (v[12]! ^ (t >>> 0)) >>> 0;
  v[13] = (v[13]! ^ Math.floor(t / 0x100000000)) >>> 0;
  if (last) v[14] = (v[14]! ^ 0xffffffff) >>> 0;
  const g = (a: number, b: number, c: number, d: number, x: number, y: number): void => {
    v[a] = (v[a]! + v[b]! + x) >>> 0;
    v[d] = rotr(v[d]! ^ v[a]!, 16);
    v[c] = (v[c]! + v[d]!) >>> 0;
    v[b] = rotr(v[b]! ^ v[c]!, 12);
    v[a] = (v[a]! + v[b]! + y) >>> 0;
    v[d] = rotr(v[d]! ^ v[a]!, 8);
    v[c] = (v[c]! + v[d]!) >>> 0;
    v[b] = rotr(v[b]! ^ v[c]!, 7);
  };
  for (let r = 0; r < 10; r++) {
    const s = SIGMA[r]!;
    g(0, 4, 8, 12, m[s[0]!]!, m[s[1]!]!);
    g(1, 5, 9, 13, m[s[2]!]!, m[s[3]!]!);
    g(2, 6, 10, 14, m[s[4]!]!, m[s[5]!]!);
    g(3, 7, 11, 15, m[s[6]!]!, m[s[7]!]!);
    g(0, 5, 10, 15, m[s[8]!]!, m[s[9]!]!);
    g(1, 6, 11, 12, m[s[10]!]!, m[s[11]!]!);
    g(2, 7, 8, 13, m[s[12]!]!, m[s[13]!]!);
    g(3, 4, 9, 14, m[s[14]!]!, m[s[15]!]!);
  }
  for (let i = 0; i < 8; i++) hs[i] = (hs[i]! ^ v[i]! ^ v[i + 8]!) >>> 0;
}

function refBlake2s(outLen: number, key: Uint8Array, input: Uint8Array): Uint8Array {
  assert.ok(outLen >= 1 && outLen <= 32 && key.length <= 32);
  const hs = [...B2S_IV];
  hs[0] = (hs[0]! ^ 0x01010000 ^ (key.length << 8) ^ outLen) >>> 0;
  let data = input;
  if (key.length > 0) {
    const kb = new Uint8Array(64);
    kb.set(key);
    data = concat(kb, input);
  }
  const blocks = Math.max(1, Math.ceil(data.length / 64));
  for (let i = 0; i < blocks; i++) {
    const last = i === blocks - 1;
    const block = new Uint8Array(64);
    block.set(data.subarray(i * 64, i * 64 + 64));
    compress(hs, block, last ? data.length : (i + 1) * 64, last);
  }
  const out = new Uint8Array(32);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) dv.setUint32(4 * i, hs[i]!, true);
  return out.slice(0, outLen);
}

/** RFC 2104 HMAC over the reference BLAKE2s-256 (block size 64). */
function refHmac(key: Uint8Array, data: Uint8Array): Uint8Array {
  const k0 = new Uint8Array(64);
  k0.set(key.length > 64 ? refBlake2s(32, new Uint8Array(0), key) : key);
  const ipad = k0.map((b) => b ^ 0x36);
  const opad = k0.map((b) => b ^ 0x5c);
  return refBlake2s(32, new Uint8Array(0), concat(opad, refBlake2s(32, new Uint8Array(0), concat(ipad, data))));
}

/** RFC 5869 HKDF-Extract then Expand (info empty), as Noise's HKDF: T(i) = HMAC(PRK, T(i-1) || i). */
function refHkdf(n: number, chainKey: Uint8Array, input: Uint8Array): Uint8Array[] {
  const prk = refHmac(chainKey, input);
  const out: Uint8Array[] = [];
  let prev: Uint8Array = new Uint8Array(0);
  for (let i = 1; i <= n; i++) {
    prev = refHmac(prk, concat(prev, new Uint8Array([i])));
    out.push(prev);
  }
  return out;
}

/** RFC 7693 Appendix E: deterministic input sequence (Fibonacci generator). */
function selftestSeq(len: number, seed: number): Uint8Array {
  const out = new Uint8Array(len);
  let a = Math.imul(0xdead4bad, seed) >>> 0;
  let b = 1;
  for (let i = 0; i < len; i++) {
    const t = (a + b) >>> 0;
    a = b;
    b = t;
    out[i] = (t >>> 24) & 0xff;
  }
  return out;
}

/** RFC 7693 Appendix E "grand hash of hash results" for BLAKE2s. */
const RFC7693_SELFTEST_RESULT = '6a411f08ce25adcdfb02aba641451cec53c598b24f4fc787fbdc88797f4c1dfe';

type Blake2sFn = (outLen: number, key: Uint8Array, input: Uint8Array) => Uint8Array;

function rfc7693Selftest(f: Blake2sFn): string {
  const results: Uint8Array[] = [];
  for (const outLen of [16, 20, 28, 32]) {
    for (const inLen of [0, 3, 64, 65, 255, 1024]) {
      const input = selftestSeq(inLen, inLen);
      results.push(f(outLen, new Uint8Array(0), input));
      const key = selftestSeq(outLen, outLen);
      results.push(f(outLen, key, input));
    }
  }
  return hex(refBlake2s(32, new Uint8Array(0), concat(...results)));
}

/** Bit-flip helper: a copy of `b` with bit `bit` of byte `i` inverted. */
function flip(b: Uint8Array, i: number, bit = 0): Uint8Array {
  const c = new Uint8Array(b);
  c[i]! ^= 1 << bit;
  return c;
}

// ---------------------------------------------------------------------------
// X25519
// ---------------------------------------------------------------------------

describe('X25519 (RFC 7748)', () => {
  it('§5.2 first scalar-multiplication vector', () => {
    const k = h('a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4');
    const u = h('e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c');
    assert.equal(hex(dh(k, u)), 'c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552');
  });

  it('§5.2 second vector (u printed with its top bit set, which X25519 must mask)', () => {
    const k = h('4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d');
    const u = h('e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493');
    const expected = '95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957';
    assert.equal(hex(dh(k, u)), expected);
    // The same u with the top bit cleared is the same point.
    const masked = new Uint8Array(u);
    masked[31]! &= 0x7f;
    assert.equal(hex(dh(k, masked)), expected);
  });

  it('the scalars are clamped by X25519 itself: clamping first changes nothing', () => {
    const k = h('a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4');
    const u = h('e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c');
    assert.equal(hex(dh(clamp(new Uint8Array(k)), u)), hex(dh(k, u)));
    assert.equal(hex(publicKeyOf(clamp(new Uint8Array(k)))), hex(publicKeyOf(k)));
  });

  const alicePriv = h('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
  const alicePub = '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a';
  const bobPriv = h('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
  const bobPub = 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f';
  const shared = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';

  it('§6.1 Alice and Bob: public keys', () => {
    assert.equal(hex(publicKeyOf(alicePriv)), alicePub);
    assert.equal(hex(publicKeyOf(bobPriv)), bobPub);
  });

  it('§6.1 Alice and Bob: shared secret, both directions, raw keys and KeyObjects', () => {
    assert.equal(hex(dh(alicePriv, h(bobPub))), shared);
    assert.equal(hex(dh(bobPriv, h(alicePub))), shared);
    assert.equal(hex(dh(privateKeyObject(alicePriv), publicKeyObject(h(bobPub)))), shared);
    assert.equal(hex(dh(privateKeyObject(bobPriv), h(alicePub))), shared);
  });

  it('§6.1 the public key is X25519(k, 9)', () => {
    const nine = new Uint8Array(32);
    nine[0] = 9;
    assert.equal(hex(dh(alicePriv, nine)), alicePub);
    assert.equal(hex(dh(bobPriv, nine)), bobPub);
  });

  it('publicKeyOf does not modify its input and returns a fresh 32-byte array', () => {
    const k = new Uint8Array(alicePriv);
    const pub = publicKeyOf(k);
    assert.equal(pub.length, KEY_LEN);
    assert.deepEqual(k, alicePriv);
  });

  // Points of small order (the usual blocklist: 0, 1, the two order-8 points, p-1, p, p+1).
  const lowOrder: Record<string, string> = {
    'zero (order 2)': '0000000000000000000000000000000000000000000000000000000000000000',
    'one (order 4)': '0100000000000000000000000000000000000000000000000000000000000000',
    'order 8 (e0eb7a7c...)': 'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
    'order 8 (5f9c95bc...)': '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
    'p-1 (order 2)': 'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
    'p (= 0)': 'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
    'p+1 (= 1)': 'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  };
  for (const [name, u] of Object.entries(lowOrder)) {
    it(`dh with a low-order public key throws CryptoError EDHZERO: ${name}`, () => {
      for (const priv of [alicePriv, bobPriv, generatePrivateKey()]) {
        assert.throws(
          () => dh(priv, h(u)),
          (err: unknown) => err instanceof CryptoError && err.code === 'EDHZERO' && err.name === 'CryptoError',
        );
      }
    });
  }

  it('wrong key lengths throw CryptoError EKEYLEN', () => {
    const isLen = (err: unknown): boolean => err instanceof CryptoError && err.code === 'EKEYLEN';
    assert.throws(() => publicKeyOf(new Uint8Array(31)), isLen);
    assert.throws(() => dh(alicePriv, new Uint8Array(33)), isLen);
    assert.throws(() => dh(new Uint8Array(0), h(bobPub)), isLen);
    assert.throws(() => publicKeyObject(new Uint8Array(16)), isLen);
  });

  it('clamp: clears the low 3 bits and bit 255, sets bit 254, in place', () => {
    const ones = new Uint8Array(32).fill(0xff);
    const r = clamp(ones);
    assert.equal(r, ones, 'returns the same array');
    assert.equal(hex(ones), 'f8' + 'ff'.repeat(30) + '7f');
    const zeros = new Uint8Array(32);
    clamp(zeros);
    assert.equal(hex(zeros), '00'.repeat(31) + '40');
    // RFC 7748 §6.1's Alice key clamps to itself except the marked bits.
    const a = clamp(new Uint8Array(alicePriv));
    assert.equal(hex(a), '70076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c6a');
    // Idempotent.
    assert.deepEqual(clamp(new Uint8Array(a)), a);
  });

  it('generatePrivateKey returns clamped, distinct 32-byte keys', () => {
    const a = generatePrivateKey();
    const b = generatePrivateKey();
    for (const k of [a, b]) {
      assert.equal(k.length, 32);
      assert.equal(k[0]! & 7, 0);
      assert.equal(k[31]! & 0x80, 0);
      assert.equal(k[31]! & 0x40, 0x40);
    }
    assert.notDeepEqual(a, b);
    assert.equal(hex(dh(a, publicKeyOf(b))), hex(dh(b, publicKeyOf(a))));
  });
});

// ---------------------------------------------------------------------------
// BLAKE2s
// ---------------------------------------------------------------------------

describe('reference BLAKE2s (test-local) against published vectors', () => {
  it('RFC 7693 Appendix B: BLAKE2s-256("abc")', () => {
    assert.equal(
      hex(refBlake2s(32, new Uint8Array(0), ascii('abc'))),
      '508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982',
    );
  });

  it('RFC 7693 Appendix E self-test (all output lengths 16..32, keyed and unkeyed)', () => {
    assert.equal(rfc7693Selftest(refBlake2s), RFC7693_SELFTEST_RESULT);
  });

  it('BLAKE2 reference KAT (blake2s-kat.txt), key 00..1f', () => {
    assert.equal(hex(refBlake2s(32, seq(32), seq(0))), KEYED_KAT[0]);
    assert.equal(hex(refBlake2s(32, seq(32), seq(1))), KEYED_KAT[1]);
  });
});

/** blake2s-kat.txt (BLAKE2 reference distribution), key = 00..1f, in = 00..(n-1). */
const KEYED_KAT: Record<number, string> = {
  0: '48a8997da407876b3d79c0d92325ad3b89cbb754d86ab71aee047ad345fd2c49',
  1: '40d15fee7c328830166ac3f918650f807e7e01e177258cdc0a39b11f598066f1',
  2: '6bb71300644cd3991b26ccd4d274acd1adeab8b1d7914546c1198bbe9fc9d803',
  64: '8975b0577fd35566d750b362b0897a26c399136df07bababbde6203ff2954ed4',
  78: '172ffc67153d12e0ca76a8b6cd5d4731885b39ce0cac93a8972a18006c8b8baf',
  164: '4f8ce1e51d2fe7f24043a904d898ebfc91975418753413aa099b795ecb35cedb',
  255: '3fb735061abc519dfe979e54c1ee5bfad0a9d858b3315bad34bde999efd724dd',
};

describe('BLAKE2s: hash()', () => {
  it('RFC 7693 Appendix B: "abc"', () => {
    assert.equal(hex(hash(ascii('abc'))), '508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982');
  });

  it('empty input (BLAKE2s-256 of the empty string)', () => {
    assert.equal(hex(hash()), '69217a3079908094e11121d042354a7c1f55b6482ca1a51e1b250dfd1ed0eef9');
    assert.equal(hex(hash(new Uint8Array(0))), '69217a3079908094e11121d042354a7c1f55b6482ca1a51e1b250dfd1ed0eef9');
  });

  it('hash(a, b, ...) is the hash of the concatenation', () => {
    const a = ascii('a');
    const bc = ascii('bc');
    assert.equal(hex(hash(a, bc)), hex(hash(ascii('abc'))));
    assert.equal(hex(hash(a, new Uint8Array(0), ascii('b'), ascii('c'))), hex(hash(ascii('abc'))));
  });

  it('plugged into the RFC 7693 Appendix E self-test for every unkeyed 32-byte cell', () => {
    const f: Blake2sFn = (outLen, key, input) =>
      outLen === 32 && key.length === 0 ? hash(input) : refBlake2s(outLen, key, input);
    assert.equal(rfc7693Selftest(f), RFC7693_SELFTEST_RESULT);
  });

  it('WireGuard initial chaining key and hash (HASH(CONSTRUCTION), HASH(Ci || IDENTIFIER))', () => {
    // Values computed independently with Python hashlib.blake2s.
    const ck = hash(ascii('Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s'));
    assert.equal(hex(ck), '60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36');
    assert.equal(
      hex(hash(ck, ascii('WireGuard v1 zx2c4 Jason@zx2c4.com'))),
      '2211b361081ac566691243db458ad5322d9c6c662293e8b70ee19c65ba079ef3',
    );
  });

  it('agrees with the reference on random inputs around the block size', () => {
    for (const n of [0, 1, 31, 32, 33, 63, 64, 65, 127, 128, 129, 1000]) {
      const m = new Uint8Array(randomBytes(n));
      assert.equal(hex(hash(m)), hex(refBlake2s(32, new Uint8Array(0), m)), `len ${n}`);
    }
  });
});

describe('BLAKE2s: mac() (keyed, 16-byte output)', () => {
  it('plugged into the RFC 7693 Appendix E self-test for every keyed 16-byte cell (16-byte keys)', () => {
    // Those six cells are BLAKE2s-128 keyed with a 16-byte key: exactly mac()'s parameter set.
    let used = 0;
    const f: Blake2sFn = (outLen, key, input) => {
      if (outLen === 16 && key.length === 16) {
        used++;
        return mac(key, input);
      }
      return refBlake2s(outLen, key, input);
    };
    assert.equal(rfc7693Selftest(f), RFC7693_SELFTEST_RESULT);
    assert.equal(used, 6);
  });

  it('BLAKE2s-128 keyed with key 00..1f (golang.org/x/crypto blake2s New128 vectors)', () => {
    // Also reproduced by Python hashlib.blake2s(digest_size=16, key=bytes(range(32))).
    assert.equal(hex(mac(seq(32), seq(0))), '9536f9b267655743dee97b8a670f9f53');
    assert.equal(hex(mac(seq(32), seq(1))), '13bacfb85b48a1223c595f8c1e7e82cb');
    assert.equal(hex(mac(seq(32), seq(2))), 'd47a9b1645e2feae501cd5fe44ce6333');
    assert.equal(hex(mac(seq(32), seq(64))), 'f1efa90d2547036841ecd3627fafbc36');
  });

  it('is not a truncation of keyed BLAKE2s-256 (the digest length is in the parameter block)', () => {
    assert.notEqual(hex(mac(seq(32), seq(0))), KEYED_KAT[0]!.slice(0, 32));
  });

  it('the reference, pinned to blake2s-kat.txt at 256 bits, agrees with mac() at 128 bits for 32-byte keys', () => {
    for (const [n, want] of Object.entries(KEYED_KAT)) {
      assert.equal(hex(refBlake2s(32, seq(32), seq(Number(n)))), want, `KAT len ${n}`);
      assert.equal(hex(mac(seq(32), seq(Number(n)))), hex(refBlake2s(16, seq(32), seq(Number(n)))), `mac len ${n}`);
    }
    for (let i = 0; i < 50; i++) {
      const key = new Uint8Array(randomBytes(32));
      const m = new Uint8Array(randomBytes(i * 7));
      assert.equal(hex(mac(key, m)), hex(refBlake2s(16, key, m)));
    }
  });

  it('mac(key, a, b) is the MAC of the concatenation', () => {
    const key = seq(32);
    const m = seq(100);
    assert.deepEqual(mac(key, m.subarray(0, 37), m.subarray(37)), mac(key, m));
    assert.equal(mac(key, m).length, 16);
  });
});

describe('HMAC-BLAKE2s and the Noise KDF', () => {
  it('hmac() equals RFC 2104 HMAC built on the pinned reference BLAKE2s', () => {
    const cases: [Uint8Array, Uint8Array][] = [
      [new Uint8Array(32).fill(0x0b), ascii('Hi There')],
      [ascii('Jefe'), ascii('what do ya want for nothing?')],
      [seq(32), seq(0)],
      [seq(32), seq(255)],
      [seq(64), seq(65)],
      [new Uint8Array(131).fill(0xaa), ascii('Test Using Larger Than Block-Size Key - Hash Key First')],
      [new Uint8Array(0), ascii('empty key')],
    ];
    for (const [k, m] of cases) assert.equal(hex(hmac(k, m)), hex(refHmac(k, m)));
  });

  it('HMAC-BLAKE2s known value (RFC 4231 case 1 inputs; Python hmac.new(..., hashlib.blake2s))', () => {
    assert.equal(
      hex(hmac(new Uint8Array(32).fill(0x0b), ascii('Hi There'))),
      '0a22725a2d3d42c8f0515617bf249fcd1aaec274c7e94a5058549a5691941426',
    );
  });

  it('kdf(n) equals textbook HKDF-Extract/Expand with HMAC-BLAKE2s', () => {
    const ck = h('60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36');
    for (const input of [new Uint8Array(0), seq(32), seq(100)]) {
      for (const n of [1, 2, 3] as const) {
        const got = kdf(n, ck, input);
        const want = refHkdf(n, ck, input);
        assert.equal(got.length, n);
        assert.deepEqual(got.map(hex), want.map(hex));
      }
    }
  });

  it('kdf structure: T1 = HMAC(PRK, 0x01), T2 = HMAC(PRK, T1||0x02), T3 = HMAC(PRK, T2||0x03), PRK = HMAC(ck, input)', () => {
    const ck = seq(32);
    const input = h('4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742');
    const prk = hmac(ck, input);
    const t1 = hmac(prk, h('01'));
    const t2 = hmac(prk, concat(t1, h('02')));
    const t3 = hmac(prk, concat(t2, h('03')));
    const [a, b, c] = kdf(3, ck, input);
    assert.deepEqual([a, b, c].map((x) => hex(x!)), [t1, t2, t3].map(hex));
    // Shorter outputs are prefixes of longer ones.
    assert.deepEqual(kdf(1, ck, input).map(hex), [hex(t1)]);
    assert.deepEqual(kdf(2, ck, input).map(hex), [hex(t1), hex(t2)]);
    for (const x of [a, b, c]) assert.equal(x!.length, 32);
  });
});

// ---------------------------------------------------------------------------
// ChaCha20-Poly1305
// ---------------------------------------------------------------------------

const LADIES = ascii(
  "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
);

describe('ChaCha20-Poly1305 (RFC 8439)', () => {
  const key282 = h('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
  const aad282 = h('50515253c0c1c2c3c4c5c6c7');
  const ct282 =
    'd31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b' +
    '1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc' +
    '3ff4def08e4b7a9de576d26586cec64b6116';
  const tag282 = '1ae10b594f09e26a7e902ecbd0600691';

  it('§2.8.2 through node:crypto directly (its nonce 07000000|4041..47 is not a WireGuard nonce)', () => {
    const nonce = h('070000004041424344454647');
    const c = createCipheriv('chacha20-poly1305', key282, nonce, { authTagLength: 16 });
    c.setAAD(aad282, { plaintextLength: LADIES.length });
    const ct = Buffer.concat([c.update(LADIES), c.final()]);
    assert.equal(ct.toString('hex'), ct282);
    assert.equal(c.getAuthTag().toString('hex'), tag282);
    const d = createDecipheriv('chacha20-poly1305', key282, nonce, { authTagLength: 16 });
    d.setAuthTag(h(tag282));
    d.setAAD(aad282, { plaintextLength: ct.length });
    assert.deepEqual(new Uint8Array(Buffer.concat([d.update(ct), d.final()])), LADIES);
  });

  it('nonceFor: 4 zero bytes then the counter as little-endian u64', () => {
    assert.equal(nonceFor(0).toString('hex'), '000000000000000000000000');
    assert.equal(nonceFor(1).toString('hex'), '000000000100000000000000');
    assert.equal(nonceFor(0x0807060504030201n).toString('hex'), '000000000102030405060708');
    assert.equal(nonceFor(2 ** 53 - 1).toString('hex'), '00000000ffffffffffff1f00');
    assert.equal(nonceFor(0xffffffffffffffffn).toString('hex'), '00000000ffffffffffffffff');
  });

  // Appendix A.5: nonce 00000000 0102030405060708 = WireGuard counter 0x0807060504030201.
  const keyA5 = h('1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0');
  const counterA5 = 0x0807060504030201n;
  const aadA5 = h('f33388860000000000004e91');
  const ctA5 = h(`
    64a0861575861af460f062c79be643bd5e805cfd345cf389f108670ac76c8cb2
    4c6cfc18755d43eea09ee94e382d26b0bdb7b73c321b0100d4f03b7f355894cf
    332f830e710b97ce98c8a84abd0b948114ad176e008d33bd60f982b1ff37c855
    9797a06ef4f0ef61c186324e2b3506383606907b6a7c02b0f9f6157b53c867e4
    b9166c767b804d46a59b5216cde7a4e99040c5a40433225ee282a1b0a06c523e
    af4534d7f83fa1155b0047718cbc546a0d072b04b3564eea1b422273f548271a
    0bb2316053fa76991955ebd63159434ecebb4e466dae5a1073a6727627097a10
    49e617d91d361094fa68f0ff77987130305beaba2eda04df997b714d6c6f2c29
    a6ad5cb4022b02709b`);
  const tagA5 = h('eead9d67890cbb22392336fea1851f38');
  const ptA5 = h(`
    496e7465726e65742d4472616674732061726520647261667420646f63756d65
    6e74732076616c696420666f722061206d6178696d756d206f6620736978206d
    6f6e74687320616e64206d617920626520757064617465642c207265706c6163
    65642c206f72206f62736f6c65746564206279206f7468657220646f63756d65
    6e747320617420616e792074696d652e20497420697320696e617070726f7072
    6961746520746f2075736520496e7465726e65742d4472616674732061732072
    65666572656e6365206d6174657269616c206f7220746f206369746520746865
    6d206f74686572207468616e206173202fe2809c776f726b20696e2070726f67
    726573732e2fe2809d`);
  const sealedA5 = concat(ctA5, tagA5);

  it('A.5: the plaintext is the Internet-Draft boilerplate', () => {
    assert.ok(new TextDecoder().decode(ptA5).startsWith('Internet-Drafts are draft documents valid for a maximum of six months'));
    assert.equal(ptA5.length, 265);
    assert.equal(ctA5.length, 265);
  });

  it('A.5: open() recovers the plaintext (bigint counter)', () => {
    const pt = open(keyA5, counterA5, sealedA5, aadA5);
    assert.ok(pt);
    assert.equal(hex(pt), hex(ptA5));
  });

  it('A.5: seal() reproduces ciphertext || tag', () => {
    assert.equal(hex(seal(keyA5, counterA5, ptA5, aadA5)), hex(sealedA5));
  });

  it('A.5: open() returns null for any flipped bit of tag, ciphertext or AAD, a wrong counter or key', () => {
    for (const i of [0, 1, 100, 264, 265, 270, 280]) {
      for (const bit of [0, 7]) assert.equal(open(keyA5, counterA5, flip(sealedA5, i, bit), aadA5), null, `byte ${i} bit ${bit}`);
    }
    for (let i = 0; i < aadA5.length; i++) assert.equal(open(keyA5, counterA5, sealedA5, flip(aadA5, i)), null, `aad ${i}`);
    assert.equal(open(keyA5, counterA5, sealedA5), null, 'missing AAD');
    assert.equal(open(keyA5, counterA5 + 1n, sealedA5, aadA5), null);
    assert.equal(open(keyA5, 0x0807060504030200n, sealedA5, aadA5), null);
    assert.equal(open(flip(keyA5, 31, 7), counterA5, sealedA5, aadA5), null);
    assert.equal(open(keyA5, counterA5, sealedA5.subarray(0, sealedA5.length - 1), aadA5), null, 'truncated');
  });

  it('open() returns null on input shorter than a tag, and handles exactly a tag', () => {
    for (let n = 0; n < TAG_LEN; n++) assert.equal(open(keyA5, 0, new Uint8Array(n)), null, `len ${n}`);
    assert.equal(open(keyA5, 0, new Uint8Array(TAG_LEN)), null, 'zero tag for empty plaintext');
    const empty = seal(keyA5, 7, new Uint8Array(0));
    assert.equal(empty.length, TAG_LEN);
    assert.deepEqual(open(keyA5, 7, empty), new Uint8Array(0));
    assert.equal(open(keyA5, 8, empty), null);
  });

  it('seal/open without AAD matches node:crypto with the WireGuard nonce, small and ≥2^53 counters', () => {
    for (const counter of [0n, 1n, 255n, 2n ** 32n, 2n ** 53n + 5n, 2n ** 64n - 1n]) {
      const pt = new Uint8Array(randomBytes(77));
      const c = createCipheriv('chacha20-poly1305', keyA5, nonceFor(counter), { authTagLength: 16 });
      const ref = Buffer.concat([c.update(pt), c.final(), c.getAuthTag()]);
      const got = seal(keyA5, counter, pt);
      assert.equal(hex(got), ref.toString('hex'));
      assert.deepEqual(open(keyA5, counter, got), pt);
    }
    // number and bigint counters are the same nonce
    assert.deepEqual(seal(keyA5, 12345, LADIES), seal(keyA5, 12345n, LADIES));
  });

  it('seal/open with an AAD but an empty plaintext (the handshake encEmpty shape)', () => {
    const ad = seq(32);
    const s = seal(keyA5, 0, new Uint8Array(0), ad);
    assert.equal(s.length, 16);
    assert.deepEqual(open(keyA5, 0, s, ad), new Uint8Array(0));
    assert.equal(open(keyA5, 0, s, flip(ad, 5)), null);
    assert.equal(open(keyA5, 0, s), null);
  });
});

// ---------------------------------------------------------------------------
// XChaCha20-Poly1305
// ---------------------------------------------------------------------------

describe('XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03 §A.3.1)', () => {
  const key = h('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
  const nonce = h('404142434445464748494a4b4c4d4e4f5051525354555657');
  const aad = h('50515253c0c1c2c3c4c5c6c7');
  const sealed = h(`
    bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb
    731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452
    2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9
    21f9664c97637da9768812f615c68b13b52e
    c0875924c1c7987947deafd8780acf49`);

  it('xseal reproduces ciphertext || tag', () => {
    assert.equal(hex(xseal(key, nonce, LADIES, aad)), hex(sealed));
  });

  it('xopen recovers the plaintext', () => {
    const pt = xopen(key, nonce, sealed, aad);
    assert.ok(pt);
    assert.deepEqual(pt, LADIES);
  });

  it('xopen returns null on tampering, wrong nonce/AAD, short or malformed input', () => {
    for (const i of [0, 50, sealed.length - 17, sealed.length - 16, sealed.length - 1]) {
      assert.equal(xopen(key, nonce, flip(sealed, i), aad), null, `byte ${i}`);
    }
    assert.equal(xopen(key, flip(nonce, 23), sealed, aad), null);
    assert.equal(xopen(key, nonce, sealed, flip(aad, 0)), null);
    assert.equal(xopen(key, nonce, sealed, new Uint8Array(0)), null);
    assert.equal(xopen(key, nonce, sealed.subarray(0, 15), aad), null);
    assert.equal(xopen(key, nonce.subarray(0, 12), sealed, aad), null, 'a 12-byte nonce is not accepted');
  });
});

// ---------------------------------------------------------------------------
// TAI64N
// ---------------------------------------------------------------------------

describe('TAI64N', () => {
  it('unix epoch is 2^62 seconds, zero nanoseconds', () => {
    const t = tai64n(0n);
    assert.equal(t.length, TAI64N_LEN);
    assert.equal(hex(t), '400000000000000000000000');
    assert.equal(tai64nToNs(t), 0n);
  });

  it('known value: 1700000000.123456789 s', () => {
    const ns = 1_700_000_000_123_456_789n;
    assert.equal(hex(tai64n(ns)), '400000006553f100075bcd15');
    assert.equal(tai64nToNs(h('400000006553f100075bcd15')), ns);
  });

  it('round trips, including at an offset inside a larger buffer', () => {
    for (const ns of [1n, 999_999_999n, 1_000_000_000n, 1_234_567_890_987_654_321n, 4_102_444_800_000_000_000n]) {
      const t = tai64n(ns);
      assert.equal(tai64nToNs(t), ns);
      const big = new Uint8Array(40);
      big.set(t, 17);
      assert.equal(tai64nToNs(big.subarray(17, 29)), ns);
    }
  });

  it('compareTai64n orders by time (seconds first, then nanoseconds) and is 0 on equality', () => {
    const times = [0n, 1n, 999_999_999n, 1_000_000_000n, 1_000_000_001n, 1_700_000_000_000_000_000n, 1_700_000_001_000_000_000n];
    for (let i = 0; i < times.length; i++) {
      for (let j = 0; j < times.length; j++) {
        const c = compareTai64n(tai64n(times[i]!), tai64n(times[j]!));
        assert.equal(Math.sign(c), Math.sign(i - j), `${times[i]} vs ${times[j]}`);
      }
    }
    // The nanosecond field counts even when its high bytes are smaller than a later second's.
    assert.ok(compareTai64n(tai64n(1_999_999_999n), tai64n(2_000_000_000n)) < 0);
  });
});
