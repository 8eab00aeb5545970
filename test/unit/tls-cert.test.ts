import { after, test } from 'node:test';
import { equal, match, notEqual, ok, rejects, throws } from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate, createHash, createPrivateKey } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CERT_FILE,
  FingerprintError,
  KEY_FILE,
  TlsCertError,
  createSelfSigned,
  fingerprintOf,
  loadCertFiles,
  loadOrCreateSelfSigned,
  normalizeFingerprint,
} from '../../src/server/tls-cert.js';

const root = mkdtempSync(join(tmpdir(), 'warren-tls-cert-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
function freshDir(): string {
  return join(root, `d${n++}`, 'state');
}

test('loadOrCreateSelfSigned creates an ECDSA P-256 certificate, key 0600 and cert 0644', async () => {
  const dir = freshDir();
  const got = await loadOrCreateSelfSigned(dir, { commonName: 'warren-control' });
  const certPath = join(dir, CERT_FILE);
  const keyPath = join(dir, KEY_FILE);
  equal(statSync(certPath).mode & 0o777, 0o644);
  equal(statSync(keyPath).mode & 0o777, 0o600);
  equal(readFileSync(certPath, 'utf8'), got.certPem);
  equal(readFileSync(keyPath, 'utf8'), got.keyPem);
  // No temp files left behind.
  equal(execFileSync('ls', ['-A', dir], { encoding: 'utf8' }).trim().split('\n').sort().join(','), `${CERT_FILE},${KEY_FILE}`);

  const cert = new X509Certificate(got.certPem);
  equal(cert.subject, 'CN=warren-control');
  equal(cert.issuer, 'CN=warren-control');
  equal(cert.subjectAltName, 'DNS:warren-control');
  equal(cert.ca, false);
  const key = createPrivateKey(got.keyPem);
  equal(key.asymmetricKeyType, 'ec');
  equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  ok(cert.checkPrivateKey(key));
  ok(cert.verify(cert.publicKey), 'self-signed');
  match(got.fingerprint, /^[0-9a-f]{64}$/);
  equal(got.fingerprint, fingerprintOf(got.certPem));

  // Valid now and for ~3650 days.
  const now = Date.now();
  ok(Date.parse(cert.validFrom) <= now);
  const days = (Date.parse(cert.validTo) - now) / 86_400_000;
  ok(days > 3649 && days < 3651, `valid for ${days} days`);
});

test('a later call loads the same files: same fingerprint, same key', async () => {
  const dir = freshDir();
  const first = await loadOrCreateSelfSigned(dir, { commonName: 'relay.example' });
  const second = await loadOrCreateSelfSigned(dir, { commonName: 'relay.example' });
  const third = await loadOrCreateSelfSigned(dir, { commonName: 'another-name', days: 5 });
  equal(second.fingerprint, first.fingerprint);
  equal(second.certPem, first.certPem);
  equal(second.keyPem, first.keyPem);
  equal(third.fingerprint, first.fingerprint);
});

test('two directories get two different certificates', async () => {
  const a = await loadOrCreateSelfSigned(freshDir(), { commonName: 'warren-control' });
  const b = await loadOrCreateSelfSigned(freshDir(), { commonName: 'warren-control' });
  notEqual(a.fingerprint, b.fingerprint);
});

test('the fingerprint equals `openssl x509 -noout -fingerprint -sha256`, and SHA-256 of the DER', async () => {
  const dir = freshDir();
  const got = await loadOrCreateSelfSigned(dir, { commonName: 'warren-control' });
  const out = execFileSync('openssl', ['x509', '-noout', '-fingerprint', '-sha256', '-in', join(dir, CERT_FILE)], { encoding: 'utf8' });
  // "sha256 Fingerprint=AB:CD:…" (the label's case varies between versions)
  const colon = out.trim().split('=')[1]!;
  match(colon, /^[0-9A-F]{2}(:[0-9A-F]{2}){31}$/);
  equal(normalizeFingerprint(colon), got.fingerprint);
  equal(createHash('sha256').update(new X509Certificate(got.certPem).raw).digest('hex'), got.fingerprint);
});

test('days, IP common names and extra alt names', async () => {
  const got = await createSelfSigned({ commonName: '127.0.0.1', days: 30, altNames: ['localhost', '::1', '127.0.0.1'] });
  const cert = new X509Certificate(got.certPem);
  equal(cert.subjectAltName, 'IP Address:127.0.0.1, DNS:localhost, IP Address:0:0:0:0:0:0:0:1');
  const days = (Date.parse(cert.validTo) - Date.now()) / 86_400_000;
  ok(days > 29 && days < 31, `valid for ${days} days`);
});

test('bad options are refused before openssl runs', async () => {
  for (const commonName of ['', 'a/b', 'x,CN=evil', 'a b', 'a'.repeat(65), '-newkey']) {
    await rejects(createSelfSigned({ commonName }), (e: unknown) => e instanceof TlsCertError && e.code === 'ECERTOPTS', commonName);
  }
  await rejects(createSelfSigned({ commonName: 'ok', altNames: ['bad name'] }), /subjectAltName/);
  for (const days of [0, -1, 1.5, 40_000]) {
    await rejects(createSelfSigned({ commonName: 'ok', days }), /whole number of days/);
  }
});

test('a key left without its certificate (crash between writes) is replaced', async () => {
  const dir = freshDir();
  const first = await loadOrCreateSelfSigned(dir, { commonName: 'warren-control' });
  unlinkSync(join(dir, CERT_FILE));
  const second = await loadOrCreateSelfSigned(dir, { commonName: 'warren-control' });
  notEqual(second.fingerprint, first.fingerprint);
  ok(new X509Certificate(second.certPem).checkPrivateKey(createPrivateKey(readFileSync(join(dir, KEY_FILE)))));
});

test('a certificate whose key is missing is an error, not a silent new identity', async () => {
  const dir = freshDir();
  const first = await loadOrCreateSelfSigned(dir, { commonName: 'warren-control' });
  unlinkSync(join(dir, KEY_FILE));
  await rejects(loadOrCreateSelfSigned(dir, { commonName: 'warren-control' }), (e: unknown) => {
    ok(e instanceof TlsCertError);
    equal(e.code, 'ECERTFILE');
    ok(e.message.includes(join(dir, KEY_FILE)), e.message);
    match(e.message, /is missing/);
    return true;
  });
  equal(fingerprintOf(readFileSync(join(dir, CERT_FILE), 'utf8')), first.fingerprint, 'certificate untouched');
});

test('normalizeFingerprint accepts hex, colon pairs and a sha256: prefix, in either case', () => {
  const hex = 'ab'.repeat(16) + '0123456789abcdef'.repeat(2);
  const colon = hex.toUpperCase().match(/../g)!.join(':');
  equal(normalizeFingerprint(hex), hex);
  equal(normalizeFingerprint(hex.toUpperCase()), hex);
  equal(normalizeFingerprint(colon), hex);
  equal(normalizeFingerprint(colon.toLowerCase()), hex);
  equal(normalizeFingerprint(`sha256:${hex}`), hex);
  equal(normalizeFingerprint(`SHA256:${colon}`), hex);
  equal(normalizeFingerprint(`  ${hex}\n`), hex);
});

test('normalizeFingerprint refuses anything else with a clear error', () => {
  const hex = 'ab'.repeat(32);
  const bad = [
    '',
    hex.slice(0, 62), // too short
    `${hex}00`, // too long
    `${hex.slice(0, 63)}g`, // not hex
    hex.match(/../g)!.join('-'), // wrong separator
    hex.match(/..../g)!.join(':'), // pairs of pairs
    `:${hex.match(/../g)!.join(':')}`,
    `sha1:${'ab'.repeat(20)}`,
    `md5:${hex}`,
    'ab'.repeat(20), // a SHA-1 length
  ];
  for (const s of bad) {
    throws(() => normalizeFingerprint(s), (e: unknown) => {
      ok(e instanceof FingerprintError, s);
      equal(e.code, 'EFINGERPRINT');
      match(e.message, /not a SHA-256 certificate fingerprint/);
      match(e.message, /64 hex digits/);
      return true;
    });
  }
  throws(() => normalizeFingerprint(42 as unknown as string), /must be a string/);
});

test('loadCertFiles loads an operator certificate and names the file in every error', async () => {
  const dir = join(root, 'operator');
  mkdirSync(dir, { recursive: true });
  const a = await createSelfSigned({ commonName: 'a.example' });
  const b = await createSelfSigned({ commonName: 'b.example' });
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  writeFileSync(certPath, a.certPem);
  writeFileSync(keyPath, a.keyPem, { mode: 0o600 });
  const got = loadCertFiles(certPath, keyPath);
  equal(got.fingerprint, a.fingerprint);
  equal(got.certPem, a.certPem);

  // A chain (leaf first): the fingerprint is the leaf's.
  const chainPath = join(dir, 'fullchain.pem');
  writeFileSync(chainPath, a.certPem + b.certPem);
  equal(loadCertFiles(chainPath, keyPath).fingerprint, a.fingerprint);

  const fails = (cert: string, key: string, re: RegExp, file: string): void => {
    throws(() => loadCertFiles(cert, key), (e: unknown) => {
      ok(e instanceof TlsCertError, String(e));
      equal(e.code, 'ECERTFILE');
      match(e.message, re);
      ok(e.message.includes(file), `${e.message} should name ${file}`);
      return true;
    });
  };
  const missing = join(dir, 'nope.pem');
  fails(missing, keyPath, /certificate file .* does not exist/, missing);
  fails(certPath, missing, /private key file .* does not exist/, missing);
  fails(dir, keyPath, /cannot be read/, dir); // a directory: EISDIR

  const notPem = join(dir, 'not.pem');
  writeFileSync(notPem, 'hello\n');
  fails(notPem, keyPath, /is not a PEM certificate/, notPem);
  fails(certPath, notPem, /is not a PEM private key/, notPem);
  fails(keyPath, keyPath, /is not a PEM certificate/, keyPath); // key given as cert
  fails(certPath, certPath, /is not a PEM private key/, certPath); // cert given as key

  const garbled = join(dir, 'garbled.pem');
  writeFileSync(garbled, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
  fails(garbled, keyPath, /not a valid certificate/, garbled);
  const garbledKey = join(dir, 'garbled-key.pem');
  writeFileSync(garbledKey, '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n');
  fails(certPath, garbledKey, /not a valid private key/, garbledKey);

  const otherKey = join(dir, 'other-key.pem');
  writeFileSync(otherKey, b.keyPem);
  fails(certPath, otherKey, /does not belong to the certificate/, otherKey);

  const encKey = join(dir, 'enc-key.pem');
  writeFileSync(encKey, execFileSync('openssl', ['pkcs8', '-topk8', '-v2', 'aes-256-cbc', '-passout', 'pass:x', '-in', keyPath]));
  fails(certPath, encKey, /is encrypted/, encKey);

  if (process.getuid?.() !== 0) {
    const locked = join(dir, 'locked.pem');
    writeFileSync(locked, a.keyPem, { mode: 0o000 });
    fails(certPath, locked, /not readable/, locked);
  }
  ok(existsSync(certPath));
});
