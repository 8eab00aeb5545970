/**
 * warrend restarted with its wall clock an hour behind (libfaketime) still
 * completes a handshake it initiates with a wireguard-go that kept running.
 *
 * wireguard-go refuses an initiation whose TAI64N timestamp is not later than
 * the last one it accepted from that peer (replay protection), so a box that
 * reboots with a lagging clock (a Pi has no RTC) would be locked out until its
 * clock caught up. warrend persists the highest timestamp it sent in its state
 * directory (`handshake-timestamp`) and sends max(now, last + 1 ns).
 *
 * The control shows the test means something: the same key with the same
 * faked clock but a fresh state directory is refused by wireguard-go.
 */
import * as assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Lab, WaitTimeoutError, twoHosts, waitFor } from '../helpers/lab.js';
import { genKeyPair, startWireguardGo } from '../helpers/wg.js';
import type { WgGo } from '../helpers/wg.js';
import { startWarrend } from '../helpers/warrend.js';
import type { Warrend, WarrendSpec } from '../helpers/warrend.js';
import { tai64nToNs, TAI64N_LEN } from '../../src/crypto/tai64n.js';

const PORT = 51820;
const WARREN_IP = '10.77.0.1';
const WG_IP = '10.77.0.2';
/** libfaketime: wall clock one hour behind; monotonic clock (timers) left alone. */
const FAKETIME = ['faketime', '-f', '-1h'];
const FAKETIME_ENV = { FAKETIME_DONT_FAKE_MONOTONIC: '1' };
const HOUR_NS = 3600n * 1_000_000_000n;
const SECOND_NS = 1_000_000_000n;
/** How long the control gives the refused warrend to get a handshake through. */
const CONTROL_WINDOW_MS = 8_000;

const count = (w: Warrend, key: string): Promise<number> => w.status().then((s) => s.counters[key] ?? 0);

/** The TAI64N warrend persisted in its state directory, as Unix ns. */
function persistedNs(dir: string): bigint {
  const raw = readFileSync(join(dir, 'state', 'handshake-timestamp'));
  assert.equal(raw.length, TAI64N_LEN);
  return tai64nToNs(new Uint8Array(raw));
}

const nowNs = (): bigint => BigInt(Date.now()) * 1_000_000n;

/** wireguard-go's view of its one peer. */
async function wgPeer(wg: WgGo): Promise<{ latestHandshake: number; rx: number }> {
  const p = (await wg.show()).peers[0];
  return { latestHandshake: p?.latestHandshake ?? 0, rx: p?.rx ?? 0 };
}

/** Initiations from warrend that wireguard-go refused (LOG_LEVEL=verbose). */
function refusedByWg(wg: WgGo, from: string): number {
  return wg.proc.output().split('\n').filter((l) => l.includes(`Received invalid initiation message from ${from}`)).length;
}

