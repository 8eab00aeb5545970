/**
 * Telling the three kinds of datagram on the shared data socket apart by their
 * first bytes (DESIGN.md, "Wire protocols" 2): WireGuard (type 1..4 then three
 * zero bytes) stays in the packet worker; disco (its magic prefix) and STUN
 * (magic cookie at offset 4) go to the main thread; anything else is dropped
 * and counted by the device.
 */
import { isDisco } from '../wire/disco.js';
import { isStun } from '../wire/stun.js';

/** True for disco and STUN datagrams (what path choice and netcheck consume). */
export function isControlDatagram(buf: Uint8Array, off: number, len: number): boolean {
  return isDisco(buf, off, len) || isStun(buf, off, len);
}

/**
 * A token bucket on datagrams handed to the main thread, so a flood of
 * disco-looking garbage costs the worker a counter, not a message each.
 */
export class DatagramBudget {
  private tokens: number;
  private last: number;

  constructor(private readonly perSecond: number, private readonly burst: number, now: number) {
    this.tokens = burst;
    this.last = now;
  }

  take(now: number): boolean {
    if (now > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.perSecond) / 1000);
      this.last = now;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
