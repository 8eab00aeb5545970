/**
 * NaCl crypto_box (src/crypto/box.ts) against the published vectors from
 * "Cryptography in NaCl" (Bernstein), the same ones NaCl's tests/box.c,
 * box2.c and libsodium's test/default/box*.c print and tweetnacl-js checks:
 * Alice's and Bob's keys, the 24-byte nonce, the 131-byte message, its
 * 147-byte box (16-byte tag || ciphertext, i.e. NaCl's c[16..]) and the
 * crypto_box_beforenm key ("firstkey" in the paper). All typed in as hex.
 */
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import {
  BOX_TAG_LEN,
  boxBeforeNm,
  boxOpen,
  boxOpenAfterNm,
  boxSeal,
  boxSealAfterNm,
  hsalsaZero,
} from '../../src/crypto/box.js';
import { CryptoError, generatePrivateKey, publicKeyOf } from '../../src/crypto/x25519.js';
import { rng } from '../helpers/rng.js';
import { h, hex } from '../helpers/hex.js';

const alicesk = h('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
const alicepk = h('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
const bobsk = h('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
const bobpk = h('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
const nonce = h('69696ee955b62b73cd62bda875fc73d68219e0036b7a0b37');
/** X25519(alicesk, bobpk), RFC 7748 §6.1. */
const shared = h('4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742');
/** HSalsa20(shared, 0^16): "firstkey" in the NaCl paper. */
const firstkey = h('1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389');
const message = h(`
  be075fc53c81f2d5cf141316ebeb0c7b5228c52a4c62cbd44b66849b64244ffc
  e5ecbaaf33bd751a1ac728d45e6c61296cdc3c01233561f41db66cce314adb31
  0e3be8250c46f06dceea3a7fa1348057e2f6556ad6b1318a024a838f21af1fde
  048977eb48f59ffd4924ca1c60902e52f0a089bc76897040e082f93776384864
  5e0705`);
const sealed = h(`
  f3ffc7703f9400e52a7dfb4b3d3305d98e993b9f48681273c29650ba32fc76ce
  48332ea7164d96a4476fb8c531a1186ac0dfc17c98dce87b4da7f011ec48c972
  71d2c20f9b928fe2270d6fb863d51738b48eeee314a7cc8ab932164548e526ae
  90224368517acfeabd6bb3732bc0e9da99832b61ca01b6de56244a9e88d5f9b3
  7973f622a43d14a6599b1f654cb45a74e355a5`);
/** A point of order 8 (libsodium's test/default/box.c small_order_p). */
const smallOrder = h('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800');

describe('crypto_box published vectors', () => {
  it('the vectors are the sizes the paper gives', () => {
    assert.equal(message.length, 131);
    assert.equal(sealed.length, 131 + BOX_TAG_LEN);
    assert.deepEqual(publicKeyOf(alicesk), alicepk);
    assert.deepEqual(publicKeyOf(bobsk), bobpk);
  });

  it('beforenm is HSalsa20 of the X25519 secret, the same from both sides', () => {
    assert.equal(hex(hsalsaZero(shared)), hex(firstkey));
    assert.equal(hex(boxBeforeNm(bobpk, alicesk)), hex(firstkey));
    assert.equal(hex(boxBeforeNm(alicepk, bobsk)), hex(firstkey));
  });

  it('seal (Alice to Bob) gives the published box, tag first', () => {
    assert.equal(hex(boxSeal(message, nonce, bobpk, alicesk)), hex(sealed));
    assert.equal(hex(boxSealAfterNm(message, nonce, firstkey)), hex(sealed));
  });

  it('open (Bob from Alice) gives the published message', () => {
    const opened = boxOpen(sealed, nonce, alicepk, bobsk);
    assert.ok(opened);
    assert.equal(hex(opened), hex(message));
    const afternm = boxOpenAfterNm(sealed, nonce, firstkey);
    assert.ok(afternm);
    assert.equal(hex(afternm), hex(message));
  });

  it('the output is a tight array (no scratch bytes around it)', () => {
    const out = boxSeal(message, nonce, bobpk, alicesk);
    assert.equal(out.byteOffset, 0);
    assert.equal(out.buffer.byteLength, out.length);
  });
});

describe('crypto_box failures', () => {
  it('any flipped bit (tag or ciphertext) → null', () => {
    for (let i = 0; i < sealed.length; i++) {
      const bad = sealed.slice();
      bad[i]! ^= 1 << (i % 8);
      assert.equal(boxOpen(bad, nonce, alicepk, bobsk), null, `byte ${i}`);
    }
  });

  it('another nonce → null', () => {
    const n2 = nonce.slice();
    n2[23]! ^= 0x80;
    assert.equal(boxOpen(sealed, n2, alicepk, bobsk), null);
  });

  it('wrong keys → null', () => {
    const eve = generatePrivateKey();
    assert.equal(boxOpen(sealed, nonce, publicKeyOf(eve), bobsk), null);
    assert.equal(boxOpen(sealed, nonce, alicepk, eve), null);
    // The sender cannot open with the roles swapped wrongly either.
    assert.equal(boxOpen(sealed, nonce, alicepk, alicesk), null);
  });

  it('short or empty input → null', () => {
    for (const len of [0, 1, 10, BOX_TAG_LEN - 1]) {
      assert.equal(boxOpen(sealed.subarray(0, len), nonce, alicepk, bobsk), null, `len ${len}`);
    }
    // Exactly a tag: the box of the empty message; a wrong tag still fails.
    assert.equal(boxOpen(sealed.subarray(0, BOX_TAG_LEN), nonce, alicepk, bobsk), null);
    assert.equal(boxOpen(new Uint8Array(100), nonce, alicepk, bobsk), null);
  });

  it('malformed nonce or keys → null, never a throw', () => {
    assert.equal(boxOpen(sealed, nonce.subarray(0, 23), alicepk, bobsk), null);
    assert.equal(boxOpen(sealed, new Uint8Array(0), alicepk, bobsk), null);
    assert.equal(boxOpen(sealed, nonce, alicepk.subarray(0, 31), bobsk), null);
    assert.equal(boxOpen(sealed, nonce, alicepk, new Uint8Array(33)), null);
    assert.equal(boxOpen(sealed, nonce, new Uint8Array(32), bobsk), null);
    assert.equal(boxOpen(sealed, nonce, smallOrder, bobsk), null);
    assert.equal(boxOpenAfterNm(sealed, nonce, new Uint8Array(16)), null);
  });

  it('seal refuses a low-order public key and a bad nonce (CryptoError)', () => {
    assert.throws(() => boxSeal(message, nonce, smallOrder, alicesk), (e: unknown) => e instanceof CryptoError && e.code === 'EDHZERO');
    assert.throws(() => boxBeforeNm(smallOrder, alicesk), CryptoError);
    assert.throws(() => boxSeal(message, nonce.subarray(1), bobpk, alicesk), (e: unknown) => e instanceof CryptoError && e.code === 'ENONCELEN');
  });
});

describe('crypto_box round trips', () => {
  it('random keys, nonces and lengths 0..300 seal and open', () => {
    const r = rng(0xb0c5);
    const a = generatePrivateKey();
    const b = generatePrivateKey();
    const apk = publicKeyOf(a);
    const bpk = publicKeyOf(b);
    for (let len = 0; len <= 300; len += 1 + Math.floor(r() * 7)) {
      const m = Uint8Array.from({ length: len }, () => Math.floor(r() * 256));
      const n = Uint8Array.from({ length: 24 }, () => Math.floor(r() * 256));
      const c = boxSeal(m, n, bpk, a);
      assert.equal(c.length, len + BOX_TAG_LEN);
      assert.deepEqual(boxOpen(c, n, apk, b), m);
      // Both directions share one key.
      assert.deepEqual(boxSeal(m, n, apk, b), c);
    }
  });

  it('opening garbage of every length never throws', () => {
    const r = rng(7);
    for (let i = 0; i < 300; i++) {
      const len = Math.floor(r() * 80);
      const g = Uint8Array.from({ length: len }, () => Math.floor(r() * 256));
      assert.equal(boxOpen(g, nonce, alicepk, bobsk), null);
    }
  });
});
