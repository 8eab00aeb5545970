/**
 * A tailnet in namespaces with the real binaries: warren-control and three
 * warrend nodes (alpha, beta, gamma) on one bridge, joined with ONE reusable
 * auth key. In order, sharing one tailnet:
 *
 * 1. every pair pings over tailnet IPv4 and IPv6; `warren status --json` on
 *    each lists the other two by name with their addresses, online;
 *    `warren ip [-4|-6]` prints the node's own addresses; `nodes list --json`
 *    shows three online nodes with unique 100.64.0.0/10 addresses, all IPv6
 *    in one ULA /48.
 * 2. the control server restarts (SIGTERM, same database) under a continuous
 *    ping (one echo every 20 ms): at most one goes unanswered, every node resyncs
 *    (controlConnected again, netmapVersion advances) and the database holds
 *    the same nodes (ids, names, addresses, keys).
 * 3. a node restarts (SIGTERM, same state dir): same node key and addresses,
 *    back up without `warren up`, tunnels back both ways; its state dir is
 *    0700 and every file in it 0600.
 * 4. with the control server down, a restarted node brings its tunnels back
 *    from the netmap on disk and reports control_unreachable; once control
 *    is back, it reconnects.
 *
 * Runs with WARREN_TIMERS=test (the MeshLab default): reconnect backoff
 * 200 ms–2 s, control keepalive 2 s.
 */
import * as assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Lab, waitFor } from '../helpers/lab.js';
import type { LabProc } from '../helpers/lab.js';
import { MeshLab, useControl } from '../helpers/mesh.js';
import type { ControlHandle, NodeHandle } from '../helpers/mesh.js';
import type { MeshStatus } from '../../src/control/mesh-status.js';
import type { NodeRecord } from '../../src/server/control/store.js';

const NAMES = ['alpha', 'beta', 'gamma'] as const;
/** Files NodeState keeps once a node has joined and received a netmap. */
const STATE_FILES = ['machine-key', 'node-key', 'disco-key', 'prefs.json', 'registration.json', 'netmap.json'];
/** The continuous ping across the control restart: one echo request every 20 ms. */
const PING_INTERVAL_S = '0.02';
/** Echo replies the continuous ping must see before the restart and after the resync. */
const PINGS_BEFORE_RESTART = 25;
const PINGS_AFTER_RESYNC = 50;
/** Echo requests tolerated unanswered across the control restart (a tunnel flap of 50 ms already loses more). */
const MAX_LOST = 1;

const bare = (cidr: string): string => cidr.replace(/\/\d+$/, '');

interface Addrs {
  v4: string;
  v6: string;
}

/** The identity fields that must survive any restart. */
function identity(n: NodeRecord): Pick<NodeRecord, 'id' | 'name' | 'ipv4' | 'ipv6' | 'nodeKey' | 'machineKey' | 'discoKey'> {
  return { id: n.id, name: n.name, ipv4: n.ipv4, ipv6: n.ipv6, nodeKey: n.nodeKey, machineKey: n.machineKey, discoKey: n.discoKey };
}

