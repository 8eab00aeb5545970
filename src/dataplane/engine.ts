/**
 * The engine: the main thread's handle on the data plane. It opens the TUN and
 * the UDP sockets (set-up calls through the native helper), starts the packet
 * worker with those fds, and hands it complete immutable snapshots
 * (`reconfig`). It never sits on the packet path: status comes back as a
 * message, and the worker is woken through an eventfd.
 */
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { loadNative, checkErrno, IFNAMSIZ, type WarrenNative } from './io/native.js';
import type { DeviceConfig } from './device.js';
import type { DeviceStatus } from './status.js';
import type { TimerProfile } from './constants.js';
import type { Datagram, FromWorker, ToWorker, WorkerInit } from './engine-protocol.js';

/** What the engine tells its owner (path choice) besides logs. */
export interface EngineEvents {
  /** Disco and STUN datagrams from the data socket (addr: 20-byte source endpoint). */
  datagrams(items: Datagram[]): void;
  /** WireGuard messages to carry over a relay (addr: the peer's relay endpoint). */
  relaySend(items: Datagram[]): void;
  /** Peers with data flowing (node keys, base64). */
  activity(keys: string[]): void;
}

export interface EngineOptions {
  tunName: string;
  mtu: number;
  listenPort: number;
  timers: TimerProfile;
  stateDir: string | null;
  crypto?: 'native' | 'node';
  /** Report which peers carry traffic (EngineEvents.activity): for path choice. Default false. */
  activityReports?: boolean;
  log: (level: 'info' | 'warn' | 'debug' | 'error', msg: string) => void;
}

export class EngineError extends Error {
  constructor(readonly code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EngineError';
  }
}

export class Engine {
  private nextId = 1;
  private pending = new Map<number, (s: DeviceStatus) => void>();
  private socketAcks = new Map<number, () => void>();
  /** Extra IPv4 UDP sockets by index (1..255): fd and local port. */
  private extra = new Map<number, { fd: number; port: number }>();
  private stopped = false;
  cryptoName = '';
  private fwMark = 0;
  /** Set by path choice (mesh mode); without it these events are dropped. */
  events: EngineEvents | null = null;

  private constructor(
    private readonly native: WarrenNative,
    private readonly worker: Worker,
    readonly tun: string,
    readonly listenPort: number,
    private readonly fds: { tun: number; udp4: number; udp6: number; wake: number },
    private readonly log: EngineOptions['log'],
  ) {}

  static async start(opts: EngineOptions): Promise<Engine> {
    const native = loadNative();
    const nameBuf = new Uint8Array(IFNAMSIZ);
    const tunFd = native.tunOpen(opts.tunName, nameBuf);
    if (tunFd < 0) throw new EngineError('ETUN', `cannot create TUN ${opts.tunName}: ${errnoText(tunFd)} (needs root or CAP_NET_ADMIN and /dev/net/tun)`);
    const tun = Buffer.from(nameBuf).toString('latin1').replace(/\0.*$/s, '');
    const fds = { tun: tunFd, udp4: -1, udp6: -1, wake: -1 };
    try {
      fds.udp4 = native.udpOpen(4, opts.listenPort, 0, 4 << 20);
      if (fds.udp4 < 0) throw new EngineError('EUDP', `cannot listen on UDP port ${opts.listenPort}: ${errnoText(fds.udp4)}`);
      const port = checkErrno(native.sockPort(fds.udp4), 'getsockname');
      fds.udp6 = native.udpOpen(6, port, 0, 4 << 20);
      if (fds.udp6 < 0) opts.log('warn', `IPv6 UDP socket unavailable (${errnoText(fds.udp6)}); IPv4 only`);
      fds.wake = checkErrno(native.eventfd(), 'eventfd');
      const init: WorkerInit = {
        tunFd, udp4Fd: fds.udp4, udp6Fd: fds.udp6, wakeFd: fds.wake, mtu: opts.mtu, timers: opts.timers,
        timestampPath: opts.stateDir ? join(opts.stateDir, 'handshake-timestamp') : null,
        crypto: opts.crypto ?? 'native',
        activityReports: opts.activityReports ?? false,
      };
      const worker = new Worker(new URL('./engine-worker.js', import.meta.url), { workerData: init, name: 'warren-packets' });
      const engine = new Engine(native, worker, tun, port, fds, opts.log);
      await engine.attach();
      return engine;
    } catch (err) {
      for (const fd of Object.values(fds)) if (fd >= 0) native.close(fd);
      throw err;
    }
  }

