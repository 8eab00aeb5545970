/**
 * NAT-PMP codec (RFC 6886). Pure: bytes in, fields out. All fields are
 * big-endian; the client sends to the gateway's UDP port 5351.
 *
 *   external address request (2):   version 0 | opcode 0
 *   external address response (12): version 0 | opcode 128 | result u16 |
 *                                   seconds since start of epoch u32 | external IPv4 (4)
 *   map request (12):               version 0 | opcode 1 (UDP) or 2 (TCP) | reserved u16 (0) |
 *                                   internal port u16 | suggested external port u16 |
 *                                   requested lifetime u32 (seconds; 0 = delete)
 *   map response (16):              version 0 | opcode 128+op | result u16 | epoch u32 |
 *                                   internal port u16 | mapped external port u16 | lifetime u32
 *
 * A response with a non-zero result may be cut after the epoch (8 bytes):
 * its other fields are undefined (RFC 6886 §3.5) and decode as zero.
 * decodeNatPmpResponse() returns null for anything that is not a well-formed
 * NAT-PMP response (wrong version, a request, unknown opcode, truncated) and
 * never throws; trailing bytes are ignored.
 */

export const NATPMP_PORT = 5351;
export const NATPMP_VERSION = 0;
/** Added to the request opcode in a response. */
export const NATPMP_RESPONSE_BIT = 128;

export const NatPmpOp = {
  EXTERNAL_ADDRESS: 0,
  MAP_UDP: 1,
  MAP_TCP: 2,
} as const;

export const NatPmpResult = {
  SUCCESS: 0,
  UNSUPPORTED_VERSION: 1,
  NOT_AUTHORIZED: 2,
  NETWORK_FAILURE: 3,
  OUT_OF_RESOURCES: 4,
  UNSUPPORTED_OPCODE: 5,
} as const;

const RESULT_TEXT: Record<number, string> = {
  0: 'success', 1: 'unsupported version', 2: 'not authorized or refused', 3: 'network failure',
  4: 'out of resources', 5: 'unsupported opcode',
};

export function natPmpResultText(code: number): string {
  return RESULT_TEXT[code] ?? `result ${code}`;
}

export type MapProtocol = 'udp' | 'tcp';

export interface NatPmpMapRequest {
  protocol: MapProtocol;
  internalPort: number;
  /** 0 = no preference (and, with lifetime 0, "delete"). */
  suggestedExternalPort: number;
  /** Seconds; 0 deletes the mapping. */
  lifetime: number;
}

export type NatPmpResponse =
  | { kind: 'address'; result: number; epoch: number; externalIp: string }
  | { kind: 'map'; protocol: MapProtocol; result: number; epoch: number; internalPort: number; externalPort: number; lifetime: number };

function u16(v: number, name: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new RangeError(`${name} must be 0…65535, not ${v}`);
  return v;
}

function u32(v: number, name: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`${name} must be 0…2^32-1, not ${v}`);
  return v;
}

export function encodeNatPmpAddressRequest(): Uint8Array {
  return new Uint8Array([NATPMP_VERSION, NatPmpOp.EXTERNAL_ADDRESS]);
}

export function encodeNatPmpMapRequest(r: NatPmpMapRequest): Uint8Array {
  const b = new Uint8Array(12);
  const v = new DataView(b.buffer);
  b[0] = NATPMP_VERSION;
  b[1] = r.protocol === 'udp' ? NatPmpOp.MAP_UDP : NatPmpOp.MAP_TCP;
  v.setUint16(4, u16(r.internalPort, 'internalPort'));
  v.setUint16(6, u16(r.suggestedExternalPort, 'suggestedExternalPort'));
  v.setUint32(8, u32(r.lifetime, 'lifetime'));
  return b;
}

export function decodeNatPmpResponse(b: Uint8Array): NatPmpResponse | null {
  if (b.length < 8 || b[0] !== NATPMP_VERSION) return null;
  const op = b[1]!;
  if (op < NATPMP_RESPONSE_BIT) return null;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const result = v.getUint16(2);
  const epoch = v.getUint32(4);
  const ok = result === NatPmpResult.SUCCESS;
  const req = op - NATPMP_RESPONSE_BIT;
  if (req === NatPmpOp.EXTERNAL_ADDRESS) {
    if (ok && b.length < 12) return null;
    const externalIp = b.length >= 12 ? `${b[8]}.${b[9]}.${b[10]}.${b[11]}` : '0.0.0.0';
    return { kind: 'address', result, epoch, externalIp };
  }
  if (req === NatPmpOp.MAP_UDP || req === NatPmpOp.MAP_TCP) {
    if (ok && b.length < 16) return null;
    const full = b.length >= 16;
    return {
      kind: 'map', protocol: req === NatPmpOp.MAP_UDP ? 'udp' : 'tcp', result, epoch,
      internalPort: full ? v.getUint16(8) : 0, externalPort: full ? v.getUint16(10) : 0, lifetime: full ? v.getUint32(12) : 0,
    };
  }
  // A response to an opcode we never send (or an unsupported-version reply to a PCP
  // request, opcode 128 + PCP's): only its result code means anything.
  return null;
}

/**
 * An "unsupported version" answer from a NAT-PMP-only gateway to a request of
 * another version (a PCP request): version 0, response bit set, result 1.
 */
export function isNatPmpUnsupportedVersion(b: Uint8Array): boolean {
  return b.length >= 4 && b[0] === NATPMP_VERSION && b[1]! >= NATPMP_RESPONSE_BIT && ((b[2]! << 8) | b[3]!) === NatPmpResult.UNSUPPORTED_VERSION;
}
