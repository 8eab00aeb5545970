/**
 * Plain WireGuard mode reloads its file on SIGHUP: a new peer appears, an
 * unchanged peer keeps its session, and a broken file is refused while the
 * running configuration stays.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { Lab, twoHosts, waitFor } from '../helpers/lab.js';
import { genKeyPair, startWireguardGo } from '../helpers/wg.js';
import { startWarrend, wgQuickText, type WarrendSpec } from '../helpers/warrend.js';

const lab = Lab.create('reload');
after(() => lab.cleanup());

test('SIGHUP adds a peer, keeps the existing session, and refuses a broken file', async () => {
  const h = await twoHosts(lab);
  const ka = genKeyPair(), kb = genKeyPair(), extra = genKeyPair();
  await startWireguardGo(lab, h.b, {
    ifname: lab.uniqueIfname('wgr'), privateKey: kb.privateKey, listenPort: 51830, addresses: ['10.76.0.2/24'],
    peers: [{ publicKey: ka.publicKey, allowedIps: ['10.76.0.1/32'], endpoint: `${h.aAddr}:51830` }],
  });
  const spec: WarrendSpec = {
    privateKey: ka.privateKey, listenPort: 51830, addresses: ['10.76.0.1/24'],
    peers: [{ publicKey: kb.publicKey, allowedIps: ['10.76.0.2/32'], endpoint: `${h.bAddr}:51830` }],
  };
  const w = await startWarrend(lab, h.a, spec, { tun: 'wgr0' });
  await lab.sh(h.a, ['ping', '-c', '2', '-W', '2', '10.76.0.2']);
  const before = await w.status();
  const hs = before.peers[0]!.latestHandshake;
  assert.ok(hs > 0);

  writeFileSync(w.configPath, wgQuickText({ ...spec, peers: [...spec.peers, { publicKey: extra.publicKey, allowedIps: ['10.76.0.9/32'] }] }));
  process.kill(w.proc.pid, 'SIGHUP');
  await w.proc.waitForOutput(/reloaded /, 10_000);
  const st = await w.status();
  assert.equal(st.peers.length, 2);
  const kept = st.peers.find((p) => p.publicKey === kb.publicKey)!;
  assert.equal(kept.latestHandshake, hs, 'the unchanged peer kept its session (no new handshake)');
  assert.equal(st.counters['handshakes_initiated'], before.counters['handshakes_initiated']);
  const route = await lab.sh(h.a, ['ip', 'route', 'get', '10.76.0.9']);
  assert.match(route.stdout, /dev wgr0/, 'the new peer\'s allowed IP is routed into the tunnel');
  await lab.sh(h.a, ['ping', '-c', '2', '-W', '2', '10.76.0.2']);

  writeFileSync(w.configPath, wgQuickText(spec) + 'PostUp = rm -rf /\n');
  process.kill(w.proc.pid, 'SIGHUP');
  await w.proc.waitForOutput(/reload failed, keeping the running configuration: .*PostUp is not supported/, 10_000);
  await waitFor('status still answered', async () => (await w.status()).peers.length === 2, { timeoutMs: 5_000 });
  await lab.sh(h.a, ['ping', '-c', '1', '-W', '2', '10.76.0.2']);
  assert.ok(w.proc.alive);
});
