/**
 * Router against the real kernel, inside a network namespace of its own: a veth
 * stands in for the TUN, a second veth pair is the "uplink" with the real
 * default route. Checks with `ip route get` that the policy routing behaves like
 * wg-quick's (marked traffic leaves by the uplink, the rest goes into the
 * tunnel), that a second apply updates it, and that teardown removes it all.
 */
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Router, type RouterConfig } from '../../src/control/router.js';

const NS = `wrt-${process.pid}-${randomBytes(3).toString('hex')}`;
const TUN = 'wrtun0';
const isRoot = process.getuid?.() === 0;

function ip(...args: string[]): string {
  return execFileSync('ip', ['-n', NS, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
function nsSysctl(path: string): string {
  return execFileSync('ip', ['netns', 'exec', NS, 'cat', `/proc/sys/${path}`], { encoding: 'utf8' }).trim();
}
/** `ip route get`, reduced to "dev X [table T]". */
function routeGet(...args: string[]): string {
  const out = ip('route', 'get', ...args);
  const dev = /\bdev (\S+)/.exec(out)?.[1] ?? '?';
  const table = /\btable (\S+)/.exec(out)?.[1];
  return table === undefined ? `dev ${dev}` : `dev ${dev} table ${table}`;
}
function rules(family: '-4' | '-6'): string[] {
  return ip(family, 'rule', 'show').trim().split('\n').map((l) => l.replace(/\s+/g, ' ').trim());
}
/** Route lines that mention the tunnel, minus the kernel's own IPv6 link-local and multicast ones. */
function tunRoutes(): string[] {
  const all = `${ip('-4', 'route', 'show', 'table', 'all')}${ip('-6', 'route', 'show', 'table', 'all')}`;
  return all
    .split('\n')
    .filter((l) => l.includes(`dev ${TUN}`) && !/fe80::|ff00::\/8/.test(l))
    .map((l) => l.replace(/\s+/g, ' ').trim());
}
function tunAddresses(): string[] {
  const j = JSON.parse(ip('-j', 'address', 'show', 'dev', TUN)) as Array<{
    addr_info: Array<{ local: string; prefixlen: number; scope: string }>;
  }>;
  return (j[0]?.addr_info ?? []).filter((a) => a.scope !== 'link').map((a) => `${a.local}/${a.prefixlen}`).sort();
}

const cfg1: RouterConfig = {
  tun: TUN,
  mtu: 1380,
  addresses: ['100.64.0.1/32', 'fd7a:115c::1/128', '10.9.0.1/24'],
  routes: ['100.64.0.2/32', '10.20.0.0/16', '0.0.0.0/0', '::/0', 'fd7a:115c::2/128'],
  table: 'auto',
  fwMark: 0,
};

void describe('Router in a network namespace', { skip: isRoot ? false : 'needs root' }, () => {
  const logs: string[] = [];
  const router = new Router({ netns: NS, log: (m) => logs.push(m) });
  let rules4Before: string[] = [];
  let rules6Before: string[] = [];
  const rootSrcValidMark = readFileSync('/proc/sys/net/ipv4/conf/all/src_valid_mark', 'utf8');

  before(() => {
    execFileSync('ip', ['netns', 'add', NS]);
    try {
      ip('link', 'set', 'lo', 'up');
      ip('link', 'add', TUN, 'type', 'veth', 'peer', 'name', 'wrpeer0');
      ip('link', 'set', 'wrpeer0', 'up');
      // The uplink: the namespace's real default route.
      ip('link', 'add', 'wrup0', 'type', 'veth', 'peer', 'name', 'wrup1');
      ip('link', 'set', 'wrup0', 'up');
      ip('link', 'set', 'wrup1', 'up');
      ip('address', 'add', '198.51.100.2/24', 'dev', 'wrup0');
      ip('-6', 'address', 'add', '2001:db8:1::2/64', 'dev', 'wrup0', 'nodad');
      ip('route', 'add', 'default', 'via', '198.51.100.1', 'dev', 'wrup0');
      ip('-6', 'route', 'add', 'default', 'via', '2001:db8:1::1', 'dev', 'wrup0');
      // Someone else already uses table 51820, so the router must take 51821.
      ip('route', 'add', '192.0.2.0/24', 'dev', 'lo', 'table', '51820');
      rules4Before = rules('-4');
      rules6Before = rules('-6');
    } catch (err) {
      execFileSync('ip', ['netns', 'del', NS]);
      throw err;
    }
  });

  after(() => {
    try {
      execFileSync('ip', ['netns', 'del', NS]);
    } catch {
      // already gone
    }
  });

  void it('first apply: addresses, routes, wg-quick policy routing', async () => {
    const res = await router.apply(cfg1);
    assert.deepEqual(res, { fwMark: 51821 });

    const link = (JSON.parse(ip('-j', 'link', 'show', TUN)) as Array<{ mtu: number; flags: string[] }>)[0];
    assert.equal(link?.mtu, 1380);
    assert.ok(link?.flags.includes('UP'));
    assert.deepEqual(tunAddresses(), ['10.9.0.1/24', '100.64.0.1/32', 'fd7a:115c::1/128']);

    for (const fam of ['-4', '-6'] as const) {
      const r = rules(fam);
      assert.ok(r.includes('32764: from all lookup main suppress_prefixlength 0'), r.join('\n'));
      assert.ok(r.includes('32765: not from all fwmark 0xca6d lookup 51821'), r.join('\n'));
    }
    assert.match(ip('-4', 'route', 'show', 'table', '51821'), new RegExp(`^default dev ${TUN}`));
    assert.match(ip('-6', 'route', 'show', 'table', '51821'), new RegExp(`^default dev ${TUN}`));
    const main4 = ip('-4', 'route', 'show', 'table', 'main');
    assert.match(main4, new RegExp(`^10\\.20\\.0\\.0/16 dev ${TUN}`, 'm'));
    assert.match(main4, new RegExp(`^100\\.64\\.0\\.2 dev ${TUN}`, 'm'));
    assert.match(main4, /^default via 198\.51\.100\.1 dev wrup0/m, 'the real default route stays in main');
    assert.match(ip('-6', 'route', 'show', 'table', 'main'), new RegExp(`^fd7a:115c::2 dev ${TUN}`, 'm'));
    assert.equal(nsSysctl('net/ipv4/conf/all/src_valid_mark'), '1');
    assert.equal(readFileSync('/proc/sys/net/ipv4/conf/all/src_valid_mark', 'utf8'), rootSrcValidMark);

    // What the kernel now does with packets:
    assert.equal(routeGet('8.8.8.8'), `dev ${TUN} table 51821`, 'unmarked traffic goes into the tunnel');
    assert.equal(routeGet('8.8.8.8', 'mark', '51821'), 'dev wrup0', "the tunnel's own UDP leaves by the uplink");
    assert.equal(routeGet('2001:4860::8888'), `dev ${TUN} table 51821`);
    assert.equal(routeGet('2001:4860::8888', 'mark', '51821'), 'dev wrup0');
    assert.equal(routeGet('198.51.100.7'), 'dev wrup0', 'the LAN stays on the LAN (suppress_prefixlength 0)');
    assert.equal(routeGet('10.20.3.4'), `dev ${TUN}`);
  });

  void it('the same config again is a no-op', async () => {
    const before4 = ip('-4', 'route', 'show', 'table', 'all');
    assert.deepEqual(await router.apply({ ...cfg1, routes: [...cfg1.routes].reverse() }), { fwMark: 51821 });
    assert.equal(ip('-4', 'route', 'show', 'table', 'all'), before4);
    assert.equal(rules('-4').length, rules4Before.length + 2);
  });

  void it('second apply with a different config updates routes, addresses and rules', async () => {
    const res = await router.apply({
      ...cfg1,
      mtu: 1400,
      addresses: ['100.64.0.1/32', '100.64.0.9/32'],
      routes: ['100.64.0.2/32', '10.30.0.0/16', '10.9.0.0/24'],
      fwMark: 0,
    });
    assert.deepEqual(res, { fwMark: 0 });
    assert.deepEqual(rules('-4'), rules4Before);
    assert.deepEqual(rules('-6'), rules6Before);
    assert.deepEqual(tunAddresses(), ['100.64.0.1/32', '100.64.0.9/32']);
    assert.deepEqual(tunRoutes().sort(), [
      `10.30.0.0/16 dev ${TUN} scope link`,
      `10.9.0.0/24 dev ${TUN} scope link`,
      `100.64.0.2 dev ${TUN} scope link`,
      'local 100.64.0.1 dev wrtun0 table local proto kernel scope host src 100.64.0.1',
      'local 100.64.0.9 dev wrtun0 table local proto kernel scope host src 100.64.0.9',
    ]);
    assert.equal(routeGet('8.8.8.8'), 'dev wrup0');
  });

  void it('a fwmark picks the table; a numeric Table takes every route', async () => {
    assert.deepEqual(await router.apply({ ...cfg1, fwMark: 0x1234 }), { fwMark: 0x1234 });
    assert.ok(rules('-4').includes('32765: not from all fwmark 0x1234 lookup 4660'));
    assert.match(ip('-6', 'route', 'show', 'table', '4660'), new RegExp(`^default dev ${TUN}`));
    assert.equal(routeGet('8.8.8.8', 'mark', '0x1234'), 'dev wrup0');

    assert.deepEqual(await router.apply({ ...cfg1, table: 1000, fwMark: 0 }), { fwMark: 0 });
    assert.deepEqual(rules('-4'), rules4Before);
    assert.deepEqual(rules('-6'), rules6Before);
    const t1000 = `${ip('-4', 'route', 'show', 'table', '1000')}${ip('-6', 'route', 'show', 'table', '1000')}`;
    for (const p of ['default', '10.20.0.0/16', '100.64.0.2', 'fd7a:115c::2']) {
      assert.match(t1000, new RegExp(`^${p} dev ${TUN}`, 'm'));
    }
    assert.doesNotMatch(ip('-4', 'route', 'show', 'table', 'main'), /10\.20\.0\.0/);
  });

  void it('teardown removes every rule, route and address it added', async () => {
    await router.apply(cfg1);
    await router.teardown();
    assert.deepEqual(rules('-4'), rules4Before);
    assert.deepEqual(rules('-6'), rules6Before);
    assert.deepEqual(tunRoutes(), []);
    assert.deepEqual(tunAddresses(), []);
    assert.match(ip('-4', 'route', 'show', 'table', '51820'), /^192\.0\.2\.0\/24 dev lo/, "another's table is untouched");
    assert.match(ip('-4', 'route', 'show', 'table', 'main'), /^default via 198\.51\.100\.1 dev wrup0/m);
    assert.equal(router.fwMark, 0);
  });

  void it('teardown after the tunnel vanished still removes the rules', async () => {
    await router.apply(cfg1);
    ip('link', 'del', TUN); // what closing a TUN fd does
    await router.teardown();
    assert.deepEqual(rules('-4'), rules4Before);
    assert.deepEqual(rules('-6'), rules6Before);
  });
});
