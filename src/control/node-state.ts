/**
 * A node's persistent state in its state directory (/var/lib/warren): the
 * machine key (identity, long-lived), the node key (WireGuard, rotatable), the
 * disco key, the preferences `warren up` set, the registration the server
 * granted, and the last netmap (so the tunnel comes back from it while control
 * is unreachable). Every write is atomic and mode 0600; the directory is 0700.
 */
import { mkdirSync, readFileSync, rmSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../util/atomic-write.js';
import { generatePrivateKey, publicKeyOf } from '../crypto/x25519.js';

export interface KeyPair {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
}

export interface Prefs {
  /** Control server URLs, tried in turn. */
  loginServers: string[];
  /** SHA-256 pin of the control server's self-signed certificate, if any. */
  fingerprint: string | null;
  hostname: string;
  /** `warren up` sets true, `warren down` false. */
  wantRunning: boolean;
  /** Operator-set endpoints to advertise (`--static-endpoint`); absent in older prefs files. */
  staticEndpoints?: string[];
  /** `warren up --no-port-mapping`: never ask the router for a port (UPnP, NAT-PMP, PCP). Absent = mapping on. */
  noPortMapping?: boolean;
}

export interface Registration {
  nodeId: number;
  name: string;
  addresses: string[];
  keyExpiry: number | null;
  tags: string[];
  /** The login server the registration belongs to. */
  server: string;
}

export interface CachedNetmap {
  version: number;
  netmap: unknown;
}

const b64 = (k: Uint8Array): string => Buffer.from(k).toString('base64');

export class NodeState {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
  }

  private path(name: string): string {
    return join(this.dir, name);
  }

  private readText(name: string): string | null {
    try {
      return readFileSync(this.path(name), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  private readJson<T>(name: string): T | null {
    const t = this.readText(name);
    if (t === null) return null;
    try {
      return JSON.parse(t) as T;
    } catch {
      throw new Error(`${this.path(name)} is corrupt (not JSON); remove it to start over`);
    }
  }

  private writeJson(name: string, v: unknown): void {
    writeFileAtomicSync(this.path(name), JSON.stringify(v, null, 2) + '\n');
  }

  /** Load a key, creating it on first use. */
  private key(name: string, create: boolean): KeyPair | null {
    const t = this.readText(name);
    if (t !== null) {
      const priv = new Uint8Array(Buffer.from(t.trim(), 'base64'));
      if (priv.length !== 32) throw new Error(`${this.path(name)} does not hold a 32-byte base64 key`);
      return { privateKey: priv, publicKey: publicKeyOf(priv) };
    }
    if (!create) return null;
    const priv = generatePrivateKey();
    writeFileAtomicSync(this.path(name), b64(priv) + '\n');
    return { privateKey: priv, publicKey: publicKeyOf(priv) };
  }

  machineKey(): KeyPair {
    return this.key('machine-key', true)!;
  }

  nodeKey(): KeyPair {
    return this.key('node-key', true)!;
  }

  discoKey(): KeyPair {
    return this.key('disco-key', true)!;
  }

  /** Replace the node key (rotation); returns the new pair. */
  rotateNodeKey(): KeyPair {
    const priv = generatePrivateKey();
    writeFileAtomicSync(this.path('node-key.next'), b64(priv) + '\n');
    return { privateKey: priv, publicKey: publicKeyOf(priv) };
  }

  /** Commit a rotation once the server accepted the new key. */
  commitRotation(): void {
    const t = this.readText('node-key.next');
    if (t !== null) writeFileAtomicSync(this.path('node-key'), t);
    rmSync(this.path('node-key.next'), { force: true });
  }

  prefs(): Prefs | null {
    return this.readJson<Prefs>('prefs.json');
  }

  setPrefs(p: Prefs): void {
    this.writeJson('prefs.json', p);
  }

  registration(): Registration | null {
    return this.readJson<Registration>('registration.json');
  }

  setRegistration(r: Registration | null): void {
    if (r) this.writeJson('registration.json', r);
    else rmSync(this.path('registration.json'), { force: true });
  }

  netmap(): CachedNetmap | null {
    return this.readJson<CachedNetmap>('netmap.json');
  }

  setNetmap(n: CachedNetmap | null): void {
    if (n) this.writeJson('netmap.json', n);
    else rmSync(this.path('netmap.json'), { force: true });
  }

  /** `warren logout`: forget the registration and the node key (the machine key stays: it is the box's identity). */
  logout(): void {
    for (const f of ['registration.json', 'netmap.json', 'node-key', 'node-key.next', 'prefs.json', 'pinned-cert.pem']) {
      rmSync(this.path(f), { force: true });
    }
  }

  pinnedCertPath(): string {
    return this.path('pinned-cert.pem');
  }
}
