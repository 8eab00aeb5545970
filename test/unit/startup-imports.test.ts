/**
 * What warrend loads at start, kept small on purpose (measured on Node 20):
 *  - the packet worker never loads valibot or the control protocol's schemas
 *    (as zod schemas they cost the worker 10 MB of RSS and 100+ ms of start-up);
 *  - plain WireGuard mode (daemon/wg-mode) never loads mesh mode, the control
 *    client or the schemas (23 MB and 160 ms with zod);
 *  - daemon/main imports each mode only when that mode starts.
 * Follows static value imports (`import type` is erased) through src.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'src');

/** Every module a file pulls in by static value imports: src files (relative to src) and packages. */
function staticGraph(entry: string): Set<string> {
  const seen = new Set<string>();
  const walk = (file: string): void => {
    const rel = relative(SRC, file);
    if (seen.has(rel)) return;
    seen.add(rel);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^(?:import|export)\s+(?!type\b)[^;]*?from\s+'([^']+)'/gm)) {
      const spec = m[1]!;
      if (spec.startsWith('.')) walk(join(dirname(file), spec.replace(/\.js$/, '.ts')));
      else if (!spec.startsWith('node:')) seen.add(spec);
    }
    // createRequire(...)('pkg') loads a package too
    for (const m of text.matchAll(/createRequire\([^)]*\)\('([^']+)'\)/g)) seen.add(m[1]!);
  };
  walk(join(SRC, entry));
  return seen;
}

test('the packet worker loads neither valibot nor the control protocol', () => {
  const g = staticGraph('dataplane/engine-worker.ts');
  assert.ok(g.has('dataplane/device.ts'), 'the walk follows imports');
  assert.ok(!g.has('valibot'), `valibot is reached from the worker: ${[...g].join(', ')}`);
  assert.ok(!g.has('wire/control.ts'));
});

test('plain WireGuard mode loads no mesh-mode code', () => {
  const g = staticGraph('daemon/wg-mode.ts');
  for (const m of ['valibot', 'wire/control.ts', 'daemon/mesh-mode.ts', 'control/control-client.ts', 'nat/traversal.ts']) assert.ok(!g.has(m), `${m} is reached from wg-mode`);
});

test('daemon/main imports the modes only when one starts', () => {
  const g = staticGraph('daemon/main.ts');
  for (const m of ['daemon/wg-mode.ts', 'daemon/mesh-mode.ts', 'valibot']) assert.ok(!g.has(m), `${m} is a static import of daemon/main`);
});
