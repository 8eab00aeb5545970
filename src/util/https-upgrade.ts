/**
 * Client side of an HTTP/1.1 Upgrade over TLS (`GET path`, `Connection:
 * Upgrade`, `Upgrade: protocol`): resolves with the upgraded socket (no
 * timeouts left on it, Nagle off, any bytes that came with the 101 put back),
 * or rejects with UpgradeRefusedError carrying the status and the start of
 * the body when the server answers without upgrading. Also the reconnect
 * delay that long-lived streams share: exponential backoff with jitter.
 */
import { request as httpsRequest } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { ConnectionOptions } from 'node:tls';

export class UpgradeRefusedError extends Error {
  override readonly name = 'UpgradeRefusedError';
  constructor(readonly status: number, readonly body: string) {
    super(`HTTP ${status}: ${body}`);
  }

  /** The `error` field of a JSON body, else the body text. */
  get reason(): string {
    try {
      return (JSON.parse(this.body) as { error?: string }).error ?? this.body;
    } catch {
      return this.body;
    }
  }
}

export interface UpgradeOptions {
  host: string;
  port: number;
  path: string;
  protocol: string;
  /** TLS options (pinned CA, servername...). */
  tls: ConnectionOptions;
  headers?: Record<string, string>;
  /** No answer within this long is an error (default 15 s). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

const MAX_BODY = 4096;

export function httpsUpgrade(o: UpgradeOptions): Promise<Socket> {
  const timeoutMs = o.timeoutMs ?? 15_000;
  return new Promise<Socket>((resolve, reject) => {
    const req = httpsRequest({
      ...o.tls, host: o.host, port: o.port, path: o.path, method: 'GET', agent: false, timeout: timeoutMs,
      ...(o.signal ? { signal: o.signal } : {}),
      headers: { ...o.headers, connection: 'Upgrade', upgrade: o.protocol },
    });
    req.on('timeout', () => req.destroy(new Error(`no answer to the upgrade within ${timeoutMs / 1000} s`)));
    req.on('error', reject);
    req.on('response', (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        if ((size += c.length) <= MAX_BODY) chunks.push(c);
      });
      res.on('end', () => reject(new UpgradeRefusedError(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8').slice(0, 300))));
      res.on('error', reject);
    });
    req.on('upgrade', (_res: IncomingMessage, socket: Socket, head: Buffer) => {
      req.setTimeout(0);
      socket.setTimeout(0);
      socket.setNoDelay(true);
      if (head.length) socket.unshift(head);
      resolve(socket);
    });
    req.end();
  });
}

/** The wait before reconnect attempt `attempt` (0-based): min·2^attempt capped at max, jittered to [½, 1] of that. */
export function backoffDelay(attempt: number, b: { minMs: number; maxMs: number }, random: () => number = Math.random): number {
  const base = Math.min(b.maxMs, b.minMs * 2 ** Math.min(attempt, 30));
  return base / 2 + random() * (base / 2);
}
