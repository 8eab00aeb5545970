/**
 * BLAKE2s as WireGuard uses it: HASH (32-byte digest), MAC (keyed, 16 bytes),
 * HMAC-BLAKE2s, and the Noise KDF (HKDF with HMAC-BLAKE2s, 1–3 outputs).
 */
import { blake2s } from '@noble/hashes/blake2.js';
import { hmac as nobleHmac } from '@noble/hashes/hmac.js';

export function hash(...parts: Uint8Array[]): Uint8Array {
  const h = blake2s.create({});
  for (const p of parts) h.update(p);
  return h.digest();
}

/** Keyed BLAKE2s with a 16-byte output (WireGuard's MAC). */
export function mac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = blake2s.create({ key, dkLen: 16 });
  for (const p of parts) h.update(p);
  return h.digest();
}

export function hmac(key: Uint8Array, data: Uint8Array): Uint8Array {
  return nobleHmac(blake2s, key, data);
}

const ONE = new Uint8Array([1]);

/** Noise KDF_n(key, input): returns n 32-byte outputs. */
export function kdf(n: 1 | 2 | 3, key: Uint8Array, input: Uint8Array): Uint8Array[] {
  const prk = hmac(key, input);
  const out: Uint8Array[] = [];
  let prev = hmac(prk, ONE);
  out.push(prev);
  for (let i = 2; i <= n; i++) {
    const buf = new Uint8Array(prev.length + 1);
    buf.set(prev);
    buf[prev.length] = i;
    prev = hmac(prk, buf);
    out.push(prev);
  }
  return out;
}
