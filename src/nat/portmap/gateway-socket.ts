/**
 * One UDP socket for request/response exchanges with the gateway's NAT-PMP /
 * PCP port: retransmits (RFC 6886 §3.1: 250 ms, doubling) until an accepted
 * answer or the deadline. Datagrams from any address or port but the
 * gateway's are dropped and counted, never shown to a decoder; answers the
 * decoder does not accept (garbage, a stale nonce) are counted and the wait
 * goes on. One exchange at a time; never throws.
 */
import { createSocket, type Socket } from 'node:dgram';

export interface ExchangeTiming {
  /** Give up after this long (ms). */
  timeoutMs: number;
  /** First retransmission after this long (ms); each next one waits twice as long. */
  retransmitMs: number;
}

/**
 * Drop reasons: 'foreign' = a datagram from someone other than the gateway's
 * port; 'unmatched' = one from the gateway that answered nothing we asked
 * (garbage, a wrong nonce, late).
 */
export type SocketDrop = 'foreign' | 'unmatched';

export class GatewaySocket {
  private sock: Socket | null = null;
  private opening: Promise<Socket | null> | null = null;
  private accept: ((m: Uint8Array) => boolean) | null = null;
  private cancel: (() => void) | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly target: () => { ip: string; port: number } | null,
    private readonly count: (reason: SocketDrop) => void,
  ) {}

  private open(): Promise<Socket | null> {
    if (this.sock) return Promise.resolve(this.sock);
    this.opening ??= new Promise((resolve) => {
      const s = createSocket('udp4');
      s.on('error', () => undefined);
      s.on('message', (msg, rinfo) => {
        const t = this.target();
        if (!t || rinfo.address !== t.ip || rinfo.port !== t.port) {
          this.count('foreign');
          return;
        }
        const m = new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength);
        if (!this.accept || !this.accept(m)) this.count('unmatched');
      });
      s.bind(0, () => {
        s.unref();
        if (this.closed) {
          s.close();
          resolve(null);
          return;
        }
        this.sock = s;
        resolve(s);
      });
    });
    return this.opening;
  }

  /**
   * Send `payload` to the gateway (retransmitting) until `decode` returns a
   * value for one of its answers; null when time runs out or the socket closed.
   */
  request<T>(payload: Uint8Array, decode: (m: Uint8Array) => T | undefined, timing: ExchangeTiming): Promise<T | null> {
    const run = async (): Promise<T | null> => {
      const sock = await this.open();
      const t = this.target();
      if (!sock || !t || this.closed) return null;
      return new Promise<T | null>((resolve) => {
        let timer: NodeJS.Timeout | null = null;
        let wait = timing.retransmitMs;
        const started = Date.now();
        const finish = (v: T | null): void => {
          if (timer) clearTimeout(timer);
          this.accept = null;
          this.cancel = null;
          resolve(v);
        };
        this.accept = (m) => {
          let v: T | undefined;
          try {
            v = decode(m);
          } catch {
            v = undefined;
          }
          if (v === undefined) return false;
          finish(v);
          return true;
        };
        const tick = (): void => {
          const left = timing.timeoutMs - (Date.now() - started);
          if (this.closed || left <= 0) return finish(null);
          try {
            sock.send(payload, t.port, t.ip, () => undefined);
          } catch {
            // the socket went away: the deadline ends the wait
          }
          timer = setTimeout(tick, Math.min(wait, left));
          wait *= 2;
        };
        this.cancel = () => finish(null);
        tick();
      });
    };
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => undefined);
    return p;
  }

  close(): void {
    this.closed = true;
    this.cancel?.();
    try {
      this.sock?.close();
    } catch {
      // already closed
    }
    this.sock = null;
  }
}
