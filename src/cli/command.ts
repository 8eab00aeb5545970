/** The shape of a `warren` subcommand and what it gets to work with. */
import type { ParseArgsConfig } from 'node:util';
import type { LocalApiClient } from '../localapi/client.js';

export interface Writer {
  write(chunk: string): unknown;
}

export interface CliIo {
  stdout: Writer;
  stderr: Writer;
  /** Environment (for WARREN_SOCKET); defaults to process.env. */
  env: Record<string, string | undefined>;
  /** Current time in unix milliseconds. */
  now: () => number;
}

/** What a command gets to work with. */
export interface CommandContext {
  io: CliIo;
  socketPath: string;
  client(): LocalApiClient;
}

export interface ParsedArgs {
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  positionals: string[];
}

export interface Command {
  name: string;
  summary: string;
  /** Usage text shown by `warren help NAME` and `warren NAME --help`. */
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  allowPositionals?: boolean;
  run(args: ParsedArgs, ctx: CommandContext): Promise<number>;
}

/** A mistake in how the command was called: exit 2 with a usage hint. */
export class UsageError extends Error {
  override name = 'UsageError';
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
  }
}

export const HELP_OPTION = { help: { type: 'boolean', short: 'h' } } as const;

