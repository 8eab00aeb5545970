/**
 * The STUN server: its pure decision (answerStun) for RFC 8489 and classic
 * requests, CHANGE-REQUEST with one address (420) and with two (answered from
 * the changed socket, with RESPONSE-ORIGIN/OTHER-ADDRESS or SOURCE-/CHANGED-
 * ADDRESS), unknown attributes, other methods and garbage; then the real
 * node:dgram server on loopback (127.0.0.1 + 127.0.0.2), queried by raw
 * sockets and by StunClient, with its counters.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import type { RemoteInfo, Socket } from 'node:dgram';
import { answerStun, startStunServer, STUN_SOFTWARE } from '../../src/server/relay/stun-server.js';
import type { StunAnswer, StunLayout } from '../../src/server/relay/stun-server.js';
import { StunClient } from '../../src/nat/stun-client.js';
import {
  BINDING_ERROR, BINDING_INDICATION, BINDING_SUCCESS, decodeStun, encodeBindingRequest, encodeBindingSuccess, encodeStun,
  readFields, StunAttr,
} from '../../src/wire/stun.js';
import type { StunFields, StunMessage } from '../../src/wire/stun.js';
import { h } from '../helpers/hex.js';

const TXID = h('0102030405060708090a0b0c');
const FROM = { ip: '203.0.113.5', port: 40000 };
const SINGLE: StunLayout = { sockets: [[{ ip: '192.0.2.1', port: 3478 }]], paired: false };
const PAIRED: StunLayout = {
  sockets: [
    [{ ip: '192.0.2.1', port: 3478 }, { ip: '192.0.2.1', port: 3479 }],
    [{ ip: '192.0.2.2', port: 3478 }, { ip: '192.0.2.2', port: 3479 }],
  ],
  paired: true,
};
/** What the stock Debian `stun` client sends: classic header, 16-byte id (first byte = test number), CHANGE-REQUEST. */
const classicRequest = (flags: number): Uint8Array => h(`0001 0008 02000000 11111111 22222222 33333333 0003 0004 000000${flags.toString(16).padStart(2, '0')}`);

function reply(a: StunAnswer): { m: StunMessage; f: StunFields; via: unknown; classic: boolean; error: boolean } {
  assert.equal(a.kind, 'reply');
  const m = decodeStun(a.data);
  assert.ok(m);
  const f = readFields(m);
  assert.ok(f);
  return { m, f, via: a.via, classic: a.classic, error: a.error };
}

test('one address: a Binding request gets XOR-MAPPED-ADDRESS, RESPONSE-ORIGIN and SOFTWARE from the socket it came to', () => {
  const r = reply(answerStun(encodeBindingRequest(TXID, { fingerprint: true }), FROM, { addr: 0, alt: 0 }, SINGLE));
  assert.equal(r.m.type, BINDING_SUCCESS);
  assert.equal(r.m.hasFingerprint, true);
  assert.deepEqual(r.m.transactionId, TXID);
  assert.deepEqual(r.f, { xorMapped: FROM, responseOrigin: { ip: '192.0.2.1', port: 3478 }, software: STUN_SOFTWARE });
  assert.deepEqual(r.via, { addr: 0, alt: 0 });
});

test('one address: CHANGE-REQUEST asking for a change gets 420 naming it; an empty one (stock client) is answered', () => {
  for (const [changeIp, changePort] of [[true, false], [false, true], [true, true]]) {
    const r = reply(answerStun(encodeBindingRequest(TXID, { changeIp, changePort }), FROM, { addr: 0, alt: 0 }, SINGLE));
    assert.equal(r.m.type, BINDING_ERROR);
    assert.equal(r.error, true);
    assert.deepEqual(r.f.error, { code: 420, reason: 'Unknown Attribute' });
    assert.deepEqual(r.f.unknownAttributes, [StunAttr.CHANGE_REQUEST]);
  }
  const classic = reply(answerStun(classicRequest(6), FROM, { addr: 0, alt: 0 }, SINGLE));
  assert.deepEqual([classic.m.type, classic.m.classic, classic.f.error?.code, classic.f.unknownAttributes], [BINDING_ERROR, true, 420, [3, 3]]);
  const empty = reply(answerStun(classicRequest(0), FROM, { addr: 0, alt: 0 }, SINGLE));
  assert.equal(empty.classic, true);
  assert.deepEqual(empty.f, { mapped: FROM, sourceAddress: { ip: '192.0.2.1', port: 3478 } });
  assert.deepEqual(empty.m.transactionId, classicRequest(0).subarray(4, 20), 'the 16-byte id (cookie field included) is echoed');
});

