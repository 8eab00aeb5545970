/**
 * The warren-control command line:
 *
 *   warren-control serve --listen ADDR:PORT --db sqlite:PATH (--tls-cert F --tls-key F | --tls-self-signed)
 *                        [--state-dir DIR] [--admin-socket PATH] [--key-expiry DUR] [--ephemeral-timeout DUR]
 *                        [--relay-map FILE] [--relay-secret-file FILE]
 *   warren-control authkey create [--reusable] [--ephemeral] [--tags tag:a,...] [--expiry DUR] [--tailnet NAME] [--user NAME]
 *                                                                                 (prints only the key)
 *   warren-control authkey list [--json] | authkey revoke ID
 *   warren-control nodes list [--json] [--tailnet NAME] | nodes delete|expire NODE | nodes rename NODE NEWNAME
 *   warren-control tailnets list [--json]
 *   warren-control fingerprint [--state-dir DIR | --tls-cert F]
 *
 * Admin subcommands talk to the running server over --admin-socket (root only).
 * Exit codes: 0 ok, 1 failure, 2 usage.
 */
import { parseArgs } from 'node:util';
import { dirname, resolve } from 'node:path';
import { mkdirSync, readFileSync } from 'node:fs';
import { SqliteStore } from './sqlite-store.js';
import { ControlServer } from './server.js';
import { adminServer, DEFAULT_ADMIN_SOCKET } from './admin.js';
import { loadOrCreateServerKey } from './challenges.js';
import { loadCertFiles, loadOrCreateSelfSigned, fingerprintOf, CERT_FILE } from '../tls-cert.js';
import { LocalApiClient } from '../../localapi/client.js';
import { parseDuration } from '../../util/duration.js';
import { stderrLogger } from '../../util/log.js';
import { untilStopped } from '../../util/signals.js';
import type { AuthKeyRecord, NodeRecord, TailnetRecord } from './store.js';
import { loadRelayMapFile } from './relay-admission.js';
import { readSecretFile } from '../relay/secret-file.js';

const USAGE = `usage:
  warren-control serve --listen ADDR:PORT --db sqlite:PATH (--tls-cert F --tls-key F | --tls-self-signed)
                       [--state-dir DIR] [--admin-socket PATH] [--key-expiry DUR] [--ephemeral-timeout DUR]
                       [--relay-map FILE] [--relay-secret-file FILE]
  warren-control authkey create [--reusable] [--ephemeral] [--tags tag:a,...] [--expiry DUR] [--tailnet NAME] [--user NAME]
  warren-control authkey list [--json] | authkey revoke ID
  warren-control nodes list [--json] [--tailnet NAME] | nodes delete NODE | nodes expire NODE | nodes rename NODE NEWNAME
  warren-control tailnets list [--json]
  warren-control fingerprint [--state-dir DIR | --tls-cert FILE]`;

export class UsageError extends Error {}

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

