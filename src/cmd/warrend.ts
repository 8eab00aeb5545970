#!/usr/bin/env node
/** The warrend binary: wiring only. */
import { main } from '../daemon/main.js';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`warrend: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
