/**
 * WireGuard's cookie layer (whitepaper §5.4.4, §5.4.7): MAC1 on every
 * handshake message, MAC2 from a cookie when the receiver is under load, and
 * the cookie reply that hands a sender its cookie bound to its source address.
 *
 * CookieChecker: our side, validating messages addressed to us.
 * CookieGenerator: per peer, stamping messages we send and taking their cookies.
 */
import { randomBytes } from 'node:crypto';
import { mac } from '../crypto/blake2s.js';
import { xopen, xseal } from '../crypto/aead.js';
import { COOKIE_REFRESH_TIME, COOKIE_SECRET_MAX_AGE } from './constants.js';
import { decodeCookieReply, encodeCookieReply, macOffsets } from '../wire/wireguard.js';
import type { Clock } from './clock.js';

function equal16(a: Uint8Array, aOff: number, b: Uint8Array): boolean {
  let d = 0;
  for (let i = 0; i < 16; i++) d |= a[aOff + i]! ^ b[i]!;
  return d === 0;
}

export class CookieChecker {
  private secret = new Uint8Array(32);
  private secretSet = -Infinity;

  constructor(
    private readonly mac1Key: Uint8Array,
    private readonly cookieKey: Uint8Array,
    private readonly clock: Clock,
  ) {}

  /** MAC1 over everything before it, keyed by HASH(LABEL_MAC1 || our public key). */
  checkMac1(msg: Uint8Array): boolean {
    const { mac1 } = macOffsets(msg.length);
    return equal16(msg, mac1, mac(this.mac1Key, msg.subarray(0, mac1)));
  }

  private cookieFor(src: Uint8Array): Uint8Array {
    const now = this.clock.now();
    if (now - this.secretSet > COOKIE_SECRET_MAX_AGE) {
      this.secret = new Uint8Array(randomBytes(32));
      this.secretSet = now;
    }
    return mac(this.secret, src);
  }

  /** MAC2 must be keyed by the cookie we would hand to this source address. */
  checkMac2(msg: Uint8Array, src: Uint8Array): boolean {
    const { mac2 } = macOffsets(msg.length);
    return equal16(msg, mac2, mac(this.cookieFor(src), msg.subarray(0, mac2)));
  }

  /** A cookie reply to the sender of `msg` (whose sender index is at bytes 4..8). */
  createReply(msg: Uint8Array, src: Uint8Array): Uint8Array {
    const { mac1 } = macOffsets(msg.length);
    const receiver = (msg[4]! | (msg[5]! << 8) | (msg[6]! << 16) | (msg[7]! << 24)) >>> 0;
    const nonce = new Uint8Array(randomBytes(24));
    const encCookie = xseal(this.cookieKey, nonce, this.cookieFor(src), msg.subarray(mac1, mac1 + 16));
    return encodeCookieReply({ receiver, nonce, encCookie });
  }
}

export class CookieGenerator {
  private cookie: Uint8Array | null = null;
  private cookieSet = -Infinity;
  private lastMac1: Uint8Array | null = null;

  constructor(
    private readonly mac1Key: Uint8Array,
    private readonly cookieKey: Uint8Array,
    private readonly clock: Clock,
  ) {}

  /** Fill MAC1 (always) and MAC2 (when we hold a fresh cookie) in place. */
  stamp(msg: Uint8Array): void {
    const { mac1, mac2 } = macOffsets(msg.length);
    const m1 = mac(this.mac1Key, msg.subarray(0, mac1));
    msg.set(m1, mac1);
    this.lastMac1 = m1;
    if (this.cookie && this.clock.now() - this.cookieSet <= COOKIE_REFRESH_TIME) {
      msg.set(mac(this.cookie, msg.subarray(0, mac2)), mac2);
    } else {
      msg.fill(0, mac2, mac2 + 16);
    }
  }

  /** Take a cookie reply answering our last stamped message; false if it does not authenticate. */
  consumeReply(reply: Uint8Array): boolean {
    const r = decodeCookieReply(reply);
    if (!r || !this.lastMac1) return false;
    const cookie = xopen(this.cookieKey, r.nonce, r.encCookie, this.lastMac1);
    if (!cookie || cookie.length !== 16) return false;
    this.cookie = cookie;
    this.cookieSet = this.clock.now();
    this.lastMac1 = null;
    return true;
  }

  get hasCookie(): boolean {
    return this.cookie !== null && this.clock.now() - this.cookieSet <= COOKIE_REFRESH_TIME;
  }
}
