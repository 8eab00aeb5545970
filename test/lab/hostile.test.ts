/**
 * Robustness of warrend's packet path against hostile datagrams: 100,000 of
 * them, sent from wireguard-go's namespace to warrend's port while a session
 * with wireguard-go is up — random bytes, WireGuard-looking headers of every
 * type with random bodies and right or wrong lengths, truncated and
 * oversized messages, and transport messages carrying the live receiver
 * index (read off the wire with tshark) with random or mutated bodies and
 * counters that are fresh, already seen, or out of range.
 *
 * Afterwards warrend must still run, every datagram its socket read must be
 * counted under exactly one drop reason (checked against the namespace's
 * kernel UDP counters), each reason must have risen by what the sender sent
 * for it (less what the kernel itself dropped), the peer's endpoint must not
 * have moved, and the tunnel must still carry traffic both ways.
 */
import * as assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { Lab, twoHosts, waitFor } from '../helpers/lab.js';
import { genKeyPair, startWireguardGo } from '../helpers/wg.js';
import { startWarrend } from '../helpers/warrend.js';
import type { DeviceStatus } from '../../src/dataplane/status.js';

const WARREND_PORT = 51820;
const WGGO_PORT = 51821;
const PROBE_PORT = 9;
const TOTAL = 100_000;
/** The kernel may drop a few datagrams when warrend's socket buffer fills; more than this and the test means little. */
const MAX_KERNEL_LOSS = 0.05;

/**
 * The hostile sender (run in wireguard-go's namespace). Each datagram is drawn
 * from a weighted list of generators, each tagged with the drop reason warrend
 * must count it under. Sends in bursts of 100, waiting for each burst to leave
 * and a millisecond between bursts, so the receiver is pressed but its socket
 * buffer is not simply overrun. Prints {"sent":N,"failed":N,"expected":{reason:N}}.
 *
 * argv: DST_ADDR DST_PORT TOTAL LIVE_INDEX REAL_TRANSPORT_HEX...
 */
