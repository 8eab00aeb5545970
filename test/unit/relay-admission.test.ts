/**
 * Relay admission between warren-control and warren-relay:
 *
 * - the admission stream needs the shared secret (401 otherwise, 404 when
 *   the control server has no relay secret), and a relay with a wrong secret
 *   admits nobody;
 * - with control down the relay keeps its last list: sessions keep
 *   forwarding, known nodes can still connect, clients are told the relay's
 *   health; the list comes back fresh when control does;
 * - the AdmissionSet's replace/apply semantics (revocations);
 * - the secret file and relay map checks, and their flags on both CLIs.
 */
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rawLogin, startRelayRig, until, type RelayRig } from '../helpers/relay.js';
import { httpJson, startInProcessServer } from '../helpers/sim-node.js';
import { AdmissionSet } from '../../src/server/relay/admission-set.js';
import { AdmissionClient } from '../../src/server/relay/admission-client.js';
import { readSecretFile } from '../../src/server/relay/secret-file.js';
import { loadRelayMapFile } from '../../src/server/control/relay-admission.js';
import { main as controlMain } from '../../src/server/control/cli.js';
import { main as relayMain } from '../../src/server/relay/cli.js';
import { ADMISSION_PATH, ADMISSION_UPGRADE_PROTOCOL } from '../../src/wire/relay-admission.js';

const dir = mkdtempSync(join(tmpdir(), 'warren-relaya-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const upgradeHeaders = (secret?: string): Record<string, string> => ({
  connection: 'Upgrade', upgrade: ADMISSION_UPGRADE_PROTOCOL, ...(secret !== undefined ? { authorization: `Bearer ${secret}` } : {}),
});

