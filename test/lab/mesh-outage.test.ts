/**
 * A silent outage between one node and the control server: nft DROP rules in
 * the node's namespace (input and output, for the server's addresses — no
 * reject, so nothing tells either side). The node must notice within its read
 * deadline (2 × the 2 s test keepalive) and say so in `warren status`, keep
 * its tunnels to the other nodes working the whole time, reconnect once the
 * path is back, and catch up through versioned deltas: a rename and a new
 * node made during the outage reach it.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { Lab, waitFor } from '../helpers/lab.js';
import { MeshLab, useControl, type NodeHandle, type ControlHandle } from '../helpers/mesh.js';
import type { MeshStatus } from '../../src/control/mesh-status.js';

const lab = Lab.create('meshout');
after(() => lab.cleanup());

/** Read deadline of the node: twice the control server's test keepalive (WARREN_CONTROL_KEEPALIVE=2s in MeshLab). */
const READ_DEADLINE_MS = 2 * 2000;
const TABLE = 'warren_outage';

function v4(addrs: string[]): string {
  return addrs.find((a) => a.endsWith('/32'))!.replace(/\/32$/, '');
}

function v6(addrs: string[]): string {
  return addrs.find((a) => a.endsWith('/128'))!.replace(/\/128$/, '');
}

async function ping(from: NodeHandle, addr: string): Promise<void> {
  const r = await lab.sh(from.ns, ['ping', '-c', '2', '-i', '0.2', '-W', '2', addr], { allowFail: true });
  assert.equal(r.code, 0, `${from.name}: ping ${addr} failed:\n${r.stdout}${r.stderr}`);
}

async function dropControl(node: NodeHandle, c: ControlHandle): Promise<void> {
  const ctl4 = new URL(c.url).hostname;
  const ctl6 = ctl4.replace(/^10\.210\.0\./, 'fd7a:5741:210::');
  const nft = (args: string): Promise<unknown> => lab.sh(node.ns, ['nft', args]);
  await nft(`add table inet ${TABLE}`);
  await nft(`add chain inet ${TABLE} in { type filter hook input priority -10 ; policy accept ; }`);
  await nft(`add chain inet ${TABLE} out { type filter hook output priority -10 ; policy accept ; }`);
  await nft(`add rule inet ${TABLE} in ip saddr ${ctl4} counter drop`);
  await nft(`add rule inet ${TABLE} out ip daddr ${ctl4} counter drop`);
  await nft(`add rule inet ${TABLE} in ip6 saddr ${ctl6} counter drop`);
  await nft(`add rule inet ${TABLE} out ip6 daddr ${ctl6} counter drop`);
}

async function restoreControl(node: NodeHandle): Promise<void> {
  await lab.sh(node.ns, ['nft', `delete table inet ${TABLE}`]);
}

/** Packets the node tried to send to the control server and the DROP rules swallowed. */
async function droppedOutbound(node: NodeHandle): Promise<number> {
  const r = await lab.sh(node.ns, ['nft', 'list', 'chain', 'inet', TABLE, 'out']);
  return [...r.stdout.matchAll(/counter packets (\d+)/g)].reduce((sum, x) => sum + Number(x[1]), 0);
}

