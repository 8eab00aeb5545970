/**
 * Tests for src/control/router.ts against a behavioural fake of `ip`: a small
 * model of links, addresses, routing tables and rules that answers like
 * iproute2 does (File exists, No such process, ...), so diff, idempotence and
 * teardown are checked by the resulting state, not just by the call list.
 */
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { Router, RouterError, type RouterConfig } from '../../src/control/router.js';

const DEFAULT_RULES = ['0: from all lookup local', '32766: from all lookup main', '32767: from all lookup default'];
const DEFAULT_RULES6 = ['0: from all lookup local', '32766: from all lookup main'];

/** A model of one network namespace as `ip` sees it. */
class FakeIp {
  links = new Map<string, { mtu: number; up: boolean }>();
  addrs = new Set<string>(); // "dev addr"
  routes = new Map<string, { dev: string; proto: 'kernel' | 'boot' }>(); // "-4 table prefix"
  rules: Record<'-4' | '-6', string[]> = { '-4': [...DEFAULT_RULES], '-6': [...DEFAULT_RULES6] };
  sysctls = new Map<string, string>();
  calls: string[][] = [];
  /** Return an error text to make a command fail. */
  failWith: (args: string[]) => string | undefined = () => undefined;

  constructor(...links: string[]) {
    for (const l of links) this.links.set(l, { mtu: 1500, up: false });
  }

  exec = async (cmd: string, argv: string[]): Promise<string> => {
    assert.equal(cmd, 'ip');
    this.calls.push(argv);
    await new Promise((r) => setImmediate(r)); // really asynchronous, like a child process
    const injected = this.failWith(argv);
    if (injected !== undefined) throw new Error(`ip ${argv.join(' ')}: ${injected}`);
    try {
      return this.run([...argv]);
    } catch (err) {
      throw new Error(`ip ${argv.join(' ')}: ${(err as Error).message}`);
    }
  };

  private run(a: string[]): string {
    if (a[0] === '-n') a.splice(0, 2);
    if (a[0] === 'netns' && a[1] === 'exec') {
      assert.deepEqual(a.slice(3, 6), ['sysctl', '-q', '-w']);
      const [k, v] = (a[6] ?? '').split('=');
      this.sysctls.set(k ?? '', v ?? '');
      return '';
    }
    let fam: '-4' | '-6' | undefined;
    if (a[0] === '-4' || a[0] === '-6') fam = a.shift() as '-4' | '-6';
    const [obj, verb, ...rest] = a;
    const famOf = (p: string) => (p.includes(':') ? '-6' : '-4');
    if (obj === 'link' && verb === 'set') {
      const link = this.links.get(rest[1] ?? '');
      if (!link) throw new Error(`Cannot find device "${rest[1]}"`);
      assert.deepEqual([rest[0], rest[2], rest[4], rest[5], rest[6]], ['dev', 'mtu', 'txqueuelen', '100', 'up']);
      link.mtu = Number(rest[3]);
      link.up = true;
      return '';
    }
    if (obj === 'address') {
      const [addr = '', devWord, dev = ''] = rest;
      assert.equal(devWord, 'dev');
      assert.equal(fam, famOf(addr), 'family flag matches the address');
      if (!this.links.has(dev)) throw new Error(`Cannot find device "${dev}"`);
      const key = `${dev} ${addr}`;
      const kernelRoute = this.kernelRouteFor(addr);
      if (verb === 'add') {
        if (fam === '-6') assert.equal(rest[3], 'nodad');
        if (this.addrs.has(key)) throw new Error(`Error: ipv${fam.slice(1)}: Address already assigned.`);
        this.addrs.add(key);
        if (kernelRoute) this.routes.set(`${fam} main ${kernelRoute}`, { dev, proto: 'kernel' });
        return '';
      }
      if (!this.addrs.delete(key)) throw new Error(`Error: ipv${fam.slice(1)}: Address not found.`);
      if (kernelRoute) this.routes.delete(`${fam} main ${kernelRoute}`);
      return '';
    }
    if (obj === 'route') {
      assert.ok(fam, 'route commands name their family');
      if (verb === 'show') {
        assert.equal(rest[0], 'table');
        const lines = [...this.routes.entries()]
          .filter(([k]) => k.startsWith(`${fam} ${rest[1]} `))
          .map(([k, v]) => `${k.split(' ')[2]} dev ${v.dev}\n`);
        // Like Linux: a table that never had a route does not exist.
        if (lines.length === 0) throw new Error(`Error: ipv${fam.slice(1)}: FIB table does not exist.`);
        return lines.join('');
      }
      const [prefix = '', devWord, dev = '', tableWord, table = 'main'] = rest;
      assert.equal(devWord, 'dev');
      assert.equal(fam, famOf(prefix));
      if (tableWord !== undefined) assert.equal(tableWord, 'table');
      if (!this.links.has(dev)) throw new Error(`Cannot find device "${dev}"`);
      const key = `${fam} ${table} ${prefix}`;
      if (verb === 'add') {
        if (this.routes.has(key)) throw new Error('RTNETLINK answers: File exists');
        this.routes.set(key, { dev, proto: 'boot' });
        return '';
      }
      if (this.routes.get(key)?.dev !== dev) throw new Error('RTNETLINK answers: No such process');
      this.routes.delete(key);
      return '';
    }
    if (obj === 'rule') {
      assert.ok(fam, 'rule commands name their family');
      assert.equal(rest[0], 'pref');
      const text = `${rest[1]}: ${this.ruleText(rest.slice(2))}`;
      const list = this.rules[fam];
      if (verb === 'add') {
        if (list.includes(text)) throw new Error('RTNETLINK answers: File exists');
        list.push(text);
        list.sort((x, y) => parseInt(x) - parseInt(y));
        return '';
      }
      const i = list.indexOf(text);
      if (i < 0) throw new Error('RTNETLINK answers: No such file or directory');
      list.splice(i, 1);
      return '';
    }
    throw new Error(`fake ip: unsupported ${a.join(' ')}`);
  }

