/**
 * Handshake timestamps that never go backwards. Peers refuse an initiation whose
 * TAI64N is not later than the last one they saw, so a box that reboots with a
 * lagging clock (a Pi has no RTC) would be locked out. We persist the highest
 * timestamp sent and hand out max(now, last + 1 ns).
 */
import { readFileSync } from 'node:fs';
import { tai64n, compareTai64n, TAI64N_LEN } from '../crypto/tai64n.js';
import { writeFileAtomicSync } from '../util/atomic-write.js';
import type { TimestampSource } from './handshake.js';
import type { Clock } from './clock.js';

export function incrementTai64n(t: Uint8Array): Uint8Array {
  const out = new Uint8Array(t);
  // nanoseconds field: bytes 8..11 big-endian, < 1e9
  const v = new DataView(out.buffer);
  const ns = v.getUint32(8, false) + 1;
  if (ns < 1_000_000_000) v.setUint32(8, ns, false);
  else {
    v.setUint32(8, 0, false);
    v.setBigUint64(0, v.getBigUint64(0, false) + 1n, false);
  }
  return out;
}

export class PersistentTimestamps implements TimestampSource {
  private last: Uint8Array = new Uint8Array(TAI64N_LEN);

  /** `path` null keeps it in memory only (no state directory). */
  constructor(private readonly path: string | null, private readonly clock: Clock, private readonly onError: (e: Error) => void = () => {}) {
    if (!path) return;
    try {
      const b = readFileSync(path);
      if (b.length === TAI64N_LEN) this.last = new Uint8Array(b);
    } catch {
      /* first start */
    }
  }

  next(): Uint8Array {
    let t = tai64n(this.clock.wallNs());
    if (compareTai64n(t, this.last) <= 0) t = incrementTai64n(this.last);
    this.last = t;
    if (this.path) {
      try {
        writeFileAtomicSync(this.path, t);
      } catch (err) {
        this.onError(err as Error);
      }
    }
    return t;
  }
}
