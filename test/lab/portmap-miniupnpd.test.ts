/**
 * Port mapping against the real miniupnpd (Debian miniupnpd-nftables 2.3.1)
 * as the home router. It speaks UPnP-IGD, NAT-PMP and PCP at once, so three
 * sites each force one protocol from the client side
 * (WARREN_PORTMAP_ONLY=upnp|natpmp|pcp) and ask for 10 s mappings
 * (WARREN_PORTMAP_LIFETIME=10). For each protocol: the mapping is created
 * and shown by `warren netcheck` and `warren status`; a datagram from the
 * "internet" to the mapped public port reaches warrend's socket (UDP 41641:
 * its device counts it as not_wireguard); the mapping is renewed before the
 * lifetime runs out (while a mapping made by natpmpc/upnpc and left alone
 * expires); after miniupnpd restarts with its state gone (rules, leases,
 * epoch) the mapping is re-created; when the router's public address
 * changes the advertised endpoint follows; `warren down` deletes it, and
 * `warren up` asks for the same port again; a clean shutdown deletes it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../helpers/lab.js';
import { createNatTailnet, TEST_ENV, type NatTailnet } from '../helpers/nat-tailnet.js';
import { startNode, type NodeHandle } from '../helpers/mesh.js';
import { startMiniupnpd, type MiniUpnpd } from '../helpers/miniupnpd.js';
import type { Site } from '../helpers/nat-lab.js';
import type { NetcheckReport } from '../../src/nat/netcheck.js';
import type { PortmapProtocol } from '../../src/nat/portmap/driver.js';

const LIFETIME = 10;
const PROTOCOLS: PortmapProtocol[] = ['upnp', 'natpmp', 'pcp'];

interface Member {
  p: PortmapProtocol;
  site: Site;
  node: NodeHandle;
  upnpd: MiniUpnpd;
}

let tn: NatTailnet;
let members: Member[] = [];

const mapped = (m: Member): string => `${m.site.publicIp}:41641`;
const all = <T>(f: (m: Member) => Promise<T>): Promise<T[]> => Promise.all(members.map(f));

async function notWireguard(m: Member): Promise<number> {
  return (await m.node.status()).device.drops['not_wireguard'] ?? 0;
}

/** A datagram from the internet to the mapped port arrives at warrend's data socket. */
async function reaches(m: Member): Promise<void> {
  const [ip, port] = mapped(m).split(':') as [string, string];
  const before = await notWireguard(m);
  await waitFor(`a datagram from the internet to ${mapped(m)} reaches ${m.node.name}:41641`, async () => {
    await tn.net.lab.sh(tn.net.internet, ['bash', '-c', `printf 'hello from the internet' > /dev/udp/${ip}/${port}`]);
    return (await notWireguard(m)) > before;
  }, { timeoutMs: 5000, intervalMs: 200 });
}

