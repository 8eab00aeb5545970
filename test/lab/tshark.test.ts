/**
 * Wire format against an independent parser: tshark (Wireshark's WireGuard
 * dissector) reads a capture of warrend talking to stock wireguard-go and
 * must see a well-formed handshake initiated by warrend, the matching
 * response, and transport data both ways with the indices from that
 * handshake and counters that count up from zero. Given wireguard-go's
 * private key, tshark also decrypts warrend's initiation and finds warrend's
 * static public key inside — an independent check of our Noise IKpsk2.
 */
import * as assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Lab, twoHosts, waitFor } from '../helpers/lab.js';
import { genKeyPair, startWireguardGo } from '../helpers/wg.js';
import { startWarrend } from '../helpers/warrend.js';

const WARREND_PORT = 51820;
const WGGO_PORT = 51821;
/** Datagrams to this port (nobody listens) prove the capture is running. */
const PROBE_PORT = 9;
/** init + response + 3 echo requests (warrend → wg-go) + 3 replies. */
const EXPECTED_FRAMES = 8;

interface Frame {
  number: number;
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  type: number;
  sender: number | null;
  receiver: number | null;
  counter: number | null;
  responseTo: number | null;
  staticKey: string;
  timestamp: string;
}

const FIELDS = [
  'frame.number', 'ip.src', 'ip.dst', 'udp.srcport', 'udp.dstport', 'wg.type', 'wg.sender', 'wg.receiver',
  'wg.counter', 'wg.response_to', 'wg.static', 'wg.timestamp.value',
] as const;

function num(v: string | undefined): number | null {
  return v === undefined || v === '' ? null : Number(v);
}

function parseFields(stdout: string): Frame[] {
  return stdout.split('\n').filter((l) => l.trim() !== '').map((line) => {
    const f = line.split('\t');
    return {
      number: Number(f[0]), src: f[1] ?? '', dst: f[2] ?? '', srcPort: Number(f[3]), dstPort: Number(f[4]),
      type: Number(f[5]), sender: num(f[6]), receiver: num(f[7]), counter: num(f[8]), responseTo: num(f[9]),
      staticKey: f[10] ?? '', timestamp: f[11] ?? '',
    };
  });
}

