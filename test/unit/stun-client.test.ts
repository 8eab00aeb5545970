/**
 * StunClient with fake timers and a fake clock (no real sleeps): the
 * retransmission schedule and its bounds, matching responses by
 * transaction id and source, error and malformed responses, close, abort
 * and send failures, and concurrent queries.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StunClient, StunError } from '../../src/nat/stun-client.js';
import type { StunResult } from '../../src/nat/stun-client.js';
import {
  BINDING_REQUEST, BINDING_SUCCESS, StunAttr, addressAttr, decodeStun, encodeBindingError, encodeBindingRequest,
  encodeBindingSuccess, encodeStun, readFields,
} from '../../src/wire/stun.js';
import { hex } from '../helpers/hex.js';

/** Timers that only fire when the test advances time. */
class FakeTimers {
  now = 0;
  private nextId = 1;
  private readonly queue = new Map<number, { at: number; fn: () => void }>();

  readonly api = {
    setTimeout: ((fn: () => void, ms: number) => {
      const id = this.nextId++;
      this.queue.set(id, { at: this.now + ms, fn });
      return id;
    }) as unknown as typeof setTimeout,
    clearTimeout: ((id: number) => {
      this.queue.delete(id);
    }) as unknown as typeof clearTimeout,
  };

  get pending(): number {
    return this.queue.size;
  }

  advance(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      let due: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.queue) if (e[1].at <= end && (!due || e[1].at < due[1].at)) due = e;
      if (!due) break;
      this.queue.delete(due[0]);
      this.now = due[1].at;
      due[1].fn();
    }
    this.now = end;
  }
}

interface Sent {
  at: number;
  data: Uint8Array;
  ip: string;
  port: number;
}

const SERVER = { ip: '192.0.2.1', port: 3478 };
const MAPPED = { ip: '203.0.113.9', port: 41641 };

function setup(opts: { rtoMs?: number; maxTries?: number; send?: () => void } = {}) {
  const timers = new FakeTimers();
  const sent: Sent[] = [];
  let counter = 0;
  const client = new StunClient({
    send: opts.send ?? ((data, ip, port) => sent.push({ at: timers.now, data, ip, port })),
    now: () => timers.now,
    timers: timers.api,
    rtoMs: opts.rtoMs,
    maxTries: opts.maxTries,
    random: (n) => new Uint8Array(n).fill(++counter), // distinct, predictable transaction ids
  });
  return { timers, sent, client };
}

function txidOf(s: Sent): Uint8Array {
  const m = decodeStun(s.data);
  assert.ok(m);
  return m.transactionId;
}

/** Settle state of a promise, after letting pending callbacks run (one turn of the event loop, not a sleep). */
async function state<T>(p: Promise<T>): Promise<'pending' | { value: T } | { error: unknown }> {
  let s: 'pending' | { value: T } | { error: unknown } = 'pending';
  p.then((value) => (s = { value }), (error: unknown) => (s = { error }));
  await new Promise((resolve) => setImmediate(resolve));
  return s;
}

async function rejection(p: Promise<unknown>): Promise<StunError> {
  const s = await state(p);
  assert.ok(typeof s === 'object' && 'error' in s, `expected a rejection, got ${JSON.stringify(s)}`);
  assert.ok(s.error instanceof StunError, String(s.error));
  return s.error;
}

test('a query sends a Binding request with FINGERPRINT and resolves with the mapped address, OTHER-ADDRESS and the RTT', async () => {
  const { timers, sent, client } = setup();
  const q = client.query(SERVER);
  assert.equal(sent.length, 1);
  assert.deepEqual({ ip: sent[0]!.ip, port: sent[0]!.port }, SERVER);
  const req = decodeStun(sent[0]!.data);
  assert.ok(req);
  assert.equal(req.type, BINDING_REQUEST);
  assert.equal(req.hasFingerprint, true);
  assert.deepEqual(readFields(req), {});

  timers.advance(37);
  const other = { ip: '192.0.2.2', port: 3479 };
  const resp = encodeBindingSuccess(req.transactionId, { mapped: MAPPED, responseOrigin: SERVER, otherAddress: other });
  assert.equal(client.handle(resp, SERVER), true);
  assert.deepEqual(await q, { mapped: MAPPED, server: SERVER, rttMs: 37, otherAddress: other } satisfies StunResult);
  assert.equal(client.inFlight, 0);
  assert.equal(timers.pending, 0, 'no timers left behind');
  assert.equal(client.handle(resp, SERVER), false, 'a duplicate answer is not ours any more');
});

