/**
 * Transport-data sealing and opening in place, WireGuard framing included.
 * Two backends behind one interface: the native helper (OpenSSL EVP, no
 * allocation) for the packet path, and node:crypto (allocates) as the portable
 * fallback and the reference in tests. The batch calls exist so the native
 * backend crosses into C once per batch instead of once per packet; the
 * node:crypto backend simply loops.
 *
 * Layout at pktOff: 16-byte header | plaintext (padded to 16) | 16-byte tag.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { MESSAGE_TRANSPORT } from './constants.js';
import { writeU32LE } from '../wire/wireguard.js';
import { transportCounter } from '../wire/wireguard.js';

export interface TransportCrypto {
  readonly name: string;
  /** The length of the message that sealing `plainLen` bytes makes (header, padded plaintext, tag). */
  sealedLength(plainLen: number): number;
  /** Returns the message length, or -1 when `cap` (end offset) is too small. */
  seal(key: Buffer, receiver: number, counter: number, buf: Uint8Array, pktOff: number, plainLen: number, cap: number): number;
  /** Returns the plaintext length (at pktOff+16), or -1 when authentication fails. */
  open(key: Buffer, buf: Uint8Array, pktOff: number, len: number): number;
  /**
   * Seal n packets of one session lying in consecutive `slot`-byte slots from
   * `off`: packet i's plaintext is lens[i] bytes at off + i*slot + 16, its
   * counter first + i, and its message must fit in its slot. lens[i] becomes
   * the message length, or -1. Returns the number sealed.
   */
  sealBatch(key: Buffer, receiver: number, first: number, buf: Uint8Array, off: number, slot: number, n: number, lens: Int32Array): number;
  /**
   * Open n messages: message i is lens[i] bytes at offs[i], opened with the
   * 32-byte key at keys[32*keyIdx[i]]. lens[i] becomes the plaintext length
   * (at offs[i]+16), or -1. Returns the number opened.
   */
  openBatch(keys: Uint8Array, keyIdx: Int32Array, buf: Uint8Array, n: number, offs: Int32Array, lens: Int32Array): number;
}

const nonce = Buffer.alloc(12);

function setNonce(counter: number): void {
  nonce.writeUInt32LE(0, 0);
  nonce.writeUInt32LE(counter >>> 0, 4);
  nonce.writeUInt32LE(Math.floor(counter / 0x100000000), 8);
}

/** WireGuard's padding: up to a multiple of 16, never past the MTU (wireguard-go's calculatePaddingSize). */
export function paddedLength(plainLen: number, mtu: number): number {
  if (mtu <= 0) return (plainLen + 15) & ~15;
  let last = plainLen;
  if (last > mtu) last %= mtu;
  const padded = Math.min((last + 15) & ~15, mtu);
  return plainLen + (padded - last);
}

/** A transport message's length for `plainLen` bytes of plaintext: header, padded plaintext, tag. */
export function messageLength(plainLen: number, mtu: number): number {
  return 32 + paddedLength(plainLen, mtu);
}

export class NodeTransportCrypto implements TransportCrypto {
  readonly name = 'node:crypto';
  constructor(private readonly mtu = 0) {}

  sealedLength(plainLen: number): number {
    return messageLength(plainLen, this.mtu);
  }

  seal(key: Buffer, receiver: number, counter: number, buf: Uint8Array, pktOff: number, plainLen: number, cap: number): number {
    const padded = paddedLength(plainLen, this.mtu);
    const total = 16 + padded + 16;
    if (pktOff + total > cap) return -1;
    buf.fill(0, pktOff + 16 + plainLen, pktOff + 16 + padded);
    buf[pktOff] = MESSAGE_TRANSPORT;
    buf[pktOff + 1] = 0;
    buf[pktOff + 2] = 0;
    buf[pktOff + 3] = 0;
    writeU32LE(buf, pktOff + 4, receiver);
    writeU32LE(buf, pktOff + 8, counter >>> 0);
    writeU32LE(buf, pktOff + 12, Math.floor(counter / 0x100000000));
    setNonce(counter);
    const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
    const body = c.update(buf.subarray(pktOff + 16, pktOff + 16 + padded));
    c.final();
    buf.set(body, pktOff + 16);
    buf.set(c.getAuthTag(), pktOff + 16 + padded);
    return total;
  }

  open(key: Uint8Array, buf: Uint8Array, pktOff: number, len: number): number {
    const counter = transportCounter(buf, pktOff);
    if (counter < 0 || len < 32) return -1;
    setNonce(counter);
    const d = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
    d.setAuthTag(buf.subarray(pktOff + len - 16, pktOff + len));
    const body = d.update(buf.subarray(pktOff + 16, pktOff + len - 16));
    try {
      d.final();
    } catch {
      return -1;
    }
    buf.set(body, pktOff + 16);
    return len - 32;
  }

  sealBatch(key: Buffer, receiver: number, first: number, buf: Uint8Array, off: number, slot: number, n: number, lens: Int32Array): number {
    let sealed = 0;
    for (let i = 0; i < n; i++) {
      const at = off + i * slot;
      lens[i] = this.seal(key, receiver, first + i, buf, at, lens[i]!, at + slot);
      if (lens[i]! >= 0) sealed++;
    }
    return sealed;
  }

  openBatch(keys: Uint8Array, keyIdx: Int32Array, buf: Uint8Array, n: number, offs: Int32Array, lens: Int32Array): number {
    let opened = 0;
    for (let i = 0; i < n; i++) {
      const k = keyIdx[i]! * 32;
      lens[i] = this.open(keys.subarray(k, k + 32), buf, offs[i]!, lens[i]!);
      if (lens[i]! >= 0) opened++;
    }
    return opened;
  }
}

export const nodeTransportCrypto: TransportCrypto = new NodeTransportCrypto(0);
