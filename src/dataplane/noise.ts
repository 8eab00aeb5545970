/**
 * The Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s handshake as WireGuard specifies it
 * (whitepaper §5.4.2–5.4.5): pure functions from keys and messages to new
 * chaining state and transport keys. No timers, no I/O, no peer table.
 */
import { aead, blake2s, dh, generatePrivateKey, publicKeyOf, privateKeyObject, publicKeyObject } from './noise-crypto.js';
import { encodeInitiation, encodeResponse, type Initiation, type Response } from '../wire/wireguard.js';
import type { KeyObject } from 'node:crypto';

const enc = new TextEncoder();
export const CONSTRUCTION = enc.encode('Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s');
export const IDENTIFIER = enc.encode('WireGuard v1 zx2c4 Jason@zx2c4.com');
export const LABEL_MAC1 = enc.encode('mac1----');
export const LABEL_COOKIE = enc.encode('cookie--');

const INITIAL_CHAIN_KEY = blake2s.hash(CONSTRUCTION);
const INITIAL_HASH = blake2s.hash(INITIAL_CHAIN_KEY, IDENTIFIER);
const ZERO32 = new Uint8Array(32);
const EMPTY = new Uint8Array(0);

/** Our own static identity with everything derivable from it precomputed. */
export interface StaticIdentity {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
  privateKeyObject: KeyObject;
  /** HASH(INITIAL_HASH || our public key): the responder's starting hash. */
  responderHash: Uint8Array;
  /** Keys for MACs on messages addressed to us, and for cookies we send. */
  mac1Key: Uint8Array;
  cookieKey: Uint8Array;
}

export function staticIdentity(privateKey: Uint8Array): StaticIdentity {
  const publicKey = publicKeyOf(privateKey);
  return {
    privateKey,
    publicKey,
    privateKeyObject: privateKeyObject(privateKey),
    responderHash: blake2s.hash(INITIAL_HASH, publicKey),
    mac1Key: blake2s.hash(LABEL_MAC1, publicKey),
    cookieKey: blake2s.hash(LABEL_COOKIE, publicKey),
  };
}

/** A remote peer's static key with its precomputations. */
export interface PeerIdentity {
  publicKey: Uint8Array;
  publicKeyObject: KeyObject;
  presharedKey: Uint8Array;
  /** DH(our static, their static), or null when it is all zeros (then handshakes are refused). */
  staticStatic: Uint8Array | null;
  /** HASH(INITIAL_HASH || their public key): the initiator's starting hash. */
  initiatorHash: Uint8Array;
  /** Keys for MACs on messages we send to them, and for cookies they send us. */
  mac1Key: Uint8Array;
  cookieKey: Uint8Array;
}

export function peerIdentity(self: StaticIdentity, publicKey: Uint8Array, presharedKey?: Uint8Array): PeerIdentity {
  let staticStatic: Uint8Array | null = null;
  try {
    staticStatic = dh(self.privateKeyObject, publicKey);
  } catch {
    staticStatic = null;
  }
  return {
    publicKey,
    publicKeyObject: publicKeyObject(publicKey),
    presharedKey: presharedKey ?? ZERO32,
    staticStatic,
    initiatorHash: blake2s.hash(INITIAL_HASH, publicKey),
    mac1Key: blake2s.hash(LABEL_MAC1, publicKey),
    cookieKey: blake2s.hash(LABEL_COOKIE, publicKey),
  };
}

/** Chaining state kept between the two messages of a handshake. */
export interface HandshakeState {
  chainKey: Uint8Array;
  hash: Uint8Array;
  localEphemeral: Uint8Array | null;
  remoteEphemeral: Uint8Array | null;
}

export interface TransportKeys {
  sendKey: Uint8Array;
  recvKey: Uint8Array;
}

function mixHash(h: Uint8Array, data: Uint8Array): Uint8Array {
  return blake2s.hash(h, data);
}

/** Build an initiation (MACs left zero: the cookie layer fills them). */
export function createInitiation(
  self: StaticIdentity, peer: PeerIdentity, sender: number, timestamp: Uint8Array,
  ephemeralPrivate: Uint8Array = generatePrivateKey(),
): { message: Uint8Array; state: HandshakeState } {
  if (!peer.staticStatic) throw new Error('peer public key is invalid (low order)');
  let h = peer.initiatorHash;
  let ck = INITIAL_CHAIN_KEY;
  const ephemeral = publicKeyOf(ephemeralPrivate);
  [ck] = blake2s.kdf(1, ck, ephemeral) as [Uint8Array];
  h = mixHash(h, ephemeral);
  let k: Uint8Array;
  [ck, k] = blake2s.kdf(2, ck, dh(ephemeralPrivate, peer.publicKeyObject)) as [Uint8Array, Uint8Array];
  const encStatic = aead.seal(k, 0, self.publicKey, h);
  h = mixHash(h, encStatic);
  [ck, k] = blake2s.kdf(2, ck, peer.staticStatic) as [Uint8Array, Uint8Array];
  const encTimestamp = aead.seal(k, 0, timestamp, h);
  h = mixHash(h, encTimestamp);
  const message = encodeInitiation({ sender, ephemeral, encStatic, encTimestamp });
  return { message, state: { chainKey: ck, hash: h, localEphemeral: ephemeralPrivate, remoteEphemeral: null } };
}

