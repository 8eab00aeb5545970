/**
 * Netcheck's decisions on fake STUN answers: mapping varies only when two
 * different server addresses saw different mappings; a region without STUN
 * answers is measured over its relay; home region hysteresis.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseHome, mappingVaries, runNetcheck, type RegionLatency } from '../../src/nat/netcheck.js';
import type { StunResult } from '../../src/nat/stun-client.js';
import type { RelayRegion } from '../../src/wire/control.js';
import { lanEndpoints } from '../../src/nat/traversal.js';
import type { NetworkInterfaceInfo } from 'node:os';

const res = (server: string, mapped: string, rttMs = 10): StunResult => {
  const [ip, port] = mapped.split(':');
  return { server: { ip: server, port: 3478 }, mapped: { ip: ip!, port: Number(port) }, rttMs };
};

test('mapping varies: needs two server addresses; same mapping = easy, different = hard', () => {
  assert.equal(mappingVaries([]), null);
  assert.equal(mappingVaries([res('1.1.1.1', '5.5.5.5:1000'), res('1.1.1.1', '5.5.5.5:1001')]), null, 'one server address only');
  assert.equal(mappingVaries([res('1.1.1.1', '5.5.5.5:1000'), res('2.2.2.2', '5.5.5.5:1000')]), false);
  assert.equal(mappingVaries([res('1.1.1.1', '5.5.5.5:1000'), res('2.2.2.2', '5.5.5.5:2000')]), true);
  assert.equal(mappingVaries([res('1.1.1.1', '5.5.5.5:1000'), res('2.2.2.2', '6.6.6.6:1000')]), true);
});

const region = (id: number, code: string, stun: string[]): RelayRegion => ({
  id, code, name: code, nodes: [{ name: `${code}1`, url: `https://${code}.example`, fingerprint: null, stun }],
});

test('runNetcheck: public endpoint, latency per region (STUN, else relay), preferred region', async () => {
  const regions = [region(1, 'near', ['10.0.0.1:3478', '10.0.0.2:3478']), region(2, 'far', ['10.0.1.1:3478']), region(3, 'tcp-only', ['10.0.2.1:3478'])];
  const report = await runNetcheck({
    regions,
    stun: (s) => {
      if (s.ip === '10.0.2.1') return Promise.reject(new Error('timeout'));
      const rtt = s.ip.startsWith('10.0.0.') ? 4 : 40;
      return Promise.resolve(res(s.ip, '198.51.100.9:41641', rtt));
    },
    relayPing: (id) => (id === 3 ? Promise.resolve(25) : Promise.reject(new Error('unused'))),
    now: () => 1234,
  });
  assert.equal(report.udp, true);
  assert.equal(report.publicIPv4, '198.51.100.9:41641');
  assert.equal(report.publicIPv6, null);
  assert.equal(report.mappingVaries, false);
  assert.deepEqual(report.regions, [
    { id: 1, code: 'near', latencyMs: 4, via: 'stun' },
    { id: 2, code: 'far', latencyMs: 40, via: 'stun' },
    { id: 3, code: 'tcp-only', latencyMs: 25, via: 'relay' },
  ]);
  assert.equal(report.preferredRegion, 1);
  assert.equal(report.at, 1234);
});

test('runNetcheck with UDP blocked: udp false, regions measured over the relay, nothing public', async () => {
  const report = await runNetcheck({
    regions: [region(1, 'a', ['10.0.0.1:3478'])],
    stun: () => Promise.reject(new Error('timeout')),
    relayPing: () => Promise.resolve(7),
  });
  assert.equal(report.udp, false);
  assert.equal(report.publicIPv4, null);
  assert.equal(report.mappingVaries, null);
  assert.deepEqual(report.regions, [{ id: 1, code: 'a', latencyMs: 7, via: 'relay' }]);
  assert.equal(report.preferredRegion, 1);
});

test('home region: hysteresis keeps the current one unless another is clearly better', () => {
  const l = (a: number | null, b: number | null): RegionLatency[] => [
    { id: 1, code: 'a', latencyMs: a, via: a === null ? null : 'stun' },
    { id: 2, code: 'b', latencyMs: b, via: b === null ? null : 'stun' },
  ];
  assert.equal(chooseHome(0, l(10, 20)), 1, 'no home yet: the best');
  assert.equal(chooseHome(2, l(10, 12)), 2, 'slightly better is not enough');
  assert.equal(chooseHome(2, l(10, 40)), 1, 'clearly better wins');
  assert.equal(chooseHome(2, l(1, 3)), 2, 'less than 5 ms apart: stay');
  assert.equal(chooseHome(2, l(30, null)), 1, 'home unreachable: move');
  assert.equal(chooseHome(2, l(null, null)), 2, 'nothing reachable: keep what we have');
});

test('LAN candidates: interface addresses with the data port, never carrier-NAT space, the tunnel or loopback', () => {
  const a = (address: string, family: 'IPv4' | 'IPv6', internal = false): NetworkInterfaceInfo => ({
    address, family, internal, netmask: family === 'IPv4' ? '255.255.255.0' : 'ffff:ffff:ffff:ffff::', mac: '00:00:00:00:00:00', cidr: null,
    ...(family === 'IPv6' ? { scopeid: 0 } : {}),
  }) as NetworkInterfaceInfo;
  const eps = lanEndpoints(41641, 'warren0', {
    lo: [a('127.0.0.1', 'IPv4', true)],
    eth0: [a('192.168.1.20', 'IPv4'), a('fe80::1', 'IPv6'), a('2001:db8::20', 'IPv6')],
    wwan0: [a('100.72.3.4', 'IPv4')], // a phone's carrier-NAT address: only the inside of someone else's NAT
    warren0: [a('100.64.0.7', 'IPv4')],
  });
  assert.deepEqual(eps, ['192.168.1.20:41641', '[2001:db8::20]:41641']);
});