describe('port mapping with miniupnpd as the router', { timeout: 150_000 }, () => {
  before(async () => {
    tn = await createNatTailnet('pmupnpd');
    members = await Promise.all(PROTOCOLS.map(async (p) => {
      const name = `m${p.slice(0, 3)}`;
      const site = await tn.net.addSite(name, { nat: 'hard' });
      const upnpd = await startMiniupnpd(tn.net.lab, site);
      const node = await startNode(tn.net.lab, site.host, site.lanIp, name, {
        env: { ...TEST_ENV, WARREN_PORTMAP_ONLY: p, WARREN_PORTMAP_LIFETIME: String(LIFETIME) },
      });
      const up = await node.up(tn.key);
      assert.equal(up.code, 0, up.stderr);
      return { p, site, node, upnpd };
    }));
  });
  after(() => tn?.close());

  test('a mapping is created with each protocol and shown by netcheck and status', async () => {
    await all(async (m) => {
      await waitFor(`${m.p}: mapped`, async () => (await m.node.status()).portMapping?.mapped === mapped(m), { timeoutMs: 10_000 });
      const st = await m.node.status();
      assert.equal(st.portMapping!.protocol, m.p);
      assert.equal(st.portMapping!.gateway, m.site.lanGateway);
      assert.equal(st.portMapping!.internalPort, 41641);
      assert.equal(st.portMapping!.lifetimeSec, LIFETIME);
      assert.equal(st.endpoints[0], mapped(m), `the mapped endpoint is our first candidate: ${st.endpoints.join(' ')}`);
      assert.deepEqual(await m.upnpd.mappedPorts(), [41641], 'miniupnpd redirects UDP 41641');
      assert.match(await m.upnpd.redirects(), new RegExp(`dport 41641 dnat ip to ${m.site.lanIp.replace(/\./g, '\\.')}:41641`));
      const r = await m.node.cli(['netcheck', '--json']);
      assert.equal(r.code, 0, r.stderr);
      const rep = JSON.parse(r.stdout) as NetcheckReport;
      assert.deepEqual(rep.portMapping, { upnp: true, natpmp: true, pcp: true, mapped: mapped(m) });
      const text = (await m.node.cli(['netcheck'])).stdout;
      assert.match(text, new RegExp(`PortMapping: UPnP yes, NAT-PMP yes, PCP yes, mapped ${mapped(m).replace(/\./g, '\\.')}`), text);
      const status = (await m.node.cli(['status'])).stdout;
      assert.match(status, new RegExp(`port mapping: ${mapped(m).replace(/\./g, '\\.')} → :41641 \\((UPnP|NAT-PMP|PCP) via ${m.site.lanGateway.replace(/\./g, '\\.')}\\)`), status);
    });
  });

  test('a datagram from the internet to the mapped port reaches the node\'s UDP 41641', async () => {
    await all(reaches);
  });

  test('renewed before the 10 s lifetime runs out (an unrenewed mapping does expire)', async () => {
    const m0 = members[0]!;
    const lab = tn.net.lab;
    // Controls made with Debian's own clients, never renewed: miniupnpd does expire them.
    const host = m0.site.host;
    await lab.sh(host, ['natpmpc', '-g', m0.site.lanGateway, '-a', '41700', '41700', 'udp', '6']);
    await lab.sh(host, ['upnpc', '-e', 'control', '-a', m0.site.lanIp, '41701', '41701', 'UDP', '6']);
    const renewedBefore = await all(async (m) => (await m.node.status()).portMapping!.counters['renewed']!);
    const started = Date.now();
    await waitFor('the unrenewed control mappings expire', async () => {
      const ports = await m0.upnpd.mappedPorts();
      return !ports.includes(41700) && !ports.includes(41701);
    }, { timeoutMs: 20_000, intervalMs: 500 });
    // Watch our mappings across more than two lifetimes: never gone.
    let gone: string | null = null;
    await waitFor(`${2.5 * LIFETIME} s with every mapping held`, async () => {
      for (const m of members) if (!(await m.upnpd.mappedPorts()).includes(41641)) gone ??= `${m.p} gone after ${Date.now() - started} ms`;
      return Date.now() - started >= 2.5 * LIFETIME * 1000;
    }, { timeoutMs: 3 * LIFETIME * 1000, intervalMs: 500 });
    assert.equal(gone, null);
    await all(async (m) => {
      const st = (await m.node.status()).portMapping!;
      const renewed = st.counters['renewed']! - renewedBefore[members.indexOf(m)]!;
      assert.ok(renewed >= 4, `${m.p}: renewed ${renewed} times in ${2.5 * LIFETIME} s (every ${LIFETIME / 2} s)`);
      assert.ok(st.expiresInMs! > 0 && st.expiresInMs! <= LIFETIME * 1000);
      await reaches(m);
    });
  });

  test('after miniupnpd restarts with its state gone, the mapping is re-created', async (t) => {
    await all(async (m) => {
      await m.upnpd.restart();
      assert.deepEqual(await m.upnpd.mappedPorts(), [], 'the restarted router has no mappings');
      const started = Date.now();
      await waitFor(`${m.p}: re-created`, async () => (await m.upnpd.mappedPorts()).includes(41641), { timeoutMs: 12_000, intervalMs: 200 });
      const took = Date.now() - started;
      t.diagnostic(`${m.p}: re-created ${took} ms after the restart`);
      assert.ok(took < 10_000, `${m.p}: re-created in ${took} ms (poll 5 s, renewal every 5 s)`);
      assert.equal((await m.node.status()).portMapping!.mapped, mapped(m), 'the same public endpoint');
      await reaches(m);
    });
  });

  test('the router gets a new public address: the mapped endpoint follows', async (t) => {
    await all(async (m) => {
      const old = mapped(m);
      const started = Date.now();
      await m.site.changeWanAddress();
      await waitFor(`${m.p}: ${old} → ${mapped(m)}`, async () => (await m.node.status()).portMapping?.mapped === mapped(m), { timeoutMs: 12_000, intervalMs: 200 });
      t.diagnostic(`${m.p}: new public address mapped ${Date.now() - started} ms after renumbering`);
      assert.equal((await m.node.status()).endpoints[0], mapped(m));
      await reaches(m);
    });
  });

  test('warren down deletes the mapping; warren up asks for the same port again', async () => {
    await all(async (m) => {
      const down = await m.node.cli(['down']);
      assert.equal(down.code, 0, down.stderr);
      assert.deepEqual(await m.upnpd.mappedPorts(), [], `${m.p}: deleted at once`);
      assert.equal((await m.node.status()).portMapping, null);
      const up = await m.node.up(null);
      assert.equal(up.code, 0, up.stderr);
      await waitFor(`${m.p}: mapped again`, async () => (await m.node.status()).portMapping?.mapped === mapped(m), { timeoutMs: 10_000 });
    });
    // A clean shutdown deletes it too.
    await all(async (m) => {
      await m.node.proc.stop('SIGTERM');
      assert.deepEqual(await m.upnpd.mappedPorts(), [], `${m.p}: deleted on shutdown`);
    });
  });
});
