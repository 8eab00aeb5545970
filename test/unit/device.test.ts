/**
 * Two devices over an in-memory link with a fake clock: handshakes, data,
 * timers (rekey, reject, keepalives), replay and roaming — no sleeping; and
 * the batch entry points the packet worker uses, on both crypto backends.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemNet, ipv4Packet, configPair } from '../helpers/memnet.js';
import type { DeviceConfig } from '../../src/dataplane/device.js';
import { ACTIVITY_REPORT_MS } from '../../src/dataplane/device.js';
import { NodeTransportCrypto, type TransportCrypto } from '../../src/dataplane/transport-crypto.js';
import { NativeTransportCrypto } from '../../src/dataplane/native-crypto.js';
import { loadNative } from '../../src/dataplane/io/native.js';
import { generatePrivateKey, publicKeyOf } from '../../src/crypto/x25519.js';
import { encodeRelayEndpoint, ENDPOINT_LEN } from '../../src/dataplane/endpoint.js';
import { REKEY_AFTER_TIME, REJECT_AFTER_TIME, KEEPALIVE_TIMEOUT } from '../../src/dataplane/constants.js';

function setup(opts: { psk?: Uint8Array } = {}) {
  const net = new MemNet();
  const a = net.add('192.0.2.1:1');
  const b = net.add('192.0.2.2:2');
  const ak = generatePrivateKey(), bk = generatePrivateKey();
  const [ac, bc] = configPair(ak, bk, publicKeyOf(ak), publicKeyOf(bk), opts);
  a.device.reconfig(ac);
  b.device.reconfig(bc);
  return { net, a, b };
}

const payload = (n: number) => new TextEncoder().encode(`packet ${n}`);

test('first packet triggers a handshake, then flows both ways', () => {
  const { net, a, b } = setup();
  a.send(ipv4Packet('10.0.0.1', '10.0.0.2', payload(1)));
  net.run();
  assert.equal(b.tunOut.length, 1, 'staged packet delivered after handshake');
  assert.deepEqual(b.tunOut[0]!.subarray(28), payload(1));
  b.send(ipv4Packet('10.0.0.2', '10.0.0.1', payload(2)));
  net.run();
  assert.equal(a.tunOut.length, 1);
  assert.equal(a.device.counters.handshakes_completed, 1);
  assert.equal(b.device.counters.handshakes_completed, 1);
  const st = a.device.status();
  assert.equal(st.peers[0]!.endpoint, '192.0.2.2:2');
  assert.ok(st.peers[0]!.latestHandshake > 0);
  assert.ok(st.peers[0]!.rxBytes > 0 && st.peers[0]!.txBytes > 0);
});

test('preshared key: works when equal, no session when different', () => {
  const psk = new Uint8Array(32).fill(7);
  const ok = setup({ psk });
  ok.a.send(ipv4Packet('10.0.0.1', '10.0.0.2', payload(1)));
  ok.net.run();
  assert.equal(ok.b.tunOut.length, 1);

  const bad = setup({ psk });
  const cfg = bad.b.device.config!;
  bad.b.device.reconfig({ ...cfg, peers: cfg.peers.map((p) => ({ ...p, presharedKey: new Uint8Array(32).fill(8) })) });
  bad.a.send(ipv4Packet('10.0.0.1', '10.0.0.2', payload(1)));
  bad.net.run();
  assert.equal(bad.b.tunOut.length, 0);
  assert.equal(bad.a.device.drops.handshake_failed, 1);
});

test('inner source outside the peer\'s allowed IPs is dropped', () => {
  const { net, a, b } = setup();
  a.send(ipv4Packet('10.0.0.1', '10.0.0.2', payload(1)));
  net.run();
  // b sends a packet whose source is not in a's allowed IPs for b
  b.send(ipv4Packet('10.0.0.99', '10.0.0.1', payload(2)));
  net.run();
  assert.equal(a.tunOut.length, 0);
  assert.equal(a.device.drops.allowed_ips, 1);
});

test('replayed transport packet is dropped, and a replay from elsewhere does not move the endpoint', () => {
  const { net, a, b } = setup();
  a.send(ipv4Packet('10.0.0.1', '10.0.0.2', payload(1)));
  net.run();
  const data = net.log.filter((d) => d.bytes[0] === 4 && d.from === '192.0.2.1:1').at(-1)!;
  net.deliverOne(data);
  assert.equal(b.device.drops.replay, 1);
  net.deliverOne(data, '198.51.100.9:999');
  assert.equal(b.device.drops.replay, 2);
  assert.equal(b.device.status().peers[0]!.endpoint, '192.0.2.1:1');
  assert.equal(b.tunOut.length, 1);
});

test('roaming: an authenticated packet from a new address moves the endpoint', () => {
  const { net, a, b } = setup();
  a.send(ipv4Packet('10.0.0.1', '10.0.0.2', payload(1)));
  net.run();
  a.send(ipv4Packet('10.0.0.1', '10.0.0.2', payload(2)));
  const d = net.queue.shift()!;
  net.deliverOne(d, '198.51.100.7:4444');
  assert.equal(b.device.status().peers[0]!.endpoint, '198.51.100.7:4444');
});

test('path choice owns the endpoint (roaming off): packets from elsewhere, e.g. via a relay, never move it; setEndpoint does', () => {
  const { net, a, b } = setup();
  const bc = b.device.config!;
  b.device.reconfig({ ...bc, peers: bc.peers.map((p) => ({ ...p, roaming: false })) });
  a.send(ipv4Packet('10.0.0.1', '10.0.0.2', payload(1)));
  net.run();
  assert.equal(b.device.status().peers[0]!.endpoint, '192.0.2.1:1');
  a.send(ipv4Packet('10.0.0.1', '10.0.0.2', payload(2)));
  net.deliverOne(net.queue.shift()!, '198.51.100.7:4444');
  assert.equal(b.tunOut.length, 2, 'the packet itself is accepted');
  assert.equal(b.device.status().peers[0]!.endpoint, '192.0.2.1:1', 'the working path stays');
  const key = b.device.status().peers[0]!.publicKey;
  b.device.setEndpoint(key, encodeRelayEndpoint(7, 42));
  assert.equal(b.device.status().peers[0]!.endpoint, 'relay(7)');
});

test('no path yet (roaming off, no endpoint): packets wait, activity is reported, and go once a path is set', () => {
  const { net, a, b } = setup();
  const ac = a.device.config!;
  a.device.reconfig({ ...ac, peers: ac.peers.map((p) => ({ ...p, endpoint: null, roaming: false })) });
  const active: string[] = [];
  a.device.onActivity = (k) => active.push(k);
  const key = a.device.status().peers[0]!.publicKey;
  a.device.setEndpoint(key, null);
  a.send(ipv4Packet('10.0.0.1', '10.0.0.2', payload(1)));
  a.send(ipv4Packet('10.0.0.1', '10.0.0.2', payload(2)));
  net.run();
  assert.equal(b.tunOut.length, 0);
  assert.deepEqual(active, [key], 'reported once (rate-limited per peer)');
  assert.equal(a.device.drops.no_endpoint, 0, 'not dropped: staged');
  a.device.setEndpoint(key, b.addr);
  net.run();
  assert.equal(b.tunOut.length, 2, 'both staged packets delivered after the handshake');
});

test('activity reports say how long the peer was quiet: Infinity first, then the time since the last report', () => {
  const { net, a } = setup();
  const reports: Array<[string, number]> = [];
  a.device.onActivity = (k, quietMs) => reports.push([k, quietMs]);
  const key = a.device.status().peers[0]!.publicKey;
  a.send(ipv4Packet('10.0.0.1', '10.0.0.2', payload(0)));
  net.run();
  net.advance(ACTIVITY_REPORT_MS / 2);
  a.send(ipv4Packet('10.0.0.1', '10.0.0.2', payload(1))); // within the rate limit: no report
  net.run();
  net.advance(60_000);
  a.send(ipv4Packet('10.0.0.1', '10.0.0.2', payload(2)));
  net.run();
  assert.equal(reports.length, 2, JSON.stringify(reports));
  assert.deepEqual(reports[0], [key, Infinity]);
  assert.equal(reports[1]![0], key);
  assert.ok(Math.abs(reports[1]![1] - (60_000 + ACTIVITY_REPORT_MS / 2)) <= 50, `quiet for ${reports[1]![1]} ms`);
});

test('rekey after REKEY_AFTER_TIME replaces the session without losing traffic', () => {
  const { net, a, b } = setup();
  a.send(ipv4Packet('10.0.0.1', '10.0.0.2', payload(0)));
  net.run();
  const first = a.device.peers.values().next().value!.current!;
  let sent = 1;
  // steady traffic both ways, 1 packet / 500 ms, for REKEY_AFTER_TIME + 30 s
  for (let t = 0; t < REKEY_AFTER_TIME + 30_000; t += 500) {
    net.advance(500);
    a.send(ipv4Packet('10.0.0.1', '10.0.0.2', payload(sent++)));
    b.send(ipv4Packet('10.0.0.2', '10.0.0.1', payload(sent)));
    net.run();
  }
  const now = a.device.peers.values().next().value!.current!;
  assert.notEqual(now, first, 'a new session replaced the first');
  assert.ok(first.sendKey.every((x) => x === 0) || a.device.peers.values().next().value!.previous === first);
  assert.equal(b.tunOut.length, sent, 'every packet a sent arrived');
  assert.ok(a.device.counters.handshakes_completed >= 2);
  assert.equal(a.device.drops.decrypt + b.device.drops.decrypt, 0);
});

test('past REJECT_AFTER_TIME with no new handshake, nothing is sent on old keys', () => {
  const { net, a, b } = setup();
  a.send(ipv4Packet('10.0.0.1', '10.0.0.2', payload(0)));
  net.run();
  // Cut the link: no handshake can complete.
  net.filter = () => false;
  net.advance(REJECT_AFTER_TIME + 1_000, 1_000);
  net.queue = [];
  a.send(ipv4Packet('10.0.0.1', '10.0.0.2', payload(1)));
  const kinds = net.queue.map((d) => d.bytes[0]);
  assert.ok(!kinds.includes(4), `no transport message on expired keys (sent types ${kinds.join(',')})`);
  net.filter = () => true;
  net.queue = [];
  net.advance(10_000, 100);
  assert.equal(b.tunOut.length, 2, 'the staged packet goes out after a fresh handshake');
});

test('passive keepalive: receiver answers data with a keepalive after KEEPALIVE_TIMEOUT', () => {
  const { net, a, b } = setup();
  a.send(ipv4Packet('10.0.0.1', '10.0.0.2', payload(0)));
  net.run();
  const before = b.device.counters.tx_keepalives;
  net.advance(KEEPALIVE_TIMEOUT + 500);
  assert.equal(b.device.counters.tx_keepalives, before + 1);
  assert.equal(a.device.counters.rx_keepalives >= 1, true);
});

test('persistent keepalive sends periodically', () => {
  const { net, a } = setup();
  const cfg = a.device.config!;
  a.device.reconfig({ ...cfg, peers: cfg.peers.map((p) => ({ ...p, persistentKeepalive: 5 })) });
  a.send(ipv4Packet('10.0.0.1', '10.0.0.2', payload(0)));
  net.run();
  const before = a.device.counters.tx_keepalives;
  net.advance(26_000, 500);
  assert.ok(a.device.counters.tx_keepalives - before >= 4, `keepalives: ${a.device.counters.tx_keepalives - before}`);
});

test('handshake retries with backoff then gives up and zeroes keys', () => {
  const { net, a } = setup();
  net.filter = (d) => d.from !== '192.0.2.2:2'; // b never answers
  a.send(ipv4Packet('10.0.0.1', '10.0.0.2', payload(0)));
  net.advance(120_000, 500);
  const n = a.device.counters.handshakes_initiated;
  assert.ok(n >= 18 && n <= 21, `initiations sent: ${n}`);
  const peer = a.device.peers.values().next().value!;
  assert.equal(peer.staged.length, 0);
  net.advance(REJECT_AFTER_TIME * 3 + 1000, 5000);
  assert.equal(peer.handshake, null, 'handshake state zeroed');
});

test('under load: initiation without MAC2 gets a cookie; the retry with MAC2 succeeds', () => {
  const { net, a, b } = setup();
  b.device.reconfig({ ...b.device.config!, forceUnderLoad: true });
  a.send(ipv4Packet('10.0.0.1', '10.0.0.2', payload(0)));
  net.run();
  assert.equal(b.device.counters.cookies_sent, 1);
  assert.equal(a.device.counters.cookies_received, 1);
  assert.equal(b.tunOut.length, 0);
  net.advance(7_000);
  assert.equal(b.tunOut.length, 1, 'handshake completed with MAC2 on retry');
});

test('a stale (replayed) initiation is refused', () => {
  const { net, a, b } = setup();
  a.send(ipv4Packet('10.0.0.1', '10.0.0.2', payload(0)));
  net.run();
  const init = net.log.find((d) => d.bytes[0] === 1)!;
  net.clock.advance(2000);
  net.deliverOne(init);
  assert.equal(b.device.drops.stale_initiation, 1);
});

test('removing a peer via reconfig drops its sessions', () => {
  const { net, a, b } = setup();
  a.send(ipv4Packet('10.0.0.1', '10.0.0.2', payload(0)));
  net.run();
  b.device.reconfig({ ...b.device.config!, peers: [] });
  a.send(ipv4Packet('10.0.0.1', '10.0.0.2', payload(1)));
  net.run();
  assert.equal(b.tunOut.length, 1);
  assert.ok(b.device.drops.unknown_index >= 1);
});

// ------------------------------------------------------------------ batches

const SLOT = 2048;

/** Counts the calls a device makes into its crypto backend; `failSeal` makes chosen packets fail to seal. */
class CountingCrypto implements TransportCrypto {
  readonly name: string;
  calls = { seal: 0, open: 0, sealBatch: 0, openBatch: 0 };
  /** Counters whose packets fail to seal (as an internal error would). */
  failSeal = new Set<number>();
  constructor(private readonly inner: TransportCrypto) {
    this.name = `counting ${inner.name}`;
  }
  sealedLength(plainLen: number): number {
    return this.inner.sealedLength(plainLen);
  }
  seal(key: Buffer, receiver: number, counter: number, buf: Uint8Array, off: number, len: number, cap: number): number {
    this.calls.seal++;
    return this.failSeal.has(counter) ? -1 : this.inner.seal(key, receiver, counter, buf, off, len, cap);
  }
  open(key: Buffer, buf: Uint8Array, off: number, len: number): number {
    this.calls.open++;
    return this.inner.open(key, buf, off, len);
  }
  sealBatch(key: Buffer, receiver: number, first: number, buf: Uint8Array, off: number, slot: number, n: number, lens: Int32Array): number {
    this.calls.sealBatch++;
    const sealed = this.inner.sealBatch(key, receiver, first, buf, off, slot, n, lens);
    for (let i = 0; i < n; i++) if (this.failSeal.has(first + i)) lens[i] = -1;
    return sealed;
  }
  openBatch(keys: Uint8Array, keyIdx: Int32Array, buf: Uint8Array, n: number, offs: Int32Array, lens: Int32Array): number {
    this.calls.openBatch++;
    return this.inner.openBatch(keys, keyIdx, buf, n, offs, lens);
  }
}

