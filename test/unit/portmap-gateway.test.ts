/**
 * Finding the gateway (/proc/net/route parsing, our address toward it), the
 * epoch rule that tells a restarted gateway (RFC 6887 §8.5), and the memory
 * of the granted port in the state directory.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { discoverGateway, localAddressToward, parseProcNetRoute } from '../../src/nat/portmap/gateway.js';
import { EpochTracker } from '../../src/nat/portmap/epoch.js';
import { loadMemory, saveMemory } from '../../src/nat/portmap/memory.js';

const HEADER = 'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT';
const row = (iface: string, dest: string, gw: string, flags: string, metric: number, mask: string): string =>
  `${iface}\t${dest}\t${gw}\t${flags}\t0\t0\t${metric}\t${mask}\t0\t0\t0`;

test('/proc/net/route: the default route\'s gateway (little-endian hex)', () => {
  const text = [HEADER,
    row('eth0', '00000000', '0101A8C0', '0003', 100, '00000000'),
    row('eth0', '0001A8C0', '00000000', '0001', 100, '00FFFFFF'),
  ].join('\n') + '\n';
  assert.deepEqual(parseProcNetRoute(text), { gateway: '192.168.1.1', iface: 'eth0' });
});

test('/proc/net/route: lowest metric wins; routes that are down, gateway-less or not default are skipped', () => {
  const text = [HEADER,
    row('wlan0', '00000000', '0100000A', '0003', 600, '00000000'),
    row('eth0', '00000000', '0101A8C0', '0003', 100, '00000000'),
    row('eth1', '00000000', '0102A8C0', '0002', 1, '00000000'), // not up
    row('tun0', '00000000', '00000000', '0001', 0, '00000000'), // no gateway (device route)
    row('eth2', '00000000', '0103A8C0', '0003', 0, '000000FF'), // not a /0
  ].join('\n');
  assert.deepEqual(parseProcNetRoute(text), { gateway: '192.168.1.1', iface: 'eth0' });
});

test('/proc/net/route: nothing usable or garbage gives null', () => {
  assert.equal(parseProcNetRoute(''), null);
  assert.equal(parseProcNetRoute(HEADER), null);
  assert.equal(parseProcNetRoute(`${HEADER}\n${row('eth0', '00000000', 'ZZZZZZZZ', '0003', 0, '00000000')}`), null);
  assert.equal(parseProcNetRoute(`${HEADER}\n${row('eth0', '00000000', '0101A8C0', 'xx', 0, '00000000')}`), null);
  assert.equal(parseProcNetRoute('\u0000\n\t\t\t\t\t\t\t\t\t'), null);
});

test('discoverGateway: from a route file; our address toward it from a connected socket', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'warren-route-'));
  const f = join(dir, 'route');
  // 127.0.0.1 as the "gateway": the kernel picks 127.0.0.1 as our address toward it.
  writeFileSync(f, `${HEADER}\n${row('lo', '00000000', '0100007F', '0003', 0, '00000000')}\n`);
  assert.deepEqual(await discoverGateway(f), { gateway: '127.0.0.1', iface: 'lo', local: '127.0.0.1' });
  assert.equal(await discoverGateway(join(dir, 'missing')), null);
  assert.equal(await localAddressToward('127.0.0.5'), '127.0.0.1');
});

test('epoch: steady clocks are fine; a server epoch going back means lost state', () => {
  const e = new EpochTracker();
  assert.equal(e.observe(100, 0), true, 'first observation');
  assert.equal(e.observe(110, 10_000), true, 'both moved 10 s');
  assert.equal(e.observe(110, 10_500), true, 'server granularity is a second');
  assert.equal(e.observe(109, 11_000), true, 'one second back is tolerated');
  assert.equal(e.observe(3, 12_000), false, 'restarted: epoch went back');
  assert.equal(e.observe(5, 14_000), true, 'steady again from the new epoch');
});

test('epoch: a server clock that stalls or races relative to ours means lost state', () => {
  const stalled = new EpochTracker();
  stalled.observe(1000, 0);
  assert.equal(stalled.observe(1001, 60_000), false, 'we moved 60 s, it moved 1 s: it rebooted and counted up again');
  const racing = new EpochTracker();
  racing.observe(1000, 0);
  assert.equal(racing.observe(1100, 10_000), false, 'it moved 100 s in our 10 s');
  const fine = new EpochTracker();
  fine.observe(1000, 0);
  assert.equal(fine.observe(1063, 60_000), true, 'within 1/16 plus 2 s');
  fine.reset();
  assert.equal(fine.observe(0, 61_000), true, 'after reset the next is a first observation');
});

test('memory: the granted port and PCP nonce survive; corrupt files are no memory', () => {
  const dir = mkdtempSync(join(tmpdir(), 'warren-pm-'));
  const f = join(dir, 'portmap.json');
  assert.equal(loadMemory(f), null);
  saveMemory(f, { externalPort: 41642, pcpNonce: '000102030405060708090a0b' });
  assert.deepEqual(loadMemory(f), { externalPort: 41642, pcpNonce: '000102030405060708090a0b' });
  assert.equal(statSync(f).mode & 0o777, 0o600);
  for (const bad of ['{', '[]', '{"externalPort":0}', '{"externalPort":70000}', '{"externalPort":"1"}', 'null']) {
    writeFileSync(f, bad);
    assert.equal(loadMemory(f), null, bad);
  }
  writeFileSync(f, '{"externalPort":1234,"pcpNonce":"zz"}');
  assert.deepEqual(loadMemory(f), { externalPort: 1234, pcpNonce: null });
});
