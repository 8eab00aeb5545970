/**
 * WireGuard's cookie mechanism (MAC2, whitepaper §5.4.7) against stock
 * wireguard-go, in both directions.
 *
 * 1. warrend under (forced) load: wireguard-go's first initiation is turned
 *    away with a cookie reply; wireguard-go decrypts it, retries after its
 *    REKEY_TIMEOUT with a MAC2 keyed by that cookie, warrend accepts it and
 *    the handshake completes.
 * 2. wireguard-go under real load: a third namespace floods it with
 *    initiations that carry a valid MAC1 (so each reaches its handshake queue
 *    and costs it a Diffie-Hellman), filling the queue past QueueHandshakeSize/8
 *    = 128 (IsUnderLoad in wireguard-go 0.0.20220316). warrend's initiation is
 *    then answered with a cookie reply, which warrend must consume; its next
 *    initiation carries MAC2 and the handshake completes.
 */
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Lab, twoHosts, waitFor } from '../helpers/lab.js';
import type { LabProc } from '../helpers/lab.js';
import { genKeyPair, startWireguardGo } from '../helpers/wg.js';
import type { WgGo } from '../helpers/wg.js';
import { startWarrend } from '../helpers/warrend.js';
import { createInitiation, peerIdentity, staticIdentity } from '../../src/dataplane/noise.js';
import { CookieGenerator } from '../../src/dataplane/cookie.js';
import { systemClock } from '../../src/dataplane/clock.js';
import { generatePrivateKey } from '../../src/crypto/x25519.js';
import { tai64n } from '../../src/crypto/tai64n.js';
import { INITIATION_SIZE } from '../../src/dataplane/constants.js';
import type { DeviceStatus } from '../../src/dataplane/status.js';

const PORT = 51820;
const WARREN_IP = '10.77.0.1';
const WG_IP = '10.77.0.2';
/** Distinct initiations the flooder cycles through. */
const FLOOD_MESSAGES = 4096;
/** The flooder's own time limit, whatever happens to the test. */
const FLOOD_MAX_MS = 25_000;

const count = (s: DeviceStatus, key: string): number => s.counters[key] ?? 0;
const drop = (s: DeviceStatus, key: string): number => s.drops[key] ?? 0;

interface FloodStats {
  t: number;
  sent: number;
  cookies: number;
}

/** The flooder's latest report: ms since start, initiations sent, cookie replies received. */
function floodStats(flooder: LabProc): FloodStats {
  const all = [...flooder.output().matchAll(/t=(\d+) sent=(\d+) cookies=(\d+)/g)];
  const m = all[all.length - 1];
  return m ? { t: Number(m[1]), sent: Number(m[2]), cookies: Number(m[3]) } : { t: 0, sent: 0, cookies: 0 };
}

/** The handshake wireguard-go reports with its one peer (Unix seconds; 0 = none). */
async function wgHandshake(wg: WgGo): Promise<number> {
  return (await wg.show()).peers[0]?.latestHandshake ?? 0;
}

/** Lines of wireguard-go output matching `re`. */
function wgLines(wg: WgGo, re: RegExp): number {
  return wg.proc.output().split('\n').filter((l) => re.test(l)).length;
}

/**
 * `FLOOD_MESSAGES` handshake initiations addressed to `publicKey`, each from
 * a random static key wireguard-go does not know, with a valid MAC1 (so they
 * pass its first check and cost it a DH each) and no MAC2.
 */
function floodInitiations(publicKey: string): Buffer {
  const out = Buffer.alloc(FLOOD_MESSAGES * INITIATION_SIZE);
  const target = new Uint8Array(Buffer.from(publicKey, 'base64'));
  const senders = Array.from({ length: 16 }, () => {
    const self = staticIdentity(generatePrivateKey());
    const peer = peerIdentity(self, target);
    return { self, peer, stamper: new CookieGenerator(peer.mac1Key, peer.cookieKey, systemClock) };
  });
  const now = systemClock.wallNs();
  for (let i = 0; i < FLOOD_MESSAGES; i++) {
    const s = senders[i % senders.length]!;
    const { message } = createInitiation(s.self, s.peer, randomBytes(4).readUInt32LE(0), tai64n(now + BigInt(i)));
    s.stamper.stamp(message);
    out.set(message, i * INITIATION_SIZE);
  }
  return out;
}

/**
 * The flooder, run with `node --input-type=module -e` inside a lab namespace:
 * argv = native module URL, packet file, target ip, port, max ms. It sends the
 * whole file with sendmmsg (the native batch sender) in a tight loop.
 */
