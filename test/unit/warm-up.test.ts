/**
 * The packet worker's JIT warm-up (src/dataplane/warm-up.ts) over a loop that
 * keeps the worker's contract (batch sends queue out of the TUN buffer,
 * deliveries out of the UDP buffer, one-at-a-time sends go to a socket unless
 * diverted): it runs, it is bounded, and it leaves no trace in a real device
 * sharing that loop, nor anything sent or written outside the batch queues.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { warmUp, WarmUp, type WarmUpLoop } from '../../src/dataplane/warm-up.js';
import { Device, type DeviceIO } from '../../src/dataplane/device.js';
import { systemClock } from '../../src/dataplane/clock.js';
import { PersistentTimestamps } from '../../src/dataplane/timestamp-store.js';
import { PRODUCTION_TIMERS } from '../../src/dataplane/constants.js';
import { NodeTransportCrypto, type TransportCrypto } from '../../src/dataplane/transport-crypto.js';
import { NativeTransportCrypto } from '../../src/dataplane/native-crypto.js';
import { loadNative } from '../../src/dataplane/io/native.js';
import { ENDPOINT_LEN } from '../../src/dataplane/endpoint.js';
import { generatePrivateKey, publicKeyOf } from '../../src/crypto/x25519.js';

const BATCH = 64;
const SLOT = 2048;

/** The worker's loop in miniature; what would reach a socket or the TUN is counted instead. */
class TestLoop implements WarmUpLoop {
  readonly clock = systemClock;
  readonly timers = PRODUCTION_TIMERS;
  readonly slot = SLOT;
  readonly tunIn = new Uint8Array(BATCH * SLOT);
  readonly tunLens = new Int32Array(BATCH);
  readonly udpIn = new Uint8Array(BATCH * SLOT);
  readonly udpLens = new Int32Array(BATCH);
  readonly udpAddrs = new Uint8Array(BATCH * ENDPOINT_LEN);
  readonly sent = { n: 0, offs: new Int32Array(BATCH), lens: new Int32Array(BATCH) };
  readonly delivered = { n: 0 };
  /** Datagrams that would have gone to a socket; TUN writes outside the batch. */
  socketSends = 0;
  tunWrites = 0;
  /** Activity reports queued, as the worker queues them; a warm-up step drops its own. */
  activity: string[] = [];
  onActivity: ((key: string) => void) | null = (key) => this.activity.push(key);
  sink: DeviceIO['sendUdp'] | null = null;
  private mark = 0;
  readonly io: DeviceIO;

  constructor(readonly crypto: TransportCrypto, opts: { dropBatchSends?: boolean } = {}) {
    this.io = {
      sendUdp: (buf, off, len, dst, dstOff) => {
        if (buf === this.tunIn && dst[dstOff] === 4 && dst[dstOff + 1] === 0) {
          if (opts.dropBatchSends) return;
          const i = this.sent.n++;
          this.sent.offs[i] = off;
          this.sent.lens[i] = len;
        } else if (this.sink) this.sink(buf, off, len, dst, dstOff);
        else this.socketSends++;
      },
      writeTun: (buf) => {
        if (buf === this.udpIn) this.delivered.n++;
        else this.tunWrites++;
      },
    };
  }

  tunBatch(dev: Device, n: number): void {
    dev.handleTunBatch(this.tunIn, SLOT, n, this.tunLens);
  }

  udpBatch(dev: Device, n: number): void {
    dev.handleUdpBatch(this.udpIn, SLOT, n, this.udpLens, this.udpAddrs);
  }

  divert(sink: DeviceIO['sendUdp'] | null): void {
    this.sink = sink;
    if (sink) this.mark = this.activity.length;
  }

  reset(): void {
    this.activity.length = this.mark;
  }

  /** Nothing diverted, queued or left behind: what the worker's loop needs between steps. */
  assertClean(): void {
    assert.equal(this.sink, null, 'diversion lifted');
    assert.equal(this.sent.n, 0);
    assert.equal(this.delivered.n, 0);
    assert.equal(this.socketSends, 0, 'nothing reached a socket');
    assert.equal(this.tunWrites, 0, 'nothing reached the TUN');
  }
}

function allZero(b: Uint8Array | Int32Array): boolean {
  return b.every((x) => x === 0);
}

const backends: Array<[string, () => TransportCrypto]> = [
  ['node:crypto', () => new NodeTransportCrypto(1420)],
  ['native', () => {
    const c = new NativeTransportCrypto(loadNative(), 1420);
    return c;
  }],
];

