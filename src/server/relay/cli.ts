/**
 * The warren-relay command line:
 *
 *   warren-relay [serve] [--listen ADDR:PORT] [--stun-listen ADDR:PORT [--stun-listen ADDR2:PORT]] [--stun-alt-port N]
 *                (--tls-cert F --tls-key F | --tls-self-signed) [--state-dir DIR] [--region-code CODE]
 *                --control URL [--control-fingerprint SHA256] --control-secret-file FILE
 *                [--client-rate-mbit N] [--client-burst-kib N]
 *   warren-relay fingerprint [--state-dir DIR | --tls-cert FILE]
 *
 * Serving runs until SIGTERM/SIGINT; SIGUSR1 logs one line of counters and
 * memory. Exit codes: 0 ok, 1 failure, 2 usage.
 *
 * Test-only knob (needs WARREN_TEST_MODE=1): WARREN_RELAY_KEEPALIVE=DUR, the
 * client keepalive interval (default 30 s; read deadline 2×).
 */
import { parseArgs } from 'node:util';
import { mkdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseEndpoint } from '../../wire/control.js';
import { loadCertFiles, loadOrCreateSelfSigned, fingerprintOf, normalizeFingerprint, CERT_FILE } from '../tls-cert.js';
import { parseDuration } from '../../util/duration.js';
import { stderrLogger } from '../../util/log.js';
import { untilStopped } from '../../util/signals.js';
import { RelayServer, DEFAULT_CLIENT_RATE } from './server.js';
import { AdmissionSet } from './admission-set.js';
import { AdmissionClient } from './admission-client.js';
import { readSecretFile } from './secret-file.js';
import { startStunServer, type StunServer } from './stun-server.js';

export const DEFAULT_RELAY_STATE_DIR = '/var/lib/warren-relay';

const USAGE = `usage:
  warren-relay [serve] [--listen ADDR:PORT] [--stun-listen ADDR:PORT [--stun-listen ADDR2:PORT]] [--stun-alt-port N]
               (--tls-cert F --tls-key F | --tls-self-signed) [--state-dir DIR] [--region-code CODE]
               --control URL [--control-fingerprint SHA256] --control-secret-file FILE
               [--client-rate-mbit N] [--client-burst-kib N]
  warren-relay fingerprint [--state-dir DIR | --tls-cert FILE]

  --listen defaults to 0.0.0.0:443; without --stun-listen no STUN server runs
  (the usual is --stun-listen PUBLIC-IP:3478). Each client may send at most
  --client-rate-mbit (default 16) with bursts of --client-burst-kib (default 1024);
  the excess is dropped.`;

class UsageError extends Error {}

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

const OPTIONS = {
  listen: { type: 'string' }, 'stun-listen': { type: 'string', multiple: true }, 'stun-alt-port': { type: 'string' },
  'tls-cert': { type: 'string' }, 'tls-key': { type: 'string' }, 'tls-self-signed': { type: 'boolean' }, 'state-dir': { type: 'string' },
  'region-code': { type: 'string' }, control: { type: 'string' }, 'control-fingerprint': { type: 'string' },
  'control-secret-file': { type: 'string' }, 'client-rate-mbit': { type: 'string' }, 'client-burst-kib': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

export async function main(argv: string[], io: Io = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) }): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (e) {
    io.err(`warren-relay: ${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const { values: v, positionals: pos } = parsed;
  if (v.help) {
    io.out(USAGE + '\n');
    return 0;
  }
  try {
    if (pos.length === 1 && pos[0] === 'fingerprint') {
      const cert = v['tls-cert'] ?? resolve(v['state-dir'] ?? DEFAULT_RELAY_STATE_DIR, CERT_FILE);
      let pem: string;
      try {
        pem = readFileSync(cert, 'utf8');
      } catch {
        throw new Error(`no certificate at ${cert} (start "warren-relay --tls-self-signed" once, or pass --state-dir / --tls-cert)`);
      }
      io.out(`sha256:${fingerprintOf(pem)}\n`);
      return 0;
    }
    if (pos.length > 1 || (pos.length === 1 && pos[0] !== 'serve')) throw new UsageError(`unknown command "${pos.join(' ')}"`);
    return await serve(v);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`warren-relay: ${e.message}\n${USAGE}\n`);
      return 2;
    }
    io.err(`warren-relay: ${(e as Error).message}\n`);
    return 1;
  }
}

function endpointFlag(flag: string, s: string): { ip: string; port: number } {
  const ep = parseEndpoint(s);
  if (!ep) throw new UsageError(`${flag} "${s}": want IP:PORT or [IPv6]:PORT`);
  return ep;
}

function positiveNumber(flag: string, s: string | undefined, fallback: number): number {
  if (s === undefined) return fallback;
  const n = Number(s);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${flag} "${s}": want a positive number`);
  return n;
}