  /** `ip rule` output form of a rule spec. */
  private ruleText(spec: string[]): string {
    const s = spec.join(' ');
    let m = /^not fwmark (\d+) table (\d+)$/.exec(s);
    if (m) return `not from all fwmark 0x${Number(m[1]).toString(16)} lookup ${m[2]}`;
    m = /^table main suppress_prefixlength 0$/.exec(s);
    if (m) return 'from all lookup main suppress_prefixlength 0';
    throw new Error(`fake ip: unexpected rule ${s}`);
  }

  /** The prefix route the kernel adds for an address, for the few shapes the tests use. */
  private kernelRouteFor(addr: string): string | undefined {
    const m = /^(\d+\.\d+\.\d+)\.\d+\/24$/.exec(addr);
    return m ? `${m[1]}.0/24` : undefined;
  }

  /** Routes whose device is `dev`, as "table prefix". */
  routesVia(dev: string): string[] {
    return [...this.routes.entries()].filter(([, v]) => v.dev === dev).map(([k]) => k).sort();
  }

  mutations(): string[] {
    return this.calls.filter((c) => !c.includes('show')).map((c) => c.join(' '));
  }
}

const base: RouterConfig = {
  tun: 'wt0',
  mtu: 1280,
  addresses: ['100.64.0.1/32', 'FD7A:115C::1/128'],
  routes: ['100.64.0.2/32', '10.20.0.0/16', '0.0.0.0/0', '::/0', 'fd7a:115c::2/128'],
  table: 'auto',
  fwMark: 0,
};

function setup(...links: string[]) {
  const ip = new FakeIp(...(links.length ? links : ['wt0']));
  const logs: string[] = [];
  const router = new Router({ exec: ip.exec, netns: 'ns1', log: (m) => logs.push(m) });
  return { ip, router, logs };
}

