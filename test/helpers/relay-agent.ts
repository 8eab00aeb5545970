/**
 * One node's real RelayClient in a process of its own, for lab tests in
 * namespaces: `node relay-agent.js CONFIG.json`. It optionally registers its
 * node key on the control server first, then connects to the relay and
 * reports, one JSON object per line on stdout:
 *
 *   {"event":"registered","nodeId":N}   {"event":"state","state":"connected"|…,"detail":…}
 *   {"event":"packet","src":B64,"data":"text"}   {"event":"peer-gone","key":B64,"reason":…}
 *   {"event":"sent","ok":bool}   {"event":"pong","ms":N} | {"event":"pong","error":…}
 *
 * Commands are lines appended to `commandFile` (lab processes get no stdin),
 * one JSON object each: {"cmd":"send","to":B64,"data":"text"}, {"cmd":"ping"}.
 */
import { readFileSync } from 'node:fs';
import { publicKeyOf } from '../../src/crypto/x25519.js';
import { RelayClient } from '../../src/nat/relay-client.js';
import { toB64 } from '../../src/wire/control.js';
import { SimNode, SimServer } from './sim-node.js';
import { commandLines } from './relay-swarm.js';

export interface AgentConfig {
  name: string;
  /** Node private key, base64. */
  privateKey: string;
  relayUrl: string;
  relayFingerprint: string;
  keepaliveMs: number;
  /** Register first (control URL, its certificate PEM and pin, an auth key). */
  register?: { url: string; ca: string; fingerprint: string; authKey: string };
  /** Register and exit, without connecting to the relay. */
  registerOnly?: boolean;
  commandFile: string;
}

const say = (o: Record<string, unknown>): boolean => process.stdout.write(JSON.stringify(o) + '\n');

async function run(cfg: AgentConfig): Promise<void> {
  const priv = new Uint8Array(Buffer.from(cfg.privateKey, 'base64'));
  const nodeKey = { privateKey: priv, publicKey: publicKeyOf(priv) };
  if (cfg.register) {
    const srv = new SimServer(cfg.register.url, cfg.register.ca, cfg.register.fingerprint);
    const n = new SimNode(srv, { hostname: cfg.name, authKey: cfg.register.authKey, node: nodeKey });
    const r = await n.register();
    srv.close();
    say({ event: 'registered', nodeId: r.nodeId, key: toB64(nodeKey.publicKey) });
    if (cfg.registerOnly) process.exit(0);
  }
  const client = new RelayClient({
    url: cfg.relayUrl, fingerprint: cfg.relayFingerprint, nodeKey, keepaliveMs: cfg.keepaliveMs, backoff: { minMs: 200, maxMs: 1000 },
    onPacket: (src, data) => say({ event: 'packet', src: toB64(src), data: Buffer.from(data).toString('utf8') }),
    onPeerGone: (key, reason) => say({ event: 'peer-gone', key: toB64(key), reason }),
    onState: (state, detail) => say({ event: 'state', state, detail: detail ?? client.lastError ?? '' }),
    log: (level, msg) => process.stderr.write(`${level}: ${msg}\n`),
  });
  client.start();
  for await (const line of commandLines(cfg.commandFile)) {
    let c: { cmd?: string; to?: string; data?: string };
    try {
      c = JSON.parse(line) as typeof c;
    } catch {
      continue;
    }
    if (c.cmd === 'send') say({ event: 'sent', ok: client.send(new Uint8Array(Buffer.from(c.to ?? '', 'base64')), Buffer.from(c.data ?? '')) });
    else if (c.cmd === 'ping') await client.ping(2000).then((ms) => say({ event: 'pong', ms }), (e: Error) => say({ event: 'pong', error: e.message }));
  }
  await client.close();
}

if (process.argv[1]?.endsWith('relay-agent.js') && process.argv[2]) {
  const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8')) as AgentConfig;
  process.on('SIGTERM', () => process.exit(0));
  run(cfg).catch((e: Error) => {
    say({ event: 'fatal', error: e.message });
    process.exit(1);
  });
}
