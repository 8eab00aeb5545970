/**
 * warrend ↔ stock wireguard-go (Debian's 0.0.20220316) in two namespaces:
 * handshakes initiated from each side, inner IPv4 and IPv6, 20 MB TCP each way
 * with checksums, a preshared key, and a wrong public key that gets no session.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Lab, twoHosts, waitFor, type TwoHosts } from '../helpers/lab.js';
import { genKeyPair, genPsk, startWireguardGo, type WgGo, type KeyPair } from '../helpers/wg.js';
import { startWarrend, type Warrend } from '../helpers/warrend.js';
import { tcpTransfer } from '../helpers/tcp-transfer.js';

const MB20 = 20 * 1024 * 1024;
let lab: Lab;
let h: TwoHosts;

before(async () => {
  lab = Lab.create('interop');
  h = await twoHosts(lab);
});
after(async () => {
  await lab?.cleanup();
});

interface Pair {
  w: Warrend;
  wg: WgGo;
  ka: KeyPair;
  kb: KeyPair;
}

async function pair(opts: { psk?: string; wrongKeyOnWarrend?: boolean; tun: string; port: number; net: number } ): Promise<Pair> {
  const ka = genKeyPair(), kb = genKeyPair();
  const n = opts.net;
  const wg = await startWireguardGo(lab, h.b, {
    ifname: lab.uniqueIfname('wgi'), privateKey: kb.privateKey, listenPort: opts.port,
    addresses: [`10.${n}.0.2/24`, `fd${n}::2/64`],
    peers: [{ publicKey: ka.publicKey, presharedKey: opts.psk, allowedIps: [`10.${n}.0.1/32`, `fd${n}::1/128`], endpoint: `${h.aAddr}:${opts.port}` }],
  });
  const w = await startWarrend(lab, h.a, {
    privateKey: ka.privateKey, listenPort: opts.port, addresses: [`10.${n}.0.1/24`, `fd${n}::1/64`],
    peers: [{
      publicKey: opts.wrongKeyOnWarrend ? genKeyPair().publicKey : kb.publicKey, presharedKey: opts.psk,
      allowedIps: [`10.${n}.0.2/32`, `fd${n}::2/128`], endpoint: `${h.bAddr}:${opts.port}`,
    }],
  }, { tun: opts.tun, env: { WARREN_TIMERS: 'test' } });
  return { w, wg, ka, kb };
}

async function ping(ns: string, addr: string, count = 3): Promise<boolean> {
  const r = await lab.sh(ns, ['ping', '-c', String(count), '-W', '2', '-i', '0.2', addr], { allowFail: true });
  return r.code === 0;
}

async function stopPair(p: Pair): Promise<void> {
  await p.w.stop();
  await p.wg.stop();
}

test('warrend initiates: handshake, IPv4 and IPv6 both ways, 20 MB TCP each way', async () => {
  const p = await pair({ tun: 'wga1', port: 51821, net: 71 });
  try {
    assert.ok(await ping(h.a, '10.71.0.2'), 'IPv4 ping warrend → wireguard-go');
    const st = await p.w.status();
    assert.equal(st.counters['handshakes_initiated']! >= 1, true);
    assert.equal(st.counters['handshakes_answered'], 0, 'warrend initiated this session');
    assert.ok(await ping(h.b, '10.71.0.1'), 'IPv4 ping wireguard-go → warrend');
    assert.ok(await ping(h.a, 'fd71::2'), 'IPv6 ping warrend → wireguard-go');
    assert.ok(await ping(h.b, 'fd71::1'), 'IPv6 ping wireguard-go → warrend');

    const up = await tcpTransfer(lab, h.a, h.b, '10.71.0.2', 5001, MB20);
    assert.equal(up.receivedBytes, MB20);
    assert.equal(up.received, up.sent, 'checksum warrend → wireguard-go');
    const down = await tcpTransfer(lab, h.b, h.a, 'fd71::1', 5002, MB20);
    assert.equal(down.receivedBytes, MB20);
    assert.equal(down.received, down.sent, 'checksum wireguard-go → warrend');

    const wgs = await p.wg.show();
    assert.ok(wgs.peers[0]!.latestHandshake > 0, 'wireguard-go saw a handshake');
    const st2 = await p.w.status();
    assert.ok(st2.peers[0]!.rxBytes > MB20 && st2.peers[0]!.txBytes > MB20, 'byte counters');
    assert.equal(st2.drops['decrypt'], 0);
  } finally {
    await stopPair(p);
  }
});

test('wireguard-go initiates: warrend answers, traffic flows both ways', async () => {
  const p = await pair({ tun: 'wga2', port: 51822, net: 72 });
  try {
    assert.ok(await ping(h.b, '10.72.0.1'), 'IPv4 ping wireguard-go → warrend');
    const st = await p.w.status();
    assert.ok(st.counters['handshakes_answered']! >= 1, 'warrend answered an initiation');
    assert.ok(await ping(h.a, 'fd72::2'), 'IPv6 ping warrend → wireguard-go');
  } finally {
    await stopPair(p);
  }
});

test('preshared key: handshake and 20 MB transfer with matching checksum', async () => {
  const p = await pair({ tun: 'wga3', port: 51823, net: 73, psk: genPsk() });
  try {
    assert.ok(await ping(h.a, '10.73.0.2'));
    const st = await p.w.status();
    assert.equal(st.peers[0]!.presharedKey, true);
    const up = await tcpTransfer(lab, h.a, h.b, '10.73.0.2', 5003, MB20);
    assert.equal(up.received, up.sent);
    assert.equal((await p.wg.show()).peers[0]!.hasPresharedKey, true);
  } finally {
    await stopPair(p);
  }
});

test('a peer with the wrong public key gets no session, and the log says why', async () => {
  const p = await pair({ tun: 'wga4', port: 51824, net: 74, wrongKeyOnWarrend: true });
  try {
    // wireguard-go initiates with its real key: warrend does not know it.
    assert.equal(await ping(h.b, '10.74.0.1', 2), false);
    await waitFor('warrend to log the unknown key', () => /unknown public key/.test(p.w.proc.output()), { timeoutMs: 15_000 });
    // warrend initiates to a key wireguard-go does not have: no response ever.
    assert.equal(await ping(h.a, '10.74.0.2', 2), false);
    const st = await p.w.status();
    assert.equal(st.peers[0]!.latestHandshake, 0);
    assert.ok(st.drops['unknown_peer']! >= 1);
    assert.equal(st.counters['handshakes_completed'], 0);
  } finally {
    await stopPair(p);
  }
});