const FLOODER = `
  import { readFileSync } from 'node:fs';
  const [, nativeUrl, file, ip, port, maxMs] = process.argv;
  const { loadNative, encodeAddr, checkErrno, ADDR_LEN, BATCH_MAX } = await import(nativeUrl);
  const native = loadNative();
  const size = ${INITIATION_SIZE};
  const pkts = readFileSync(file);
  const n = pkts.length / size;
  const fd = checkErrno(native.udpOpen(4, 0, 0, 4 << 20), 'udpOpen');
  const offs = new Int32Array(n);
  const lens = new Int32Array(n).fill(size);
  const addrs = new Uint8Array(n * ADDR_LEN);
  for (let i = 0; i < n; i++) encodeAddr(addrs, i * ADDR_LEN, 4, ip, Number(port));
  const errs = new Int32Array(2);
  const rbuf = new Uint8Array(BATCH_MAX * 256);
  const rlens = new Int32Array(BATCH_MAX);
  console.log('flooding with ' + n + ' distinct initiations');
  const start = Date.now();
  let sent = 0;
  let cookies = 0;
  let report = start;
  while (Date.now() - start < Number(maxMs)) {
    const r = native.udpSendBatch(fd, pkts, size, n, offs, lens, addrs, errs);
    if (r < 0) throw new Error('udpSendBatch: ' + r);
    sent += r;
    for (let k; (k = native.udpRecvBatch(fd, rbuf, 256, BATCH_MAX, rlens, null)) > 0; ) {
      for (let i = 0; i < k; i++) if (rlens[i] === 64 && rbuf[i * 256] === 3) cookies++;
    }
    if (Date.now() >= report) {
      console.log('t=' + (Date.now() - start) + ' sent=' + sent + ' cookies=' + cookies);
      report += 250;
    }
  }
  console.log('done');
`;