test('retransmits with a doubling RTO, the same transaction id each time, at most maxTries times, then times out', async () => {
  const { timers, sent, client } = setup({ rtoMs: 100, maxTries: 4 });
  const q = client.query(SERVER, { timeoutMs: 10_000 });
  timers.advance(9_999);
  assert.deepEqual(sent.map((s) => s.at), [0, 100, 300, 700]);
  assert.ok(sent.every((s) => hex(s.data) === hex(sent[0]!.data)), 'retransmissions are identical');
  assert.equal(await state(q), 'pending');
  timers.advance(1);
  const err = await rejection(q);
  assert.equal(err.code, 'STUN_TIMEOUT');
  assert.match(err.message, /no STUN answer from 192\.0\.2\.1:3478 in 10000 ms \(4 tries\)/);
  assert.equal(timers.pending, 0);
});

test('the timeout bounds a query before the tries run out; an answer to a retransmission still counts from the first send', async () => {
  const { timers, sent, client } = setup();
  const q = client.query(SERVER, { timeoutMs: 1200 });
  timers.advance(1199);
  assert.deepEqual(sent.map((s) => s.at), [0, 500]);
  timers.advance(1);
  assert.equal((await rejection(q)).code, 'STUN_TIMEOUT');

  const q2 = client.query(SERVER);
  timers.advance(600);
  client.handle(encodeBindingSuccess(txidOf(sent.at(-1)!), { mapped: MAPPED }), SERVER);
  assert.equal((await q2).rttMs, 600);
});

test('answers with the wrong transaction id, from the wrong address or port, of the wrong kind, or garbage are ignored', async () => {
  const { sent, client } = setup();
  const q = client.query(SERVER);
  const id = txidOf(sent[0]!);
  const good = encodeBindingSuccess(id, { mapped: MAPPED });
  const otherId = Uint8Array.from(id);
  otherId[0]! ^= 1;
  assert.equal(client.handle(encodeBindingSuccess(otherId, { mapped: MAPPED }), SERVER), false, 'unknown transaction id');
  assert.equal(client.handle(good, { ip: '192.0.2.99', port: 3478 }), false, 'other address');
  assert.equal(client.handle(good, { ip: '192.0.2.1', port: 3479 }), false, 'other port');
  assert.equal(client.handle(encodeBindingRequest(id), SERVER), false, 'a request, not a response');
  assert.equal(client.handle(encodeStun({ type: 0x0103, transactionId: id, attributes: [] }), SERVER), false, 'another method');
  assert.equal(client.handle(new Uint8Array([4, 0, 0, 0, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4]), SERVER), false, 'not STUN');
  const badCrc = Uint8Array.from(good);
  badCrc[badCrc.length - 1]! ^= 1;
  assert.equal(client.handle(badCrc, SERVER), false, 'broken FINGERPRINT');
  assert.equal(await state(q), 'pending');
  // The same address written as IPv4-mapped IPv6 (a dual-stack socket) is the same source.
  assert.equal(client.handle(good, { ip: '::ffff:192.0.2.1', port: 3478 }), true);
  assert.deepEqual((await q).mapped, MAPPED);
});

