/**
 * A peer's state: identity, endpoint, sessions (previous/current/next keypair,
 * in-flight handshake), staged packets, counters and the whitepaper's timers
 * as deadlines (wireguard-go timers.go semantics, but on an injected clock:
 * the device's tick() fires what is due). 0 means "timer not pending".
 */
import type { PeerIdentity, HandshakeState } from './noise.js';
import type { Keypair } from './keypair.js';
import { CookieGenerator } from './cookie.js';
import { REKEY_TIMEOUT_JITTER_MAX, type TimerProfile } from './constants.js';
import type { Clock } from './clock.js';
import { TAI64N_LEN } from '../crypto/tai64n.js';

export interface InFlightHandshake {
  localIndex: number;
  state: HandshakeState;
}

export class Peer {
  endpoint: Uint8Array | null = null;
  /** Endpoint from configuration; roaming may move `endpoint` away from it. */
  configuredEndpoint: string | null = null;
  persistentKeepalive = 0; // seconds
  /** Authenticated packets move `endpoint` (stock WireGuard); off when path choice owns it (mesh mode). */
  roaming = true;
  /** Last time (monotonic ms) the device reported traffic for this peer (see Device.onActivity). */
  lastActivityReport = -Infinity;
  allowedIps: string[] = [];

  current: Keypair | null = null;
  previous: Keypair | null = null;
  next: Keypair | null = null;
  handshake: InFlightHandshake | null = null;

  /** Greatest TAI64N seen in an initiation from this peer (replay protection). */
  lastTimestamp = new Uint8Array(TAI64N_LEN);
  lastInitiationConsumed = -Infinity;
  lastSentHandshake = -Infinity;
  /** Wall clock (unix ms) of the latest completed handshake; 0 = never. */
  lastHandshakeWallMs = 0;
  handshakeAttempts = 0;
  sentLastMinuteHandshake = false;
  needAnotherKeepalive = false;

  rxBytes = 0;
  txBytes = 0;
  staged: Uint8Array[] = [];
  readonly cookies: CookieGenerator;

  // Timer deadlines (monotonic ms); 0 = not pending.
  tRetransmitHandshake = 0;
  tSendKeepalive = 0;
  tNewHandshake = 0;
  tZeroKeyMaterial = 0;
  tPersistentKeepalive = 0;

  constructor(
    public identity: PeerIdentity,
    readonly keyB64: string,
    private readonly clock: Clock,
    private readonly timers: TimerProfile,
    /** Told of every new deadline so the I/O loop can sleep exactly until the earliest. */
    private readonly noteDeadline: (t: number) => void,
  ) {
    this.cookies = new CookieGenerator(identity.mac1Key, identity.cookieKey, clock);
  }

  private set(t: number): number {
    this.noteDeadline(t);
    return t;
  }

  private jitter(): number {
    return Math.floor(Math.random() * REKEY_TIMEOUT_JITTER_MAX);
  }

  /** After an authenticated data packet is sent. */
  timersDataSent(): void {
    if (this.tNewHandshake === 0) {
      this.tNewHandshake = this.set(this.clock.now() + this.timers.keepaliveTimeout + this.timers.rekeyTimeout + this.jitter());
    }
  }

  /** After an authenticated data packet is received. */
  timersDataReceived(): void {
    if (this.tSendKeepalive === 0) this.tSendKeepalive = this.set(this.clock.now() + this.timers.keepaliveTimeout);
    else this.needAnotherKeepalive = true;
  }

  /** After any authenticated packet (keepalive, data, handshake) is sent. */
  timersAnyAuthenticatedPacketSent(): void {
    this.tSendKeepalive = 0;
  }

  /** After any authenticated packet is received. */
  timersAnyAuthenticatedPacketReceived(): void {
    this.tNewHandshake = 0;
  }

  /** After a handshake initiation is sent. */
  timersHandshakeInitiated(): void {
    this.tRetransmitHandshake = this.set(this.clock.now() + this.timers.rekeyTimeout + this.jitter());
  }

  /** After a response is consumed, or key confirmation arrives with the first data. */
  timersHandshakeComplete(wallMs: number): void {
    this.tRetransmitHandshake = 0;
    this.handshakeAttempts = 0;
    this.sentLastMinuteHandshake = false;
    this.lastHandshakeWallMs = wallMs;
  }

  /** After an ephemeral key is created (response sent or consumed). */
  timersSessionDerived(): void {
    this.tZeroKeyMaterial = this.set(this.clock.now() + this.timers.rejectAfterTime * 3);
  }

  /** Before any authenticated packet is sent, or after one is received. */
  timersAnyAuthenticatedPacketTraversal(): void {
    if (this.persistentKeepalive > 0) {
      this.tPersistentKeepalive = this.set(this.clock.now() + this.persistentKeepalive * 1000);
    }
  }

  /** Discard every session and handshake (keys zeroed); returns the indices to free. */
  zeroAll(): number[] {
    const freed: number[] = [];
    for (const kp of [this.previous, this.current, this.next]) {
      if (kp) {
        kp.zero();
        freed.push(kp.localIndex);
      }
    }
    if (this.handshake) {
      this.handshake.state.chainKey.fill(0);
      this.handshake.state.hash.fill(0);
      this.handshake.state.localEphemeral?.fill(0);
      freed.push(this.handshake.localIndex);
    }
    this.previous = this.current = this.next = null;
    this.handshake = null;
    this.tZeroKeyMaterial = 0;
    return freed;
  }
}
