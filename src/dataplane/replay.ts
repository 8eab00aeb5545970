/**
 * The anti-replay sliding window for transport-data counters.
 *
 * Owns the decision "have we already seen this counter, or is it too old?"
 * for one receiving keypair. Same algorithm and window as the Linux kernel's
 * noise_replay_counter and wireguard-go's replay.Filter: a ring of bitmap
 * words; moving ahead clears the words it passes; a counter more than
 * {@link REPLAY_WINDOW_SIZE} behind the greatest one accepted is rejected.
 *
 * Counters are JS numbers. WireGuard's limit (REJECT_AFTER_MESSAGES =
 * 2^64 − 2^13 − 1) is not representable as a number, and no session lives
 * long enough to get near 2^53 anyway, so we cap at {@link MAX_COUNTER}
 * instead. The caller may decode the 64-bit wire field as hi * 2^32 + lo:
 * anything at or above 2^53 stays above MAX_COUNTER after rounding and is
 * rejected here.
 *
 * Only call {@link ReplayWindow.accept} after the packet has authenticated;
 * use {@link ReplayWindow.check} before decrypting to drop obvious replays
 * cheaply.
 */

/** Bits in one ring word. */
const WORD_BITS = 32;
/** Ring size in words; a power of two (8192 bits, as the kernel). */
const RING_WORDS = 256;
const RING_MASK = RING_WORDS - 1;

/**
 * How far behind the greatest accepted counter a counter may be and still be
 * accepted (if not seen before): the kernel's COUNTER_WINDOW_SIZE,
 * 8192 − 64 = 8128. Counters in [greatest − 8128, greatest] are in the window.
 */
export const REPLAY_WINDOW_SIZE = 8192 - 64;

/**
 * The largest counter accepted: 2^53 − 2. Every integer up to it (and one
 * past it) is exact in a double, so window arithmetic never rounds.
 */
export const MAX_COUNTER = Number.MAX_SAFE_INTEGER - 1;

/** Sliding replay window over 64-bit nonce counters. No allocation per call. */
export class ReplayWindow {
  private readonly ring = new Uint32Array(RING_WORDS);
  /** Greatest counter accepted so far (0 before any: bit 0 is still clear). */
  private last = 0;

  /** Forgets everything, as for a fresh keypair. */
  reset(): void {
    this.ring.fill(0);
    this.last = 0;
  }

  /** Whether {@link accept} would accept `counter`. Does not change state. */
  check(counter: number): boolean {
    if (!(counter >= 0 && counter <= MAX_COUNTER) || !Number.isInteger(counter)) return false;
    if (counter > this.last) return true;
    if (this.last - counter > REPLAY_WINDOW_SIZE) return false;
    const word = this.ring[Math.floor(counter / WORD_BITS) & RING_MASK] as number;
    return (word & (1 << (counter & (WORD_BITS - 1)))) === 0;
  }

  /**
   * Checks `counter` and marks it seen. Returns false for a replay, a counter
   * too far behind the window, or one that is out of range.
   */
  accept(counter: number): boolean {
    if (!(counter >= 0 && counter <= MAX_COUNTER) || !Number.isInteger(counter)) return false;
    // Division by a power of two is exact, and `& mask` / `& 31` reduce any
    // safe integer modulo 2^32 exactly, so no 32-bit truncation bites here.
    const index = Math.floor(counter / WORD_BITS);
    const ring = this.ring;
    if (counter > this.last) {
      const current = Math.floor(this.last / WORD_BITS);
      const ahead = Math.min(index - current, RING_WORDS);
      for (let i = 1; i <= ahead; i++) ring[(current + i) & RING_MASK] = 0;
      this.last = counter;
    } else if (this.last - counter > REPLAY_WINDOW_SIZE) {
      return false;
    }
    const slot = index & RING_MASK;
    const bit = 1 << (counter & (WORD_BITS - 1));
    const word = ring[slot] as number;
    if ((word & bit) !== 0) return false;
    ring[slot] = word | bit;
    return true;
  }
}
