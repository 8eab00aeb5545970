/**
 * Start-up page trimming (dataplane/io/page-trim.ts, daemon/startup-trim.ts):
 * which smaps mappings may be dropped (only private, read-only, unmodified
 * mappings of the one file), a real drop in this test process (its Node
 * binary's resident pages go, and code keeps running), the native call's
 * argument checks, and the scheduler's one-pending-trim rule.
 */
import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, realpathSync } from 'node:fs';
import { test } from 'node:test';
import { loadNative } from '../../src/dataplane/io/native.js';
import { dropStartupPages, trimmableRanges, type TrimResult } from '../../src/dataplane/io/page-trim.js';
import { StartupTrim } from '../../src/daemon/startup-trim.js';
import { waitFor } from '../helpers/lab.js';

const BIN = '/usr/bin/node';
const mapping = (range: string, perms: string, path: string, rss: number, anon: number | null): string =>
  [`${range} ${perms} 00000000 08:01 1234    ${path}`, `Size:               4096 kB`, `Rss:                ${rss} kB`,
    ...(anon === null ? [] : [`Anonymous:          ${anon} kB`]), `VmFlags: rd ex mr mw me`].join('\n');

test('trimmableRanges keeps only private, read-only, unmodified, resident mappings of the file', () => {
  const smaps = [
    mapping('00400000-00800000', 'r-xp', BIN, 3000, 0), // text: yes
    mapping('00800000-00900000', 'r--p', BIN, 800, 0), // rodata: yes
    mapping('00900000-00a00000', 'r--p', BIN, 100, 8), // relro holding copies: no
    mapping('00a00000-00b00000', 'rw-p', BIN, 200, 0), // data: no
    mapping('00b00000-00c00000', 'r--s', BIN, 50, 0), // shared: no
    mapping('00c00000-00d00000', 'r--p', BIN, 0, 0), // nothing resident: no
    mapping('00d00000-00e00000', 'r--p', BIN, 70, null), // no Anonymous line: no
    mapping('7f0000000000-7f0000100000', 'r-xp', '/usr/lib/x86_64-linux-gnu/libc.so.6', 900, 0), // another file: no
    mapping('7f0000200000-7f0000300000', 'rw-p', '', 500, 500), // anonymous: no
  ].join('\n');
  assert.deepEqual(trimmableRanges(smaps, BIN), [
    { start: 0x400000n, end: 0x800000n, rssKb: 3000 },
    { start: 0x800000n, end: 0x900000n, rssKb: 800 },
  ]);
  assert.deepEqual(trimmableRanges('', BIN), []);
  assert.deepEqual(trimmableRanges('garbage\nRss: 5 kB\n', BIN), []);
});

test('dropping this process\'s start-up pages lowers its file-backed RSS, and code keeps running', () => {
  const bin = realpathSync(process.execPath);
  const before = trimmableRanges(readFileSync('/proc/self/smaps', 'utf8'), bin).reduce((s, r) => s + r.rssKb, 0);
  assert.ok(before > 1024, `the Node binary has ${before} kB resident`);
  const r = dropStartupPages(loadNative());
  assert.equal(r.error, undefined);
  assert.ok(r.mappings >= 1 && r.droppedKb > 1024, JSON.stringify(r));
  assert.ok(r.rssFileAfterKb < r.rssFileBeforeKb - 1024, `RssFile ${r.rssFileBeforeKb} → ${r.rssFileAfterKb} kB`);
  // The pages come back on demand: crypto, JSON, regexps and a module load all still work.
  assert.equal(createHash('sha256').update('warren').digest('hex').length, 64);
  assert.deepEqual(JSON.parse(JSON.stringify({ a: [1, 'x'] })), { a: [1, 'x'] });
  assert.match('start-up', /^start-(\w+)$/);
});

test('madviseDontneed refuses unaligned or empty ranges with -EINVAL', () => {
  const n = loadNative();
  assert.equal(n.madviseDontneed(0x1001n, 4096n), -22);
  assert.equal(n.madviseDontneed(0x1000n, 0n), -22);
  assert.equal(n.madviseDontneed(0n, 4096n), -22);
});

test('StartupTrim: one trim pending at a time (arming again moves it), logged; stop() cancels', async () => {
  const lines: string[] = [];
  let calls = 0;
  const fake = (): TrimResult => {
    calls++;
    return { mappings: 2, droppedKb: 30 * 1024, rssFileBeforeKb: 44 * 1024, rssFileAfterKb: 14 * 1024 };
  };
  const t = new StartupTrim({ delayMs: 1, log: (_l, m) => lines.push(m), trim: fake });
  t.arm('start-up');
  t.arm('first netmap'); // moves the pending trim: one trim, after both
  await waitFor('the trim', () => calls === 1, { timeoutMs: 5000 });
  assert.deepEqual(lines, ['dropped 30.0 MB of start-up pages (first netmap); file-backed RSS 44.0 → 14.0 MB']);
  assert.equal(t.last?.droppedKb, 30 * 1024);

  const failing = new StartupTrim({ delayMs: 1, log: (l, m) => lines.push(`${l}: ${m}`), trim: () => ({ ...fake(), error: 'madvise failed (errno 22)' }) });
  failing.arm('first netmap');
  await waitFor('the failing trim', () => calls === 2, { timeoutMs: 5000 });
  assert.equal(lines[1], 'warn: dropping start-up pages (first netmap): madvise failed (errno 22)');

  const cancelled = new StartupTrim({ delayMs: 50, log: () => undefined, trim: fake });
  cancelled.arm('start-up');
  cancelled.stop();
  const marker = new StartupTrim({ delayMs: 100, log: () => undefined, trim: () => ({ mappings: 0, droppedKb: 0, rssFileBeforeKb: 0, rssFileAfterKb: 0 }) });
  marker.arm('start-up');
  await waitFor('a later trim', () => marker.last !== null, { timeoutMs: 5000 });
  assert.equal(calls, 2, 'the stopped trim never ran');
});
