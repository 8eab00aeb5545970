/**
 * A keypair: one session's transport keys, indices, send counter and replay
 * window (whitepaper §5.4.6). Zeroed when discarded.
 */
import { ReplayWindow } from './replay.js';
import type { Peer } from './peer.js';

export class Keypair {
  sendCounter = 0;
  readonly replay = new ReplayWindow();
  readonly sendKey: Buffer;
  readonly recvKey: Buffer;

  constructor(
    readonly peer: Peer,
    sendKey: Uint8Array,
    recvKey: Uint8Array,
    readonly localIndex: number,
    readonly remoteIndex: number,
    readonly isInitiator: boolean,
    readonly created: number,
  ) {
    // Buffers so the native helper gets a stable pointer.
    this.sendKey = Buffer.from(sendKey);
    this.recvKey = Buffer.from(recvKey);
    sendKey.fill(0);
    recvKey.fill(0);
  }

  zero(): void {
    this.sendKey.fill(0);
    this.recvKey.fill(0);
    this.sendCounter = Number.MAX_SAFE_INTEGER;
  }
}
