/**
 * The test runner behind `make test`: node's own runner over the given files
 * (two at a time), the spec reporter's output and summary, then each file's
 * duration (slowest first) so a slow file is seen before it becomes a problem.
 *   node dist/test/run-tests.js FILE...
 */
import { run } from 'node:test';
import { spec } from 'node:test/reporters';
import { relative } from 'node:path';

const files = process.argv.slice(2);
if (files.length === 0) {
  process.stderr.write('run-tests: no test files given\n');
  process.exit(2);
}
const perFile = new Map<string, number>();
let failed = false;
const stream = run({ files, concurrency: Number(process.env['TEST_CONCURRENCY'] ?? 2), timeout: 300_000 });

type Ev = { nesting: number; file?: string; details: { duration_ms: number } };
const account = (d: Ev): void => {
  if (d.nesting !== 0 || !d.file) return;
  perFile.set(d.file, (perFile.get(d.file) ?? 0) + d.details.duration_ms);
};
stream.on('test:pass', account);
stream.on('test:fail', (d: Ev) => {
  failed = true;
  account(d);
});
// The summary lines ("ℹ tests N" ...) are held back and printed last, after the
// per-file durations, so the run still closes on node's own summary.
const SUMMARY = /^ℹ (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) /;
const held: string[] = [];
let partial = '';
const out = stream.compose(new spec());
out.on('data', (chunk: Buffer | string) => {
  const lines = (partial + chunk.toString()).split('\n');
  partial = lines.pop() ?? '';
  for (const l of lines) {
    if (SUMMARY.test(l)) held.push(l);
    else process.stdout.write(l + '\n');
  }
});
out.on('end', () => {
  if (partial) held.push(partial);
  const rows = [...perFile].sort((a, b) => b[1] - a[1]);
  process.stdout.write('\nfile durations (sum of top-level tests):\n');
  for (const [f, ms] of rows) process.stdout.write(`  ${(ms / 1000).toFixed(1).padStart(7)} s  ${relative(process.cwd(), f)}\n`);
  process.stdout.write(held.join('\n') + '\n');
  if (failed) process.exitCode = 1;
});
