/**
 * Stock WireGuard for the lab: keys, and wireguard-go instances configured
 * with wireguard-tools' `wg`, each inside a lab namespace.
 *
 * Owns: key generation (node:crypto X25519, no subprocess), starting
 * `wireguard-go -f IFNAME` under a Lab, configuring it (keys via 0600 temp
 * files, peers, addresses, MTU, routes for allowed IPs), reading `wg show
 * dump`, and stopping it. wireguard-go's control socket
 * /var/run/wireguard/IFNAME.sock is shared by every namespace on the machine,
 * so IFNAME must be globally unique: use `lab.uniqueIfname()`.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './lab.js';
import type { Lab, LabProc } from './lab.js';

/** Where wireguard-go puts its UAPI control sockets (one directory for the whole machine). */
export const WG_SOCKET_DIR = '/var/run/wireguard';

export interface KeyPair {
  /** base64, 32 bytes, as `wg` prints it */
  privateKey: string;
  publicKey: string;
}

/** A fresh X25519 key pair in WireGuard's base64 encoding. */
export function genKeyPair(): KeyPair {
  const jwk = generateKeyPairSync('x25519').privateKey.export({ format: 'jwk' });
  if (!jwk.d || !jwk.x) throw new Error('x25519 JWK export lacks d/x');
  return {
    privateKey: Buffer.from(jwk.d, 'base64url').toString('base64'),
    publicKey: Buffer.from(jwk.x, 'base64url').toString('base64'),
  };
}

/** PKCS#8 DER header of an X25519 private key; the 32 raw bytes follow. */
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

/** The public key of a base64 WireGuard private key (what `wg pubkey` prints). */
export function publicKeyOf(privateKey: string): string {
  const raw = Buffer.from(privateKey, 'base64');
  if (raw.length !== 32) throw new Error('a WireGuard private key is 32 bytes of base64');
  const key = createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, raw]), format: 'der', type: 'pkcs8' });
  const { x } = createPublicKey(key).export({ format: 'jwk' });
  if (!x) throw new Error('x25519 JWK export lacks x');
  return Buffer.from(x, 'base64url').toString('base64');
}

/** A fresh 32-byte preshared key, base64. */
export function genPsk(): string {
  return randomBytes(32).toString('base64');
}

export interface WgPeerConfig {
  publicKey: string;
  presharedKey?: string;
  allowedIps: string[];
  /** `ip:port` or `[ipv6]:port` */
  endpoint?: string;
  persistentKeepalive?: number;
}

export interface WgGoOptions {
  /** Globally unique, ≤ 15 chars (see Lab.uniqueIfname). */
  ifname: string;
  privateKey: string;
  listenPort: number;
  /** CIDRs for the tunnel interface, e.g. '10.77.0.1/24', 'fd7a:77::1/64'. */
  addresses: string[];
  /** Default 1420. */
  mtu?: number;
  peers: WgPeerConfig[];
}

export interface WgPeerStatus {
  publicKey: string;
  hasPresharedKey: boolean;
  /** null until the peer has an endpoint */
  endpoint: string | null;
  allowedIps: string[];
  /** Unix seconds of the last handshake; 0 = never. */
  latestHandshake: number;
  rx: number;
  tx: number;
  /** Seconds; 0 = off. */
  persistentKeepalive: number;
}

export interface WgShow {
  publicKey: string;
  listenPort: number;
  peers: WgPeerStatus[];
}

/** Parse `wg show IFNAME dump` (tab-separated: one interface line, then one line per peer). */
export function parseWgDump(dump: string): WgShow {
  const lines = dump.split('\n').filter((l) => l.length > 0);
  const head = lines.shift()?.split('\t') ?? [];
  if (head.length < 4) throw new Error(`unexpected wg dump interface line: ${JSON.stringify(head.join('\t'))}`);
  const none = (v: string | undefined): string | null => (v === undefined || v === '(none)' ? null : v);
  return {
    publicKey: head[1] ?? '',
    listenPort: Number(head[2]),
    peers: lines.map((line) => {
      const f = line.split('\t');
      if (f.length < 8) throw new Error(`unexpected wg dump peer line: ${JSON.stringify(line)}`);
      return {
        publicKey: f[0] ?? '',
        hasPresharedKey: none(f[1]) !== null,
        endpoint: none(f[2]),
        allowedIps: none(f[3])?.split(',') ?? [],
        latestHandshake: Number(f[4]),
        rx: Number(f[5]),
        tx: Number(f[6]),
        persistentKeepalive: f[7] === 'off' ? 0 : Number(f[7]),
      };
    }),
  };
}

/** A running wireguard-go inside a lab namespace. */
export class WgGo {
  constructor(
    readonly lab: Lab,
    readonly ns: string,
    readonly ifname: string,
    readonly proc: LabProc,
    readonly publicKey: string,
    readonly listenPort: number,
  ) {}

  get socketPath(): string {
    return `${WG_SOCKET_DIR}/${this.ifname}.sock`;
  }

