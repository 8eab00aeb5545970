/**
 * The node's relay connections, one per region at most: the home region's is
 * kept open for as long as we run (peers reach us there); a peer's home region
 * is dialled when we first need to send it something and closed after it has
 * been idle a while. A packet for a region whose connection is still coming
 * up waits in a small per-region queue that is dropped, never redirected, if
 * that connection fails (a packet must never reach another peer).
 */
import { RelayClient, type RelayClientOptions } from './relay-client.js';
import type { RelayMap, RelayRegion } from '../wire/control.js';

export interface RelayPoolOptions {
  nodeKey: { privateKey: Uint8Array; publicKey: Uint8Array };
  onPacket(region: number, src: Uint8Array, data: Uint8Array): void;
  log: (level: 'info' | 'warn' | 'debug', msg: string) => void;
  /** Relay keepalive (read deadline 2×); test mode shortens it. */
  keepaliveMs?: number;
  backoff?: { minMs: number; maxMs: number };
  /** Close a non-home connection after this long without sending through it. */
  idleMs?: number;
  /** Tell the owner when the home connection comes up or drops. */
  onHomeState?(connected: boolean): void;
  now?: () => number;
  /** Make a client (tests substitute one). */
  makeClient?: (o: RelayClientOptions) => RelayClientLike;
}

export interface RelayClientLike {
  start(): void;
  send(dst: Uint8Array, data: Uint8Array): boolean;
  ping(timeoutMs?: number): Promise<number>;
  readonly connected: boolean;
  close(): Promise<void>;
}

const QUEUE_MAX = 32;
const DEFAULT_IDLE_MS = 60_000;

interface Conn {
  region: RelayRegion;
  client: RelayClientLike;
  lastUsed: number;
  queue: Array<{ dst: Uint8Array; data: Uint8Array }>;
}

export interface RelayConnStatus {
  region: number;
  code: string;
  connected: boolean;
  home: boolean;
}

export class RelayPool {
  private map: RelayMap = { regions: [] };
  private readonly conns = new Map<number, Conn>();
  private home = 0;
  private idleTimer: NodeJS.Timeout | null = null;
  private readonly now: () => number;
  private closed = false;
  /** Packets dropped because no connection could carry them. */
  dropped = 0;

  constructor(private readonly o: RelayPoolOptions) {
    this.now = o.now ?? Date.now;
    const idle = o.idleMs ?? DEFAULT_IDLE_MS;
    this.idleTimer = setInterval(() => this.closeIdle(idle), Math.max(250, idle / 4));
    this.idleTimer.unref();
  }

  get homeRegion(): number {
    return this.home;
  }

  region(id: number): RelayRegion | undefined {
    return this.map.regions.find((r) => r.id === id);
  }

  get regions(): readonly RelayRegion[] {
    return this.map.regions;
  }

  /** A new relay map: connections to regions that are gone (or whose servers changed) close. */
  setMap(map: RelayMap): void {
    this.map = map;
    for (const [id, c] of this.conns) {
      const r = this.region(id);
      if (!r || JSON.stringify(r.nodes) !== JSON.stringify(c.region.nodes)) this.drop(id);
    }
    if (this.home && !this.region(this.home)) this.home = 0;
    // Home stays open: dial it again if its connection just closed (its servers changed) or never opened.
    if (this.home && !this.conns.has(this.home)) this.connect(this.home);
  }

  /** Make `id` the home region (0 = none): connected now and kept open. */
  setHome(id: number): void {
    if (id === this.home) return;
    this.home = id;
    if (id) this.connect(id);
  }

  /** The node key changed (rotation): every connection re-proves with the new one. */
  setNodeKey(key: { privateKey: Uint8Array; publicKey: Uint8Array }): void {
    this.o.nodeKey = key;
    for (const id of [...this.conns.keys()]) this.drop(id);
    if (this.home) this.connect(this.home);
  }

  isConnected(id: number): boolean {
    return this.conns.get(id)?.client.connected ?? false;
  }

  /** Send through region `id`'s relay (dialling it if needed). False if the packet was dropped. */
  send(id: number, dst: Uint8Array, data: Uint8Array): boolean {
    const c = this.conns.get(id) ?? this.connect(id);
    if (!c) {
      this.dropped++;
      return false;
    }
    c.lastUsed = this.now();
    if (c.client.connected) {
      this.flush(c);
      if (c.client.send(dst, data)) return true;
    }
    if (c.queue.length >= QUEUE_MAX) {
      c.queue.shift();
      this.dropped++;
    }
    c.queue.push({ dst, data });
    return true;
  }

  /** Round-trip time to region `id` over its relay connection (dialling it if needed). */
  async ping(id: number, timeoutMs = 3000): Promise<number> {
    const c = this.conns.get(id) ?? this.connect(id);
    if (!c) throw new Error(`no relay region ${id}`);
    c.lastUsed = this.now();
    return c.client.ping(timeoutMs);
  }

  status(): RelayConnStatus[] {
    return [...this.conns.values()].map((c) => ({ region: c.region.id, code: c.region.code, connected: c.client.connected, home: c.region.id === this.home }));
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.idleTimer) clearInterval(this.idleTimer);
    await Promise.all([...this.conns.values()].map((c) => c.client.close().catch(() => undefined)));
    this.conns.clear();
  }

  private connect(id: number): Conn | null {
    if (this.closed) return null;
    const region = this.region(id);
    const node = region?.nodes[0];
    if (!region || !node) return null;
    const conn: Conn = { region, lastUsed: this.now(), queue: [], client: null as unknown as RelayClientLike };
    const make = this.o.makeClient ?? ((o: RelayClientOptions) => new RelayClient(o));
    conn.client = make({
      url: node.url,
      fingerprint: node.fingerprint,
      nodeKey: this.o.nodeKey,
      onPacket: (src, data) => this.o.onPacket(id, src, data),
      onState: (state, detail) => {
        if (state === 'connected') {
          this.o.log('info', `relay ${region.code}: connected to ${node.url}`);
          this.flush(conn);
        } else if (state === 'disconnected') {
          // Never carry queued packets into a later connection: the peer they were for may be gone.
          this.dropped += conn.queue.length;
          conn.queue = [];
          this.o.log('info', `relay ${region.code}: disconnected${detail ? ` (${detail})` : ''}`);
        }
        if (id === this.home) this.o.onHomeState?.(state === 'connected');
      },
      log: this.o.log,
      keepaliveMs: this.o.keepaliveMs,
      backoff: this.o.backoff,
    });
    this.conns.set(id, conn);
    conn.client.start();
    return conn;
  }

  private flush(c: Conn): void {
    while (c.queue.length && c.client.connected) {
      const p = c.queue.shift()!;
      if (!c.client.send(p.dst, p.data)) this.dropped++;
    }
  }

  private drop(id: number): void {
    const c = this.conns.get(id);
    if (!c) return;
    this.conns.delete(id);
    this.dropped += c.queue.length;
    void c.client.close().catch(() => undefined);
  }

  private closeIdle(idleMs: number): void {
    const now = this.now();
    for (const [id, c] of this.conns) {
      if (id !== this.home && now - c.lastUsed > idleMs) {
        this.o.log('debug', `relay ${c.region.code}: idle, closing`);
        this.drop(id);
      }
    }
  }
}
