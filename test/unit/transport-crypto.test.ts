/**
 * The two transport-crypto backends agree byte for byte (framing, padding
 * capped at the MTU like wireguard-go, tag), and each opens the other's output.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { NodeTransportCrypto, paddedLength } from '../../src/dataplane/transport-crypto.js';
import { NativeTransportCrypto } from '../../src/dataplane/native-crypto.js';
import { loadNative } from '../../src/dataplane/io/native.js';

test('paddedLength: multiple of 16, never past the MTU', () => {
  assert.equal(paddedLength(0, 1420), 0);
  assert.equal(paddedLength(1, 1420), 16);
  assert.equal(paddedLength(1408, 1420), 1408);
  assert.equal(paddedLength(1410, 1420), 1420);
  assert.equal(paddedLength(1420, 1420), 1420);
  assert.equal(paddedLength(1420, 0), 1424);
  assert.equal(paddedLength(17, 0), 32);
});

test('node and native backends produce identical messages and open each other\'s', () => {
  const mtu = 1420;
  const js = new NodeTransportCrypto(mtu);
  const nat = new NativeTransportCrypto(loadNative(), mtu);
  const key = randomBytes(32);
  for (const len of [0, 1, 15, 16, 17, 100, 1280, 1419, 1420]) {
    const plain = randomBytes(len);
    const a = new Uint8Array(2048), b = new Uint8Array(2048);
    a.set(plain, 16);
    b.set(plain, 16);
    const counter = 0x1_0000_0005 + len;
    const la = js.seal(key, 0xdeadbeef, counter, a, 0, len, a.length);
    const lb = nat.seal(key, 0xdeadbeef, counter, b, 0, len, b.length);
    assert.equal(la, 32 + paddedLength(len, mtu), `length for ${len}`);
    assert.equal(la, lb);
    assert.deepEqual(a.subarray(0, la), b.subarray(0, lb), `bytes for ${len}`);
    assert.equal(nat.open(key, a, 0, la), la - 32);
    assert.equal(js.open(key, b, 0, lb), lb - 32);
    assert.deepEqual(Buffer.from(a.subarray(16, 16 + len)), plain);
    assert.deepEqual(Buffer.from(b.subarray(16, 16 + len)), plain);
    b[20]! ^= 1;
    assert.equal(js.open(key, b, 0, lb), -1, 'tampered message refused');
  }
});

test('seal refuses when the message would not fit before cap', () => {
  const js = new NodeTransportCrypto(1420);
  const buf = new Uint8Array(100);
  assert.equal(js.seal(randomBytes(32), 1, 1, buf, 0, 70, 100), -1);
});