/** Packets as the worker reads them from the TUN: packet i at i*SLOT + 16. */
function tunBatch(packets: Uint8Array[]): { buf: Uint8Array; lens: Int32Array } {
  const buf = new Uint8Array(SLOT * packets.length);
  const lens = new Int32Array(packets.length);
  packets.forEach((p, i) => {
    buf.set(p, i * SLOT + 16);
    lens[i] = p.length;
  });
  return { buf, lens };
}

/** Datagrams as the worker receives them: datagram i at i*SLOT, from `from`; null = a slot the worker took (length -1). */
function udpBatch(datagrams: Array<Uint8Array | null>, from: Uint8Array): { buf: Uint8Array; lens: Int32Array; addrs: Uint8Array } {
  const buf = new Uint8Array(SLOT * datagrams.length);
  const lens = new Int32Array(datagrams.length);
  const addrs = new Uint8Array(ENDPOINT_LEN * datagrams.length);
  datagrams.forEach((d, i) => {
    if (d) buf.set(d, i * SLOT);
    lens[i] = d ? d.length : -1;
    addrs.set(from, i * ENDPOINT_LEN);
  });
  return { buf, lens, addrs };
}

const counterOf = (d: { bytes: Uint8Array }) => Number(Buffer.from(d.bytes).readBigUInt64LE(8));
const textOf = (p: Uint8Array) => new TextDecoder().decode(p.subarray(28));

