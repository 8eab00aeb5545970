/**
 * The namespace "little Internet" (test/helpers/nat-lab.ts) proved with plain
 * UDP sockets (fixtures/udp-peer.ts) and a STUN-like reflector in the internet
 * namespace (fixtures/udp-reflector.ts: answers with the source ip:port it
 * saw, on two server IPs × ports 3478/3479, and over TCP on 443):
 *
 * - easy ↔ easy: simultaneous open works, each side hears the other from the
 *   public ip:port the reflector reported for it; and it still works when one
 *   side's first punches reach the other router before that side sends (they
 *   are dropped there: the routers' input rule of shared/LAB.md);
 * - hard ↔ hard: nothing gets through in 2 s of punching;
 * - mapping: an easy site keeps one port (its own) for every destination, a
 *   hard site's port varies by destination, and so does an easy home router's
 *   behind a hard carrier NAT; hardPorts keeps them in range;
 * - udpBlocked: UDP dropped, TCP 443 passes; toggling acts at once and kills
 *   a running flow; unblocking lets it resume;
 * - cgnat: the home WAN is in 100.64.0.0/10, the reflector sees the carrier's
 *   address, easy↔easy punching across two carrier NATs works, and a new
 *   address from the ISP is what the reflector sees next;
 * - changeWanAddress on a plain site: the reflector sees the new address;
 * - conntrack UDP timeouts: with (2, 3) a hard site's mapping is gone within
 *   a few seconds, and the next flow from the same socket gets a new port;
 * - flushConntrack: a hard site's socket gets a new mapping after the "reboot";
 * - nat 'none': the internet sees the host's own ip:port, also once renumbered;
 * - nothing of the lab shows up in the machine's own namespace.
 */
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { BlockList } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../helpers/lab.js';
import type { LabProc } from '../helpers/lab.js';
import { createNatLab, NFT_TABLE } from '../helpers/nat-lab.js';
import type { NatLab, Site, SiteOptions } from '../helpers/nat-lab.js';

const PEER = fileURLToPath(new URL('./fixtures/udp-peer.js', import.meta.url));
const REFLECTOR = fileURLToPath(new URL('./fixtures/udp-reflector.js', import.meta.url));
const isRoot = process.getuid?.() === 0;
const HARD_PORTS: [number, number] = [40000, 41023];
/** How long hard↔hard punching is given before it counts as failed. */
const HARD_PUNCH_MS = 2000;

interface Event {
  event: string;
  [k: string]: unknown;
}

function events(p: LabProc, name?: string): Event[] {
  const out: Event[] = [];
  for (const line of p.output().split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const e = JSON.parse(line) as Event;
      if (name === undefined || e.event === name) out.push(e);
    } catch {
      // a partial line still being written
    }
  }
  return out;
}

function one(p: LabProc, name: string): Event {
  const e = events(p, name)[0];
  if (!e) throw new Error(`${p.name} printed no ${name}; output:\n${p.tail()}`);
  return e;
}

const port = (endpoint: string): number => Number(endpoint.split(':')[1]);
const ipOf = (endpoint: string): string => endpoint.split(':')[0] ?? '';

