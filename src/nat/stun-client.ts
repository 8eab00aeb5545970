/**
 * STUN client: Binding transactions over a socket the caller owns.
 *
 * warrend's data socket lives in the packet worker, so the client never opens
 * a socket: it sends through an injected function, and the caller hands it
 * every STUN datagram that arrives (handle()). A query retransmits its
 * request with a doubling RTO (RFC 8489 §6.2.1: 500 ms, 1 s, 2 s, ...) up to
 * `maxTries` transmissions, and fails with a StunError once its timeout is
 * up. A response counts only if its transaction id (96 random bits) is one
 * of ours and it comes from the address and port the request went to.
 * The clock, the timers and the randomness are injected for tests.
 */
import { randomBytes } from 'node:crypto';
import {
  BINDING_REQUEST, StunClass, canonicalIp, decodeStun, encodeBindingRequest, isStun, readFields, stunClass, stunMethod,
  STUN_TRANSACTION_ID_SIZE,
} from '../wire/stun.js';
import type { StunAddress } from '../wire/stun.js';

/** RFC 8489 §6.2.1's initial retransmission timeout. */
export const DEFAULT_RTO_MS = 500;
/** RFC 8489's Rc: transmissions per transaction. */
export const DEFAULT_MAX_TRIES = 7;
/** Default bound on one query, retransmissions included (RFC 8489's own bound, 39.5 s, is far too long for a node). */
export const DEFAULT_TIMEOUT_MS = 5000;

export interface StunResult {
  /** Our address as the server saw it (XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS from an old server). */
  mapped: StunAddress;
  /** The server the query went to, as given. */
  server: StunAddress;
  /** From the first transmission to the answer (with retransmissions this may overstate the path's RTT, never understate it). */
  rttMs: number;
  /** The server's RFC 5780 OTHER-ADDRESS, if it has one. */
  otherAddress?: StunAddress;
}

export type StunErrorCode = 'STUN_TIMEOUT' | 'STUN_CLOSED' | 'STUN_ABORTED' | 'STUN_SEND_FAILED' | 'STUN_ERROR_RESPONSE' | 'STUN_BAD_RESPONSE' | 'STUN_BAD_ADDRESS';

/** A query failed; `code` says how, `stunCode` carries the server's error code for STUN_ERROR_RESPONSE. */
export class StunError extends Error {
  readonly stunCode: number | undefined;
  constructor(readonly code: StunErrorCode, message: string, options?: { cause?: unknown; stunCode?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'StunError';
    this.stunCode = options?.stunCode;
  }
}

type Timers = { setTimeout: typeof setTimeout; clearTimeout: typeof clearTimeout };
type Timer = ReturnType<typeof setTimeout>;

interface Pending {
  key: string;
  server: StunAddress;
  /** canonicalIp(server.ip), to compare with where answers come from. */
  serverIp: string;
  request: Uint8Array;
  firstSent: number;
  tries: number;
  rtoMs: number;
  retransmit: Timer | undefined;
  deadline: Timer | undefined;
  onAbort: (() => void) | undefined;
  signal: AbortSignal | undefined;
  resolve: (r: StunResult) => void;
  reject: (e: StunError) => void;
}

export class StunClient {
  private readonly send: (data: Uint8Array, ip: string, port: number) => void;
  private readonly now: () => number;
  private readonly rtoMs: number;
  private readonly maxTries: number;
  private readonly random: (n: number) => Uint8Array;
  private readonly timers: Timers;
  /** Outstanding queries by transaction id (hex). */
  private readonly pending = new Map<string, Pending>();
  private closed = false;

  constructor(opts: {
    send: (data: Uint8Array, ip: string, port: number) => void;
    now?: () => number;
    rtoMs?: number;
    maxTries?: number;
    random?: (n: number) => Uint8Array;
    timers?: Timers;
  }) {
    this.send = opts.send;
    this.now = opts.now ?? (() => performance.now());
    this.rtoMs = Math.max(1, opts.rtoMs ?? DEFAULT_RTO_MS);
    this.maxTries = Math.max(1, Math.floor(opts.maxTries ?? DEFAULT_MAX_TRIES));
    this.random = opts.random ?? ((n) => new Uint8Array(randomBytes(n)));
    this.timers = opts.timers ?? { setTimeout, clearTimeout };
  }

