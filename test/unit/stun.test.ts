/**
 * STUN codec against bytes: the RFC 5769 test vectors (byte for byte,
 * MESSAGE-INTEGRITY and FINGERPRINT included), the classic request the stock
 * Debian `stun` client sends, round trips of everything the server and client
 * build, the demultiplexing test against WireGuard messages, and a fuzz loop
 * of random, truncated and mutated datagrams that must never throw.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import {
  BINDING_ERROR, BINDING_REQUEST, BINDING_SUCCESS, CHANGE_IP, CHANGE_PORT, MAX_ATTRIBUTES, StunAttr, StunClass,
  decodeStun, encodeBindingError, encodeBindingRequest, encodeBindingSuccess, encodeStun, getAttr, isStun,
  readFields, stunClass, stunMethod, stunType, unknownRequired, xorMappedAttr, changeRequestAttr, addressAttr, errorCodeAttr,
  unknownAttributesAttr, softwareAttr,
} from '../../src/wire/stun.js';
import { encodeCookieReply, encodeInitiation, encodeResponse } from '../../src/wire/wireguard.js';
import { h, hex } from '../helpers/hex.js';
import { rng } from '../helpers/rng.js';

const TXID = h('b7e7a701bc34d686fa87dfae');

/** RFC 5769 §2.1: request with SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME, MESSAGE-INTEGRITY, FINGERPRINT. */
const SAMPLE_REQUEST = h(`
  00010058 2112a442 b7e7a701 bc34d686 fa87dfae
  80220010 5354554e 20746573 7420636c 69656e74
  00240004 6e0001ff
  80290008 932ff9b1 51263b36
  00060009 6576746a 3a683676 59202020
  00080014 9aeaa70c bfd8cb56 781ef2b5 b2d3f249 c1b571a2
  80280004 e57a3bcf`);
const SAMPLE_REQUEST_PASSWORD = 'VOkJxbRl1RmTxUk/WvJxBt';

/** RFC 5769 §2.2: IPv4 response, XOR-MAPPED-ADDRESS 192.0.2.1:32853. */
const SAMPLE_IPV4_RESPONSE = h(`
  0101003c 2112a442 b7e7a701 bc34d686 fa87dfae
  8022000b 74657374 20766563 746f7220
  00200008 0001a147 e112a643
  00080014 2b91f599 fd9e90c3 8c7489f9 2af9ba53 f06be7d7
  80280004 c07d4c96`);

/** RFC 5769 §2.3: IPv6 response, XOR-MAPPED-ADDRESS [2001:db8:1234:5678:11:2233:4455:6677]:32853. */
const SAMPLE_IPV6_RESPONSE = h(`
  01010048 2112a442 b7e7a701 bc34d686 fa87dfae
  8022000b 74657374 20766563 746f7220
  00200014 0002a147 0113a9fa a5d3f179 bc25f4b5 bed2b9d9
  00080014 a382954e 4be67bf1 1784c97c 8292c275 bfe3ed41
  80280004 c8fb0b4c`);

/** MESSAGE-INTEGRITY check (RFC 8489 §14.5), done here only to prove the vectors above are byte-exact. */
function integrityOk(msg: Uint8Array, key: string): boolean {
  let o = 20;
  while (o < msg.length) {
    const type = (msg[o]! << 8) | msg[o + 1]!;
    const len = (msg[o + 2]! << 8) | msg[o + 3]!;
    if (type === StunAttr.MESSAGE_INTEGRITY) {
      const input = Uint8Array.from(msg.subarray(0, o));
      const fakeLen = o + 24 - 20;
      input[2] = fakeLen >> 8;
      input[3] = fakeLen & 0xff;
      return hex(createHmac('sha1', key).update(input).digest()) === hex(msg.subarray(o + 4, o + 24));
    }
    o += 4 + ((len + 3) & ~3);
  }
  return false;
}

test('RFC 5769 sample request: decodes, FINGERPRINT verified, MESSAGE-INTEGRITY recognised (and the vector is exact)', () => {
  assert.ok(integrityOk(SAMPLE_REQUEST, SAMPLE_REQUEST_PASSWORD), 'HMAC-SHA1 of the vector matches its MESSAGE-INTEGRITY');
  assert.ok(isStun(SAMPLE_REQUEST, 0, SAMPLE_REQUEST.length));
  const m = decodeStun(SAMPLE_REQUEST);
  assert.ok(m);
  assert.equal(m.type, BINDING_REQUEST);
  assert.equal(stunClass(m.type), StunClass.Request);
  assert.equal(stunMethod(m.type), 1);
  for (const [method, cls, type] of [[1, StunClass.Error, 0x0111], [3, StunClass.Error, 0x0113], [0xfff, StunClass.Success, 0x3fef]]) {
    assert.equal(stunType(method!, cls!), type);
    assert.deepEqual([stunMethod(type!), stunClass(type!)], [method, cls]);
  }
  assert.equal(m.classic, false);
  assert.equal(hex(m.transactionId), hex(TXID));
  assert.equal(m.hasIntegrity, true);
  assert.equal(m.hasFingerprint, true);
  assert.deepEqual(m.attributes.map((a) => a.type), [StunAttr.SOFTWARE, 0x0024, 0x8029, StunAttr.USERNAME]);
  assert.equal(new TextDecoder().decode(getAttr(m, StunAttr.USERNAME)), 'evtj:h6vY');
  assert.deepEqual(readFields(m), { software: 'STUN test client' });
  // PRIORITY (0x0024) is comprehension-required; USERNAME is known to any RFC 8489 server.
  assert.deepEqual(unknownRequired(m, new Set([StunAttr.USERNAME])), [0x0024]);
});

