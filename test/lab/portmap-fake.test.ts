/**
 * Discovery against routers that speak only one protocol, and against
 * hostile ones, in the NAT lab: the router namespace runs the behavioural
 * fake gateway (test/helpers/fake-gateway.ts) on its LAN address — real
 * NAT-PMP/PCP on UDP 5351, SSDP on 1900 (joined to the multicast group) and
 * UPnP over HTTP — and warrend on the host must find exactly what is there.
 * A garbage-speaking router, one whose answers come from another LAN
 * address (spoofed), and one whose SSDP answer points off the gateway must
 * never crash the agent nor give it a candidate; the off-gateway URL is
 * never fetched.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor, type LabProc } from '../helpers/lab.js';
import { createNatTailnet, TEST_ENV, type NatTailnet } from '../helpers/nat-tailnet.js';
import { startNode, type NodeHandle } from '../helpers/mesh.js';
import { IFACES, type Site } from '../helpers/nat-lab.js';
import type { NetcheckReport } from '../../src/nat/netcheck.js';
import type { FakeMisbehaviour, FakeProtocol } from '../helpers/fake-gateway.js';

const FAKE = join(dirname(fileURLToPath(import.meta.url)), '..', 'helpers', 'fake-gateway.js');

interface Member {
  name: string;
  protocols: FakeProtocol[];
  misbehave: FakeMisbehaviour[];
  site: Site;
  node: NodeHandle;
  gw: LabProc;
  spoofIp: string;
}

let tn: NatTailnet;
const SPECS: Array<{ name: string; protocols: FakeProtocol[]; misbehave: FakeMisbehaviour[] }> = [
  { name: 'fpcp', protocols: ['pcp'], misbehave: [] },
  { name: 'fnatpmp', protocols: ['natpmp'], misbehave: [] },
  { name: 'fupnp', protocols: ['upnp'], misbehave: [] },
  { name: 'fgarbage', protocols: ['pcp', 'natpmp', 'upnp'], misbehave: ['garbage'] },
  { name: 'fspoof', protocols: ['pcp', 'natpmp', 'upnp'], misbehave: ['spoof'] },
  { name: 'fforeign', protocols: ['upnp'], misbehave: ['foreign-location'] },
];
let members: Member[] = [];
const byName = (n: string): Member => members.find((m) => m.name === n)!;

async function netcheck(n: NodeHandle): Promise<NetcheckReport> {
  const r = await n.cli(['netcheck', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as NetcheckReport;
}

describe('port-mapping discovery against fake gateways', { timeout: 120_000 }, () => {
  before(async () => {
    tn = await createNatTailnet('pmfake');
    members = await Promise.all(SPECS.map(async (s) => {
      // Hard NAT: STUN then finds a random port, so publicIp:41641 can only come from a mapping.
      const site = await tn.net.addSite(s.name, { nat: 'hard' });
      const spoofIp = site.lanGateway.replace(/\.1$/, '.3');
      await tn.net.lab.addr(site.router, IFACES.lan, `${spoofIp}/24`);
      const gw = tn.net.lab.spawn(site.router, ['node', FAKE, '--bind', site.lanGateway, '--external-ip', site.publicIp, '--multicast',
        '--protocols', s.protocols.join(','), '--misbehave', s.misbehave.join(','), '--spoof-from', spoofIp], { name: `fake-gw-${s.name}` });
      await gw.waitForOutput(/fake gateway ready/, 15_000);
      const node = await startNode(tn.net.lab, site.host, site.lanIp, s.name, { env: TEST_ENV });
      const up = await node.up(tn.key);
      assert.equal(up.code, 0, up.stderr);
      return { ...s, site, node, gw, spoofIp };
    }));
  });
  after(() => tn?.close());

  for (const p of ['pcp', 'natpmp', 'upnp'] as const) {
    test(`a router that speaks only ${p}: found, reported by netcheck and status, mapping granted`, async () => {
      const m = byName(`f${p}`);
      const want = `${m.site.publicIp}:41641`;
      await waitFor(`${p}: mapped`, async () => (await m.node.status()).portMapping?.mapped === want, { timeoutMs: 10_000 });
      const rep = await netcheck(m.node);
      assert.deepEqual(rep.portMapping, { upnp: p === 'upnp', natpmp: p === 'natpmp', pcp: p === 'pcp', mapped: want });
      const st = await m.node.status();
      assert.equal(st.portMapping!.protocol, p);
      assert.equal(st.endpoints[0], want);
      assert.match(m.gw.output(), new RegExp(`${p} map ${want.replace(/\./g, '\\.')} -> ${m.site.lanIp.replace(/\./g, '\\.')}:41641`));
      if (p === 'upnp') assert.match(m.gw.output(), new RegExp(`http GET /rootDesc\\.xml from ${m.site.lanIp.replace(/\./g, '\\.')}`));
    });
  }

  for (const name of ['fgarbage', 'fspoof', 'fforeign']) {
    test(`hostile router (${name.slice(1)}): no crash, no mapping, no candidate`, async () => {
      const m = byName(name);
      await waitFor(`${name}: probed`, async () => {
        const pm = (await m.node.status()).portMapping;
        return pm !== null && pm.upnp !== null && pm.pcp !== null && pm.natpmp !== null;
      }, { timeoutMs: 15_000 });
      const rep = await netcheck(m.node);
      assert.deepEqual(rep.portMapping, { upnp: false, natpmp: false, pcp: false, mapped: null });
      const st = await m.node.status();
      assert.equal(st.portMapping!.mapped, null);
      assert.ok(!st.endpoints.includes(`${m.site.publicIp}:41641`), `no mapped candidate: ${st.endpoints.join(' ')}`);
      assert.ok(m.node.proc.alive, 'warrend is still running');
      const c = st.portMapping!.counters;
      if (name === 'fgarbage') assert.ok((c['pcp_unmatched'] ?? 0) + (c['natpmp_unmatched'] ?? 0) + (c['ssdp_bad'] ?? 0) > 0, JSON.stringify(c));
      if (name === 'fspoof') assert.ok((c['pcp_foreign'] ?? 0) > 0 && (c['natpmp_foreign'] ?? 0) > 0 && (c['ssdp_foreign'] ?? 0) > 0, JSON.stringify(c));
      if (name === 'fforeign') {
        assert.ok((c['upnp_foreign_url'] ?? 0) > 0, JSON.stringify(c));
        assert.doesNotMatch(m.gw.output(), /foreign http/, 'the off-gateway LOCATION was never fetched');
      }
    });
  }
});
