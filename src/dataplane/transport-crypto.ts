/**
 * Transport-data sealing and opening in place, WireGuard framing included.
 * Two backends behind one interface: the native helper (OpenSSL EVP, no
 * allocation) for the packet path, and node:crypto (allocates) as the portable
 * fallback and the reference in tests.
 *
 * Layout at pktOff: 16-byte header | plaintext (padded to 16) | 16-byte tag.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { MESSAGE_TRANSPORT } from './constants.js';
import { writeU32LE } from '../wire/wireguard.js';
import { transportCounter } from '../wire/wireguard.js';

export interface TransportCrypto {
  readonly name: string;
  /** Returns the message length, or -1 when `cap` (end offset) is too small. */
  seal(key: Buffer, receiver: number, counter: number, buf: Uint8Array, pktOff: number, plainLen: number, cap: number): number;
  /** Returns the plaintext length (at pktOff+16), or -1 when authentication fails. */
  open(key: Buffer, buf: Uint8Array, pktOff: number, len: number): number;
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

export class NodeTransportCrypto implements TransportCrypto {
  readonly name = 'node:crypto';
  constructor(private readonly mtu = 0) {}

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

  open(key: Buffer, buf: Uint8Array, pktOff: number, len: number): number {
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
}

export const nodeTransportCrypto: TransportCrypto = new NodeTransportCrypto(0);