const SENDER_SCRIPT = `
import { createSocket } from 'node:dgram';
import { randomBytes, randomInt } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
const [dst, dstPort, totalArg, liveArg, ...realHex] = process.argv.slice(1);
const total = Number(totalArg);
const live = Number(liveArg);
const real = realHex.map((h) => Buffer.from(h, 'hex'));

const pick = (xs) => xs[randomInt(xs.length)];
/** A length in [lo, hi] other than the correct one; the "one byte short/long" cases often. */
const wrongLen = (right) => pick([right - 1, right + 1, randomInt(4, 2001)].filter((n) => n !== right && n >= 4));
/** A header of the given type (three zero bytes after it), random body. */
function msg(type, len) {
  const b = randomBytes(len);
  b[0] = type; b[1] = 0; b[2] = 0; b[3] = 0;
  return b;
}
function otherIndex() {
  for (;;) { const i = randomBytes(4).readUInt32LE(0); if (i !== live) return i; }
}
/** Transport message with the live index and this counter (hi, lo), random ciphertext. */
function transport(len, hi, lo) {
  const b = msg(4, len);
  b.writeUInt32LE(live, 4); b.writeUInt32LE(lo, 8); b.writeUInt32LE(hi, 12);
  return b;
}
/** A counter no packet has used yet, far ahead of the session's (below 2^52). */
const freshHi = () => randomInt(1, 0x100000);

const gens = [
  // Not WireGuard at all: random bytes, 0..2000 long, never a valid-looking header; and 0..3 bytes.
  [250, 'not_wireguard', () => {
    const b = randomBytes(randomInt(0, 2001));
    if (b.length >= 4 && b[0] >= 1 && b[0] <= 4 && b[1] === 0 && b[2] === 0 && b[3] === 0) b[1] = 1;
    return b;
  }],
  [20, 'not_wireguard', () => { const n = randomInt(0, 4); const b = Buffer.alloc(n); if (n) b[0] = randomInt(1, 5); return b; }],
  // Handshake messages of the right length with random contents (some naming the live index): MAC1 fails.
  [60, 'bad_mac1', () => msg(1, 148)],
  [60, 'bad_mac1', () => { const b = msg(2, 92); if (randomInt(2)) b.writeUInt32LE(live, 8); return b; }],
  // Cookie replies for the live or a random index: nothing to decrypt them with.
  [50, 'bad_cookie', () => { const b = msg(3, 64); b.writeUInt32LE(randomInt(2) ? live : otherIndex(), 4); return b; }],
  // Wrong lengths: truncated (147, 91, 63, 31 bytes...) and overlong handshake messages, short transports.
  [30, 'malformed', () => msg(1, wrongLen(148))],
  [20, 'malformed', () => msg(2, wrongLen(92))],
  [20, 'malformed', () => msg(3, wrongLen(64))],
  [20, 'malformed', () => { const b = msg(4, pick([31, randomInt(4, 32)])); if (b.length >= 8) b.writeUInt32LE(live, 4); return b; }],
  [10, 'malformed', () => Buffer.from(pick(real).subarray(0, randomInt(4, 32)))],
  // Transport for an index nobody has.
  [80, 'unknown_index', () => { const b = msg(4, randomInt(32, 2001)); b.writeUInt32LE(otherIndex(), 4); return b; }],
  // Live index, fresh counter: only the AEAD can reject these (random bodies, real bodies under a new counter,
  // real packets with a flipped bit and a fresh counter).
  [120, 'decrypt', () => transport(randomInt(32, 2001), freshHi(), randomBytes(4).readUInt32LE(0))],
  [40, 'decrypt', () => { const b = Buffer.from(pick(real)); b.writeUInt32LE(freshHi(), 12); return b; }],
  [20, 'decrypt', () => {
    const b = Buffer.from(pick(real)); b.writeUInt32LE(freshHi(), 12);
    const at = randomInt(16, b.length); b[at] ^= 1 << randomInt(8); return b;
  }],
  // Live index, counter 0 (already received): the replay window rejects them before decryption.
  [50, 'replay', () => transport(randomInt(32, 2001), 0, 0)],
  [50, 'replay', () => { const b = Buffer.from(pick(real)); const at = randomInt(16, b.length); b[at] ^= 1 << randomInt(8); return b; }],
  // Live index, counter at or beyond 2^53 (WireGuard's reject-after-messages): out of range.
  [40, 'expired_keypair', () => transport(randomInt(32, 2001), randomInt(0x200000, 0x100000000), randomBytes(4).readUInt32LE(0))],
  // Oversized, up to the UDP maximum: truncated by the receive buffer, whatever they look like.
  [5, 'rx_truncated', () => {
    const len = randomInt(10) === 0 ? 65507 : randomInt(2100, 65508);
    return randomInt(2) ? randomBytes(len) : transport(len, freshHi(), 0);
  }],
];
const weightSum = gens.reduce((s, g) => s + g[0], 0);
function draw() {
  let r = randomInt(weightSum);
  for (const g of gens) { if ((r -= g[0]) < 0) return g; }
  return gens[0];
}

const sock = createSocket('udp4');
await new Promise((resolve, reject) => { sock.once('error', reject); sock.bind(0, resolve); });
const expected = {};
let sent = 0;
let failed = 0;
const burst = 100;
for (let i = 0; i < total; i += burst) {
  const batch = [];
  for (let j = i; j < Math.min(total, i + burst); j++) {
    const [, reason, gen] = draw();
    const buf = gen();
    batch.push(new Promise((resolve) => sock.send(buf, Number(dstPort), dst, (err) => {
      if (err) failed++;
      else { sent++; expected[reason] = (expected[reason] ?? 0) + 1; }
      resolve();
    })));
  }
  await Promise.all(batch);
  await delay(1);
}
sock.close();
console.log(JSON.stringify({ sent, failed, expected }));
`;

interface SenderReport {
  sent: number;
  failed: number;
  expected: Record<string, number>;
}

/** The namespace's kernel UDP counters (/proc/net/snmp is per network namespace). */
async function udpSnmp(lab: Lab, ns: string): Promise<Record<string, number>> {
  const { stdout } = await lab.sh(ns, ['cat', '/proc/net/snmp']);
  const [names, values] = stdout.split('\n').filter((l) => l.startsWith('Udp:')).map((l) => l.split(/\s+/).slice(1));
  if (!names || !values) throw new Error(`no Udp lines in /proc/net/snmp:\n${stdout}`);
  return Object.fromEntries(names.map((n, i) => [n, Number(values[i])]));
}

