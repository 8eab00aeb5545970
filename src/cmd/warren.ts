#!/usr/bin/env node
/**
 * The `warren` executable: wiring only — runs the CLI's main() with the process's
 * arguments and sets the exit code from its result.
 */

import { main } from '../cli/warren.js';

// `warren status | head` closes stdout early; that is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`warren: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
}
