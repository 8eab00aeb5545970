/**
 * The node side of certificate pinning: talking TLS to a control server (or
 * relay) whose self-signed certificate is identified by a SHA-256
 * fingerprint the operator gave the node.
 *
 * Node cannot check a fingerprint during the handshake: with
 * `rejectUnauthorized: true` a self-signed chain fails before
 * `checkServerIdentity` runs, and after a failed handshake the certificate is
 * gone. So pinning happens in two steps:
 *
 *  1. Learn the certificate once. `fetchPeerCertificate` does a handshake
 *     that only reads the server's certificate and sends no application
 *     data; its SHA-256 is compared with the pin, and only a match is kept
 *     (in memory and in `cacheFile`, in the node's state directory).
 *  2. Every real connection then verifies for real: the pinned certificate
 *     is the only trust anchor (`ca`), verification is on, and
 *     `checkServerIdentity` demands the exact fingerprint. The host name does
 *     not have to match the certificate: the pin is the identity.
 *
 * If the server later presents another certificate, step 2 fails with an
 * opaque OpenSSL error. `isPinFailure` recognises that, and `withPin` /
 * `request` then re-run step 1 once, so the caller sees a `PinMismatchError`
 * naming both fingerprints instead.
 *
 * Without a pin (a certificate from a real CA), callers use
 * `defaultTlsOptions()`: ordinary verification against the system CAs.
 *
 * @example
 *   const pin = new PinnedTls({ fingerprint: cfg.controlFingerprint, cacheFile: join(stateDir, 'control-cert.pem') });
 *   const res = await pin.request('https://control.example:8443/machine/challenge', { method: 'POST', body });
 *   // or, for a long-lived stream:
 *   const sock = await pin.withPin(host, port, async (opts) => openStream({ host, port, ...opts }));
 */