/** a with two peers, b (10.0.0.2) and c (10.0.0.3), sessions up; every device on `backend`. */
function threeNodes(backend: () => TransportCrypto) {
  const net = new MemNet();
  const ca = new CountingCrypto(backend());
  const a = net.add('192.0.2.1:1', ca);
  const b = net.add('192.0.2.2:2', backend());
  const c = net.add('192.0.2.3:3', backend());
  const [ak, bk, ck] = [generatePrivateKey(), generatePrivateKey(), generatePrivateKey()];
  const peer = (k: Uint8Array, ip: string, ep: string) => ({
    publicKey: publicKeyOf(k), allowedIps: [`${ip}/32`], endpoint: { ip: ep.split(':')[0]!, port: Number(ep.split(':')[1]) },
  });
  const cfg = (k: Uint8Array, port: number, peers: DeviceConfig['peers']): DeviceConfig => ({ privateKey: k, listenPort: port, fwMark: 0, tun: 't', peers });
  a.device.reconfig(cfg(ak, 1, [peer(bk, '10.0.0.2', '192.0.2.2:2'), peer(ck, '10.0.0.3', '192.0.2.3:3')]));
  b.device.reconfig(cfg(bk, 2, [peer(ak, '10.0.0.1', '192.0.2.1:1')]));
  c.device.reconfig(cfg(ck, 3, [peer(ak, '10.0.0.1', '192.0.2.1:1')]));
  a.send(ipv4Packet('10.0.0.1', '10.0.0.2', payload(0)));
  a.send(ipv4Packet('10.0.0.1', '10.0.0.3', payload(0)));
  net.run();
  b.tunOut.length = 0;
  c.tunOut.length = 0;
  ca.calls = { seal: 0, open: 0, sealBatch: 0, openBatch: 0 };
  return { net, a, b, c, ca };
}

