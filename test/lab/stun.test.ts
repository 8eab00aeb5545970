/**
 * STUN against independent implementations, in the NAT lab
 * (test/helpers/nat-lab.ts): servers on the "internet" namespace, clients
 * on hosts with no NAT (routed), behind an easy NAT (masquerade) and behind
 * a hard one (masquerade random,fully-random).
 *
 *  (a) the stock Debian `stun` client (classic RFC 3489, CHANGE-REQUEST)
 *      against our server with two addresses classifies each path: Open,
 *      Independent Mapping + Port Dependent Filter, Dependent Mapping;
 *  (b) our StunClient against coturn gets the right mapped address directly
 *      and through both NATs (the same from both coturn addresses behind the
 *      easy NAT, different ones behind the hard NAT) and coturn's OTHER-ADDRESS;
 *  (c) tshark dissects our server's answer as a STUN Binding success with
 *      the right XOR-MAPPED-ADDRESS, RESPONSE-ORIGIN, OTHER-ADDRESS and a
 *      good FINGERPRINT;
 *  (d) our server with one address answers CHANGE-REQUEST with 420 naming it.
 */
import * as assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../helpers/lab.js';
import type { LabProc } from '../helpers/lab.js';
import { createNatLab, IFACES } from '../helpers/nat-lab.js';
import type { NatLab, Site } from '../helpers/nat-lab.js';

const SERVER = fileURLToPath(new URL('./fixtures/stun-server.js', import.meta.url));
const PROBE = fileURLToPath(new URL('./fixtures/stun-probe.js', import.meta.url));
const STUN_PORT = 3478;
const ALT_PORT = 3479;
/** Datagrams to this port (nobody listens) prove a capture is running. */
const CAPTURE_PROBE_PORT = 9;

interface Addr {
  ip: string;
  port: number;
}
interface QueryOut {
  local: number;
  results: Array<{ server: Addr; mapped?: Addr; otherAddress?: Addr; rttMs?: number; error?: string; message?: string }>;
}