import { X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import { isIP } from 'node:net';
import { dirname } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import type { ConnectionOptions, PeerCertificate } from 'node:tls';
import { writeFileAtomicSync } from '../util/atomic-write.js';

// ---------------------------------------------------------------------------
// Fingerprints (shared with src/server/tls-cert.ts, which re-exports them)

/** A string that is not a SHA-256 fingerprint. */
export class FingerprintError extends Error {
  override readonly name = 'FingerprintError';
  readonly code = 'EFINGERPRINT';
}

const HEX64 = /^[0-9a-f]{64}$/;
const COLON_HEX = /^[0-9a-f]{2}(?::[0-9a-f]{2}){31}$/;

/**
 * Parse a SHA-256 certificate fingerprint written as 'ab12…' (64 hex
 * digits), as 'AB:12:…' (32 colon-separated pairs, as openssl and node print
 * it), or with a 'sha256:' prefix; either case. Returns 64 lowercase hex digits.
 */
export function normalizeFingerprint(s: string): string {
  if (typeof s !== 'string') throw new FingerprintError(`a SHA-256 fingerprint must be a string, got ${typeof s}`);
  let v = s.trim().toLowerCase();
  if (v.startsWith('sha256:')) v = v.slice('sha256:'.length);
  if (HEX64.test(v)) return v;
  if (COLON_HEX.test(v)) return v.replaceAll(':', '');
  const shown = s.length > 120 ? `${s.slice(0, 120)}…` : s;
  throw new FingerprintError(
    `not a SHA-256 certificate fingerprint: ${JSON.stringify(shown)} (expected 64 hex digits, as 'ab12…', 'AB:12:…' or 'sha256:ab12…')`,
  );
}

/** SHA-256 of a certificate's DER encoding, 64 lowercase hex digits. PEM input: the first certificate. */
export function fingerprintOf(cert: string | Buffer): string {
  return normalizeFingerprint(new X509Certificate(cert).fingerprint256);
}

// ---------------------------------------------------------------------------
// Errors

/** The server's certificate is not the pinned one. */
export class PinMismatchError extends Error {
  override readonly name = 'PinMismatchError';
  readonly code = 'EPIN';
  constructor(
    readonly host: string,
    readonly port: number,
    /** The pin, 64 lowercase hex digits. */
    readonly expected: string,
    /** What the server presented. */
    readonly actual: string,
  ) {
    super(
      `the server at ${hostPort(host, port)} presented a certificate with SHA-256 ${actual}, ` +
        `but this node is pinned to ${expected}; refusing to connect ` +
        '(run `warren-control fingerprint` on the server to check)',
    );
  }
}

/** OpenSSL's verification failures as node reports them (`err.code`). */
const TLS_VERIFY_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
  'INVALID_PURPOSE',
  'PATH_LENGTH_EXCEEDED',
  'CERT_CHAIN_TOO_LONG',
  'KEYUSAGE_NO_CERTSIGN',
  'UNSPECIFIED', // e.g. a leaf signed by a certificate that may not sign
  'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * True when a connection failed because the server's certificate did not
 * verify against the pin: a `PinMismatchError`, or the TLS error a real
 * connection gives when the server presents some other certificate.
 */
export function isPinFailure(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    if (e instanceof PinMismatchError) return true;
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && TLS_VERIFY_CODES.has(code)) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------
// Step 1: read the server's certificate

export interface FetchCertOptions {
  /** Give up after this long; default 10 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * Handshake with `host:port`, return the server's (leaf) certificate as PEM
 * and close. No application data is sent.
 */
export function fetchPeerCertificate(host: string, port: number, opts: FetchCertOptions = {}): Promise<string> {
  host = bareHost(host);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return new Promise<string>((resolve, reject) => {
    if (opts.signal?.aborted) {
      reject(opts.signal.reason as Error);
      return;
    }
    // The one place verification is off, and it has to be: we do not have
    // the certificate yet, so there is nothing to verify it against. Nothing
    // read here is trusted until its SHA-256 equals the pin (the caller
    // compares), no application data is ever written to this socket, and it
    // is destroyed as soon as the handshake is done.
    const socket = tlsConnect({
      host,
      port,
      ...(isIP(host) === 0 ? { servername: host } : {}),
      rejectUnauthorized: false,
    });
    let settled = false;
    const finish = (err: Error | undefined, pem?: string): void => {
      if (settled) return;
      settled = true;
      opts.signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      if (err) reject(err);
      else resolve(pem!);
    };
    const onAbort = (): void => finish(opts.signal!.reason as Error);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    socket.setTimeout(timeoutMs, () => {
      const err = new Error(`TLS handshake with ${hostPort(host, port)} timed out after ${timeoutMs} ms`) as NodeJS.ErrnoException;
      err.code = 'ETIMEDOUT';
      finish(err);
    });
    socket.once('error', (err) => finish(err));
    socket.once('secureConnect', () => {
      const cert: PeerCertificate | undefined = socket.getPeerCertificate(false);
      if (!cert?.raw) {
        finish(new Error(`the server at ${hostPort(host, port)} presented no certificate`));
        return;
      }
      finish(undefined, new X509Certificate(cert.raw).toString());
    });
  });
}

// ---------------------------------------------------------------------------
// Step 2: connections that verify against the pin

/** Options for servers with a certificate from a real CA: ordinary verification, system CAs. */
export function defaultTlsOptions(): ConnectionOptions {
  return {};
}

export interface PinnedTlsOptions {
  /** The server's certificate fingerprint, in any form `normalizeFingerprint` takes. */
  fingerprint: string;
  /** Where the verified certificate is kept (PEM, 0600), in the node's state dir. */
  cacheFile?: string;
  /** Timeout for the certificate fetch; default 10 s. */
  fetchTimeoutMs?: number;
}

export interface PinnedRequestInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  signal?: AbortSignal;
  /** Idle timeout for the whole exchange; default 30 s. */
  timeoutMs?: number;
  /** Larger response bodies are an error; default 32 MiB. */
  maxBodyBytes?: number;
}

export interface PinnedResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export class PinnedTls {
  /** The pin, 64 lowercase hex digits. */
  readonly fingerprint: string;
  readonly cacheFile: string | undefined;
  readonly #fetchTimeoutMs: number;
  /** The verified certificate (its SHA-256 equals the pin). */
  #pem: string | undefined;
  #fetching: Promise<string> | undefined;
  #cacheError: Error | undefined;

  constructor(opts: PinnedTlsOptions) {
    this.fingerprint = normalizeFingerprint(opts.fingerprint);
    this.cacheFile = opts.cacheFile;
    this.#fetchTimeoutMs = opts.fetchTimeoutMs ?? 10_000;
  }

  /** The last failure to write the cache file, if any (the pin still works; it is re-fetched next start). */
  get cacheError(): Error | undefined {
    return this.#cacheError;
  }

  /**
   * Options for `https.request` / `tls.connect` to `host:port` that accept
   * only the pinned certificate. May fetch the certificate once (step 1);
   * throws `PinMismatchError` if the server's is not the pinned one.
   */
  async connectOptions(host: string, port: number): Promise<ConnectionOptions> {
    host = bareHost(host);
    const pem = this.#pem ?? this.#loadCache() ?? (await this.#fetchOnce(host, port));
    const pin = this.fingerprint;
    return {
      ca: [pem],
      rejectUnauthorized: true,
      ...(isIP(host) === 0 ? { servername: host } : {}),
      // Runs only after the chain verified against `ca`. Our certificates
      // (CA:FALSE, no keyCertSign) cannot issue others, so today only the
      // pinned certificate gets here; demanding its exact fingerprint keeps
      // that true whatever certificate is pinned. The name is not checked:
      // a self-signed certificate's names mean nothing, the pin does.
      checkServerIdentity: (_name: string, cert: PeerCertificate) => {
        const actual = cert.fingerprint256 ? normalizeFingerprint(cert.fingerprint256) : '(none)';
        return actual === pin ? undefined : new PinMismatchError(host, port, pin, actual);
      },
    };
  }

  /**
   * Fetch the server's certificate now and compare it with the pin: throws
   * `PinMismatchError` if it differs, otherwise keeps it for `connectOptions`.
   */
  async verifyServer(host: string, port: number): Promise<void> {
    host = bareHost(host);
    const pem = await fetchPeerCertificate(host, port, { timeoutMs: this.#fetchTimeoutMs });
    this.#accept(host, port, pem);
  }

  /**
   * Run `attempt` with pinned options. If it fails because the certificate
   * did not verify, check the server's certificate again: a changed one
   * throws `PinMismatchError`; the pinned one gets `attempt` retried once
   * (the failed handshake sent no application data).
   */
  async withPin<T>(host: string, port: number, attempt: (opts: ConnectionOptions) => Promise<T>): Promise<T> {
    try {
      return await attempt(await this.connectOptions(host, port));
    } catch (err) {
      if (!isPinFailure(err) || err instanceof PinMismatchError) throw err;
      await this.verifyServer(host, port);
      return attempt(await this.connectOptions(host, port));
    }
  }

  /** One HTTPS request over a fresh pinned connection; the response body is read whole. */
  async request(url: string | URL, init: PinnedRequestInit = {}): Promise<PinnedResponse> {
    const u = new URL(url);
    if (u.protocol !== 'https:') throw new TypeError(`pinned requests need an https: URL, got ${u.href}`);
    const host = bareHost(u.hostname);
    const port = u.port === '' ? 443 : Number(u.port);
    return this.withPin(host, port, (tls) => sendRequest(host, port, `${u.pathname}${u.search}`, tls, init));
  }

  #loadCache(): string | undefined {
    if (this.cacheFile === undefined) return undefined;
    try {
      const pem = readFileSync(this.cacheFile, 'utf8');
      // A cache made for another pin (the operator re-pinned) is ignored.
      if (fingerprintOf(pem) !== this.fingerprint) return undefined;
      this.#pem = pem;
      return pem;
    } catch {
      return undefined; // missing or garbage: fetch again
    }
  }

  #fetchOnce(host: string, port: number): Promise<string> {
    this.#fetching ??= fetchPeerCertificate(host, port, { timeoutMs: this.#fetchTimeoutMs })
      .then((pem) => this.#accept(host, port, pem))
      .finally(() => {
        this.#fetching = undefined;
      });
    return this.#fetching;
  }

  #accept(host: string, port: number, pem: string): string {
    const actual = fingerprintOf(pem);
    if (actual !== this.fingerprint) throw new PinMismatchError(host, port, this.fingerprint, actual);
    if (pem !== this.#pem) {
      this.#pem = pem;
      this.#writeCache(pem);
    }
    return pem;
  }

  #writeCache(pem: string): void {
    if (this.cacheFile === undefined) return;
    try {
      mkdirSync(dirname(this.cacheFile), { recursive: true, mode: 0o700 });
      writeFileAtomicSync(this.cacheFile, pem, 0o600);
      this.#cacheError = undefined;
    } catch (err) {
      this.#cacheError = err as Error;
    }
  }
}

function sendRequest(host: string, port: number, path: string, tls: ConnectionOptions, init: PinnedRequestInit): Promise<PinnedResponse> {
  const timeoutMs = init.timeoutMs ?? 30_000;
  const maxBody = init.maxBodyBytes ?? 32 * 1024 * 1024;
  return new Promise<PinnedResponse>((resolve, reject) => {
    const req = httpsRequest(
      {
        ...tls,
        host,
        port,
        path,
        method: init.method ?? 'GET',
        headers: init.headers ?? {},
        agent: false, // a fresh connection, so every request is verified against the pin
        ...(init.signal ? { signal: init.signal } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > maxBody) {
            req.destroy(new Error(`response from ${hostPort(host, port)} exceeds ${maxBody} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.once('error', reject);
      },
    );
    req.setTimeout(timeoutMs, () => {
      const err = new Error(`request to ${hostPort(host, port)} timed out after ${timeoutMs} ms`) as NodeJS.ErrnoException;
      err.code = 'ETIMEDOUT';
      req.destroy(err);
    });
    req.once('error', reject);
    req.end(init.body);
  });
}

/** `URL.hostname` keeps the brackets of an IPv6 literal; sockets want it bare. */
function bareHost(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

function hostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}
