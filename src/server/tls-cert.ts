/**
 * TLS certificates for the control and relay servers.
 *
 * A server either runs with a certificate the operator gives it (from a real
 * CA: `loadCertFiles`) or creates a self-signed one on first start and keeps
 * it in its state directory (`loadOrCreateSelfSigned`). The self-signed
 * certificate's identity is its SHA-256 fingerprint (of the DER encoding):
 * the server prints it, nodes pin it (src/control/pinned-tls.ts), and the
 * relay map carries each relay's pin. Creating it once and reloading it on
 * every later start is what keeps the pins valid across restarts.
 *
 * Fingerprints are written as 64 lowercase hex digits everywhere; anything
 * that parses one from a user (config, CLI, relay map) goes through
 * `normalizeFingerprint` (re-exported here), which also accepts the colon
 * form that openssl and node print ('AB:CD:…') and a 'sha256:' prefix.
 *
 * The key and certificate are made by the `openssl` command (node:crypto can
 * make keys but not certificates), run with execFile and no shell.
 */
import { execFile } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fingerprintOf, normalizeFingerprint } from '../control/pinned-tls.js';
import { writeFileAtomicSync } from '../util/atomic-write.js';

const execFileAsync = promisify(execFile);

/** File names inside the server's state directory. */
export const CERT_FILE = 'tls-cert.pem';
export const KEY_FILE = 'tls-key.pem';

export const DEFAULT_CERT_DAYS = 3650;
const OPENSSL_TIMEOUT_MS = 60_000;

export type TlsCertErrorCode = 'ECERTFILE' | 'EOPENSSL' | 'ECERTOPTS';

/** Every failure in this module: a stable code, a message an operator can act on, the cause. */
export class TlsCertError extends Error {
  override readonly name = 'TlsCertError';
  readonly code: TlsCertErrorCode;
  constructor(code: TlsCertErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

export interface CertAndKey {
  /** PEM; for an operator-given file this may be a chain, leaf first. */
  certPem: string;
  keyPem: string;
  /** SHA-256 of the (leaf) certificate's DER encoding: 64 lowercase hex digits. */
  fingerprint: string;
}

export interface SelfSignedOptions {
  /** Subject CN, also the first subjectAltName (DNS:, or IP: for an address). */
  commonName: string;
  /** Validity in days from now; default 3650. */
  days?: number;
  /** More subjectAltNames (host names or IP addresses). */
  altNames?: string[];
}

// ---------------------------------------------------------------------------
// Fingerprints: defined beside their main consumer, the node's pin check, so
// the node side never imports server code; re-exported here for the servers.

export { FingerprintError, fingerprintOf, normalizeFingerprint } from '../control/pinned-tls.js';

// ---------------------------------------------------------------------------
// Operator-given certificates

/**
 * Load a certificate (or chain, leaf first) and its private key from PEM
 * files. Errors name the file that is missing, unreadable, not PEM, or does
 * not match the other.
 */
export function loadCertFiles(certPath: string, keyPath: string): CertAndKey {
  const certPem = readPem(certPath, 'certificate');
  const keyPem = readPem(keyPath, 'private key');
  const cert = parseCert(certPem, certPath);
  const key = parseKey(keyPem, keyPath);
  if (!cert.checkPrivateKey(key)) {
    throw new TlsCertError('ECERTFILE', `the private key in ${keyPath} does not belong to the certificate in ${certPath}`);
  }
  return { certPem, keyPem, fingerprint: normalizeFingerprint(cert.fingerprint256) };
}

function readPem(path: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'is not readable (permission denied)' : `cannot be read (${code ?? String(err)})`;
    throw new TlsCertError('ECERTFILE', `TLS ${what} file ${path} ${why}`, { cause: err });
  }
  return text;
}

function parseCert(pem: string, path: string): X509Certificate {
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new TlsCertError('ECERTFILE', `TLS certificate file ${path} is not a PEM certificate (no "-----BEGIN CERTIFICATE-----" line)`);
  }
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new TlsCertError('ECERTFILE', `TLS certificate file ${path} holds a PEM block that is not a valid certificate: ${(err as Error).message}`, { cause: err });
  }
}

function parseKey(pem: string, path: string): KeyObject {
  if (!/-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----/.test(pem)) {
    throw new TlsCertError('ECERTFILE', `TLS private key file ${path} is not a PEM private key (no "-----BEGIN … PRIVATE KEY-----" line)`);
  }
  if (pem.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----') || pem.includes('Proc-Type: 4,ENCRYPTED')) {
    throw new TlsCertError('ECERTFILE', `TLS private key file ${path} is encrypted; give an unencrypted key (readable by this server only)`);
  }
  try {
    return createPrivateKey(pem);
  } catch (err) {
    throw new TlsCertError('ECERTFILE', `TLS private key file ${path} holds a PEM block that is not a valid private key: ${(err as Error).message}`, { cause: err });
  }
}

// ---------------------------------------------------------------------------
// Self-signed, created once

/**
 * The server's self-signed certificate in `dir`: created on the first call
 * (ECDSA P-256), loaded from `tls-cert.pem` / `tls-key.pem` on every later
 * one, so the fingerprint nodes pin stays the same across restarts.
 *
 * Write order is key first, then certificate, each atomically: a crash in
 * between leaves a key without a certificate, which the next call replaces.
 * A certificate without its key cannot come from a crash, so that is an
 * error rather than a silent change of identity.
 */
