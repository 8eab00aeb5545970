import { test } from 'node:test';
import { deepEqual, equal } from 'node:assert/strict';
import { ago, formatBytes, formatStatus, formatStatusJson, humanTime } from '../../src/cli/status-format.js';
import type { DeviceStatus } from '../../src/dataplane/status.js';

const NOW_MS = 1_700_000_000_500; // unix ms; the second is 1_700_000_000
const NOW = 1_700_000_000;

const KEY_A = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
const KEY_B = 'HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=';
const KEY_C = 'gN65BkIKy1eCE9pP1wdc8ROUtkHLF2PfAqYdyYBz6EA=';
const KEY_D = 'TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=';

function fixture(): DeviceStatus {
  return {
    publicKey: KEY_A,
    listenPort: 51820,
    fwMark: 0xca6c,
    tun: 'wg0',
    peers: [
      {
        publicKey: KEY_C,
        endpoint: null,
        allowedIps: [],
        latestHandshake: 0,
        rxBytes: 0,
        txBytes: 0,
        persistentKeepalive: 0,
        presharedKey: false,
      },
      {
        publicKey: KEY_B,
        endpoint: '10.0.0.2:51820',
        allowedIps: ['10.9.0.2/32', 'fd00::2/128'],
        latestHandshake: NOW - 63,
        rxBytes: 1239,
        txBytes: 3.5 * 1024 * 1024,
        persistentKeepalive: 25,
        presharedKey: false,
      },
      {
        publicKey: KEY_D,
        endpoint: '[fd00::4]:41641',
        allowedIps: ['10.9.0.4/32'],
        latestHandshake: NOW - 5,
        rxBytes: 100,
        txBytes: 0,
        persistentKeepalive: 0,
        presharedKey: true,
      },
    ],
    drops: { replay: 0, no_session: 2, bad_mac: 7 },
    counters: { rx_packets: 10, tx_packets: 12 },
  };
}

void test('formatStatus renders like wg show, newest handshake first', () => {
  const expected = [
    'interface: wg0',
    `  public key: ${KEY_A}`,
    '  listening port: 51820',
    '  fwmark: 0xca6c',
    '  drops: bad_mac=7, no_session=2',
    '',
    `peer: ${KEY_D}`,
    '  preshared key: (hidden)',
    '  endpoint: [fd00::4]:41641',
    '  allowed ips: 10.9.0.4/32',
    '  latest handshake: 5 seconds ago',
    '  transfer: 100 B received, 0 B sent',
    '',
    `peer: ${KEY_B}`,
    '  endpoint: 10.0.0.2:51820',
    '  allowed ips: 10.9.0.2/32, fd00::2/128',
    '  latest handshake: 1 minute, 3 seconds ago',
    '  transfer: 1.21 KiB received, 3.50 MiB sent',
    '  persistent keepalive: every 25 seconds',
    '',
    `peer: ${KEY_C}`,
    '  allowed ips: (none)',
    '',
  ].join('\n');
  equal(formatStatus(fixture(), NOW_MS), expected);
});

void test('formatStatus omits fwmark, port and drops when zero', () => {
  const s: DeviceStatus = { ...fixture(), fwMark: 0, listenPort: 0, drops: { replay: 0 }, peers: [] };
  equal(formatStatus(s, NOW_MS), `interface: wg0\n  public key: ${KEY_A}\n`);
});

void test('humanTime and ago use wg wording', () => {
  equal(humanTime(1), '1 second');
  equal(humanTime(60), '1 minute');
  equal(humanTime(3600 * 2 + 1), '2 hours, 1 second');
  equal(humanTime(365 * 86400 + 86400 + 61), '1 year, 1 day, 1 minute, 1 second');
  equal(ago(NOW, NOW), 'Now');
  equal(ago(NOW - 120, NOW), '2 minutes ago');
  equal(ago(NOW + 10, NOW), '(System clock wound backward; connection problems may ensue.)');
});

void test('formatBytes matches wg units', () => {
  equal(formatBytes(0), '0 B');
  equal(formatBytes(1023), '1023 B');
  equal(formatBytes(1024), '1.00 KiB');
  equal(formatBytes(1024 * 1024), '1.00 MiB');
  equal(formatBytes(5 * 1024 ** 3), '5.00 GiB');
  equal(formatBytes(3 * 1024 ** 4), '3.00 TiB');
  equal(formatBytes(2000 * 1024 ** 4), '2000.00 TiB');
});

void test('formatStatusJson is stable: declaration order, sorted counters, full keys', () => {
  const s = fixture();
  const shuffled = JSON.parse(
    JSON.stringify({ counters: s.counters, drops: s.drops, peers: s.peers, tun: s.tun, fwMark: s.fwMark, listenPort: s.listenPort, publicKey: s.publicKey }),
  ) as DeviceStatus;
  const out = formatStatusJson(shuffled);
  equal(out, formatStatusJson(s));
  deepEqual(JSON.parse(out), s);
  deepEqual(Object.keys(JSON.parse(out) as object), ['publicKey', 'listenPort', 'fwMark', 'tun', 'peers', 'drops', 'counters']);
  deepEqual(Object.keys((JSON.parse(out) as DeviceStatus).drops), ['bad_mac', 'no_session', 'replay']);
  equal(out.endsWith('}\n'), true);
  equal(out.includes(`"publicKey": "${KEY_A}"`), true);
});
