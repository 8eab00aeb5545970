/**
 * The LocalAPI client: how the `warren` CLI talks to `warrend` over its unix socket.
 * One method per route; every failure becomes a LocalApiClientError whose message a
 * user can act on (daemon not running, need root, or the daemon's own error text).
 */

import { request } from 'node:http';
import type { DeviceStatus } from '../dataplane/status.js';

/** Default time a request may take before it is abandoned. */
const DEFAULT_TIMEOUT_MS = 10_000;
/** Largest answer accepted from the daemon. */
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

export type LocalApiClientErrorCode =
  | 'not_running' // no socket, or nothing listening on it
  | 'permission_denied' // socket not accessible to this user
  | 'connect' // any other failure to reach the daemon
  | 'timeout'
  | 'http' // the daemon answered non-2xx; `status` is set
  | 'protocol'; // the answer was not the JSON expected

export class LocalApiClientError extends Error {
  override name = 'LocalApiClientError';
  /** HTTP status, for code 'http'. */
  readonly status: number | undefined;
  constructor(
    readonly code: LocalApiClientErrorCode,
    message: string,
    options?: ErrorOptions & { status?: number },
  ) {
    super(message, options);
    this.status = options?.status;
  }
}

export interface LocalApiClientOptions {
  timeoutMs?: number;
  /** The daemon's name in messages (default "warrend"). */
  daemon?: string;
}

export interface LocalApiCallOptions {
  signal?: AbortSignal;
}

export class LocalApiClient {
  private readonly timeoutMs: number;
  private readonly daemon: string;

  constructor(
    readonly socketPath: string,
    opts: LocalApiClientOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.daemon = opts.daemon ?? 'warrend';
  }

  async status(opts: LocalApiCallOptions = {}): Promise<DeviceStatus> {
    const value = await this.call('GET', '/v0/status', undefined, opts);
    if (typeof value !== 'object' || value === null || !Array.isArray((value as DeviceStatus).peers)) {
      throw new LocalApiClientError('protocol', 'warrend sent a malformed status');
    }
    return value as DeviceStatus;
  }

  /** One request; resolves to the parsed JSON answer of a 2xx response. */
  call(method: string, path: string, body: unknown, opts: LocalApiCallOptions = {}): Promise<unknown> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = request(
        {
          socketPath: this.socketPath,
          path,
          method,
          agent: false, // one connection per call; nothing left to keep the CLI alive
          timeout: this.timeoutMs,
          signal: opts.signal,
          headers: {
            accept: 'application/json',
            ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_RESPONSE_BYTES) {
              req.destroy(new LocalApiClientError('protocol', `${this.daemon} sent an oversized answer`));
              return;
            }
            chunks.push(chunk);
          });
          res.once('error', (err) => reject(this.explain(err)));
          res.once('end', () => {
            const status = res.statusCode ?? 0;
            const text = Buffer.concat(chunks, size).toString('utf8');
            let parsed: unknown;
            try {
              parsed = text === '' ? null : JSON.parse(text);
            } catch (err) {
              if (status >= 200 && status < 300) {
                reject(new LocalApiClientError('protocol', `${this.daemon} sent invalid JSON for ${path}`, { cause: err }));
                return;
              }
            }
            if (status >= 200 && status < 300) {
              resolve(parsed);
              return;
            }
            const serverMessage = errorField(parsed) ?? (text.trim() || `HTTP ${status}`);
            reject(new LocalApiClientError('http', serverMessage, { status }));
          });
        },
      );
      req.once('timeout', () => {
        req.destroy(new LocalApiClientError('timeout', `${this.daemon} did not answer within ${this.timeoutMs} ms`));
      });
      req.once('error', (err) => reject(this.explain(err)));
      req.end(payload);
    });
  }

  private explain(err: Error): Error {
    if (err instanceof LocalApiClientError) return err;
    return explainConnectError(err, this.socketPath, this.daemon);
  }
}

/** Turns a socket-level error into one a user can act on. */
export function explainConnectError(err: Error, socketPath: string, daemon = 'warrend'): LocalApiClientError {
  const code = (err as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT':
      return new LocalApiClientError('not_running', `${daemon} is not running (no socket at ${socketPath})`, {
        cause: err,
      });
    case 'ECONNREFUSED':
      return new LocalApiClientError('not_running', `${daemon} is not running (nothing listening on ${socketPath})`, {
        cause: err,
      });
    case 'EACCES':
    case 'EPERM':
      return new LocalApiClientError(
        'permission_denied',
        `permission denied on ${socketPath}: the LocalAPI is for root only; run as root (e.g. with sudo)`,
        { cause: err },
      );
    case 'ABORT_ERR':
      return new LocalApiClientError('connect', `request to ${daemon} aborted`, { cause: err });
    default:
      return new LocalApiClientError('connect', `cannot talk to warrend at ${socketPath}: ${err.message}`, {
        cause: err,
      });
  }
}

function errorField(v: unknown): string | undefined {
  if (typeof v === 'object' && v !== null && 'error' in v && typeof v.error === 'string') return v.error;
  return undefined;
}
