/**
 * Wire formats as pure codecs: bytes in, fields out, no I/O and no state
 * (beyond the map-stream frame reassembler's buffer).
 * Decoders return null on anything malformed and never throw on garbage.
 * Today: WireGuard messages, STUN (stun.ts), disco (disco.ts), control-protocol
 * messages (valibot schemas, the map-stream framing, possession proofs) and the
 * relay's frames and admission stream (relay-frames.ts, relay-admission.ts),
 * NAT-PMP (natpmp.ts) and PCP (pcp.ts) for port mapping. Depends only on src/crypto (NaCl box for proofs and disco).
 */
export * from './wireguard.js';
export * from './control.js';
export * from './control-frames.js';
export * from './stun.js';
export * from './relay-frames.js';
export * from './relay-admission.js';
export * from './disco.js';
export * from './natpmp.js';
export * from './pcp.js';
