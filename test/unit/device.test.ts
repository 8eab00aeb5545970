/**
 * Two devices over an in-memory link with a fake clock: handshakes, data,
 * timers (rekey, reject, keepalives), replay and roaming — no sleeping.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemNet, ipv4Packet, configPair } from '../helpers/memnet.js';
import { generatePrivateKey, publicKeyOf } from '../../src/crypto/x25519.js';
import { encodeRelayEndpoint } from '../../src/dataplane/endpoint.js';
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
