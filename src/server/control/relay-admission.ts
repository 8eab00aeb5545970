/**
 * The control server's side of relay admission (relay-protocol.md,
 * "Admission"): relays holding the shared secret open
 * `GET /relay/v1/admission` (upgrade to warren-relay-admission/1,
 * `Authorization: Bearer <secret>`) and get the full list of admitted
 * node keys with their tailnets, then a delta whenever a node registers,
 * rotates its key, is deleted or expires. A node is admitted iff it exists,
 * its key has not expired, and it holds that node key.
 *
 * The list is kept from the hub's published changes (Hub.listeners), which
 * all run inside the hub's serial queue, so the list a relay gets and the
 * deltas after it never interleave wrongly.
 *
 * Also here: reading the operator's `--relay-map FILE`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { encodeFrame, FrameDecoder } from '../../wire/control-frames.js';
import { parseOr400, RelayMap } from '../../wire/control.js';
import {
  ADMISSION_UPGRADE_PROTOCOL, AdmissionClientFrame, MAX_ADMISSION_PAGE, type AdmissionServerFrame, type AdmittedNode,
} from '../../wire/relay-admission.js';
import { DEFAULT_TAILNET, type Store } from './store.js';
import { isExpired, type LoggedChange } from './views.js';
import type { Logger } from '../../util/log.js';

export interface RelayAdmissionOptions {
  store: Store;
  secret: Uint8Array;
  keepaliveMs: number;
  log: Logger;
  now: () => number;
}

const digest = (b: Uint8Array | string): Buffer => createHash('sha256').update(b).digest();

export class RelayAdmission {
  /** Admitted nodes by id. */
  private readonly admitted = new Map<number, AdmittedNode>();
  private readonly streams = new Set<AdmissionStream>();
  private readonly secretDigest: Buffer;

  constructor(private readonly o: RelayAdmissionOptions) {
    this.secretDigest = digest(o.secret);
  }

  get relayCount(): number {
    return this.streams.size;
  }

  /** Build the list from the store (run in the hub's serial queue, before any stream). */
  async load(): Promise<void> {
    this.admitted.clear();
    const now = this.o.now();
    for (const n of await this.o.store.listNodes()) {
      if (!isExpired(n, now)) this.admitted.set(n.id, { key: n.nodeKey, tailnet: n.tailnet });
    }
  }

  /** A Hub listener: turn published node changes into one delta for every relay. */
  onChanges(changes: LoggedChange[]): void {
    // Net effect per key, in order: the last thing that happened to a key wins.
    const net = new Map<string, AdmittedNode | null>();
    const now = this.o.now();
    for (const c of changes) {
      if (c.op === 'resync') continue;
      const id = c.op === 'upsert' ? c.node.id : c.id;
      const prev = this.admitted.get(id);
      const next = c.op === 'upsert' && !isExpired(c.node, now) ? { key: c.node.nodeKey, tailnet: c.tailnet ?? DEFAULT_TAILNET } : null;
      if (prev && next && prev.key === next.key && prev.tailnet === next.tailnet) continue;
      if (prev) {
        this.admitted.delete(id);
        net.set(prev.key, null);
      }
      if (next) {
        this.admitted.set(id, next);
        net.set(next.key, next);
      }
    }
    if (!net.size) return;
    const add = [...net.values()].filter((n): n is AdmittedNode => n !== null);
    const remove = [...net].filter(([, n]) => n === null).map(([k]) => k);
    const frame = encodeFrame({ type: 'delta', add, remove } satisfies AdmissionServerFrame);
    for (const s of this.streams) s.write(frame);
  }

  /** Handle an upgrade to the admission path: check the secret, then stream. `serial` runs the first sync in the hub's queue. */
  handleUpgrade(req: IncomingMessage, socket: Socket, head: Buffer, serial: <T>(fn: () => Promise<T>) => Promise<T>): void {
    const remote = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    if ((req.headers.upgrade ?? '').toLowerCase() !== ADMISSION_UPGRADE_PROTOCOL) {
      return refuseUpgrade(socket, 400, 'bad_upgrade', `the admission stream upgrades to ${ADMISSION_UPGRADE_PROTOCOL}`);
    }
    const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
    if (!m || !timingSafeEqual(digest(m[1]!), this.secretDigest)) {
      this.o.log('warn', `relay admission from ${remote}: refused: wrong or missing relay secret`);
      return refuseUpgrade(socket, 401, 'bad_relay_secret', 'wrong or missing relay secret (Authorization: Bearer <the --relay-secret-file contents>)');
    }
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${ADMISSION_UPGRADE_PROTOCOL}\r\n\r\n`);
    if (head.length) socket.unshift(head);
    const s = new AdmissionStream(socket, remote, this.o.keepaliveMs, (x) => {
      this.streams.delete(x);
      this.o.log('info', `relay ${x.remote}: admission stream closed`);
    }, this.o.log);
    void serial(async () => {
      if (s.closed) return;
      const all = [...this.admitted.values()];
      for (let i = 0; i === 0 || i < all.length; i += MAX_ADMISSION_PAGE) {
        const nodes = all.slice(i, i + MAX_ADMISSION_PAGE);
        s.write(encodeFrame({ type: 'full', keepaliveMs: this.o.keepaliveMs, nodes, final: i + MAX_ADMISSION_PAGE >= all.length } satisfies AdmissionServerFrame));
      }
      this.streams.add(s);
      this.o.log('info', `relay ${remote}: admission stream open (${all.length} node keys)`);
    }).catch((e: Error) => {
      this.o.log('warn', `relay ${remote}: admission sync failed: ${e.message}`);
      s.close();
    });
  }

  close(): void {
    for (const s of [...this.streams]) s.close();
  }
}

/** One relay's stream: keepalives out, keepalives in, 2× silence closes it. */
class AdmissionStream {
  closed = false;
  private readonly decoder = new FrameDecoder({ maxFrame: 4096 });
  private readonly keepalive: NodeJS.Timeout;
  private deadline: NodeJS.Timeout | null = null;

  constructor(readonly socket: Socket, readonly remote: string, private readonly ka: number, private readonly onClose: (s: AdmissionStream) => void, private readonly log: Logger) {
    socket.setNoDelay(true);
    socket.setTimeout(0);
    socket.on('data', (c: Buffer) => this.onData(c));
    socket.on('error', () => this.close());
    socket.on('close', () => this.close());
    this.keepalive = setInterval(() => this.write(encodeFrame({ type: 'keepalive' })), ka);
    this.arm();
  }

  write(frame: Buffer): void {
    if (!this.closed) this.socket.write(frame);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.keepalive);
    if (this.deadline) clearTimeout(this.deadline);
    this.socket.destroy();
    this.onClose(this);
  }

  private arm(): void {
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = setTimeout(() => {
      this.log('info', `relay ${this.remote}: admission stream silent for ${(2 * this.ka) / 1000} s`);
      this.close();
    }, 2 * this.ka);
  }

  private onData(chunk: Buffer): void {
    let frames: unknown[];
    try {
      frames = this.decoder.push(chunk);
    } catch {
      return this.close();
    }
    for (const f of frames) {
      if (!parseOr400(AdmissionClientFrame, f).ok) return this.close();
      this.arm();
    }
  }
}

function refuseUpgrade(socket: Socket, status: number, code: string, error: string): void {
  const body = JSON.stringify({ error, code });
  const text = status === 401 ? 'Unauthorized' : status === 404 ? 'Not Found' : 'Bad Request';
  socket.end(`HTTP/1.1 ${status} ${text}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

/** An upgrade to the admission path on a server started without --relay-secret-file. */
export function refuseAdmissionDisabled(socket: Socket): void {
  refuseUpgrade(socket, 404, 'relay_admission_disabled', 'relay admission is not enabled on this control server (start it with --relay-secret-file)');
}

/** The operator's relay map file, validated; errors name the file and the field. */
export function loadRelayMapFile(path: string): RelayMap {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`--relay-map ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`--relay-map ${path}: not JSON (${(e as Error).message})`);
  }
  const p = parseOr400(RelayMap, json);
  if (!p.ok) throw new Error(`--relay-map ${path}: ${p.error}`);
  return p.value;
}
