/**
 * `make demo`, in network namespaces, cleaned up at the end:
 *  1. a tailnet: warren-control (self-signed, pinned) and three warrend nodes
 *     on one LAN join with one auth key and ping each other by tailnet IP;
 *     `warren status` and `warren-control nodes list` are shown;
 *  2. across NATs: control, relay and STUN on an "internet" namespace, a home
 *     Pi and a laptop behind two home routers (easy NAT) and a phone behind
 *     carrier-grade NAT with a hard mapping; netcheck, the first pings through
 *     the relay and the switch to a direct path, the phone staying relayed;
 *  3. plain WireGuard mode: warrend and stock wireguard-go, pings both ways.
 */
import { Lab, twoHosts } from '../helpers/lab.js';
import { genKeyPair, startWireguardGo, wireguardGoVersion } from '../helpers/wg.js';
import { startWarrend, wgQuickText, type WarrendSpec } from '../helpers/warrend.js';
import { MeshLab, useControl } from '../helpers/mesh.js';
import { createNatTailnet } from '../helpers/nat-tailnet.js';

const say = (s: string): void => void process.stdout.write(`\n\x1b[1m== ${s}\x1b[0m\n`);

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('make demo needs root (network namespaces, TUN)');
  await tailnet();
  await acrossNats();
  const lab = Lab.create('demo');
  try {
    say('Plain WireGuard mode. Two hosts in network namespaces, joined by a veth');
    const h = await twoHosts(lab);
    console.log(`  ${h.a}: ${h.aAddr}   (warrend)\n  ${h.b}: ${h.bAddr}   (wireguard-go ${await wireguardGoVersion()})`);
    const ka = genKeyPair(), kb = genKeyPair();
    await startWireguardGo(lab, h.b, {
      ifname: lab.uniqueIfname('wgdemo'), privateKey: kb.privateKey, listenPort: 51820,
      addresses: ['10.99.0.2/24', 'fd99::2/64'],
      peers: [{ publicKey: ka.publicKey, allowedIps: ['10.99.0.1/32', 'fd99::1/128'], endpoint: `${h.aAddr}:51820` }],
    });
    const spec: WarrendSpec = {
      privateKey: ka.privateKey, listenPort: 51820, addresses: ['10.99.0.1/24', 'fd99::1/64'],
      peers: [{ publicKey: kb.publicKey, allowedIps: ['10.99.0.2/32', 'fd99::2/128'], endpoint: `${h.bAddr}:51820`, persistentKeepalive: 25 }],
    };
    say('warrend --wg-config wg0.conf   (private key elided)');
    console.log(wgQuickText(spec).replace(/PrivateKey = .*/, 'PrivateKey = (secret)').replace(/^/gm, '  '));
    const w = await startWarrend(lab, h.a, spec, { env: { WARREN_TEST_MODE: '0', WARREN_LOG: 'info' } });
    for (const [ns, dst, label] of [[h.a, '10.99.0.2', 'warrend → wireguard-go, IPv4'], [h.b, 'fd99::1', 'wireguard-go → warrend, IPv6']] as const) {
      say(`ping ${dst}  (${label})`);
      const r = await lab.sh(ns, ['ping', '-c', '4', '-i', '0.3', '-W', '2', dst], { allowFail: true });
      process.stdout.write(r.stdout.replace(/^/gm, '  '));
      if (r.code !== 0) throw new Error(`ping ${dst} failed`);
    }
    say('warren status');
    const st = await w.cli(['status']);
    process.stdout.write(st.stdout.replace(/^/gm, '  '));
    say('Done: cleaning up the namespaces');
  } finally {
    await lab.cleanup();
  }
}