  private attach(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.worker.on('message', (m: FromWorker) => {
        if (m.type === 'ready') {
          this.cryptoName = m.crypto;
          resolve();
        } else if (m.type === 'status') {
          this.pending.get(m.id)?.(m.status);
          this.pending.delete(m.id);
        } else if (m.type === 'log') this.log(m.level, m.msg);
        else if (m.type === 'sockets') {
          this.socketAcks.get(m.id)?.();
          this.socketAcks.delete(m.id);
        } else if (m.type === 'rx') this.events?.datagrams(m.items);
        else if (m.type === 'relay-tx') this.events?.relaySend(m.items);
        else if (m.type === 'activity') this.events?.activity(m.keys);
        else if (m.type === 'fatal') {
          this.log('error', `packet worker failed: ${m.error}`);
          reject(new EngineError('EWORKER', m.error));
        }
      });
      this.worker.on('error', (err) => {
        this.log('error', `packet worker crashed: ${err.stack ?? err.message}`);
        reject(err);
      });
      this.worker.on('exit', (code) => {
        if (!this.stopped) {
          this.log('error', `packet worker exited unexpectedly (code ${code})`);
          reject(new EngineError('EWORKER', `packet worker exited (code ${code})`));
        }
      });
    });
  }

  private send(m: ToWorker): void {
    this.worker.postMessage(m);
    this.native.eventfdSignal(this.fds.wake);
  }

  /** Hand the worker a complete new configuration. */
  reconfig(config: DeviceConfig): void {
    this.send({ type: 'reconfig', config });
  }

  /** Send disco/STUN datagrams from the data socket (the socket whose NAT mapping matters). */
  sendDatagrams(items: Datagram[]): void {
    if (items.length) this.send({ type: 'send', items });
  }

  /** Hand the worker WireGuard messages that arrived through a relay. */
  relayReceive(items: Datagram[]): void {
    if (items.length) this.send({ type: 'relay-rx', items });
  }

  /** Path choice: set where peers' packets go (20-byte endpoints; null = nowhere yet). */
  setEndpoints(items: Array<{ key: string; endpoint: Uint8Array | null }>): void {
    if (items.length) this.send({ type: 'endpoints', items });
  }

  /**
   * Open `count` extra IPv4 UDP sockets on random ports (birthday-paradox
   * probing through a hard NAT), replacing any previous set except those in
   * `keep`. Endpoint byte [1] = the index (1..255) selects a socket; datagrams
   * received on one carry its index the same way. Returns index → local port.
   */
  async setExtraSockets(count: number, keep: number[] = []): Promise<Map<number, number>> {
    if (this.stopped) return new Map();
    const want = Math.max(0, Math.min(255, Math.floor(count)));
    const next = new Map<number, { fd: number; port: number }>();
    for (const i of keep) {
      const s = this.extra.get(i);
      if (s) next.set(i, s);
    }
    for (let i = 1; i <= 255 && next.size < want; i++) {
      if (next.has(i)) continue;
      const fd = this.native.udpOpen(4, 0, 0, 0);
      if (fd < 0) {
        this.log('warn', `extra UDP socket: ${errnoText(fd)}`);
        break;
      }
      if (this.fwMark) this.native.setMark(fd, this.fwMark);
      next.set(i, { fd, port: this.native.sockPort(fd) });
    }
    const old = [...this.extra].filter(([i]) => !next.has(i)).map(([, s]) => s.fd);
    this.extra = next;
    const id = this.nextId++;
    const acked = new Promise<void>((resolve) => this.socketAcks.set(id, resolve));
    this.send({ type: 'sockets', id, set: [...next].map(([index, s]) => ({ index, fd: s.fd })) });
    await acked; // the worker no longer polls the old fds
    for (const fd of old) this.native.close(fd);
    return new Map([...next].map(([i, s]) => [i, s.port]));
  }

  /** Put a firewall mark on the tunnel's own sockets (for policy routing). */
  setFwMark(mark: number): void {
    this.fwMark = mark;
    checkErrno(this.native.setMark(this.fds.udp4, mark), 'SO_MARK');
    if (this.fds.udp6 >= 0) checkErrno(this.native.setMark(this.fds.udp6, mark), 'SO_MARK');
  }

  status(timeoutMs = 5000): Promise<DeviceStatus> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.pending.delete(id);
        reject(new EngineError('ETIMEOUT', 'packet worker did not answer a status request'));
      }, timeoutMs);
      this.pending.set(id, (s) => {
        clearTimeout(t);
        resolve(s);
      });
      this.send({ type: 'status', id });
    });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const done = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.send({ type: 'stop' });
    const t = setTimeout(() => void this.worker.terminate(), 2000);
    await done;
    clearTimeout(t);
    for (const fd of Object.values(this.fds)) if (fd >= 0) this.native.close(fd);
    for (const s of this.extra.values()) this.native.close(s.fd);
    this.extra.clear();
    for (const ack of this.socketAcks.values()) ack();
  }
}

function errnoText(r: number): string {
  try {
    checkErrno(r, 'call');
    return 'ok';
  } catch (e) {
    return (e as Error).message;
  }
}
