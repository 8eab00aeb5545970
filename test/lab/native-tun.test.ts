/**
 * The native TUN path in a fresh network namespace: a child process
 * (fixtures/native-tun-child.ts, under `ip netns exec`) opens a TUN with
 * wn_tun_open, and ping's echo requests routed into it come out of
 * wn_read_batch; echo replies and a UDP datagram written with wn_write_batch
 * reach ping and a wn_udp_open socket. Needs root; never touches the
 * machine's own namespace.
 */
import * as assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';

const NS = `wnt-${process.pid}-${randomBytes(3).toString('hex')}`;
const CHILD = fileURLToPath(new URL('./fixtures/native-tun-child.js', import.meta.url));
const canRun = process.getuid?.() === 0 && existsSync('/dev/net/tun');

interface ChildReport {
  ifname: string;
  port: number;
  requests: { len: number; version: number; proto: number; src: string; dst: string; ipChecksumOk: boolean; icmpType: number; seq: number }[];
  writes: { consumed: number; dropped: number; lastErrno: number }[];
  otherPackets: number;
  udp?: { text: string; from: { family: number; ip: string; port: number } };
  pingExit: number | null;
  pingOut: string;
}

/** Run the child in the namespace; resolve with its JSON report (kill it after 30 s). */
function runChild(): Promise<ChildReport> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', NS, process.execPath, CHILD], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const line = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(line) as ChildReport);
      } catch {
        reject(new Error(`child exited ${code ?? signal}: ${out}\n${err}`));
      }
    });
  });
}

describe('native TUN I/O in a namespace', { skip: canRun ? false : 'needs root and /dev/net/tun' }, () => {
  before(() => execFileSync('ip', ['netns', 'add', NS]));
  after(() => {
    try {
      execFileSync('ip', ['netns', 'del', NS], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  });

  it('reads ping requests from the TUN, and writes replies and a UDP datagram into it', async () => {
    const r = await runChild();
    assert.match(r.ifname, /^wntun\d+$/, 'the kernel expanded the %d in the name');

    // wn_read_batch saw the echo requests as bare IPv4 packets (IFF_NO_PI).
    assert.equal(r.requests.length, 3, r.pingOut);
    r.requests.forEach((q, i) => {
      assert.deepEqual(
        { version: q.version, proto: q.proto, src: q.src, dst: q.dst, ipChecksumOk: q.ipChecksumOk, icmpType: q.icmpType, seq: q.seq },
        { version: 4, proto: 1, src: '10.203.0.1', dst: '10.203.0.2', ipChecksumOk: true, icmpType: 8, seq: i + 1 },
      );
      assert.equal(q.len, 84); // 20 IP + 8 ICMP + 56 data
    });

    // wn_write_batch: the non-IP packet is skipped with EINVAL, the rest go through.
    assert.deepEqual(r.writes[0], { consumed: 3, dropped: 1, lastErrno: 22 });
    for (const w of r.writes.slice(1)) assert.deepEqual(w, { consumed: 2, dropped: 1, lastErrno: 22 });

    // The replies reached ping, and the datagram reached the socket from the peer's address.
    assert.equal(r.pingExit, 0, r.pingOut);
    assert.match(r.pingOut, /3 packets transmitted, 3 received/);
    assert.deepEqual(r.udp, { text: 'hello through the tun', from: { family: 4, ip: '10.203.0.2', port: 4242 } });
  });
});
