/**
 * NaCl `crypto_box` (curve25519xsalsa20poly1305), byte-compatible with
 * NaCl, libsodium and tweetnacl's `nacl.box`:
 *
 *   k      = HSalsa20(key = X25519(ourPrivate, theirPublic), in = 16 zero bytes,
 *                     constants = "expand 32-byte k")          (crypto_box_beforenm)
 *   sealed = Poly1305 tag (16) || XSalsa20 ciphertext (message length)
 *
 * The sealed layout is NaCl's output without its 16 leading zero bytes
 * (crypto_box_BOXZEROBYTES), exactly what tweetnacl returns and what
 * @noble/ciphers' xsalsa20poly1305 produces.
 *
 * Unlike classic NaCl, and like libsodium, a low-order public key (all-zero
 * shared secret) is refused: boxBeforeNm/boxSeal throw CryptoError 'EDHZERO',
 * boxOpen returns null. boxOpen never throws.
 */
import { hsalsa, xsalsa20poly1305 } from '@noble/ciphers/salsa.js';
import { dh, CryptoError, KEY_LEN } from './x25519.js';

export const BOX_NONCE_LEN = 24;
export const BOX_TAG_LEN = 16;
export const BOX_BEFORENM_LEN = 32;

const SIGMA = new TextEncoder().encode('expand 32-byte k');

/** Word view of a fresh (hence 4-byte aligned) copy of `bytes`. */
function words(bytes: Uint8Array): Uint32Array {
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  return new Uint32Array(copy.buffer, 0, bytes.length / 4);
}

/** HSalsa20(k, 16 zero bytes): the crypto_box precomputation from a raw X25519 shared secret. */
export function hsalsaZero(shared: Uint8Array): Uint8Array {
  if (shared.length !== KEY_LEN) throw new CryptoError('EKEYLEN', `shared secret must be ${KEY_LEN} bytes, got ${shared.length}`);
  const out = new Uint8Array(BOX_BEFORENM_LEN);
  // hsalsa takes native-order views of the raw bytes and writes raw bytes back.
  hsalsa(words(SIGMA), words(shared), new Uint32Array(4), new Uint32Array(out.buffer));
  return out;
}

/** crypto_box_beforenm: the 32-byte symmetric key shared by (ourPrivate, theirPublic) and its mirror. */
export function boxBeforeNm(theirPublic: Uint8Array, ourPrivate: Uint8Array): Uint8Array {
  const shared = dh(ourPrivate, theirPublic);
  try {
    return hsalsaZero(shared);
  } finally {
    shared.fill(0);
  }
}

function checkNonce(nonce: Uint8Array): void {
  if (nonce.length !== BOX_NONCE_LEN) throw new CryptoError('ENONCELEN', `box nonce must be ${BOX_NONCE_LEN} bytes, got ${nonce.length}`);
}

/** crypto_box_afternm: seal with a precomputed key. Output is tag || ciphertext. */
export function boxSealAfterNm(message: Uint8Array, nonce24: Uint8Array, key: Uint8Array): Uint8Array {
  checkNonce(nonce24);
  // noble returns a view into a larger scratch buffer; hand out a tight copy.
  return xsalsa20poly1305(key, nonce24).encrypt(message).slice();
}

/** crypto_box_open_afternm: null when the input is short, the tag is wrong or the nonce/key malformed. */
export function boxOpenAfterNm(sealed: Uint8Array, nonce24: Uint8Array, key: Uint8Array): Uint8Array | null {
  if (sealed.length < BOX_TAG_LEN || nonce24.length !== BOX_NONCE_LEN || key.length !== BOX_BEFORENM_LEN) return null;
  try {
    return xsalsa20poly1305(key, nonce24).decrypt(sealed).slice();
  } catch {
    return null;
  }
}

/**
 * crypto_box: encrypt and authenticate `message` from ourPrivate to theirPublic.
 * Throws CryptoError on a malformed key/nonce or a low-order public key.
 */
export function boxSeal(message: Uint8Array, nonce24: Uint8Array, theirPublic: Uint8Array, ourPrivate: Uint8Array): Uint8Array {
  checkNonce(nonce24);
  const key = boxBeforeNm(theirPublic, ourPrivate);
  try {
    return boxSealAfterNm(message, nonce24, key);
  } finally {
    key.fill(0);
  }
}

/** crypto_box_open: the message, or null on any failure (never throws). */
export function boxOpen(sealed: Uint8Array, nonce24: Uint8Array, theirPublic: Uint8Array, ourPrivate: Uint8Array): Uint8Array | null {
  if (sealed.length < BOX_TAG_LEN || nonce24.length !== BOX_NONCE_LEN) return null;
  if (theirPublic.length !== KEY_LEN || ourPrivate.length !== KEY_LEN) return null;
  let key: Uint8Array;
  try {
    key = boxBeforeNm(theirPublic, ourPrivate);
  } catch {
    return null;
  }
  try {
    return boxOpenAfterNm(sealed, nonce24, key);
  } finally {
    key.fill(0);
  }
}
