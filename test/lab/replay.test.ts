/**
 * Replay protection on the real packet path: transport packets that
 * wireguard-go sent to warrend are captured with tshark in warrend's
 * namespace and sent again, byte for byte, from other sockets in
 * wireguard-go's namespace (another port, another address). warrend must
 * drop each one as `replay`, deliver nothing, and keep the peer's endpoint
 * where it was — also for a packet whose counter has fallen out of the
 * window after more than 8128 newer packets. As a control, a captured packet
 * warrend never received (held back by a firewall rule) is accepted from a
 * new address and does move the endpoint, so the "unchanged" assertions are
 * not vacuous; replaying that one again is dropped too.
 */
import * as assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { Lab, twoHosts, waitFor } from '../helpers/lab.js';
import type { LabProc } from '../helpers/lab.js';
import { genKeyPair, startWireguardGo } from '../helpers/wg.js';
import { startWarrend } from '../helpers/warrend.js';
import type { Warrend } from '../helpers/warrend.js';
import type { DeviceStatus, PeerStatus } from '../../src/dataplane/status.js';

const WARREND_PORT = 51820;
const WGGO_PORT = 51821;
const PROBE_PORT = 9;
/** A second address on wireguard-go's side, for replays from elsewhere. */
const OTHER_ADDR = '10.201.0.3';
/** More than the replay window (8192 − 64 = 8128) of newer packets. */
const PAST_WINDOW = 8300;

/** Sends each hex datagram once from a socket bound to BIND_ADDR:BIND_PORT (0 = any port), prints the port used. */
const SEND_SCRIPT = `
import { createSocket } from 'node:dgram';
const [bindAddr, bindPort, dstAddr, dstPort, ...hex] = process.argv.slice(1);
const s = createSocket('udp4');
await new Promise((resolve, reject) => { s.once('error', reject); s.bind({ address: bindAddr, port: Number(bindPort) }, resolve); });
for (const h of hex) {
  await new Promise((resolve, reject) => s.send(Buffer.from(h, 'hex'), Number(dstPort), dstAddr, (e) => (e ? reject(e) : resolve())));
}
console.log('port=' + s.address().port);
s.close();
`;

/** Sends COUNT small datagrams to DST:PORT (into the tunnel), in bursts with a little pacing. */
const FLOOD_SCRIPT = `
import { createSocket } from 'node:dgram';
import { setTimeout as delay } from 'node:timers/promises';
const [dst, port, count] = process.argv.slice(1);
const s = createSocket('udp4');
const payload = Buffer.alloc(32, 0x55);
let sent = 0;
for (let i = 0; i < Number(count); i += 50) {
  await Promise.all(Array.from({ length: Math.min(50, Number(count) - i) }, () =>
    new Promise((resolve) => s.send(payload, Number(port), dst, (e) => { if (!e) sent++; resolve(); }))));
  await delay(1);
}
console.log('sent=' + sent);
s.close();
`;

interface Captured {
  counter: number;
  hex: string;
}

/** Transport packets (type 4) tshark printed so far: "dstport\\ttype\\tcounter\\tpayload" lines. */
function capturedTransports(capture: LabProc): Captured[] {
  const out: Captured[] = [];
  for (const line of capture.output().split('\n')) {
    const [port, type, counter, hex] = line.split('\t');
    if (port === String(WARREND_PORT) && type === '4' && counter && hex) out.push({ counter: Number(counter), hex: hex.replace(/:/g, '') });
  }
  return out;
}

function peerOf(s: DeviceStatus): PeerStatus {
  assert.equal(s.peers.length, 1);
  return s.peers[0]!;
}