const OPTIONS = {
  listen: { type: 'string' }, db: { type: 'string' }, 'tls-cert': { type: 'string' }, 'tls-key': { type: 'string' },
  'tls-self-signed': { type: 'boolean' }, 'state-dir': { type: 'string' }, 'admin-socket': { type: 'string' },
  'key-expiry': { type: 'string' }, 'ephemeral-timeout': { type: 'string' }, reusable: { type: 'boolean' },
  ephemeral: { type: 'boolean' }, tags: { type: 'string' }, expiry: { type: 'string' }, json: { type: 'boolean' },
  tailnet: { type: 'string' }, user: { type: 'string' }, 'relay-map': { type: 'string' }, 'relay-secret-file': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export async function main(argv: string[], io: Io = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) }): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (e) {
    io.err(`warren-control: ${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const { values: v, positionals: pos } = parsed;
  if (v.help || pos.length === 0) {
    (v.help ? io.out : io.err)(USAGE + '\n');
    return v.help ? 0 : 2;
  }
  try {
    const cmd = pos.join(' ');
    const admin = new LocalApiClient(v['admin-socket'] ?? DEFAULT_ADMIN_SOCKET, { daemon: 'warren-control serve' });
    switch (pos[0]) {
      case 'serve':
        return await serve(v);
      case 'fingerprint': {
        const cert = v['tls-cert'] ?? resolve(v['state-dir'] ?? '/var/lib/warren-control', CERT_FILE);
        let pem: string;
        try {
          pem = readFileSync(cert, 'utf8');
        } catch {
          throw new Error(`no certificate at ${cert} (start "warren-control serve --tls-self-signed" once, or pass --state-dir / --tls-cert)`);
        }
        io.out(`sha256:${fingerprintOf(pem)}\n`);
        return 0;
      }
      case 'authkey':
        if (pos[1] === 'create' && pos.length === 2) {
          const r = (await admin.call('POST', '/admin/authkeys', {
            reusable: v.reusable === true, ephemeral: v.ephemeral === true,
            tags: v.tags ? v.tags.split(',').map((t) => t.trim()).filter(Boolean) : [],
            ...(v.expiry ? { expiryMs: parseDuration(v.expiry) } : {}),
            ...(v.tailnet !== undefined ? { tailnet: v.tailnet } : {}),
            ...(v.user !== undefined ? { user: v.user } : {}),
          })) as { key: string };
          io.out(r.key + '\n');
          return 0;
        }
        if (pos[1] === 'list' && pos.length === 2) {
          const keys = (await admin.call('GET', '/admin/authkeys', undefined)) as AuthKeyRecord[];
          io.out(v.json ? JSON.stringify(keys, null, 2) + '\n' : formatKeys(keys));
          return 0;
        }
        if (pos[1] === 'revoke' && pos.length === 3) {
          await admin.call('POST', '/admin/authkeys/revoke', { id: Number(pos[2]) });
          io.out(`revoked auth key ${pos[2]}\n`);
          return 0;
        }
        throw new UsageError(`unknown command "${cmd}"`);
      case 'nodes':
        if (pos[1] === 'list' && pos.length === 2) {
          const q = v.tailnet !== undefined ? `?tailnet=${encodeURIComponent(v.tailnet)}` : '';
          const nodes = (await admin.call('GET', `/admin/nodes${q}`, undefined)) as NodeRecord[];
          io.out(v.json ? JSON.stringify(nodes, null, 2) + '\n' : formatNodes(nodes));
          return 0;
        }
        if ((pos[1] === 'delete' || pos[1] === 'expire') && pos.length === 3) {
          await admin.call('POST', `/admin/nodes/${pos[1]}`, { node: pos[2] });
          io.out(`${pos[1] === 'delete' ? 'deleted' : 'expired'} node ${pos[2]}\n`);
          return 0;
        }
        if (pos[1] === 'rename' && pos.length === 4) {
          await admin.call('POST', '/admin/nodes/rename', { node: pos[2], name: pos[3] });
          io.out(`renamed node ${pos[2]} to ${pos[3]}\n`);
          return 0;
        }
        throw new UsageError(`unknown command "${cmd}"`);
      case 'tailnets':
        if (pos[1] === 'list' && pos.length === 2) {
          const tailnets = (await admin.call('GET', '/admin/tailnets', undefined)) as TailnetRecord[];
          io.out(v.json ? JSON.stringify(tailnets, null, 2) + '\n' : formatTailnets(tailnets));
          return 0;
        }
        throw new UsageError(`unknown command "${cmd}"`);
      default:
        throw new UsageError(`unknown command "${pos[0]}"`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`warren-control: ${e.message}\n${USAGE}\n`);
      return 2;
    }
    io.err(`warren-control: ${(e as Error).message}\n`);
    return 1;
  }
}

function formatKeys(keys: AuthKeyRecord[]): string {
  const rows = keys.map((k) => `${String(k.id).padEnd(5)} ${k.prefix.padEnd(24)} ${(k.reusable ? 'reusable' : 'single-use').padEnd(11)} ${(k.ephemeral ? 'ephemeral' : '-').padEnd(10)} ${String(k.usedCount).padEnd(5)} ${(k.revoked ? 'revoked' : k.expiresAt !== null && k.expiresAt < Date.now() ? 'expired' : 'valid').padEnd(8)} ${k.tailnet.padEnd(16)} ${k.user.padEnd(16)} ${k.tags.join(',')}`);
  return ['ID    KEY                      KIND        EPHEMERAL  USED  STATE    TAILNET          USER             TAGS', ...rows].join('\n') + '\n';
}

function formatNodes(nodes: NodeRecord[]): string {
  const rows = nodes.map((n) => `${String(n.id).padEnd(5)} ${n.name.padEnd(20)} ${n.tailnet.padEnd(16)} ${n.user.padEnd(16)} ${n.ipv4.padEnd(16)} ${n.ipv6.padEnd(28)} ${(n.online ? 'online' : 'offline').padEnd(8)} ${n.keyExpiry === null ? 'never' : new Date(n.keyExpiry).toISOString()}`);
  return ['ID    NAME                 TAILNET          USER             IPV4             IPV6                         STATUS   KEY EXPIRY', ...rows].join('\n') + '\n';
}

function formatTailnets(tailnets: TailnetRecord[]): string {
  const rows = tailnets.map((t) => `${t.name.padEnd(20)} ${t.ipv6Prefix.padEnd(24)} ${t.nodes}`);
  return ['NAME                 IPV6 PREFIX              NODES', ...rows].join('\n') + '\n';
}

function testKnob(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined) return fallback;
  if (process.env['WARREN_TEST_MODE'] !== '1') throw new UsageError(`${name} is a test-only knob and needs WARREN_TEST_MODE=1`);
  return parseDuration(raw);
}

async function serve(v: Record<string, string | boolean | undefined>): Promise<number> {
  const listen = v['listen'] as string | undefined;
  const db = v['db'] as string | undefined;
  if (!listen) throw new UsageError('serve needs --listen ADDR:PORT');
  if (!db || !db.startsWith('sqlite:')) throw new UsageError(db?.startsWith('postgres') ? 'PostgreSQL storage is not available yet; use --db sqlite:PATH' : 'serve needs --db sqlite:PATH');
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(listen);
  if (!m) throw new UsageError(`--listen "${listen}": want ADDR:PORT or [IPv6]:PORT`);
  const host = m[1] ?? (m[2] || '0.0.0.0');
  const port = Number(m[3]);
  const dbPath = resolve(db.slice('sqlite:'.length));
  const stateDir = resolve((v['state-dir'] as string | undefined) ?? dirname(dbPath));
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const selfSigned = v['tls-self-signed'] === true;
  const certFile = v['tls-cert'] as string | undefined, keyFile = v['tls-key'] as string | undefined;
  if (selfSigned === Boolean(certFile || keyFile)) throw new UsageError('give either --tls-cert and --tls-key, or --tls-self-signed');
  if (!selfSigned && !(certFile && keyFile)) throw new UsageError('--tls-cert and --tls-key go together');
  const keyExpiryMs = v['key-expiry'] ? parseDuration(v['key-expiry'] as string) : 180 * 86_400_000;
  const ephemeralMs = v['ephemeral-timeout'] ? parseDuration(v['ephemeral-timeout'] as string) : 30 * 60_000;
  const keepaliveMs = testKnob('WARREN_CONTROL_KEEPALIVE', 30_000);
  const housekeepingMs = testKnob('WARREN_CONTROL_HOUSEKEEPING', 10_000);
  const relayMap = v['relay-map'] ? loadRelayMapFile(v['relay-map'] as string) : undefined;
  const relaySecret = v['relay-secret-file'] ? readSecretFile(v['relay-secret-file'] as string, '--relay-secret-file') : undefined;

  const log = stderrLogger('warren-control');
  const cert = selfSigned ? await loadOrCreateSelfSigned(stateDir, { commonName: 'warren-control' }) : loadCertFiles(certFile!, keyFile!);
  const store = SqliteStore.open(dbPath);
  const server = new ControlServer({
    store, serverKey: loadOrCreateServerKey(stateDir), tls: { cert: cert.certPem, key: cert.keyPem }, host, port, log,
    keepaliveMs, ephemeralTimeoutMs: ephemeralMs, defaultKeyExpiryMs: keyExpiryMs, housekeepingMs, relayMap, relaySecret,
  });
  const bound = await server.start();
  const admin = adminServer((v['admin-socket'] as string | undefined) ?? DEFAULT_ADMIN_SOCKET, store, server, Date.now, (msg) => log('debug', msg));
  await admin.start();
  log('info', `listening on ${host}:${bound}; database ${dbPath}; certificate sha256:${cert.fingerprint}${selfSigned ? ' (self-signed: nodes pin it with --login-server-fingerprint)' : ''}`);
  log('info', `admin socket ${admin.socketPath}; ready`);
  return untilStopped(log, async () => {
    await admin.stop().catch(() => undefined);
    await server.stop();
    await store.close();
  });
}
