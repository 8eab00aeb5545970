/**
 * One node's map stream on the server: an upgraded TLS socket carrying
 * length-prefixed JSON frames. Waits for `hello` (proof of the machine key,
 * within HELLO_TIMEOUT_MS), then the hub sends the full map or deltas; both
 * sides send keepalives, and 2 × keepalive without a frame closes the stream.
 * Garbage or an oversized frame closes this connection only.
 */
import type { Socket } from 'node:net';
import { encodeFrame, FrameDecoder } from '../../wire/control-frames.js';
import { ClientFrame, HELLO_TIMEOUT_MS, parseOr400, type HelloFrame } from '../../wire/control.js';

const CHUNK = 16 * 1024;

export interface SessionEvents {
  hello(s: MapSession, f: HelloFrame): Promise<void>;
  endpoints(s: MapSession, endpoints: string[]): Promise<void>;
  hostinfo(s: MapSession, hostinfo: Record<string, unknown>): Promise<void>;
  closed(s: MapSession): void;
}

export class MapSession {
  nodeId: number | null = null;
  /** Version last sent to this node. */
  version = -1;
  private readonly decoder = new FrameDecoder();
  private keepalive: NodeJS.Timeout | null = null;
  private deadline: NodeJS.Timeout | null = null;
  private closed = false;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    readonly socket: Socket,
    readonly remote: string,
    private readonly keepaliveMs: number,
    private readonly ev: SessionEvents,
    private readonly log: (msg: string) => void,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (c: Buffer) => this.onData(c));
    socket.on('error', () => this.close());
    socket.on('close', () => this.close());
    this.deadline = setTimeout(() => this.fail('bad_proof', `no hello within ${HELLO_TIMEOUT_MS / 1000} s`), HELLO_TIMEOUT_MS);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private backlog: Buffer[] = [];
  private waitingDrain = false;

  /**
   * Queue a frame. Large frames (a full map is ~400 B per peer) go out in
   * 16 KiB pieces, each written only when the socket has drained: Node's TLS
   * layer otherwise keeps a burst-sized buffer per connection for good
   * (measured: ~600 MB for 1,000 nodes' first sync, against ~60 MB paced).
   */
  send(frame: unknown): void {
    if (this.closed) return;
    const data = encodeFrame(frame);
    for (let o = 0; o < data.length; o += CHUNK) this.backlog.push(data.subarray(o, Math.min(data.length, o + CHUNK)));
    this.pump();
  }

  private pump(): void {
    if (this.waitingDrain) return;
    while (this.backlog.length && !this.closed) {
      if (!this.socket.write(this.backlog.shift()!)) {
        this.waitingDrain = true;
        this.socket.once('drain', () => {
          this.waitingDrain = false;
          this.pump();
        });
        return;
      }
    }
  }

  /** Send an error frame, then close. */
  fail(code: string, error: string): void {
    if (this.closed) return;
    this.log(`map stream from ${this.remote}${this.nodeId !== null ? ` (node ${this.nodeId})` : ''}: ${error}`);
    // Behind a half-sent frame the error frame would be garbage: then just close.
    if (this.backlog.length === 0 && !this.waitingDrain) this.socket.end(encodeFrame({ type: 'error', code, error }));
    setTimeout(() => this.socket.destroy(), 1000).unref();
    this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.keepalive) clearInterval(this.keepalive);
    if (this.deadline) clearTimeout(this.deadline);
    if (!this.socket.destroyed && !this.socket.writableEnded) this.socket.destroy();
    this.ev.closed(this);
  }

  /** Called by the hub once hello is accepted. */
  established(nodeId: number): void {
    this.nodeId = nodeId;
    this.keepalive = setInterval(() => this.send({ type: 'keepalive' }), this.keepaliveMs);
    this.armDeadline();
  }

  private armDeadline(): void {
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = setTimeout(() => {
      this.log(`map stream of node ${this.nodeId} silent for ${(2 * this.keepaliveMs) / 1000} s: closing`);
      this.close();
    }, 2 * this.keepaliveMs);
  }

  private onData(chunk: Buffer): void {
    let frames: unknown[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.fail('bad_frame', `closing: ${(err as Error).message}`);
      return;
    }
    for (const raw of frames) {
      const p = parseOr400(ClientFrame, raw);
      if (!p.ok) {
        this.fail('bad_frame', `closing: malformed frame (${p.error})`);
        return;
      }
      const f = p.value;
      if (this.nodeId === null) {
        if (f.type !== 'hello') {
          this.fail('bad_proof', `closing: expected hello, got ${f.type}`);
          return;
        }
        this.run(() => this.ev.hello(this, f));
        continue;
      }
      this.armDeadline();
      if (f.type === 'endpoints') this.run(() => this.ev.endpoints(this, f.endpoints));
      else if (f.type === 'hostinfo') this.run(() => this.ev.hostinfo(this, f.hostinfo));
      else if (f.type === 'hello') this.fail('bad_frame', 'closing: a second hello');
    }
  }

  /** Frames of one session are handled in order. */
  private run(fn: () => Promise<void>): void {
    this.queue = this.queue.then(fn).catch((err: Error) => {
      this.log(`map stream of node ${this.nodeId}: ${err.message}`);
      this.close();
    });
  }
}