void describe('replayed transport packets', () => {
  const lab = Lab.create('replay');
  after(() => lab.cleanup());

  void test('are dropped and counted, deliver nothing and do not move the endpoint, in and past the window', async () => {
    const h = await twoHosts(lab);
    await lab.addr(h.b, 'eth0', `${OTHER_ADDR}/24`);
    const ka = genKeyPair();
    const kb = genKeyPair();
    const wg = await startWireguardGo(lab, h.b, {
      ifname: lab.uniqueIfname('wgb'), privateKey: kb.privateKey, listenPort: WGGO_PORT,
      addresses: ['10.77.0.2/24'], peers: [{ publicKey: ka.publicKey, allowedIps: ['10.77.0.1/32'], endpoint: `${h.aAddr}:${WARREND_PORT}` }],
    });
    const w: Warrend = await startWarrend(lab, h.a, {
      privateKey: ka.privateKey, listenPort: WARREND_PORT, addresses: ['10.77.0.1/24'],
      peers: [{ publicKey: kb.publicKey, allowedIps: ['10.77.0.2/32'], endpoint: `${h.bAddr}:${WGGO_PORT}` }],
    });
    const origin = `${h.bAddr}:${WGGO_PORT}`;

    // Capture in warrend's namespace everything sent to its port, printing each payload.
    const capture = lab.spawn(h.a, [
      'tshark', '-n', '-l', '-i', 'eth0', '-f', `udp dst port ${WARREND_PORT} or udp dst port ${PROBE_PORT}`,
      '-d', `udp.port==${WARREND_PORT},wg`, '-a', 'duration:110',
      '-T', 'fields', '-e', 'udp.dstport', '-e', 'wg.type', '-e', 'wg.counter', '-e', 'udp.payload',
    ], { name: 'tshark' });
    await capture.waitForOutput(/Capturing on/, 20_000);
    // "Capturing on" comes before dumpcap really captures, and tshark may lag behind a flood: a probe
    // datagram to port 9 that shows up in its output means everything sent before it is printed too.
    const probes = (): number => capture.output().split('\n').filter((l) => l.startsWith(`${PROBE_PORT}\t`)).length;
    const syncCapture = async (): Promise<void> => {
      const seen = probes();
      await waitFor('tshark to print a probe datagram', async () => {
        await lab.sh(h.b, ['bash', '-c', `echo probe > /dev/udp/${h.aAddr}/${PROBE_PORT}`]);
        return probes() > seen;
      }, { timeoutMs: 20_000, intervalMs: 300, signal: capture.exitSignal });
    };
    await syncCapture();

    const send = async (bindAddr: string, packets: Captured[]): Promise<string> => {
      const r = await lab.sh(h.b, [process.execPath, '--input-type=module', '-e', SEND_SCRIPT, bindAddr, '0', h.aAddr,
        String(WARREND_PORT), ...packets.map((p) => p.hex)]);
      return `${bindAddr}:${/port=(\d+)/.exec(r.stdout)?.[1] ?? '?'}`;
    };
    const waitStatus = (what: string, ok: (s: DeviceStatus) => boolean): Promise<DeviceStatus> =>
      waitFor(what, async () => {
        const s = await w.status();
        return ok(s) ? s : false;
      }, { timeoutMs: 20_000, signal: w.proc.exitSignal });

    // wireguard-go initiates and sends transport packets with counters 0, 1, 2, ...
    await lab.sh(h.b, ['ping', '-c', '3', '-i', '0.2', '-W', '2', '10.77.0.1']);
    await waitFor('tshark to print 3 transport packets to warrend', () => capturedTransports(capture).length >= 3,
      { timeoutMs: 20_000, signal: capture.exitSignal });
    const early = capturedTransports(capture);
    const first = early[0]!;
    const recent = early[early.length - 1]!;
    assert.equal(first.counter, 0, 'the first transport packet of the session has counter 0');
    assert.ok(recent.counter > 0);
    assert.equal(Buffer.from(recent.hex, 'hex').readUInt32LE(0), 4, 'the capture holds whole WireGuard datagrams');

    const s0 = await w.status();
    assert.equal(peerOf(s0).endpoint, origin);

    // 1. Inside the window: the latest packet again, from another port and from another address.
    await send(h.bAddr, [recent]);
    await send(OTHER_ADDR, [recent]);
    const s1 = await waitStatus('two replays counted', (s) => s.drops.replay >= s0.drops.replay + 2);
    assert.equal(s1.drops.replay, s0.drops.replay + 2);
    assert.equal(peerOf(s1).endpoint, origin, 'a replay does not move the endpoint');
    assert.equal(s1.counters.endpoint_changes, s0.counters.endpoint_changes);
    assert.equal(s1.counters.rx_packets, s0.counters.rx_packets, 'nothing was delivered');
    assert.equal(peerOf(s1).rxBytes, peerOf(s0).rxBytes);
    assert.equal(s1.drops.decrypt, s0.drops.decrypt, 'replays are caught before decryption');

    // 2. Past the window: push more than 8128 newer packets through the tunnel, then replay counter 0.
    //    The replay bitmap is a ring of 8192 bits, so counter 0 shares its bit with counter 8192; nft drops
    //    that one packet (counter, little-endian, at UDP payload bytes 8..15) so the bit stays clear and
    //    only the window bound can reject counter 0 — as after real packet loss.
    // (nft tables belong to the namespace, so fixed names cannot clash.)
    await lab.sh(h.a, ['nft', `add table inet replay_gap ; add chain inet replay_gap in { type filter hook input priority -10 ; } ; add rule inet replay_gap in udp sport ${WGGO_PORT} @th,128,32 0x00200000 @th,160,32 0 counter drop`]);
    const flood = await lab.sh(h.b, [process.execPath, '--input-type=module', '-e', FLOOD_SCRIPT, '10.77.0.1', '9', '10000']);
    assert.match(flood.stdout, /sent=10000/);
    const s2 = await waitStatus(`warrend to receive ${PAST_WINDOW} more packets`,
      (s) => s.counters.rx_packets >= s1.counters.rx_packets + PAST_WINDOW);
    assert.equal(peerOf(s2).endpoint, origin);
    // Let the tail of the flood arrive, so that the counts below move only because of the replays.
    let prev = -1;
    const settled = await waitFor('the flood to settle', async () => {
      const s = await w.status();
      const same = s.counters.rx_packets === prev;
      prev = s.counters.rx_packets;
      return same ? s : false;
    }, { timeoutMs: 20_000, intervalMs: 300 });
    const gap = await lab.sh(h.a, ['nft', 'list table inet replay_gap']);
    assert.match(gap.stdout, /counter packets 1 /, 'counter 8192 went past and was dropped');
    await lab.sh(h.a, ['nft', 'delete table inet replay_gap']);
    await send(h.bAddr, [first]);
    await send(OTHER_ADDR, [first, recent]);
    const s3 = await waitStatus('three more replays counted', (s) => s.drops.replay >= settled.drops.replay + 3);
    assert.equal(s3.drops.replay, settled.drops.replay + 3);
    assert.equal(s3.counters.rx_packets, settled.counters.rx_packets, 'an out-of-window replay is not delivered');
    assert.equal(peerOf(s3).endpoint, origin);
    assert.equal(s3.counters.endpoint_changes, settled.counters.endpoint_changes);
    assert.equal(s3.drops.expired_keypair, s0.drops.expired_keypair, 'still the same session');
    assert.equal(s3.drops.unknown_index, s0.drops.unknown_index);

    // The tunnel still works both ways.
    await lab.sh(h.b, ['ping', '-c', '2', '-i', '0.2', '-W', '2', '10.77.0.1']);
    await lab.sh(h.a, ['ping', '-c', '2', '-i', '0.2', '-W', '2', '10.77.0.2']);

    // 3. Control: a packet warrend never received (dropped by nft after tshark saw it) is genuine, so
    //    it is accepted from a new address and moves the endpoint; sending it once more is a replay.
    await syncCapture();
    const maxSeen = Math.max(...capturedTransports(capture).map((p) => p.counter));
    await lab.sh(h.a, ['nft', `add table inet replay_hold ; add chain inet replay_hold in { type filter hook input priority -10 ; } ; add rule inet replay_hold in udp sport ${WGGO_PORT} drop`]);
    const before = await w.status();
    await lab.sh(h.b, ['ping', '-c', '1', '-W', '1', '10.77.0.1'], { allowFail: true });
    const held = await waitFor('tshark to see a packet warrend did not get', () =>
      // (longer than a bare keepalive's 32 bytes: the echo request)
      capturedTransports(capture).find((p) => p.counter > maxSeen && p.hex.length > 64), { timeoutMs: 20_000, signal: capture.exitSignal });
    await lab.sh(h.a, ['nft', 'delete table inet replay_hold']);
    assert.equal((await w.status()).counters.rx_packets, before.counters.rx_packets, 'the firewall held the packet back');
    const from = await send(OTHER_ADDR, [held]);
    const s4 = await waitStatus('the held-back packet to be accepted', (s) => s.counters.rx_packets > before.counters.rx_packets);
    assert.equal(peerOf(s4).endpoint, from, 'an authenticated packet from a new address moves the endpoint');
    assert.equal(s4.counters.endpoint_changes, before.counters.endpoint_changes + 1);
    assert.equal(s4.drops.replay, before.drops.replay);
    await send(h.bAddr, [held]);
    const s5 = await waitStatus('its replay counted', (s) => s.drops.replay > s4.drops.replay);
    assert.equal(s5.drops.replay, s4.drops.replay + 1);
    assert.equal(peerOf(s5).endpoint, from);
    assert.equal(s5.counters.rx_packets, s4.counters.rx_packets);

    assert.ok(w.proc.alive, 'warrend is still running');
    assert.ok((await wg.show()).peers[0]!.latestHandshake > 0);
  });
});