describe('NAT lab: a little Internet out of namespaces', { skip: isRoot ? false : 'needs root', timeout: 60_000 }, () => {
  let net: NatLab;
  let stun: string[]; // the reflector's UDP endpoints: 2 IPs × 2 ports
  let tcp443: string;
  let dir: string;
  let setup = '';
  const s: Record<string, Site> = {};
  const SITES: Record<string, SiteOptions> = {
    ea: { nat: 'easy' },
    eb: { nat: 'easy' },
    ha: { nat: 'hard' },
    hb: { nat: 'hard' },
    hp: { nat: 'hard', hardPorts: HARD_PORTS },
    ub: { nat: 'easy', udpBlocked: true },
    ca: { nat: 'easy', cgnat: true },
    cb: { nat: 'easy', cgnat: true },
    ch: { nat: 'easy', cgnat: true, cgnatKind: 'hard' },
    wan: { nat: 'easy' },
    ct: { nat: 'hard' },
    rt: { nat: 'none' },
  };

  /** Run udp-peer in `site`'s host namespace to completion. */
  async function peer(site: Site, args: string[], name = `peer-${site.name}`): Promise<LabProc> {
    const p = net.lab.spawn(site.host, [process.execPath, PEER, ...args], { name });
    await waitFor(`${name} to exit`, () => !p.alive, { timeoutMs: 20_000 });
    const st = await p.exited;
    assert.equal(st.code, 0, `${name} ${p.describeExit()}:\n${p.tail()}`);
    return p;
  }

  /** The public endpoints `site` is seen from by every reflector endpoint in `to`. */
  async function mappings(site: Site, to: string[], extra: string[] = []): Promise<{ bound: number; mapped: string[] }> {
    const p = await peer(site, [...extra, ...to.flatMap((t) => ['--ask', t])]);
    const asked = one(p, 'asked').mapped as Record<string, string>;
    return { bound: one(p, 'bound').port as number, mapped: to.map((t) => asked[t] ?? '?') };
  }

  /**
   * Both sides ask the reflector for their mapping, learn the other's, then
   * send to each other until both have heard each other or `punchMs` pass.
   */
  async function punch(
    a: Site,
    b: Site,
    punchMs: number,
    opts: { aFirst?: boolean } = {},
  ): Promise<{ ms: number; a: Event; b: Event; aMapped: string; bMapped: string }> {
    const started = Date.now();
    const file = (x: Site): string => join(dir, `${x.name}-${started}.peer`);
    const spawn = (x: Site): LabProc =>
      net.lab.spawn(x.host, [process.execPath, PEER, '--ask', stun[0] ?? '', '--peer-file', file(x), '--punch-ms', String(punchMs)], { name: `punch-${x.name}` });
    const [pa, pb] = [spawn(a), spawn(b)];
    const mappedOf = async (p: LabProc): Promise<string> => {
      await p.waitForOutput(/"event":"asked"/, 10_000);
      return Object.values(one(p, 'asked').mapped as Record<string, string>)[0] ?? '?';
    };
    const [aMapped, bMapped] = await Promise.all([mappedOf(pa), mappedOf(pb)]);
    writeFileSync(file(a), bMapped);
    if (opts.aFirst) {
      // b learns a's endpoint only once b's router has dropped a's early punches.
      const dropsBefore = await inputDrops(b);
      await waitFor(`${b.name}'s router to drop ${a.name}'s early punches`, async () => (await inputDrops(b)) >= dropsBefore + 3, { timeoutMs: 5000 });
    }
    writeFileSync(file(b), aMapped);
    await Promise.all([pa, pb].map((p) => p.waitForOutput(/"event":"done"/, punchMs + 10_000)));
    return { ms: Date.now() - started, a: one(pa, 'done'), b: one(pb, 'done'), aMapped, bMapped };
  }

  /** Packets the router (the carrier, when cgnat) dropped as unsolicited input on its WAN. */
  async function inputDrops(site: Site): Promise<number> {
    const r = await net.lab.sh(site.carrier ?? site.router, ['nft', 'list', 'chain', 'inet', NFT_TABLE, 'input']);
    return Number(/counter packets (\d+)/.exec(r.stdout)?.[1] ?? NaN);
  }

  before(async () => {
    const t0 = Date.now();
    net = await createNatLab({ tag: 'natlab' });
    dir = mkdtempSync(join(tmpdir(), 'warren-natlab-'));
    net.lab.trackPath(dir);
    const [ip1, ip2] = net.serverIps as [string, string];
    stun = [`${ip1}:3478`, `${ip2}:3478`, `${ip1}:3479`, `${ip2}:3479`];
    tcp443 = `${ip1}:443`;
    const reflector = net.lab.spawn(net.internet, [process.execPath, REFLECTOR, ...stun.flatMap((e) => ['--udp', e]), '--tcp', tcp443], { name: 'reflector' });
    const built = await Promise.all(Object.entries(SITES).map(async ([name, o]) => [name, await net.addSite(name, o)] as const));
    for (const [name, site] of built) s[name] = site;
    await reflector.waitForOutput(/"event":"ready"/, 10_000);
    setup = `lab up: ${net.lab.namespaceNames.length} namespaces, ${built.length} sites and the reflector in ${Date.now() - t0} ms`;
  });

  after(() => net?.close());

  test('easy ↔ easy: simultaneous open, each side hears the other from its public ip:port', async (t) => {
    const { ea, eb } = s as { ea: Site; eb: Site };
    t.diagnostic(setup);
    const r = await punch(ea, eb, 5000);
    assert.equal(ipOf(r.aMapped), ea.publicIp);
    assert.equal(ipOf(r.bMapped), eb.publicIp);
    assert.ok((r.a.got as number) > 0 && (r.b.got as number) > 0, `both receive: ${JSON.stringify(r)}`);
    assert.deepEqual(r.a.from, [r.bMapped]);
    assert.deepEqual(r.b.from, [r.aMapped]);
    t.diagnostic(`easy↔easy punched in ${r.ms} ms (both asks + punch)`);
  });

  test("easy ↔ easy: one side's early punches are dropped at the other's router, and punching still works", async () => {
    const { ea, eb } = s as { ea: Site; eb: Site };
    const r = await punch(ea, eb, 5000, { aFirst: true });
    assert.ok((r.a.got as number) > 0 && (r.b.got as number) > 0, `both receive: ${JSON.stringify(r)}`);
    assert.deepEqual(r.a.from, [r.bMapped]);
    assert.deepEqual(r.b.from, [r.aMapped]);
  });

  test('hard ↔ hard: nothing gets through', async () => {
    const { ha, hb } = s as { ha: Site; hb: Site };
    const r = await punch(ha, hb, HARD_PUNCH_MS);
    assert.equal(ipOf(r.aMapped), ha.publicIp);
    assert.equal(ipOf(r.bMapped), hb.publicIp);
    assert.equal(r.a.got, 0, JSON.stringify(r));
    assert.equal(r.b.got, 0, JSON.stringify(r));
    assert.ok((r.a.sent as number) > 10 && (r.b.sent as number) > 10, 'both kept sending');
  });

  test('mapping: easy keeps its own port for every destination, hard varies it (also a hard carrier NAT)', async (t) => {
    const easy = await mappings(s['ea'] as Site, stun);
    assert.deepEqual(easy.mapped, stun.map(() => `${s['ea']?.publicIp}:${easy.bound}`));
    const hard = await mappings(s['ha'] as Site, stun);
    for (const m of hard.mapped) assert.equal(ipOf(m), s['ha']?.publicIp);
    // Four destinations: all four ports equal by chance has probability ~2^-48.
    assert.ok(new Set(hard.mapped.map(port)).size > 1, `hard mapping varies by destination: ${hard.mapped.join(' ')}`);
    const behindHardCarrier = await mappings(s['ch'] as Site, stun);
    for (const m of behindHardCarrier.mapped) assert.equal(ipOf(m), s['ch']?.publicIp);
    assert.ok(new Set(behindHardCarrier.mapped.map(port)).size > 1, `a hard carrier makes it hard: ${behindHardCarrier.mapped.join(' ')}`);
    t.diagnostic(`easy ${easy.mapped.join(' ')}; hard ${hard.mapped.join(' ')}; easy behind a hard carrier ${behindHardCarrier.mapped.join(' ')}`);
  });

  test('hardPorts keeps mapped ports in range', async () => {
    const hp = s['hp'] as Site;
    const { mapped } = await mappings(hp, stun);
    for (const m of mapped) {
      assert.equal(ipOf(m), hp.publicIp);
      assert.ok(port(m) >= HARD_PORTS[0] && port(m) <= HARD_PORTS[1], `${m} in ${HARD_PORTS.join('-')}`);
    }
    assert.ok(new Set(mapped.map(port)).size > 1, `still varies by destination: ${mapped.join(' ')}`);
  });

  test('udpBlocked: UDP dropped, TCP 443 passes; toggling acts at once and kills a running flow', async () => {
    const ub = s['ub'] as Site;
    const server = stun[0] ?? '';
    const blocked = await peer(ub, ['--ask', server, '--ask-ms', '1000']);
    assert.deepEqual(one(blocked, 'ask-timeout').missing, [server]);
    const viaTcp = await peer(ub, ['--tcp', tcp443]);
    assert.equal(ipOf(one(viaTcp, 'tcp').reply as string), ub.publicIp);

    await ub.setUdpBlocked(false);
    const ping = net.lab.spawn(ub.host, [process.execPath, PEER, '--ask', server, '--ask-ms', '2000', '--ping-ms', '30000', '--interval', '50'], { name: 'ping-ub' });
    try {
      const recvNow = (): number => (events(ping, 'tick').at(-1)?.recv as number | undefined) ?? 0;
      await waitFor('pongs before blocking', () => recvNow() >= 3, { timeoutMs: 5000 });
      await ub.setUdpBlocked(true);
      const conntrack = await net.lab.sh(ub.router, ['conntrack', '-L', '-p', 'udp'], { allowFail: true });
      assert.equal(conntrack.stdout.trim(), '', 'no UDP flow left at the router');
      // Ten more pings sent after the block (the first two may have left before it): none answered.
      const mark = events(ping, 'tick').length + 2;
      const ticks = await waitFor('10 pings sent while blocked', () => {
        const t = events(ping, 'tick');
        return t.length >= mark + 10 ? t : null;
      }, { timeoutMs: 5000 });
      const recvAtMark = ticks[mark]?.recv as number;
      assert.equal(ticks.at(-1)?.recv, recvAtMark, 'no pong while blocked');
      await ub.setUdpBlocked(false);
      await waitFor('pongs again once unblocked', () => recvNow() > recvAtMark, { timeoutMs: 5000 });
    } finally {
      await ping.stop();
    }
  });

  test('cgnat: WAN in 100.64/10, the internet sees the carrier, easy↔easy punching works, a new ISP address shows', async (t) => {
    const { ca, cb } = s as { ca: Site; cb: Site };
    const shared = new BlockList();
    shared.addSubnet('100.64.0.0', 10);
    for (const c of [ca, cb]) {
      assert.ok(c.carrier, 'has a carrier namespace');
      assert.ok(shared.check(c.wanIp), `${c.wanIp} in 100.64.0.0/10`);
      assert.ok(!shared.check(c.publicIp), `${c.publicIp} is public`);
    }
    const r = await punch(ca, cb, 5000);
    assert.equal(ipOf(r.aMapped), ca.publicIp);
    assert.equal(ipOf(r.bMapped), cb.publicIp);
    assert.ok((r.a.got as number) > 0 && (r.b.got as number) > 0, `both receive: ${JSON.stringify(r)}`);
    assert.deepEqual(r.a.from, [r.bMapped]);
    assert.deepEqual(r.b.from, [r.aMapped]);
    t.diagnostic(`cgnat easy↔easy punched in ${r.ms} ms`);

    const [oldPublic, oldWan] = [ca.publicIp, ca.wanIp];
    const fresh = await ca.changeWanAddress();
    assert.equal(fresh, ca.publicIp);
    assert.notEqual(fresh, oldPublic);
    assert.notEqual(ca.wanIp, oldWan);
    assert.ok(shared.check(ca.wanIp));
    const { mapped } = await mappings(ca, [stun[0] ?? '']);
    assert.equal(ipOf(mapped[0] ?? ''), fresh);
  });

  test('changeWanAddress: the reflector sees the new public address, the old one is gone', async () => {
    const wan = s['wan'] as Site;
    const before = await mappings(wan, [stun[0] ?? '']);
    assert.equal(ipOf(before.mapped[0] ?? ''), wan.publicIp);
    const old = wan.publicIp;
    const fresh = await wan.changeWanAddress();
    assert.notEqual(fresh, old);
    assert.equal(wan.wanIp, fresh);
    const after = await mappings(wan, [stun[0] ?? '']);
    assert.equal(ipOf(after.mapped[0] ?? ''), fresh);
    const addrs = await net.lab.sh(wan.router, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'wan0']);
    assert.ok(addrs.stdout.includes(`${fresh}/`) && !addrs.stdout.includes(`${old}/`), addrs.stdout);
  });

  test('conntrack UDP timeouts: a mapping expires after the timeout and the next flow gets a new one', async (t) => {
    const ct = s['ct'] as Site;
    await ct.setConntrackUdpTimeouts(2, 3);
    const sysctl = await net.lab.sh(ct.router, ['sysctl', '-n', 'net.netfilter.nf_conntrack_udp_timeout', 'net.netfilter.nf_conntrack_udp_timeout_stream']);
    assert.deepEqual(sysctl.stdout.trim().split('\n'), ['2', '3']);
    const bind = ['--bind', '0.0.0.0:40500'];
    const first = await mappings(ct, [stun[0] ?? ''], bind);
    const again = await mappings(ct, [stun[0] ?? ''], bind);
    assert.deepEqual(again.mapped, first.mapped, 'the same flow keeps its mapping while its entry lives');
    const t0 = Date.now();
    await waitFor('the UDP conntrack entry to expire', async () => {
      const r = await net.lab.sh(ct.router, ['conntrack', '-L', '-p', 'udp', '--orig-src', ct.lanIp], { allowFail: true });
      return r.stdout.trim() === '';
    }, { timeoutMs: 10_000, intervalMs: 200 });
    const expiredMs = Date.now() - t0;
    assert.ok(expiredMs < 8000, `expired after ${expiredMs} ms (default timeout is 30 s)`);
    const later = await mappings(ct, [stun[0] ?? ''], bind);
    // A fresh fully-random port: equal to the old one with probability ~1/64512.
    assert.notEqual(later.mapped[0], first.mapped[0], 'a new flow gets a new mapping');
    t.diagnostic(`mapping expired ${expiredMs} ms after the last packet`);
  });

  test('flushConntrack (a router reboot): the same socket behind a hard NAT gets a new mapping', async () => {
    const ha = s['ha'] as Site;
    const bind = ['--bind', '0.0.0.0:40600'];
    const first = await mappings(ha, [stun[0] ?? ''], bind);
    const again = await mappings(ha, [stun[0] ?? ''], bind);
    assert.deepEqual(again.mapped, first.mapped);
    await ha.flushConntrack();
    const later = await mappings(ha, [stun[0] ?? ''], bind);
    // Equal by chance with probability ~1/64512.
    assert.notEqual(later.mapped[0], first.mapped[0]);
  });

  test("nat 'none': the internet sees the host's own ip:port, also after renumbering", async () => {
    const rt = s['rt'] as Site;
    assert.equal(rt.publicIp, rt.lanIp);
    const r = await mappings(rt, [stun[0] ?? '', stun[1] ?? '']);
    assert.deepEqual(r.mapped, [`${rt.lanIp}:${r.bound}`, `${rt.lanIp}:${r.bound}`]);
    const old = rt.lanIp;
    const fresh = await rt.changeWanAddress();
    assert.notEqual(fresh, old);
    assert.equal(rt.lanIp, fresh);
    const after = await mappings(rt, [stun[0] ?? '']);
    assert.deepEqual(after.mapped, [`${fresh}:${after.bound}`]);
  });

  test("nothing of the lab in the machine's own namespace", () => {
    const links = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' });
    assert.doesNotMatch(links, /\b(wan0|lan0)\b/);
    const routes = execFileSync('ip', ['-4', 'route', 'show', 'table', 'all'], { encoding: 'utf8' });
    assert.doesNotMatch(routes, /^11\./m);
  });
});