test('RFC 5769 IPv4 and IPv6 responses: XOR-MAPPED-ADDRESS decodes to the documented address', () => {
  for (const [vector, ip] of [[SAMPLE_IPV4_RESPONSE, '192.0.2.1'], [SAMPLE_IPV6_RESPONSE, '2001:db8:1234:5678:11:2233:4455:6677']] as const) {
    assert.ok(isStun(vector, 0, vector.length));
    const m = decodeStun(vector);
    assert.ok(m);
    assert.equal(m.type, BINDING_SUCCESS);
    assert.equal(m.hasFingerprint, true);
    assert.equal(m.hasIntegrity, true);
    assert.deepEqual(readFields(m), { xorMapped: { ip, port: 32853 }, software: 'test vector' }); // length 11; the 12th byte (a space) is padding
    // Our encoder produces the same XOR-MAPPED-ADDRESS value bytes.
    assert.equal(hex(xorMappedAttr({ ip, port: 32853 }, TXID).value), hex(getAttr(m, StunAttr.XOR_MAPPED_ADDRESS)!));
  }
});

test('a wrong FINGERPRINT, or anything after it, makes the message garbage', () => {
  for (const vector of [SAMPLE_REQUEST, SAMPLE_IPV4_RESPONSE, SAMPLE_IPV6_RESPONSE]) {
    const crc = Uint8Array.from(vector);
    crc[crc.length - 1]! ^= 1;
    assert.equal(decodeStun(crc), null);
    const body = Uint8Array.from(vector);
    body[30]! ^= 0x40; // inside the SOFTWARE text: only the CRC notices
    assert.equal(decodeStun(body), null);
    const after = new Uint8Array(vector.length + 8);
    after.set(vector);
    after.set(h('80220004 41424344'), vector.length);
    after[3] = after.length - 20;
    assert.equal(decodeStun(after), null);
  }
});

test('the classic request of the stock stun client (RFC 3489: no cookie, 16-byte id, CHANGE-REQUEST)', () => {
  const req = h('0001 0008 01a0b0c0 d0e0f001 02030405 06070809 0003 0004 00000006');
  assert.equal(isStun(req, 0, req.length), false, 'not matched on the data socket (no cookie)');
  const m = decodeStun(req);
  assert.ok(m);
  assert.equal(m.classic, true);
  assert.equal(hex(m.transactionId), '01a0b0c0d0e0f0010203040506070809');
  assert.deepEqual(readFields(m), { changeRequest: { ip: true, port: true } });
});

test('classic success response: MAPPED, SOURCE and CHANGED-ADDRESS only, id copied, no FINGERPRINT (exact bytes)', () => {
  const id = h('0100000011111111 2222222233333333');
  const b = encodeBindingSuccess(id, {
    mapped: { ip: '10.1.2.3', port: 0x4001 },
    responseOrigin: { ip: '192.0.2.10', port: 3478 },
    otherAddress: { ip: '192.0.2.11', port: 3479 },
    software: 'ignored for classic clients',
  });
  assert.equal(hex(b), [
    '0101', '0024', hex(id),
    '0001 0008 0001 4001 0a010203',
    '0004 0008 0001 0d96 c000020a',
    '0005 0008 0001 0d97 c000020b',
  ].join('').replace(/ /g, ''));
  const m = decodeStun(b);
  assert.ok(m?.classic);
  assert.deepEqual(readFields(m), {
    mapped: { ip: '10.1.2.3', port: 0x4001 },
    sourceAddress: { ip: '192.0.2.10', port: 3478 },
    changedAddress: { ip: '192.0.2.11', port: 3479 },
  });
});

