/**
 * PCP codec (RFC 6887), the opcodes a port mapper needs: ANNOUNCE (probe,
 * epoch) and MAP. Pure: bytes in, fields out; big-endian; UDP 5351.
 *
 *   request header (24):   version 2 | R=0,opcode (7 bits) | reserved u16 |
 *                          requested lifetime u32 | client IP (16, IPv4-mapped for IPv4)
 *   response header (24):  version 2 | R=1,opcode | reserved u8 | result u8 |
 *                          lifetime u32 | epoch time u32 | reserved (12)
 *   MAP body (36):         mapping nonce (12) | protocol u8 | reserved (3) |
 *                          internal port u16 | suggested (request) or assigned
 *                          (response) external port u16 | external IP (16)
 *   options:               code u8 | reserved u8 | length u16 | data, padded to 4
 *
 * A message is 24…1100 bytes and a multiple of 4 (§7). decodePcpResponse()
 * returns null for anything else, for a request (R=0), for another version
 * and for a truncated MAP body, and never throws. Options in a response are
 * not needed by a MAP client and are skipped. The caller checks the nonce:
 * a response whose nonce is not ours must be ignored (§11.3).
 */
import { createRequire } from 'node:module';
import type * as IpaddrModule from 'ipaddr.js';

// ipaddr.js is CommonJS with `export =` (see src/wire/stun.ts).
const ipaddr = createRequire(import.meta.url)('ipaddr.js') as typeof IpaddrModule;

export const PCP_PORT = 5351;
export const PCP_VERSION = 2;
export const PCP_HEADER_LEN = 24;
export const PCP_MAP_BODY_LEN = 36;
export const PCP_MAX_LEN = 1100;
export const PCP_NONCE_LEN = 12;
export const PCP_RESPONSE_BIT = 0x80;

export const PcpOp = {
  ANNOUNCE: 0,
  MAP: 1,
  PEER: 2,
} as const;

export const PcpResult = {
  SUCCESS: 0,
  UNSUPP_VERSION: 1,
  NOT_AUTHORIZED: 2,
  MALFORMED_REQUEST: 3,
  UNSUPP_OPCODE: 4,
  UNSUPP_OPTION: 5,
  MALFORMED_OPTION: 6,
  NETWORK_FAILURE: 7,
  NO_RESOURCES: 8,
  UNSUPP_PROTOCOL: 9,
  USER_EX_QUOTA: 10,
  CANNOT_PROVIDE_EXTERNAL: 11,
  ADDRESS_MISMATCH: 12,
  EXCESSIVE_REMOTE_PEERS: 13,
} as const;

const RESULT_NAMES = Object.fromEntries(Object.entries(PcpResult).map(([k, v]) => [v, k])) as Record<number, string>;

export function pcpResultText(code: number): string {
  return RESULT_NAMES[code] ?? `result ${code}`;
}

/** IANA protocol numbers used in MAP. */
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

export interface PcpMapRequest {
  /** Our own address as the gateway sees it (IPv4 dotted or IPv6). */
  clientIp: string;
  /** Seconds; 0 deletes the mapping with this nonce. */
  lifetime: number;
  nonce: Uint8Array;
  protocol: number;
  internalPort: number;
  /** 0 = no preference. */
  suggestedExternalPort: number;
  /** Omitted: no preference (the all-zero IPv4-mapped address, §11.1). */
  suggestedExternalIp?: string;
}

export interface PcpMapBody {
  nonce: Uint8Array;
  protocol: number;
  internalPort: number;
  externalPort: number;
  /** IPv4 dotted for an IPv4-mapped address, else IPv6 text. */
  externalIp: string;
}

export interface PcpResponse {
  opcode: number;
  result: number;
  /** Seconds the mapping (or, for an error, the error) is valid. */
  lifetime: number;
  /** The server's epoch time (seconds since its state began). */
  epoch: number;
  /** The MAP body, for a MAP response long enough to carry one. */
  map: PcpMapBody | null;
}

function check(v: number, max: number, name: string): number {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new RangeError(`${name} must be 0…${max}, not ${v}`);
  return v;
}

