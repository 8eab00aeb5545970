/**
 * Proves the namespace lab harness (test/helpers/lab.ts, test/helpers/wg.ts):
 * two stock wireguard-go peers in two namespaces reach each other over inner
 * IPv4 and IPv6; cleanup leaves no namespace, process or control socket
 * behind; failures (a process that cannot start, a failing command, a wait
 * that times out) are reported with enough context to act on.
 */
import * as assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import { Lab, LabCommandError, LabProcExitedError, WaitTimeoutError, twoHosts, waitFor } from '../helpers/lab.js';
import { genKeyPair, genPsk, parseWgDump, publicKeyOf, startWireguardGo, wireguardGoVersion } from '../helpers/wg.js';

/** Namespace names currently present on the machine (read directly: no process needed). */
function netnsNames(): string[] {
  return existsSync('/var/run/netns') ? readdirSync('/var/run/netns') : [];
}

/**
 * True while `pid` runs. A zombie counts as gone: orphans here are reaped by
 * PID 1, which can take a second or so to get round to it.
 */
function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

void describe('wg helpers (no processes)', () => {
  void test('genKeyPair gives 32-byte base64 keys whose public half publicKeyOf agrees with', () => {
    const kp = genKeyPair();
    assert.equal(Buffer.from(kp.privateKey, 'base64').length, 32);
    assert.equal(Buffer.from(kp.publicKey, 'base64').length, 32);
    assert.equal(publicKeyOf(kp.privateKey), kp.publicKey);
    assert.notEqual(genKeyPair().privateKey, kp.privateKey);
    assert.equal(Buffer.from(genPsk(), 'base64').length, 32);
  });

  void test('parseWgDump reads interface and peer lines', () => {
    const dump =
      'cHJpdg==\tcHVi\t51820\toff\n' +
      'cGVlcg==\t(none)\t10.201.0.2:51820\t10.77.0.2/32,fd7a:77::2/128\t1700000000\t1234\t5678\t25\n' +
      'b3RoZXI=\tcHNr\t(none)\t(none)\t0\t0\t0\toff\n';
    const show = parseWgDump(dump);
    assert.equal(show.publicKey, 'cHVi');
    assert.equal(show.listenPort, 51820);
    assert.deepEqual(show.peers[0], {
      publicKey: 'cGVlcg==', hasPresharedKey: false, endpoint: '10.201.0.2:51820',
      allowedIps: ['10.77.0.2/32', 'fd7a:77::2/128'], latestHandshake: 1700000000, rx: 1234, tx: 5678, persistentKeepalive: 25,
    });
    assert.deepEqual(show.peers[1], {
      publicKey: 'b3RoZXI=', hasPresharedKey: true, endpoint: null,
      allowedIps: [], latestHandshake: 0, rx: 0, tx: 0, persistentKeepalive: 0,
    });
  });

  void test('wireguardGoVersion reads the installed package', async () => {
    assert.match(await wireguardGoVersion(), /^\d+\.\d+\.\d{8}/);
  });
});

