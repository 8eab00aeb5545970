/**
 * The test timer profile and other test-only knobs. They are accepted only when
 * WARREN_TEST_MODE=1, so a production box can never run with shortened timers
 * or forced load by accident.
 *
 *   WARREN_TIMERS=test            the TEST_TIMERS profile (≈10× shorter)
 *   WARREN_TEST_FORCE_UNDER_LOAD=1 answer every initiation lacking MAC2 with a cookie
 *   WARREN_CRYPTO=node            transport crypto with node:crypto instead of the native helper
 *   WARREN_PORTMAP_ONLY=upnp|natpmp|pcp  map with this protocol only (all are still probed)
 *   WARREN_PORTMAP_LIFETIME=SECONDS      ask the gateway for this mapping lifetime (default 7200)
 *
 * WARREN_TIMERS=test also selects the test path-choice timers (src/nat/path-timers.ts)
 * and a 2 s relay keepalive (read deadline 4 s) instead of 30 s, and polls the
 * port-mapping gateway every 5 s instead of 60 s, and drops start-up pages
 * 1 s after a first netmap instead of 5 s.
 */
import { PRODUCTION_TIMERS, TEST_TIMERS, type TimerProfile } from '../dataplane/constants.js';
import { PRODUCTION_PATH_TIMERS, TEST_PATH_TIMERS, type PathTimers } from '../nat/path-timers.js';
import { DEFAULT_LIFETIME_SEC, DEFAULT_POLL_MS, type PortmapProtocol } from '../nat/portmap/index.js';
import { BIRTHDAY_LIMITS, type BirthdayLimits } from '../nat/birthday.js';
import { TRIM_DELAY_MS } from './startup-trim.js';

export interface TestKnobs {
  timers: TimerProfile;
  pathTimers: PathTimers;
  /** Birthday-paradox limits: the test profile retries sooner (cooldown 10 s) and starts after 1.5 s on the relay. */
  birthday: BirthdayLimits;
  /** Relay keepalive (undefined = the relay client's default, 30 s). */
  relayKeepaliveMs: number | undefined;
  forceUnderLoad: boolean;
  crypto: 'native' | 'node';
  portmap: { only: PortmapProtocol | null; lifetimeSec: number; pollMs: number };
  /** How long after a first netmap warrend drops its start-up pages (startup-trim.ts): 5 s, 1 s with test timers. */
  trimDelayMs: number;
}

export function testKnobs(env: NodeJS.ProcessEnv = process.env): TestKnobs {
  const testMode = env['WARREN_TEST_MODE'] === '1';
  const wantTimers = env['WARREN_TIMERS'];
  const forceLoad = env['WARREN_TEST_FORCE_UNDER_LOAD'] === '1';
  const pmOnly = env['WARREN_PORTMAP_ONLY'];
  const pmLifetime = env['WARREN_PORTMAP_LIFETIME'];
  if (!testMode && (wantTimers === 'test' || forceLoad || pmOnly !== undefined || pmLifetime !== undefined)) {
    throw new Error('WARREN_TIMERS=test, WARREN_TEST_FORCE_UNDER_LOAD and WARREN_PORTMAP_* are test-only and need WARREN_TEST_MODE=1');
  }
  if (pmOnly !== undefined && !['upnp', 'natpmp', 'pcp'].includes(pmOnly)) throw new Error(`WARREN_PORTMAP_ONLY must be upnp, natpmp or pcp, not "${pmOnly}"`);
  const lifetimeSec = pmLifetime === undefined ? DEFAULT_LIFETIME_SEC : Number(pmLifetime);
  if (!Number.isInteger(lifetimeSec) || lifetimeSec < 1 || lifetimeSec > 86_400) throw new Error(`WARREN_PORTMAP_LIFETIME must be 1…86400 seconds, not "${pmLifetime}"`);
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
    portmap: { only: (pmOnly as PortmapProtocol | undefined) ?? null, lifetimeSec, pollMs: test ? 5000 : DEFAULT_POLL_MS },
    trimDelayMs: test ? 1000 : TRIM_DELAY_MS,
  };
}
