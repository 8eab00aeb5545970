/**
 * warrend's command line: parses flags, picks the mode, maps failures to exit
 * codes (2 = usage or configuration error, 1 = runtime failure).
 *
 *   warrend --wg-config FILE [--tun NAME] [--socket PATH] [--state-dir DIR]
 *
 * Each mode's modules are imported when that mode starts: plain WireGuard
 * mode never loads the control client, path choice or the control protocol's
 * schemas (23 MB of RSS and 160 ms of start-up measured on Node 20 when those
 * were zod schemas; valibot's cost a tenth of that).
 */
import { parseArgs } from 'node:util';
import { DEFAULT_SOCKET, SOCKET_ENV } from '../localapi/paths.js';
import { stderrLogger } from '../util/log.js';
import { testKnobs } from './test-mode.js';
import { TEST_TIMERS } from '../dataplane/constants.js';

const USAGE = `usage: warrend --wg-config FILE [--tun NAME] [--socket PATH] [--state-dir DIR]
       warrend [--state-dir DIR] [--tun NAME] [--port N] [--socket PATH]

Without --wg-config warrend runs as a tailnet node (mesh mode); join with
"warren up --login-server URL --auth-key KEY". Defaults: --state-dir /var/lib/warren,
--tun warren0, --port 41641, --socket /run/warren/warrend.sock.`;

export async function main(argv: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        'wg-config': { type: 'string' },
        config: { type: 'string' },
        tun: { type: 'string' },
        socket: { type: 'string' },
        'state-dir': { type: 'string' },
        port: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    process.stderr.write(`warrend: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values['help']) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const log = stderrLogger('warrend');
  let knobs;
  try {
    knobs = testKnobs();
  } catch (err) {
    process.stderr.write(`warrend: ${(err as Error).message}\n`);
    return 2;
  }
  const wgConfig = values['wg-config'] as string | undefined;
  const socketPath = (values['socket'] as string | undefined) ?? process.env[SOCKET_ENV] ?? DEFAULT_SOCKET;
  const stateDir = (values['state-dir'] as string | undefined) ?? '/var/lib/warren';
  if (values['config']) {
    process.stderr.write('warrend: --config (the appliance\'s warren.conf) is not available yet; use "warren up"\n');
    return 2;
  }
  if (!wgConfig) {
    const portText = (values['port'] as string | undefined) ?? '41641';
    const port = Number(portText);
    if (!/^\d+$/.test(portText) || port > 65535) {
      process.stderr.write(`warrend: --port "${portText}" is not a UDP port (0-65535)\n`);
      return 2;
    }
    const fast = knobs.timers === TEST_TIMERS;
    try {
      const { runMeshMode } = await import('./mesh-mode.js');
      return await runMeshMode({
        stateDir, tun: (values['tun'] as string | undefined) ?? 'warren0', port, socketPath, knobs, log,
        backoffMinMs: fast ? 200 : 1_000, backoffMaxMs: fast ? 2_000 : 30_000,
      });
    } catch (err) {
      log('error', (err as Error).message);
      return 1;
    }
  }
  if (values['port']) {
    process.stderr.write('warrend: --port applies to mesh mode; in plain WireGuard mode set ListenPort in the file\n');
    return 2;
  }
  const [{ runWgMode, ConfigReadError }, { ConfigError }] = await Promise.all([import('./wg-mode.js'), import('../control/wgquick.js')]);
  try {
    return await runWgMode({
      configPath: wgConfig,
      tun: (values['tun'] as string | undefined) ?? 'wg0',
      socketPath,
      stateDir,
      knobs,
      log,
    });
  } catch (err) {
    if (err instanceof ConfigError || err instanceof ConfigReadError) {
      process.stderr.write(`warrend: ${err.message}\n`);
      return 2;
    }
    log('error', (err as Error).message);
    return 1;
  }
}
