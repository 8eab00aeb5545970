/**
 * Where the port mapper meets the rest of warrend: the test-only knobs
 * (WARREN_PORTMAP_ONLY / WARREN_PORTMAP_LIFETIME need WARREN_TEST_MODE=1),
 * Traversal's endpoint order (static, mapped, STUN, LAN) and its reaction
 * to a mapping appearing and going, netcheck's portMapping from the mapper,
 * and the CLI text of netcheck and status.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { testKnobs } from '../../src/daemon/test-mode.js';
import { Traversal, type PortMapSource, type TraversalEngine } from '../../src/nat/traversal.js';
import { TEST_PATH_TIMERS } from '../../src/nat/path-timers.js';
import type { PortMappingReport } from '../../src/nat/netcheck.js';
import { generatePrivateKey, publicKeyOf } from '../../src/crypto/x25519.js';
import { formatNetcheck } from '../../src/cli/nat-commands.js';
import { formatMeshStatus } from '../../src/cli/mesh-status-format.js';
import type { MeshStatus } from '../../src/control/mesh-status.js';

test('knobs: defaults, the test profile\'s 5 s poll, and the test-only guard', () => {
  assert.deepEqual(testKnobs({}).portmap, { only: null, lifetimeSec: 7200, pollMs: 60_000 });
  assert.deepEqual(testKnobs({ WARREN_TEST_MODE: '1', WARREN_TIMERS: 'test', WARREN_PORTMAP_ONLY: 'upnp', WARREN_PORTMAP_LIFETIME: '10' }).portmap,
    { only: 'upnp', lifetimeSec: 10, pollMs: 5000 });
  assert.throws(() => testKnobs({ WARREN_PORTMAP_ONLY: 'pcp' }), /test-only/);
  assert.throws(() => testKnobs({ WARREN_PORTMAP_LIFETIME: '10' }), /test-only/);
  assert.throws(() => testKnobs({ WARREN_TEST_MODE: '1', WARREN_PORTMAP_ONLY: 'igd' }), /upnp, natpmp or pcp/);
  for (const bad of ['0', '-1', '1.5', 'x', '86401']) assert.throws(() => testKnobs({ WARREN_TEST_MODE: '1', WARREN_PORTMAP_LIFETIME: bad }), /1…86400/, bad);
});

class FakeMapper implements PortMapSource {
  onChange: (() => void) | null = null;
  mapped: string | null = null;
  refreshed = 0;
  mappedEndpoint(): string | null {
    return this.mapped;
  }
  refresh(): Promise<PortMappingReport> {
    this.refreshed++;
    return Promise.resolve({ upnp: false, natpmp: true, pcp: true, mapped: this.mapped });
  }
}

function traversal(onEndpointsChanged: () => void): Traversal {
  const engine = {
    listenPort: 41641, tun: 'pm-none0', events: null,
    sendDatagrams: () => undefined, relayReceive: () => undefined, setEndpoints: () => undefined,
  } as unknown as TraversalEngine;
  const key = (): { privateKey: Uint8Array; publicKey: Uint8Array } => {
    const privateKey = generatePrivateKey();
    return { privateKey, publicKey: publicKeyOf(privateKey) };
  };
  return new Traversal({
    engine, nodeKey: key(), discoKey: key(), timers: TEST_PATH_TIMERS, staticEndpoints: ['198.51.100.7:41641'],
    log: () => undefined, onEndpointsChanged, onNetinfoChanged: () => undefined,
  });
}

test('traversal: the mapped endpoint comes right after static ones; changes are announced; off removes it', async () => {
  let changed = 0;
  const t = traversal(() => changed++);
  try {
    const m = new FakeMapper();
    t.setPortMapper(m);
    assert.equal(t.endpoints()[0], '198.51.100.7:41641');
    assert.ok(!t.endpoints().includes('203.0.113.9:41641'));
    m.mapped = '203.0.113.9:41641';
    m.onChange!();
    assert.deepEqual(t.endpoints().slice(0, 2), ['198.51.100.7:41641', '203.0.113.9:41641']);
    assert.equal(changed, 1, 'control is told');
    t.setPortMapper(null);
    assert.equal(m.onChange, null, 'the old mapper is unhooked');
    assert.ok(!t.endpoints().includes('203.0.113.9:41641'));
    assert.equal(changed, 2);
  } finally {
    await t.stop();
  }
});

test('traversal: netcheck asks the mapper to re-probe and reports what it found', async () => {
  const t = traversal(() => undefined);
  try {
    const before = await t.netcheck();
    assert.deepEqual(before.portMapping, { upnp: null, natpmp: null, pcp: null, mapped: null }, 'no mapper: not probed');
    const m = new FakeMapper();
    m.mapped = '203.0.113.9:41641';
    t.setPortMapper(m);
    const r = await t.netcheck();
    assert.equal(m.refreshed, 1);
    assert.deepEqual(r.portMapping, { upnp: false, natpmp: true, pcp: true, mapped: '203.0.113.9:41641' });
  } finally {
    await t.stop();
  }
});

test('cli: netcheck and status say what the router offers and what is mapped', () => {
  const text = formatNetcheck({
    udp: true, publicIPv4: '203.0.113.9:1234', publicIPv6: null, mappingVaries: true, regions: [], preferredRegion: 0, at: 0,
    portMapping: { upnp: true, natpmp: false, pcp: null, mapped: '203.0.113.9:41641' },
  });
  assert.match(text, /PortMapping: UPnP yes, NAT-PMP no, PCP unknown, mapped 203\.0\.113\.9:41641/);
  const st = {
    mode: 'mesh', backendState: 'Running', controlUrl: null, controlConnected: true,
    self: { id: 1, name: 'pi', addresses: ['100.64.0.1/32'], nodeKey: 'k', keyExpiry: null, tags: [] }, peers: [], health: [],
    netmapVersion: 1, endpoints: [], relays: [], natCounters: {},
    portMapping: {
      gateway: '192.168.1.1', local: '192.168.1.2', upnp: true, natpmp: true, pcp: true, protocol: 'pcp', mapped: '203.0.113.9:41641',
      internalPort: 41641, lifetimeSec: 7200, renewInMs: 1000, expiresInMs: 2000, lastError: null, counters: {},
    },
  } as unknown as MeshStatus;
  assert.match(formatMeshStatus(st, 0), /port mapping: 203\.0\.113\.9:41641 → :41641 \(PCP via 192\.168\.1\.1\)/);
  assert.doesNotMatch(formatMeshStatus({ ...st, portMapping: null }, 0), /port mapping/);
});
