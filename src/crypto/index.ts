/**
 * Cryptographic primitives WireGuard needs, behind small functions:
 * X25519 (node:crypto, fast path), BLAKE2s hash/keyed MAC/HMAC and the
 * WireGuard HKDF (@noble/hashes), ChaCha20-Poly1305 (node:crypto) and
 * XChaCha20-Poly1305 (@noble/ciphers) for cookies, TAI64N timestamps.
 * Nothing here knows about peers or packets.
 */
export * from './x25519.js';
export * from './blake2s.js';
export * from './aead.js';
export * from './tai64n.js';
export * from './box.js';
