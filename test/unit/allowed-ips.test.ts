/**
 * Tests for src/dataplane/allowed-ips.ts: prefix parsing and formatting edge
 * cases, table semantics, and a randomized check against a naive
 * longest-prefix scan for both families.
 */
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import {
  AllowedIps,
  PrefixError,
  formatAddress,
  formatPrefix,
  parseAddress,
  parsePrefix,
} from '../../src/dataplane/allowed-ips.js';
import type { Prefix } from '../../src/dataplane/allowed-ips.js';
import type IpAddr from 'ipaddr.js';
import { rng } from '../helpers/rng.js';

// ipaddr.js is CommonJS with `export =` typings: load it the CommonJS way.
const ipaddr = createRequire(import.meta.url)('ipaddr.js') as typeof IpAddr;


const P = parsePrefix;
const F = (s: string): string => formatPrefix(parsePrefix(s));

void describe('parsePrefix / formatPrefix', () => {
  void it('parses and formats the edge prefixes', () => {
    assert.equal(F('0.0.0.0/0'), '0.0.0.0/0');
    assert.equal(F('::/0'), '::/0');
    assert.equal(F('255.255.255.255/32'), '255.255.255.255/32');
    assert.equal(F('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128'), 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128');
    assert.deepEqual(P('0.0.0.0/0'), { family: 4, bytes: new Uint8Array(4), bits: 0 });
    assert.deepEqual(P('::/0'), { family: 6, bytes: new Uint8Array(16), bits: 0 });
  });

  void it('treats a bare address as a host prefix', () => {
    assert.deepEqual(P('10.1.2.3'), { family: 4, bytes: Uint8Array.of(10, 1, 2, 3), bits: 32 });
    assert.equal(F('fd00::1'), 'fd00::1/128');
    assert.equal(F('::'), '::/128');
    assert.equal(F('::1'), '::1/128');
  });

  void it('masks host bits like wg does', () => {
    assert.equal(F('10.1.2.3/8'), '10.0.0.0/8');
    assert.equal(F('10.1.2.3/0'), '0.0.0.0/0');
    assert.equal(F('192.168.255.255/23'), '192.168.254.0/23');
    assert.equal(F('10.1.2.3/31'), '10.1.2.2/31');
    assert.equal(F('fd00:1234:5678::1/20'), 'fd00:1000::/20');
    assert.equal(F('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/127'), 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127');
    assert.equal(F('fd00::1/0'), '::/0');
  });

  void it('formats IPv6 per RFC 5952', () => {
    assert.equal(F('FD00:ABCD:0000::0001/64'), 'fd00:abcd::/64');
    assert.equal(F('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1/128');
    assert.equal(F('2001:0:0:1:0:0:0:1'), '2001:0:0:1::1/128');
    assert.equal(F('2001:db8:0:1:1:1:1:1'), '2001:db8:0:1:1:1:1:1/128');
    assert.equal(F('1:0:0:0:0:0:0:0'), '1::/128');
    assert.equal(F('0:0:0:0:0:0:0:1'), '::1/128');
    assert.equal(F('1:2:3:4:5:6:7::'), '1:2:3:4:5:6:7:0/128');
    assert.equal(F('::2:3:4:5:6:7:8'), '0:2:3:4:5:6:7:8/128');
  });

  void it('handles IPv4-mapped and embedded dotted quads', () => {
    assert.equal(F('::ffff:10.0.0.1'), '::ffff:10.0.0.1/128');
    assert.equal(F('::FFFF:a00:1'), '::ffff:10.0.0.1/128');
    assert.equal(F('::ffff:10.0.0.1/96'), '::ffff:0.0.0.0/96');
    const mapped = P('::ffff:10.0.0.1');
    assert.equal(mapped.family, 6);
    assert.deepEqual([...mapped.bytes], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1]);
    assert.equal(F('64:ff9b::192.0.2.33'), '64:ff9b::c000:221/128');
    assert.equal(F('::1.2.3.4'), '::102:304/128');
    assert.equal(F('1:2:3:4:5:6:1.2.3.4'), '1:2:3:4:5:6:102:304/128');
  });

  void it('accepts leading-zero prefix lengths', () => {
    assert.equal(F('10.0.0.0/08'), '10.0.0.0/8');
  });

  const bad: Array<[string, RegExp]> = [
    ['', /bad IPv4 address/],
    ['/8', /bad IPv4 address/],
    ['10.0.0.0/33', /prefix length 33 out of range 0\.\.32/],
    ['fd00::/129', /prefix length 129 out of range 0\.\.128/],
    ['10.0.0.0/', /bad prefix length/],
    ['10.0.0.0/-1', /bad prefix length/],
    ['10.0.0.0/+8', /bad prefix length/],
    ['10.0.0.0/0x8', /bad prefix length/],
    ['10.0.0.0/1000', /bad prefix length/],
    ['10.0.0.0/8/8', /bad prefix length/],
    ['10.0.0.0/8 ', /bad prefix length/],
    [' 10.0.0.0/8', /bad IPv4 address/],
    ['10.0.0.256', /bad IPv4 address/],
    ['10.0.0', /bad IPv4 address/],
    ['10.0.0.0.0', /bad IPv4 address/],
    ['010.0.0.1', /bad IPv4 address/],
    ['10.0.0.-1', /bad IPv4 address/],
    ['10..0.1', /bad IPv4 address/],
    ['0x0a.0.0.1', /bad IPv4 address/],
    ['abc', /bad IPv4 address/],
    ['fe80::1%eth0', /zone ids/],
    ['1:::2', /bad IPv6 address/],
    ['1::2::3', /bad IPv6 address/],
    [':1::2', /bad IPv6 address/],
    ['1::2:', /bad IPv6 address/],
    ['1:2:3:4:5:6:7:8:9', /bad IPv6 address/],
    ['1:2:3:4:5:6:7', /bad IPv6 address/],
    ['1:2:3:4:5:6:7:8::', /bad IPv6 address/],
    ['::1:2:3:4:5:6:7:8', /bad IPv6 address/],
    ['12345::', /bad IPv6 address/],
    ['g::', /bad IPv6 address/],
    ['::ffff:1.2.3', /bad IPv6 address/],
    ['::ffff:1.2.3.256', /bad IPv6 address/],
    ['1.2.3.4::', /bad IPv6 address/],
    ['1:2:3:4:5:6:7:1.2.3.4', /bad IPv6 address/],
    [':::1.2.3.4', /bad IPv6 address/],
    ['[::1]', /bad IPv6 address/],
  ];
  for (const [input, reason] of bad) {
    void it(`rejects ${JSON.stringify(input)}`, () => {
      assert.throws(
        () => parsePrefix(input),
        (err: unknown) => {
          assert.ok(err instanceof PrefixError);
          assert.equal(err.code, 'ERR_INVALID_PREFIX');
          assert.equal(err.input, input);
          assert.ok(err.message.includes(JSON.stringify(input)), err.message);
          assert.match(err.message, reason);
          return true;
        },
      );
    });
  }

  void it('agrees with node:net on what is an address', () => {
    const samples = [
      '1.2.3.4', '255.255.255.255', '1.2.3.04', '1.2.3', '1.2.3.4.', '::', '::1', '1::', '1:2::3:4',
      '::ffff:1.2.3.4', '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:8:9', '::1::', 'fffff::',
      '1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5::1.2.3.4', '1:2:3:4:5:6::1.2.3.4', 'a:b:c:d:e:f:0:1',
      '::1.2.3.4', '0::0', '1.2.3.4:5', '', ':', ':::', '1:', ':1',
    ];
    for (const s of samples) {
      let ours: number;
      try {
        ours = parseAddress(s).family;
      } catch {
        ours = 0;
      }
      assert.equal(ours, isIP(s), s);
    }
  });

  void it('formats like ipaddr.js RFC 5952 on random addresses', () => {
    const rand = rng(7);
    for (let i = 0; i < 3000; i++) {
      const bytes = new Uint8Array(16);
      for (let j = 0; j < 16; j += 2) {
        // Mostly zero groups so "::" placement is exercised.
        if (rand() < 0.6) continue;
        bytes[j] = rand() < 0.5 ? 0 : Math.floor(rand() * 256);
        bytes[j + 1] = Math.floor(rand() * 256);
      }
      if (bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) continue;
      const ours = formatAddress(6, bytes);
      const theirs = new ipaddr.IPv6([...bytes]).toRFC5952String();
      assert.equal(ours, theirs);
      assert.deepEqual(parseAddress(ours).bytes, bytes);
      assert.deepEqual(parseAddress(ipaddr.fromByteArray([...bytes]).toNormalizedString()).bytes, bytes);
    }
  });
});

void describe('AllowedIps', () => {
  void it('finds the longest matching prefix', () => {
    const t = new AllowedIps<string>();
    t.insert(P('0.0.0.0/0'), 'default');
    t.insert(P('10.0.0.0/8'), 'a');
    t.insert(P('10.1.0.0/16'), 'b');
    t.insert(P('10.1.2.3/32'), 'c');
    t.insert(P('::/0'), 'default6');
    t.insert(P('fd00::/8'), 'd');
    t.insert(P('fd00:1::/32'), 'e');
    t.insert(P('fd00:1::1/128'), 'f');
    assert.equal(t.size, 8);
    assert.equal(t.lookup('10.1.2.3'), 'c');
    assert.equal(t.lookup('10.1.2.4'), 'b');
    assert.equal(t.lookup('10.2.0.0'), 'a');
    assert.equal(t.lookup('11.0.0.0'), 'default');
    assert.equal(t.lookup('fd00:1::1'), 'f');
    assert.equal(t.lookup('fd00:1::2'), 'e');
    assert.equal(t.lookup('fd00:2::'), 'd');
    assert.equal(t.lookup('2001:db8::'), 'default6');
    // IPv4-mapped addresses are IPv6 and do not hit IPv4 prefixes.
    assert.equal(t.lookup('::ffff:10.1.2.3'), 'default6');
  });

  void it('returns undefined with no match and keeps families apart', () => {
    const t = new AllowedIps<string>();
    assert.equal(t.lookup('1.2.3.4'), undefined);
    assert.equal(t.lookup('::'), undefined);
    t.insert(P('10.0.0.0/8'), 'a');
    assert.equal(t.lookup('11.0.0.0'), undefined);
    assert.equal(t.lookup('a00::'), undefined);
    t.insert(P('::/0'), 'v6');
    assert.equal(t.lookup('11.0.0.0'), undefined);
  });

  void it('replaces the value when a prefix is inserted again', () => {
    const t = new AllowedIps<string>();
    t.insert(P('10.0.0.0/24'), 'a');
    t.insert(P('10.0.0.0/25'), 'a');
    t.insert(P('10.0.0.9/24'), 'b'); // same prefix after masking
    assert.equal(t.size, 2);
    assert.equal(t.lookup('10.0.0.200'), 'b');
    assert.equal(t.lookup('10.0.0.1'), 'a');
    assert.deepEqual(t.entriesFor('a').map(formatPrefix), ['10.0.0.0/25']);
    assert.deepEqual(t.entriesFor('b').map(formatPrefix), ['10.0.0.0/24']);
    t.insert(P('10.0.0.0/24'), 'b');
    assert.equal(t.size, 2);
    t.insert(P('10.0.0.0/25'), 'b');
    assert.deepEqual(t.entriesFor('a'), []);
    assert.equal(t.removeValue('a'), 0);
  });

  void it('masks host bits of a hand-built prefix on insert', () => {
    const t = new AllowedIps<string>();
    t.insert({ family: 4, bytes: Uint8Array.of(10, 9, 9, 9), bits: 8 }, 'a');
    assert.deepEqual(t.entries().map((e) => formatPrefix(e.prefix)), ['10.0.0.0/8']);
    assert.equal(t.remove(P('10.0.0.0/8')), true);
    assert.throws(() => t.insert({ family: 4, bytes: new Uint8Array(16), bits: 8 }, 'x'), RangeError);
    assert.throws(() => t.insert({ family: 6, bytes: new Uint8Array(16), bits: 129 }, 'x'), RangeError);
  });

  void it('removes single prefixes', () => {
    const t = new AllowedIps<string>();
    t.insert(P('10.0.0.0/8'), 'a');
    t.insert(P('10.1.0.0/16'), 'b');
    t.insert(P('10.2.0.0/16'), 'c');
    // 10.0.0.0/14 is only an internal branch point (if at all), not an entry.
    assert.equal(t.remove(P('10.0.0.0/14')), false);
    assert.equal(t.remove(P('10.3.0.0/16')), false);
    assert.equal(t.remove(P('10.0.0.0/8')), true);
    assert.equal(t.remove(P('10.0.0.0/8')), false);
    assert.equal(t.size, 2);
    assert.equal(t.lookup('10.9.0.0'), undefined);
    assert.equal(t.lookup('10.1.0.1'), 'b');
    assert.equal(t.remove(P('10.1.0.0/16')), true);
    assert.equal(t.remove(P('10.2.0.0/16')), true);
    assert.equal(t.size, 0);
    assert.deepEqual(t.entries(), []);
  });

  void it('removes all prefixes of a value', () => {
    const t = new AllowedIps<string>();
    t.insert(P('10.0.0.0/8'), 'a');
    t.insert(P('10.1.0.0/16'), 'b');
    t.insert(P('10.1.1.0/24'), 'a');
    t.insert(P('fd00::/64'), 'a');
    t.insert(P('fd00::/48'), 'b');
    assert.deepEqual(t.entriesFor('a').map(formatPrefix), ['10.0.0.0/8', '10.1.1.0/24', 'fd00::/64']);
    assert.equal(t.removeValue('a'), 3);
    assert.equal(t.size, 2);
    assert.deepEqual(t.entriesFor('a'), []);
    assert.equal(t.lookup('10.1.1.1'), 'b');
    assert.equal(t.lookup('10.2.0.0'), undefined);
    assert.equal(t.lookup('fd00::1'), 'b');
    assert.deepEqual(
      t.entries().map((e) => `${formatPrefix(e.prefix)}=${e.value}`),
      ['10.1.0.0/16=b', 'fd00::/48=b'],
    );
    t.clear();
    assert.equal(t.size, 0);
    assert.equal(t.lookup('10.1.1.1'), undefined);
  });

  void it('lists entries in address order, shorter prefix first', () => {
    const t = new AllowedIps<number>();
    const list = ['fd00::/8', '192.168.0.0/16', '10.0.0.0/8', '10.0.0.0/24', '0.0.0.0/0', '10.128.0.0/9', '::/0'];
    list.forEach((s, i) => t.insert(P(s), i));
    assert.deepEqual(t.entries().map((e) => formatPrefix(e.prefix)), [
      '0.0.0.0/0', '10.0.0.0/8', '10.0.0.0/24', '10.128.0.0/9', '192.168.0.0/16', '::/0', 'fd00::/8',
    ]);
  });

  void it('looks up straight from a packet buffer at an offset', () => {
    const t = new AllowedIps<string>();
    t.insert(P('192.168.4.0/24'), 'src-peer');
    t.insert(P('10.0.0.7/32'), 'dst-peer');
    t.insert(P('fd7a:115c:a1e0::/48'), 'v6-peer');
    // An IPv4 header with src 192.168.4.9, dst 10.0.0.7, after 3 bytes of junk.
    const buf = new Uint8Array(3 + 20);
    buf.set([0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 192, 168, 4, 9, 10, 0, 0, 7], 3);
    assert.equal(t.lookupV4(buf, 3 + 12), 'src-peer');
    assert.equal(t.lookupV4(buf, 3 + 16), 'dst-peer');
    assert.equal(t.lookupV4(buf, 3 + 17), undefined); // 0.0.7 + out of range
    assert.equal(t.lookupV4(buf, -1), undefined);
    assert.equal(t.lookupV4(buf.subarray(3 + 16), 0), 'dst-peer');
    // An IPv6 header: dst at offset 24.
    const b6 = new Uint8Array(40 + 5);
    b6.set(P('fd7a:115c:a1e0:ab12::1').bytes, 5 + 24);
    assert.equal(t.lookupV6(b6, 5 + 24), 'v6-peer');
    assert.equal(t.lookupV6(b6, 5 + 8), undefined);
    assert.equal(t.lookupV6(b6, 5 + 30), undefined); // runs off the end
  });

  void it('handles prefixes whose top bit is set (sign of 32-bit words)', () => {
    const t = new AllowedIps<string>();
    t.insert(P('128.0.0.0/1'), 'hi');
    t.insert(P('0.0.0.0/1'), 'lo');
    t.insert(P('255.255.255.255/32'), 'max');
    t.insert(P('8000::/1'), 'hi6');
    t.insert(P('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128'), 'max6');
    t.insert(P('::8000:0/97'), 'mid6');
    assert.equal(t.lookup('200.1.1.1'), 'hi');
    assert.equal(t.lookup('127.255.255.255'), 'lo');
    assert.equal(t.lookup('255.255.255.255'), 'max');
    assert.equal(t.lookup('255.255.255.254'), 'hi');
    assert.equal(t.lookup('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'), 'max6');
    assert.equal(t.lookup('ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe'), 'hi6');
    assert.equal(t.lookup('::ffff:ffff'), 'mid6');
    assert.equal(t.lookup('::7fff:ffff'), undefined);
  });

  void describe('matches a naive longest-prefix scan', () => {
    for (const family of [4, 6] as const) {
      void it(`IPv${family}: random clustered prefixes, inserts, removes, lookups`, () => {
        fuzz(family, 1000 + family);
      });
    }
  });
});

interface RefEntry {
  prefix: Prefix;
  value: number;
}

function prefixContains(p: Prefix, addr: Uint8Array): boolean {
  const whole = p.bits >> 3;
  for (let i = 0; i < whole; i++) if (p.bytes[i] !== addr[i]) return false;
  const rest = p.bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((p.bytes[whole] as number) & mask) === ((addr[whole] as number) & mask);
}

function naiveLookup(ref: Map<string, RefEntry>, family: 4 | 6, addr: Uint8Array): number | undefined {
  let best: RefEntry | undefined;
  for (const e of ref.values()) {
    if (e.prefix.family !== family || !prefixContains(e.prefix, addr)) continue;
    if (best === undefined || e.prefix.bits > best.prefix.bits) best = e;
  }
  return best?.value;
}

function fuzz(family: 4 | 6, seed: number): void {
  const rand = rng(seed);
  const len = family === 4 ? 4 : 16;
  const maxBits = len * 8;
  // A few cluster centres; addresses are a centre with some low bits flipped,
  // so prefixes nest and overlap heavily.
  const centres: Uint8Array[] = [];
  for (let i = 0; i < 6; i++) {
    const c = new Uint8Array(len);
    for (let j = 0; j < len; j++) c[j] = Math.floor(rand() * 256);
    centres.push(c);
  }
  const randomAddr = (): Uint8Array => {
    const a = Uint8Array.from(centres[Math.floor(rand() * centres.length)] as Uint8Array);
    if (rand() < 0.05) {
      for (let j = 0; j < len; j++) a[j] = Math.floor(rand() * 256);
      return a;
    }
    // Flip a random number of trailing bits.
    const keep = Math.floor(rand() * (maxBits + 1));
    for (let bit = keep; bit < maxBits; bit++) {
      if (rand() < 0.5) a[bit >> 3] = (a[bit >> 3] as number) ^ (0x80 >> (bit & 7));
    }
    return a;
  };
  const randomBits = (): number => {
    const r = rand();
    if (r < 0.02) return 0;
    if (r < 0.1) return maxBits;
    return Math.floor(rand() * (maxBits + 1));
  };
  const randomPrefix = (): Prefix => {
    const p = parsePrefix(`${formatAddress(family, randomAddr())}/${randomBits()}`);
    return p;
  };

  const t = new AllowedIps<number>();
  const ref = new Map<string, RefEntry>();
  const key = (p: Prefix): string => formatPrefix(p);
  const inserted: Prefix[] = [];

  const checkLookups = (n: number): void => {
    const buf = new Uint8Array(len + 7);
    for (let i = 0; i < n; i++) {
      const a = randomAddr();
      const want = naiveLookup(ref, family, a);
      const text = formatAddress(family, a);
      assert.equal(t.lookup(text), want, `lookup ${text}`);
      buf.set(a, 7);
      const got = family === 4 ? t.lookupV4(buf, 7) : t.lookupV6(buf, 7);
      assert.equal(got, want, `buffer lookup ${text}`);
    }
    // A stored prefix's own network address must resolve to it or to a longer
    // prefix that covers it (checked for a sample).
    let k = 0;
    for (const e of ref.values()) {
      if (k++ % 7 !== 0) continue;
      const want = naiveLookup(ref, family, e.prefix.bytes);
      assert.equal(t.lookup(formatAddress(family, e.prefix.bytes)), want);
    }
  };
  const checkEntries = (): void => {
    assert.equal(t.size, ref.size);
    // Branch points without a value always have two children.
    assert.ok(t.nodeCount() <= Math.max(0, 2 * t.size - 1), `${t.nodeCount()} nodes for ${t.size}`);
    const got = t.entries().map((e) => `${key(e.prefix)}=${e.value}`).sort();
    const want = [...ref.values()].map((e) => `${key(e.prefix)}=${e.value}`).sort();
    assert.deepEqual(got, want);
    for (let v = 0; v < 20; v++) {
      const gotFor = t.entriesFor(v).map(key).sort();
      const wantFor = [...ref.values()].filter((e) => e.value === v).map((e) => key(e.prefix)).sort();
      assert.deepEqual(gotFor, wantFor, `entriesFor ${v}`);
    }
  };

  for (let round = 0; round < 4; round++) {
    for (let i = 0; i < 1500; i++) {
      const p = randomPrefix();
      const v = Math.floor(rand() * 20);
      t.insert(p, v);
      ref.set(key(p), { prefix: p, value: v });
      inserted.push(p);
    }
    checkEntries();
    checkLookups(1500);

    // Remove some single prefixes (present or not) ...
    for (let i = 0; i < 400; i++) {
      const p = rand() < 0.7 ? (inserted[Math.floor(rand() * inserted.length)] as Prefix) : randomPrefix();
      assert.equal(t.remove(p), ref.delete(key(p)), `remove ${key(p)}`);
    }
    // ... and every prefix of a couple of values.
    for (let i = 0; i < 2; i++) {
      const v = Math.floor(rand() * 20);
      let n = 0;
      for (const [k, e] of ref) {
        if (e.value === v) {
          ref.delete(k);
          n++;
        }
      }
      assert.equal(t.removeValue(v), n);
    }
    checkEntries();
    checkLookups(1500);
  }

  // Draining everything leaves an empty table.
  for (const e of [...ref.values()]) {
    assert.equal(t.remove(e.prefix), true);
    ref.delete(key(e.prefix));
  }
  assert.equal(t.size, 0);
  assert.equal(t.nodeCount(), 0);
  assert.deepEqual(t.entries(), []);
  checkLookups(200);
}
