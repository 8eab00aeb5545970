/**
 * X25519 (RFC 7748) via node:crypto: key generation, public-key derivation and
 * Diffie-Hellman on raw 32-byte keys. node:crypto is several times faster than
 * a JS implementation; raw keys are wrapped in fixed DER prefixes.
 */
import { createPrivateKey, createPublicKey, diffieHellman, randomBytes, type KeyObject } from 'node:crypto';

const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');
export const KEY_LEN = 32;

export class CryptoError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'CryptoError';
    this.code = code;
  }
}

/** Clamp a 32-byte scalar as X25519 requires (in place) and return it. */
export function clamp(k: Uint8Array): Uint8Array {
  k[0]! &= 248;
  k[31]! &= 127;
  k[31]! |= 64;
  return k;
}

export function generatePrivateKey(): Uint8Array {
  return clamp(new Uint8Array(randomBytes(KEY_LEN)));
}

function checkLen(k: Uint8Array, what: string): void {
  if (k.length !== KEY_LEN) throw new CryptoError('EKEYLEN', `${what} must be ${KEY_LEN} bytes, got ${k.length}`);
}

export function privateKeyObject(priv: Uint8Array): KeyObject {
  checkLen(priv, 'private key');
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, priv]), format: 'der', type: 'pkcs8' });
}

export function publicKeyObject(pub: Uint8Array): KeyObject {
  checkLen(pub, 'public key');
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, pub]), format: 'der', type: 'spki' });
}

export function publicKeyOf(priv: Uint8Array): Uint8Array {
  const der = createPublicKey(privateKeyObject(priv)).export({ format: 'der', type: 'spki' });
  return new Uint8Array(der.subarray(der.length - KEY_LEN));
}

const ZERO = new Uint8Array(KEY_LEN);

/**
 * X25519(priv, pub). Throws CryptoError 'EDHZERO' when the result is all
 * zeros (a low-order public key), as WireGuard requires.
 */
export function dh(priv: Uint8Array | KeyObject, pub: Uint8Array | KeyObject): Uint8Array {
  const privateKey = priv instanceof Uint8Array ? privateKeyObject(priv) : priv;
  const publicKey = pub instanceof Uint8Array ? publicKeyObject(pub) : pub;
  let out: Buffer;
  try {
    out = diffieHellman({ privateKey, publicKey });
  } catch (err) {
    // OpenSSL refuses low-order points itself.
    throw new CryptoError('EDHZERO', `X25519 produced no shared secret: ${(err as Error).message}`);
  }
  if (out.equals(ZERO)) throw new CryptoError('EDHZERO', 'X25519 result is all zeros (low-order public key)');
  return new Uint8Array(out);
}