void describe('warrend restarted under faketime one hour behind', () => {
  const lab = Lab.create('faketime');
  after(() => lab.cleanup());

  void test('libfaketime fakes node\'s wall clock here and leaves its timers alone', async () => {
    const ns = await lab.ns('ft');
    const script = 'const t0 = performance.now(); setTimeout(() => console.log(Date.now(), Math.round(performance.now() - t0)), 200);';
    const { stdout } = await lab.sh(ns, [...FAKETIME, process.execPath, '-e', script], { env: FAKETIME_ENV });
    const [faked = '', elapsed = ''] = stdout.trim().split(' ');
    const behindMs = Date.now() - Number(faked);
    assert.ok(behindMs > 3_590_000 && behindMs < 3_630_000, `wall clock ~1 h behind (${behindMs} ms)`);
    assert.ok(Number(elapsed) >= 190 && Number(elapsed) < 5_000, `a 200 ms timer takes ~200 ms (${elapsed})`);
  });

  void test('a persisted handshake timestamp carries a faked warrend past wireguard-go\'s replay check; without it, it is refused', async () => {
    const h = await twoHosts(lab);
    const kw = genKeyPair();
    const kg = genKeyPair();
    // wireguard-go has no endpoint for warrend: every handshake is warrend's initiation.
    const wg = await startWireguardGo(lab, h.b, {
      ifname: lab.uniqueIfname('wgt'), privateKey: kg.privateKey, listenPort: PORT,
      addresses: [`${WG_IP}/24`],
      peers: [{ publicKey: kw.publicKey, allowedIps: [`${WARREN_IP}/32`] }],
    });
    const spec: WarrendSpec = {
      privateKey: kw.privateKey, listenPort: PORT, addresses: [`${WARREN_IP}/24`],
      peers: [{ publicKey: kg.publicKey, allowedIps: [`${WG_IP}/32`], endpoint: `${h.bAddr}:${PORT}` }],
    };
    const env = { WARREN_TIMERS: 'test' };
    const dir = mkdtempSync(join(tmpdir(), `${lab.prefix}-state-`));
    lab.trackPath(dir);

    // 1. Real clock: warrend initiates, the handshake completes, the timestamp is persisted.
    const w1 = await startWarrend(lab, h.a, spec, { dir, env, name: 'warrend-real' });
    await lab.sh(h.a, ['ping', '-c', '2', '-i', '0.2', '-W', '3', WG_IP]);
    assert.ok((await count(w1, 'handshakes_completed')) >= 1);
    const first = await wgPeer(wg);
    assert.ok(first.latestHandshake > 0, 'wireguard-go has the handshake');
    const ts1 = persistedNs(dir);
    assert.ok(ts1 > nowNs() - 60n * SECOND_NS && ts1 <= nowNs(), `persisted timestamp is the real time (${ts1})`);
    // Let warrend's passive keepalive reach wireguard-go, so that wireguard-go
    // (which sent the last data) has no reason to start a handshake itself
    // while the control runs.
    await waitFor('warrend\'s keepalive to reach wireguard-go', async () => (await wgPeer(wg)).rx > first.rx,
      { timeoutMs: 10_000, intervalMs: 100 });
    await w1.stop();
    assert.equal((await w1.proc.exited).code, 0, w1.proc.tail());

    // 2. Control: the same key and the faked clock, but a fresh state directory.
    const fresh = mkdtempSync(join(tmpdir(), `${lab.prefix}-fresh-`));
    lab.trackPath(fresh);
    const refusedBefore = refusedByWg(wg, `${h.aAddr}:${PORT}`);
    const wc = await startWarrend(lab, h.a, spec, { dir: fresh, env: { ...env, ...FAKETIME_ENV }, wrap: FAKETIME, name: 'warrend-faked-fresh' });
    const pinger = lab.spawn(h.a, ['ping', '-i', '0.5', '-W', '1', WG_IP], { name: 'ping-control' });
    await assert.rejects(
      waitFor('a handshake with the faked, stateless warrend (must not happen)', async () => (await count(wc, 'handshakes_completed')) >= 1,
        { timeoutMs: CONTROL_WINDOW_MS, intervalMs: 200, signal: wc.proc.exitSignal }),
      WaitTimeoutError,
    );
    await pinger.stop();
    const control = await wc.status();
    assert.ok((control.counters['handshakes_initiated'] ?? 0) >= 3, `warrend kept initiating: ${JSON.stringify(control.counters)}`);
    assert.equal(control.counters['handshakes_answered'] ?? 0, 0, 'wireguard-go did not initiate either');
    assert.ok(refusedByWg(wg, `${h.aAddr}:${PORT}`) - refusedBefore >= 3, 'wireguard-go logged the refused initiations');
    assert.equal((await wgPeer(wg)).latestHandshake, first.latestHandshake, 'no new handshake on wireguard-go');
    // The faked clock really reached warrend's timestamps: an hour behind.
    const tsc = persistedNs(fresh);
    assert.ok(tsc < ts1 - HOUR_NS + 60n * SECOND_NS && tsc > ts1 - HOUR_NS - 60n * SECOND_NS,
      `the stateless warrend's timestamps are an hour old (${(ts1 - tsc) / SECOND_NS} s behind)`);
    await wc.stop();

    // 3. The faked clock with the persisted state directory: max(now, last + 1) wins.
    const w2 = await startWarrend(lab, h.a, spec, { dir, env: { ...env, ...FAKETIME_ENV }, wrap: FAKETIME, name: 'warrend-faked' });
    const ping = await lab.sh(h.a, ['ping', '-c', '3', '-i', '0.2', '-W', '3', WG_IP], { allowFail: true });
    assert.equal(ping.code, 0, `ping through the faked warrend with its persisted state: ${ping.stdout}\n` +
      `warrend: ${JSON.stringify((await w2.status()).counters)}`);
    assert.ok((await count(w2, 'handshakes_completed')) >= 1, 'the faked warrend completed its handshake');
    assert.equal(await count(w2, 'handshakes_answered'), 0, 'as the initiator');
    const second = await wgPeer(wg);
    assert.ok(second.latestHandshake > first.latestHandshake, 'wireguard-go accepted a new handshake');
    const ts2 = persistedNs(dir);
    assert.ok(ts2 > ts1 && ts2 - ts1 < SECOND_NS, `the new timestamps continue from the persisted one (+${ts2 - ts1} ns), not from the faked clock`);
    await w2.stop();
    await wg.stop();
  });
});