function testKnob(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined) return fallback;
  if (process.env['WARREN_TEST_MODE'] !== '1') throw new UsageError(`${name} is a test-only knob and needs WARREN_TEST_MODE=1`);
  return parseDuration(raw);
}

async function serve(v: Values): Promise<number> {
  const listen = endpointFlag('--listen', v.listen ?? '0.0.0.0:443');
  const stun = (v['stun-listen'] ?? []).map((s) => endpointFlag('--stun-listen', s));
  if (stun.length > 2) throw new UsageError('--stun-listen may be given at most twice');
  const stunAlt = v['stun-alt-port'] === undefined ? undefined : Number(v['stun-alt-port']);
  if (stunAlt !== undefined && !(Number.isInteger(stunAlt) && stunAlt > 0 && stunAlt < 65536)) throw new UsageError(`--stun-alt-port "${v['stun-alt-port']}": want a port number`);
  const selfSigned = v['tls-self-signed'] === true;
  const certFile = v['tls-cert'], keyFile = v['tls-key'];
  if (selfSigned === Boolean(certFile || keyFile)) throw new UsageError('give either --tls-cert and --tls-key, or --tls-self-signed');
  if (!selfSigned && !(certFile && keyFile)) throw new UsageError('--tls-cert and --tls-key go together');
  const region = v['region-code'];
  if (region !== undefined && !/^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/.test(region)) throw new UsageError(`--region-code "${region}": want lowercase letters, digits, inner hyphens (1-32)`);
  if (!v.control) throw new UsageError('--control URL is required (the control server that admits nodes)');
  let controlUrl: URL;
  try {
    controlUrl = new URL(v.control);
  } catch {
    throw new UsageError(`--control "${v.control}": not a URL`);
  }
  if (controlUrl.protocol !== 'https:') throw new UsageError(`--control "${v.control}": want https://host:port`);
  const fingerprint = v['control-fingerprint'] !== undefined ? normalizeFingerprint(v['control-fingerprint']) : null;
  if (!v['control-secret-file']) throw new UsageError('--control-secret-file FILE is required (the secret given to warren-control --relay-secret-file)');
  const secret = readSecretFile(v['control-secret-file'], '--control-secret-file');
  const rate = {
    bytesPerSec: (positiveNumber('--client-rate-mbit', v['client-rate-mbit'], (DEFAULT_CLIENT_RATE.bytesPerSec * 8) / 1e6) * 1e6) / 8,
    burstBytes: positiveNumber('--client-burst-kib', v['client-burst-kib'], DEFAULT_CLIENT_RATE.burstBytes / 1024) * 1024,
  };
  const keepaliveMs = testKnob('WARREN_RELAY_KEEPALIVE', 30_000);

  const log = stderrLogger(region ? `warren-relay[${region}]` : 'warren-relay');
  const stateDir = resolve(v['state-dir'] ?? DEFAULT_RELAY_STATE_DIR);
  if (selfSigned) mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const cert = selfSigned ? await loadOrCreateSelfSigned(stateDir, { commonName: region ? `warren-relay-${region}` : 'warren-relay' }) : loadCertFiles(certFile!, keyFile!);

  const admission = new AdmissionSet();
  const server = new RelayServer({
    host: listen.ip, port: listen.port, tls: { cert: cert.certPem, key: cert.keyPem }, admission, log, keepaliveMs, clientRate: rate,
  });
  const control = new AdmissionClient({
    url: controlUrl.href, fingerprint, secret, set: admission, log,
    onState: (up) => server.setHealth(up ? '' : 'the relay cannot reach its control server; it admits nodes from its last list'),
  });
  let stunServer: StunServer | null = null;
  if (stun.length) stunServer = await startStunServer({ addresses: stun, ...(stunAlt !== undefined ? { altPort: stunAlt } : {}), log });
  else log('info', 'no --stun-listen: STUN is off');
  let port: number;
  try {
    port = await server.start();
  } catch (e) {
    await stunServer?.close();
    throw new Error(`cannot listen on ${v.listen ?? '0.0.0.0:443'}: ${(e as Error).message}`);
  }
  control.start();
  const onUsr1 = (): void => log('info', `stats: ${server.summary()} control=${control.connected ? 'up' : 'down'}` +
    (stunServer ? ` stun_requests=${stunServer.stats.requests} stun_garbage=${stunServer.stats.garbage}` : ''));
  process.on('SIGUSR1', onUsr1);
  log('info', `listening on ${listen.ip.includes(':') ? `[${listen.ip}]` : listen.ip}:${port}; certificate sha256:${cert.fingerprint}` +
    `${selfSigned ? ' (self-signed: put it in the relay map as this relay\'s "fingerprint")' : ''}; control ${controlUrl.origin}`);
  log('info', 'ready');
  return untilStopped(log, async () => {
    process.off('SIGUSR1', onUsr1);
    control.stop();
    await server.stop();
    await stunServer?.close();
  });
}