void describe('cookie replies and MAC2 with wireguard-go', () => {
  const lab = Lab.create('cookie');
  after(() => lab.cleanup());

  void test('warrend under load answers with a cookie; wireguard-go retries with MAC2 and the handshake completes', async () => {
    const h = await twoHosts(lab);
    const kw = genKeyPair();
    const kg = genKeyPair();
    // Only wireguard-go knows an endpoint, so the handshake is its initiation.
    const wg = await startWireguardGo(lab, h.b, {
      ifname: lab.uniqueIfname('wgk'), privateKey: kg.privateKey, listenPort: PORT,
      addresses: [`${WG_IP}/24`],
      peers: [{ publicKey: kw.publicKey, allowedIps: [`${WARREN_IP}/32`], endpoint: `${h.aAddr}:${PORT}` }],
    });
    const w = await startWarrend(lab, h.a, {
      privateKey: kw.privateKey, listenPort: PORT, addresses: [`${WARREN_IP}/24`],
      peers: [{ publicKey: kg.publicKey, allowedIps: [`${WG_IP}/32`] }],
    }, { env: { WARREN_TEST_FORCE_UNDER_LOAD: '1' } });

    // One echo request; it waits in wireguard-go's staging queue through the
    // refused first initiation and the retry ~5 s later.
    const pinger = lab.spawn(h.b, ['ping', '-c', '1', '-W', '20', WARREN_IP], { name: 'ping-from-wg' });

    const first = await waitFor('warrend to answer the first initiation with a cookie reply', async () => {
      const s = await w.status();
      return count(s, 'cookies_sent') >= 1 ? s : null;
    }, { timeoutMs: 10_000, intervalMs: 100, signal: w.proc.exitSignal });
    assert.ok(drop(first, 'cookie_required') >= 1, 'the initiation without MAC2 was dropped as cookie_required');
    assert.equal(count(first, 'handshakes_answered'), 0, 'the first initiation was not answered');

    const done = await waitFor('the handshake with MAC2 to complete', async () => {
      const s = await w.status();
      return count(s, 'handshakes_answered') >= 1 && (await wgHandshake(wg)) > 0 ? s : null;
    }, { timeoutMs: 20_000, intervalMs: 200, signal: w.proc.exitSignal });
    assert.equal((await pinger.exited).code, 0, `the staged ping got through:\n${pinger.output()}`);
    await lab.sh(h.b, ['ping', '-c', '2', '-i', '0.2', '-W', '2', WARREN_IP]);
    await lab.sh(h.a, ['ping', '-c', '2', '-i', '0.2', '-W', '2', WG_IP]);

    // warrend is still "under load": every initiation it answered carried a
    // valid MAC2, so wireguard-go must have decrypted our cookie reply.
    assert.ok(wgLines(wg, /Receiving cookie response from/) >= 1, 'wireguard-go received the cookie reply');
    assert.equal(wgLines(wg, /Could not decrypt invalid cookie response/), 0, 'and could decrypt it');
    assert.ok(drop(done, 'cookie_required') >= 1);
    assert.equal(drop(done, 'bad_mac1'), 0);
    const peer = done.peers[0];
    assert.ok(peer !== undefined && peer.latestHandshake > 0, 'warrend reports the handshake');
    await w.stop();
    await wg.stop();
  });

  void test('wireguard-go under a real initiation flood sends warrend a cookie; warrend retries with MAC2 and connects', async () => {
    const h = await twoHosts(lab, ['a2', 'b2']);
    // The flooder sits in a third namespace with its own address: wireguard-go
    // rate-limits handshakes per source IP while under load, and warrend's
    // must not share the flood's bucket.
    const c = await lab.ns('c2');
    await lab.veth(c, 'eth0', h.b, 'fl0');
    await lab.addr(c, 'eth0', '10.202.0.1/24');
    await lab.addr(h.b, 'fl0', '10.202.0.2/24');

    const kw = genKeyPair();
    const kg = genKeyPair();
    // Only warrend knows an endpoint, so every handshake is warrend's initiation.
    const wg = await startWireguardGo(lab, h.b, {
      ifname: lab.uniqueIfname('wgf'), privateKey: kg.privateKey, listenPort: PORT,
      addresses: [`${WG_IP}/24`],
      peers: [{ publicKey: kw.publicKey, allowedIps: [`${WARREN_IP}/32`] }],
    });
    const w = await startWarrend(lab, h.a, {
      privateKey: kw.privateKey, listenPort: PORT, addresses: [`${WARREN_IP}/24`],
      peers: [{ publicKey: kg.publicKey, allowedIps: [`${WG_IP}/32`], endpoint: `${h.bAddr}:${PORT}` }],
    }, { env: { WARREN_TIMERS: 'test' } });

    const dir = mkdtempSync(join(tmpdir(), `${lab.prefix}-flood-`));
    lab.trackPath(dir);
    const file = join(dir, 'initiations.bin');
    writeFileSync(file, floodInitiations(kg.publicKey));
    const nativeUrl = new URL('../../src/dataplane/io/native.js', import.meta.url).href;
    const flooder = lab.spawn(c, [process.execPath, '--input-type=module', '-e', FLOODER, nativeUrl, file, '10.202.0.2', String(PORT), String(FLOOD_MAX_MS)], { name: 'flooder' });
    await flooder.waitForOutput(/flooding with \d+/, 10_000);

    try {
      // wireguard-go is under load once it turns flood messages away with
      // cookie replies; only then does warrend start its handshake.
      await waitFor('wireguard-go to be under load (cookie replies reaching the flooder)', () => floodStats(flooder).cookies > 0,
        { timeoutMs: 15_000, intervalMs: 100, signal: flooder.exitSignal });

      // Echo requests from warrend's side start its initiations (retried every ~1 s with test timers).
      const pinger = lab.spawn(h.a, ['ping', '-i', '0.2', '-W', '1', '-w', '40', WG_IP], { name: 'ping-from-warrend' });

      const cookied = await waitFor('warrend to consume a cookie reply from wireguard-go', async () => {
        const s = await w.status();
        return count(s, 'cookies_received') >= 1 ? s : null;
      }, { timeoutMs: 15_000, intervalMs: 100, signal: w.proc.exitSignal });
      assert.equal(drop(cookied, 'bad_cookie'), 0, 'every cookie reply warrend got authenticated');

      // While under load, wireguard-go admits an initiation only with a valid
      // MAC2 (then only its per-IP rate limit applies): completing the
      // handshake mid-flood proves warrend's MAC2 is right. (Once the flood
      // stops, wireguard-go would not check MAC2 at all.)
      await waitFor('the handshake to complete during the flood', async () => count(await w.status(), 'handshakes_completed') >= 1,
        { timeoutMs: 15_000, intervalMs: 100, signal: flooder.exitSignal });
      const mid = floodStats(flooder);
      // ...and wireguard-go was still under load then: cookie replies keep
      // reaching the flooder in its next report.
      const next = await waitFor('the next flooder report', () => {
        const now = floodStats(flooder);
        return now.t > mid.t ? now : null;
      }, { timeoutMs: 3_000, intervalMs: 50, signal: flooder.exitSignal });
      assert.ok(next.cookies > mid.cookies, `wireguard-go still under load after the handshake: ${JSON.stringify({ mid, next })}`);
      await flooder.stop('SIGKILL');

      const s = await waitFor('wireguard-go to report the handshake', async () => {
        const st = await w.status();
        return (await wgHandshake(wg)) > 0 ? st : null;
      }, { timeoutMs: 10_000, intervalMs: 200, signal: w.proc.exitSignal });
      await lab.sh(h.a, ['ping', '-c', '3', '-i', '0.2', '-W', '2', WG_IP]);
      assert.ok(count(s, 'cookies_received') >= 1);
      assert.equal(drop(s, 'bad_cookie'), 0);
      assert.ok((s.peers[0]?.latestHandshake ?? 0) > 0, 'warrend reports the handshake');
      console.log(`# mid-flood handshake: flooder had sent ${mid.sent} initiations in ${mid.t} ms and got ${mid.cookies} cookie replies; ` +
        `warrend initiated ${count(s, 'handshakes_initiated')} time(s), received ${count(s, 'cookies_received')} cookie(s)`);
      await pinger.stop();
    } finally {
      await flooder.stop('SIGKILL');
    }
    await w.stop();
    await wg.stop();
  });
});
