/**
 * A token bucket on bytes, with the clock passed in: `rate` bytes per
 * second, at most `burst` saved up. The relay keeps one per client and drops
 * (and counts) packets the bucket cannot pay for; it never closes for that.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(private readonly ratePerSec: number, private readonly burst: number, now: number) {
    this.tokens = burst;
    this.last = now;
  }

  /** Pay `n` bytes at time `now` (ms); false (and nothing paid) when the bucket holds fewer. */
  take(n: number, now: number): boolean {
    if (now > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.ratePerSec) / 1000);
      this.last = now;
    }
    if (this.tokens < n) return false;
    this.tokens -= n;
    return true;
  }
}
