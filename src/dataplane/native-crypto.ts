/**
 * TransportCrypto on the native helper (OpenSSL EVP in C, in place, no
 * allocation). Packets in the I/O loop's batch buffers sit at slot-aligned
 * offsets, so each registered buffer gets, once, a view from every slot to its
 * end, and the packet path passes a ready-made view to C (a single packet or a
 * run of slots from there); other buffers fall back to a subarray. The batch
 * calls cross into C once per batch: the per-call cost (~300 ns through koffi)
 * was most of the gap to OpenSSL's own speed.
 */
import { messageLength, type TransportCrypto } from './transport-crypto.js';
import type { WarrenNative } from './io/native.js';

interface SlotViews {
  base: Uint8Array;
  slot: number;
  /** list[i] = base from slot i to the end. */
  list: Uint8Array[];
}

export class NativeTransportCrypto implements TransportCrypto {
  readonly name = 'native (OpenSSL EVP)';
  private readonly views = new Map<ArrayBufferLike, SlotViews>();
  private last: SlotViews | undefined;

  /** `mtu` caps WireGuard's padding (a full-MTU packet is not padded past it). */
  constructor(private readonly native: WarrenNative, private readonly mtu = 0) {}

  /** Register a batch buffer made of `slot`-sized slots. */
  register(buf: Uint8Array, slot: number): void {
    const list: Uint8Array[] = [];
    for (let o = 0; o + slot <= buf.length; o += slot) list.push(buf.subarray(o));
    this.views.set(buf.buffer, { base: buf, slot, list });
  }

  private view(buf: Uint8Array, off: number): Uint8Array {
    // Per call: the batch buffer is almost always the one used last, so skip the map.
    const v = this.last?.base === buf ? this.last : (this.last = this.views.get(buf.buffer));
    if (v && v.base === buf && off % v.slot === 0) {
      const s = v.list[off / v.slot];
      if (s) return s;
    }
    return buf.subarray(off);
  }

  sealedLength(plainLen: number): number {
    return messageLength(plainLen, this.mtu);
  }

  seal(key: Buffer, receiver: number, counter: number, buf: Uint8Array, pktOff: number, plainLen: number, cap: number): number {
    const r = this.native.seal(key, receiver, counter, this.view(buf, pktOff), plainLen, this.mtu, cap - pktOff);
    return r < 0 ? -1 : r;
  }

  open(key: Buffer, buf: Uint8Array, pktOff: number, len: number): number {
    const r = this.native.open(key, this.view(buf, pktOff), len);
    return r < 0 ? -1 : r;
  }

  sealBatch(key: Buffer, receiver: number, first: number, buf: Uint8Array, off: number, slot: number, n: number, lens: Int32Array): number {
    if (n <= 0) return 0;
    const sealed = this.native.sealBatch(key, receiver, first, this.view(buf, off), slot, n, lens, this.mtu);
    if (sealed < n) failuresToMinusOne(lens, n);
    return sealed;
  }

  openBatch(keys: Uint8Array, keyIdx: Int32Array, buf: Uint8Array, n: number, offs: Int32Array, lens: Int32Array): number {
    if (n <= 0) return 0;
    // slot 0: offs are absolute offsets into buf.
    const opened = this.native.openBatch(keys, keyIdx, buf, 0, n, offs, lens);
    if (opened < n) failuresToMinusOne(lens, n);
    return opened;
  }
}

/** The interface reports failures as -1; C gives a negative errno. */
function failuresToMinusOne(lens: Int32Array, n: number): void {
  for (let i = 0; i < n; i++) if (lens[i]! < 0) lens[i] = -1;
}