describe('mesh: control server + three nodes', { timeout: 150_000 }, () => {
  const lab = Lab.create('mesh');
  const m = new MeshLab(lab);
  let c: ControlHandle;
  const nodes = new Map<string, NodeHandle>();
  const addrs = new Map<string, Addrs>();
  const node = (name: string): NodeHandle => {
    const n = nodes.get(name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  };
  const addrOf = (name: string): Addrs => {
    const a = addrs.get(name);
    if (!a) throw new Error(`no addresses for ${name}`);
    return a;
  };

  after(() => lab.cleanup());

  before(async () => {
    await m.init();
    c = await m.control();
    useControl(c);
    for (const name of NAMES) nodes.set(name, await m.node(name));
  });

  async function nodesList(): Promise<NodeRecord[]> {
    const r = await c.admin(['nodes', 'list', '--json']);
    assert.equal(r.code, 0, `nodes list: ${r.stderr}`);
    return (JSON.parse(r.stdout) as NodeRecord[]).sort((x, y) => x.id - y.id);
  }

  /** One echo over the tunnel succeeds within the deadline (the first may wait for a handshake). */
  async function pingOk(from: string, to: string, family: 'v4' | 'v6', timeoutMs = 20_000): Promise<void> {
    const target = addrOf(to)[family];
    await waitFor(`${from} → ${to} ping ${target}`, async () => {
      const r = await lab.sh(node(from).ns, ['ping', '-n', '-c', '1', '-W', '1', target], { allowFail: true });
      return r.code === 0;
    }, { timeoutMs, intervalMs: 100 });
  }

  async function pingBothWays(name: string, peers: readonly string[]): Promise<void> {
    // The named node first: after its restart, it starts the new handshakes.
    for (const p of peers) for (const fam of ['v4', 'v6'] as const) await pingOk(name, p, fam);
    for (const p of peers) for (const fam of ['v4', 'v6'] as const) await pingOk(p, name, fam);
  }

  /** Wait until this node is Running, connected to control (no control_unreachable), with both peers online and a netmap newer than minVersion. */
  async function waitResynced(name: string, minVersion: number | null, timeoutMs = 20_000): Promise<MeshStatus> {
    return waitFor(`${name} connected to control with netmap version > ${minVersion}`, async () => {
      const st = await node(name).status();
      const peersOnline = st.peers.length === 2 && st.peers.every((p) => p.online);
      const newer = minVersion === null || (st.netmapVersion !== null && st.netmapVersion > minVersion);
      const unreachable = st.health.some((h) => h.code === 'control_unreachable');
      return st.controlConnected && peersOnline && newer && !unreachable && st.backendState === 'Running' ? st : false;
    }, { timeoutMs, intervalMs: 100 });
  }

  test('three nodes join with one reusable key; every pair pings over IPv4 and IPv6; status, ip and nodes list agree', async () => {
    const key = await c.authkey(['--reusable']);
    const ups = await Promise.all(NAMES.map((n) => node(n).up(key)));
    for (const [i, r] of ups.entries()) assert.equal(r.code, 0, `warren up on ${NAMES[i]}: ${r.stderr}`);

    // The auth key list shows one key, used three times.
    const keys = await c.admin(['authkey', 'list', '--json']);
    const keyRecs = JSON.parse(keys.stdout) as Array<{ reusable: boolean; usedCount: number }>;
    assert.equal(keyRecs.length, 1);
    assert.deepEqual({ reusable: keyRecs[0]?.reusable, usedCount: keyRecs[0]?.usedCount }, { reusable: true, usedCount: 3 });

    // Server side: three online nodes, unique addresses from 100.64.0.0/10 and one ULA /48.
    const list = await waitFor('three online nodes in nodes list', async () => {
      const l = await nodesList();
      return l.length === 3 && l.every((n) => n.online) ? l : false;
    });
    assert.deepEqual(list.map((n) => n.name).sort(), [...NAMES]);
    const cgnat = new BlockList();
    cgnat.addSubnet('100.64.0.0', 10, 'ipv4');
    const ula = new BlockList();
    ula.addSubnet('fc00::', 7, 'ipv6');
    const first48 = new BlockList();
    first48.addSubnet(list[0]!.ipv6, 48, 'ipv6');
    for (const n of list) {
      assert.ok(isIPv4(n.ipv4) && cgnat.check(n.ipv4, 'ipv4'), `${n.name}: ${n.ipv4} not in 100.64.0.0/10`);
      assert.ok(isIPv6(n.ipv6) && ula.check(n.ipv6, 'ipv6'), `${n.name}: ${n.ipv6} not a ULA`);
      assert.ok(first48.check(n.ipv6, 'ipv6'), `${n.name}: ${n.ipv6} outside the tailnet's /48 (${list[0]!.ipv6}/48)`);
    }
    assert.equal(new Set(list.map((n) => n.ipv4)).size, 3, 'IPv4 addresses must be unique');
    assert.equal(new Set(list.map((n) => n.ipv6)).size, 3, 'IPv6 addresses must be unique');
    assert.equal(new Set(list.map((n) => n.nodeKey)).size, 3, 'node keys must be unique');

    // Node side: `warren ip` prints the node's own addresses, the same the server granted.
    for (const name of NAMES) {
      const h = node(name);
      const rec = list.find((n) => n.name === name)!;
      const v4 = await h.cli(['ip', '-4']);
      const v6 = await h.cli(['ip', '-6']);
      const both = await h.cli(['ip']);
      assert.equal(v4.code, 0, v4.stderr);
      assert.equal(v6.code, 0, v6.stderr);
      assert.equal(both.code, 0, both.stderr);
      assert.equal(v4.stdout, `${rec.ipv4}\n`, `${name}: warren ip -4`);
      assert.equal(v6.stdout, `${rec.ipv6}\n`, `${name}: warren ip -6`);
      assert.deepEqual(both.stdout.trim().split('\n').sort(), [rec.ipv4, rec.ipv6].sort(), `${name}: warren ip`);
      addrs.set(name, { v4: rec.ipv4, v6: rec.ipv6 });
    }

    // `warren status --json` on each lists the other two by name, with their addresses, online.
    for (const name of NAMES) {
      const st = await waitResynced(name, null);
      assert.equal(st.self?.name, name);
      assert.deepEqual(st.self?.addresses.map(bare).sort(), [addrOf(name).v4, addrOf(name).v6].sort());
      const others = NAMES.filter((n) => n !== name);
      assert.deepEqual(st.peers.map((p) => p.name).sort(), others);
      for (const p of st.peers) {
        assert.deepEqual(p.addresses.map(bare).sort(), [addrOf(p.name).v4, addrOf(p.name).v6].sort(), `${name} sees ${p.name}'s addresses`);
        assert.equal(p.nodeKey, list.find((n) => n.name === p.name)?.nodeKey, `${name} sees ${p.name}'s node key`);
        assert.equal(p.online, true, `${name} sees ${p.name} online`);
      }
    }

    // Every ordered pair, both families, over the tunnel.
    for (const from of NAMES) {
      for (const to of NAMES) {
        if (from === to) continue;
        await pingOk(from, to, 'v4');
        await pingOk(from, to, 'v6');
      }
    }
    // The pings went through the WireGuard sessions: every peer has a handshake and traffic.
    for (const name of NAMES) {
      const st = await node(name).status();
      for (const p of st.peers) {
        assert.ok(p.latestHandshake > 0, `${name} ↔ ${p.name}: no handshake`);
        assert.ok(p.rxBytes > 0 && p.txBytes > 0, `${name} ↔ ${p.name}: no bytes (rx ${p.rxBytes}, tx ${p.txBytes})`);
        // Path choice picks a LAN address of either family (no relay in this tailnet).
        assert.match(p.endpoint ?? '', /^(10\.210\.0\.|\[fd7a:5741:210::)/, `${name} ↔ ${p.name}: endpoint ${p.endpoint}`);
        assert.equal(p.path, p.endpoint, `${name} ↔ ${p.name}: path choice and WireGuard agree`);
      }
    }
  });

  test('control server restart: the tunnel keeps running, nodes resync, the database keeps every node', async (t) => {
    const listBefore = await nodesList();
    const versions = new Map<string, number>();
    for (const name of NAMES) {
      const st = await waitResynced(name, null);
      assert.notEqual(st.netmapVersion, null);
      versions.set(name, st.netmapVersion!);
    }

    // A continuous ping alpha → beta across the whole restart.
    const ping: LabProc = lab.spawn(node('alpha').ns, ['ping', '-n', '-i', PING_INTERVAL_S, '-W', '1', addrOf('beta').v4], { name: 'ping-across-restart' });
    const replied = (): Set<number> => new Set([...ping.output().matchAll(/bytes from .*icmp_seq=(\d+)/g)].map((x) => Number(x[1])));
    const lastSeq = (): number => Math.max(0, ...replied());
    await waitFor('continuous ping running', () => lastSeq() >= PINGS_BEFORE_RESTART, { timeoutMs: 15_000, signal: ping.exitSignal });

    const old = c.proc;
    const seqAtRestart = lastSeq();
    await c.restart();
    const oldExit = await old.exited;
    assert.equal(oldExit.code, 0, `warren-control did not exit cleanly on SIGTERM: ${old.describeExit()}\n${old.tail()}`);
    assert.match(old.output(), /SIGTERM: shutting down/);

    // Every node reconnects on its own and gets a newer netmap (the server logs a resync at start).
    for (const name of NAMES) await waitResynced(name, versions.get(name)!);

    // The ping keeps going for a while after the resync, then stops.
    const seqAtResync = lastSeq();
    await waitFor(`${PINGS_AFTER_RESYNC} more echo replies after the resync`, () => lastSeq() >= seqAtResync + PINGS_AFTER_RESYNC,
      { timeoutMs: 15_000, signal: ping.exitSignal });
    await ping.stop('SIGINT');
    // Count the gaps among the sequence numbers up to the last reply (a request still in flight at SIGINT is no loss).
    const seqs = replied();
    const last = Math.max(...seqs);
    const missing = [...Array(last).keys()].map((i) => i + 1).filter((q) => !seqs.has(q));
    t.diagnostic(`ping alpha → beta every ${PING_INTERVAL_S} s across the control restart: seq 1..${last}, restart at ${seqAtRestart}, resynced at ${seqAtResync}, ${missing.length} lost`);
    assert.ok(seqAtResync > seqAtRestart, 'the ping did not run during the restart');
    assert.ok(missing.length <= MAX_LOST, `the tunnel lost echo requests ${missing.join(', ')} of 1..${last} across the control restart (restart at ${seqAtRestart}, resync at ${seqAtResync})`);

    // Nothing in the database is lost: same nodes, ids, names, addresses and keys; all online again.
    const afterList = await waitFor('three online nodes after the restart', async () => {
      const l = await nodesList();
      return l.length === 3 && l.every((n) => n.online) ? l : false;
    });
    assert.deepEqual(afterList.map(identity), listBefore.map(identity));
    const keys = JSON.parse((await c.admin(['authkey', 'list', '--json'])).stdout) as Array<{ usedCount: number }>;
    assert.equal(keys.length, 1, 'the auth key survives the restart');
    assert.equal(keys[0]?.usedCount, 3);
  });

  test('node restart: same node key and addresses, up again without "warren up", tunnels back; state files 0600 in a 0700 dir', async () => {
    const g = node('gamma');
    const stateDir = join(g.dir, 'state');
    const st0 = await waitResynced('gamma', null);
    const keyFile0 = readFileSync(join(stateDir, 'node-key'), 'utf8');
    const machineFile0 = readFileSync(join(stateDir, 'machine-key'), 'utf8');
    const listBefore = await nodesList();

    const old = g.proc;
    await g.restart();
    assert.equal((await old.exited).code, 0, `warrend did not exit cleanly on SIGTERM: ${old.describeExit()}\n${old.tail()}`);
    // Prefs persisted: it comes back Running and reconnects without `warren up`.
    assert.match(g.proc.output(), /ready: Running/);
    const st1 = await waitResynced('gamma', null);
    assert.equal(st1.self?.nodeKey, st0.self?.nodeKey, 'node key changed across the restart');
    assert.deepEqual(st1.self?.addresses, st0.self?.addresses, 'addresses changed across the restart');
    assert.equal(st1.self?.id, st0.self?.id);
    assert.equal(st1.self?.name, 'gamma');
    assert.equal(readFileSync(join(stateDir, 'node-key'), 'utf8'), keyFile0);
    assert.equal(readFileSync(join(stateDir, 'machine-key'), 'utf8'), machineFile0);
    const prefs = JSON.parse(readFileSync(join(stateDir, 'prefs.json'), 'utf8')) as { wantRunning: boolean; loginServers: string[]; hostname: string };
    assert.deepEqual({ wantRunning: prefs.wantRunning, loginServers: prefs.loginServers, hostname: prefs.hostname },
      { wantRunning: true, loginServers: [c.url], hostname: 'gamma' });
    // The server and the peers still know gamma by the same key.
    assert.deepEqual((await nodesList()).map(identity), listBefore.map(identity));
    for (const peer of ['alpha', 'beta']) {
      const ps = await waitResynced(peer, null);
      assert.equal(ps.peers.find((p) => p.name === 'gamma')?.nodeKey, st0.self?.nodeKey, `${peer} sees a different key for gamma`);
    }

    await pingBothWays('gamma', ['alpha', 'beta']);

    // State dir 0700, every file in it 0600 (keys, prefs, registration, netmap, handshake timestamp).
    assert.equal(statSync(stateDir).mode & 0o777, 0o700, `${stateDir} mode`);
    const entries = readdirSync(stateDir);
    for (const f of STATE_FILES) assert.ok(entries.includes(f), `state dir lacks ${f} (has ${entries.join(', ')})`);
    for (const f of entries) {
      const s = statSync(join(stateDir, f));
      assert.ok(s.isFile(), `${f} is not a regular file`);
      assert.equal(s.mode & 0o777, 0o600, `${f} has mode ${(s.mode & 0o777).toString(8)}`);
    }
  });

  test('control down: a restarted node runs its tunnels from the netmap on disk, warns control_unreachable, reconnects when control returns', async () => {
    const b = node('beta');
    const st0 = await waitResynced('beta', null);

    const ctl = c.proc;
    await ctl.stop('SIGTERM');
    assert.equal((await ctl.exited).code, 0, ctl.tail());

    const old = b.proc;
    await b.restart();
    assert.equal((await old.exited).code, 0, old.tail());
    assert.match(b.proc.output(), /restoring the tunnel from the saved netmap \(version \d+, 2 peers\)/);

    const st1 = await waitFor('beta reports control_unreachable', async () => {
      const st = await b.status();
      return !st.controlConnected && st.health.some((h) => h.code === 'control_unreachable') ? st : false;
    }, { timeoutMs: 15_000, intervalMs: 100 });
    assert.equal(st1.backendState, 'Running');
    assert.equal(st1.self?.nodeKey, st0.self?.nodeKey);
    assert.deepEqual(st1.self?.addresses, st0.self?.addresses);
    assert.equal(st1.netmapVersion, st0.netmapVersion, 'the netmap restored from disk is the last one received');
    assert.deepEqual(st1.peers.map((p) => p.name).sort(), ['alpha', 'gamma']);

    // The data plane runs from that netmap: tunnels to both peers, both ways, both families.
    await pingBothWays('beta', ['alpha', 'gamma']);
    // Control is still down (nothing above could have reached it).
    const st2 = await b.status();
    assert.equal(st2.controlConnected, false);
    assert.ok(st2.health.some((h) => h.code === 'control_unreachable'), JSON.stringify(st2.health));

    // Control comes back (same database): beta and the others reconnect and resync.
    await c.restart();
    for (const name of NAMES) await waitResynced(name, st0.netmapVersion);
    const list = await waitFor('three online nodes after control returns', async () => {
      const l = await nodesList();
      return l.length === 3 && l.every((n) => n.online) ? l : false;
    });
    assert.deepEqual(list.map((n) => n.name).sort(), [...NAMES]);
    await pingOk('beta', 'alpha', 'v4');
    await pingOk('gamma', 'beta', 'v6');
  });
});
