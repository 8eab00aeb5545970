/**
 * A full tunnel: a wg-quick file with `AllowedIPs = 0.0.0.0/0, ::/0` carries a
 * client's Internet traffic through a stock wireguard-go server, and the
 * tunnel's own UDP does not loop back into the tunnel.
 *
 *   client (warrend, wg0)                server (wireguard-go)                 internet
 *   eth0 10.202.0.2  ─────── veth ─────── eth0 10.202.0.1                      198.18.0.1, 2001:db8:ff::1
 *   default via 10.202.0.1                lo   10.203.0.1  (the Endpoint)      lo 198.18.5.5, 2001:db8:55::5
 *                                         inet 198.18.0.2 ─────── veth ─────── eth0
 *
 * The client reaches everything only through the server, like a laptop on
 * Wi-Fi. The Endpoint is on the server's lo, not on the client's link, so only
 * the client's default route reaches it: without the fwmark policy rules the
 * encrypted UDP would be routed into wg0 itself. The server forwards and
 * masquerades tunnel traffic but drops whatever it would forward from the
 * client's plain underlay, so a reply from 198.18.5.5 proves the tunnel
 * carried it.
 */
import * as assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Lab } from '../helpers/lab.js';
import { genKeyPair, startWireguardGo } from '../helpers/wg.js';
import { startWarrend } from '../helpers/warrend.js';

const SERVER_ENDPOINT = '10.203.0.1';
const FAR_V4 = '198.18.5.5';
const NEAR_V4 = '198.18.0.1';
const FAR_V6 = '2001:db8:55::5';
const NEAR_V6 = '2001:db8:ff::1';
/** wg-quick's first policy table, and so the mark; free in a fresh namespace. */
const TABLE = 51820;

/** One line per rule, whitespace squeezed. */
async function rules(lab: Lab, ns: string, family: '-4' | '-6'): Promise<string> {
  return (await lab.sh(ns, ['ip', family, 'rule', 'show'])).stdout.replace(/[ \t]+/g, ' ');
}

/** `ip route get ARGS`: the output device. */
async function routeDev(lab: Lab, ns: string, args: string[]): Promise<string> {
  const out = (await lab.sh(ns, ['ip', 'route', 'get', ...args])).stdout;
  const dev = /\bdev (\S+)/.exec(out)?.[1];
  assert.ok(dev !== undefined, `no dev in: ${out}`);
  return dev;
}

/** Packets the server's forward chain dropped from the client's plain underlay. */
async function plainDrops(lab: Lab, server: string): Promise<number> {
  const out = (await lab.sh(server, ['nft', 'list', 'chain', 'inet', 'wlfull', 'forward_plain'])).stdout;
  const m = /iifname "eth0" counter packets (\d+)/.exec(out);
  assert.ok(m, `forward drop counter not found in:\n${out}`);
  return Number(m[1]);
}

async function ping(lab: Lab, ns: string, dst: string, count = 3): Promise<number> {
  return (await lab.sh(ns, ['ping', '-c', String(count), '-i', '0.2', '-W', '2', dst], { allowFail: true })).code;
}

