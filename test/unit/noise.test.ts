/**
 * Tests for src/dataplane/noise.ts (Noise_IKpsk2 as WireGuard uses it) and
 * src/dataplane/cookie.ts (MAC1, MAC2, cookie replies).
 *
 * The fixed-key handshake vector below was computed independently, outside
 * this code base, with Python (hashlib.blake2s, hmac, and the `cryptography`
 * package's X25519 and ChaCha20Poly1305) following the whitepaper's §5.4
 * formulas step by step; the hex is typed in here.
 */
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import {
  CONSTRUCTION,
  IDENTIFIER,
  LABEL_COOKIE,
  LABEL_MAC1,
  consumeInitiation,
  consumeResponse,
  createInitiation,
  createResponse,
  peerIdentity,
  staticIdentity,
  type HandshakeState,
  type PeerIdentity,
  type StaticIdentity,
  type TransportKeys,
} from '../../src/dataplane/noise.js';
import { CookieChecker, CookieGenerator } from '../../src/dataplane/cookie.js';
import { FakeClock } from '../../src/dataplane/clock.js';
import { COOKIE_REFRESH_TIME } from '../../src/dataplane/constants.js';
import { decodeCookieReply, decodeInitiation, decodeResponse, encodeCookieReply } from '../../src/wire/wireguard.js';
import { generatePrivateKey, publicKeyOf } from '../../src/crypto/x25519.js';
import { hash, mac } from '../../src/crypto/blake2s.js';
import { open, seal } from '../../src/crypto/aead.js';
import { tai64n } from '../../src/crypto/tai64n.js';
import { h, hex } from '../helpers/hex.js';

function eq(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a).equals(Buffer.from(b));
}

function flip(b: Uint8Array, i: number, bit = 0): Uint8Array {
  const c = new Uint8Array(b);
  c[i]! ^= 1 << bit;
  return c;
}

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Two parties that know each other. */
interface Pair {
  i: StaticIdentity;
  r: StaticIdentity;
  /** the responder, as the initiator knows it */
  rAtI: PeerIdentity;
  /** the initiator, as the responder knows it */
  iAtR: PeerIdentity;
}

/** Both sides get `psk` (undefined: none) unless `pskAtR` is given separately. */
function pair(psk?: Uint8Array, privI = generatePrivateKey(), privR = generatePrivateKey(), pskAtR = psk): Pair {
  const pskAtI = psk;
  const i = staticIdentity(privI);
  const r = staticIdentity(privR);
  return { i, r, rAtI: peerIdentity(i, r.publicKey, pskAtI), iAtR: peerIdentity(r, i.publicKey, pskAtR) };
}

/** The responder's peer lookup: only the one initiator is known. */
function lookup(p: Pair): (key: Uint8Array) => Uint8Array | null {
  return (key) => (eq(key, p.i.publicKey) ? p.iAtR.staticStatic : null);
}

interface Run {
  initiation: Uint8Array;
  response: Uint8Array;
  initState: HandshakeState;
  respKeys: TransportKeys;
  initKeys: TransportKeys | null;
  timestamp: Uint8Array;
}

const TS = tai64n(1_700_000_000_123_456_789n);

function handshake(p: Pair, ephI?: Uint8Array, ephR?: Uint8Array): Run {
  const { message: initiation, state: initState } = createInitiation(p.i, p.rAtI, 0x11223344, TS, ephI);
  const msg = decodeInitiation(initiation);
  assert.ok(msg);
  const got = consumeInitiation(p.r, msg, lookup(p));
  assert.ok(got.ok, `consumeInitiation failed: ${JSON.stringify(got)}`);
  assert.deepEqual(got.peerKey, p.i.publicKey);
  const { message: response, keys: respKeys } = createResponse(p.iAtR, got.state, 0xaabbccdd, msg.sender, ephR);
  const resp = decodeResponse(response);
  assert.ok(resp);
  const initKeys = consumeResponse(p.i, p.rAtI, initState, resp);
  return { initiation, response, initState, respKeys, initKeys, timestamp: got.timestamp };
}

