/**
 * The LocalAPI server: warrend's HTTP/1.1 + JSON endpoint on a unix socket, which the
 * `warren` CLI uses to read status and (later) to give commands.
 *
 * Owns the socket file's life: creates its directory (0755) if missing, binds the
 * socket owner-only (0600, under a umask so no one can connect in between), removes a
 * stale socket nobody listens on, and refuses to start while another daemon does.
 * Requests go through a small route table, (method, path) → handler; a route answers
 * with a JSON value, errors are `{ "error": "..." }` with 404/405/413/500, or the
 * status a handler chose by throwing a LocalApiError.
 *
 * Adding a route: add a method to LocalApiHandlers and one line to routeTable().
 */

import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import type { DeviceStatus } from '../dataplane/status.js';

/** Largest request body a route may receive; more is answered 413. */
export const MAX_BODY_BYTES = 1024 * 1024;

/** How long start() waits for an existing socket to accept before calling it live. */
const PROBE_TIMEOUT_MS = 2000;

/** What the daemon provides; one method per route. */
export interface LocalApiHandlers {
  status(): Promise<DeviceStatus> | DeviceStatus;
}

/** What a route handler sees of its request. */
export interface LocalApiRequest {
  query: URLSearchParams;
  /** The raw body, at most MAX_BODY_BYTES; empty when none was sent. */
  body: Buffer;
  /** Aborted when the client goes away before the answer is sent. */
  signal: AbortSignal;
}

export type LocalApiMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface LocalApiRoute {
  method: LocalApiMethod;
  path: string;
  /** Returns the JSON body of a 200 answer (undefined is sent as `{}`). */
  handle(req: LocalApiRequest): unknown;
}

/** The routes, one line each. */
export function routeTable(h: LocalApiHandlers): LocalApiRoute[] {
  return [
    { method: 'GET', path: '/v0/status', handle: () => h.status() },
  ];
}