describe('the admission stream', () => {
  let rig: RelayRig;
  before(async () => {
    rig = await startRelayRig(join(dir, 'rig'), { controlKeepaliveMs: 200 });
    await until('admission list', () => rig.admission.loaded);
  });
  after(() => rig.stop());

  it('refuses a wrong or missing relay secret with 401', async () => {
    for (const secret of [undefined, 'x'.repeat(48), `${rig.secret.toString()}x`]) {
      const r = await httpJson(rig.control.sim, 'GET', ADMISSION_PATH, undefined, { headers: upgradeHeaders(secret), fresh: true });
      assert.equal(r.status, 401, r.text);
      assert.equal((r.body as { code: string }).code, 'bad_relay_secret');
    }
  });

  it('a relay with the wrong secret never gets a list, and admits nobody', async () => {
    const set = new AdmissionSet();
    const errors: string[] = [];
    const c = new AdmissionClient({
      url: rig.control.sim.url.href, fingerprint: rig.control.sim.fingerprint, secret: Buffer.from('w'.repeat(40)), set,
      log: (_l, m) => errors.push(m), backoff: { minMs: 20, maxMs: 50 },
    });
    c.start();
    await until('a refusal', () => errors.some((e) => /refused our relay secret \(HTTP 401/.test(e)));
    c.stop();
    assert.equal(set.loaded, false);
    assert.equal(set.size, 0);
  });

  it('sends the current nodes, then adds and removes them as they come and go', async () => {
    const a = await rig.node('adm-a');
    await until('A admitted', () => rig.admission.tailnetOf(a.nodeKey) === 'default');
    const x = await rig.node('adm-x', 'blue');
    await until('X admitted in its tailnet', () => rig.admission.tailnetOf(x.nodeKey) === 'blue');
    await rig.control.server.deleteNode(x.registration!.nodeId);
    await until('X removed', () => rig.admission.tailnetOf(x.nodeKey) === undefined);
    assert.equal(rig.admission.tailnetOf(a.nodeKey), 'default');
  });

  it('keeps the stream alive with keepalives (no reconnects while idle)', async () => {
    const ups = rig.logs.filter((l) => /admission stream to .* up/.test(l)).length;
    await new Promise((r) => setTimeout(r, 1000)); // 2.5 × the read deadline of 400 ms
    assert.equal(rig.admissionClient.connected, true);
    assert.equal(rig.logs.filter((l) => /admission stream to .* up/.test(l)).length, ups);
  });
});

describe('control server without a relay secret', () => {
  it('answers the admission path with 404', async () => {
    const c = await startInProcessServer(mkdtempSync(join(dir, 'plain-')));
    try {
      const r = await httpJson(c.sim, 'GET', ADMISSION_PATH, undefined, { headers: upgradeHeaders('y'.repeat(40)), fresh: true });
      assert.equal(r.status, 404);
      assert.equal((r.body as { code: string }).code, 'relay_admission_disabled');
    } finally {
      await c.stop();
    }
  });
});

describe('control down', () => {
  it('the relay keeps its last list: sessions go on, known nodes still connect, clients hear the health', async () => {
    const rig = await startRelayRig(join(dir, 'down'), { controlKeepaliveMs: 200 });
    try {
      await until('admission list', () => rig.admission.loaded);
      const a = await rig.node('down-a'), b = await rig.node('down-b'), late = await rig.node('down-late');
      await until('all admitted', () => [a, b, late].every((n) => rig.admission.tailnetOf(n.nodeKey) !== undefined));
      const ra = (await rawLogin(rig, a.node)).r, rb = (await rawLogin(rig, b.node)).r;
      await rig.control.stop();
      await until('the relay to notice control is gone', () => !rig.admissionClient.connected, 3000);
      await ra.waitFor('health');
      assert.match(ra.of('health').at(-1)!.text, /control unreachable/);
      ra.send({ type: 'send-packet', key: b.node.publicKey, data: Buffer.from('still relayed') });
      await rb.waitFor('recv-packet');
      const { r: rl, verdict } = await rawLogin(rig, late.node);
      assert.equal(verdict.type, 'server-ok', 'a node on the last list is admitted while control is down');
      assert.equal(rig.admission.size, 3);
      for (const r of [ra, rb, rl]) r.close();
    } finally {
      await rig.stop();
    }
  });
});

describe('AdmissionSet', () => {
  it('replace and apply report exactly the keys that lost admission', () => {
    const s = new AdmissionSet(() => 1);
    const revoked: string[][] = [];
    s.onRevoke((k) => revoked.push(k));
    assert.equal(s.loaded, false);
    s.replace([{ key: 'A', tailnet: 't' }, { key: 'B', tailnet: 't' }]);
    assert.equal(s.loaded, true);
    s.apply([{ key: 'C', tailnet: 't' }], ['A', 'Z']);
    s.apply([{ key: 'B', tailnet: 'u' }], []); // moved tailnet: its sessions must go
    s.replace([{ key: 'C', tailnet: 't' }]);
    assert.deepEqual(revoked, [['A'], ['B'], ['B']]);
    assert.equal(s.tailnetOf('C'), 't');
    assert.equal(s.size, 1);
  });
});

describe('secret file and relay map', () => {
  const file = (name: string, content: string, mode = 0o600): string => {
    const p = join(dir, name);
    writeFileSync(p, content);
    chmodSync(p, mode);
    return p;
  };

  it('refuses a world-readable or short secret, naming the flag and the file', () => {
    assert.throws(() => readSecretFile(file('open', 'z'.repeat(40), 0o644), '--relay-secret-file'), /--relay-secret-file .*open: the file is readable by everyone \(mode 0644\)/);
    assert.throws(() => readSecretFile(file('short', 'z'.repeat(31) + '\n'), '--relay-secret-file'), /31 bytes; it must be at least 32/);
    assert.throws(() => readSecretFile(file('spaces', 'z'.repeat(20) + ' ' + 'z'.repeat(20)), '--x'), /printable ASCII without spaces/);
    assert.throws(() => readSecretFile(join(dir, 'missing'), '--x'), /cannot read it \(ENOENT\)/);
    assert.equal(readSecretFile(file('good', 'z'.repeat(32) + '\n', 0o640), '--x').toString(), 'z'.repeat(32));
  });

  it('validates the relay map, naming the file and the field', () => {
    const good = { regions: [{ id: 1, code: 'home', name: 'Home', nodes: [{ name: 'r1', url: 'https://192.0.2.1:443', fingerprint: null, stun: ['192.0.2.1:3478'] }] }] };
    assert.deepEqual(loadRelayMapFile(file('map.json', JSON.stringify(good))), good);
    const bad = structuredClone(good);
    (bad.regions[0]!.nodes[0] as { fingerprint: string | null }).fingerprint = 'nope';
    assert.throws(() => loadRelayMapFile(file('bad.json', JSON.stringify(bad))), /--relay-map .*bad\.json: regions\[0\]\.nodes\[0\]\.fingerprint: not a SHA-256 fingerprint/);
    assert.throws(() => loadRelayMapFile(file('junk.json', '{')), /--relay-map .*junk\.json: not JSON/);
  });

  it('warren-control serve refuses to start on a bad relay secret or relay map', async () => {
    const err: string[] = [];
    const io = { out: () => undefined, err: (s: string) => err.push(s) };
    const base = ['serve', '--listen', '127.0.0.1:1', '--db', `sqlite:${join(dir, 'cli.db')}`, '--tls-self-signed'];
    assert.equal(await controlMain([...base, '--relay-secret-file', file('cli-open', 'q'.repeat(40), 0o604)], io), 1);
    assert.match(err.join(''), /--relay-secret-file .*cli-open: the file is readable by everyone/);
    assert.equal(await controlMain([...base, '--relay-map', file('cli-map.json', '{"regions": [{"id": 0}]}')], io), 1);
    assert.match(err.join(''), /--relay-map .*cli-map\.json: regions\[0\]\.id: must be >= 1/);
  });

  it('warren-relay checks its flags before starting', async () => {
    const err: string[] = [];
    const io = { out: () => undefined, err: (s: string) => err.push(s) };
    const secret = file('relay-secret', 'r'.repeat(40));
    const base = ['--listen', '127.0.0.1:1', '--tls-self-signed', '--state-dir', join(dir, 'relay-state')];
    assert.equal(await relayMain([...base, '--control-secret-file', secret], io), 2);
    assert.match(err.join(''), /--control URL is required/);
    assert.equal(await relayMain(['--listen', 'nowhere', '--tls-self-signed', '--control', 'https://127.0.0.1:1', '--control-secret-file', secret], io), 2);
    assert.match(err.join(''), /--listen "nowhere": want IP:PORT/);
    assert.equal(await relayMain([...base, '--control', 'https://127.0.0.1:1', '--control-secret-file', file('relay-open', 'r'.repeat(40), 0o644)], io), 1);
    assert.match(err.join(''), /--control-secret-file .*relay-open: the file is readable by everyone/);
    assert.equal(await relayMain([...base, '--control', 'https://127.0.0.1:1', '--control-secret-file', secret, '--control-fingerprint', 'xyz'], io), 1);
    assert.match(err.join(''), /not a SHA-256 certificate fingerprint/);
    assert.equal(await relayMain(['fingerprint', '--state-dir', join(dir, 'nothing-here')], io), 1);
    assert.match(err.join(''), /no certificate at/);
  });
});
