/**
 * Disco codec (src/wire/disco.ts): byte-level vectors for each message type,
 * sealed with the NaCl paper's keys (Alice → Bob) and nonce so the box part is
 * checked against @noble/ciphers' xsalsa20poly1305 and @noble/curves' x25519
 * directly (not through src/crypto/box.ts); the magic's separation from
 * WireGuard and STUN; forward compatibility (versions, trailing bytes, unknown
 * types); round trips; and a fuzz loop: random, truncated and bit-flipped
 * datagrams never throw and never open.
 */
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { xsalsa20poly1305 } from '@noble/ciphers/salsa.js';
import { x25519 } from '@noble/curves/ed25519.js';
import {
  DISCO_HEADER_LEN,
  DISCO_MAGIC,
  DISCO_MIN_LEN,
  DISCO_PING_LEN,
  DiscoError,
  MAX_CALL_ME_MAYBE_ENDPOINTS,
  decodeDiscoPlain,
  encodeDiscoPlain,
  ipFrom16,
  ipTo16,
  isCanonicalKey,
  isDisco,
  openDisco,
  sealDisco,
  type DiscoAddr,
  type DiscoMessage,
} from '../../src/wire/disco.js';
import { messageType } from '../../src/wire/wireguard.js';
import { boxBeforeNm } from '../../src/crypto/box.js';
import { generatePrivateKey, publicKeyOf } from '../../src/crypto/x25519.js';
import { h, hex } from '../helpers/hex.js';
import { rng } from '../helpers/rng.js';

