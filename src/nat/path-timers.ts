/**
 * Path-choice timer profiles (milliseconds). PRODUCTION is the starting point
 * from ../shared/DESIGN.md ("Path selection"), itself Tailscale's published
 * magicsock constants; TEST is shorter so namespace-lab tests finish in
 * seconds (warrend takes it only with WARREN_TEST_MODE=1, see
 * src/daemon/test-mode.ts). Tune with measurements.
 *
 * Not in DESIGN.md, Warren's own: minPingGapMs (how fast a peer can make us
 * ping an address), pingTimeoutMs (Tailscale's 5 s ping timeout) and
 * learnedTtlMs (two upgrade intervals).
 */
export interface PathTimers {
  /** Ping the chosen direct path this often while the session is active (keeps NAT mappings open). */
  heartbeatMs: number;
  /** A direct path is trusted this long after its last pong; then traffic falls back to the relay. */
  trustMs: number;
  /** Least time between two routine pings to one candidate (discovery rounds skip younger ones). */
  repingMs: number;
  /**
   * Least time between two pings to one address even when the peer asks for
   * them (call-me-maybe, a ping from it): bounds what a peer can make us send.
   * A ping asked for sooner is deferred to this gap, not dropped.
   */
  minPingGapMs: number;
  /** An unanswered ping's txid is forgotten after this long (a later pong is ignored). */
  pingTimeoutMs: number;
  /**
   * A candidate learned from the peer (call-me-maybe, a ping from it) and not
   * in the netmap is forgotten this long after it was last learned or answered.
   */
  learnedTtlMs: number;
  /** The session is active while traffic was seen this recently; heartbeats stop after. */
  sessionActiveMs: number;
  /** With a working direct path slower than goodEnoughLatencyMs, ping every candidate this often. */
  upgradeMs: number;
  /** A direct path this fast (round trip) stops upgrade attempts. */
  goodEnoughLatencyMs: number;
  /** Ask STUN again when our discovered endpoint is this old (NAT mappings often expire at 30 s). */
  reStunMs: number;
  /** Run a full netcheck this often. */
  netcheckMs: number;
}

export const PRODUCTION_PATH_TIMERS: PathTimers = Object.freeze({
  heartbeatMs: 3_000,
  trustMs: 6_500,
  repingMs: 5_000,
  minPingGapMs: 250,
  pingTimeoutMs: 5_000,
  learnedTtlMs: 120_000,
  sessionActiveMs: 45_000,
  upgradeMs: 60_000,
  goodEnoughLatencyMs: 5,
  reStunMs: 27_000,
  netcheckMs: 300_000,
});

/**
 * For process-level tests. Heartbeat and trust keep production's ratio (about
 * two missed heartbeats before falling back); re-ping stays below trust so a
 * restored path is found before the next upgrade round; the session goes idle
 * after 10 s so lab tests can see heartbeats stop (and conntrack entries with a
 * 10 s UDP timeout expire) within a minute; upgrade, re-STUN and netcheck are
 * short enough for "back to direct" and "new WAN address" checks (≤ 15 s);
 * learned candidates outlive two test sessions' idle windows.
 * Latency thresholds do not scale with time and stay as in production.
 */
export const TEST_PATH_TIMERS: PathTimers = Object.freeze({
  heartbeatMs: 1_000,
  trustMs: 2_500,
  repingMs: 1_500,
  minPingGapMs: 100,
  pingTimeoutMs: 2_000,
  learnedTtlMs: 20_000,
  sessionActiveMs: 10_000,
  upgradeMs: 5_000,
  goodEnoughLatencyMs: 5,
  reStunMs: 5_000,
  netcheckMs: 15_000,
});