void describe('tshark dissects warrend traffic as WireGuard', () => {
  const lab = Lab.create('tshark');
  after(() => lab.cleanup());

  void test('handshake initiated by warrend, response, and transport both ways with matching indices and rising counters', async () => {
    const h = await twoHosts(lab);
    const ka = genKeyPair();
    const kb = genKeyPair();
    // wireguard-go gets no endpoint for warrend: only warrend can start the handshake.
    await startWireguardGo(lab, h.b, {
      ifname: lab.uniqueIfname('wgb'), privateKey: kb.privateKey, listenPort: WGGO_PORT,
      addresses: ['10.77.0.2/24'], peers: [{ publicKey: ka.publicKey, allowedIps: ['10.77.0.1/32'] }],
    });
    const w = await startWarrend(lab, h.a, {
      privateKey: ka.privateKey, listenPort: WARREND_PORT, addresses: ['10.77.0.1/24'],
      peers: [{ publicKey: kb.publicKey, allowedIps: ['10.77.0.2/32'], endpoint: `${h.bAddr}:${WGGO_PORT}` }],
    });

    const dir = mkdtempSync(join(tmpdir(), `${lab.prefix}-pcap-`));
    lab.trackPath(dir);
    const pcap = join(dir, 'wg.pcapng');
    // tshark prints "Capturing on" before dumpcap really captures: probe with
    // datagrams to port 9 (in the filter too) until one shows up, then start.
    // -P prints each packet (port fields only) while -w writes the file.
    const capture = lab.spawn(h.a, [
      'tshark', '-n', '-l', '-i', 'eth0', '-f', `udp port ${WARREND_PORT} or udp port ${PROBE_PORT}`, '-a', 'duration:50',
      '-w', pcap, '-P', '-T', 'fields', '-e', 'udp.srcport', '-e', 'udp.dstport',
    ], { name: 'tshark-capture' });
    await capture.waitForOutput(/Capturing on/, 20_000);
    await waitFor('tshark to see a probe datagram', async () => {
      await lab.sh(h.a, ['bash', '-c', `echo probe > /dev/udp/${h.bAddr}/${PROBE_PORT}`]);
      return new RegExp(`\\t${PROBE_PORT}\\n`).test(capture.output());
    }, { timeoutMs: 20_000, intervalMs: 200, signal: capture.exitSignal });

    await lab.sh(h.a, ['ping', '-c', '3', '-i', '0.2', '-W', '2', '10.77.0.2']);
    const wgLine = new RegExp(`^(${WARREND_PORT}\\t\\d+|\\d+\\t${WARREND_PORT})$`, 'gm');
    await waitFor(`tshark to print ${EXPECTED_FRAMES} WireGuard packets`, () => (capture.output().match(wgLine)?.length ?? 0) >= EXPECTED_FRAMES,
      { timeoutMs: 20_000, signal: capture.exitSignal });
    await capture.stop('SIGINT');

    // Dissect with the responder's private key so tshark can open the initiation's static key.
    const keyUat = `uat:wg_keys:"Private","${kb.privateKey}"`;
    const { stdout } = await lab.sh(h.a, [
      'tshark', '-n', '-r', pcap, '-Y', 'wg', '-d', `udp.port==${WARREND_PORT},wg`, '-o', keyUat,
      '-T', 'fields', '-E', 'separator=/t', ...FIELDS.flatMap((f) => ['-e', f]),
    ]);
    const frames = parseFields(stdout);
    assert.ok(frames.length >= EXPECTED_FRAMES, stdout);

    // The first packet is warrend's initiation.
    const init = frames[0]!;
    assert.deepEqual(
      { type: init.type, src: init.src, dst: init.dst, srcPort: init.srcPort, dstPort: init.dstPort },
      { type: 1, src: h.aAddr, dst: h.bAddr, srcPort: WARREND_PORT, dstPort: WGGO_PORT },
      stdout,
    );
    assert.ok(init.sender !== null, 'tshark read the initiation sender index');
    // Opening the static key and then the timestamp takes the right DH results and chaining keys.
    assert.equal(init.staticKey, ka.publicKey, `tshark decrypts warrend's static public key from the initiation:\n${stdout}`);
    const stamp = Date.parse(init.timestamp.replace(/ UTC$/, 'Z').replace(' ', 'T'));
    assert.ok(Math.abs(stamp - Date.now()) < 120_000, `tshark decrypts a current TAI64N timestamp: ${init.timestamp}`);
    const iIndex = init.sender;

    // Exactly one response, from wireguard-go, naming the initiation.
    const responses = frames.filter((f) => f.type === 2);
    assert.equal(responses.length, 1, stdout);
    const resp = responses[0]!;
    assert.deepEqual(
      { src: resp.src, dst: resp.dst, receiver: resp.receiver, responseTo: resp.responseTo },
      { src: h.bAddr, dst: h.aAddr, receiver: iIndex, responseTo: init.number },
    );
    assert.ok(resp.sender !== null);
    const rIndex = resp.sender;
    assert.notEqual(rIndex, iIndex);

    assert.equal(frames.filter((f) => f.type === 1 || f.type === 3).length, 1, 'no retries and no cookie replies');
    const transports = frames.filter((f) => f.type === 4);
    const fromWarrend = transports.filter((f) => f.src === h.aAddr);
    const toWarrend = transports.filter((f) => f.src === h.bAddr);
    // Three echo requests and three replies (plus, at most, a keepalive that slipped in).
    assert.ok(fromWarrend.length >= 3, stdout);
    assert.ok(toWarrend.length >= 3, stdout);
    // Every transport packet comes after the response, carries the peer's index, and counts up from 0.
    for (const f of transports) assert.ok(f.number > resp.number, `transport frame ${f.number} follows the response`);
    assert.ok(fromWarrend.every((f) => f.receiver === rIndex), 'warrend addresses the responder index');
    assert.ok(toWarrend.every((f) => f.receiver === iIndex), "wireguard-go addresses warrend's index");
    assert.deepEqual(fromWarrend.map((f) => f.counter), fromWarrend.map((_, i) => i), 'warrend counters start at 0 and go up by one');
    assert.deepEqual(toWarrend.map((f) => f.counter), toWarrend.map((_, i) => i));
    for (const f of fromWarrend) assert.deepEqual([f.srcPort, f.dstPort], [WARREND_PORT, WGGO_PORT]);

    const status = await w.status();
    assert.equal(status.counters.handshakes_initiated, 1);
    assert.equal(status.counters.handshakes_completed, 1);
  });
});
