#!/usr/bin/env node
/** The warren-control binary: wiring only. */
import { main } from '../server/control/cli.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    if (process.argv[2] === 'serve') process.exit(code);
  },
  (err: Error) => {
    process.stderr.write(`warren-control: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