void describe('STUN in the NAT lab: stock stun client, coturn, tshark', () => {
  let net: NatLab;
  let open: Site;
  let easy: Site;
  let hard: Site;
  /** .1 + .2: our server (RFC 5780 pair); .3 + .4: coturn; .5: our server alone. */
  let ip: string[];

  before(async () => {
    net = await createNatLab({ serverIps: 5, tag: 'stun' });
    ip = net.serverIps;
    open = await net.addSite('open', { nat: 'none' });
    easy = await net.addSite('easy', { nat: 'easy' });
    hard = await net.addSite('hard', { nat: 'hard' });
  });
  after(() => net.close());

  async function startOurs(addrs: string[]): Promise<LabProc> {
    const p = net.lab.spawn(net.internet, [process.execPath, SERVER, ...addrs.map((a) => `${a}:${STUN_PORT}`)], { name: 'stun-server' });
    await p.waitForOutput(/"listening"/, 15_000);
    return p;
  }

  async function stopOurs(p: LabProc): Promise<Record<string, number>> {
    await p.stop('SIGTERM');
    const m = /\{"stats":(\{[^}]*\})\}/.exec(p.output());
    assert.ok(m, `the server printed its counters:\n${p.tail()}`);
    return JSON.parse(m[1]!) as Record<string, number>;
  }

  async function query(site: Site, servers: Addr[]): Promise<QueryOut> {
    const { stdout } = await net.lab.sh(site.host, [process.execPath, PROBE, 'query', ...servers.map((s) => `${s.ip}:${s.port}`)], { timeoutMs: 30_000 });
    return JSON.parse(stdout) as QueryOut;
  }

  /** Run the stock client; its verdict is the `Primary:` line (stdout), its trace goes to stderr. */
  async function stockStun(site: Site, server: string): Promise<{ primary: string; all: string }> {
    const r = await net.lab.sh(site.host, ['stun', server, '-v'], { allowFail: true, timeoutMs: 30_000 });
    const all = `${r.stdout}\n${r.stderr}`;
    const primary = /^Primary: (.*)$/m.exec(r.stdout)?.[1]?.trim();
    assert.ok(primary, `stun printed a Primary: line (exit ${r.code}):\n${all}`);
    return { primary, all };
  }

  void test('(a) the stock stun client (classic RFC 3489) classifies open, easy-NAT and hard-NAT paths through our two-address server', async (t) => {
    const server = await startOurs([ip[0]!, ip[1]!]);
    try {
      const o = await stockStun(open, ip[0]!);
      // Routed host: the mapped address is its own (it can bind it), and the answer from the other IP and port arrives.
      assert.match(o.primary, /^Open\b/, o.all);
      assert.match(o.all, /test II = 1/);
      assert.match(o.all, new RegExp(`MappedAddress = ${open.publicIp.replace(/\./g, '\\.')}:\\d+`));
      assert.match(o.all, new RegExp(`ChangedAddress = ${ip[1]!.replace(/\./g, '\\.')}:${ALT_PORT}`));

      // Masquerade keeps the mapping for the other server address (test I(2) sees the same one) but filters
      // by address and port: the answers from the other IP (test II) and the other port (test III) are dropped.
      const e = await stockStun(easy, ip[0]!);
      assert.match(e.primary, /^Independent Mapping, Port Dependent Filter\b/, e.all);
      assert.match(e.all, /test I\(2\) = 1/);
      assert.match(e.all, /mapped IP same = 1/);
      assert.match(e.all, new RegExp(`MappedAddress = ${easy.publicIp.replace(/\./g, '\\.')}:\\d+`));

      // A new port for each destination.
      const hd = await stockStun(hard, ip[0]!);
      assert.match(hd.primary, /^Dependent Mapping\b/, hd.all);
      assert.match(hd.all, /mapped IP same = 0/);
      t.diagnostic(`stun says: open "${o.primary}"; easy "${e.primary}"; hard "${hd.primary}"`);
    } finally {
      const stats = await stopOurs(server);
      assert.ok(stats.classic! > 0 && stats.classic === stats.requests, JSON.stringify(stats));
      assert.ok(stats.changed! > 0, `some answers came from the changed address: ${JSON.stringify(stats)}`);
      assert.equal(stats.errors, 0);
      assert.equal(stats.garbage, 0);
    }
  });

  void test('(b) our StunClient against coturn: the right mapped address directly and through easy and hard NAT', async () => {
    const dir = mkdtempSync(join(tmpdir(), `${net.lab.prefix}-coturn-`));
    net.lab.trackPath(dir);
    const coturn = net.lab.spawn(net.internet, [
      'turnserver', '-n', '-S', '-L', ip[2]!, '-L', ip[3]!, '-p', String(STUN_PORT), `--alt-listening-port=${ALT_PORT}`,
      '--no-cli', '--no-tls', '--no-dtls', '--no-tcp', '-z', '-r', 'lab',
      '--db', join(dir, 'turndb'), '--pidfile', join(dir, 'turnserver.pid'), '--log-file', 'stdout', '--simple-log',
    ], { name: 'coturn' });
    const servers = [{ ip: ip[2]!, port: STUN_PORT }, { ip: ip[3]!, port: STUN_PORT }];
    await waitFor('coturn to answer STUN', async () => {
      const r = await query(open, [servers[0]!]);
      return r.results[0]?.mapped !== undefined;
    }, { timeoutMs: 30_000, intervalMs: 200, signal: coturn.exitSignal });

    const direct = await query(open, servers);
    for (const r of direct.results) {
      assert.deepEqual(r.mapped, { ip: open.publicIp, port: direct.local }, JSON.stringify(direct));
      assert.ok(typeof r.rttMs === 'number' && r.rttMs >= 0 && r.rttMs < 3000);
    }
    // RFC 5780: coturn names its other IP on the alternate port. (For the second of its two
    // addresses coturn 4.6.1 names that same address, on the alternate port: its choice, not ours.)
    assert.deepEqual(direct.results[0]!.otherAddress, { ip: ip[3]!, port: ALT_PORT });
    assert.equal(direct.results[1]!.otherAddress?.port, ALT_PORT);

    // Easy NAT: the router's address, the same mapping for both destinations (masquerade kept our port).
    const viaEasy = await query(easy, servers);
    for (const r of viaEasy.results) assert.deepEqual(r.mapped, { ip: easy.publicIp, port: viaEasy.local }, JSON.stringify(viaEasy));

    // Hard NAT: the router's address, a different port per destination.
    const viaHard = await query(hard, servers);
    const [h1, h2] = viaHard.results;
    assert.equal(h1?.mapped?.ip, hard.publicIp, JSON.stringify(viaHard));
    assert.equal(h2?.mapped?.ip, hard.publicIp);
    assert.notEqual(h1?.mapped?.port, h2?.mapped?.port, `mapping varies by destination: ${JSON.stringify(viaHard)}`);
    await coturn.stop('SIGTERM');
  });

  void test('(c) tshark dissects our answer as STUN with the right XOR-MAPPED-ADDRESS, RESPONSE-ORIGIN, OTHER-ADDRESS and FINGERPRINT', async () => {
    const server = await startOurs([ip[0]!, ip[1]!]);
    const dir = mkdtempSync(join(tmpdir(), `${net.lab.prefix}-pcap-`));
    net.lab.trackPath(dir);
    const pcap = join(dir, 'stun.pcapng');
    const capture = net.lab.spawn(open.host, [
      'tshark', '-n', '-l', '-i', IFACES.host, '-f', `udp port ${STUN_PORT} or udp port ${CAPTURE_PROBE_PORT}`, '-a', 'duration:50',
      '-w', pcap, '-P', '-T', 'fields', '-e', 'udp.srcport', '-e', 'udp.dstport',
    ], { name: 'tshark-capture' });
    await capture.waitForOutput(/Capturing on/, 20_000);
    // tshark says "Capturing on" before dumpcap really captures: send probes until one is seen.
    await waitFor('tshark to see a probe datagram', async () => {
      await net.lab.sh(open.host, ['bash', '-c', `echo probe > /dev/udp/${ip[0]}/${CAPTURE_PROBE_PORT}`]);
      return new RegExp(`\\t${CAPTURE_PROBE_PORT}\\n`).test(capture.output());
    }, { timeoutMs: 20_000, intervalMs: 200, signal: capture.exitSignal });

    const q = await query(open, [{ ip: ip[0]!, port: STUN_PORT }]);
    assert.deepEqual(q.results[0]?.mapped, { ip: open.publicIp, port: q.local });
    await waitFor('tshark to print the answer', () => new RegExp(`^${STUN_PORT}\\t${q.local}$`, 'm').test(capture.output()),
      { timeoutMs: 20_000, signal: capture.exitSignal });
    await capture.stop('SIGINT');
    await stopOurs(server);

    const fields = ['stun.type', 'stun.att.type', 'stun.att.ipv4', 'stun.att.port', 'stun.att.software', 'stun.att.crc32.status', 'ip.src', 'udp.srcport'];
    const { stdout } = await net.lab.sh(open.host, [
      'tshark', '-n', '-r', pcap, '-d', `udp.port==${STUN_PORT},stun`, '-Y', 'stun.type == 0x0101',
      '-T', 'fields', '-E', 'separator=/t', '-E', 'occurrence=a', '-E', 'aggregator=;', ...fields.flatMap((f) => ['-e', f]),
    ]);
    const lines = stdout.trim().split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, `one Binding success in the capture:\n${stdout}`);
    const [type, attTypes, ipv4s, ports, software, crcStatus, src, srcPort] = lines[0]!.split('\t');
    assert.equal(Number(type), 0x0101);
    assert.deepEqual(attTypes!.split(';').map(Number), [0x0020, 0x802b, 0x802c, 0x8022, 0x8028], stdout);
    // tshark un-XORs XOR-MAPPED-ADDRESS itself: our address as the server saw it, then RESPONSE-ORIGIN, then OTHER-ADDRESS.
    assert.deepEqual(ipv4s!.split(';'), [open.publicIp, ip[0], ip[1]], stdout);
    assert.deepEqual(ports!.split(';').map(Number), [q.local, STUN_PORT, ALT_PORT], stdout);
    assert.equal(software, 'warren-relay');
    assert.equal(Number(crcStatus), 1, `tshark finds the FINGERPRINT good:\n${stdout}`);
    assert.deepEqual([src, Number(srcPort)], [ip[0], STUN_PORT]);
  });

  void test('(d) our server with a single address answers CHANGE-REQUEST with 420 Unknown Attribute and still answers plain bindings', async () => {
    const server = await startOurs([ip[4]!]);
    try {
      const { stdout } = await net.lab.sh(easy.host, [process.execPath, PROBE, 'change', `${ip[4]}:${STUN_PORT}`, 'both'], { timeoutMs: 30_000 });
      const answer = JSON.parse(stdout) as { from?: Addr; type?: number; fields?: { error?: { code: number; reason: string }; unknownAttributes?: number[] } };
      assert.deepEqual(answer.from, { ip: ip[4], port: STUN_PORT }, stdout);
      assert.equal(answer.type, 0x0111);
      assert.deepEqual(answer.fields?.error, { code: 420, reason: 'Unknown Attribute' });
      assert.deepEqual(answer.fields?.unknownAttributes, [0x0003]);
      const plain = await query(easy, [{ ip: ip[4]!, port: STUN_PORT }]);
      assert.deepEqual(plain.results[0]?.mapped, { ip: easy.publicIp, port: plain.local });
      assert.equal(plain.results[0]?.otherAddress, undefined, 'no OTHER-ADDRESS without a second address');
    } finally {
      const stats = await stopOurs(server);
      assert.deepEqual([stats.requests, stats.errors, stats.changed], [2, 1, 0], JSON.stringify(stats));
    }
  });
});