void describe('two wireguard-go peers across one veth', () => {
  const lab = Lab.create('harness');
  after(() => lab.cleanup());

  void test('ping over inner IPv4 and IPv6, and wg show reports the handshake', async () => {
    const h = await twoHosts(lab);
    const ka = genKeyPair();
    const kb = genKeyPair();
    const psk = genPsk();
    // a knows b's IPv4 underlay endpoint; b knows a's IPv6 one (exercises "[v6]:port").
    const wa = await startWireguardGo(lab, h.a, {
      ifname: lab.uniqueIfname('wga'), privateKey: ka.privateKey, listenPort: 51820,
      addresses: ['10.77.0.1/24', 'fd7a:77::1/64'],
      peers: [{ publicKey: kb.publicKey, presharedKey: psk, allowedIps: ['10.77.0.2/32', 'fd7a:77::2/128'], endpoint: `${h.bAddr}:51821` }],
    });
    const wb = await startWireguardGo(lab, h.b, {
      ifname: lab.uniqueIfname('wgb'), privateKey: kb.privateKey, listenPort: 51821,
      addresses: ['10.77.0.2/24', 'fd7a:77::2/64'],
      peers: [{ publicKey: ka.publicKey, presharedKey: psk, allowedIps: ['10.77.0.1/32', 'fd7a:77::1/128'], endpoint: `[${h.aAddr6}]:51820` }],
    });
    assert.equal(wa.publicKey, ka.publicKey);
    // `ip netns exec` execs the command itself, so the tracked pid is wireguard-go's own.
    assert.equal(readFileSync(`/proc/${wa.proc.pid}/comm`, 'utf8').trim(), 'wireguard-go');

    await lab.sh(h.a, ['ping', '-c', '3', '-i', '0.2', '-W', '1', '10.77.0.2']);
    await lab.sh(h.a, ['ping', '-c', '3', '-i', '0.2', '-W', '1', 'fd7a:77::2']);
    await lab.sh(h.b, ['ping', '-c', '1', '-W', '1', '10.77.0.1']);

    const sa = await wa.show();
    assert.equal(sa.listenPort, 51820);
    const peerB = sa.peers.find((p) => p.publicKey === kb.publicKey);
    assert.ok(peerB !== undefined, 'a lists b as a peer');
    assert.ok(peerB.latestHandshake > 0, 'a has a handshake with b');
    assert.ok(peerB.rx > 0 && peerB.tx > 0, 'a counted traffic both ways');
    assert.ok(peerB.hasPresharedKey);
    const sb = await wb.show();
    assert.ok((sb.peers[0]?.latestHandshake ?? 0) > 0, 'b has a handshake with a');

    // setPeer/removePeer round trip through the control socket.
    const kc = genKeyPair();
    await wa.setPeer({ publicKey: kc.publicKey, allowedIps: ['10.77.0.3/32'], persistentKeepalive: 25 });
    assert.equal((await wa.show()).peers.find((p) => p.publicKey === kc.publicKey)?.persistentKeepalive, 25);
    await wa.removePeer(kc.publicKey);
    assert.equal((await wa.show()).peers.length, 1);
  });
});

void describe('cleanup', () => {
  void test('removes namespaces, kills whole process groups, removes control sockets; idempotent', async () => {
    const lab = Lab.create('cleanup');
    try {
      const h = await twoHosts(lab);
      const wg = await startWireguardGo(lab, h.a, {
        ifname: lab.uniqueIfname('wgc'), privateKey: genKeyPair().privateKey, listenPort: 51820,
        addresses: ['10.78.0.1/24'], peers: [],
      });
      // A shell with a background child: the child must die with the group.
      const sh = lab.spawn(h.b, ['sh', '-c', 'sleep 1000 & echo child=$!; wait'], { name: 'sh-with-child' });
      const child = Number((await sh.waitForOutput(/child=(\d+)/, 5000))[1]);
      assert.ok(pidAlive(child));
      assert.ok(existsSync(wg.socketPath));
      assert.deepEqual(netnsNames().filter((n) => n.startsWith(lab.prefix)).sort(), [...lab.namespaceNames].sort());

      await lab.cleanup();
      await lab.cleanup();

      assert.deepEqual(netnsNames().filter((n) => n.startsWith(lab.prefix)), []);
      for (const proc of lab.processes) {
        assert.equal(proc.alive, false, `${proc.name} is dead`);
        assert.ok(!pidAlive(proc.pid), `${proc.name} pid ${proc.pid} is gone`);
      }
      await waitFor('the backgrounded child to die', () => !pidAlive(child), { timeoutMs: 5000 });
      assert.ok(!existsSync(wg.socketPath), 'control socket removed');
      assert.throws(() => lab.spawn(h.a, ['true']), /already cleaned up/);
    } finally {
      await lab.cleanup();
    }
  });
});

