/**
 * The test timer profile and other test-only knobs. They are accepted only when
 * WARREN_TEST_MODE=1, so a production box can never run with shortened timers
 * or forced load by accident.
 *
 *   WARREN_TIMERS=test            the TEST_TIMERS profile (≈10× shorter)
 *   WARREN_TEST_FORCE_UNDER_LOAD=1 answer every initiation lacking MAC2 with a cookie
 *   WARREN_CRYPTO=node            transport crypto with node:crypto instead of the native helper
 */
import { PRODUCTION_TIMERS, TEST_TIMERS, type TimerProfile } from '../dataplane/constants.js';

export interface TestKnobs {
  timers: TimerProfile;
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
  return { timers: wantTimers === 'test' ? TEST_TIMERS : PRODUCTION_TIMERS, forceUnderLoad: forceLoad, crypto };
}
