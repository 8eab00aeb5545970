/**
 * Plain WireGuard mode: `warrend --wg-config FILE`. Reads a wg-quick file,
 * opens the tunnel, makes the OS match (addresses, routes, wg-quick's policy
 * routing for default routes), serves the LocalAPI, and runs until SIGTERM
 * or SIGINT. SIGHUP re-reads the file and applies the difference.
 */
import { readFileSync, mkdirSync } from 'node:fs';
import { lookup } from 'node:dns/promises';
import { parseWgQuick, type WgQuickConfig } from '../control/wgquick.js';
import { Router } from '../control/router.js';
import { Engine } from '../dataplane/engine.js';
import type { DeviceConfig } from '../dataplane/device.js';
import { LocalApiServer } from '../localapi/server.js';
import type { Logger } from '../util/log.js';
import { untilStopped } from '../util/signals.js';
import type { TestKnobs } from './test-mode.js';
import { StartupTrim } from './startup-trim.js';

export interface WgModeOptions {
  configPath: string;
  tun: string;
  socketPath: string;
  stateDir: string;
  knobs: TestKnobs;
  log: Logger;
}

const DEFAULT_MTU = 1420;

/** The configuration file cannot be read (missing, unreadable): a configuration error, exit code 2. */
export class ConfigReadError extends Error {
  readonly code = 'ECONFIGREAD';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConfigReadError';
  }
}

export function readWgConfig(path: string): WgQuickConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigReadError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  return parseWgQuick(text, path);
}

async function resolveEndpoint(host: string, port: number, log: Logger): Promise<{ ip: string; port: number } | null> {
  try {
    const r = await lookup(host.replace(/^\[|\]$/g, ''), { verbatim: true });
    return { ip: r.address, port };
  } catch (err) {
    log('warn', `cannot resolve endpoint ${host}:${port}: ${(err as Error).message}; peer waits for it to contact us`);
    return null;
  }
}

async function deviceConfig(cfg: WgQuickConfig, tun: string, listenPort: number, fwMark: number, knobs: TestKnobs, log: Logger): Promise<DeviceConfig> {
  const peers = await Promise.all(cfg.peers.map(async (p) => ({
    publicKey: p.publicKey,
    presharedKey: p.presharedKey ?? null,
    allowedIps: p.allowedIps,
    endpoint: p.endpoint ? await resolveEndpoint(p.endpoint.host, p.endpoint.port, log) : null,
    persistentKeepalive: p.persistentKeepalive ?? 0,
  })));
  return { privateKey: cfg.interface.privateKey, listenPort, fwMark, tun, peers, forceUnderLoad: knobs.forceUnderLoad };
}

export async function runWgMode(opts: WgModeOptions): Promise<number> {
  const { log } = opts;
  const cfg = readWgConfig(opts.configPath);
  mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 });
  if (cfg.interface.dns.length) {
    log('warn', `DNS = ${cfg.interface.dns.join(', ')}: warrend does not change the system resolver in plain WireGuard mode; configure it yourself`);
  }
  const mtu = cfg.interface.mtu ?? DEFAULT_MTU;
  const engine = await Engine.start({
    tunName: opts.tun, mtu, listenPort: cfg.interface.listenPort ?? 0, timers: opts.knobs.timers,
    stateDir: opts.stateDir, crypto: opts.knobs.crypto, log,
  });
  log('info', `tunnel ${engine.tun} up, listening on UDP ${engine.listenPort}, transport crypto: ${engine.cryptoName}`);
  const router = new Router({ log: (m) => log('debug', m) });
  let api: LocalApiServer | null = null;

  const apply = async (c: WgQuickConfig): Promise<void> => {
    const routes = [...new Set(c.peers.flatMap((p) => p.allowedIps))];
    const { fwMark } = await router.apply({
      tun: engine.tun, mtu: c.interface.mtu ?? DEFAULT_MTU, addresses: c.interface.addresses, routes,
      table: c.interface.table ?? 'auto', fwMark: c.interface.fwMark ?? 0,
    });
    engine.setFwMark(fwMark);
    engine.reconfig(await deviceConfig(c, engine.tun, engine.listenPort, fwMark, opts.knobs, log));
  };

  const shutdown = async (): Promise<void> => {
    await api?.stop().catch((e: Error) => log('warn', `LocalAPI stop: ${e.message}`));
    await router.teardown().catch((e: Error) => log('warn', `removing routes: ${e.message}`));
    await engine.stop();
  };

  try {
    await apply(cfg);
    api = new LocalApiServer({
      socketPath: opts.socketPath,
      handlers: { status: () => engine.status() },
      log: (m) => log('debug', m),
    });
    await api.start();
  } catch (err) {
    await shutdown();
    throw err;
  }
  log('info', `ready: ${cfg.peers.length} peer(s); LocalAPI at ${opts.socketPath}`);
  const trim = new StartupTrim({ delayMs: opts.knobs.trimDelayMs, log });
  trim.arm('start-up', 0);

  process.on('SIGHUP', () => {
    try {
      const next = readWgConfig(opts.configPath);
      apply(next).then(() => {
        log('info', `reloaded ${opts.configPath}`);
      }, (e: Error) => log('error', `reload failed, keeping the running configuration: ${e.message}`));
    } catch (e) {
      log('error', `reload failed, keeping the running configuration: ${(e as Error).message}`);
    }
  });
  return untilStopped(log, async () => {
    trim.stop();
    await shutdown();
  });
}
