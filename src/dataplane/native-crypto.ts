/**
 * TransportCrypto on the native helper (OpenSSL EVP in C, in place, no
 * allocation). Packets in the I/O loop's batch buffers sit at slot-aligned
 * offsets, so each registered buffer gets its slot views once and the packet
 * path passes a ready-made view to C; other buffers fall back to a subarray.
 */
import type { TransportCrypto } from './transport-crypto.js';
import type { WarrenNative } from './io/native.js';

export class NativeTransportCrypto implements TransportCrypto {
  readonly name = 'native (OpenSSL EVP)';
  private readonly views = new Map<ArrayBufferLike, { base: Uint8Array; slot: number; list: Uint8Array[] }>();

  /** `mtu` caps WireGuard's padding (a full-MTU packet is not padded past it). */
  constructor(private readonly native: WarrenNative, private readonly mtu = 0) {}

  /** Register a batch buffer made of `slot`-sized slots. */
  register(buf: Uint8Array, slot: number): void {
    const list: Uint8Array[] = [];
    for (let o = 0; o + slot <= buf.length; o += slot) list.push(buf.subarray(o, o + slot));
    this.views.set(buf.buffer, { base: buf, slot, list });
  }

  private last: { base: Uint8Array; slot: number; list: Uint8Array[] } | undefined;

  private view(buf: Uint8Array, off: number): Uint8Array {
    // Per packet: the batch buffer is almost always the one used last, so skip the map.
    const v = this.last?.base === buf ? this.last : (this.last = this.views.get(buf.buffer));
    if (v && v.base === buf && off % v.slot === 0) {
      const s = v.list[off / v.slot];
      if (s) return s;
    }
    return buf.subarray(off);
  }

  seal(key: Buffer, receiver: number, counter: number, buf: Uint8Array, pktOff: number, plainLen: number, cap: number): number {
    const r = this.native.seal(key, receiver, counter, this.view(buf, pktOff), plainLen, this.mtu, cap - pktOff);
    return r < 0 ? -1 : r;
  }

  open(key: Buffer, buf: Uint8Array, pktOff: number, len: number): number {
    const r = this.native.open(key, this.view(buf, pktOff), len);
    return r < 0 ? -1 : r;
  }
}