for (const [name, make] of backends) {
  test(`warm-up (${name}): carries its packets both ways and leaves the loop clean`, () => {
    const loop = new TestLoop(make());
    if (loop.crypto instanceof NativeTransportCrypto) {
      loop.crypto.register(loop.tunIn, SLOT);
      loop.crypto.register(loop.udpIn, SLOT);
    }
    const r = warmUp(loop, { rounds: 240, maxMs: 10_000 });
    assert.equal(r.complete, true, r.note);
    assert.equal(r.packets, 2 * (240 / 12) * 25); // batch sizes cycle through 12 rounds, 25 packets
    loop.assertClean();
    assert.deepEqual(loop.activity, []);
    for (const b of [loop.tunIn, loop.udpIn, loop.tunLens, loop.udpLens, loop.udpAddrs]) assert.ok(allZero(b), 'batch buffers zeroed');
  });
}

test('warm-up leaves no trace in a real device on the same loop', () => {
  const loop = new TestLoop(new NodeTransportCrypto(1420));
  const real = new Device(loop.io, loop.crypto, { clock: systemClock, timestamps: new PersistentTimestamps(null, systemClock) });
  real.onActivity = loop.onActivity;
  const k = generatePrivateKey();
  real.reconfig({
    privateKey: k, listenPort: 41641, fwMark: 0, tun: 'wg0',
    peers: [{ publicKey: publicKeyOf(generatePrivateKey()), allowedIps: ['10.255.0.2/32', '10.254.0.0/16'], endpoint: { ip: '192.0.2.2', port: 2 } }],
  });
  const before = real.status();
  const r = warmUp(loop, { rounds: 100, maxMs: 10_000 });
  assert.equal(r.complete, true, r.note);
  assert.deepEqual(real.status(), before);
  assert.equal(real.indices.size, 0);
  assert.equal(real.nextDeadline, Infinity);
  assert.equal(loop.socketSends, 0);
  // The real device still works on the loop afterwards: a packet for its peer starts a handshake, to a socket.
  loop.tunIn[16] = 0x45;
  loop.tunIn[19] = 84;
  loop.tunIn.set([10, 255, 0, 2], 16 + 16);
  loop.tunLens[0] = 84;
  loop.tunBatch(real, 1);
  assert.equal(loop.socketSends, 1);
  assert.equal(real.counters.handshakes_initiated, 1);
});

test('warm-up is bounded by its time cap', () => {
  const loop = new TestLoop(new NodeTransportCrypto(1420));
  const r = warmUp(loop, { rounds: 1_000_000, maxMs: 0 });
  assert.equal(r.complete, false);
  assert.match(r.note, /0 ms cap while setting up/);
  assert.equal(r.packets, 0);
  assert.ok(allZero(loop.tunIn) && allZero(loop.udpIn));
});

test('a loop that does not behave ends the warm-up early, cleanly, without throwing', () => {
  const loop = new TestLoop(new NodeTransportCrypto(1420), { dropBatchSends: true });
  const r = warmUp(loop, { rounds: 50 });
  assert.equal(r.complete, false);
  assert.match(r.note, /0 of 1 packets sealed/);
  loop.assertClean();
});

test('in steps: the loop is clean between them, real traffic in between is not diverted, stop() cleans up', () => {
  const loop = new TestLoop(new NodeTransportCrypto(1420));
  loop.activity.push('real peer');
  const w = new WarmUp(loop, { rounds: 1000, maxMs: 10_000 });
  let steps = 0;
  while (w.settingUp) {
    w.step(0.5);
    steps++;
    loop.assertClean();
  }
  assert.ok(steps >= 3 && steps <= 8, `set-up in ${steps} steps (devices, then one handshake message each)`);
  for (let i = 0; i < 5; i++) {
    assert.equal(w.step(0.5), true);
    loop.assertClean();
    assert.deepEqual(loop.activity, ['real peer'], 'the real report stays, the warm-up\'s are dropped');
  }
  // A real device sending between steps goes to the socket.
  const real = new Device(loop.io, loop.crypto, { clock: systemClock, timestamps: new PersistentTimestamps(null, systemClock) });
  real.reconfig({ privateKey: generatePrivateKey(), listenPort: 1, fwMark: 0, tun: 'wg0',
    peers: [{ publicKey: publicKeyOf(generatePrivateKey()), allowedIps: ['10.9.0.2/32'], endpoint: { ip: '192.0.2.9', port: 9 } }] });
  loop.tunIn.set([0x45, 0, 0, 84], 16);
  loop.tunIn.set([10, 9, 0, 2], 32);
  loop.tunLens[0] = 84;
  loop.tunBatch(real, 1);
  assert.equal(loop.socketSends, 1, 'the real handshake initiation went to the socket');
  loop.socketSends = 0;
  assert.ok(w.report().packets > 0);
  w.stop();
  assert.equal(w.done, true);
  assert.equal(w.step(0.5), false);
  assert.match(w.report().note, /stopped/);
  assert.equal(w.report().complete, false);
  loop.assertClean();
  assert.deepEqual(w.devs, [], 'throwaway devices dropped');
});
