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

/** `count` packets in `slot`-byte slots from `off`, plaintext at +16; lens[i] = plaintext length. */
function slots(plains: Uint8Array[], slot: number, off = 0): { buf: Uint8Array; lens: Int32Array } {
  const buf = new Uint8Array(off + slot * plains.length);
  const lens = new Int32Array(plains.length);
  plains.forEach((p, i) => {
    buf.set(p, off + i * slot + 16);
    lens[i] = p.length;
  });
  return { buf, lens };
}

for (const backend of ['node', 'native'] as const) {
  const make = (mtu: number) => (backend === 'node' ? new NodeTransportCrypto(mtu) : new NativeTransportCrypto(loadNative(), mtu));

  test(`${backend}: sealBatch equals seal with consecutive counters, and refuses only what does not fit its slot`, () => {
    const mtu = 1420;
    const c = make(mtu);
    const slot = 1536;
    const key = randomBytes(32);
    const plains = Array.from({ length: 9 }, (_, i) => randomBytes([0, 1, 100, 1419, 1420, 1510, 16, 17, 1280][i]!));
    const off = 2 * slot; // the run starts at the third slot of the buffer
    const { buf, lens } = slots(plains, slot, off);
    if (c instanceof NativeTransportCrypto) c.register(buf, slot); // the worker's path: ready-made slot views
    assert.equal(c.sealedLength(1510), 32 + 1516);
    assert.equal(c.sealBatch(key, 0xabcdef01, 0x1_0000_0000, buf, off, slot, plains.length, lens), plains.length - 1);
    assert.equal(lens[5], -1, '1510 bytes (padded to 1516) + 32 do not fit a 1536-byte slot');
    const one = new Uint8Array(slot);
    plains.forEach((p, i) => {
      if (i === 5) return;
      one.fill(0);
      one.set(p, 16);
      const n = c.seal(key, 0xabcdef01, 0x1_0000_0000 + i, one, 0, p.length, slot);
      assert.equal(lens[i], n, `length of packet ${i}`);
      assert.deepEqual(buf.subarray(off + i * slot, off + i * slot + n), one.subarray(0, n), `bytes of packet ${i}`);
    });
  });

  test(`${backend}: openBatch opens with per-message keys at absolute offsets; a tampered message is -1 and the rest open`, () => {
    const c = make(1420);
    const other = backend === 'node' ? new NativeTransportCrypto(loadNative(), 1420) : new NodeTransportCrypto(1420);
    const keys = randomBytes(96);
    const key = (k: number) => keys.subarray(32 * k, 32 * k + 32);
    const slot = 1536;
    const plains = Array.from({ length: 7 }, (_, i) => randomBytes(i * 200));
    const { buf } = slots(plains, slot);
    const keyIdx = Int32Array.from([0, 1, 2, 1, 0, 2, 1]);
    const offs = new Int32Array(plains.length);
    const lens = new Int32Array(plains.length);
    plains.forEach((p, i) => {
      offs[i] = i * slot;
      // Sealed by the other backend: each opens the other's messages.
      lens[i] = other.seal(key(keyIdx[i]!), 9, 1000 + i, buf, offs[i]!, p.length, offs[i]! + slot);
    });
    buf[offs[3]! + 40]! ^= 0x20;
    assert.equal(c.openBatch(keys, keyIdx, buf, plains.length, offs, lens), plains.length - 1);
    assert.equal(lens[3], -1);
    plains.forEach((p, i) => {
      if (i === 3) return;
      assert.equal(lens[i], paddedLength(p.length, 1420), `plaintext length ${i}`);
      assert.deepEqual(Buffer.from(buf.subarray(offs[i]! + 16, offs[i]! + 16 + p.length)), p, `plaintext ${i}`);
    });
  });
}