export async function loadOrCreateSelfSigned(dir: string, opts: SelfSignedOptions): Promise<CertAndKey> {
  const certPath = join(dir, CERT_FILE);
  const keyPath = join(dir, KEY_FILE);
  if (existsSync(certPath)) {
    if (!existsSync(keyPath)) {
      throw new TlsCertError(
        'ECERTFILE',
        `${certPath} exists but its key ${keyPath} is missing; restore the key, or remove ${certPath} to create a new ` +
          `certificate (its fingerprint will change and nodes pinned to the old one will refuse this server)`,
      );
    }
    return loadCertFiles(certPath, keyPath);
  }

  const created = await createSelfSigned(opts);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileAtomicSync(keyPath, created.keyPem, 0o600);
  writeFileAtomicSync(certPath, created.certPem, 0o644);
  // The mode given to open() is masked by the umask; make it exact.
  chmodSync(keyPath, 0o600);
  chmodSync(certPath, 0o644);
  return created;
}

/** Make a fresh key and self-signed certificate with openssl; nothing is kept on disk. */
export async function createSelfSigned(opts: SelfSignedOptions): Promise<CertAndKey> {
  const days = opts.days ?? DEFAULT_CERT_DAYS;
  if (!Number.isInteger(days) || days < 1 || days > 36_500) {
    throw new TlsCertError('ECERTOPTS', `certificate validity must be a whole number of days from 1 to 36500, got ${days}`);
  }
  checkName(opts.commonName, 'common name');
  const names = [opts.commonName, ...(opts.altNames ?? [])];
  for (const n of names) checkName(n, 'subjectAltName');
  const san = [...new Set(names)].map((n) => (isIP(n) ? `IP:${n}` : `DNS:${n}`)).join(',');

  // A private temp dir (0700) for openssl's outputs; removed whatever happens.
  const tmp = mkdtempSync(join(tmpdir(), 'warren-tls-'));
  try {
    const config = join(tmp, 'req.cnf');
    const keyOut = join(tmp, 'key.pem');
    const certOut = join(tmp, 'cert.pem');
    // Our own config, so the result does not depend on the system's openssl.cnf
    // (which may be missing on a minimal image, or add CA extensions).
    writeFileSync(config, REQ_CONFIG, { mode: 0o600 });
    const args = [
      'req', '-x509', '-config', config,
      '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-subj', `/CN=${opts.commonName}`,
      '-addext', `subjectAltName=${san}`,
      '-days', String(days),
      '-keyout', keyOut, '-out', certOut,
    ];
    // Backdate a day so a peer whose clock is a little behind (a Pi without
    // an RTC before NTP syncs) still accepts it. OpenSSL 3.0 has no
    // -not_before; newer versions do.
    if (await opensslHasNotBefore()) args.push('-not_before', asn1Time(new Date(Date.now() - 86_400_000)));
    await runOpenssl(args);
    const certPem = readFileSync(certOut, 'utf8');
    const keyPem = readFileSync(keyOut, 'utf8');
    return { certPem, keyPem, fingerprint: fingerprintOf(certPem) };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

const REQ_CONFIG = `[req]
distinguished_name = dn
x509_extensions = v3
prompt = no
[dn]
[v3]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
`;

/** Host names, IPv4/IPv6 literals and '*.' wildcards; nothing that could break `-subj` or the SAN list. */
function checkName(name: string, what: string): void {
  if (typeof name === 'string' && isIP(name) !== 0) return;
  if (typeof name !== 'string' || name.length < 1 || name.length > 64 || !/^[A-Za-z0-9*][A-Za-z0-9._*-]*$/.test(name)) {
    throw new TlsCertError(
      'ECERTOPTS',
      `certificate ${what} ${JSON.stringify(name)} is not an IP address or a host name (letters, digits, '.', '-', '_', '*'; at most 64 characters)`,
    );
  }
}

/** YYYYMMDDHHMMSSZ, which openssl accepts for -not_before. */
function asn1Time(d: Date): string {
  return d.toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z');
}

let notBeforeProbe: Promise<boolean> | undefined;

function opensslHasNotBefore(): Promise<boolean> {
  notBeforeProbe ??= execFileAsync('openssl', ['req', '-help'], { timeout: OPENSSL_TIMEOUT_MS })
    .then(
      ({ stdout, stderr }) => `${stdout}${stderr}`,
      // `-help` exits non-zero on some versions; the text is still there.
      (err: { stdout?: string; stderr?: string }) => `${err.stdout ?? ''}${err.stderr ?? ''}`,
    )
    .then((text) => /(^|\s)-not_before\b/m.test(text));
  return notBeforeProbe;
}

async function runOpenssl(args: string[]): Promise<void> {
  try {
    await execFileAsync('openssl', args, { timeout: OPENSSL_TIMEOUT_MS });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') {
      throw new TlsCertError(
        'EOPENSSL',
        'the openssl command was not found; install openssl to create a self-signed certificate, or give a certificate and key files',
        { cause: err },
      );
    }
    const detail = (e.stderr ?? '').split('\n').filter((l) => l.trim() !== '' && !/^-+$/.test(l.trim())).slice(0, 5).join('; ');
    throw new TlsCertError('EOPENSSL', `openssl could not create the certificate: ${detail || e.message}`, { cause: err });
  }
}
