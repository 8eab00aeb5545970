/**
 * warrend refuses what it will not run, clearly and before touching the system:
 * a malformed wg-quick file gets `FILE:LINE: what` on stderr and exit code 2;
 * a missing file, an unknown flag and the test timer profile outside test mode
 * are refused with a message and a non-zero exit. Each run happens inside a
 * lab namespace, and afterwards that namespace has no TUN, no extra route and
 * no policy rule left behind.
 */
import * as assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Lab } from '../helpers/lab.js';
import type { ShResult } from '../helpers/lab.js';
import { genKeyPair } from '../helpers/wg.js';
import { WARREND, startWarrend } from '../helpers/warrend.js';

const TUN = 'wgbad0';
const key = genKeyPair();
const peerKey = genKeyPair();

interface BadConfig {
  name: string;
  text: string[];
  line: number;
  message: RegExp;
}

/** Each `text` is the file, one array item per line; `line` is where the mistake is (1-based). */
const BAD: BadConfig[] = [
  {
    name: 'PostUp hook',
    text: ['[Interface]', `PrivateKey = ${key.privateKey}`, 'Address = 10.66.0.1/24', 'PostUp = iptables -A FORWARD -i %i -j ACCEPT'],
    line: 4,
    message: /PostUp is not supported by warrend \(it never runs shell commands from a config\)/,
  },
  {
    name: 'unknown key',
    text: ['# a comment', '[Interface]', `PrivateKey = ${key.privateKey}`, 'Frobnicate = yes'],
    line: 4,
    message: /unknown key "Frobnicate" in \[Interface\]/,
  },
  {
    name: 'bad base64 public key',
    text: ['[Interface]', `PrivateKey = ${key.privateKey}`, '', '[Peer]', 'PublicKey = not-a-key', 'AllowedIPs = 10.66.0.2/32'],
    line: 5,
    message: /PublicKey: "not-a-key" is not a base64 key of 32 bytes/,
  },
  {
    name: 'short base64 private key',
    text: ['[Interface]', `PrivateKey = ${Buffer.alloc(31, 7).toString('base64')}`],
    line: 2,
    message: /PrivateKey: .*is not a base64 key of 32 bytes/,
  },
  {
    name: 'bad AllowedIPs prefix',
    text: ['[Interface]', `PrivateKey = ${key.privateKey}`, '[Peer]', `PublicKey = ${peerKey.publicKey}`, 'AllowedIPs = 10.66.0.2/32, 10.67.0.0/33', 'Endpoint = 10.201.0.2:51820'],
    line: 5,
    message: /AllowedIPs: "10\.67\.0\.0\/33" is not an IP prefix/,
  },
  {
    name: 'missing PrivateKey',
    text: ['# no key here', '', '[Interface]', 'Address = 10.66.0.1/24', '[Peer]', `PublicKey = ${peerKey.publicKey}`, 'AllowedIPs = 0.0.0.0/0'],
    line: 3,
    message: /\[Interface\] has no PrivateKey/,
  },
  {
    name: 'key outside a section',
    text: ['# keys first, section later', `PrivateKey = ${key.privateKey}`, '[Interface]', 'Address = 10.66.0.1/24'],
    line: 2,
    message: /PrivateKey is outside any section \(put it under \[Interface\]\)/,
  },
];