/** An address as PCP writes it: 16 bytes, IPv4 as ::ffff:a.b.c.d. Throws RangeError on a malformed address. */
export function pcpAddress(ip: string): Uint8Array {
  let a: IpaddrModule.IPv4 | IpaddrModule.IPv6;
  try {
    if (!ip.includes(':') && !ipaddr.IPv4.isValidFourPartDecimal(ip)) throw new Error('not dotted quad');
    a = ipaddr.parse(ip);
  } catch {
    throw new RangeError(`not an IP address: ${ip}`);
  }
  const v6 = a.kind() === 'ipv4' ? (a as IpaddrModule.IPv4).toIPv4MappedAddress() : a;
  return new Uint8Array(v6.toByteArray());
}

/** The text form of a 16-byte PCP address (dotted IPv4 when IPv4-mapped). */
export function pcpAddressText(b: Uint8Array): string {
  const a = ipaddr.fromByteArray(Array.from(b.subarray(0, 16))) as IpaddrModule.IPv6;
  return a.isIPv4MappedAddress() ? a.toIPv4Address().toString() : a.toString();
}

function header(opcode: number, lifetime: number, clientIp: string, bodyLen: number): { b: Uint8Array; v: DataView } {
  const b = new Uint8Array(PCP_HEADER_LEN + bodyLen);
  const v = new DataView(b.buffer);
  b[0] = PCP_VERSION;
  b[1] = opcode;
  v.setUint32(4, check(lifetime, 0xffffffff, 'lifetime'));
  b.set(pcpAddress(clientIp), 8);
  return { b, v };
}

/** ANNOUNCE (lifetime 0): answered by any PCP server; used to probe and to read the epoch. */
export function encodePcpAnnounceRequest(clientIp: string): Uint8Array {
  return header(PcpOp.ANNOUNCE, 0, clientIp, 0).b;
}

export function encodePcpMapRequest(r: PcpMapRequest): Uint8Array {
  if (r.nonce.length !== PCP_NONCE_LEN) throw new RangeError(`nonce must be ${PCP_NONCE_LEN} bytes`);
  const { b, v } = header(PcpOp.MAP, r.lifetime, r.clientIp, PCP_MAP_BODY_LEN);
  b.set(r.nonce, 24);
  b[36] = check(r.protocol, 255, 'protocol');
  v.setUint16(40, check(r.internalPort, 0xffff, 'internalPort'));
  v.setUint16(42, check(r.suggestedExternalPort, 0xffff, 'suggestedExternalPort'));
  b.set(pcpAddress(r.suggestedExternalIp ?? '0.0.0.0'), 44);
  return b;
}

export function decodePcpResponse(b: Uint8Array): PcpResponse | null {
  if (b.length < PCP_HEADER_LEN || b.length > PCP_MAX_LEN || b.length % 4 !== 0) return null;
  if (b[0] !== PCP_VERSION || (b[1]! & PCP_RESPONSE_BIT) === 0) return null;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const opcode = b[1]! & 0x7f;
  const resp: PcpResponse = { opcode, result: b[3]!, lifetime: v.getUint32(4), epoch: v.getUint32(8), map: null };
  if (opcode === PcpOp.MAP) {
    if (b.length < PCP_HEADER_LEN + PCP_MAP_BODY_LEN) {
      // A success must carry the body; an error may be bare.
      return resp.result === PcpResult.SUCCESS ? null : resp;
    }
    resp.map = {
      nonce: b.slice(24, 36),
      protocol: b[36]!,
      internalPort: v.getUint16(40),
      externalPort: v.getUint16(42),
      externalIp: pcpAddressText(b.subarray(44, 60)),
    };
  }
  return resp;
}

/** A PCP-format "unsupported version" answer (a PCP-only server answering a NAT-PMP request, or a v1 server). */
export function isPcpUnsupportedVersion(b: Uint8Array): boolean {
  return b.length >= 4 && b[0] !== 0 && (b[1]! & PCP_RESPONSE_BIT) !== 0 && b[3] === PcpResult.UNSUPP_VERSION;
}
