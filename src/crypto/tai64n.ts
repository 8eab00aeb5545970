/**
 * TAI64N timestamps (12 bytes: 8-byte big-endian seconds + 2^62, 4-byte
 * big-endian nanoseconds) used in WireGuard handshake initiations.
 */
export const TAI64N_LEN = 12;
const TAI_BASE = 0x4000000000000000n;

/** Encode unix time in nanoseconds (bigint). */
export function tai64n(unixNs: bigint): Uint8Array {
  const out = new Uint8Array(TAI64N_LEN);
  const v = new DataView(out.buffer);
  const secs = unixNs / 1_000_000_000n;
  const nanos = Number(unixNs % 1_000_000_000n);
  v.setBigUint64(0, TAI_BASE + secs, false);
  v.setUint32(8, nanos, false);
  return out;
}

/** Decode back to unix nanoseconds. */
export function tai64nToNs(t: Uint8Array): bigint {
  const v = new DataView(t.buffer, t.byteOffset, TAI64N_LEN);
  return (v.getBigUint64(0, false) - TAI_BASE) * 1_000_000_000n + BigInt(v.getUint32(8, false));
}

/** Byte-wise compare (a > b ⇔ later timestamp). */
export function compareTai64n(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < TAI64N_LEN; i++) {
    if (a[i] !== b[i]) return a[i]! - b[i]!;
  }
  return 0;
}