const BACKENDS: Array<[string, () => TransportCrypto]> = [
  ['node:crypto', () => new NodeTransportCrypto(0)],
  ['native', () => new NativeTransportCrypto(loadNative(), 0)],
];

for (const [name, backend] of BACKENDS) {
  test(`${name}: a TUN batch is sealed in one call per run of one session, in order, with consecutive counters; drops are counted`, () => {
    const { net, a, b, c, ca } = threeNodes(backend);
    const to = (ip: string, n: number) => ipv4Packet('10.0.0.1', ip, payload(n));
    const tooBig = ipv4Packet('10.0.0.1', '10.0.0.2', new Uint8Array(SLOT - 16 - 28)); // header + tag no longer fit the slot
    const { buf, lens } = tunBatch([
      to('10.0.0.2', 1), to('10.0.0.2', 2), to('10.0.0.3', 1), to('10.0.0.3', 2), to('10.0.0.3', 3),
      to('10.9.9.9', 0), to('10.0.0.2', 3), tooBig, to('10.0.0.2', 4), new Uint8Array([0x45]),
    ]);
    const before = a.device.counters.tx_packets;
    a.device.handleTunBatch(buf, SLOT, lens.length, lens);
    assert.equal(ca.calls.sealBatch, 4, 'runs: b1 b2 | c1 c2 c3 | b3 | b4');
    assert.equal(ca.calls.seal, 0);
    assert.equal(a.device.drops.no_route, 1);
    assert.equal(a.device.drops.too_big, 1);
    assert.equal(a.device.drops.bad_inner_packet, 1);
    assert.equal(a.device.counters.tx_packets - before, 7);
    const toB = net.queue.filter((d) => d.to === '192.0.2.2:2').map(counterOf);
    const toC = net.queue.filter((d) => d.to === '192.0.2.3:3').map(counterOf);
    assert.deepEqual(toB, [1, 2, 3, 4], 'the too-big packet spent no counter');
    assert.deepEqual(toC, [1, 2, 3]);
    net.run();
    assert.deepEqual(b.tunOut.map(textOf), ['packet 1', 'packet 2', 'packet 3', 'packet 4']);
    assert.deepEqual(c.tunOut.map(textOf), ['packet 1', 'packet 2', 'packet 3']);
  });

  test(`${name}: a packet that fails to seal is dropped and counted; its counter is not reused and nothing else is charged`, () => {
    const { net, a, b, ca } = threeNodes(backend);
    ca.failSeal.add(2);
    const peerB = [...a.device.peers.values()].find((p) => p.allowedIps[0] === '10.0.0.2/32')!;
    const txBytes = peerB.txBytes;
    const { buf, lens } = tunBatch([1, 2, 3].map((n) => ipv4Packet('10.0.0.1', '10.0.0.2', payload(n))));
    a.device.handleTunBatch(buf, SLOT, lens.length, lens);
    assert.equal(a.device.drops.too_big, 1);
    assert.deepEqual(net.queue.map(counterOf), [1, 3]);
    assert.equal(peerB.txBytes - txBytes, net.queue.reduce((s, d) => s + d.bytes.length, 0));
    a.send(ipv4Packet('10.0.0.1', '10.0.0.2', payload(4)));
    assert.deepEqual(net.queue.map(counterOf), [1, 3, 4]);
    net.run();
    assert.deepEqual(b.tunOut.map(textOf), ['packet 1', 'packet 3', 'packet 4']);
  });

  test(`${name}: a UDP batch is opened in one call per stretch between handshake messages; replays, forgeries and junk are dropped in order`, () => {
    const { net, a, b } = threeNodes(backend);
    const cb = b.device.crypto as TransportCrypto;
    const opens = { batch: 0 };
    const realOpenBatch = cb.openBatch.bind(cb);
    cb.openBatch = (...args) => (opens.batch++, realOpenBatch(...args));
    const init = net.log.find((d) => d.bytes[0] === 1 && d.to === '192.0.2.2:2')!.bytes; // stale by now
    for (let n = 1; n <= 5; n++) a.send(ipv4Packet('10.0.0.1', '10.0.0.2', payload(n)));
    const d = net.queue.filter((x) => x.to === '192.0.2.2:2').map((x) => x.bytes);
    net.queue = [];
    const forged = d[2]!.slice();
    forged[40]! ^= 1;
    let deliveredAtHandshake = -1;
    const hs = b.device.hs;
    const realInit = hs.receiveInitiation.bind(hs);
    hs.receiveInitiation = (msg, from) => {
      deliveredAtHandshake = b.tunOut.length;
      realInit(msg, from);
    };
    const junk = new Uint8Array([9, 9, 9, 9, 9]);
    const { buf, lens, addrs } = udpBatch([d[0]!, d[1]!, d[1]!, forged, null, d[2]!, init, d[4]!, junk, d[3]!], a.addr);
    b.device.handleUdpBatch(buf, SLOT, lens.length, lens, addrs);
    assert.deepEqual(b.tunOut.map(textOf), ['packet 1', 'packet 2', 'packet 3', 'packet 5', 'packet 4']);
    assert.equal(deliveredAtHandshake, 3, 'the handshake message saw every packet before it handled');
    assert.equal(opens.batch, 3, 'd0 d1 d1 forged d2 | d4 | d3');
    assert.equal(b.device.drops.replay, 1);
    assert.equal(b.device.drops.decrypt, 1);
    assert.equal(b.device.drops.not_wireguard, 1);
    assert.equal(b.device.drops.stale_initiation, 1);
    // The same datagrams again: every one is a replay now, refused before decrypting.
    const again = udpBatch(d, a.addr);
    b.device.handleUdpBatch(again.buf, SLOT, again.lens.length, again.lens, again.addrs);
    assert.equal(b.device.drops.replay, 6);
    assert.equal(b.tunOut.length, 5);
  });
}