test('two addresses: CHANGE-REQUEST is answered from the changed IP and/or port, with OTHER-ADDRESS = other IP + other port', () => {
  const cases = [
    { at: { addr: 0, alt: 0 }, ip: false, port: false, via: { addr: 0, alt: 0 } },
    { at: { addr: 0, alt: 0 }, ip: true, port: false, via: { addr: 1, alt: 0 } },
    { at: { addr: 0, alt: 0 }, ip: false, port: true, via: { addr: 0, alt: 1 } },
    { at: { addr: 0, alt: 0 }, ip: true, port: true, via: { addr: 1, alt: 1 } },
    { at: { addr: 1, alt: 1 }, ip: true, port: true, via: { addr: 0, alt: 0 } },
    { at: { addr: 1, alt: 0 }, ip: true, port: false, via: { addr: 0, alt: 0 } },
  ];
  for (const c of cases) {
    const other = PAIRED.sockets[c.at.addr ^ 1]![c.at.alt ^ 1];
    const origin = PAIRED.sockets[c.via.addr]![c.via.alt];
    const r = reply(answerStun(encodeBindingRequest(TXID, { changeIp: c.ip, changePort: c.port }), FROM, c.at, PAIRED));
    assert.deepEqual(r.via, c.via, JSON.stringify(c));
    assert.deepEqual(r.f, { xorMapped: FROM, responseOrigin: origin, otherAddress: other, software: STUN_SOFTWARE });
    // The classic form of the same request: MAPPED, SOURCE (where it is sent from), CHANGED (the other address).
    const flags = (c.ip ? 4 : 0) | (c.port ? 2 : 0);
    const k = reply(answerStun(classicRequest(flags), FROM, c.at, PAIRED));
    assert.deepEqual(k.via, c.via);
    assert.deepEqual(k.f, { mapped: FROM, sourceAddress: origin, changedAddress: other });
  }
});

test('unknown comprehension-required attributes get 420, other methods and bad values 400, non-requests and garbage nothing', () => {
  const withPriority = encodeStun({ type: 0x0001, transactionId: TXID, attributes: [{ type: 0x0024, value: h('6e0001ff') }, { type: 0x8029, value: new Uint8Array(8) }, { type: StunAttr.USERNAME, value: h('61') }] });
  const r = reply(answerStun(withPriority, FROM, { addr: 0, alt: 0 }, SINGLE));
  assert.deepEqual([r.f.error?.code, r.f.unknownAttributes], [420, [0x0024]], 'PRIORITY is unknown; ICE-CONTROLLED is optional; USERNAME is ignored');
  const allocate = reply(answerStun(encodeStun({ type: 0x0003, transactionId: TXID, attributes: [] }), FROM, { addr: 0, alt: 0 }, SINGLE));
  assert.deepEqual([allocate.m.type, allocate.f.error?.code], [0x0113, 400]);
  const badCr = encodeStun({ type: 0x0001, transactionId: TXID, attributes: [{ type: StunAttr.CHANGE_REQUEST, value: h('0000') }] });
  assert.equal(reply(answerStun(badCr, FROM, { addr: 0, alt: 0 }, SINGLE)).f.error?.code, 400);
  for (const d of [
    encodeBindingSuccess(TXID, { mapped: FROM }),
    encodeStun({ type: BINDING_INDICATION, transactionId: TXID, attributes: [] }),
    new Uint8Array(0), h('01000000 2112a442'), new Uint8Array(148).fill(1),
  ]) {
    assert.deepEqual(answerStun(d, FROM, { addr: 0, alt: 0 }, PAIRED), { kind: 'drop' });
  }
});