/** A route's body as a JSON object (empty body = {}); anything else is a 400. */
export function jsonObjectBody(b: Buffer): Record<string, unknown> {
  if (b.length === 0) return {};
  try {
    const v = JSON.parse(b.toString('utf8')) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch { /* fall through */ }
  throw new LocalApiError(400, 'body must be a JSON object');
}

/** Thrown by a handler to answer with a given HTTP status and message. */
export class LocalApiError extends Error {
  override name = 'LocalApiError';
  constructor(
    readonly status: number,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export type LocalApiServerErrorCode = 'in_use' | 'not_a_socket' | 'socket_error' | 'state';

/** Why the server could not start (or was misused). */
export class LocalApiServerError extends Error {
  override name = 'LocalApiServerError';
  constructor(
    readonly code: LocalApiServerErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

class BodyTooLargeError extends Error {}

export interface LocalApiServerOptions {
  socketPath: string;
  /** warrend's handlers (routeTable), or `routes` for another service on a unix socket (warren-control's admin API). */
  handlers?: LocalApiHandlers;
  routes?: LocalApiRoute[];
  log?: (m: string) => void;
}

export class LocalApiServer {
  readonly socketPath: string;
  private readonly log: (m: string) => void;
  /** path → method → route. */
  private readonly routes = new Map<string, Map<string, LocalApiRoute>>();
  private server: Server | null = null;
  private starting = false;

  constructor(opts: LocalApiServerOptions) {
    this.socketPath = opts.socketPath;
    this.log = opts.log ?? (() => {});
    const routes = opts.routes ?? (opts.handlers ? routeTable(opts.handlers) : []);
    for (const r of routes) {
      let byMethod = this.routes.get(r.path);
      if (!byMethod) this.routes.set(r.path, (byMethod = new Map()));
      byMethod.set(r.method, r);
    }
  }

  /** Binds the socket; rejects with a LocalApiServerError if it cannot. */
  async start(): Promise<void> {
    if (this.server || this.starting) throw new LocalApiServerError('state', 'LocalAPI server already started');
    this.starting = true;
    try {
      const path = this.socketPath;
      ensureDir(dirname(path));
      await clearStaleSocket(path);
      const server = createServer((req, res) => {
        this.serve(req, res).catch((err: unknown) => {
          this.log(`localapi: ${req.method} ${req.url}: ${errorMessage(err)}`);
          res.destroy();
        });
      });
      await listenOwnerOnly(server, path);
      this.server = server;
      this.log(`localapi: listening on ${path}`);
    } finally {
      this.starting = false;
    }
  }

  /** Stops listening, drops open connections and removes the socket file. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    // Closing a bound pipe unlinks its file (libuv does it).
    await closed;
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localapi');
    const byMethod = this.routes.get(url.pathname);
    if (!byMethod) {
      sendJson(res, 404, { error: `no such endpoint: ${url.pathname}` });
      return;
    }
    const route = byMethod.get(req.method ?? '');
    if (!route) {
      res.setHeader('allow', [...byMethod.keys()].join(', '));
      sendJson(res, 405, { error: `method ${req.method} not allowed on ${url.pathname}` });
      return;
    }
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_BODY_BYTES) {
      sendTooLarge(res);
      return;
    }
    let body: Buffer;
    try {
      body = await readBody(req, MAX_BODY_BYTES);
    } catch (err) {
      if (err instanceof BodyTooLargeError) sendTooLarge(res);
      else res.destroy(); // the client went away mid-body
      return;
    }
    const abort = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    let value: unknown;
    try {
      value = await route.handle({ query: url.searchParams, body, signal: abort.signal });
    } catch (err) {
      if (err instanceof LocalApiError) {
        sendJson(res, err.status, { error: err.message });
      } else {
        this.log(`localapi: ${req.method} ${url.pathname} failed: ${errorMessage(err)}`);
        sendJson(res, 500, { error: errorMessage(err) });
      }
      return;
    }
    sendJson(res, 200, value === undefined ? {} : value);
  }
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const body = JSON.stringify(value) + '\n';
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

function sendTooLarge(res: ServerResponse): void {
  // The rest of the body is not read, so this connection cannot be reused.
  res.setHeader('connection', 'close');
  sendJson(res, 413, { error: `request body larger than ${MAX_BODY_BYTES} bytes` });
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        reject(new BodyTooLargeError());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const onClose = (): void => {
      cleanup();
      reject(new Error('connection closed before the request body ended'));
    };
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onError);
    req.once('close', onClose);
  });
}

/** Creates the socket's directory (0755) if it does not exist. */
function ensureDir(dir: string): void {
  const created = mkdirSync(dir, { recursive: true, mode: 0o755 });
  if (created !== undefined) chmodSync(dir, 0o755); // exact mode whatever the umask
}

/**
 * Leaves `path` free for bind(): nothing there, or a socket no one listens on (removed).
 * Throws if a daemon is listening or the path is something other than a socket.
 */
async function clearStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return;
    throw new LocalApiServerError('socket_error', `cannot inspect ${path}: ${errorMessage(err)}`, {
      cause: err,
    });
  }
  if (!isSocket) {
    throw new LocalApiServerError('not_a_socket', `${path} exists and is not a socket; refusing to replace it`);
  }
  if (await isListening(path)) {
    throw new LocalApiServerError('in_use', `another warrend is already listening on ${path}`);
  }
  try {
    unlinkSync(path);
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') {
      throw new LocalApiServerError('socket_error', `cannot remove stale socket ${path}: ${errorMessage(err)}`, {
        cause: err,
      });
    }
  }
}

/** Whether something accepts connections on the unix socket at `path`. */
function isListening(path: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const sock = connect(path);
    sock.setTimeout(PROBE_TIMEOUT_MS, () => {
      sock.destroy();
      resolve(true); // busy rather than dead: do not steal it
    });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', (err) => {
      sock.destroy();
      const code = errnoCode(err);
      if (code === 'ECONNREFUSED' || code === 'ENOENT') resolve(false);
      else if (code === 'EAGAIN') resolve(true); // listening, backlog full
      else reject(new LocalApiServerError('socket_error', `cannot probe ${path}: ${err.message}`, { cause: err }));
    });
  });
}

/**
 * Listens on `path` with the socket created 0600. bind() happens synchronously inside
 * listen(), so a umask set around that call covers it; a chmod afterwards is a second
 * guard (and the only one where umask cannot be set, e.g. in a worker thread).
 */
async function listenOwnerOnly(server: Server, path: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      server.off('listening', onListening);
      if (errnoCode(err) === 'EADDRINUSE') {
        reject(new LocalApiServerError('in_use', `another warrend is already listening on ${path}`, { cause: err }));
      } else {
        reject(new LocalApiServerError('socket_error', `cannot listen on ${path}: ${err.message}`, { cause: err }));
      }
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    const oldMask = trySetUmask(0o177);
    try {
      server.listen(path);
    } finally {
      if (oldMask !== null) process.umask(oldMask);
    }
  });
  try {
    chmodSync(path, 0o600);
  } catch (err) {
    server.close();
    throw new LocalApiServerError('socket_error', `cannot set mode of ${path}: ${errorMessage(err)}`, { cause: err });
  }
}

function trySetUmask(mask: number): number | null {
  try {
    return process.umask(mask);
  } catch {
    return null; // not allowed in worker threads
  }
}

function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string'
    ? err.code
    : undefined;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
