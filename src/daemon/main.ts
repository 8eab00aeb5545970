/**
 * warrend's command line: parses flags, picks the mode, maps failures to exit
 * codes (2 = usage or configuration error, 1 = runtime failure).
 *
 *   warrend --wg-config FILE [--tun NAME] [--socket PATH] [--state-dir DIR]
 */
import { parseArgs } from 'node:util';
import { DEFAULT_SOCKET, SOCKET_ENV } from '../localapi/paths.js';
import { stderrLogger } from '../util/log.js';
import { testKnobs } from './test-mode.js';
import { runWgMode, ConfigReadError } from './wg-mode.js';
import { ConfigError } from '../control/wgquick.js';

const USAGE = `usage: warrend --wg-config FILE [--tun NAME] [--socket PATH] [--state-dir DIR]
       warrend [--config FILE] [--state-dir DIR] [--tun NAME] [--port N] [--socket PATH]   (mesh mode: not yet available)`;

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
  if (!wgConfig) {
    process.stderr.write(`warrend: mesh mode (control server) is not available yet; use --wg-config FILE\n${USAGE}\n`);
    return 2;
  }
  try {
    return await runWgMode({
      configPath: wgConfig,
      tun: (values['tun'] as string | undefined) ?? 'wg0',
      socketPath: (values['socket'] as string | undefined) ?? process.env[SOCKET_ENV] ?? DEFAULT_SOCKET,
      stateDir: (values['state-dir'] as string | undefined) ?? '/var/lib/warren',
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