/** A UDP socket on loopback that collects what it receives. */
async function udpPeer(ip: string): Promise<{ sock: Socket; port: number; got: { msg: Buffer; rinfo: RemoteInfo }[] }> {
  const sock = createSocket('udp4');
  const got: { msg: Buffer; rinfo: RemoteInfo }[] = [];
  sock.on('message', (msg, rinfo) => got.push({ msg, rinfo }));
  await new Promise<void>((resolve) => sock.bind(0, ip, resolve));
  return { sock, port: sock.address().port, got };
}

async function until(what: string, cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

test('node:dgram server on 127.0.0.1 + 127.0.0.2: RFC 5780 answers from the changed socket, StunClient gets its address, counters', async () => {
  const logs: string[] = [];
  const server = await startStunServer({ addresses: [{ ip: '127.0.0.1', port: 0 }, { ip: '127.0.0.2', port: 0 }], log: (_l, m) => logs.push(m) });
  const peer = await udpPeer('127.0.0.1');
  try {
    assert.equal(server.rfc5780, true);
    const [a, b] = server.listening;
    assert.ok(a?.alternate && b?.alternate);
    assert.equal(b.primary.port, a.primary.port, 'the second address uses the port the first one got');
    assert.equal(b.alternate.port, a.alternate.port);
    assert.match(logs.join('\n'), /STUN listening on 127\.0\.0\.1:\d+ \+ 127\.0\.0\.1:\d+, 127\.0\.0\.2:\d+ \+ 127\.0\.0\.2:\d+ \(RFC 5780\)/);

    peer.sock.send(encodeBindingRequest(TXID, { changeIp: true, changePort: true }), a.primary.port, '127.0.0.1');
    peer.sock.send(h('deadbeef'), a.primary.port, '127.0.0.1');
    await until('the changed answer', () => peer.got.length >= 1);
    const { msg, rinfo } = peer.got[0]!;
    assert.deepEqual({ ip: rinfo.address, port: rinfo.port }, b.alternate, 'sent from the other IP and the other port');
    const f = readFields(decodeStun(msg)!);
    assert.deepEqual(f, { xorMapped: { ip: '127.0.0.1', port: peer.port }, responseOrigin: b.alternate, otherAddress: b.alternate, software: STUN_SOFTWARE });

    const client = new StunClient({ send: (d, ip, port) => peer.sock.send(d, port, ip), rtoMs: 200 });
    peer.sock.on('message', (m, ri) => client.handle(m, { ip: ri.address, port: ri.port }));
    const r = await client.query(b.primary, { timeoutMs: 3000 });
    assert.deepEqual(r.mapped, { ip: '127.0.0.1', port: peer.port });
    assert.deepEqual(r.otherAddress, a.alternate);
    client.close();

    await until('the counters', () => server.stats.requests === 2 && server.stats.garbage === 1);
    assert.deepEqual(server.stats, { requests: 2, classic: 0, changed: 1, errors: 0, garbage: 1, sendErrors: 0 });
  } finally {
    peer.sock.close();
    await server.close();
  }
});

test('node:dgram server with one address: CHANGE-REQUEST gets 420; a taken port is a clear error', async () => {
  const server = await startStunServer({ addresses: [{ ip: '127.0.0.1', port: 0 }], log: () => {} });
  const peer = await udpPeer('127.0.0.1');
  try {
    assert.equal(server.rfc5780, false);
    const at = server.listening[0]!.primary;
    assert.equal(server.listening[0]!.alternate, undefined);
    peer.sock.send(encodeBindingRequest(TXID, { changePort: true }), at.port, at.ip);
    await until('the 420', () => peer.got.length >= 1);
    assert.deepEqual({ ip: peer.got[0]!.rinfo.address, port: peer.got[0]!.rinfo.port }, at);
    const f = readFields(decodeStun(peer.got[0]!.msg)!);
    assert.deepEqual([f?.error?.code, f?.unknownAttributes], [420, [StunAttr.CHANGE_REQUEST]]);
    assert.deepEqual(server.stats, { requests: 1, classic: 0, changed: 0, errors: 1, garbage: 0, sendErrors: 0 });
    await assert.rejects(startStunServer({ addresses: [at], log: () => {} }), /cannot listen for STUN on 127\.0\.0\.1:\d+/);
    await assert.rejects(startStunServer({ addresses: [], log: () => {} }), /one or two addresses/);
  } finally {
    peer.sock.close();
    await server.close();
    await server.close(); // idempotent
  }
});
