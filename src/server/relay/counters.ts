/**
 * The relay's counters: what it accepted, refused, forwarded and dropped.
 * Plain numbers in one object (tests read them in-process; SIGUSR1 logs them
 * with summarize()). Nothing on the packet path logs: it counts.
 */
export interface RelayCounters {
  /** Upgrades answered with a challenge. */
  upgrades: number;
  /** Upgrade requests refused (wrong path or protocol). */
  badUpgrades: number;
  /** Proven and admitted: sessions started. */
  sessions: number;
  refusedProof: number;
  refusedNotAdmitted: number;
  /** No proof in time, or something else first. */
  refusedOther: number;
  /** Sessions cut because control stopped admitting the key (deleted, expired, rotated). */
  revoked: number;
  /** Sessions replaced by a newer connection with the same key. */
  replaced: number;
  packetsForwarded: number;
  bytesForwarded: number;
  droppedRateLimit: number;
  droppedQueueFull: number;
  /** Destination not connected here. */
  droppedNoPeer: number;
  /** Destination connected, but in another tailnet (answered exactly like droppedNoPeer). */
  droppedOtherTailnet: number;
  peerGoneSent: number;
  /** Connections closed for a malformed frame. */
  badFrames: number;
  /** Connections closed for a length over the limit. */
  oversizedFrames: number;
  unknownFrames: number;
  deadlineExpired: number;
}

export function newCounters(): RelayCounters {
  return {
    upgrades: 0, badUpgrades: 0, sessions: 0, refusedProof: 0, refusedNotAdmitted: 0, refusedOther: 0, revoked: 0, replaced: 0,
    packetsForwarded: 0, bytesForwarded: 0, droppedRateLimit: 0, droppedQueueFull: 0, droppedNoPeer: 0, droppedOtherTailnet: 0,
    peerGoneSent: 0, badFrames: 0, oversizedFrames: 0, unknownFrames: 0, deadlineExpired: 0,
  };
}

/** One log line: `key=value` pairs, non-zero counters only. */
export function summarize(c: RelayCounters): string {
  return Object.entries(c).filter(([, v]) => v !== 0).map(([k, v]) => `${k}=${v}`).join(' ') || 'no traffic yet';
}