function assertMirrored(run: Run): void {
  assert.ok(run.initKeys, 'initiator rejected the response');
  assert.equal(hex(run.initKeys.sendKey), hex(run.respKeys.recvKey));
  assert.equal(hex(run.initKeys.recvKey), hex(run.respKeys.sendKey));
  assert.notEqual(hex(run.initKeys.sendKey), hex(run.initKeys.recvKey));
  for (const k of [run.initKeys.sendKey, run.initKeys.recvKey]) assert.equal(k.length, 32);
  // And the keys actually carry traffic both ways.
  const ping = seal(run.initKeys.sendKey, 0, ascii('ping'));
  assert.deepEqual(open(run.respKeys.recvKey, 0, ping), ascii('ping'));
  const pong = seal(run.respKeys.sendKey, 0, ascii('pong'));
  assert.deepEqual(open(run.initKeys.recvKey, 0, pong), ascii('pong'));
}

describe('noise: constants and identities', () => {
  it('protocol strings', () => {
    assert.equal(new TextDecoder().decode(CONSTRUCTION), 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s');
    assert.equal(new TextDecoder().decode(IDENTIFIER), 'WireGuard v1 zx2c4 Jason@zx2c4.com');
    assert.equal(new TextDecoder().decode(LABEL_MAC1), 'mac1----');
    assert.equal(new TextDecoder().decode(LABEL_COOKIE), 'cookie--');
  });

  it('staticIdentity / peerIdentity precomputations (initial hash 2211b361... from Python hashlib)', () => {
    const initialHash = h('2211b361081ac566691243db458ad5322d9c6c662293e8b70ee19c65ba079ef3');
    const p = pair();
    assert.deepEqual(p.r.publicKey, publicKeyOf(p.r.privateKey));
    assert.equal(hex(p.r.responderHash), hex(hash(initialHash, p.r.publicKey)));
    assert.equal(hex(p.rAtI.initiatorHash), hex(p.r.responderHash), 'both sides start from HASH(Hi || S_r^pub)');
    assert.equal(hex(p.r.mac1Key), hex(hash(ascii('mac1----'), p.r.publicKey)));
    assert.equal(hex(p.r.cookieKey), hex(hash(ascii('cookie--'), p.r.publicKey)));
    assert.equal(hex(p.rAtI.mac1Key), hex(p.r.mac1Key));
    assert.equal(hex(p.rAtI.cookieKey), hex(p.r.cookieKey));
    assert.ok(p.rAtI.staticStatic && p.iAtR.staticStatic);
    assert.equal(hex(p.rAtI.staticStatic), hex(p.iAtR.staticStatic), 'DH(Si, Sr) is symmetric');
    assert.equal(hex(p.rAtI.presharedKey), '00'.repeat(32), 'no PSK means 32 zero bytes');
  });

  it('a low-order peer key gives staticStatic null and createInitiation refuses', () => {
    const self = staticIdentity(generatePrivateKey());
    const bad = peerIdentity(self, h('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800'));
    assert.equal(bad.staticStatic, null);
    assert.throws(() => createInitiation(self, bad, 1, TS));
  });
});

describe('noise: fixed-key vector (independent Python computation)', () => {
  // Static keys: RFC 7748 §6.1 Alice (initiator) and Bob (responder).
  const privI = h('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
  const privR = h('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
  const ephI = h('202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f');
  const ephR = h('404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f');
  const psk = h('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
  // tai64n(1700000000.123456789 s); sender 0x11223344, responder sender 0xaabbccdd.
  const INIT =
    '0100000044332211358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd166254c4d95d121b13f6ff24fe1e98' +
    '3a4c71ae6c55e2763a0d1de7643d6725687b49e7a55fea10050d69b8b69a79893d649b339434a506fe73969df0eb2ed148c3e3e0' +
    'b0bc44f215c3d9c059a134c6d6d79587efd160a1a72fd1a15b395f5000000000000000000000000000000000';
  const vectors = {
    psk: {
      resp:
        '02000000ddccbbaa4433221179a631eede1bf9c98f12032cdeadd0e7a079398fc786b88cc846ec89af85a51a0f96bb09eabb48be' +
        '783d972a990b425929073019cdcf80b990e0297e00fa78f900000000000000000000000000000000',
      iSend: '189505240fbc8cee41ae63e4c9b94847df0c48a2a27cfb9445926e38fc03110f',
      iRecv: '873da44070a93bbf59985c403a6d898985d26982bc6f8f4c0a415de078a98f84',
    },
    noPsk: {
      resp:
        '02000000ddccbbaa4433221179a631eede1bf9c98f12032cdeadd0e7a079398fc786b88cc846ec89af85a51a16c36ec2f305682f' +
        'b45f4b9e8942c7a30abfdbbcbca3b41be53244de1a1372b200000000000000000000000000000000',
      iSend: '5fe2f81f7ce2ce8bc9e3aad973312d721c7c36d77fd0c26342a45319c8069f89',
      iRecv: 'e429173227a0a4509b3489e27f4a61d6d8e1ebc91761bb9cf48c647ba9fbde5a',
    },
  };

  for (const [name, v] of Object.entries(vectors)) {
    it(`${name}: initiation, response (with MAC1) and transport keys match byte for byte`, () => {
      const p = pair(name === 'psk' ? psk : undefined, privI, privR);
      const clock = new FakeClock();
      const run = handshake(p, ephI, ephR);
      // MAC1 is filled by the cookie layer; MAC2 stays zero without a cookie.
      new CookieGenerator(p.rAtI.mac1Key, p.rAtI.cookieKey, clock).stamp(run.initiation);
      new CookieGenerator(p.iAtR.mac1Key, p.iAtR.cookieKey, clock).stamp(run.response);
      assert.equal(hex(run.initiation), INIT);
      assert.equal(hex(run.response), v.resp);
      assert.ok(run.initKeys);
      assert.equal(hex(run.initKeys.sendKey), v.iSend);
      assert.equal(hex(run.initKeys.recvKey), v.iRecv);
      assert.equal(hex(run.respKeys.recvKey), v.iSend);
      assert.equal(hex(run.respKeys.sendKey), v.iRecv);
      assert.deepEqual(run.timestamp, TS);
    });
  }

  it('the responder consumes the typed-in initiation and the initiator the typed-in response', () => {
    const p = pair(psk, privI, privR);
    const msg = decodeInitiation(h(INIT));
    assert.ok(msg);
    const got = consumeInitiation(p.r, msg, lookup(p));
    assert.ok(got.ok);
    assert.deepEqual(got.timestamp, TS);
    const { state } = createInitiation(p.i, p.rAtI, 0x11223344, TS, ephI);
    const resp = decodeResponse(h(vectors.psk.resp));
    assert.ok(resp);
    const keys = consumeResponse(p.i, p.rAtI, state, resp);
    assert.ok(keys);
    assert.equal(hex(keys.sendKey), vectors.psk.iSend);
  });
});

describe('noise: handshake', () => {
  it('matching transport keys without a preshared key', () => {
    const run = handshake(pair());
    assertMirrored(run);
    assert.deepEqual(run.timestamp, TS);
  });

  it('matching transport keys with a preshared key', () => {
    const psk = generatePrivateKey();
    assertMirrored(handshake(pair(psk)));
  });

  it('a PSK changes the keys (same statics and ephemerals)', () => {
    const privI = generatePrivateKey();
    const privR = generatePrivateKey();
    const ephI = generatePrivateKey();
    const ephR = generatePrivateKey();
    const a = handshake(pair(undefined, privI, privR), ephI, ephR);
    const b = handshake(pair(new Uint8Array(32).fill(1), privI, privR), ephI, ephR);
    assert.ok(a.initKeys && b.initKeys);
    assert.deepEqual(a.initiation, b.initiation, 'the PSK is not mixed into the initiation');
    assert.notEqual(hex(a.initKeys.sendKey), hex(b.initKeys.sendKey));
  });

  it('fresh ephemerals give fresh keys', () => {
    const p = pair();
    const a = handshake(p);
    const b = handshake(p);
    assert.ok(a.initKeys && b.initKeys);
    assert.notEqual(hex(a.initKeys.sendKey), hex(b.initKeys.sendKey));
  });

  it('a wrong preshared key on one side: consumeResponse returns null', () => {
    const pskA = new Uint8Array(32).fill(0xaa);
    const pskB = new Uint8Array(32).fill(0xbb);
    const zero = new Uint8Array(32);
    const g = generatePrivateKey;
    assert.equal(handshake(pair(pskA, g(), g(), pskB)).initKeys, null, 'different PSKs');
    assert.equal(handshake(pair(pskA, g(), g(), zero)).initKeys, null, 'PSK only at the initiator');
    assert.equal(handshake(pair(zero, g(), g(), pskB)).initKeys, null, 'PSK only at the responder');
    // The responder itself cannot tell: it still derives (useless) keys.
    const run = handshake(pair(pskA, g(), g(), pskB));
    assert.equal(run.respKeys.sendKey.length, 32);
  });

  it('an initiation to the wrong responder fails with decrypt_static', () => {
    const p = pair();
    const other = staticIdentity(generatePrivateKey());
    const { message } = createInitiation(p.i, p.rAtI, 1, TS);
    const msg = decodeInitiation(message);
    assert.ok(msg);
    const got = consumeInitiation(other, msg, () => {
      throw new Error('lookup must not be reached');
    });
    assert.deepEqual(got, { ok: false, reason: 'decrypt_static' });
  });

  it('an unknown initiator is reported with its static key', () => {
    const p = pair();
    const { message } = createInitiation(p.i, p.rAtI, 1, TS);
    const msg = decodeInitiation(message);
    assert.ok(msg);
    const seen: string[] = [];
    const got = consumeInitiation(p.r, msg, (k) => {
      seen.push(hex(k));
      return null;
    });
    assert.equal(got.ok, false);
    assert.ok(!got.ok && got.reason === 'unknown_peer');
    assert.ok('peerKey' in got);
    assert.equal(hex(got.peerKey), hex(p.i.publicKey));
    assert.deepEqual(seen, [hex(p.i.publicKey)]);
  });

  it('a responder that knows the key but with a different static-static fails with decrypt_timestamp', () => {
    const p = pair();
    const { message } = createInitiation(p.i, p.rAtI, 1, TS);
    const msg = decodeInitiation(message);
    assert.ok(msg);
    const got = consumeInitiation(p.r, msg, () => new Uint8Array(32).fill(7));
    assert.deepEqual(got, { ok: false, reason: 'decrypt_timestamp' });
  });

  it('a low-order ephemeral is bad_ephemeral', () => {
    const p = pair();
    const { message } = createInitiation(p.i, p.rAtI, 1, TS);
    message.fill(0, 8, 40);
    const msg = decodeInitiation(message);
    assert.ok(msg);
    assert.deepEqual(consumeInitiation(p.r, msg, lookup(p)), { ok: false, reason: 'bad_ephemeral' });
  });

  it('tampering any bit of ephemeral, encStatic or encTimestamp fails the initiation', () => {
    const p = pair();
    const { message } = createInitiation(p.i, p.rAtI, 1, TS);
    const fields: [string, number, number, string[]][] = [
      ['ephemeral', 8, 40, ['decrypt_static', 'bad_ephemeral']],
      ['encStatic', 40, 88, ['decrypt_static']],
      ['encTimestamp', 88, 116, ['decrypt_timestamp']],
    ];
    for (const [name, from, to, reasons] of fields) {
      for (let i = from; i < to; i++) {
        for (let bit = 0; bit < 8; bit++) {
          const msg = decodeInitiation(flip(message, i, bit));
          assert.ok(msg);
          const got = consumeInitiation(p.r, msg, lookup(p));
          assert.equal(got.ok, false, `${name} byte ${i - from} bit ${bit} accepted`);
          assert.ok(!got.ok && reasons.includes(got.reason), `${name} byte ${i - from} bit ${bit}: ${got.ok ? '' : got.reason}`);
        }
      }
    }
  });

  it('tampering any bit of the response ephemeral or encEmpty makes consumeResponse return null', () => {
    const p = pair(new Uint8Array(32).fill(3));
    const { message, state } = createInitiation(p.i, p.rAtI, 1, TS);
    const msg = decodeInitiation(message);
    assert.ok(msg);
    const got = consumeInitiation(p.r, msg, lookup(p));
    assert.ok(got.ok);
    const { message: response } = createResponse(p.iAtR, got.state, 2, 1);
    const good = decodeResponse(response);
    assert.ok(good);
    assert.ok(consumeResponse(p.i, p.rAtI, state, good), 'untampered response accepted');
    for (let i = 12; i < 60; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const r = decodeResponse(flip(response, i, bit));
        assert.ok(r);
        assert.equal(consumeResponse(p.i, p.rAtI, state, r), null, `byte ${i} bit ${bit} accepted`);
      }
    }
    // A low-order response ephemeral is refused, not thrown.
    const zeroEph = new Uint8Array(response);
    zeroEph.fill(0, 12, 44);
    const r0 = decodeResponse(zeroEph);
    assert.ok(r0);
    assert.equal(consumeResponse(p.i, p.rAtI, state, r0), null);
  });

  it('consumeResponse needs the initiator state (a responder state has no local ephemeral)', () => {
    const p = pair();
    const { message, state } = createInitiation(p.i, p.rAtI, 1, TS);
    const msg = decodeInitiation(message);
    assert.ok(msg);
    const got = consumeInitiation(p.r, msg, lookup(p));
    assert.ok(got.ok);
    const { message: response } = createResponse(p.iAtR, got.state, 2, 1);
    const r = decodeResponse(response);
    assert.ok(r);
    assert.equal(consumeResponse(p.i, p.rAtI, got.state, r), null);
    assert.throws(() => createResponse(p.iAtR, state, 2, 1), /remote ephemeral/);
  });

  it('a response meant for another initiator is rejected', () => {
    const p = pair();
    const q = pair();
    const runQ = handshake(q);
    const r = decodeResponse(runQ.response);
    assert.ok(r);
    const { state } = createInitiation(p.i, p.rAtI, 1, TS);
    assert.equal(consumeResponse(p.i, p.rAtI, state, r), null);
  });

  it('response carries sender/receiver indices', () => {
    const run = handshake(pair());
    const r = decodeResponse(run.response);
    assert.ok(r);
    assert.equal(r.sender, 0xaabbccdd);
    assert.equal(r.receiver, 0x11223344);
  });
});

describe('cookie: MAC1', () => {
  function setup(): { p: Pair; clock: FakeClock; gen: CookieGenerator; checker: CookieChecker; message: Uint8Array } {
    const p = pair();
    const clock = new FakeClock();
    const gen = new CookieGenerator(p.rAtI.mac1Key, p.rAtI.cookieKey, clock);
    const checker = new CookieChecker(p.r.mac1Key, p.r.cookieKey, clock);
    const { message } = createInitiation(p.i, p.rAtI, 0x01020304, TS);
    return { p, clock, gen, checker, message };
  }

  it('stamp writes MAC1 = MAC(HASH("mac1----" || S_r^pub), msg[0:116]) and a zero MAC2', () => {
    const { p, gen, checker, message } = setup();
    message.fill(0xee, 116, 148);
    gen.stamp(message);
    assert.equal(hex(message.subarray(116, 132)), hex(mac(hash(ascii('mac1----'), p.r.publicKey), message.subarray(0, 116))));
    assert.equal(hex(message.subarray(132, 148)), '00'.repeat(16));
    assert.equal(checker.checkMac1(message), true);
    assert.equal(gen.hasCookie, false);
  });

  it('stamp works on a response too (MAC1 at 60)', () => {
    const { p, clock } = setup();
    const run = handshake(p);
    new CookieGenerator(p.iAtR.mac1Key, p.iAtR.cookieKey, clock).stamp(run.response);
    assert.equal(new CookieChecker(p.i.mac1Key, p.i.cookieKey, clock).checkMac1(run.response), true);
    assert.equal(new CookieChecker(p.r.mac1Key, p.r.cookieKey, clock).checkMac1(run.response), false, 'MAC1 is keyed to the receiver');
  });

  it('any flipped bit in the covered bytes or in MAC1 fails checkMac1; MAC2 bytes are not covered', () => {
    const { gen, checker, message } = setup();
    gen.stamp(message);
    for (let i = 0; i < 132; i++) {
      assert.equal(checker.checkMac1(flip(message, i, i % 8)), false, `byte ${i}`);
    }
    for (let i = 132; i < 148; i++) assert.equal(checker.checkMac1(flip(message, i)), true, `mac2 byte ${i}`);
  });

  it('a checker for another identity rejects it', () => {
    const { gen, message, clock } = setup();
    gen.stamp(message);
    const other = staticIdentity(generatePrivateKey());
    assert.equal(new CookieChecker(other.mac1Key, other.cookieKey, clock).checkMac1(message), false);
  });
});

describe('cookie: reply and MAC2', () => {
  const SRC = new Uint8Array([192, 0, 2, 1, 0xca, 0x6c]);
  const OTHER_SRC = new Uint8Array([192, 0, 2, 2, 0xca, 0x6c]);

  function setup(): { p: Pair; clock: FakeClock; gen: CookieGenerator; checker: CookieChecker; message: Uint8Array } {
    const p = pair();
    const clock = new FakeClock();
    const gen = new CookieGenerator(p.rAtI.mac1Key, p.rAtI.cookieKey, clock);
    const checker = new CookieChecker(p.r.mac1Key, p.r.cookieKey, clock);
    const { message } = createInitiation(p.i, p.rAtI, 0x01020304, TS);
    return { p, clock, gen, checker, message };
  }

  it('without a cookie MAC2 is zero and fails checkMac2', () => {
    const { gen, checker, message } = setup();
    gen.stamp(message);
    assert.equal(hex(message.subarray(132)), '00'.repeat(16));
    assert.equal(checker.checkMac2(message, SRC), false);
  });

  it('createReply → consumeReply → next stamp passes checkMac2 for the same source only', () => {
    const { gen, checker, message } = setup();
    gen.stamp(message);
    const reply = checker.createReply(message, SRC);
    assert.equal(reply.length, 64);
    const r = decodeCookieReply(reply);
    assert.ok(r);
    assert.equal(r.receiver, 0x01020304, 'addressed to the initiation sender index');
    assert.equal(gen.consumeReply(reply), true);
    assert.equal(gen.hasCookie, true);

    gen.stamp(message);
    assert.notEqual(hex(message.subarray(132)), '00'.repeat(16));
    assert.equal(checker.checkMac1(message), true);
    assert.equal(checker.checkMac2(message, SRC), true);
    assert.equal(checker.checkMac2(message, OTHER_SRC), false);
    // Another message stamped with the same cookie also passes.
    const second = new Uint8Array(message);
    second[4] ^= 0xff;
    gen.stamp(second);
    assert.equal(checker.checkMac2(second, SRC), true);
    // MAC2 covers MAC1: tampering anything before MAC2 breaks it.
    assert.equal(checker.checkMac2(flip(second, 120), SRC), false);
    assert.equal(checker.checkMac2(flip(second, 140), SRC), false);
  });

  it('after COOKIE_REFRESH_TIME the cookie is dropped and MAC2 is zero again', () => {
    const { gen, checker, message, clock } = setup();
    gen.stamp(message);
    assert.equal(gen.consumeReply(checker.createReply(message, SRC)), true);
    clock.advance(COOKIE_REFRESH_TIME);
    assert.equal(gen.hasCookie, true, 'still valid at exactly COOKIE_REFRESH_TIME');
    gen.stamp(message);
    assert.notEqual(hex(message.subarray(132)), '00'.repeat(16));
    clock.advance(1);
    assert.equal(gen.hasCookie, false);
    gen.stamp(message);
    assert.equal(hex(message.subarray(132)), '00'.repeat(16));
    assert.equal(checker.checkMac1(message), true);
  });

  it('a reply is accepted once, and only for the last stamped MAC1', () => {
    const { gen, checker, message } = setup();
    gen.stamp(message);
    const reply = checker.createReply(message, SRC);
    assert.equal(gen.consumeReply(reply), true);
    assert.equal(gen.consumeReply(reply), false, 'replayed reply');

    // A reply to an older message (different MAC1) is rejected.
    const { gen: gen2, checker: checker2, message: m2 } = setup();
    gen2.stamp(m2);
    const stale = checker2.createReply(m2, SRC);
    m2[4] ^= 1;
    gen2.stamp(m2);
    assert.equal(gen2.consumeReply(stale), false);
  });

  it('a reply before anything was stamped, or tampered, or garbage, is rejected', () => {
    const { gen, checker, message } = setup();
    const fresh = new CookieGenerator(new Uint8Array(32), new Uint8Array(32), new FakeClock());
    assert.equal(fresh.consumeReply(checker.createReply(message, SRC)), false);

    gen.stamp(message);
    const reply = checker.createReply(message, SRC);
    for (let i = 8; i < 64; i++) assert.equal(gen.consumeReply(flip(reply, i)), false, `byte ${i}`);
    assert.equal(gen.consumeReply(reply.subarray(0, 63)), false);
    assert.equal(gen.consumeReply(new Uint8Array(64)), false);
    const r = decodeCookieReply(reply);
    assert.ok(r);
    assert.equal(gen.consumeReply(encodeCookieReply({ ...r, receiver: r.receiver ^ 1 })), true, 'the receiver index is not authenticated');
  });

  it('a reply encrypted under another identity cookie key is rejected', () => {
    const { gen, message, clock } = setup();
    gen.stamp(message);
    const other = staticIdentity(generatePrivateKey());
    const otherChecker = new CookieChecker(other.mac1Key, other.cookieKey, clock);
    assert.equal(gen.consumeReply(otherChecker.createReply(message, SRC)), false);
  });

  it('the checker secret rotates: after it changes, an old cookie no longer validates', () => {
    const { gen, checker, message, clock } = setup();
    gen.stamp(message);
    assert.equal(gen.consumeReply(checker.createReply(message, SRC)), true);
    gen.stamp(message);
    assert.equal(checker.checkMac2(message, SRC), true);
    clock.advance(COOKIE_REFRESH_TIME + 1);
    // The generator still has the stamped bytes; re-check the same message after rotation.
    assert.equal(checker.checkMac2(message, SRC), false);
  });
});
