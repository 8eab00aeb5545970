/**
 * Constants from the WireGuard whitepaper (§6.1) — fixed by the protocol —
 * kept apart from tuning knobs (TimerProfile), which tests may shorten.
 * All times in milliseconds.
 */
export const REKEY_AFTER_MESSAGES = 2 ** 60;
/** Our counters are JS numbers; far below 2^64 − 2^13 − 1 but never reached in practice. */
export const REJECT_AFTER_MESSAGES = Number.MAX_SAFE_INTEGER - 8192;
export const REKEY_AFTER_TIME = 120_000;
export const REJECT_AFTER_TIME = 180_000;
export const REKEY_ATTEMPT_TIME = 90_000;
export const REKEY_TIMEOUT = 5_000;
export const KEEPALIVE_TIMEOUT = 10_000;
/** Jitter added to each handshake retransmission (wireguard-go: up to 333 ms). */
export const REKEY_TIMEOUT_JITTER_MAX = 334;
/** Secret for cookie MACs rotates every 2 minutes. */
export const COOKIE_SECRET_MAX_AGE = 120_000;
/** A cookie received from a peer is used for MAC2 for this long. */
export const COOKIE_REFRESH_TIME = 120_000;
/** Initiations per second per source IP accepted while under load (wireguard-go: 20/s, burst 5). */
export const HANDSHAKE_RATE_PER_SEC = 20;
export const HANDSHAKE_RATE_BURST = 5;
/** The responder refuses a second initiation from one peer within this window. */
export const HANDSHAKE_INITIATION_RATE = 1_000 / 50;
/** Pending handshake-queue depth that counts as "under load". */
export const UNDER_LOAD_QUEUE = 128;
/** Stay "under load" this long after the last overloaded moment. */
export const UNDER_LOAD_AFTER = 1_000;
/** Packets staged per peer while waiting for a handshake. */
export const MAX_STAGED_PACKETS = 128;

// Message types and sizes are wire facts: defined in src/wire, re-exported here.
export {
  MESSAGE_INITIATION, MESSAGE_RESPONSE, MESSAGE_COOKIE_REPLY, MESSAGE_TRANSPORT, INITIATION_SIZE, RESPONSE_SIZE,
  COOKIE_REPLY_SIZE, TRANSPORT_HEADER_SIZE, TRANSPORT_MIN_SIZE, TRANSPORT_OVERHEAD,
} from '../wire/wireguard.js';

/**
 * Tuning knobs with their production values. A shorter "test" profile exists
 * only for process-level tests (warrend refuses it unless WARREN_TEST_MODE=1).
 */
export interface TimerProfile {
  rekeyAfterTime: number;
  rejectAfterTime: number;
  rekeyAttemptTime: number;
  rekeyTimeout: number;
  keepaliveTimeout: number;
}

export const PRODUCTION_TIMERS: TimerProfile = Object.freeze({
  rekeyAfterTime: REKEY_AFTER_TIME,
  rejectAfterTime: REJECT_AFTER_TIME,
  rekeyAttemptTime: REKEY_ATTEMPT_TIME,
  rekeyTimeout: REKEY_TIMEOUT,
  keepaliveTimeout: KEEPALIVE_TIMEOUT,
});

/** Shortened profile for process-level tests: the same ratios, ~10× faster. */
export const TEST_TIMERS: TimerProfile = Object.freeze({
  rekeyAfterTime: 12_000,
  rejectAfterTime: 18_000,
  rekeyAttemptTime: 9_000,
  rekeyTimeout: 1_000,
  keepaliveTimeout: 2_000,
});