async function tailnet(): Promise<void> {
  const lab = Lab.create('demomesh');
  try {
    const m = new MeshLab(lab, { WARREN_TEST_MODE: '0', WARREN_TIMERS: 'production', WARREN_LOG: 'info' });
    await m.init();
    say('A tailnet: warren-control serve --tls-self-signed in its own namespace');
    const c = await m.control({ env: { WARREN_TEST_MODE: '0' } });
    useControl(c);
    console.log(`  ${c.url}   certificate pin ${c.fingerprint}`);
    say('warren-control authkey create --reusable');
    const key = await c.authkey(['--reusable']);
    console.log(`  ${key}`);
    const nodes = [];
    for (const name of ['kitchen-pi', 'laptop', 'phone']) {
      const n = await m.node(name);
      say(`${name}: warren up --login-server ${c.url} --auth-key … --login-server-fingerprint …`);
      const r = await n.up(key);
      process.stdout.write((r.stdout + r.stderr).replace(/^/gm, '  '));
      if (r.code !== 0) throw new Error(`warren up failed on ${name}`);
      nodes.push(n);
    }
    for (const [from, to] of [[0, 1], [1, 2], [2, 0]] as const) {
      const ip = (await nodes[to]!.cli(['ip', '-4'])).stdout.trim();
      say(`${nodes[from]!.name}: ping ${ip}  (${nodes[to]!.name}, by tailnet IP)`);
      const r = await lab.sh(nodes[from]!.ns, ['ping', '-c', '3', '-i', '0.3', '-W', '2', ip], { allowFail: true });
      process.stdout.write(r.stdout.replace(/^/gm, '  '));
      if (r.code !== 0) throw new Error(`ping ${ip} failed`);
    }
    say('kitchen-pi: warren status');
    process.stdout.write((await nodes[0]!.cli(['status'])).stdout.replace(/^/gm, '  '));
    say('warren-control nodes list');
    process.stdout.write((await c.admin(['nodes', 'list'])).stdout.replace(/^/gm, '  '));
  } finally {
    await lab.cleanup();
  }
}

async function acrossNats(): Promise<void> {
  say('Across NATs: control, relay (HTTPS :443) and STUN (two addresses) on an "internet" namespace');
  const tn = await createNatTailnet('demonat', { env: { WARREN_TEST_MODE: '0', WARREN_LOG: 'info' } });
  try {
    console.log(`  control ${tn.control.url}\n  relay   ${tn.relay.url}   pin ${tn.relay.fingerprint}`);
    const pi = await tn.node('homepi', { nat: 'easy' });
    const laptop = await tn.node('laptop', { nat: 'easy' });
    const phone = await tn.node('phone', { nat: 'hard', cgnat: true, cgnatKind: 'hard' });
    for (const [m, what] of [[pi, 'behind a home router (easy NAT)'], [laptop, 'behind a café router (easy NAT)'], [phone, 'behind carrier-grade NAT (hard NAT)']] as const) {
      console.log(`  ${m.node.name.padEnd(8)} LAN ${m.site.lanIp.padEnd(14)} seen on the internet as ${m.site.publicIp}   ${what}`);
    }
    for (const m of [pi, phone]) {
      say(`${m.node.name}: warren netcheck`);
      process.stdout.write((await m.node.cli(['netcheck'])).stdout.replace(/^/gm, '  '));
    }
    say('laptop: warren ping homepi   (first via the relay, then direct once both sides have punched through)');
    const r = await laptop.node.cli(['ping', '-c', '10', '--interval', '300', '--until-direct', 'homepi']);
    process.stdout.write(r.stdout.replace(/^/gm, '  '));
    const piIp = (await pi.node.cli(['ip', '-4'])).stdout.trim();
    say(`laptop: ping ${piIp}   (homepi, through the tunnel on the direct path)`);
    const p1 = await tn.net.lab.sh(laptop.site.host, ['ping', '-c', '3', '-i', '0.3', '-W', '2', piIp], { allowFail: true });
    process.stdout.write(p1.stdout.replace(/^/gm, '  '));
    say('phone: warren ping homepi   (no direct path through a hard carrier NAT: stays on the relay)');
    const r2 = await phone.node.cli(['ping', '-c', '3', '--interval', '300', 'homepi']);
    process.stdout.write(r2.stdout.replace(/^/gm, '  '));
    say('laptop: warren status');
    process.stdout.write((await laptop.node.cli(['status'])).stdout.replace(/^/gm, '  '));
  } finally {
    await tn.close();
  }
}

main().catch((err: Error) => {
  process.stderr.write(`demo failed: ${err.message}\n`);
  process.exitCode = 1;
});
