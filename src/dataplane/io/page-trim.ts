/**
 * Start-up pages: once warrend is up, it unmaps the pages of the Node binary
 * that it touched only while starting (the module loader, the parser and
 * compiler of code that now runs compiled, ICU tables read once).
 *
 * RSS counts every page mapped into the process, file-backed ones included:
 * of warrend's ~85 MB with 100 peers, ~38 MB were pages of /usr/bin/node.
 * madvise(MADV_DONTNEED) on a private, read-only file mapping whose pages are
 * all unmodified copies of the file (smaps: no `w`, `p`, `Anonymous: 0 kB`)
 * only drops this process's page-table entries: the pages stay in the page
 * cache, and whatever code runs again faults its page back in (a minor fault,
 * no disk read). Writable mappings, shared mappings and mappings holding any
 * private copy (relocated pages) are never touched, nor any file but the
 * binary itself (mapped by the kernel at exec: nothing relocates it later).
 */
import { readFileSync, realpathSync } from 'node:fs';
import type { WarrenNative } from './native.js';

export interface TrimRange {
  start: bigint;
  end: bigint;
  /** Resident kB of the mapping when smaps was read. */
  rssKb: number;
}

const HEADER = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s*(.*)$/;

/**
 * The mappings of `file` in an smaps text that can be dropped safely:
 * private, not writable, no anonymous (copied-on-write) pages, some resident.
 * A mapping whose Anonymous line is missing is left alone.
 */
export function trimmableRanges(smaps: string, file: string): TrimRange[] {
  const out: TrimRange[] = [];
  let cur: { range: TrimRange; perms: string; path: string; anonKb: number | null } | null = null;
  const flush = (): void => {
    if (cur && cur.path === file && cur.perms[1] !== 'w' && cur.perms[3] === 'p' && cur.anonKb === 0 && cur.range.rssKb > 0) out.push(cur.range);
  };
  for (const line of smaps.split('\n')) {
    const h = HEADER.exec(line);
    if (h) {
      flush();
      cur = { range: { start: BigInt(`0x${h[1]!}`), end: BigInt(`0x${h[2]!}`), rssKb: 0 }, perms: h[3]!, path: h[4]!, anonKb: null };
      continue;
    }
    if (!cur) continue;
    const f = /^(Rss|Anonymous):\s+(\d+) kB$/.exec(line);
    if (f?.[1] === 'Rss') cur.range.rssKb = Number(f[2]);
    else if (f?.[1] === 'Anonymous') cur.anonKb = Number(f[2]);
  }
  flush();
  return out;
}

export interface TrimResult {
  /** Mappings dropped. */
  mappings: number;
  /** Their resident kB just before. */
  droppedKb: number;
  /** RssFile of the process before and after (kB; /proc/self/status). */
  rssFileBeforeKb: number;
  rssFileAfterKb: number;
  /** Why nothing (or not everything) was dropped, if something failed. */
  error?: string;
}

function rssFileKb(): number {
  const m = /^RssFile:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) : 0;
}

/** Drop the start-up pages of `file` (default: the running Node binary). Never throws. */
export function dropStartupPages(native: Pick<WarrenNative, 'madviseDontneed'>, file?: string): TrimResult {
  const result: TrimResult = { mappings: 0, droppedKb: 0, rssFileBeforeKb: 0, rssFileAfterKb: 0 };
  try {
    const target = file ?? realpathSync(process.execPath);
    result.rssFileBeforeKb = rssFileKb();
    for (const r of trimmableRanges(readFileSync('/proc/self/smaps', 'utf8'), target)) {
      const rc = native.madviseDontneed(r.start, r.end - r.start);
      if (rc !== 0) {
        result.error = `madvise on ${target} failed (errno ${-rc})`;
        continue;
      }
      result.mappings++;
      result.droppedKb += r.rssKb;
    }
    result.rssFileAfterKb = rssFileKb();
  } catch (err) {
    result.error = (err as Error).message;
  }
  return result;
}