export type ConsumeInitiationResult =
  | { ok: true; peerKey: Uint8Array; timestamp: Uint8Array; state: HandshakeState }
  | { ok: false; reason: 'bad_ephemeral' | 'decrypt_static' | 'decrypt_timestamp' };

/**
 * Decrypt an initiation addressed to us. Returns the initiator's static key so
 * the caller can look the peer up (and verify the timestamp against it).
 * `staticStaticFor` returns the precomputed DH for a known peer key, or null.
 */
export function consumeInitiation(
  self: StaticIdentity, msg: Initiation, staticStaticFor: (peerKey: Uint8Array) => Uint8Array | null,
): ConsumeInitiationResult | { ok: false; reason: 'unknown_peer'; peerKey: Uint8Array } {
  let h = self.responderHash;
  let ck = INITIAL_CHAIN_KEY;
  const ephemeral = new Uint8Array(msg.ephemeral);
  [ck] = blake2s.kdf(1, ck, ephemeral) as [Uint8Array];
  h = mixHash(h, ephemeral);
  let es: Uint8Array;
  try {
    es = dh(self.privateKeyObject, ephemeral);
  } catch {
    return { ok: false, reason: 'bad_ephemeral' };
  }
  let k: Uint8Array;
  [ck, k] = blake2s.kdf(2, ck, es) as [Uint8Array, Uint8Array];
  const peerKey = aead.open(k, 0, msg.encStatic, h);
  if (!peerKey) return { ok: false, reason: 'decrypt_static' };
  h = mixHash(h, msg.encStatic);
  const ss = staticStaticFor(peerKey);
  if (!ss) return { ok: false, reason: 'unknown_peer', peerKey };
  [ck, k] = blake2s.kdf(2, ck, ss) as [Uint8Array, Uint8Array];
  const timestamp = aead.open(k, 0, msg.encTimestamp, h);
  if (!timestamp) return { ok: false, reason: 'decrypt_timestamp' };
  h = mixHash(h, msg.encTimestamp);
  return { ok: true, peerKey, timestamp, state: { chainKey: ck, hash: h, localEphemeral: null, remoteEphemeral: ephemeral } };
}

/** Build the response to a consumed initiation and derive the responder's transport keys. */
export function createResponse(
  peer: PeerIdentity, state: HandshakeState, sender: number, receiver: number,
  ephemeralPrivate: Uint8Array = generatePrivateKey(),
): { message: Uint8Array; keys: TransportKeys } {
  if (!state.remoteEphemeral) throw new Error('handshake state has no remote ephemeral');
  let h = state.hash;
  let ck = state.chainKey;
  const ephemeral = publicKeyOf(ephemeralPrivate);
  [ck] = blake2s.kdf(1, ck, ephemeral) as [Uint8Array];
  h = mixHash(h, ephemeral);
  const eprivObj = privateKeyObject(ephemeralPrivate);
  [ck] = blake2s.kdf(1, ck, dh(eprivObj, state.remoteEphemeral)) as [Uint8Array];
  [ck] = blake2s.kdf(1, ck, dh(eprivObj, peer.publicKeyObject)) as [Uint8Array];
  const [ck3, t, k] = blake2s.kdf(3, ck, peer.presharedKey) as [Uint8Array, Uint8Array, Uint8Array];
  ck = ck3;
  h = mixHash(h, t);
  const encEmpty = aead.seal(k, 0, EMPTY, h);
  h = mixHash(h, encEmpty);
  const message = encodeResponse({ sender, receiver, ephemeral, encEmpty });
  const [recvKey, sendKey] = blake2s.kdf(2, ck, EMPTY) as [Uint8Array, Uint8Array];
  return { message, keys: { sendKey, recvKey } };
}

/** Consume a response to our initiation; null if it does not authenticate. */
export function consumeResponse(
  self: StaticIdentity, peer: PeerIdentity, state: HandshakeState, msg: Response,
): TransportKeys | null {
  if (!state.localEphemeral) return null;
  let h = state.hash;
  let ck = state.chainKey;
  const ephemeral = new Uint8Array(msg.ephemeral);
  [ck] = blake2s.kdf(1, ck, ephemeral) as [Uint8Array];
  h = mixHash(h, ephemeral);
  try {
    [ck] = blake2s.kdf(1, ck, dh(state.localEphemeral, ephemeral)) as [Uint8Array];
    [ck] = blake2s.kdf(1, ck, dh(self.privateKeyObject, ephemeral)) as [Uint8Array];
  } catch {
    return null;
  }
  const [ck3, t, k] = blake2s.kdf(3, ck, peer.presharedKey) as [Uint8Array, Uint8Array, Uint8Array];
  ck = ck3;
  h = mixHash(h, t);
  if (!aead.open(k, 0, msg.encEmpty, h)) return null;
  const [sendKey, recvKey] = blake2s.kdf(2, ck, EMPTY) as [Uint8Array, Uint8Array];
  return { sendKey, recvKey };
}