void describe('warrend refuses bad configuration and flags', () => {
  const lab = Lab.create('cfgerr');
  let ns = '';
  let dir = '';
  let baseline = { links: '', routes: '', rules4: '', rules6: '' };

  /** Links, routes and rules in the namespace (what a failed start must not change). */
  async function snapshot(): Promise<typeof baseline> {
    const text = async (args: string[]): Promise<string> => (await lab.sh(ns, args)).stdout;
    return {
      links: (await text(['ip', '-o', 'link', 'show'])).replace(/\s+/g, ' '),
      // (eth0's link-local address settles on its own time: leave fe80:: out.)
      routes: (await text(['ip', 'route', 'show', 'table', 'all'])).split('\n').filter((l) => !l.includes('fe80::')).join('\n'),
      rules4: await text(['ip', '-4', 'rule', 'show']),
      rules6: await text(['ip', '-6', 'rule', 'show']),
    };
  }

  async function assertNothingLeft(what: string): Promise<void> {
    const now = await snapshot();
    assert.doesNotMatch(now.links, new RegExp(`\\b${TUN}\\b`), `${what}: no TUN left behind`);
    assert.deepEqual(now, baseline, `${what}: links, routes and rules unchanged`);
  }

  function runWarrend(args: string[], env: Record<string, string> = {}): Promise<ShResult> {
    return lab.sh(ns, ['node', WARREND, ...args], {
      allowFail: true,
      timeoutMs: 20_000,
      env: { WARREN_TEST_MODE: '0', WARREN_TIMERS: 'production', WARREN_LOG: 'info', ...env },
    });
  }

  function daemonArgs(config: string, tag: string): string[] {
    return ['--wg-config', config, '--tun', TUN, '--socket', join(dir, `${tag}.sock`), '--state-dir', join(dir, `state-${tag}`)];
  }

  before(async () => {
    ns = await lab.ns('c');
    await lab.veth(ns, 'eth0', await lab.ns('peer'), 'eth0');
    await lab.addr(ns, 'eth0', '10.201.0.1/24');
    dir = mkdtempSync(join(tmpdir(), `${lab.prefix}-cfg-`));
    lab.trackPath(dir);
    baseline = await snapshot();
  });
  after(() => lab.cleanup());

  for (const bad of BAD) {
    void test(`${bad.name}: exit 2 and "FILE:${bad.line}: ..." on stderr`, async () => {
      const file = join(dir, `${bad.name.replace(/\W+/g, '-')}.conf`);
      writeFileSync(file, bad.text.join('\n') + '\n', { mode: 0o600 });
      const r = await runWarrend(daemonArgs(file, 'bad'));
      assert.equal(r.code, 2, `exit code; stderr:\n${r.stderr}`);
      const first = r.stderr.trim().split('\n')[0] ?? '';
      assert.ok(first.startsWith(`warrend: ${file}:${bad.line}: `), `names the file and line ${bad.line}: ${first}`);
      assert.match(first, bad.message);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      assert.doesNotMatch(r.stderr, /ready: /);
      assert.equal(r.stdout, '');
      await assertNothingLeft(bad.name);
    });
  }

  void test('a missing file: a clear message naming it, non-zero exit', async () => {
    const file = join(dir, 'no-such-file.conf');
    const r = await runWarrend(daemonArgs(file, 'missing'));
    assert.equal(r.code, 2, 'a configuration error');
    assert.match(r.stderr, new RegExp(`cannot read ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: ENOENT`));
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    await assertNothingLeft('missing file');
  });

  void test('an unknown flag: usage and exit 2', async () => {
    const r = await runWarrend(['--wg-conifg', '/dev/null', '--tun', TUN]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--wg-conifg/, 'names the flag');
    assert.match(r.stderr, /^usage: warrend --wg-config FILE/m);
    await assertNothingLeft('unknown flag');
  });

  void test('WARREN_TIMERS=test without WARREN_TEST_MODE=1 is refused; with it the same config runs', async () => {
    const file = join(dir, 'good.conf');
    const good = [
      '[Interface]', `PrivateKey = ${key.privateKey}`, 'Address = 10.66.0.1/24',
      '[Peer]', `PublicKey = ${peerKey.publicKey}`, 'AllowedIPs = 10.66.0.2/32', 'Endpoint = 10.201.0.2:51820',
    ].join('\n') + '\n';
    writeFileSync(file, good, { mode: 0o600 });
    const r = await runWarrend(daemonArgs(file, 'timers'), { WARREN_TIMERS: 'test' });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /WARREN_TIMERS=test\b.*need WARREN_TEST_MODE=1/);
    assert.doesNotMatch(r.stderr, /ready: /);
    await assertNothingLeft('test timers outside test mode');

    // Control: the refusal is about the knob, not the file — in test mode it starts.
    const w = await startWarrend(lab, ns, good, { tun: TUN, env: { WARREN_TIMERS: 'test' } });
    assert.match((await lab.sh(ns, ['ip', 'link', 'show', TUN])).stdout, new RegExp(`\\b${TUN}\\b`));
    await w.stop();
    assert.equal((await w.proc.exited).code, 0, w.proc.tail());
    await assertNothingLeft('after a clean stop');
  });
});
