#!/usr/bin/env -S node --max-semi-space-size=1 --v8-pool-size=1
/**
 * The warrend binary: wiring only.
 *
 * The shebang's flags keep the process small (measured on Node 20, 2 cores):
 *  - --max-semi-space-size=1 caps V8's young generation at 1 MiB per
 *    semi-space (main thread and packet worker; V8 lets it grow to 16). With
 *    100 peers under iperf3: RSS 105-108 MB → 90-93 MB. The packet worker
 *    scavenges 8 times in 8 s instead of 3: 7 ms of pauses in all, none
 *    longer than before.
 *  - --v8-pool-size=1: one V8 background thread instead of four (each has
 *    its own malloc arena): RSS another 3-6 MB lower, throughput not lower
 *    (4 paired runs, plain mode: 0.35-0.61 Gbit/s with four, 0.44-0.69 with one).
 * Whoever starts warrend without the bin (`node warrend.js`) should pass the
 * same flags; `make bench` (footprint) reads them from this line.
 */
import module from 'node:module';

/** Node 22.1+: keep V8's compiled code between starts (systemd's CacheDirectory=, else the temp dir). No-op on Node 20. */
const compileCache = (module as { enableCompileCache?: (dir?: string) => unknown }).enableCompileCache;
compileCache?.(process.env['CACHE_DIRECTORY']?.split(':')[0] || undefined);

const { main } = await import('../daemon/main.js');

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`warrend: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
