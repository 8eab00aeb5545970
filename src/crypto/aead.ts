/**
 * AEADs: ChaCha20-Poly1305 (RFC 8439) via node:crypto with WireGuard's nonce
 * (4 zero bytes || 64-bit little-endian counter), and XChaCha20-Poly1305 via
 * @noble/ciphers for cookie replies. open() returns null on a bad tag.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';

export const TAG_LEN = 16;

export function nonceFor(counter: number | bigint): Buffer {
  const n = Buffer.alloc(12);
  n.writeBigUInt64LE(BigInt(counter), 4);
  return n;
}

export function seal(key: Uint8Array, counter: number | bigint, plain: Uint8Array, aad: Uint8Array = EMPTY): Uint8Array {
  const c = createCipheriv('chacha20-poly1305', key, nonceFor(counter), { authTagLength: TAG_LEN });
  if (aad.length) c.setAAD(aad, { plaintextLength: plain.length });
  const body = c.update(plain);
  c.final();
  const out = new Uint8Array(body.length + TAG_LEN);
  out.set(body);
  out.set(c.getAuthTag(), body.length);
  return out;
}

export function open(key: Uint8Array, counter: number | bigint, sealed: Uint8Array, aad: Uint8Array = EMPTY): Uint8Array | null {
  if (sealed.length < TAG_LEN) return null;
  const d = createDecipheriv('chacha20-poly1305', key, nonceFor(counter), { authTagLength: TAG_LEN });
  const bodyLen = sealed.length - TAG_LEN;
  d.setAuthTag(sealed.subarray(bodyLen));
  if (aad.length) d.setAAD(aad, { plaintextLength: bodyLen });
  const body = d.update(sealed.subarray(0, bodyLen));
  try {
    d.final();
  } catch {
    return null;
  }
  return new Uint8Array(body);
}

export function xseal(key: Uint8Array, nonce24: Uint8Array, plain: Uint8Array, aad: Uint8Array): Uint8Array {
  return xchacha20poly1305(key, nonce24, aad).encrypt(plain);
}

export function xopen(key: Uint8Array, nonce24: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array | null {
  try {
    return xchacha20poly1305(key, nonce24, aad).decrypt(sealed);
  } catch {
    return null;
  }
}

const EMPTY = new Uint8Array(0);
