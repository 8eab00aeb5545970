/**
 * Injected time. `now()` is monotonic milliseconds (timers); `wallNs()` is wall
 * time in nanoseconds (TAI64N timestamps, "latest handshake"). Tests use
 * FakeClock and advance it instead of sleeping.
 */
export interface Clock {
  now(): number;
  wallNs(): bigint;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  wallNs: () => BigInt(Date.now()) * 1_000_000n,
};

export class FakeClock implements Clock {
  constructor(private ms = 1_000_000, private wallOffsetNs = 1_700_000_000_000_000_000n) {}
  now(): number {
    return this.ms;
  }
  wallNs(): bigint {
    return this.wallOffsetNs + BigInt(Math.round(this.ms * 1e6));
  }
  advance(ms: number): void {
    this.ms += ms;
  }
}
