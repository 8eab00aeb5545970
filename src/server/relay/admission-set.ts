/**
 * The relay's list of admitted node keys (base64) and the tailnet of each,
 * as last heard from the control server. It survives control outages: the
 * admission client replaces or patches it, never empties it on a
 * disconnect. Listeners hear about keys that stopped being admitted (or
 * moved tailnet), so the relay can cut their connections at once.
 */
import type { AdmittedNode } from '../../wire/relay-admission.js';

export class AdmissionSet {
  private readonly map = new Map<string, string>();
  private readonly revokeListeners = new Set<(keys: string[]) => void>();
  /** True once a full list has arrived (before that nobody is admitted). */
  loaded = false;
  /** When the list last changed or was confirmed by a full list (ms since the epoch). */
  updatedAt: number | null = null;

  constructor(private readonly now: () => number = Date.now) {}

  get size(): number {
    return this.map.size;
  }

  /** The tailnet of an admitted node key (base64), or undefined. */
  tailnetOf(keyB64: string): string | undefined {
    return this.map.get(keyB64);
  }

  onRevoke(fn: (keys: string[]) => void): () => void {
    this.revokeListeners.add(fn);
    return () => this.revokeListeners.delete(fn);
  }

  /** Replace the whole list (a full list from control). */
  replace(nodes: AdmittedNode[]): void {
    const next = new Map(nodes.map((n) => [n.key, n.tailnet]));
    const revoked: string[] = [];
    for (const [k, t] of this.map) if (next.get(k) !== t) revoked.push(k);
    this.map.clear();
    for (const [k, t] of next) this.map.set(k, t);
    this.loaded = true;
    this.updatedAt = this.now();
    this.notify(revoked);
  }

  /** Apply a delta: removals first, then additions. */
  apply(add: AdmittedNode[], remove: string[]): void {
    const revoked: string[] = [];
    for (const k of remove) if (this.map.delete(k)) revoked.push(k);
    for (const n of add) {
      const old = this.map.get(n.key);
      if (old !== undefined && old !== n.tailnet) revoked.push(n.key);
      this.map.set(n.key, n.tailnet);
    }
    this.updatedAt = this.now();
    this.notify(revoked);
  }

  private notify(keys: string[]): void {
    if (!keys.length) return;
    for (const fn of this.revokeListeners) fn(keys);
  }
}