void describe('Router.apply', () => {
  void it('installs link, addresses, main routes and wg-quick policy routing for default routes', async () => {
    const { ip, router } = setup();
    const res = await router.apply(base);
    assert.deepEqual(res, { fwMark: 51820 });
    assert.equal(router.fwMark, 51820);
    assert.deepEqual(ip.links.get('wt0'), { mtu: 1280, up: true });
    assert.deepEqual([...ip.addrs].sort(), ['wt0 100.64.0.1/32', 'wt0 fd7a:115c::1/128']);
    assert.deepEqual(ip.routesVia('wt0'), [
      '-4 51820 0.0.0.0/0',
      '-4 main 10.20.0.0/16',
      '-4 main 100.64.0.2/32',
      '-6 51820 ::/0',
      '-6 main fd7a:115c::2/128',
    ]);
    const policy = ['32764: from all lookup main suppress_prefixlength 0', '32765: not from all fwmark 0xca6c lookup 51820'];
    assert.deepEqual(ip.rules['-4'], [DEFAULT_RULES[0], ...policy, ...DEFAULT_RULES.slice(1)]);
    assert.deepEqual(ip.rules['-6'], [DEFAULT_RULES6[0], ...policy, ...DEFAULT_RULES6.slice(1)]);
    assert.equal(ip.sysctls.get('net.ipv4.conf.all.src_valid_mark'), '1');
    for (const c of ip.calls) {
      const ns = c[0] === '-n' ? c[1] : c[0] === 'netns' && c[1] === 'exec' ? c[2] : undefined;
      assert.equal(ns, 'ns1', `runs in the namespace: ${c.join(' ')}`);
    }
  });

  void it('is idempotent: the same config again runs no commands', async () => {
    const { ip, router } = setup();
    await router.apply(base);
    const n = ip.calls.length;
    assert.deepEqual(await router.apply({ ...base, routes: [...base.routes].reverse() }), { fwMark: 51820 });
    assert.equal(ip.calls.length, n);
  });

  void it('applies only the difference', async () => {
    const { ip, router } = setup();
    await router.apply(base);
    ip.calls = [];
    const res = await router.apply({
      ...base,
      mtu: 1380,
      addresses: ['100.64.0.1/32', '100.64.0.9/32'],
      routes: ['100.64.0.2/32', '10.30.0.0/16', '0.0.0.0/0'],
    });
    assert.deepEqual(res, { fwMark: 51820 });
    assert.deepEqual(ip.mutations().map((c) => c.replace('-n ns1 ', '')).sort(), [
      '-4 address add 100.64.0.9/32 dev wt0',
      '-4 route add 10.30.0.0/16 dev wt0',
      '-4 route del 10.20.0.0/16 dev wt0',
      '-6 address del fd7a:115c::1/128 dev wt0',
      '-6 route del ::/0 dev wt0 table 51820',
      '-6 route del fd7a:115c::2/128 dev wt0',
      '-6 rule del pref 32764 table main suppress_prefixlength 0',
      '-6 rule del pref 32765 not fwmark 51820 table 51820',
      'link set dev wt0 mtu 1380 txqueuelen 100 up',
    ]);
    assert.deepEqual(ip.rules['-6'], DEFAULT_RULES6);
    assert.equal(ip.rules['-4'].length, 5);
    assert.deepEqual(ip.routesVia('wt0'), ['-4 51820 0.0.0.0/0', '-4 main 10.30.0.0/16', '-4 main 100.64.0.2/32']);
  });

  void it('drops the policy routing and reports the configured mark when the default route goes', async () => {
    const { ip, router } = setup();
    await router.apply(base);
    const res = await router.apply({ ...base, routes: ['100.64.0.2/32'], fwMark: 0 });
    assert.deepEqual(res, { fwMark: 0 });
    assert.deepEqual(ip.rules, { '-4': DEFAULT_RULES, '-6': DEFAULT_RULES6 });
    assert.deepEqual(ip.routesVia('wt0'), ['-4 main 100.64.0.2/32']);
  });

  void it('picks the next table when 51820 has routes, and keeps its pick later', async () => {
    const { ip, router } = setup('wt0', 'eth0');
    ip.routes.set('-6 51820 2001:db8::/32', { dev: 'eth0', proto: 'boot' });
    ip.routes.set('-4 51821 192.0.2.0/24', { dev: 'eth0', proto: 'boot' });
    assert.deepEqual(await router.apply(base), { fwMark: 51822 });
    assert.ok(ip.routesVia('wt0').includes('-4 51822 0.0.0.0/0'));
    assert.ok(ip.rules['-4'].includes('32765: not from all fwmark 0xca6e lookup 51822'));
    // Its own routes now fill 51822; a later apply must not move on to 51823.
    ip.calls = [];
    assert.deepEqual(await router.apply({ ...base, mtu: 1300 }), { fwMark: 51822 });
    assert.equal(ip.calls.filter((c) => c.includes('show')).length, 0);
  });

  void it('uses the configured fwmark as the table, without searching', async () => {
    const { ip, router } = setup();
    assert.deepEqual(await router.apply({ ...base, fwMark: 0x1234 }), { fwMark: 0x1234 });
    assert.equal(ip.calls.filter((c) => c.includes('show')).length, 0);
    assert.ok(ip.routesVia('wt0').includes('-4 4660 0.0.0.0/0'));
    assert.ok(ip.rules['-6'].includes('32765: not from all fwmark 0x1234 lookup 4660'));
    // Changing the mark moves the table and the rules.
    assert.deepEqual(await router.apply({ ...base, fwMark: 0x1235 }), { fwMark: 0x1235 });
    assert.deepEqual(ip.routesVia('wt0').filter((r) => / \d+ /.test(r)), ['-4 4661 0.0.0.0/0', '-6 4661 ::/0']);
    assert.ok(!ip.rules['-4'].some((r) => r.includes('4660')));
    // Dropping the mark goes back to picking from 51820.
    assert.deepEqual(await router.apply(base), { fwMark: 51820 });
  });

  void it('without a default route: no rules, no sysctl, the configured mark', async () => {
    const { ip, router } = setup();
    const res = await router.apply({ ...base, routes: ['10.0.0.0/8', '::/1'], fwMark: 77 });
    assert.deepEqual(res, { fwMark: 77 });
    assert.deepEqual(ip.rules, { '-4': DEFAULT_RULES, '-6': DEFAULT_RULES6 });
    assert.equal(ip.sysctls.size, 0);
    assert.deepEqual(ip.routesVia('wt0'), ['-4 main 10.0.0.0/8', '-6 main ::/1']);
  });

  void it('IPv6-only default route: IPv6 rules only and no IPv4 sysctl', async () => {
    const { ip, router } = setup();
    await router.apply({ ...base, routes: ['::/0'] });
    assert.deepEqual(ip.rules['-4'], DEFAULT_RULES);
    assert.equal(ip.rules['-6'].length, 4);
    assert.equal(ip.sysctls.size, 0);
  });

  void it('Table = N puts every route, default included, in table N with no rules', async () => {
    const { ip, router } = setup();
    assert.deepEqual(await router.apply({ ...base, table: 1000, fwMark: 5 }), { fwMark: 5 });
    assert.deepEqual(ip.routesVia('wt0'), [
      '-4 1000 0.0.0.0/0',
      '-4 1000 10.20.0.0/16',
      '-4 1000 100.64.0.2/32',
      '-6 1000 ::/0',
      '-6 1000 fd7a:115c::2/128',
    ]);
    assert.deepEqual(ip.rules, { '-4': DEFAULT_RULES, '-6': DEFAULT_RULES6 });
  });

  void it('Table = off installs addresses but no routes', async () => {
    const { ip, router } = setup();
    await router.apply(base);
    assert.deepEqual(await router.apply({ ...base, table: 'off' }), { fwMark: 0 });
    assert.deepEqual(ip.routesVia('wt0'), []);
    assert.deepEqual(ip.rules, { '-4': DEFAULT_RULES, '-6': DEFAULT_RULES6 });
    assert.equal(ip.addrs.size, 2);
  });

  void it('canonicalises prefixes, so host bits and case do not cause churn', async () => {
    const { ip, router } = setup();
    await router.apply({ ...base, addresses: ['FD7A::1/64'], routes: ['10.1.2.3/8', 'FD00::1/16'] });
    assert.deepEqual(ip.routesVia('wt0'), ['-4 main 10.0.0.0/8', '-6 main fd00::/16']);
    ip.calls = [];
    await router.apply({ ...base, addresses: ['fd7a:0::1/64'], routes: ['10.0.0.0/8', 'fd00::/16'] });
    assert.deepEqual(ip.calls, []);
  });

  void it('leaves a route that already existed alone and never deletes it', async () => {
    const { ip, router, logs } = setup();
    // The address's kernel prefix route covers the allowed IP exactly.
    await router.apply({ ...base, addresses: ['10.9.0.1/24'], routes: ['10.9.0.0/24', '10.8.0.0/16'] });
    assert.equal(ip.routes.get('-4 main 10.9.0.0/24')?.proto, 'kernel');
    assert.ok(logs.some((l) => l.includes('10.9.0.0/24') && l.includes('already exists')));
    await router.apply({ ...base, addresses: ['10.9.0.1/24'], routes: [] });
    assert.equal(ip.routes.get('-4 main 10.9.0.0/24')?.proto, 'kernel');
    assert.ok(!ip.mutations().some((c) => c.includes('route del 10.9.0.0/24')));
    assert.equal(ip.routes.has('-4 main 10.8.0.0/16'), false);
  });

  void it('adopts an identical rule left by a crashed run, and removes it on teardown', async () => {
    const { ip, router } = setup();
    ip.rules['-4'].splice(1, 0, '32765: not from all fwmark 0xca6c lookup 51820');
    await router.apply({ ...base, routes: ['0.0.0.0/0'] });
    assert.equal(ip.rules['-4'].filter((r) => r.includes('0xca6c')).length, 1);
    await router.teardown();
    assert.deepEqual(ip.rules['-4'], DEFAULT_RULES);
  });

  void it('keeps going past a failed command, reports it, and retries only what is missing', async () => {
    const { ip, router } = setup();
    ip.failWith = (a) => (a.join(' ').includes('route add 10.20.0.0/16') ? 'RTNETLINK answers: Network is down' : undefined);
    await assert.rejects(router.apply(base), (err: unknown) => {
      assert.ok(err instanceof RouterError);
      assert.equal(err.code, 'EROUTER');
      assert.equal(err.errors.length, 1);
      assert.match(err.message, /10\.20\.0\.0\/16.*Network is down/);
      return true;
    });
    assert.equal(ip.routesVia('wt0').length, 4);
    assert.equal(ip.rules['-4'].length, 5, 'rules went in despite the failed route');
    assert.equal(router.fwMark, 51820);
    ip.failWith = () => undefined;
    ip.calls = [];
    await router.apply(base);
    assert.deepEqual(ip.mutations(), ['-n ns1 -4 route add 10.20.0.0/16 dev wt0']);
  });

  void it('keeps an item it failed to delete and deletes it on the next apply', async () => {
    const { ip, router } = setup();
    await router.apply(base);
    ip.failWith = (a) => (a.join(' ').includes('route del 10.20.0.0/16') ? 'RTNETLINK answers: Operation not permitted' : undefined);
    await assert.rejects(router.apply({ ...base, routes: ['0.0.0.0/0'] }), RouterError);
    assert.ok(ip.routes.has('-4 main 10.20.0.0/16'));
    ip.failWith = () => undefined;
    await router.apply({ ...base, routes: ['0.0.0.0/0'] });
    assert.ok(!ip.routes.has('-4 main 10.20.0.0/16'));
  });

  void it('moves everything when the tunnel is renamed', async () => {
    const { ip, router } = setup('wt0', 'wt1');
    await router.apply(base);
    await router.apply({ ...base, tun: 'wt1' });
    assert.deepEqual(ip.routesVia('wt0'), []);
    assert.equal(ip.routesVia('wt1').length, 5);
    assert.deepEqual([...ip.addrs].sort(), ['wt1 100.64.0.1/32', 'wt1 fd7a:115c::1/128']);
    assert.deepEqual(ip.links.get('wt1'), { mtu: 1280, up: true });
  });

  void it('serialises overlapping calls: the last one wins', async () => {
    const { ip, router } = setup();
    const a = router.apply(base);
    const b = router.apply({ ...base, routes: ['10.1.0.0/16'] });
    const c = router.teardown();
    const d = router.apply({ ...base, routes: ['10.2.0.0/16'], table: 7 });
    await Promise.all([a, b, c, d]);
    assert.deepEqual(ip.routesVia('wt0'), ['-4 7 10.2.0.0/16']);
    assert.deepEqual(ip.rules, { '-4': DEFAULT_RULES, '-6': DEFAULT_RULES6 });
  });

  void it('rejects a bad config before running anything', async () => {
    const { ip, router } = setup();
    const bad: Array<Partial<RouterConfig>> = [
      { routes: ['10.0.0.0/33'] },
      { addresses: ['nope'] },
      { tun: 'x; rm -rf /' },
      { tun: '' },
      { mtu: 100 },
      { fwMark: -1 },
      { table: 0 },
    ];
    for (const b of bad) await assert.rejects(router.apply({ ...base, ...b }), RouterError, JSON.stringify(b));
    assert.equal(ip.calls.length, 0);
  });

  void it('writes the sysctl through the injected writer when given', async () => {
    const ip = new FakeIp('wt0');
    const written: string[] = [];
    const router = new Router({
      exec: ip.exec,
      writeSysctl: async (k, v) => void written.push(`${k}=${v}`),
    });
    await router.apply(base);
    assert.deepEqual(written, ['net.ipv4.conf.all.src_valid_mark=1']);
    assert.ok(ip.calls.every((c) => c[0] !== '-n'));
    await router.apply({ ...base, mtu: 1400 });
    assert.equal(written.length, 1, 'written once');
  });

  void it('calls onFwMark between removing the old rules and adding the new ones', async () => {
    const ip = new FakeIp('wt0');
    const seen: string[] = [];
    const router = new Router({
      exec: ip.exec,
      writeSysctl: async () => {},
      onFwMark: (mark) => {
        // What the kernel holds at the moment the caller is told to re-mark its socket.
        const marks = ip.rules['-4'].filter((r) => r.includes('fwmark')).map((r) => r.replace(/.*fwmark (\S+).*/, '$1'));
        seen.push(`${mark} rules:[${marks.join(',')}] default:${ip.routesVia('wt0').some((r) => r.endsWith('0.0.0.0/0'))}`);
      },
    });
    await router.apply(base);
    await router.apply(base);
    await router.apply({ ...base, fwMark: 9 });
    await router.apply({ ...base, routes: ['10.0.0.0/8'] });
    assert.deepEqual(seen, [
      '51820 rules:[] default:true', // told before the rule that needs it goes in
      '9 rules:[] default:true', //    the rule for 51820 is gone, the one for 9 not yet in
      '0 rules:[] default:false',
    ]);
  });

  void it('a failing sysctl is a warning, not a failure', async () => {
    const ip = new FakeIp('wt0');
    const logs: string[] = [];
    const router = new Router({
      exec: ip.exec,
      log: (m) => logs.push(m),
      writeSysctl: () => Promise.reject(new Error('EROFS: read-only file system')),
    });
    assert.deepEqual(await router.apply(base), { fwMark: 51820 });
    assert.ok(logs.some((l) => l.includes('src_valid_mark') && l.includes('EROFS')));
  });
});