void describe('cleanup when the test process dies', () => {
  // A child Node process (run inside a lab namespace, like every process a
  // test starts) makes its own lab and a sleeper, then dies one of three ways;
  // its exit/signal handlers must kill the sleeper and delete its namespace.
  // (Its `ip netns add` happens in the private mount namespace `ip netns exec`
  // gives it, so from here we see only the name file under /var/run/netns,
  // which `ip netns del` removes.)
  const lab = Lab.create('exits');
  after(() => lab.cleanup());
  const labModule = new URL('../helpers/lab.js', import.meta.url).href;
  const script = `
    import { Lab } from ${JSON.stringify(labModule)};
    const lab = Lab.create('child');
    const ns = await lab.ns('c');
    const sleeper = lab.spawn(ns, ['sleep', '1000']);
    console.log('ready ns=' + ns + ' sleeper=' + sleeper.pid);
    const how = process.argv[1];
    if (how === 'exit') process.exit(7);
    if (how === 'throw') setTimeout(() => { throw new Error('kaboom'); }, 1);
    setInterval(() => {}, 1000);
  `;

  for (const [how, expectedCode] of [['SIGTERM', 143], ['SIGINT', 130], ['exit', 7], ['throw', 1]] as const) {
    void test(`${how}: the child's lab is torn down`, async () => {
      const outer = lab.namespaceNames[0] ?? (await lab.ns('o'));
      const mode = how.startsWith('SIG') ? 'wait' : how;
      const child = lab.spawn(outer, [process.execPath, '--input-type=module', '-e', script, mode], { name: `node-${how}` });
      const [, ns = '', sleeper = ''] = await child.waitForOutput(/ready ns=(\S+) sleeper=(\d+)/, 10_000);
      if (how.startsWith('SIG')) {
        // ('exit' and 'throw' may already be tearing down by now.)
        assert.ok(pidAlive(Number(sleeper)));
        assert.ok(netnsNames().includes(ns));
        await child.stop(how as NodeJS.Signals);
      }
      assert.equal((await child.exited).code, expectedCode, child.output());
      await waitFor('the sleeper to die', () => !pidAlive(Number(sleeper)), { timeoutMs: 5000 });
      assert.ok(!netnsNames().includes(ns), `${ns} was deleted`);
    });
  }
});

void describe('failures are reported clearly', () => {
  const lab = Lab.create('failures');
  after(() => lab.cleanup());

  void test('a binary that does not exist', async () => {
    const ns = await lab.ns('f');
    const proc = lab.spawn(ns, ['/nonexistent/warren-no-such-binary', '--flag'], { name: 'ghost' });
    await assert.rejects(proc.waitForOutput(/ready/, 5000), (err: Error) => {
      assert.ok(err instanceof LabProcExitedError);
      assert.match(err.message, /ghost \(pid \d+\) exited with code [1-9]\d* before printing \/ready\//);
      assert.match(err.message, /warren-no-such-binary/); // ip's "exec of ... failed" line
      return true;
    });
    assert.equal((await proc.exited).signal, null);
    assert.equal(proc.alive, false);
  });

  void test('a process that exits early, with its stderr in the message', async () => {
    const ns = await lab.ns('g');
    const proc = lab.spawn(ns, ['sh', '-c', 'echo boom: bad config >&2; exit 3'], { name: 'early' });
    await assert.rejects(proc.waitForOutput(/listening/, 5000), /early \(pid \d+\) exited with code 3[^]*boom: bad config/);
  });

  void test('a failing command, a timed-out wait, a bad interface name, a port clash', async () => {
    const h = await twoHosts(lab, ['p', 'q']);
    await assert.rejects(lab.sh(h.a, ['ip', 'link', 'set', 'nosuchif', 'up']), (err: Error) => {
      assert.ok(err instanceof LabCommandError);
      assert.notEqual(err.exitCode, 0);
      assert.match(err.message, /nosuchif/);
      return true;
    });
    assert.equal((await lab.sh(h.a, ['false'], { allowFail: true })).code, 1);

    await assert.rejects(
      waitFor('the moon to turn blue', () => 0, { timeoutMs: 100, intervalMs: 10 }),
      (err: Error) => err instanceof WaitTimeoutError && /the moon to turn blue; last value: 0/.test(err.message),
    );
    await assert.rejects(
      waitFor('a throwing probe', () => { throw new Error('probe says no'); }, { timeoutMs: 50 }),
      /a throwing probe; last error: probe says no/,
    );

    const key = genKeyPair().privateKey;
    await assert.rejects(
      startWireguardGo(lab, h.a, { ifname: 'much-too-long-ifname', privateKey: key, listenPort: 1, addresses: [], peers: [] }),
      /bad wireguard-go interface name/,
    );
    // Two daemons in one namespace on one port: the second `wg set` fails with the kernel's reason.
    await startWireguardGo(lab, h.a, { ifname: lab.uniqueIfname('wgp'), privateKey: key, listenPort: 51900, addresses: [], peers: [] });
    await assert.rejects(
      startWireguardGo(lab, h.a, { ifname: lab.uniqueIfname('wgp'), privateKey: key, listenPort: 51900, addresses: [], peers: [] }),
      (err: Error) => err instanceof LabCommandError && /Address already in use/.test(err.message),
    );
  });
});
