/**
 * The server's half of possession proofs: its X25519 key (persisted once in
 * the state directory, mode 0600) and single-use challenge nonces that expire
 * after CHALLENGE_TTL_MS. A bounded table: a flood of challenge requests evicts
 * the oldest nonces instead of growing memory.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generatePrivateKey, publicKeyOf } from '../../crypto/x25519.js';
import { writeFileAtomicSync } from '../../util/atomic-write.js';
import { CHALLENGE_TTL_MS, NONCE_LEN } from '../../wire/control.js';

export interface ServerKey {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
}

export function loadOrCreateServerKey(stateDir: string): ServerKey {
  const path = join(stateDir, 'server-key');
  let priv: Uint8Array | null = null;
  try {
    priv = new Uint8Array(Buffer.from(readFileSync(path, 'utf8').trim(), 'base64'));
    if (priv.length !== 32) throw new Error(`${path} does not hold a 32-byte base64 key`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    priv = generatePrivateKey();
    writeFileAtomicSync(path, Buffer.from(priv).toString('base64') + '\n');
  }
  return { privateKey: priv, publicKey: publicKeyOf(priv) };
}

const MAX_OUTSTANDING = 100_000;

export class Challenges {
  private readonly nonces = new Map<string, number>(); // hex → expiry

  constructor(private readonly now: () => number) {}

  issue(): { nonce: Uint8Array; expiresInMs: number } {
    const nonce = new Uint8Array(randomBytes(NONCE_LEN));
    if (this.nonces.size >= MAX_OUTSTANDING) {
      const oldest = this.nonces.keys().next().value;
      if (oldest !== undefined) this.nonces.delete(oldest);
    }
    this.nonces.set(Buffer.from(nonce).toString('hex'), this.now() + CHALLENGE_TTL_MS);
    return { nonce, expiresInMs: CHALLENGE_TTL_MS };
  }

  /** True once per issued, unexpired nonce. */
  consume(nonce: Uint8Array): boolean {
    const k = Buffer.from(nonce).toString('hex');
    const exp = this.nonces.get(k);
    if (exp === undefined) return false;
    this.nonces.delete(k);
    return exp > this.now();
  }

  gc(): void {
    const now = this.now();
    for (const [k, exp] of this.nonces) if (exp <= now) this.nonces.delete(k);
  }
}
