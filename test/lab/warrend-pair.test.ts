/**
 * warrend ↔ warrend, both ends ours, across one veth (twoHosts): either side
 * can initiate the handshake (a fresh pair each time, and the counters say who
 * initiated and who answered); pings go both ways over inner IPv4 and IPv6;
 * 20 MB of random bytes cross a TCP connection each way and arrive with the
 * same SHA-256, with and without a preshared key; and a peer configured with
 * the wrong public key gets no session, with the responder's log and drop
 * counters saying why. Runs with the test timer profile (WARREN_TIMERS=test).
 */
import * as assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Lab, twoHosts, waitFor } from '../helpers/lab.js';
import type { TwoHosts } from '../helpers/lab.js';
import { genKeyPair, genPsk } from '../helpers/wg.js';
import type { KeyPair } from '../helpers/wg.js';
import { startWarrend } from '../helpers/warrend.js';
import type { Warrend } from '../helpers/warrend.js';
import type { DeviceStatus, PeerStatus } from '../../src/dataplane/status.js';

const PORT_A = 51820;
const PORT_B = 51821;
const INNER = { a4: '10.77.0.1', b4: '10.77.0.2', a6: 'fd77::1', b6: 'fd77::2' } as const;
const TRANSFER_BYTES = 20 * 1024 * 1024;
const ENV = { WARREN_TIMERS: 'test' };

/** Listens on HOST PORT, takes one connection, prints "received <bytes> <sha256>" at its end. */
const RECEIVER = `
const net = require('node:net'), crypto = require('node:crypto');
const [host, port] = process.argv.slice(1);
const server = net.createServer((s) => {
  const h = crypto.createHash('sha256');
  let n = 0;
  s.on('data', (d) => { h.update(d); n += d.length; });
  s.on('end', () => { console.log('received ' + n + ' ' + h.digest('hex')); s.end(); server.close(); });
});
server.listen(Number(port), host, () => console.log('listening'));
`;

/** Streams FILE to HOST PORT, half-closes, waits for the receiver to close. */
const SENDER = `
const net = require('node:net'), fs = require('node:fs');
const [host, port, file] = process.argv.slice(1);
const s = net.connect(Number(port), host, () => fs.createReadStream(file).pipe(s));
s.on('error', (e) => { console.error(e.message); process.exit(1); });
s.on('close', () => console.log('sent'));
s.resume();
`;

interface Pair {
  h: TwoHosts;
  a: Warrend;
  b: Warrend;
}

interface PairOptions {
  psk?: string;
  /** The key b is told a has (default: a's real one). */
  bThinksAIs?: string;
}

async function startPair(lab: Lab, names: [string, string], ka: KeyPair, kb: KeyPair, opts: PairOptions = {}): Promise<Pair> {
  const h = await twoHosts(lab, names);
  const a = await startWarrend(lab, h.a, {
    privateKey: ka.privateKey, listenPort: PORT_A, addresses: [`${INNER.a4}/24`, `${INNER.a6}/64`],
    peers: [{ publicKey: kb.publicKey, presharedKey: opts.psk, allowedIps: [`${INNER.b4}/32`, `${INNER.b6}/128`], endpoint: `${h.bAddr}:${PORT_B}` }],
  }, { name: `warrend-${names[0]}`, env: ENV });
  const b = await startWarrend(lab, h.b, {
    privateKey: kb.privateKey, listenPort: PORT_B, addresses: [`${INNER.b4}/24`, `${INNER.b6}/64`],
    peers: [{ publicKey: opts.bThinksAIs ?? ka.publicKey, presharedKey: opts.psk, allowedIps: [`${INNER.a4}/32`, `${INNER.a6}/128`], endpoint: `${h.aAddr}:${PORT_A}` }],
  }, { name: `warrend-${names[1]}`, env: ENV });
  return { h, a, b };
}

async function stopPair(p: Pair): Promise<void> {
  await Promise.all([p.a.stop(), p.b.stop()]);
  assert.equal((await p.a.proc.exited).code, 0, p.a.proc.tail());
  assert.equal((await p.b.proc.exited).code, 0, p.b.proc.tail());
}

function onlyPeer(st: DeviceStatus): PeerStatus {
  assert.equal(st.peers.length, 1);
  const peer = st.peers[0];
  assert.ok(peer !== undefined);
  return peer;
}

const counter = (st: DeviceStatus, name: string): number => st.counters[name] ?? 0;

