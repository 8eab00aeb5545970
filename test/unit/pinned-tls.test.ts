import { after, before, test } from 'node:test';
import { deepEqual, equal, match, ok, rejects, throws } from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import type { Server as HttpsServer } from 'node:https';
import { createServer as createNetServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { connect as tlsConnect, createServer as createTlsServer } from 'node:tls';
import type { PeerCertificate } from 'node:tls';
import {
  FingerprintError,
  PinMismatchError,
  PinnedTls,
  defaultTlsOptions,
  fetchPeerCertificate,
  fingerprintOf,
  isPinFailure,
} from '../../src/control/pinned-tls.js';
import { createSelfSigned } from '../../src/server/tls-cert.js';
import type { CertAndKey } from '../../src/server/tls-cert.js';

const root = mkdtempSync(join(tmpdir(), 'warren-pinned-tls-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
function cachePath(): string {
  return join(root, `node${n++}`, 'state', 'control-cert.pem');
}

let A: CertAndKey; // the server's certificate
let B: CertAndKey; // another key, another certificate
let A2: CertAndKey; // A's key, a new certificate (same subject): verifies against A as a CA would

before(async () => {
  A = await createSelfSigned({ commonName: 'warren-control' });
  B = await createSelfSigned({ commonName: 'warren-control' });
  const dir = mkdtempSync(join(root, 'reissue-'));
  writeFileSync(join(dir, 'key.pem'), A.keyPem, { mode: 0o600 });
  const certPem = execFileSync(
    'openssl',
    ['req', '-x509', '-key', join(dir, 'key.pem'), '-subj', '/CN=warren-control', '-days', '30', '-config', '/dev/null'],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
  );
  A2 = { certPem, keyPem: A.keyPem, fingerprint: fingerprintOf(certPem) };
});

/** An HTTPS server on 127.0.0.1 that counts TCP connections and HTTP requests. */
async function startServer(cert: CertAndKey): Promise<{ server: HttpsServer; port: number; connections: () => number; requests: () => number; stop: () => Promise<void> }> {
  let connections = 0;
  let requests = 0;
  const server = createHttpsServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
    requests++;
    res.end(`hello ${req.method} ${req.url}`);
  });
  server.on('connection', () => connections++);
  server.on('tlsClientError', () => {}); // aborted certificate fetches
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    connections: () => connections,
    requests: () => requests,
    stop: () => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

test('the right pin: the request succeeds and the verified certificate is cached (0600)', async () => {
  const srv = await startServer(A);
  try {
    const cacheFile = cachePath();
    const pin = new PinnedTls({ fingerprint: A.fingerprint, cacheFile });
    const res = await pin.request(`https://127.0.0.1:${srv.port}/machine/register?x=1`, { method: 'POST', body: '{}' });
    equal(res.status, 200);
    equal(res.body.toString(), 'hello POST /machine/register?x=1');
    equal(srv.connections(), 2, 'one certificate fetch, one real connection');
    equal(srv.requests(), 1);
    ok(existsSync(cacheFile));
    equal(statSync(cacheFile).mode & 0o777, 0o600);
    equal(fingerprintOf(readFileSync(cacheFile, 'utf8')), A.fingerprint);
    equal(pin.cacheError, undefined);

    // Same instance: no second fetch.
    await pin.request(`https://127.0.0.1:${srv.port}/again`);
    equal(srv.connections(), 3);

    // A new process (new instance, same state dir) trusts the cache without fetching.
    const restarted = new PinnedTls({ fingerprint: A.fingerprint.toUpperCase().match(/../g)!.join(':'), cacheFile });
    equal((await restarted.request(`https://127.0.0.1:${srv.port}/`)).status, 200);
    equal(srv.connections(), 4);
    equal(srv.requests(), 3);
  } finally {
    await srv.stop();
  }
});

test('connectOptions work with tls.connect directly, whatever the host name', async () => {
  const srv = await startServer(A);
  try {
    const pin = new PinnedTls({ fingerprint: `sha256:${A.fingerprint}` });
    const opts = await pin.connectOptions('127.0.0.1', srv.port);
    equal(opts.rejectUnauthorized, true);
    deepEqual(opts.ca, [A.certPem]);
    const sock = tlsConnect({ ...opts, host: '127.0.0.1', port: srv.port });
    await new Promise<void>((resolve, reject) => {
      sock.once('secureConnect', () => resolve());
      sock.once('error', reject);
    });
    equal(sock.authorized, true);
    sock.destroy();

    // The identity check demands the exact fingerprint, whatever the name.
    const check = opts.checkServerIdentity!;
    const colon = (fp: string): string => fp.toUpperCase().match(/../g)!.join(':');
    equal(check('some.other.name', { fingerprint256: colon(A.fingerprint) } as PeerCertificate), undefined);
    const refused = check('127.0.0.1', { fingerprint256: colon(B.fingerprint) } as PeerCertificate);
    ok(refused instanceof PinMismatchError);
    equal(refused.actual, B.fingerprint);
  } finally {
    await srv.stop();
  }
});

test('a wrong pin is refused with PinMismatchError and no application data reaches the server', async () => {
  const srv = await startServer(A);
  try {
    const cacheFile = cachePath();
    const pin = new PinnedTls({ fingerprint: B.fingerprint, cacheFile });
    await rejects(pin.request(`https://127.0.0.1:${srv.port}/machine/register`, { method: 'POST', body: 'secret' }), (e: unknown) => {
      ok(e instanceof PinMismatchError, String(e));
      equal(e.code, 'EPIN');
      equal(e.expected, B.fingerprint);
      equal(e.actual, A.fingerprint);
      equal(
        e.message,
        `the server at 127.0.0.1:${srv.port} presented a certificate with SHA-256 ${A.fingerprint}, but this node is pinned to ${B.fingerprint}; ` +
          'refusing to connect (run `warren-control fingerprint` on the server to check)',
      );
      ok(isPinFailure(e));
      return true;
    });
    equal(srv.requests(), 0);
    equal(srv.connections(), 1, 'only the certificate fetch');
    equal(existsSync(cacheFile), false, 'nothing cached');
  } finally {
    await srv.stop();
  }
});

test('the certificate fetch sends no application data', async () => {
  let received = 0;
  const closed: Promise<void>[] = [];
  const server = createTlsServer({ cert: A.certPem, key: A.keyPem }, (s) => {
    s.on('data', (d: Buffer) => (received += d.length));
    s.on('error', () => {});
  });
  server.on('connection', (s: Socket) => closed.push(new Promise((r) => s.once('close', () => r()))));
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const port = (server.address() as AddressInfo).port;
    const pem = await fetchPeerCertificate('127.0.0.1', port);
    equal(fingerprintOf(pem), A.fingerprint);
    await Promise.all(closed);
    equal(closed.length, 1);
    equal(received, 0);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test('after the server swaps to another certificate, the next connection fails with PinMismatchError', async () => {
  const srv = await startServer(A);
  try {
    const pin = new PinnedTls({ fingerprint: A.fingerprint, cacheFile: cachePath() });
    equal((await pin.request(`https://127.0.0.1:${srv.port}/`)).status, 200);

    srv.server.setSecureContext({ cert: B.certPem, key: B.keyPem });
    await rejects(pin.request(`https://127.0.0.1:${srv.port}/netmap`), (e: unknown) => {
      ok(e instanceof PinMismatchError, String(e));
      equal(e.expected, A.fingerprint);
      equal(e.actual, B.fingerprint);
      ok(e.message.includes(A.fingerprint) && e.message.includes(B.fingerprint), e.message);
      return true;
    });
    equal(srv.requests(), 1, 'nothing reached the server after the swap');

    // A new certificate for the same key (and the same name) is refused too.
    srv.server.setSecureContext({ cert: A2.certPem, key: A2.keyPem });
    await rejects(pin.request(`https://127.0.0.1:${srv.port}/netmap`), (e: unknown) => {
      ok(e instanceof PinMismatchError, String(e));
      equal(e.actual, A2.fingerprint);
      return true;
    });
    equal(srv.requests(), 1);

    // Back to the pinned certificate: works again.
    srv.server.setSecureContext({ cert: A.certPem, key: A.keyPem });
    equal((await pin.request(`https://127.0.0.1:${srv.port}/`)).status, 200);
  } finally {
    await srv.stop();
  }
});

test('the opaque TLS error of a swapped certificate is what isPinFailure recognises', async () => {
  const srv = await startServer(B);
  try {
    const pin = new PinnedTls({ fingerprint: A.fingerprint });
    // Options made for A (e.g. from the cache), used against a server now presenting B.
    const opts = { ca: [A.certPem], rejectUnauthorized: true, checkServerIdentity: () => undefined };
    const err = await new Promise<Error>((resolve) => {
      const sock = tlsConnect({ ...opts, host: '127.0.0.1', port: srv.port });
      sock.once('error', resolve);
      sock.once('secureConnect', () => resolve(new Error('connected')));
    });
    ok(isPinFailure(err), `${(err as NodeJS.ErrnoException).code}: ${err.message}`);
    // withPin turns it into the clear error.
    let attempts = 0;
    await rejects(
      pin.withPin('127.0.0.1', srv.port, () => {
        attempts++;
        return Promise.reject(err);
      }),
      PinMismatchError,
    );
    equal(attempts, 0, 'the fetch already refused B before any attempt');
  } finally {
    await srv.stop();
  }
});

test('withPin retries once when the re-fetched certificate is still the pinned one', async () => {
  const srv = await startServer(A);
  try {
    const pin = new PinnedTls({ fingerprint: A.fingerprint });
    const tlsErr = Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
    let attempts = 0;
    const got = await pin.withPin('127.0.0.1', srv.port, (opts) => {
      attempts++;
      equal(opts.rejectUnauthorized, true);
      return attempts === 1 ? Promise.reject(tlsErr) : Promise.resolve('ok');
    });
    equal(got, 'ok');
    equal(attempts, 2);
    // Other errors pass through untouched, without a retry.
    attempts = 0;
    const other = Object.assign(new Error('refused'), { code: 'ECONNREFUSED' });
    await rejects(
      pin.withPin('127.0.0.1', srv.port, () => {
        attempts++;
        return Promise.reject(other);
      }),
      (e: unknown) => e === other,
    );
    equal(attempts, 1);
  } finally {
    await srv.stop();
  }
});

test('a cached certificate whose fingerprint is not the pin is ignored and re-fetched', async () => {
  const srv = await startServer(A);
  try {
    for (const stale of [B.certPem, 'not a certificate\n']) {
      const cacheFile = cachePath();
      mkdirSync(dirname(cacheFile), { recursive: true });
      writeFileSync(cacheFile, stale, { mode: 0o600 });
      const before = srv.connections();
      const pin = new PinnedTls({ fingerprint: A.fingerprint, cacheFile });
      equal((await pin.request(`https://127.0.0.1:${srv.port}/`)).status, 200);
      equal(srv.connections() - before, 2, 'fetched again');
      equal(readFileSync(cacheFile, 'utf8'), A.certPem.replace(/\n?$/, '\n'));
      equal(fingerprintOf(readFileSync(cacheFile, 'utf8')), A.fingerprint);
    }
  } finally {
    await srv.stop();
  }
});

test('fetch failures: connection refused passes through, a silent server times out', async () => {
  const closedPort = await new Promise<number>((resolve) => {
    const s = createNetServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  const pin = new PinnedTls({ fingerprint: A.fingerprint });
  await rejects(pin.connectOptions('127.0.0.1', closedPort), (e: unknown) => {
    equal((e as NodeJS.ErrnoException).code, 'ECONNREFUSED');
    equal(isPinFailure(e), false);
    return true;
  });

  const sockets: Socket[] = [];
  const silent = createNetServer((s) => sockets.push(s));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  try {
    const port = (silent.address() as AddressInfo).port;
    await rejects(fetchPeerCertificate('127.0.0.1', port, { timeoutMs: 50 }), (e: unknown) => {
      equal((e as NodeJS.ErrnoException).code, 'ETIMEDOUT');
      match((e as Error).message, /timed out after 50 ms/);
      return true;
    });
    const ac = new AbortController();
    const p = fetchPeerCertificate('127.0.0.1', port, { signal: ac.signal });
    ac.abort(new Error('stopping'));
    await rejects(p, /stopping/);
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => silent.close(() => r()));
  }
});

test('bad pins, isPinFailure and the unpinned defaults', () => {
  throws(() => new PinnedTls({ fingerprint: 'abc' }), FingerprintError);
  deepEqual(defaultTlsOptions(), {});
  equal(isPinFailure(Object.assign(new Error('x'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' })), true);
  equal(isPinFailure(new Error('wrapped', { cause: Object.assign(new Error('x'), { code: 'CERT_HAS_EXPIRED' }) })), true);
  equal(isPinFailure(Object.assign(new Error('x'), { code: 'ECONNRESET' })), false);
  equal(isPinFailure('DEPTH_ZERO_SELF_SIGNED_CERT'), false);
  equal(isPinFailure(undefined), false);
});

test('request refuses a non-https URL', async () => {
  const pin = new PinnedTls({ fingerprint: A.fingerprint });
  await rejects(pin.request('http://127.0.0.1:1/'), /https: URL/);
});