test('RFC 8489 success response round trip (IPv4 and IPv6): XOR-MAPPED, RESPONSE-ORIGIN, OTHER-ADDRESS, SOFTWARE, FINGERPRINT', () => {
  for (const [mapped, origin, other] of [
    [{ ip: '203.0.113.7', port: 41641 }, { ip: '198.51.100.1', port: 3478 }, { ip: '198.51.100.2', port: 3479 }],
    [{ ip: '2001:db8::7', port: 1 }, { ip: '2001:db8:1::1', port: 3478 }, { ip: '2001:db8:1::2', port: 65535 }],
  ]) {
    const b = encodeBindingSuccess(TXID, { mapped: mapped!, responseOrigin: origin!, otherAddress: other!, software: 'warren' });
    assert.ok(isStun(b, 0, b.length));
    const m = decodeStun(b);
    assert.ok(m);
    assert.equal(m.hasFingerprint, true);
    assert.equal(hex(m.transactionId), hex(TXID));
    assert.deepEqual(m.attributes.map((a) => a.type), [StunAttr.XOR_MAPPED_ADDRESS, StunAttr.RESPONSE_ORIGIN, StunAttr.OTHER_ADDRESS, StunAttr.SOFTWARE]);
    assert.deepEqual(readFields(m), { xorMapped: mapped, responseOrigin: origin, otherAddress: other, software: 'warren' });
  }
});

test('binding requests: plain, with CHANGE-REQUEST flags, with SOFTWARE and FINGERPRINT', () => {
  assert.equal(hex(encodeBindingRequest(TXID)), `000100002112a442${hex(TXID)}`);
  const b = encodeBindingRequest(TXID, { changeIp: true, changePort: true, software: 'abcde', fingerprint: true });
  assert.equal(hex(b.subarray(20, 28)), '0003000400000006');
  assert.equal(hex(b.subarray(28, 40)), '8022000561626364' + '65000000');
  const m = decodeStun(b);
  assert.ok(m?.hasFingerprint);
  assert.deepEqual(readFields(m), { changeRequest: { ip: true, port: true }, software: 'abcde' });
  assert.deepEqual(readFields(decodeStun(encodeBindingRequest(TXID, { changePort: true }))!), { changeRequest: { ip: false, port: true } });
  assert.equal(hex(changeRequestAttr(CHANGE_IP | CHANGE_PORT | 0xf0).value), '00000006');
});

test('error responses: 420 with UNKNOWN-ATTRIBUTES and 400, in RFC 8489 and classic form', () => {
  const e = encodeBindingError(TXID, { code: 420, reason: 'Unknown Attribute', unknown: [StunAttr.CHANGE_REQUEST], software: 'warren' });
  const m = decodeStun(e);
  assert.ok(m);
  assert.equal(m.type, BINDING_ERROR);
  assert.equal(stunClass(m.type), StunClass.Error);
  assert.deepEqual(readFields(m), { error: { code: 420, reason: 'Unknown Attribute' }, unknownAttributes: [3], software: 'warren' });
  assert.equal(hex(getAttr(m, StunAttr.UNKNOWN_ATTRIBUTES)!), '0003');

  // Classic: reason padded with spaces and an even count of unknown attributes, so every length is a multiple of 4.
  const id = h('0200000011111111 2222222233333333');
  const c = encodeBindingError(id, { code: 420, reason: 'Unknown Attribute', unknown: [3], software: 'x' });
  const reason = hex(new TextEncoder().encode('Unknown Attribute   '));
  assert.equal(hex(c), `01110024 ${hex(id)} 00090018 00000414 ${reason} 000a0004 00030003`.replace(/ /g, ''));
  assert.deepEqual(readFields(decodeStun(c)!), { error: { code: 420, reason: 'Unknown Attribute' }, unknownAttributes: [3, 3] });

  assert.deepEqual(readFields(decodeStun(encodeBindingError(TXID, { code: 400, reason: 'Bad Request' }))!), { error: { code: 400, reason: 'Bad Request' } });
});

test('isStun never matches a WireGuard message, even one whose index equals the magic cookie', () => {
  const cookieLE = 0x42a41221; // bytes 21 12 a4 42 at offset 4 once written little-endian
  const z = (n: number): Uint8Array => new Uint8Array(n);
  const msgs = [
    encodeInitiation({ sender: cookieLE, ephemeral: z(32), encStatic: z(48), encTimestamp: z(28) }),
    encodeResponse({ sender: cookieLE, receiver: 1, ephemeral: z(32), encEmpty: z(16) }),
    encodeCookieReply({ receiver: cookieLE, nonce: z(24), encCookie: z(32) }),
  ];
  for (const len of [32, 48, 1452]) {
    const t = new Uint8Array(len);
    t.set([4, 0, 0, 0, 0x21, 0x12, 0xa4, 0x42]);
    msgs.push(t);
  }
  for (const m of msgs) {
    assert.equal(hex(m.subarray(4, 8)), '2112a442');
    assert.equal(isStun(m, 0, m.length), false);
    assert.equal(decodeStun(m), null);
  }
  // At an offset inside a larger buffer, as the data plane reads.
  const buf = new Uint8Array(200);
  buf.set(SAMPLE_IPV4_RESPONSE, 16);
  assert.ok(isStun(buf, 16, SAMPLE_IPV4_RESPONSE.length));
  assert.equal(isStun(buf, 16, SAMPLE_IPV4_RESPONSE.length + 4), false);
});

