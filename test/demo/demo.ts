/**
 * `make demo`: a tunnel between warrend and stock wireguard-go in two network
 * namespaces. Shows the wg-quick file, `warren status`, pings across the
 * tunnel both ways over IPv4 and IPv6, then cleans everything up. Grows into a
 * whole local tailnet as the control server, relay and NAT traversal land.
 */
import { Lab, twoHosts } from '../helpers/lab.js';
import { genKeyPair, startWireguardGo, wireguardGoVersion } from '../helpers/wg.js';
import { startWarrend, wgQuickText, type WarrendSpec } from '../helpers/warrend.js';

const say = (s: string): void => void process.stdout.write(`\n\x1b[1m== ${s}\x1b[0m\n`);

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('make demo needs root (network namespaces, TUN)');
  const lab = Lab.create('demo');
  try {
    say('Two hosts in network namespaces, joined by a veth');
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

main().catch((err: Error) => {
  process.stderr.write(`demo failed: ${err.message}\n`);
  process.exitCode = 1;
});
