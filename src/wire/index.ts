/**
 * Wire formats as pure codecs: bytes in, fields out, no I/O and no state.
 * Decoders return null on anything malformed and never throw on garbage.
 * Today: WireGuard messages. Later: disco, STUN, relay frames, NAT-PMP, PCP,
 * control messages. Depends on nothing else in Warren.
 */
export * from './wireguard.js';