// "Cryptography in NaCl": Alice sends, Bob receives.
const alicesk = h('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
const alicepk = h('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
const bobsk = h('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
const bobpk = h('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
const nonce = h('69696ee955b62b73cd62bda875fc73d68219e0036b7a0b37');
/** X25519(alicesk, bobpk), RFC 7748 §6.1. */
const shared = h('4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742');
/** HSalsa20(shared, 0^16): the paper's "firstkey" (crypto_box_beforenm). */
const firstkey = h('1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389');

const txid = h('a0a1a2a3a4a5a6a7a8a9aaab');
const nodeKey = h('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');

/** Each message, its plaintext written out by hand, and its sealed box (tag || ciphertext). */
const vectors: Array<{ name: string; msg: DiscoMessage; plain: string; box: string }> = [
  {
    name: 'ping',
    msg: { type: 'ping', txid, nodeKey },
    // type 1, version 0 | txid | node key
    plain: '01 00 a0a1a2a3a4a5a6a7a8a9aaab 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f',
    box: `73e6a8c452950c564771aee794bb077e 319ec4fbd64a4403ab25eb0573bc7ab41818ef885c285579060230535b8a4787
          37206fc6bd7685784d7bc4d8ac3b`,
  },
  {
    name: 'pong',
    msg: { type: 'pong', txid, src: { ip: '192.0.2.1', port: 41641 } },
    // type 2, version 0 | txid | ::ffff:192.0.2.1 | 41641 = 0xa2a9
    plain: '02 00 a0a1a2a3a4a5a6a7a8a9aaab 00000000000000000000ffffc0000201 a2a9',
    box: '70a0e57996bb2dafaa18330000474727 329ec4fbd64a4403ab25eb0573bc7ab51a1beb8d5a2f5d70f3f6fc5e5784f53f',
  },
  {
    name: 'callMeMaybe',
    msg: { type: 'callMeMaybe', endpoints: [{ ip: '192.0.2.1', port: 41641 }, { ip: '2001:db8::2', port: 41641 }] },
    // type 3, version 0 | ::ffff:192.0.2.1 41641 | 2001:db8::2 41641
    plain: '03 00 00000000000000000000ffffc0000201a2a9 20010db8000000000000000000000002a2a9',
    box: `e7c775d7da8982fa42540638f2c3d059 339e645a74e9e0a60d8243ac26e8bab5181a49247a2e50c80c093c5e55855796
          25337bd109c8`,
  },
];

describe('disco magic', () => {
  it('is "WR" and U+1F407 (rabbit) in UTF-8', () => {
    assert.equal(hex(DISCO_MAGIC), '5752f09f9087');
    assert.equal(Buffer.from(DISCO_MAGIC).toString('utf8'), 'WR\u{1F407}');
  });

  it('cannot start a WireGuard message: byte 0 is not 1..4', () => {
    const d = sealDisco(vectors[0]!.msg, alicesk, alicepk, bobpk, nonce);
    assert.equal(messageType(d, 0, d.length), 0);
    assert.ok(d[0]! < 1 || d[0]! > 4);
  });

  it('cannot be STUN: the two top bits of byte 0 are not zero and bytes 4..7 are not the cookie', () => {
    assert.notEqual(DISCO_MAGIC[0]! & 0xc0, 0);
    const d = sealDisco(vectors[0]!.msg, alicesk, alicepk, bobpk, nonce);
    assert.notEqual(hex(d.subarray(4, 8)), '2112a442');
  });

  it('isDisco: magic and minimum length; WireGuard and STUN datagrams are not disco', () => {
    const d = sealDisco(vectors[1]!.msg, alicesk, alicepk, bobpk, nonce);
    assert.ok(isDisco(d, 0, d.length));
    const inBigger = new Uint8Array(d.length + 10);
    inBigger.set(d, 7);
    assert.ok(isDisco(inBigger, 7, d.length));
    assert.ok(!isDisco(inBigger, 7, d.length + 4), 'range past the buffer');
    assert.ok(!isDisco(d, 0, DISCO_MIN_LEN - 1));
    assert.ok(isDisco(d, 0, DISCO_MIN_LEN));
    const initiation = new Uint8Array(148);
    initiation[0] = 1;
    assert.ok(!isDisco(initiation, 0, initiation.length));
    // RFC 8489 binding request: type 0x0001, length 0, cookie, txid; padded to disco size
    const stun = new Uint8Array(100);
    stun.set(h('0001 0000 2112a442 000102030405060708090a0b'));
    assert.ok(!isDisco(stun, 0, stun.length));
    const bad = d.slice();
    bad[5] ^= 1;
    assert.ok(!isDisco(bad, 0, bad.length));
  });
});

describe('disco vectors', () => {
  it('the keys are the paper\'s, and @noble/curves agrees on the shared secret', () => {
    assert.deepEqual(publicKeyOf(alicesk), alicepk);
    assert.deepEqual(publicKeyOf(bobsk), bobpk);
    assert.equal(hex(x25519.getSharedSecret(alicesk, bobpk)), hex(shared));
    assert.equal(hex(boxBeforeNm(bobpk, alicesk)), hex(firstkey));
  });

  for (const v of vectors) {
    it(`${v.name}: plaintext bytes`, () => {
      assert.equal(hex(encodeDiscoPlain(v.msg)), hex(h(v.plain)));
      assert.deepEqual(decodeDiscoPlain(h(v.plain)), v.msg);
    });

    it(`${v.name}: sealed datagram = magic | sender key | nonce | box, box from noble directly`, () => {
      const box = h(v.box);
      assert.equal(hex(xsalsa20poly1305(firstkey, nonce).encrypt(h(v.plain))), hex(box));
      const d = sealDisco(v.msg, alicesk, alicepk, bobpk, nonce);
      assert.equal(hex(d), '5752f09f9087' + hex(alicepk) + hex(nonce) + hex(box));
      assert.equal(d.length, DISCO_HEADER_LEN + 16 + h(v.plain).length);
      const opened = openDisco(d, bobsk);
      assert.ok(opened);
      assert.equal(hex(opened.sender), hex(alicepk));
      assert.deepEqual(opened.msg, v.msg);
    });
  }

  it('a padded ping: zero bytes after the node key, DISCO_PING_LEN + n on the wire', () => {
    const msg: DiscoMessage = { type: 'ping', txid, nodeKey, padding: 5 };
    assert.equal(hex(encodeDiscoPlain(msg)), hex(h(vectors[0]!.plain)) + '0000000000');
    const d = sealDisco(msg, alicesk, alicepk, bobpk, nonce);
    assert.equal(d.length, DISCO_PING_LEN + 5);
    assert.equal(sealDisco(vectors[0]!.msg, alicesk, alicepk, bobpk, nonce).length, DISCO_PING_LEN);
    assert.deepEqual(openDisco(d, bobsk)?.msg, msg);
  });

  it('IPv6 pong source and the relay\'s ":: port 0"', () => {
    for (const src of [{ ip: '2001:db8::1', port: 3478 }, { ip: '::', port: 0 }, { ip: 'fe80::1', port: 65535 }]) {
      const plain = encodeDiscoPlain({ type: 'pong', txid, src });
      assert.equal(hex(plain.subarray(14, 30)), hex(ipTo16(src.ip)!));
      assert.deepEqual(decodeDiscoPlain(plain), { type: 'pong', txid, src });
    }
  });

  it('addresses: IPv4 as IPv4-mapped, text canonical (IPv4 unmapped, IPv6 compressed, lower case)', () => {
    assert.equal(hex(ipTo16('192.0.2.1')!), '00000000000000000000ffffc0000201');
    assert.equal(hex(ipTo16('::ffff:192.0.2.1')!), '00000000000000000000ffffc0000201');
    assert.equal(ipFrom16(ipTo16('::ffff:192.0.2.1')!), '192.0.2.1');
    assert.equal(ipFrom16(ipTo16('2001:DB8:0:0:0:0:0:1')!), '2001:db8::1');
    assert.equal(ipTo16('1'), null);
    assert.equal(ipTo16('192.0.2.256'), null);
    assert.equal(ipTo16('example.com'), null);
  });
});

describe('disco forward compatibility', () => {
  it('any version is accepted; trailing bytes after pong and call-me-maybe are ignored', () => {
    const pong = h(vectors[1]!.plain);
    pong[1] = 9;
    assert.deepEqual(decodeDiscoPlain(Uint8Array.from([...pong, 1, 2, 3])), vectors[1]!.msg);
    const cmm = h(vectors[2]!.plain);
    // 17 stray bytes: not a whole entry, ignored
    assert.deepEqual(decodeDiscoPlain(Uint8Array.from([...cmm, ...new Uint8Array(17).fill(7)])), vectors[2]!.msg);
  });

  it('ping trailing bytes are its padding, whatever they are', () => {
    const p = Uint8Array.from([...h(vectors[0]!.plain), 0xde, 0xad]);
    assert.deepEqual(decodeDiscoPlain(p), { type: 'ping', txid, nodeKey, padding: 2 });
  });

  it('an unknown type decodes as unknown (with its code and version), sealed or not', () => {
    assert.deepEqual(decodeDiscoPlain(h('7f 03 0102')), { type: 'unknown', code: 0x7f, version: 3 });
    assert.deepEqual(decodeDiscoPlain(h('00 00')), { type: 'unknown', code: 0, version: 0 });
    const d = sealDisco({ type: 'unknown', code: 200, version: 1 }, alicesk, alicepk, bobpk, nonce);
    assert.equal(d.length, DISCO_MIN_LEN);
    assert.deepEqual(openDisco(d, bobsk)?.msg, { type: 'unknown', code: 200, version: 1 });
  });

  it('a call-me-maybe with more than the bound keeps the first MAX_CALL_ME_MAYBE_ENDPOINTS', () => {
    const n = MAX_CALL_ME_MAYBE_ENDPOINTS + 5;
    const b = new Uint8Array(2 + n * 18);
    b[0] = 3;
    for (let i = 0; i < n; i++) {
      b.set(ipTo16(`10.0.${i >> 8}.${i & 0xff}`)!, 2 + i * 18);
      b[2 + i * 18 + 17] = 1;
    }
    const m = decodeDiscoPlain(b);
    assert.ok(m?.type === 'callMeMaybe');
    assert.equal(m.endpoints.length, MAX_CALL_ME_MAYBE_ENDPOINTS);
    assert.deepEqual(m.endpoints[0], { ip: '10.0.0.0', port: 1 });
  });

  it('known types with a short payload are malformed: null', () => {
    assert.equal(decodeDiscoPlain(new Uint8Array(0)), null);
    assert.equal(decodeDiscoPlain(h('01')), null);
    assert.equal(decodeDiscoPlain(h(vectors[0]!.plain).subarray(0, 45)), null);
    assert.equal(decodeDiscoPlain(h(vectors[1]!.plain).subarray(0, 31)), null);
    assert.deepEqual(decodeDiscoPlain(h('0300')), { type: 'callMeMaybe', endpoints: [] });
  });
});

describe('disco opening', () => {
  const d = sealDisco(vectors[1]!.msg, alicesk, alicepk, bobpk, nonce);

  it('only the receiver opens it', () => {
    assert.equal(openDisco(d, alicesk), null);
    assert.equal(openDisco(d, generatePrivateKey()), null);
  });

  it('lookupSender: drop unknown senders before any DH, or supply the precomputed key', () => {
    const seen: string[] = [];
    assert.equal(openDisco(d, bobsk, (s) => {
      seen.push(hex(s));
      return false;
    }), null);
    assert.deepEqual(seen, [hex(alicepk)]);
    assert.equal(openDisco(d, bobsk, () => null), null);
    assert.deepEqual(openDisco(d, bobsk, () => true)?.msg, vectors[1]!.msg);
    assert.deepEqual(openDisco(d, bobsk, () => firstkey)?.msg, vectors[1]!.msg);
    assert.equal(openDisco(d, bobsk, () => new Uint8Array(32)), null);
    assert.equal(openDisco(d, bobsk, () => new Uint8Array(5)), null);
    assert.equal(openDisco(d, bobsk, () => {
      throw new Error('lookup failed');
    }), null);
  });

  it('the sender key returned is a copy', () => {
    const copy = d.slice();
    const opened = openDisco(copy, bobsk)!;
    copy.fill(0);
    assert.equal(hex(opened.sender), hex(alicepk));
  });

  it('a sender key swapped for another (valid) key does not open', () => {
    const other = d.slice();
    other.set(publicKeyOf(generatePrivateKey()), 6);
    assert.equal(openDisco(other, bobsk), null);
  });

  it('a non-canonical encoding of the sender key (top bit set) does not open', () => {
    // X25519 ignores bit 255, so the same key with it set would otherwise open as another "sender".
    const alias = d.slice();
    alias[37] ^= 0x80;
    assert.equal(openDisco(alias, bobsk), null);
    assert.ok(isCanonicalKey(alicepk));
    assert.ok(!isCanonicalKey(Uint8Array.from([...alicepk.subarray(0, 31), alicepk[31]! | 0x80])));
    const p = h('edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f'); // 2^255 - 19
    assert.ok(!isCanonicalKey(p));
    p[0] = 0xec;
    assert.ok(isCanonicalKey(p));
    p[0] = 0xff;
    assert.ok(!isCanonicalKey(p));
    p[15] = 0xfe;
    assert.ok(isCanonicalKey(p));
  });

  it('a low-order sender key does not open and does not throw', () => {
    const lo = d.slice();
    lo.set(h('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800'), 6);
    assert.equal(openDisco(lo, bobsk), null);
    lo.fill(0, 6, 38);
    assert.equal(openDisco(lo, bobsk), null);
  });
});

describe('disco encoding errors (our own bugs) throw DiscoError', () => {
  const cases: Array<[string, DiscoMessage]> = [
    ['short txid', { type: 'ping', txid: new Uint8Array(11), nodeKey }],
    ['short node key', { type: 'ping', txid, nodeKey: new Uint8Array(31) }],
    ['negative padding', { type: 'ping', txid, nodeKey, padding: -1 }],
    ['fractional padding', { type: 'ping', txid, nodeKey, padding: 1.5 }],
    ['not an address', { type: 'pong', txid, src: { ip: 'nope', port: 1 } }],
    ['port too big', { type: 'pong', txid, src: { ip: '192.0.2.1', port: 65536 } }],
    ['too many endpoints', { type: 'callMeMaybe', endpoints: Array.from({ length: MAX_CALL_ME_MAYBE_ENDPOINTS + 1 }, () => ({ ip: '192.0.2.1', port: 1 })) }],
    ['unknown code out of range', { type: 'unknown', code: 256, version: 0 }],
  ];
  for (const [name, msg] of cases) {
    it(name, () => assert.throws(() => encodeDiscoPlain(msg), DiscoError));
  }

  it('exactly the bound of endpoints encodes', () => {
    const endpoints = Array.from({ length: MAX_CALL_ME_MAYBE_ENDPOINTS }, (_, i) => ({ ip: `192.0.2.${i}`, port: 1000 + i }));
    const d = sealDisco({ type: 'callMeMaybe', endpoints }, alicesk, alicepk, bobpk);
    assert.equal(d.length, 1232, 'fits an IPv6 minimum-MTU datagram');
    assert.deepEqual(openDisco(d, bobsk)?.msg, { type: 'callMeMaybe', endpoints });
  });
});

function randomMessage(r: () => number): DiscoMessage {
  const bytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => Math.floor(r() * 256));
  const addr = (): DiscoAddr => {
    const ip = r() < 0.5
      ? Array.from({ length: 4 }, () => Math.floor(r() * 256)).join('.')
      : ipFrom16(bytes(16));
    return { ip, port: Math.floor(r() * 65536) };
  };
  switch (Math.floor(r() * 4)) {
    case 0: {
      const m: DiscoMessage = { type: 'ping', txid: bytes(12), nodeKey: bytes(32) };
      if (r() < 0.5) m.padding = 1 + Math.floor(r() * 1400);
      return m;
    }
    case 1:
      return { type: 'pong', txid: bytes(12), src: addr() };
    case 2:
      return { type: 'callMeMaybe', endpoints: Array.from({ length: Math.floor(r() * (MAX_CALL_ME_MAYBE_ENDPOINTS + 1)) }, addr) };
    default:
      return { type: 'unknown', code: 4 + Math.floor(r() * 252), version: Math.floor(r() * 256) };
  }
}

describe('disco round trips and garbage', () => {
  it('random messages survive plaintext and sealed round trips', () => {
    const r = rng(4);
    const a = generatePrivateKey();
    const apub = publicKeyOf(a);
    const b = generatePrivateKey();
    const bpub = publicKeyOf(b);
    for (let i = 0; i < 300; i++) {
      const m = randomMessage(r);
      const plain = encodeDiscoPlain(m);
      let expect: DiscoMessage = m;
      if (m.type === 'pong') expect = { ...m, src: { ip: ipFrom16(ipTo16(m.src.ip)!), port: m.src.port } };
      assert.deepEqual(decodeDiscoPlain(plain), expect);
      const opened = openDisco(sealDisco(m, a, apub, bpub), b);
      assert.deepEqual(opened, { sender: apub, msg: expect });
    }
  });

  it('random, truncated and bit-flipped datagrams never throw and never open', () => {
    const r = rng(44);
    const msgs = [...vectors.map((v) => v.msg), { type: 'ping', txid, nodeKey, padding: 40 } as DiscoMessage];
    for (const m of msgs) {
      const d = sealDisco(m, alicesk, alicepk, bobpk, nonce);
      for (let n = 0; n < d.length; n++) assert.equal(openDisco(d.subarray(0, n), bobsk), null, `truncated to ${n}`);
      for (let bit = 0; bit < d.length * 8; bit++) {
        const f = d.slice();
        f[bit >> 3] ^= 1 << (bit & 7);
        assert.equal(openDisco(f, bobsk), null, `bit ${bit} flipped`);
      }
    }
    for (let i = 0; i < 3000; i++) {
      const len = Math.floor(r() * 300);
      const g = Uint8Array.from({ length: len }, () => Math.floor(r() * 256));
      if (r() < 0.7 && len >= 6) g.set(DISCO_MAGIC);
      assert.equal(openDisco(g, bobsk), null);
      isDisco(g, Math.floor(r() * 4), len);
      decodeDiscoPlain(g); // any result, no throw
    }
  });
});