void describe('default route through the tunnel (AllowedIPs = 0.0.0.0/0, ::/0)', () => {
  const lab = Lab.create('defroute');
  after(() => lab.cleanup());

  void test('client traffic goes out through wireguard-go, no loop, and teardown removes the policy routing', async () => {
    const client = await lab.ns('client');
    const server = await lab.ns('server');
    const internet = await lab.ns('internet');

    // Underlay: client — server.
    await lab.veth(client, 'eth0', server, 'eth0');
    await lab.addr(client, 'eth0', '10.202.0.2/24');
    await lab.addr(server, 'eth0', '10.202.0.1/24');
    await lab.addr(client, 'eth0', 'fd7a:5742::2/64');
    await lab.addr(server, 'eth0', 'fd7a:5742::1/64');
    await lab.route(client, 'add', 'default', 'via', '10.202.0.1', 'dev', 'eth0');
    await lab.route(client, 'add', 'default', 'via', 'fd7a:5742::1', 'dev', 'eth0');
    await lab.addr(server, 'lo', `${SERVER_ENDPOINT}/32`);

    // server — internet.
    await lab.veth(server, 'inet', internet, 'eth0');
    await lab.addr(server, 'inet', '198.18.0.2/24');
    await lab.addr(internet, 'eth0', `${NEAR_V4}/24`);
    await lab.addr(server, 'inet', '2001:db8:ff::2/64');
    await lab.addr(internet, 'eth0', `${NEAR_V6}/64`);
    await lab.addr(internet, 'lo', `${FAR_V4}/32`);
    await lab.addr(internet, 'lo', `${FAR_V6}/128`);
    await lab.route(server, 'add', `${FAR_V4}/32`, 'via', NEAR_V4, 'dev', 'inet');
    await lab.route(server, 'add', `${FAR_V6}/128`, 'via', NEAR_V6, 'dev', 'inet');

    await lab.sh(server, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
    const dir = mkdtempSync(join(tmpdir(), `${lab.prefix}-nft-`));
    lab.trackPath(dir);
    const nftFile = join(dir, 'server.nft');
    writeFileSync(nftFile, `
table inet wlfull {
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "inet" ip saddr 10.88.0.0/24 masquerade
    oifname "inet" ip6 saddr fd88::/64 masquerade
  }
  chain forward_plain {
    type filter hook forward priority filter; policy accept;
    iifname "eth0" counter drop
  }
}
`);
    await lab.sh(server, ['nft', '-f', nftFile]);

    // Before the tunnel: the server refuses to forward the client's plain traffic.
    assert.notEqual(await ping(lab, client, FAR_V4, 1), 0, 'plain ping to the internet must not get through the server');
    assert.ok((await plainDrops(lab, server)) > 0, "the server's forward rule dropped the plain ping");

    const kc = genKeyPair();
    const ks = genKeyPair();
    const wg = await startWireguardGo(lab, server, {
      ifname: lab.uniqueIfname('wgs'), privateKey: ks.privateKey, listenPort: 51820,
      addresses: ['10.88.0.1/24', 'fd88::1/64'],
      peers: [{ publicKey: kc.publicKey, allowedIps: ['10.88.0.2/32', 'fd88::2/128'] }],
    });
    const w = await startWarrend(lab, client, {
      privateKey: kc.privateKey,
      addresses: ['10.88.0.2/24', 'fd88::2/64'],
      peers: [{ publicKey: ks.publicKey, allowedIps: ['0.0.0.0/0', '::/0'], endpoint: `${SERVER_ENDPOINT}:51820` }],
    }, { env: { WARREN_TIMERS: 'test' } });

    // wg-quick's policy routing, for both families.
    const st0 = await w.status();
    assert.equal(st0.fwMark, TABLE, 'the UDP socket carries the policy table as its mark');
    for (const family of ['-4', '-6'] as const) {
      const r = await rules(lab, client, family);
      assert.match(r, new RegExp(`^32764: from all lookup main suppress_prefixlength 0`, 'm'), `${family} rules:\n${r}`);
      assert.match(r, new RegExp(`^32765: not from all fwmark 0x${TABLE.toString(16)} lookup ${TABLE}`, 'm'), `${family} rules:\n${r}`);
      const table = (await lab.sh(client, ['ip', family, 'route', 'show', 'table', String(TABLE)])).stdout;
      assert.match(table, /^default dev wg0\b/m, `${family} table ${TABLE}:\n${table}`);
    }
    const mainV4 = (await lab.sh(client, ['ip', '-4', 'route', 'show', 'table', 'main'])).stdout;
    assert.match(mainV4, /^default via 10\.202\.0\.1 dev eth0/m, 'the real default route stays in main');
    assert.doesNotMatch(mainV4, /^default dev wg0/m, '0.0.0.0/0 does not go into main');

    // Where the kernel sends things: the Internet into the tunnel; the endpoint
    // too when unmarked (that is the loop the mark avoids), out of eth0 when marked.
    assert.equal(await routeDev(lab, client, [FAR_V4]), 'wg0');
    assert.equal(await routeDev(lab, client, [FAR_V6]), 'wg0');
    assert.equal(await routeDev(lab, client, [SERVER_ENDPOINT]), 'wg0');
    assert.equal(await routeDev(lab, client, [SERVER_ENDPOINT, 'mark', String(TABLE)]), 'eth0');
    // A specific route in main still wins over the tunnel (suppress_prefixlength 0).
    assert.equal(await routeDev(lab, client, ['10.202.0.1']), 'eth0');

    const dropsBefore = await plainDrops(lab, server);
    const serverRxBefore = (await wg.show()).peers[0]?.rx ?? 0;

    assert.equal(await ping(lab, client, FAR_V4), 0, `ping ${FAR_V4} (not on any connected network) through the tunnel`);
    assert.equal(await ping(lab, client, NEAR_V4), 0, `ping ${NEAR_V4} through the tunnel`);
    assert.equal(await ping(lab, client, NEAR_V6), 0, `ping ${NEAR_V6} through the tunnel`);
    assert.equal(await ping(lab, client, FAR_V6), 0, `ping ${FAR_V6} through the tunnel`);

    assert.equal(await plainDrops(lab, server), dropsBefore, 'nothing went the plain way (it would have been dropped)');
    const peerAtServer = (await wg.show()).peers[0];
    assert.ok(peerAtServer !== undefined);
    assert.ok(peerAtServer.latestHandshake > 0, 'wireguard-go has a handshake with the client');
    assert.ok(peerAtServer.rx > serverRxBefore + 12 * 84, `the encrypted UDP reached the server (rx ${serverRxBefore} → ${peerAtServer.rx})`);
    assert.match(peerAtServer.endpoint ?? '', /^10\.202\.0\.2:\d+$/, 'the server sees the client on its underlay address');

    const st = await w.status();
    const peer = st.peers[0];
    assert.ok(peer !== undefined);
    assert.equal(peer.endpoint, `${SERVER_ENDPOINT}:51820`, "warrend's peer endpoint is the server's underlay address");
    assert.ok(peer.latestHandshake > 0);
    // No loop: a looping datagram would be read back from wg0 and sent again, without end.
    const tx = st.counters['tx_packets'] ?? 0;
    assert.ok(tx >= 12 && tx < 100, `warrend sent ${tx} data packets for 12 pings (a loop would send many more)`);
    const tunRx = JSON.parse((await lab.sh(client, ['ip', '-j', '-s', 'link', 'show', 'wg0'])).stdout) as Array<{ stats64: { tx: { packets: number } } }>;
    const fromTun = tunRx[0]?.stats64.tx.packets ?? -1;
    assert.ok(fromTun < 200, `wg0 carried ${fromTun} packets into warrend (a loop would carry many more)`);

    // SIGTERM: rules, table routes and the TUN go; the Internet is unreachable again.
    await w.stop();
    assert.equal((await w.proc.exited).code, 0, w.proc.tail());
    for (const family of ['-4', '-6'] as const) {
      const r = await rules(lab, client, family);
      assert.doesNotMatch(r, /suppress_prefixlength/, `${family} rules after stop:\n${r}`);
      assert.doesNotMatch(r, /fwmark/, `${family} rules after stop:\n${r}`);
      const table = await lab.sh(client, ['ip', family, 'route', 'show', 'table', String(TABLE)], { allowFail: true });
      assert.equal(table.stdout.trim(), '', `${family} table ${TABLE} after stop`);
    }
    assert.notEqual((await lab.sh(client, ['ip', 'link', 'show', 'wg0'], { allowFail: true })).code, 0, 'wg0 is gone');
    assert.match((await lab.sh(client, ['ip', '-4', 'route', 'show'])).stdout, /^default via 10\.202\.0\.1 dev eth0/m, 'the real default route is untouched');
    assert.equal(await routeDev(lab, client, [FAR_V4]), 'eth0');
    assert.notEqual(await ping(lab, client, FAR_V4, 1), 0, 'without the tunnel the server drops the traffic again');
  });
});
