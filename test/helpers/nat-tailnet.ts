/**
 * A tailnet across the NAT lab (nat-lab.ts): warren-control, warren-relay and
 * its STUN server (on two addresses, for mapping-behaviour tests) in the
 * "internet" namespace, and warrend nodes on the LAN hosts of NATed sites.
 * Certificates are made up front so the relay map can carry the relay's pin
 * and the relay can pin the control server; all processes use the test timer
 * profile (WARREN_TIMERS=test: relay keepalive 2 s, path timers of
 * src/nat/path-timers.ts).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createNatLab, type NatLab, type Site, type SiteOptions } from './nat-lab.js';
import { startControl, startNode, useControl, type ControlHandle, type NodeHandle } from './mesh.js';
import { WARREND } from './warrend.js';
import { createSelfSigned } from '../../src/server/tls-cert.js';
import type { LabProc } from './lab.js';
import type { RelayMap } from '../../src/wire/control.js';

export const WARREN_RELAY = WARREND.replace(/warrend\.js$/, 'warren-relay.js');
export const TEST_ENV = { WARREN_TEST_MODE: '1', WARREN_LOG: 'debug', WARREN_TIMERS: 'test' };
export const RELAY_PORT = 443;
export const REGION = { id: 1, code: 'lab' };

export interface RelayHandle {
  url: string;
  fingerprint: string;
  proc: LabProc;
  restart(): Promise<void>;
}

export interface NatTailnet {
  net: NatLab;
  control: ControlHandle;
  relay: RelayHandle;
  key: string;
  /** A site plus a warrend on its host, brought up with the reusable key. */
  node(name: string, site: SiteOptions, opts?: { up?: boolean; upArgs?: string[] }): Promise<{ site: Site; node: NodeHandle }>;
  close(): Promise<void>;
}

async function certFiles(dir: string, name: string, ip: string): Promise<{ cert: string; key: string; fingerprint: string }> {
  const c = await createSelfSigned({ commonName: ip });
  const cert = join(dir, `${name}-cert.pem`);
  const key = join(dir, `${name}-key.pem`);
  writeFileSync(cert, c.certPem, { mode: 0o600 });
  writeFileSync(key, c.keyPem, { mode: 0o600 });
  return { cert, key, fingerprint: c.fingerprint };
}

/**
 * With `coturn`, the relay map's STUN servers are a stock coturn (STUN only,
 * on two more addresses) instead of warren-relay's own STUN server.
 */
export async function createNatTailnet(tag: string, o: { relayArgs?: string[]; coturn?: boolean; env?: Record<string, string> } = {}): Promise<NatTailnet> {
  const env = o.env ?? TEST_ENV;
  const net = await createNatLab({ serverIps: o.coturn ? 4 : 2, tag });
  const lab = net.lab;
  try {
    const [ip1, ip2] = net.serverIps as [string, string];
    const dir = mkdtempSync(join(tmpdir(), 'warren-natnet-'));
    lab.trackPath(dir);
    const ctlCert = await certFiles(dir, 'control', ip1);
    const relayCert = await certFiles(dir, 'relay', ip1);
    const secret = join(dir, 'relay-secret');
    writeFileSync(secret, randomBytes(32).toString('hex'), { mode: 0o600 });
    const stunIps = o.coturn ? net.serverIps.slice(2, 4) : [ip1, ip2];
    if (o.coturn) {
      const coturn = lab.spawn(net.internet, ['turnserver', '-n', '-S', '-L', stunIps[0]!, '-L', stunIps[1]!, '-p', '3478', '--alt-listening-port=3479',
        '--no-cli', '--no-tls', '--no-dtls', '--no-tcp', '-z', '-r', 'lab', '--db', join(dir, 'turndb'), '--pidfile', join(dir, 'turnserver.pid'),
        '--log-file', 'stdout', '--simple-log'], { name: 'coturn' });
      await coturn.waitForOutput(/listener opened on|Total (General|UDP) servers/i, 20_000);
    }
    const relayMap: RelayMap = {
      regions: [{ id: REGION.id, code: REGION.code, name: 'Lab relay', nodes: [{ name: 'relay1', url: `https://${ip1}:${RELAY_PORT}`, fingerprint: relayCert.fingerprint, stun: stunIps.map((ip) => `${ip}:3478`) }] }],
    };
    const mapFile = join(dir, 'relay-map.json');
    writeFileSync(mapFile, JSON.stringify(relayMap), { mode: 0o600 });
    const control = await startControl(lab, net.internet, ip1, {
      env,
      args: ['--tls-cert', ctlCert.cert, '--tls-key', ctlCert.key, '--relay-map', mapFile, '--relay-secret-file', secret],
    });
    const startRelay = async (): Promise<LabProc> => {
      const stun = o.coturn ? [] : ['--stun-listen', `${ip1}:3478`, '--stun-listen', `${ip2}:3478`];
      const p = lab.spawn(net.internet, ['node', WARREN_RELAY, '--listen', `${ip1}:${RELAY_PORT}`, ...stun,
        '--tls-cert', relayCert.cert, '--tls-key', relayCert.key, '--region-code', REGION.code,
        '--control', control.url, '--control-fingerprint', ctlCert.fingerprint, '--control-secret-file', secret, ...(o.relayArgs ?? [])],
      { name: 'warren-relay', env: env['WARREN_TEST_MODE'] === '1' ? { ...env, WARREN_RELAY_KEEPALIVE: '2s' } : env });
      await p.waitForOutput(/ready|listening/i, 20_000);
      return p;
    };
    const relay: RelayHandle = {
      url: `https://${ip1}:${RELAY_PORT}`, fingerprint: relayCert.fingerprint, proc: await startRelay(),
      restart: async () => {
        await relay.proc.stop('SIGTERM');
        relay.proc = await startRelay();
      },
    };
    useControl(control);
    const key = await control.authkey(['--reusable']);
    return {
      net, control, relay, key,
      async node(name, siteOpts, opts = {}) {
        const site = await net.addSite(name, siteOpts);
        const node = await startNode(lab, site.host, site.lanIp, name, { env });
        if (opts.up !== false) {
          const r = await node.up(key, opts.upArgs ?? []);
          if (r.code !== 0) throw new Error(`warren up (${name}): ${r.stderr}${r.stdout}`);
        }
        return { site, node };
      },
      close: () => net.close(),
    };
  } catch (err) {
    await net.close();
    throw err;
  }
}
