/**
 * Architecture rules, enforced: lower layers never import higher ones, and
 * every src folder has an entry file that says what it owns.
 *
 *   util < crypto, wire < dataplane < control, localapi, server, nat < cli, daemon < cmd
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync, existsSync } from 'node:fs';
import { join, dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'src');
const LAYER: Record<string, number> = { util: 0, crypto: 1, wire: 1, dataplane: 2, control: 3, localapi: 3, server: 3, nat: 3, cli: 4, daemon: 4, cmd: 5 };

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

test('every src folder is a known layer with an entry file that documents it', () => {
  for (const d of readdirSync(SRC)) {
    assert.ok(d in LAYER, `src/${d} is not assigned a layer in this test`);
    const entry = join(SRC, d, 'index.ts');
    assert.ok(existsSync(entry), `src/${d}/index.ts is missing`);
    assert.match(readFileSync(entry, 'utf8'), /^\/\*\*[\s\S]+?\*\//, `src/${d}/index.ts must start with a doc comment`);
  }
});

test('no import goes from a lower layer to a higher one', () => {
  const bad: string[] = [];
  for (const f of files(SRC)) {
    const from = relative(SRC, f).split('/')[0]!;
    for (const m of readFileSync(f, 'utf8').matchAll(/from '(\.[^']+)'/g)) {
      const target = relative(SRC, join(dirname(f), m[1]!)).split('/')[0]!;
      if (target in LAYER && LAYER[target]! > LAYER[from]!) bad.push(`${relative(SRC, f)} imports ${m[1]}`);
    }
  }
  assert.deepEqual(bad, []);
});
