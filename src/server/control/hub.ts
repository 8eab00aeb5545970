/**
 * The netmap hub: every change to a node becomes one entry in the persisted,
 * versioned change log and is pushed as a delta to every connected node;
 * a node that (re)connects gets the deltas it missed or a full map. A node
 * hears only about nodes of its own tailnet. All
 * mutations and initial syncs run through one serial queue, so a node's full
 * map and the deltas after it never interleave wrongly.
 */
import type { Store, NodeRecord } from './store.js';
import { buildNetmap, changeFor, isExpired, nodeView, type LoggedChange } from './views.js';
import type { MapSession } from './map-session.js';
import type { Change, RelayMap } from '../../wire/control.js';

export interface HubOptions {
  store: Store;
  keepaliveMs: number;
  now: () => number;
  log: (level: 'info' | 'warn' | 'debug', msg: string) => void;
  /** Change-log entries kept for delta catch-up. */
  keepChanges?: number;
  /** The relay map every netmap carries (fixed for the server's lifetime). */
  relayMap?: RelayMap;
}

export class Hub {
  readonly sessions = new Map<number, MapSession>();
  /** The tailnet of each synced session's node (a node never changes tailnet). */
  private readonly tailnetOf = new WeakMap<MapSession, string>();
  private queue: Promise<unknown> = Promise.resolve();
  private published = 0;
  /** Hear every published batch of changes, synchronously, inside the serial queue (relay admission). */
  readonly listeners = new Set<(changes: LoggedChange[]) => void>();

  constructor(private readonly o: HubOptions) {}

  /** Run `fn` after everything queued before it. */
  serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn);
    this.queue = p.catch(() => undefined);
    return p;
  }

  private outbox: Array<{ version: number; change: LoggedChange }> = [];
  private flushScheduled = false;

  /**
   * Log changes (call inside serial()) and queue them for every connected
   * node; queued changes go out together, one delta frame per node, as soon
   * as the current burst of work yields (a connect storm sends far fewer frames).
   */
  async publish(changes: LoggedChange[]): Promise<void> {
    for (const c of changes) {
      const version = await this.o.store.appendChange(c);
      this.outbox.push({ version, change: c });
    }
    for (const l of this.listeners) l(changes);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    if (++this.published % 1000 === 0) await this.o.store.trimChanges(this.o.keepChanges ?? 10_000);
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = this.outbox;
    this.outbox = [];
    if (!batch.length) return;
    const last = batch[batch.length - 1]!.version;
    const now = this.o.now();
    for (const s of this.sessions.values()) {
      const tailnet = this.tailnetOf.get(s);
      // Not synced yet: its first sync (queued behind this work) covers these changes.
      if (s.nodeId === null || tailnet === undefined || s.version >= last) continue;
      const changes: Change[] = [];
      for (const { version, change } of batch) {
        if (version <= s.version) continue;
        const mine = changeFor(change, s.nodeId, now, tailnet);
        if (mine) changes.push(mine);
      }
      s.version = last;
      if (changes.length) s.send({ type: 'delta', version: last, changes: compact(changes) });
    }
  }

  upsert(n: NodeRecord): LoggedChange {
    return { op: 'upsert', node: nodeView(n), tailnet: n.tailnet };
  }

  remove(n: NodeRecord): LoggedChange {
    return { op: 'remove', id: n.id, tailnet: n.tailnet };
  }

  /** First sync of a session: the missed deltas if the log still has them, else a full map. */
  async sync(s: MapSession, self: NodeRecord, clientVersion: number | null): Promise<void> {
    this.tailnetOf.set(s, self.tailnet);
    const current = await this.o.store.currentVersion();
    if (clientVersion !== null && clientVersion <= current) {
      const since = await this.o.store.changesSince(clientVersion);
      // A resync marker (written at every server start) means changes may have been
      // lost in a crash before it: only a full map is safe then.
      if (since && !since.some((r) => (r.change as LoggedChange).op === 'resync')) {
        const changes = since.map((r) => changeFor(r.change as LoggedChange, self.id, this.o.now(), self.tailnet)).filter((c): c is Change => c !== null);
        s.version = current;
        s.send({ type: 'delta', version: current, changes });
        return;
      }
    }
    const all = await this.o.store.listNodes(self.tailnet);
    s.version = current;
    s.send({ type: 'full', version: current, netmap: buildNetmap(self, all, this.o.now(), this.o.keepaliveMs, this.o.relayMap) });
  }

  /** Close a node's stream with an error frame (deleted, expired...). */
  kick(nodeId: number, code: string, error: string): void {
    const s = this.sessions.get(nodeId);
    if (s) s.fail(code, error);
  }

  isExpired(n: NodeRecord): boolean {
    return isExpired(n, this.o.now());
  }
}

/** Keep only the last change per node (an upsert after an upsert replaces it; a removal wins). */
function compact(changes: Change[]): Change[] {
  const last = new Map<string, number>();
  changes.forEach((c, i) => last.set(c.op === 'remove' ? `n${c.id}` : c.op === 'self' ? 'self' : `n${c.node.id}`, i));
  return changes.filter((c, i) => last.get(c.op === 'remove' ? `n${c.id}` : c.op === 'self' ? 'self' : `n${c.node.id}`) === i);
}
