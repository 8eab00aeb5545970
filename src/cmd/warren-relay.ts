#!/usr/bin/env node
/** The warren-relay binary: wiring only. */
import { main } from '../server/relay/cli.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    if (process.argv[2] !== 'fingerprint') process.exit(code);
  },
  (err: Error) => {
    process.stderr.write(`warren-relay: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