  /** `wg show IFNAME dump`, parsed. */
  async show(): Promise<WgShow> {
    const { stdout } = await this.lab.sh(this.ns, ['wg', 'show', this.ifname, 'dump']);
    return parseWgDump(stdout);
  }

  /** Add or update a peer and route its allowed IPs into the tunnel. */
  async setPeer(peer: WgPeerConfig): Promise<void> {
    await withKeyDir(this.lab, async (dir) => {
      await this.lab.sh(this.ns, ['wg', 'set', this.ifname, ...peerArgs(peer, dir, 0)]);
    });
    await this.routeAllowedIps(peer.allowedIps);
  }

  async removePeer(publicKey: string): Promise<void> {
    await this.lab.sh(this.ns, ['wg', 'set', this.ifname, 'peer', publicKey, 'remove']);
  }

  /** SIGTERM (wireguard-go then removes its socket and TUN); SIGKILL if it lingers. */
  async stop(): Promise<void> {
    await this.proc.stop('SIGTERM');
    // After a SIGKILL the socket file stays behind; the name is ours, remove it.
    rmSync(this.socketPath, { force: true });
  }

  /** `ip route replace` each allowed IP via the tunnel interface (replace: it may equal the connected prefix). */
  async routeAllowedIps(allowedIps: string[]): Promise<void> {
    for (const cidr of allowedIps) await this.lab.route(this.ns, 'replace', cidr, 'dev', this.ifname);
  }
}

/** `peer PK [preshared-key FILE] allowed-ips ... [endpoint E] [persistent-keepalive N]` */
function peerArgs(peer: WgPeerConfig, keyDir: string, index: number): string[] {
  const args = ['peer', peer.publicKey];
  if (peer.presharedKey !== undefined) {
    const file = join(keyDir, `psk${index}`);
    writeFileSync(file, `${peer.presharedKey}\n`, { mode: 0o600 });
    args.push('preshared-key', file);
  }
  args.push('allowed-ips', peer.allowedIps.join(','));
  if (peer.endpoint !== undefined) args.push('endpoint', peer.endpoint);
  if (peer.persistentKeepalive !== undefined) args.push('persistent-keepalive', String(peer.persistentKeepalive));
  return args;
}

/** A 0700 temp dir for key files, removed as soon as `wg` has read them (and at lab cleanup, should we crash). */
async function withKeyDir<T>(lab: Lab, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), `${lab.prefix}-wgkeys-`));
  lab.trackPath(dir);
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Start `wireguard-go -f IFNAME` in `ns` and configure it. Rejects with the
 * daemon's output if it exits before its control socket appears.
 */
export async function startWireguardGo(lab: Lab, ns: string, opts: WgGoOptions): Promise<WgGo> {
  const { ifname } = opts;
  if (!/^[A-Za-z0-9_=+.-]{1,15}$/.test(ifname)) throw new Error(`bad wireguard-go interface name (≤ 15 chars, no '/'): ${ifname}`);
  const socket = `${WG_SOCKET_DIR}/${ifname}.sock`;
  // The socket directory is machine-wide: never take over a name someone else holds.
  if (existsSync(socket)) throw new Error(`${socket} already exists: interface name ${ifname} is in use by another wireguard-go`);
  lab.trackPath(socket);

  const proc = lab.spawn(ns, ['wireguard-go', '-f', ifname], {
    name: `wireguard-go:${ifname}`,
    env: { WG_PROCESS_FOREGROUND: '1', LOG_LEVEL: 'verbose' },
  });
  await waitFor(`wireguard-go ${ifname} control socket ${socket}`, () => existsSync(socket), {
    timeoutMs: 10_000,
    intervalMs: 20,
    signal: proc.exitSignal,
  });

  await withKeyDir(lab, async (dir) => {
    const keyFile = join(dir, 'private');
    writeFileSync(keyFile, `${opts.privateKey}\n`, { mode: 0o600 });
    const args = ['wg', 'set', ifname, 'private-key', keyFile, 'listen-port', String(opts.listenPort)];
    opts.peers.forEach((peer, i) => args.push(...peerArgs(peer, dir, i)));
    await lab.sh(ns, args);
  });
  for (const cidr of opts.addresses) await lab.addr(ns, ifname, cidr);
  await lab.sh(ns, ['ip', 'link', 'set', ifname, 'mtu', String(opts.mtu ?? 1420), 'up']);

  const wg = new WgGo(lab, ns, ifname, proc, publicKeyOf(opts.privateKey), opts.listenPort);
  for (const peer of opts.peers) await wg.routeAllowedIps(peer.allowedIps);
  return wg;
}

/** The installed wireguard-go package version (read from the dpkg database; no process needed). */
export async function wireguardGoVersion(): Promise<string> {
  const status = await readFile('/var/lib/dpkg/status', 'utf8');
  for (const stanza of status.split(/\n\n+/)) {
    if (!/^Package: wireguard-go$/m.test(stanza)) continue;
    const version = /^Version: (.+)$/m.exec(stanza)?.[1];
    if (version) return version;
  }
  throw new Error('wireguard-go is not installed (no dpkg status entry)');
}
