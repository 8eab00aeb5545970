/**
 * When warrend drops the pages it touched only while starting
 * (dataplane/io/page-trim.ts): as soon as it is ready (module loading and
 * set-up are done), and again a few seconds after a netmap arrives with none
 * before it (a first `warren up` or a reconnect to the control server loads
 * and runs code that then sleeps). Trimming at ready also keeps the peak low:
 * the pages of start-up are gone before those of a first login come in.
 * At most one trim is pending: arming again moves it to `delayMs` from then
 * (so a first netmap just after start-up is trimmed once, after both). Each
 * trim is logged with what it dropped.
 */
import { loadNative } from '../dataplane/io/native.js';
import { dropStartupPages, type TrimResult } from '../dataplane/io/page-trim.js';
import type { Logger } from '../util/log.js';

/** How long after start-up (or a first netmap) the trim runs. */
export const TRIM_DELAY_MS = 5000;

const mb = (kb: number): string => (kb / 1024).toFixed(1);

export class StartupTrim {
  private timer: NodeJS.Timeout | null = null;
  /** The last trim's result (for status and tests), null before the first. */
  last: TrimResult | null = null;

  constructor(private readonly o: { delayMs?: number; log: Logger; trim?: () => TrimResult }) {}

  /** Trim `delayMs` from now (a pending trim moves there, with this reason). */
  arm(reason: string, delayMs = this.o.delayMs ?? TRIM_DELAY_MS): void {
    this.stop();
    this.timer = setTimeout(() => {
      this.timer = null;
      const r = (this.o.trim ?? (() => dropStartupPages(loadNative())))();
      this.last = r;
      if (r.error) this.o.log('warn', `dropping start-up pages (${reason}): ${r.error}`);
      else this.o.log('info', `dropped ${mb(r.droppedKb)} MB of start-up pages (${reason}); file-backed RSS ${mb(r.rssFileBeforeKb)} → ${mb(r.rssFileAfterKb)} MB`);
    }, delayMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
