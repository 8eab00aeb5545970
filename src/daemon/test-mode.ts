/**
 * The test timer profile and other test-only knobs. They are accepted only when
 * WARREN_TEST_MODE=1, so a production box can never run with shortened timers
 * or forced load by accident.
 *
 *   WARREN_TIMERS=test            the TEST_TIMERS profile (≈10× shorter)
 *   WARREN_TEST_FORCE_UNDER_LOAD=1 answer every initiation lacking MAC2 with a cookie
 *   WARREN_CRYPTO=node            transport crypto with node:crypto instead of the native helper
 *
 * WARREN_TIMERS=test also selects the test path-choice timers (src/nat/path-timers.ts)
 * and a 2 s relay keepalive (read deadline 4 s) instead of 30 s.
 */
import { PRODUCTION_TIMERS, TEST_TIMERS, type TimerProfile } from '../dataplane/constants.js';
import { PRODUCTION_PATH_TIMERS, TEST_PATH_TIMERS, type PathTimers } from '../nat/path-timers.js';
import { BIRTHDAY_LIMITS, type BirthdayLimits } from '../nat/birthday.js';

export interface TestKnobs {
  timers: TimerProfile;
  pathTimers: PathTimers;
  /** Birthday-paradox limits: the test profile retries sooner (cooldown 10 s) and starts after 1.5 s on the relay. */
  birthday: BirthdayLimits;
  /** Relay keepalive (undefined = the relay client's default, 30 s). */
  relayKeepaliveMs: number | undefined;
  forceUnderLoad: boolean;
  crypto: 'native' | 'node';
}

export function testKnobs(env: NodeJS.ProcessEnv = process.env): TestKnobs {
  const testMode = env['WARREN_TEST_MODE'] === '1';
  const wantTimers = env['WARREN_TIMERS'];
  const forceLoad = env['WARREN_TEST_FORCE_UNDER_LOAD'] === '1';
  if (!testMode && (wantTimers === 'test' || forceLoad)) {
    throw new Error('WARREN_TIMERS=test and WARREN_TEST_FORCE_UNDER_LOAD are test-only and need WARREN_TEST_MODE=1');
  }
  if (wantTimers !== undefined && wantTimers !== 'test' && wantTimers !== 'production') {
    throw new Error(`WARREN_TIMERS must be "test" or "production", not "${wantTimers}"`);
  }
  const crypto = env['WARREN_CRYPTO'] === 'node' ? 'node' : 'native';
  const test = wantTimers === 'test';
  return {
    timers: test ? TEST_TIMERS : PRODUCTION_TIMERS,
    pathTimers: test ? TEST_PATH_TIMERS : PRODUCTION_PATH_TIMERS,
    birthday: test ? { ...BIRTHDAY_LIMITS, cooldownMs: 10_000, relayFirstMs: 1_500 } : BIRTHDAY_LIMITS,
    relayKeepaliveMs: test ? 2000 : undefined,
    forceUnderLoad: forceLoad,
    crypto,
  };
}