async function ping(lab: Lab, ns: string, dst: string, opts: { count?: number; wait?: number } = {}): Promise<number> {
  const args = ['ping', '-c', String(opts.count ?? 3), '-i', '0.2', '-W', String(opts.wait ?? 2), dst];
  return (await lab.sh(ns, args, { allowFail: true, timeoutMs: 30_000 })).code;
}

/** Send `file` over TCP from `fromNs` to `toHost` in `toNs`; the receiver's byte count and SHA-256. */
async function transfer(lab: Lab, fromNs: string, toNs: string, toHost: string, port: number, file: string): Promise<{ bytes: number; sha256: string }> {
  const rx = lab.spawn(toNs, ['node', '-e', RECEIVER, toHost, String(port)], { name: `receiver:${toHost}` });
  await rx.waitForOutput(/^listening$/m, 10_000);
  await lab.sh(fromNs, ['node', '-e', SENDER, toHost, String(port), file], { timeoutMs: 50_000 });
  const [, bytes = '', sha256 = ''] = await rx.waitForOutput(/^received (\d+) ([0-9a-f]{64})$/m, 10_000);
  await rx.exited;
  return { bytes: Number(bytes), sha256 };
}

void describe('warrend ↔ warrend', () => {
  const lab = Lab.create('wpair');
  const ka = genKeyPair();
  const kb = genKeyPair();
  let file = '';
  let fileSha = '';

  before(() => {
    const dir = mkdtempSync(join(tmpdir(), `${lab.prefix}-data-`));
    lab.trackPath(dir);
    const data = randomBytes(TRANSFER_BYTES);
    fileSha = createHash('sha256').update(data).digest('hex');
    file = join(dir, 'random.bin');
    writeFileSync(file, data);
  });
  after(() => lab.cleanup());

  for (const [who, names] of [['a', ['ia', 'ib']], ['b', ['ja', 'jb']]] as const) {
    void test(`a fresh pair: ${who} initiates the handshake when it pings first`, async () => {
      const p = await startPair(lab, [...names], ka, kb);
      const [first, second] = who === 'a' ? [p.a, p.b] : [p.b, p.a];
      const dst = who === 'a' ? INNER.b4 : INNER.a4;
      const before1 = await first.status();
      const before2 = await second.status();
      assert.equal(counter(before1, 'handshakes_initiated') + counter(before2, 'handshakes_initiated'), 0, 'nobody has initiated yet');
      assert.equal(onlyPeer(before1).latestHandshake, 0);

      assert.equal(await ping(lab, first.ns, dst), 0, `${who} pings ${dst}`);

      const s1 = await first.status();
      const s2 = await second.status();
      assert.ok(counter(s1, 'handshakes_initiated') >= 1, `${who} initiated: ${JSON.stringify(s1.counters)}`);
      assert.equal(counter(s1, 'handshakes_answered'), 0, `${who} answered nothing`);
      assert.ok(counter(s1, 'handshakes_completed') >= 1, `${who} completed as initiator`);
      assert.ok(counter(s2, 'handshakes_answered') >= 1, `the other side answered: ${JSON.stringify(s2.counters)}`);
      assert.equal(counter(s2, 'handshakes_initiated'), 0, 'the other side initiated nothing');
      assert.ok(onlyPeer(s1).latestHandshake > 0 && onlyPeer(s2).latestHandshake > 0, 'both record the handshake');
      // Each learnt the other's endpoint (the responder from the initiation itself).
      assert.equal(onlyPeer((await p.a.status())).endpoint, `${p.h.bAddr}:${PORT_B}`);
      assert.equal(onlyPeer((await p.b.status())).endpoint, `${p.h.aAddr}:${PORT_A}`);
      await stopPair(p);
    });
  }

  for (const withPsk of [false, true]) {
    void test(`pings both ways over IPv4 and IPv6, and 20 MB over TCP each way arrive intact${withPsk ? ', with a preshared key' : ''}`, async () => {
      const p = await startPair(lab, withPsk ? ['pa', 'pb'] : ['na', 'nb'], ka, kb, withPsk ? { psk: genPsk() } : {});
      assert.equal(onlyPeer(await p.a.status()).presharedKey, withPsk);
      assert.equal(onlyPeer(await p.b.status()).presharedKey, withPsk);
      // warrend drops its start-up pages once it is ready (daemon/startup-trim.ts);
      // everything below runs after that.
      const [, dropped = '', fileBefore = '', fileAfter = ''] = await p.a.proc.waitForOutput(
        /dropped ([\d.]+) MB of start-up pages \(start-up\); file-backed RSS ([\d.]+) → ([\d.]+) MB/, 10_000);
      assert.ok(Number(dropped) > 5 && Number(fileAfter) < Number(fileBefore) - 5, `a dropped ${dropped} MB: ${fileBefore} → ${fileAfter} MB`);

      assert.equal(await ping(lab, p.h.a, INNER.b4), 0, 'a → b over IPv4');
      assert.equal(await ping(lab, p.h.a, INNER.b6), 0, 'a → b over IPv6');
      assert.equal(await ping(lab, p.h.b, INNER.a4), 0, 'b → a over IPv4');
      assert.equal(await ping(lab, p.h.b, INNER.a6), 0, 'b → a over IPv6');

      const a0 = onlyPeer(await p.a.status());
      const there = await transfer(lab, p.h.a, p.h.b, INNER.b4, 5001, file);
      assert.deepEqual(there, { bytes: TRANSFER_BYTES, sha256: fileSha }, 'a → b over inner IPv4');
      const back = await transfer(lab, p.h.b, p.h.a, INNER.a6, 5002, file);
      assert.deepEqual(back, { bytes: TRANSFER_BYTES, sha256: fileSha }, 'b → a over inner IPv6');

      // The bytes really crossed the tunnel: warrend counted them, encrypted, both ways.
      const a1 = onlyPeer(await p.a.status());
      assert.ok(a1.txBytes - a0.txBytes > TRANSFER_BYTES, `a sent ${a1.txBytes - a0.txBytes} bytes`);
      assert.ok(a1.rxBytes - a0.rxBytes > TRANSFER_BYTES, `a received ${a1.rxBytes - a0.rxBytes} bytes`);
      const sb = await p.b.status();
      assert.equal(sb.drops['decrypt'] ?? 0, 0, `b: no decrypt failures: ${JSON.stringify(sb.drops)}`);
      // What the tunnel needed came back; the pages only start-up used did not.
      const fileNow = Number(/^RssFile:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${p.a.proc.pid}/status`, 'utf8'))?.[1]) / 1024;
      assert.ok(fileNow < Number(fileBefore), `a's file-backed RSS after 40 MB through the tunnel: ${fileNow.toFixed(1)} MB (${fileBefore} MB before the trim)`);
      await stopPair(p);
    });
  }

  void test('a peer configured with the wrong public key gets no session, and the log says why', async () => {
    const wrong = genKeyPair().publicKey;
    const p = await startPair(lab, ['wa', 'wb'], ka, kb, { bThinksAIs: wrong });

    // a (configured right) initiates: b decrypts it, finds a's real key, knows no such peer.
    assert.notEqual(await ping(lab, p.h.a, INNER.b4, { count: 2, wait: 1 }), 0, 'a cannot reach b');
    await p.b.proc.waitForOutput(
      new RegExp(`handshake from ${p.h.aAddr.replaceAll('.', '\\.')}:${PORT_A} with unknown public key ${ka.publicKey.replace(/[+/]/g, '\\$&')}: no such peer`),
      5_000,
    );
    const b1 = await p.b.status();
    assert.ok((b1.drops['unknown_peer'] ?? 0) >= 1, `b counted unknown_peer: ${JSON.stringify(b1.drops)}`);
    assert.equal(counter(b1, 'handshakes_answered'), 0);

    // b (configured wrong) initiates towards the key it was given: a's MAC1 check
    // (keyed by a's real public key) throws it away before any crypto.
    assert.notEqual(await ping(lab, p.h.b, INNER.a4, { count: 2, wait: 1 }), 0, 'b cannot reach a');
    const a1 = await waitFor('a to count the bad MAC1', async () => {
      const st = await p.a.status();
      return (st.drops['bad_mac1'] ?? 0) >= 1 ? st : null;
    }, { timeoutMs: 5_000, signal: p.a.proc.exitSignal });
    assert.equal(counter(a1, 'handshakes_answered'), 0);
    assert.match(p.a.proc.output(), /not addressed to our public key \(bad MAC1\): that peer has a wrong public key for us/, 'a says why');
    assert.ok(counter(a1, 'handshakes_initiated') >= 1, 'a did try');

    // a's initiations keep failing: its log says it is retrying.
    await p.a.proc.waitForOutput(new RegExp(`peer ${kb.publicKey.replace(/[+/]/g, '\\$&')}: handshake timed out, retrying`), 5_000);
    for (const st of [await p.a.status(), await p.b.status()]) {
      const peer = onlyPeer(st);
      assert.equal(peer.latestHandshake, 0, `no session on ${st.publicKey}`);
      assert.equal(counter(st, 'handshakes_completed'), 0);
    }
    await stopPair(p);
  });
});
