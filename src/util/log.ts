/**
 * A small leveled logger for daemons: one line per event on stderr (journald
 * adds timestamps), `<level>` prefixes in sd-daemon style so journald keeps the
 * priority. WARREN_LOG=debug shows debug lines.
 */
export type Level = 'debug' | 'info' | 'warn' | 'error';
const PRIORITY: Record<Level, number> = { error: 3, warn: 4, info: 6, debug: 7 };

export interface Logger {
  (level: Level, msg: string): void;
}

export function stderrLogger(component: string, minLevel: Level = (process.env['WARREN_LOG'] as Level) || 'info'): Logger {
  const min = PRIORITY[minLevel] ?? PRIORITY.info;
  return (level, msg) => {
    if (PRIORITY[level] > min) return;
    process.stderr.write(`<${PRIORITY[level]}>${component}: ${level === 'info' ? '' : level + ': '}${msg}\n`);
  };
}