test('malformed headers and attributes are garbage', () => {
  const ok = encodeBindingRequest(TXID, { software: 'abc' });
  const bad = (mutate: (b: Uint8Array) => void): Uint8Array => {
    const b = Uint8Array.from(ok);
    mutate(b);
    return b;
  };
  assert.ok(decodeStun(ok));
  assert.equal(decodeStun(bad((b) => (b[0] = 0x40))), null, 'top bits must be zero');
  assert.equal(decodeStun(bad((b) => (b[3]! += 4))), null, 'length beyond the datagram');
  assert.equal(decodeStun(bad((b) => (b[23] = 9))), null, 'attribute overruns the message');
  assert.equal(decodeStun(ok.subarray(0, 19)), null);
  // Bad values of known attributes fail readFields, not decodeStun.
  const badAddr = encodeStun({ type: BINDING_SUCCESS, transactionId: TXID, attributes: [{ type: StunAttr.XOR_MAPPED_ADDRESS, value: h('0003 0000 00000000') }] });
  assert.equal(readFields(decodeStun(badAddr)!), null);
  const shortCr = encodeStun({ type: BINDING_REQUEST, transactionId: TXID, attributes: [{ type: StunAttr.CHANGE_REQUEST, value: h('00') }] });
  assert.equal(readFields(decodeStun(shortCr)!), null);
  const tooMany = encodeStun({ type: BINDING_REQUEST, transactionId: TXID, attributes: Array.from({ length: MAX_ATTRIBUTES + 1 }, () => ({ type: 0x8001, value: new Uint8Array(0) })) });
  assert.equal(decodeStun(tooMany), null);
  assert.throws(() => encodeBindingRequest(new Uint8Array(8)), RangeError);
});

test('fuzz: random, truncated and mutated datagrams never throw', () => {
  const next = rng(0x5707);
  const seeds = [
    SAMPLE_REQUEST, SAMPLE_IPV4_RESPONSE, SAMPLE_IPV6_RESPONSE,
    encodeBindingSuccess(h('0100000011111111 2222222233333333'), { mapped: { ip: '10.0.0.1', port: 1 }, responseOrigin: { ip: '10.0.0.2', port: 2 } }),
    encodeBindingError(TXID, { code: 420, reason: 'Unknown Attribute', unknown: [3, 0x24, 0x7fff] }),
    // No FINGERPRINT, every attribute Warren reads: mutations reach the value decoders.
    encodeStun({ type: BINDING_SUCCESS, transactionId: TXID, attributes: [
      xorMappedAttr({ ip: '2001:db8::1', port: 9 }, TXID), addressAttr(StunAttr.MAPPED_ADDRESS, { ip: '10.0.0.1', port: 7 }),
      addressAttr(StunAttr.OTHER_ADDRESS, { ip: '10.0.0.3', port: 3479 }), changeRequestAttr(CHANGE_IP),
      errorCodeAttr(420, 'x'), unknownAttributesAttr([1, 2, 3]), softwareAttr('fuzz'),
    ] }),
  ];
  let decoded = 0;
  for (let i = 0; i < 30_000; i++) {
    let b: Uint8Array;
    const kind = i % 4;
    if (kind === 0) {
      b = new Uint8Array(Math.floor(next() * 120));
      for (let j = 0; j < b.length; j++) b[j] = Math.floor(next() * 256);
    } else {
      const seed = seeds[Math.floor(next() * seeds.length)]!;
      b = Uint8Array.from(kind === 1 ? seed.subarray(0, Math.floor(next() * seed.length)) : seed);
      const flips = kind === 3 ? 1 + Math.floor(next() * 8) : 0;
      for (let j = 0; j < flips && b.length > 0; j++) b[Math.floor(next() * b.length)]! ^= 1 << Math.floor(next() * 8);
    }
    if (kind >= 2 && b.length >= 20) {
      // Keep the header consistent so the attribute walk is what gets exercised.
      b[0]! &= 0x3f;
      b[2] = (b.length - 20) >> 8;
      b[3] = (b.length - 20) & 0xff;
    }
    isStun(b, 0, b.length);
    const m = decodeStun(b);
    if (m) {
      decoded++;
      readFields(m);
      unknownRequired(m, new Set());
    }
  }
  assert.ok(decoded > 1000, `the fuzz reached the attribute decoders (${decoded} decoded)`);
});
