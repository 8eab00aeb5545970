/**
 * Birthday-paradox traversal between an easy NAT and a hard one (endpoint-
 * dependent mapping), when ordinary pings cannot meet: the hard side opens a
 * pool of extra sockets that all ping the easy side's public endpoint —
 * each gets its own mapping (a random public port) on the hard NAT — while the
 * easy side sprays pings at random ports of the hard side's public address.
 * With 255 sockets a probe hits a live mapping about once in 250 tries
 * (64,512 ports / 255), so at 200 probes a second a pair meets in about a
 * second or two; then the ordinary disco exchange makes it the path (the hard
 * side's winner is a specific extra socket). Bounded in sockets, rate and
 * time; when time runs out the peer simply stays on the relay.
 *
 * This file holds the decisions and the schedule; the caller (traversal.ts)
 * owns sockets, sealing and sending.
 */
import ipaddr from 'ipaddr.js';
import type { DirectAddr } from './peer-paths.js';

export interface BirthdayLimits {
  /** Extra sockets the hard side opens. */
  sockets: number;
  /** Probes per second the easy side sends. */
  probesPerSec: number;
  /** How long one attempt lasts. */
  durationMs: number;
  /** The hard side re-pings from every socket this often (keeps its mappings alive). */
  hardRoundMs: number;
  /** Least time between two attempts for one peer. */
  cooldownMs: number;
  /** An active peer must have been on the relay this long before an attempt starts. */
  relayFirstMs: number;
}

export const BIRTHDAY_LIMITS: BirthdayLimits = Object.freeze({
  sockets: 255,
  probesPerSec: 200,
  durationMs: 30_000,
  hardRoundMs: 1_000,
  cooldownMs: 120_000,
  relayFirstMs: 3_000,
});

export type BirthdayRole = 'hard' | 'easy' | null;

/**
 * Our role toward a peer from both sides' netcheck verdicts (mapping varies
 * by destination = hard). Easy↔easy needs no birthday; hard↔hard cannot be
 * helped by it (both sides' ports are unpredictable).
 */
export function birthdayRole(ourMappingVaries: boolean | null, peerMappingVaries: boolean | null): BirthdayRole {
  if (ourMappingVaries === true && peerMappingVaries === false) return 'hard';
  if (ourMappingVaries === false && peerMappingVaries === true) return 'easy';
  return null;
}

/** Public unicast IPv4 addresses among a peer's candidates (where a NAT's outside can be). */
export function publicV4(cands: DirectAddr[]): DirectAddr[] {
  return cands.filter((c) => {
    if (!ipaddr.IPv4.isValid(c.ip) || c.socket) return false;
    return ipaddr.IPv4.parse(c.ip).range() === 'unicast';
  });
}

/** The peer's mapping verdict from its host info (`hostinfo.netinfo.mappingVaries`). */
export function peerMappingVaries(hostinfo: Record<string, unknown>): boolean | null {
  const ni = hostinfo['netinfo'];
  if (typeof ni !== 'object' || ni === null || Array.isArray(ni)) return null;
  const v = (ni as Record<string, unknown>)['mappingVaries'];
  return typeof v === 'boolean' ? v : null;
}

/** `n` random ports in [1024, 65535] (where NATs map). */
export function randomPorts(n: number, random: () => number = Math.random): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(1024 + Math.floor(random() * (65536 - 1024)));
  return out;
}