test('control unreachable (DROP both ways): noticed within the read deadline, tunnels keep working, reconnect catches up by delta', { timeout: 150_000 }, async (t) => {
  const m = new MeshLab(lab);
  await m.init();
  const c = await m.control();
  useControl(c);
  const key = await c.authkey();
  const alpha = await m.node('alpha');
  const beta = await m.node('beta');
  for (const n of [alpha, beta]) {
    const r = await n.up(key);
    assert.equal(r.code, 0, `${n.name}: warren up failed: ${r.stderr}`);
  }
  const st = async (n: NodeHandle): Promise<MeshStatus> => n.status();
  await waitFor('alpha and beta to see each other', async () => {
    const [a, b] = [await st(alpha), await st(beta)];
    return a.peers.length === 1 && b.peers.length === 1 && a.controlConnected && b.controlConnected;
  }, { timeoutMs: 20_000, intervalMs: 200 });
  const aSelf = (await st(alpha)).self!;
  const bSelf = (await st(beta)).self!;
  await ping(alpha, v4(bSelf.addresses));
  await ping(beta, v4(aSelf.addresses));
  const versionBefore = (await st(alpha)).netmapVersion;
  assert.ok(versionBefore !== null, 'alpha has no netmap version');

  // A steady ping alpha → beta over the tunnel for the whole outage and the reconnect.
  const steady = lab.spawn(alpha.ns, ['ping', '-i', '0.2', '-W', '1', v4(bSelf.addresses)], { name: 'steady-ping' });

  // --- the outage
  await dropControl(alpha, c);
  const cut = Date.now();
  // The daemon's own log line marks the moment its read deadline fired (no polling delay in the figure).
  await alpha.proc.waitForOutput(/control stream silent for 4 s: reconnecting/, READ_DEADLINE_MS + 5000);
  const noticedAfter = Date.now() - cut;
  t.diagnostic(`alpha noticed the outage after ${noticedAfter} ms`);
  assert.ok(noticedAfter <= READ_DEADLINE_MS + 1000, `alpha took ${noticedAfter} ms to notice (read deadline ${READ_DEADLINE_MS} ms)`);
  const noticed = await waitFor('warren status to report control unreachable', async () => {
    const s = await st(alpha);
    return !s.controlConnected && s.health.some((h) => h.code === 'control_unreachable') ? s : null;
  }, { timeoutMs: 5000, intervalMs: 100 });
  assert.equal(noticed.backendState, 'Running', 'alpha stopped running on its last netmap');
  assert.match(noticed.health.find((h) => h.code === 'control_unreachable')!.text, /last netmap/);

  // Tunnels keep working during the outage, both ways, IPv4 and IPv6.
  await ping(alpha, v4(bSelf.addresses));
  await ping(beta, v4(aSelf.addresses));
  await ping(alpha, v6(bSelf.addresses));

  // The server notices too (its own read deadline) and tells beta alpha is offline; beta keeps the tunnel.
  await waitFor('beta to hear alpha is offline', async () => (await st(beta)).peers.find((p) => p.id === aSelf.id)?.online === false,
    { timeoutMs: READ_DEADLINE_MS + 8000, intervalMs: 200 });
  await ping(beta, v4(aSelf.addresses));

  // Changes during the outage: beta is renamed, gamma joins.
  const ren = await c.admin(['nodes', 'rename', 'beta', 'beta-renamed']);
  assert.equal(ren.code, 0, ren.stderr);
  const gamma = await m.node('gamma');
  const gr = await gamma.up(key);
  assert.equal(gr.code, 0, gr.stderr);
  await waitFor('beta to see gamma', async () => (await st(beta)).peers.length === 2, { timeoutMs: 15_000, intervalMs: 200 });
  const gSelf = (await st(gamma)).self!;
  // alpha cannot know yet, and still reaches beta on its old netmap.
  const during = await st(alpha);
  assert.equal(during.controlConnected, false);
  assert.equal(during.netmapVersion, versionBefore, 'alpha\'s netmap moved although control was unreachable');
  assert.deepEqual(during.peers.map((p) => p.name), ['beta']);
  await ping(alpha, v4(bSelf.addresses));
  // alpha kept trying (its reconnects ran into the DROP rather than being refused).
  assert.ok(await droppedOutbound(alpha) > 0, 'no packet from alpha to the control server was dropped: did it stop trying?');

  // --- the path comes back
  const logBefore = c.proc.output().length;
  await restoreControl(alpha);
  const restored = Date.now();
  const back = await waitFor('alpha to reconnect and catch up', async () => {
    const s = await st(alpha);
    return s.controlConnected && s.peers.some((p) => p.name === 'beta-renamed') && s.peers.some((p) => p.id === gSelf.id) ? s : null;
  }, { timeoutMs: 45_000, intervalMs: 200 });
  t.diagnostic(`alpha caught up ${Date.now() - restored} ms after the path came back (netmap version ${versionBefore} → ${back.netmapVersion})`);
  assert.ok(back.netmapVersion! > versionBefore!, `netmap version ${back.netmapVersion} did not advance past ${versionBefore}`);
  assert.ok(!back.health.some((h) => h.code === 'control_unreachable'), 'control_unreachable stayed after the reconnect');
  assert.deepEqual(back.peers.map((p) => p.name).sort(), ['beta-renamed', 'gamma']);
  assert.ok(back.peers.every((p) => p.online), 'peers not online in alpha\'s caught-up netmap');

  // Catch-up was a delta: alpha said which version it had (the server answers a known,
  // still-logged version with the missing deltas; a full map only for null or a gap).
  const hello = new RegExp(`node ${aSelf.id} \\(alpha\\) connected from [^,]+, client version (\\w+)`);
  const line = await waitFor('the control server to log alpha\'s reconnect', () => c.proc.output().slice(logBefore).match(hello), { timeoutMs: 5000 });
  assert.equal(line[1], String(versionBefore), `alpha reconnected with client version ${line[1]}, not the ${versionBefore} it had`);

  // The caught-up netmap reached the data plane: alpha reaches the node that joined during the outage.
  await ping(alpha, v4(gSelf.addresses));
  await ping(gamma, v4(aSelf.addresses));
  await ping(alpha, v4(bSelf.addresses));

  await steady.stop('SIGINT');
  const m2 = /(\d+) packets transmitted, (\d+) received/.exec(steady.output());
  assert.ok(m2, `no ping summary:\n${steady.tail()}`);
  const [sent, got] = [Number(m2[1]), Number(m2[2])];
  t.diagnostic(`steady ping through the outage: ${got}/${sent} answered`);
  assert.ok(sent >= 20 && sent - got <= 1, `the tunnel dropped packets during the control outage: ${got}/${sent} answered`);
});