void describe('Router.teardown', () => {
  void it('removes every rule, route and address it added, and nothing else', async () => {
    const { ip, router } = setup('wt0', 'eth0');
    ip.routes.set('-4 main 0.0.0.0/0', { dev: 'eth0', proto: 'boot' });
    ip.addrs.add('eth0 192.0.2.10/32');
    await router.apply({ ...base, addresses: [...base.addresses, '10.9.0.1/24'] });
    await router.teardown();
    assert.deepEqual(ip.routesVia('wt0'), []);
    assert.deepEqual([...ip.addrs], ['eth0 192.0.2.10/32']);
    assert.deepEqual(ip.rules, { '-4': DEFAULT_RULES, '-6': DEFAULT_RULES6 });
    assert.deepEqual(ip.routesVia('eth0'), ['-4 main 0.0.0.0/0']);
    assert.equal(router.fwMark, 0);
    ip.calls = [];
    await router.teardown();
    assert.deepEqual(ip.calls, [], 'a second teardown has nothing to do');
  });

  void it('succeeds when the tunnel has already gone, and still removes the rules', async () => {
    const { ip, router } = setup();
    await router.apply(base);
    // The TUN fd closed: the kernel drops the link with its addresses and routes.
    ip.links.delete('wt0');
    for (const k of [...ip.routes.keys()]) if (ip.routes.get(k)?.dev === 'wt0') ip.routes.delete(k);
    ip.addrs.clear();
    await router.teardown();
    assert.deepEqual(ip.rules, { '-4': DEFAULT_RULES, '-6': DEFAULT_RULES6 });
  });

  void it('reports what it could not remove and retries it next time', async () => {
    const { ip, router } = setup();
    await router.apply(base);
    ip.failWith = (a) => (a.includes('rule') && a.includes('del') ? 'RTNETLINK answers: Operation not permitted' : undefined);
    await assert.rejects(router.teardown(), (err: unknown) => err instanceof RouterError && err.errors.length === 4);
    assert.deepEqual(ip.routesVia('wt0'), []);
    ip.failWith = () => undefined;
    await router.teardown();
    assert.deepEqual(ip.rules, { '-4': DEFAULT_RULES, '-6': DEFAULT_RULES6 });
  });
});