  /** Queries in flight. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Ask `server` what our address looks like; rejects with a StunError on timeout, error response, close or abort. */
  query(server: StunAddress, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<StunResult> {
    if (this.closed) return Promise.reject(new StunError('STUN_CLOSED', 'STUN client is closed'));
    if (opts.signal?.aborted) return Promise.reject(new StunError('STUN_ABORTED', 'STUN query aborted', { cause: opts.signal.reason }));
    let serverIp: string;
    try {
      serverIp = canonicalIp(server.ip);
    } catch (cause) {
      return Promise.reject(new StunError('STUN_BAD_ADDRESS', `not a STUN server address: ${server.ip}`, { cause }));
    }
    let txid = this.random(STUN_TRANSACTION_ID_SIZE).slice(0, STUN_TRANSACTION_ID_SIZE);
    while (txid.length < STUN_TRANSACTION_ID_SIZE || this.pending.has(hexOf(txid))) txid = new Uint8Array(randomBytes(STUN_TRANSACTION_ID_SIZE));
    const timeoutMs = Math.max(1, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    return new Promise<StunResult>((resolve, reject) => {
      const p: Pending = {
        key: hexOf(txid), server: { ip: server.ip, port: server.port }, serverIp,
        request: encodeBindingRequest(txid, { fingerprint: true }), firstSent: this.now(), tries: 0, rtoMs: this.rtoMs,
        retransmit: undefined, deadline: undefined, onAbort: undefined, signal: opts.signal, resolve, reject,
      };
      this.pending.set(p.key, p);
      p.deadline = this.timers.setTimeout(() => {
        this.fail(p, new StunError('STUN_TIMEOUT', `no STUN answer from ${fmt(server)} in ${timeoutMs} ms (${p.tries} ${p.tries === 1 ? 'try' : 'tries'})`));
      }, timeoutMs);
      if (opts.signal) {
        const signal = opts.signal;
        p.onAbort = () => this.fail(p, new StunError('STUN_ABORTED', 'STUN query aborted', { cause: signal.reason }));
        signal.addEventListener('abort', p.onAbort, { once: true });
      }
      this.transmit(p);
    });
  }

  /**
   * Offer a received datagram. Returns true if it answered one of our
   * queries (consumed); anything else — not STUN, not a Binding response,
   * an unknown transaction id, or the right id from the wrong address — is
   * left alone. Never throws.
   */
  handle(data: Uint8Array, from: StunAddress): boolean {
    if (this.pending.size === 0 || !isStun(data, 0, data.length)) return false;
    const m = decodeStun(data);
    if (!m || stunMethod(m.type) !== stunMethod(BINDING_REQUEST)) return false;
    const cls = stunClass(m.type);
    if (cls !== StunClass.Success && cls !== StunClass.Error) return false;
    const p = this.pending.get(hexOf(m.transactionId));
    if (!p || from.port !== p.server.port || !sameIp(from.ip, p.serverIp)) return false;
    const f = readFields(m);
    if (!f) {
      this.fail(p, new StunError('STUN_BAD_RESPONSE', `malformed STUN response from ${fmt(p.server)}`));
    } else if (cls === StunClass.Error) {
      const code = f.error?.code ?? 0;
      this.fail(p, new StunError('STUN_ERROR_RESPONSE', `STUN server ${fmt(p.server)} answered ${code} ${f.error?.reason ?? ''}`.trimEnd(), { stunCode: code }));
    } else {
      const mapped = f.xorMapped ?? f.mapped;
      if (!mapped) {
        this.fail(p, new StunError('STUN_BAD_RESPONSE', `STUN response from ${fmt(p.server)} has no mapped address`));
      } else {
        const result: StunResult = { mapped, server: p.server, rttMs: Math.max(0, this.now() - p.firstSent) };
        if (f.otherAddress) result.otherAddress = f.otherAddress;
        this.settle(p);
        p.resolve(result);
      }
    }
    return true;
  }

  /** Reject every pending query (STUN_CLOSED); later queries reject at once. */
  close(): void {
    this.closed = true;
    for (const p of [...this.pending.values()]) this.fail(p, new StunError('STUN_CLOSED', 'STUN client closed'));
  }

  private transmit(p: Pending): void {
    p.retransmit = undefined;
    p.tries++;
    try {
      this.send(p.request, p.server.ip, p.server.port);
    } catch (cause) {
      this.fail(p, new StunError('STUN_SEND_FAILED', `cannot send a STUN request to ${fmt(p.server)}`, { cause }));
      return;
    }
    if (p.tries < this.maxTries) {
      p.retransmit = this.timers.setTimeout(() => this.transmit(p), p.rtoMs);
      p.rtoMs *= 2;
    }
  }

  private fail(p: Pending, err: StunError): void {
    if (this.settle(p)) p.reject(err);
  }

  /** Forget `p` and stop its timers; false if it was already settled. */
  private settle(p: Pending): boolean {
    if (this.pending.get(p.key) !== p) return false;
    this.pending.delete(p.key);
    if (p.retransmit !== undefined) this.timers.clearTimeout(p.retransmit);
    if (p.deadline !== undefined) this.timers.clearTimeout(p.deadline);
    if (p.onAbort) p.signal?.removeEventListener('abort', p.onAbort);
    return true;
  }
}

function hexOf(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

function sameIp(ip: string, canonical: string): boolean {
  if (ip === canonical) return true;
  try {
    return canonicalIp(ip) === canonical;
  } catch {
    return false;
  }
}

function fmt(a: StunAddress): string {
  return a.ip.includes(':') ? `[${a.ip}]:${a.port}` : `${a.ip}:${a.port}`;
}
