/**
 * The node's relay connections with fake clients: home kept, a peer's region
 * dialled on demand and closed when idle, packets queued only while a
 * connection comes up and dropped (never carried into a later connection)
 * when it fails; key rotation re-dials. Also the data socket's demultiplexer
 * and its budget for datagrams handed to the main thread.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RelayPool, type RelayClientLike } from '../../src/nat/relay-pool.js';
import type { RelayClientOptions } from '../../src/nat/relay-client.js';
import type { RelayMap } from '../../src/wire/control.js';
import { DatagramBudget, isControlDatagram } from '../../src/dataplane/demux.js';
import { sealDisco } from '../../src/wire/disco.js';
import { encodeBindingRequest } from '../../src/wire/stun.js';
import { generatePrivateKey, publicKeyOf } from '../../src/crypto/x25519.js';

class FakeClient implements RelayClientLike {
  connected = false;
  started = false;
  closed = false;
  sent: Array<{ dst: string; data: string }> = [];
  constructor(readonly o: RelayClientOptions) {}
  start(): void {
    this.started = true;
    this.o.onState?.('connecting');
  }
  up(): void {
    this.connected = true;
    this.o.onState?.('connected');
  }
  down(): void {
    this.connected = false;
    this.o.onState?.('disconnected', 'test');
  }
  send(dst: Uint8Array, data: Uint8Array): boolean {
    if (!this.connected) return false;
    this.sent.push({ dst: Buffer.from(dst).toString('hex'), data: Buffer.from(data).toString() });
    return true;
  }
  ping(): Promise<number> {
    return Promise.resolve(1);
  }
  close(): Promise<void> {
    this.closed = true;
    this.connected = false;
    return Promise.resolve();
  }
}

const MAP: RelayMap = {
  regions: [1, 2].map((id) => ({ id, code: `r${id}`, name: `R${id}`, nodes: [{ name: `relay${id}`, url: `https://relay${id}.example`, fingerprint: null, stun: [] }] })),
};

function pool(now: { t: number }): { p: RelayPool; clients: FakeClient[] } {
  const clients: FakeClient[] = [];
  const p = new RelayPool({
    nodeKey: { privateKey: new Uint8Array(32), publicKey: new Uint8Array(32) },
    onPacket: () => {},
    log: () => {},
    idleMs: 60_000,
    now: () => now.t,
    makeClient: (o) => {
      const c = new FakeClient(o);
      clients.push(c);
      return c;
    },
  });
  p.setMap(MAP);
  return { p, clients };
}

const K1 = new Uint8Array(32).fill(1);
const K2 = new Uint8Array(32).fill(2);
const txt = (s: string): Uint8Array => new TextEncoder().encode(s);

test('home region dialled at once; a peer region on first send; queued packets go out in order once connected', async () => {
  const now = { t: 0 };
  const { p, clients } = pool(now);
  p.setHome(1);
  assert.equal(clients.length, 1);
  assert.equal(clients[0]!.o.url, 'https://relay1.example');
  assert.ok(p.send(2, K1, txt('a')) && p.send(2, K1, txt('b')));
  assert.equal(clients.length, 2, 'region 2 dialled on demand');
  clients[1]!.up();
  assert.deepEqual(clients[1]!.sent.map((s) => s.data), ['a', 'b']);
  assert.deepEqual(p.status().map((s) => [s.region, s.connected, s.home]), [[1, false, true], [2, true, false]]);
  await p.close();
  assert.ok(clients.every((c) => c.closed));
});

test('a connection that fails drops its queue: nothing is carried into the next connection', async () => {
  const now = { t: 0 };
  const { p, clients } = pool(now);
  p.send(1, K1, txt('for-k1'));
  clients[0]!.down();
  assert.equal(p.dropped, 1);
  clients[0]!.up();
  p.send(1, K2, txt('for-k2'));
  assert.deepEqual(clients[0]!.sent, [{ dst: Buffer.from(K2).toString('hex'), data: 'for-k2' }], 'only what was sent on this connection');
  await p.close();
});

test('idle non-home connections close; home stays; the queue is bounded', async () => {
  const now = { t: 0 };
  const { p, clients } = pool(now);
  p.setHome(1);
  for (let i = 0; i < 40; i++) p.send(2, K1, txt(`p${i}`));
  assert.equal(p.dropped, 8, '32 queued at most');
  clients[1]!.up();
  assert.equal(clients[1]!.sent[0]!.data, 'p8', 'the oldest were dropped');
  now.t = 61_000;
  (p as unknown as { closeIdle(ms: number): void }).closeIdle(60_000);
  assert.ok(clients[1]!.closed, 'idle region closed');
  assert.ok(!clients[0]!.closed, 'home kept');
  await p.close();
});

test('key rotation re-dials home with the new key; a relay map without the home region clears it', async () => {
  const now = { t: 0 };
  const { p, clients } = pool(now);
  p.setHome(1);
  const key = { privateKey: new Uint8Array(32).fill(9), publicKey: new Uint8Array(32).fill(8) };
  p.setNodeKey(key);
  assert.ok(clients[0]!.closed);
  assert.equal(clients[1]!.o.nodeKey, key);
  p.setMap({ regions: [MAP.regions[1]!] });
  assert.ok(clients[1]!.closed, 'region 1 is gone');
  assert.equal(p.homeRegion, 0);
  await p.close();
});

test('data socket demux: disco and STUN go to the main thread, WireGuard and garbage do not', () => {
  const a = generatePrivateKey();
  const b = generatePrivateKey();
  const disco = sealDisco({ type: 'ping', txid: new Uint8Array(12), nodeKey: new Uint8Array(32) }, a, publicKeyOf(a), publicKeyOf(b));
  const stun = encodeBindingRequest(new Uint8Array(12));
  assert.ok(isControlDatagram(disco, 0, disco.length));
  assert.ok(isControlDatagram(stun, 0, stun.length));
  const wg = new Uint8Array(148);
  wg[0] = 1;
  assert.ok(!isControlDatagram(wg, 0, wg.length));
  assert.ok(!isControlDatagram(txt('hello world, not a protocol'), 0, 27));
  const budget = new DatagramBudget(100, 10, 0);
  let passed = 0;
  for (let i = 0; i < 50; i++) if (budget.take(0)) passed++;
  assert.equal(passed, 10, 'burst');
  passed = 0;
  for (let i = 0; i < 50; i++) if (budget.take(100)) passed++;
  assert.equal(passed, 10, '100 ms at 100/s refills 10');
});