test('an old server answering with MAPPED-ADDRESS only works; IPv6 servers work', async () => {
  const { sent, client } = setup();
  const q = client.query(SERVER);
  client.handle(encodeStun({ type: BINDING_SUCCESS, transactionId: txidOf(sent[0]!), attributes: [addressAttr(StunAttr.MAPPED_ADDRESS, MAPPED)] }), SERVER);
  assert.deepEqual((await q).mapped, MAPPED);

  const v6 = { ip: '2001:db8::1', port: 3478 };
  const q6 = client.query(v6);
  const mapped6 = { ip: '2001:db8:ffff::42', port: 5000 };
  assert.equal(client.handle(encodeBindingSuccess(txidOf(sent[1]!), { mapped: mapped6 }), { ip: '2001:0db8:0:0::1', port: 3478 }), true);
  assert.deepEqual(await q6, { mapped: mapped6, server: v6, rttMs: 0 });
});

test('error responses and responses without an address reject with a clear error', async () => {
  const { sent, client } = setup();
  const q = client.query(SERVER);
  client.handle(encodeBindingError(txidOf(sent[0]!), { code: 420, reason: 'Unknown Attribute', unknown: [3] }), SERVER);
  const err = await rejection(q);
  assert.deepEqual([err.code, err.stunCode, err.message], ['STUN_ERROR_RESPONSE', 420, 'STUN server 192.0.2.1:3478 answered 420 Unknown Attribute']);

  const q2 = client.query(SERVER);
  assert.equal(client.handle(encodeStun({ type: BINDING_SUCCESS, transactionId: txidOf(sent[1]!), attributes: [], fingerprint: true }), SERVER), true);
  assert.equal((await rejection(q2)).code, 'STUN_BAD_RESPONSE');

  const q3 = client.query(SERVER);
  const bad = encodeStun({ type: BINDING_SUCCESS, transactionId: txidOf(sent[2]!), attributes: [{ type: StunAttr.XOR_MAPPED_ADDRESS, value: new Uint8Array(3) }] });
  assert.equal(client.handle(bad, SERVER), true);
  assert.equal((await rejection(q3)).code, 'STUN_BAD_RESPONSE');
});

test('concurrent queries get their own transaction ids and their own answers, in any order', async () => {
  const { sent, client } = setup();
  const other = { ip: '198.51.100.7', port: 3478 };
  const a = client.query(SERVER);
  const b = client.query(other);
  const c = client.query(SERVER);
  assert.equal(new Set(sent.map((s) => hex(txidOf(s)))).size, 3);
  client.handle(encodeBindingSuccess(txidOf(sent[2]!), { mapped: { ip: '203.0.113.3', port: 3 } }), SERVER);
  client.handle(encodeBindingSuccess(txidOf(sent[1]!), { mapped: { ip: '203.0.113.2', port: 2 } }), other);
  client.handle(encodeBindingSuccess(txidOf(sent[0]!), { mapped: { ip: '203.0.113.1', port: 1 } }), SERVER);
  assert.deepEqual((await Promise.all([a, b, c])).map((r) => r.mapped.port), [1, 2, 3]);
  assert.deepEqual((await b).server, other);
});

test('close rejects pending queries and later ones; abort rejects one; a throwing send rejects it', async () => {
  const { timers, client } = setup();
  const q = client.query(SERVER);
  const ac = new AbortController();
  const aborted = client.query(SERVER, { signal: ac.signal });
  ac.abort(new Error('netcheck cancelled'));
  assert.equal((await rejection(aborted)).code, 'STUN_ABORTED');
  assert.equal(await state(q), 'pending');
  client.close();
  assert.equal((await rejection(q)).code, 'STUN_CLOSED');
  assert.equal((await rejection(client.query(SERVER))).code, 'STUN_CLOSED');
  assert.equal(timers.pending, 0);

  const failing = setup({ send: () => { throw new Error('EBADF'); } });
  const err = await rejection(failing.client.query(SERVER));
  assert.equal(err.code, 'STUN_SEND_FAILED');
  assert.match(String((err.cause as Error).message), /EBADF/);
  assert.equal(failing.timers.pending, 0);
  assert.equal((await rejection(failing.client.query({ ip: 'stun.example', port: 3478 }))).code, 'STUN_BAD_ADDRESS');
});
