/**
 * UDP endpoints in the compact 20-byte form shared with the native helper:
 *   [0] family (4|6)  [1] 0  [2..3] port big-endian  [4..19] address (IPv4 in 4..7)
 * A relay path uses the same 20 bytes with family RELAY_FAMILY ('R'):
 *   [0] 0x52  [1] 0  [2..3] region big-endian  [4..7] peer handle big-endian
 * (the handle names the peer's node key on the main thread, which owns the
 * relay connections). Conversions to and from text live here; the packet path
 * only compares bytes.
 */
import ipaddr from 'ipaddr.js';

export const ENDPOINT_LEN = 20;

export function encodeEndpoint(ip: string, port: number, out = new Uint8Array(ENDPOINT_LEN), off = 0): Uint8Array {
  let addr = ipaddr.parse(ip);
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) addr = (addr as ipaddr.IPv6).toIPv4Address();
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`port out of range: ${port}`);
  out.fill(0, off, off + ENDPOINT_LEN);
  const bytes = addr.toByteArray();
  out[off] = addr.kind() === 'ipv4' ? 4 : 6;
  out[off + 2] = port >> 8;
  out[off + 3] = port & 0xff;
  out.set(bytes, off + 4);
  return out;
}

export const RELAY_FAMILY = 0x52;

export function encodeRelayEndpoint(region: number, handle: number, out = new Uint8Array(ENDPOINT_LEN), off = 0): Uint8Array {
  out.fill(0, off, off + ENDPOINT_LEN);
  out[off] = RELAY_FAMILY;
  out[off + 2] = (region >> 8) & 0xff;
  out[off + 3] = region & 0xff;
  new DataView(out.buffer, out.byteOffset + off + 4, 4).setUint32(0, handle >>> 0);
  return out;
}

export function isRelayEndpoint(b: Uint8Array, off = 0): boolean {
  return b[off] === RELAY_FAMILY;
}

/** The peer handle of a relay endpoint. */
export function relayHandle(b: Uint8Array, off = 0): number {
  return ((b[off + 4]! << 24) | (b[off + 5]! << 16) | (b[off + 6]! << 8) | b[off + 7]!) >>> 0;
}

export function endpointFamily(b: Uint8Array, off = 0): 4 | 6 {
  return b[off] === 6 ? 6 : 4;
}

export function endpointPort(b: Uint8Array, off = 0): number {
  return (b[off + 2]! << 8) | b[off + 3]!;
}

export function endpointIp(b: Uint8Array, off = 0): string {
  if (b[off] === RELAY_FAMILY) return `relay-${endpointPort(b, off)}-${relayHandle(b, off)}`;
  if (b[off] === 6) return ipaddr.fromByteArray(Array.from(b.subarray(off + 4, off + 20))).toString();
  return ipaddr.fromByteArray(Array.from(b.subarray(off + 4, off + 8))).toString();
}

/** "1.2.3.4:51820" or "[fd00::1]:51820". */
export function formatEndpoint(b: Uint8Array, off = 0): string {
  if (b[off] === RELAY_FAMILY) return `relay(${endpointPort(b, off)})`;
  const ip = endpointIp(b, off);
  return b[off] === 6 ? `[${ip}]:${endpointPort(b, off)}` : `${ip}:${endpointPort(b, off)}`;
}

export function endpointEquals(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): boolean {
  for (let i = 0; i < ENDPOINT_LEN; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

/** The bytes a cookie is bound to: address then port (what MAC2 proves the sender can receive at). */
export function endpointCookieBytes(b: Uint8Array, off = 0): Uint8Array {
  const n = b[off] === 6 ? 16 : 4;
  const out = new Uint8Array(n + 2);
  out.set(b.subarray(off + 4, off + 4 + n));
  out[n] = b[off + 2]!;
  out[n + 1] = b[off + 3]!;
  return out;
}

