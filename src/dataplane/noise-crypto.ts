/** The crypto the handshake needs, gathered under short names. */
export * as blake2s from '../crypto/blake2s.js';
export * as aead from '../crypto/aead.js';
export { dh, generatePrivateKey, publicKeyOf, privateKeyObject, publicKeyObject } from '../crypto/x25519.js';
