/**
 * What a process costs, read from /proc: resident memory (now, peak, and its
 * anonymous and file-backed parts) and CPU time (user + system, all threads).
 * Used by the footprint bench to compare warrend with wireguard-go on the
 * same machine. Threads share their process's figures: a worker thread's
 * heap is in its process's RSS.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface ProcMem {
  /** VmRSS: resident now, MiB. */
  rssMb: number;
  /** VmHWM: the peak of VmRSS since the process started, MiB. */
  hwmMb: number;
  /** RssAnon: heaps, stacks, malloc arenas. */
  anonMb: number;
  /** RssFile: mapped files (the executable, shared libraries). */
  fileMb: number;
}

export function procMem(pid: number): ProcMem {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const mb = (k: string): number => {
    const m = new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s);
    if (!m) throw new Error(`/proc/${pid}/status has no ${k}`);
    return Number(m[1]) / 1024;
  };
  return { rssMb: mb('VmRSS'), hwmMb: mb('VmHWM'), anonMb: mb('RssAnon'), fileMb: mb('RssFile') };
}

let ticksPerSecond = 0;

/** user + system CPU seconds the whole process (every thread) has used. */
export function cpuSeconds(pid: number): number {
  ticksPerSecond ||= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // After "pid (comm) ": state is field 3; utime and stime are fields 14 and 15.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / ticksPerSecond;
}

/** CPU use of each process over a window, in % of one core. */
export async function cpuPercent(pids: number[], seconds: number, signal?: AbortSignal): Promise<number[]> {
  const c0 = pids.map(cpuSeconds);
  const t0 = performance.now();
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, seconds * 1000); // the measurement window itself, not a wait for a condition
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(signal.reason as Error);
    }, { once: true });
  });
  const wall = (performance.now() - t0) / 1000;
  return pids.map((pid, i) => ((cpuSeconds(pid) - c0[i]!) / wall) * 100);
}

/** Samples VmRSS of some processes every `intervalMs` until stopped; keeps the maximum of each. */
export class RssSampler {
  readonly max: number[];
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly pids: number[], intervalMs = 200) {
    this.max = pids.map(() => 0);
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  private sample(): void {
    this.pids.forEach((pid, i) => {
      try {
        this.max[i] = Math.max(this.max[i]!, procMem(pid).rssMb);
      } catch {
        // the process is gone: keep what we saw
      }
    });
  }

  /** Take a last sample, stop, and return the maxima (MiB). */
  stop(): number[] {
    this.sample();
    clearInterval(this.timer);
    return this.max;
  }
}
