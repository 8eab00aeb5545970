/**
 * Many relay clients in one place, as lean as a client can be (a TLS socket,
 * a frame reader, the proof): for holding 1,000 connections on one relay.
 * Each client answers keepalives, so the relay keeps it.
 *
 * Runs as a worker thread (workerData = SwarmInput; messages in and out) or
 * as a process (`node relay-swarm.js INPUT.json`; commands appended as lines
 * to INPUT.commandFile, one JSON report per line on stdout), so a lab test can
 * run it in a namespace. As a process it can first register its keys on the
 * control server (INPUT.register).
 *
 * Commands: `ring` (client i sends one packet to client i+1; the report says
 * how many arrived from the right sender with the right payload), `stats`,
 * `close`.
 */
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { existsSync, readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { publicKeyOf } from '../../src/crypto/x25519.js';
import { normalizeFingerprint } from '../../src/control/pinned-tls.js';
import {
  RELAY_PATH, RELAY_UPGRADE_PROTOCOL, RelayFrameReader, encodeRelayFrame, makeRelayProof, relayChannel,
} from '../../src/wire/relay-frames.js';

export interface SwarmInput {
  url: string;
  ca: string;
  fingerprint: string;
  /** Node private keys, base64. */
  keys: string[];
  /** Connections opened at once. */
  concurrency?: number;
  /** Process mode: register every key on this control server first. */
  register?: { url: string; ca: string; fingerprint: string; authKey: string };
  commandFile?: string;
}

export interface SwarmReport {
  event: 'ready' | 'ring' | 'stats' | 'closed';
  connected: number;
  failed: number;
  errors: string[];
  ringReceived?: number;
  ms?: number;
}

interface Member {
  i: number;
  priv: Uint8Array;
  pub: Uint8Array;
  socket: TLSSocket | null;
  ok: boolean;
  ringFrom: number;
}

export class Swarm {
  readonly members: Member[];
  errors: string[] = [];
  private readonly host: string;
  private readonly port: number;
  private readonly pin: string;

  constructor(readonly input: SwarmInput) {
    const u = new URL(input.url);
    this.host = u.hostname.replace(/^\[(.*)\]$/, '$1');
    this.port = Number(u.port || 443);
    this.pin = normalizeFingerprint(input.fingerprint);
    this.members = input.keys.map((k, i) => {
      const priv = new Uint8Array(Buffer.from(k, 'base64'));
      return { i, priv, pub: publicKeyOf(priv), socket: null, ok: false, ringFrom: -1 };
    });
  }

  get connected(): number {
    return this.members.filter((m) => m.ok && m.socket && !m.socket.destroyed).length;
  }

  async connectAll(): Promise<SwarmReport> {
    const t0 = Date.now();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < this.members.length) {
        const m = this.members[next++]!;
        try {
          await this.connectOne(m);
        } catch (e) {
          if (this.errors.length < 10) this.errors.push(`client ${m.i}: ${(e as Error).message}`);
        }
      }
    };
    await Promise.all(Array.from({ length: this.input.concurrency ?? 50 }, worker));
    return this.report('ready', { ms: Date.now() - t0 });
  }

  private connectOne(m: Member): Promise<void> {
    return new Promise((resolve, reject) => {
      const pin = this.pin;
      const s = tlsConnect({
        host: this.host, port: this.port, ca: [this.input.ca], rejectUnauthorized: true,
        checkServerIdentity: (_h, cert) => (normalizeFingerprint(cert.fingerprint256) === pin ? undefined : new Error('pin mismatch')),
      });
      m.socket = s;
      const timer = setTimeout(() => fail(new Error('no session within 20 s')), 20_000);
      const fail = (e: Error): void => {
        clearTimeout(timer);
        s.destroy();
        reject(e);
      };
      s.once('error', fail);
      s.once('secureConnect', () => {
        s.write(`GET ${RELAY_PATH} HTTP/1.1\r\nHost: ${this.host}\r\nConnection: Upgrade\r\nUpgrade: ${RELAY_UPGRADE_PROTOCOL}\r\n\r\n`);
      });
      let head: Buffer | null = Buffer.alloc(0);
      const reader = new RelayFrameReader();
      s.on('data', (chunk: Buffer) => {
        let data = chunk;
        if (head) {
          head = Buffer.concat([head, chunk]);
          const end = head.indexOf('\r\n\r\n');
          if (end < 0) return;
          if (!head.subarray(0, 12).toString().startsWith('HTTP/1.1 101')) return fail(new Error(`no upgrade: ${head.subarray(0, 40).toString()}`));
          data = head.subarray(end + 4);
          head = null;
        }
        const err = reader.push(data, (f) => {
          if (f.type === 'server-challenge') {
            const channel = relayChannel(s);
            s.write(encodeRelayFrame(makeRelayProof(f, { privateKey: m.priv, publicKey: m.pub }, channel)));
          }
          else if (f.type === 'server-ok') {
            clearTimeout(timer);
            m.ok = true;
            s.off('error', fail);
            s.on('error', () => undefined);
            resolve();
          } else if (f.type === 'server-refused') fail(new Error(`refused: ${f.reason}`));
          else if (f.type === 'keepalive') s.write(encodeRelayFrame({ type: 'keepalive' }));
          else if (f.type === 'recv-packet') {
            const from = f.data.length === 4 ? Buffer.from(f.data).readUInt32BE(0) : -1;
            const expected = (m.i + this.members.length - 1) % this.members.length;
            if (from === expected && Buffer.from(f.key).equals(Buffer.from(this.members[expected]!.pub))) m.ringFrom = from;
          }
        });
        if (err) fail(new Error(err.message));
      });
    });
  }

  /** Client i sends its index to client i+1; resolves once all arrived or after `timeoutMs`. */
  async ring(timeoutMs = 10_000): Promise<SwarmReport> {
    const n = this.members.length;
    for (const m of this.members) {
      const to = this.members[(m.i + 1) % n]!;
      const data = Buffer.alloc(4);
      data.writeUInt32BE(m.i);
      m.socket?.write(encodeRelayFrame({ type: 'send-packet', key: to.pub, data }));
    }
    const t0 = Date.now();
    while (Date.now() - t0 < timeoutMs && this.members.some((m) => m.ringFrom < 0)) await new Promise((r) => setTimeout(r, 20));
    return this.report('ring', { ringReceived: this.members.filter((m) => m.ringFrom >= 0).length, ms: Date.now() - t0 });
  }

  close(): SwarmReport {
    for (const m of this.members) m.socket?.destroy();
    return this.report('closed');
  }

  report(event: SwarmReport['event'], extra: Partial<SwarmReport> = {}): SwarmReport {
    return { event, connected: this.connected, failed: this.members.filter((m) => !m.ok).length, errors: this.errors.slice(0, 5), ...extra };
  }
}

