/**
 * The `warren` CLI: parses global flags, dispatches to a subcommand from a small
 * table, and talks to `warrend` through the LocalAPI client. All I/O goes through the
 * injectable CliIo, so tests run main() in-process.
 *
 * Exit codes: 0 success; 1 the command failed (e.g. warrend not reachable);
 * 2 usage error (unknown command or flag, bad value).
 *
 * Adding a command: write a Command and add it to COMMANDS.
 */

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import { LocalApiClient, LocalApiClientError } from '../localapi/client.js';
import { DEFAULT_SOCKET, SOCKET_ENV } from '../localapi/paths.js';
import { formatStatus, formatStatusJson } from './status-format.js';

import { UsageError, HELP_OPTION, type CliIo, type Command, type CommandContext, type ParsedArgs } from './command.js';
import { upCommand, downCommand, logoutCommand, ipCommand, debugCommand } from './mesh-commands.js';
import { formatMeshStatus, isMeshStatus } from './mesh-status-format.js';
import { pingCommand, netcheckCommand } from './nat-commands.js';

export type { CliIo, Writer } from './command.js';

const statusCommand: Command = {
  name: 'status',
  summary: "show this node's interface and peers, like `wg show`",
  usage: [
    'Usage: warren status [--json]',
    '',
    "Shows this node's tunnel interface and peers as `wg show` does.",
    '',
    'Flags:',
    '  --json   print the full status as JSON (stable keys; base64 keys in full)',
  ].join('\n'),
  options: { json: { type: 'boolean' } },
  async run({ values }, ctx) {
    const status = await ctx.client().status();
    if (isMeshStatus(status)) ctx.io.stdout.write(values.json ? JSON.stringify(status, null, 2) + '\n' : formatMeshStatus(status, ctx.io.now()));
    else ctx.io.stdout.write(values.json ? formatStatusJson(status) : formatStatus(status, ctx.io.now()));
    return 0;
  },
};

const versionCommand: Command = {
  name: 'version',
  summary: 'print the version of this CLI',
  usage: 'Usage: warren version',
  options: {},
  run(_args, ctx) {
    ctx.io.stdout.write(`warren ${version()}\n`);
    return Promise.resolve(0);
  },
};

const helpCommand: Command = {
  name: 'help',
  summary: "show this help, or a command's help",
  usage: 'Usage: warren help [COMMAND]',
  options: {},
  allowPositionals: true,
  run({ positionals }, ctx) {
    if (positionals.length > 1) throw new UsageError('help takes at most one command', globalHint());
    const name = positionals[0];
    if (name === undefined) {
      ctx.io.stdout.write(usage());
      return Promise.resolve(0);
    }
    const cmd = findCommand(name);
    if (!cmd) throw new UsageError(`unknown command "${name}"`, globalHint());
    ctx.io.stdout.write(cmd.usage + '\n');
    return Promise.resolve(0);
  },
};

const COMMANDS: readonly Command[] = [upCommand, downCommand, logoutCommand, statusCommand, ipCommand, pingCommand, netcheckCommand, debugCommand, versionCommand, helpCommand];

const GLOBAL_OPTIONS = {
  socket: { type: 'string' },
  version: { type: 'boolean' },
  ...HELP_OPTION,
} as const;

/** Runs the CLI with `argv` (without node and script); resolves to the exit code. */
export async function main(argv: string[], io: Partial<CliIo> = {}): Promise<number> {
  const fullIo: CliIo = {
    stdout: io.stdout ?? process.stdout,
    stderr: io.stderr ?? process.stderr,
    env: io.env ?? process.env,
    now: io.now ?? Date.now,
  };
  try {
    return await dispatch(argv, fullIo);
  } catch (err) {
    if (err instanceof UsageError) {
      fullIo.stderr.write(`warren: ${err.message}\n${err.hint}\n`);
      return 2;
    }
    const message = err instanceof LocalApiClientError || err instanceof Error ? err.message : String(err);
    fullIo.stderr.write(`warren: ${message}\n`);
    return 1;
  }
}

async function dispatch(argv: string[], io: CliIo): Promise<number> {
  // Global flags are those before the first positional (the command name).
  const { tokens } = parseArgs({
    args: argv,
    options: GLOBAL_OPTIONS,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const first = tokens.find((t) => t.kind === 'positional' || t.kind === 'option-terminator');
  const split = first ? first.index : argv.length;
  const globals = strictParse(argv.slice(0, split), GLOBAL_OPTIONS, false, globalHint()).values;
  const rest = argv.slice(first?.kind === 'option-terminator' ? split + 1 : split);

  if (globals.help) {
    io.stdout.write(usage());
    return 0;
  }
  if (globals.version) {
    io.stdout.write(`warren ${version()}\n`);
    return 0;
  }

  const name = rest[0];
  if (name === undefined) {
    io.stderr.write(usage());
    return 2;
  }
  const cmd = findCommand(name);
  if (!cmd) throw new UsageError(`unknown command "${name}"`, globalHint());

  const socketPath = (globals.socket as string | undefined) ?? io.env[SOCKET_ENV] ?? DEFAULT_SOCKET;
  if (socketPath === '') throw new UsageError('--socket must not be empty', globalHint());
  const hint = `Run 'warren ${cmd.name} --help' for usage.`;
  const parsed = strictParse(rest.slice(1), { ...cmd.options, ...HELP_OPTION }, cmd.allowPositionals ?? false, hint);
  if (parsed.values.help) {
    io.stdout.write(cmd.usage + '\n');
    return 0;
  }
  return cmd.run(parsed, contextFor(io, socketPath));
}

function contextFor(io: CliIo, socketPath: string): CommandContext {
  let client: LocalApiClient | undefined;
  return {
    io,
    socketPath,
    // up waits for registration and the first netmap: allow for it.
    client: () => (client ??= new LocalApiClient(socketPath, { timeoutMs: 45_000 })),
  };
}

function strictParse(
  args: string[],
  options: NonNullable<ParseArgsConfig['options']>,
  allowPositionals: boolean,
  hint: string,
): ParsedArgs {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals });
  } catch (err) {
    throw new UsageError(describeParseError(err), hint);
  }
}

/** parseArgs' messages are long; say the essential part. */
function describeParseError(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const code = (err as { code?: string }).code;
  const quoted = /'([^']+)'/.exec(message)?.[1];
  switch (code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown flag ${quoted ?? ''}`.trim();
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return `unexpected argument ${quoted ?? ''}`.trim();
    default:
      return message;
  }
}

function findCommand(name: string): Command | undefined {
  return COMMANDS.find((c) => c.name === name);
}

function globalHint(): string {
  return "Run 'warren help' for usage.";
}

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 3;
  return [
    'Usage: warren [--socket PATH] <command> [flags]',
    '',
    'Controls the local warrend daemon over its LocalAPI socket.',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    '',
    'Global flags:',
    `  --socket PATH   LocalAPI socket (default: $${SOCKET_ENV} or ${DEFAULT_SOCKET})`,
    '  --version       print the version',
    '  -h, --help      show this help',
    '',
    "Run 'warren <command> --help' for a command's flags.",
    '',
  ].join('\n');
}

let cachedVersion: string | undefined;

/** The package version, read from the nearest package.json named "warren". */
function version(): string {
  if (cachedVersion !== undefined) return cachedVersion;
  cachedVersion = 'unknown';
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'warren' && typeof pkg.version === 'string') {
        cachedVersion = pkg.version;
        break;
      }
    } catch {
      // not here; look one level up
    }
    dir = dirname(dir);
  }
  return cachedVersion;
}