function delta(after: Record<string, number>, before: Record<string, number>, key: string): number {
  return (after[key] ?? 0) - (before[key] ?? 0);
}

/** Authenticated packets warrend took in (these are not drops). */
function accepted(s: DeviceStatus): number {
  const c = s.counters;
  return (c.rx_packets ?? 0) + (c.rx_keepalives ?? 0) + (c.handshakes_answered ?? 0) + (c.handshakes_completed ?? 0) + (c.cookies_received ?? 0);
}

/** Drop reasons only the sending side (TUN → UDP) counts; the kernel's own IPv6 chatter on the TUN lands here. */
const TX_REASONS = new Set(['no_route', 'no_endpoint', 'staged_overflow', 'too_big', 'udp_send_failed', 'tun_write_failed']);

/** Datagrams the receiving side dropped, all reasons together. */
function rxDropSum(s: DeviceStatus): number {
  return Object.entries(s.drops).reduce((a, [reason, n]) => (TX_REASONS.has(reason) ? a : a + n), 0);
}

void describe('hostile datagrams at warrend', () => {
  const lab = Lab.create('hostile');
  after(() => lab.cleanup());

  void test('100,000 junk, malformed, truncated, oversized and forged datagrams are each dropped and counted; the tunnel survives', async () => {
    const h = await twoHosts(lab);
    const ka = genKeyPair();
    const kb = genKeyPair();
    const wg = await startWireguardGo(lab, h.b, {
      ifname: lab.uniqueIfname('wgb'), privateKey: kb.privateKey, listenPort: WGGO_PORT,
      addresses: ['10.77.0.2/24'], peers: [{ publicKey: ka.publicKey, allowedIps: ['10.77.0.1/32'], endpoint: `${h.aAddr}:${WARREND_PORT}` }],
    });
    const w = await startWarrend(lab, h.a, {
      privateKey: ka.privateKey, listenPort: WARREND_PORT, addresses: ['10.77.0.1/24'],
      peers: [{ publicKey: kb.publicKey, allowedIps: ['10.77.0.2/32'], endpoint: `${h.bAddr}:${WGGO_PORT}` }],
    });
    const origin = `${h.bAddr}:${WGGO_PORT}`;

    // Read warrend's live receiver index (and a few real transport packets) off the wire.
    const capture = lab.spawn(h.a, [
      'tshark', '-n', '-l', '-i', 'eth0', '-f', `udp dst port ${WARREND_PORT} or udp dst port ${PROBE_PORT}`,
      '-d', `udp.port==${WARREND_PORT},wg`, '-a', 'duration:60',
      '-T', 'fields', '-e', 'udp.dstport', '-e', 'wg.type', '-e', 'wg.receiver', '-e', 'wg.counter', '-e', 'udp.payload',
    ], { name: 'tshark' });
    await capture.waitForOutput(/Capturing on/, 20_000);
    // "Capturing on" comes before dumpcap really captures: probe until a datagram shows up.
    await waitFor('tshark to see a probe datagram', async () => {
      await lab.sh(h.b, ['bash', '-c', `echo probe > /dev/udp/${h.aAddr}/${PROBE_PORT}`]);
      return capture.output().includes(`\n${PROBE_PORT}\t`);
    }, { timeoutMs: 20_000, intervalMs: 200, signal: capture.exitSignal });
    await lab.sh(h.b, ['ping', '-c', '3', '-i', '0.2', '-W', '2', '10.77.0.1']);
    const transports = (): { receiver: number; counter: number; hex: string }[] => capture.output().split('\n')
      .map((l) => l.split('\t'))
      .filter(([port, type]) => port === String(WARREND_PORT) && type === '4')
      .map(([, , receiver, counter, hex]) => ({ receiver: Number(receiver), counter: Number(counter), hex: (hex ?? '').replace(/:/g, '') }));
    await waitFor('tshark to print 3 transport packets to warrend', () => transports().length >= 3, { timeoutMs: 20_000, signal: capture.exitSignal });
    await capture.stop('SIGINT');
    const real = transports();
    const live = real[0]!.receiver;
    assert.ok(Number.isInteger(live) && real.every((p) => p.receiver === live), `one live index: ${JSON.stringify(real)}`);
    assert.equal(real[0]!.counter, 0, 'counter 0 was received, so replays of it are replays');

    const s0 = await w.status();
    const k0 = await udpSnmp(lab, h.a);
    assert.equal(s0.peers[0]?.endpoint, origin);

    const t0 = Date.now();
    const r = await lab.sh(h.b, [process.execPath, '--input-type=module', '-e', SENDER_SCRIPT, h.aAddr, String(WARREND_PORT),
      String(TOTAL), String(live), ...real.map((p) => p.hex)], { timeoutMs: 90_000 });
    const report = JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as SenderReport;
    const sendMs = Date.now() - t0;
    assert.equal(report.sent + report.failed, TOTAL);
    assert.ok(report.failed <= TOTAL * 0.01, `sender failures: ${report.failed}`);

    // Every datagram warrend's socket read is counted once: as a drop, or (a stray keepalive) as accepted.
    let k1: Record<string, number> = k0;
    let s1: DeviceStatus = s0;
    await waitFor('every datagram warrend read to be counted under a drop reason', async () => {
      k1 = await udpSnmp(lab, h.a);
      s1 = await w.status();
      const read = delta(k1, k0, 'InDatagrams');
      const counted = rxDropSum(s1) - rxDropSum(s0) + accepted(s1) - accepted(s0);
      if (counted !== read || read === 0) throw new Error(`kernel delivered ${read}, warrend counted ${counted}`);
      // Stable: nothing more arrived since.
      return delta(await udpSnmp(lab, h.a), k1, 'InDatagrams') === 0;
    }, { timeoutMs: 30_000, intervalMs: 200, signal: w.proc.exitSignal });
    assert.ok(w.proc.alive, 'warrend survived');

    const read = delta(k1, k0, 'InDatagrams') - (accepted(s1) - accepted(s0));
    const lost = report.sent - read;
    const diag = `sent ${report.sent} in ${sendMs} ms, read ${read}, kernel RcvbufErrors +${delta(k1, k0, 'RcvbufErrors')}, ` +
      `InErrors +${delta(k1, k0, 'InErrors')}; expected ${JSON.stringify(report.expected)}; drops ${JSON.stringify(s1.drops)}`;
    assert.ok(lost >= 0 && lost <= report.sent * MAX_KERNEL_LOSS, `datagrams lost before warrend: ${lost}; ${diag}`);

    // Each reason rose by what was sent for it, less at most what the kernel lost.
    for (const [reason, n] of Object.entries(report.expected)) {
      const d = delta(s1.drops, s0.drops, reason);
      assert.ok(n > 0);
      assert.ok(d <= n && d >= n - lost, `drops.${reason}: +${d}, sent ${n}; ${diag}`);
    }
    for (const reason of Object.keys(s1.drops)) {
      if (!(reason in report.expected) && !TX_REASONS.has(reason)) assert.equal(delta(s1.drops, s0.drops, reason), 0, `drops.${reason} unchanged; ${diag}`);
    }
    const expectedReasons = ['not_wireguard', 'bad_mac1', 'bad_cookie', 'malformed', 'unknown_index', 'decrypt', 'replay',
      'expired_keypair', 'rx_truncated'];
    assert.deepEqual(Object.keys(report.expected).sort(), expectedReasons.sort(), 'every kind of datagram was sent');

    // Nothing hostile moved the peer or started a handshake; the session goes on.
    assert.equal(s1.peers[0]?.endpoint, origin, 'the endpoint did not move');
    assert.equal(s1.counters.endpoint_changes, s0.counters.endpoint_changes);
    assert.equal(s1.counters.handshakes_answered, s0.counters.handshakes_answered);
    assert.equal(s1.counters.cookies_sent, s0.counters.cookies_sent);
    await lab.sh(h.a, ['ping', '-c', '3', '-i', '0.2', '-W', '2', '10.77.0.2']);
    await lab.sh(h.b, ['ping', '-c', '3', '-i', '0.2', '-W', '2', '10.77.0.1']);
    const s2 = await w.status();
    assert.ok(s2.counters.rx_packets >= s1.counters.rx_packets + 6, 'warrend received the pings and replies after the flood');
    assert.ok(w.proc.alive);
    assert.ok(((await wg.show()).peers[0]?.rx ?? 0) > 0);
    console.log(`hostile: ${diag}`);
  });
});