/** Register every key of the swarm on the control server, `concurrency` at a time. */
async function registerAll(input: SwarmInput, send: (r: Record<string, unknown>) => void): Promise<void> {
  const { SimNode, SimServer } = await import('./sim-node.js');
  const reg = input.register!;
  const srv = new SimServer(reg.url, reg.ca, reg.fingerprint);
  const t0 = Date.now();
  let next = 0;
  await Promise.all(Array.from({ length: 20 }, async () => {
    while (next < input.keys.length) {
      const i = next++;
      const priv = new Uint8Array(Buffer.from(input.keys[i]!, 'base64'));
      await new SimNode(srv, { hostname: `swarm-${i}`, authKey: reg.authKey, node: { privateKey: priv, publicKey: publicKeyOf(priv) } }).register();
    }
  }));
  srv.close();
  send({ event: 'registered', count: input.keys.length, ms: Date.now() - t0 });
}

/** Lines appended to `path` (created if missing), polled every 50 ms, forever. */
export async function* commandLines(path: string): AsyncIterable<string> {
  while (!existsSync(path)) await new Promise((r) => setTimeout(r, 50));
  const fh = await open(path, 'r');
  let offset = 0;
  let partial = '';
  const buf = Buffer.alloc(65536);
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
      if (bytesRead === 0) {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      offset += bytesRead;
      const lines = (partial + buf.subarray(0, bytesRead).toString('utf8')).split('\n');
      partial = lines.pop()!;
      for (const l of lines) if (l.trim()) yield l.trim();
    }
  } finally {
    await fh.close();
  }
}

async function serve(input: SwarmInput, send: (r: SwarmReport) => void, commands: AsyncIterable<string>): Promise<void> {
  const swarm = new Swarm(input);
  send(await swarm.connectAll());
  for await (const cmd of commands) {
    if (cmd === 'ring') send(await swarm.ring());
    else if (cmd === 'stats') send(swarm.report('stats'));
    else if (cmd === 'close') {
      send(swarm.close());
      return;
    }
  }
}

async function* messages(): AsyncIterable<string> {
  const queue: string[] = [];
  let wake: (() => void) | null = null;
  parentPort!.on('message', (m: string) => {
    queue.push(m);
    wake?.();
  });
  for (;;) {
    while (queue.length) yield queue.shift()!;
    await new Promise<void>((r) => (wake = r));
  }
}

if (!isMainThread && (workerData as { swarm?: SwarmInput } | null)?.swarm) {
  void serve((workerData as { swarm: SwarmInput }).swarm, (r) => parentPort!.postMessage(r), messages()).then(() => process.exit(0));
} else if (isMainThread && process.argv[1]?.endsWith('relay-swarm.js') && process.argv[2]) {
  const input = JSON.parse(readFileSync(process.argv[2], 'utf8')) as SwarmInput;
  const out = (r: object): boolean => process.stdout.write(JSON.stringify(r) + '\n');
  void (input.register ? registerAll(input, out) : Promise.resolve())
    .then(() => serve(input, out, commandLines(input.commandFile!)))
    .then(() => process.exit(0), (e: Error) => {
      out({ event: 'fatal', error: e.message });
      process.exit(1);
    });
}
