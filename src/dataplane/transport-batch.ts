/**
 * Preallocated scratch for sealing and opening several transport messages in
 * one TransportCrypto call. The device fills one, runs it and clears it inside
 * a single synchronous call (handleTunBatch / handleUdpBatch); nothing here
 * outlives that call except zeroed memory.
 */
import type { Keypair } from './keypair.js';
import type { TransportCrypto } from './transport-crypto.js';

/** Packets per crypto call; a longer batch is cut into several calls. */
export const CRYPTO_BATCH_MAX = 256;

const KEY_LEN = 32;

/**
 * Packets in consecutive slots of one TUN batch going out on one session with
 * consecutive counters (reserved as each packet joined): one sealBatch call.
 */
export class SealRun {
  kp: Keypair | null = null;
  /** Slot index of the first packet. */
  start = 0;
  n = 0;
  /** The first packet's counter; packet k has first + k. */
  first = 0;
  /** Plaintext lengths as they joined. */
  readonly plainLens = new Int32Array(CRYPTO_BATCH_MAX);
  /** Plaintext lengths in, message lengths (or -1) out. */
  readonly lens = new Int32Array(CRYPTO_BATCH_MAX);

  /** Whether the packet in slot `i`, on `kp` with `counter`, continues this run. */
  continues(kp: Keypair, i: number, counter: number): boolean {
    const n = this.n;
    return n > 0 && n < CRYPTO_BATCH_MAX && kp === this.kp && i === this.start + n && counter === this.first + n;
  }

  begin(kp: Keypair, i: number, counter: number): void {
    this.kp = kp;
    this.start = i;
    this.first = counter;
    this.n = 0;
  }

  push(plainLen: number): void {
    this.plainLens[this.n] = plainLen;
    this.lens[this.n] = plainLen;
    this.n++;
  }

  /** Seal the run in place in `buf`'s `slot`-byte slots. */
  seal(crypto: TransportCrypto, buf: Uint8Array, slot: number): void {
    const kp = this.kp!;
    crypto.sealBatch(kp.sendKey, kp.remoteIndex, this.first, buf, this.start * slot, slot, this.n, this.lens);
  }

  clear(): void {
    this.kp = null;
    this.n = 0;
  }
}

/**
 * Transport messages of one receive batch that passed the cheap checks (index,
 * expiry, replay window), waiting to be opened by one openBatch call. Each
 * distinct session's receive key is copied in once per batch and zeroed after.
 */
export class OpenBatch {
  n = 0;
  readonly kps: Array<Keypair | null> = new Array<Keypair | null>(CRYPTO_BATCH_MAX).fill(null);
  readonly offs = new Int32Array(CRYPTO_BATCH_MAX);
  /** Message lengths as they joined. */
  readonly msgLens = new Int32Array(CRYPTO_BATCH_MAX);
  /** Message lengths in, plaintext lengths (or -1) out. */
  readonly lens = new Int32Array(CRYPTO_BATCH_MAX);
  /** Where each message's source endpoint is in the caller's address array. */
  readonly srcOffs = new Int32Array(CRYPTO_BATCH_MAX);
  private readonly keys = new Uint8Array(CRYPTO_BATCH_MAX * KEY_LEN);
  private readonly keyIdx = new Int32Array(CRYPTO_BATCH_MAX);
  private nKeys = 0;
  private lastKp: Keypair | null = null;

  get full(): boolean {
    return this.n === CRYPTO_BATCH_MAX;
  }

  add(kp: Keypair, off: number, len: number, srcOff: number): void {
    if (kp !== this.lastKp) {
      this.keys.set(kp.recvKey, this.nKeys * KEY_LEN);
      this.lastKp = kp;
      this.nKeys++;
    }
    const k = this.n++;
    this.kps[k] = kp;
    this.keyIdx[k] = this.nKeys - 1;
    this.offs[k] = off;
    this.msgLens[k] = len;
    this.lens[k] = len;
    this.srcOffs[k] = srcOff;
  }

  /** Open every message in place in `buf`. */
  open(crypto: TransportCrypto, buf: Uint8Array): void {
    crypto.openBatch(this.keys, this.keyIdx, buf, this.n, this.offs, this.lens);
  }

  clear(): void {
    this.keys.fill(0, 0, this.nKeys * KEY_LEN);
    this.kps.fill(null, 0, this.n);
    this.n = 0;
    this.nKeys = 0;
    this.lastKp = null;
  }
}
