/**
 * A daemon's life after start-up: run until SIGTERM or SIGINT, then run the
 * shutdown once and resolve to the exit code (0 clean, 1 if shutdown failed).
 */
import type { Logger } from './log.js';

export function untilStopped(log: Logger, shutdown: () => Promise<void>): Promise<number> {
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (sig: string): void => {
      if (stopping) return;
      stopping = true;
      log('info', `${sig}: shutting down`);
      shutdown().then(() => resolve(0), (e: Error) => {
        log('error', `shutdown: ${e.message}`);
        resolve(1);
      });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}
