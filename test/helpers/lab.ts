/**
 * Network-namespace lab for process-level tests and `make demo`.
 *
 * Owns: uniquely named namespaces and the veth links between them, commands
 * and long-running processes started inside them, and tearing all of that
 * down again — on `cleanup()`, on process exit, and on SIGINT/SIGTERM/SIGHUP.
 *
 * Rules it keeps (see shared/LAB.md): nothing is ever created in the machine's
 * own namespace (veth pairs are born inside their namespaces); every process a
 * test runs goes through `ip netns exec`; the only commands run from the root
 * namespace are `ip netns add/del` and `ip -n NS ...`, which act inside NS.
 * Names carry the pid and a random part so concurrent runs never collide, and
 * only process groups this lab started are ever signalled.
 *
 * @example
 *   const lab = Lab.create('ping');
 *   after(() => lab.cleanup());
 *   const { a, bAddr } = await twoHosts(lab);
 *   await lab.sh(a, ['ping', '-c', '1', '-W', '1', bAddr]);
 */
import { execFile, execFileSync, spawn as spawnChild } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';

/** How much of a process's combined stdout+stderr is kept (characters). */
const OUTPUT_RING_CHARS = 1 << 20;
/** Default time a spawned process gets to exit after SIGTERM before SIGKILL. */
const STOP_GRACE_MS = 3000;
/** Default timeout for one `sh()` command. */
const SH_TIMEOUT_MS = 60_000;

/** A command exited non-zero (or could not be run). */
export class LabCommandError extends Error {
  readonly code = 'LAB_COMMAND_FAILED';
  constructor(
    readonly command: string[],
    readonly exitCode: number | null,
    readonly stdout: string,
    readonly stderr: string,
    options?: { cause?: unknown },
  ) {
    super(`command failed (exit ${exitCode ?? 'none'}): ${command.join(' ')}\n${stderr.trim()}`, options);
    this.name = 'LabCommandError';
  }
}

/** waitFor() or waitForOutput() ran out of time. */
export class WaitTimeoutError extends Error {
  readonly code = 'LAB_WAIT_TIMEOUT';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WaitTimeoutError';
  }
}

/** A lab process exited while something was still waiting on it. */
export class LabProcExitedError extends Error {
  readonly code = 'LAB_PROC_EXITED';
  constructor(message: string) {
    super(message);
    this.name = 'LabProcExitedError';
  }
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the process could not be spawned at all. */
  error?: Error;
}

export interface ShResult {
  stdout: string;
  stderr: string;
  code: number;
}

/**
 * Poll `fn` until it returns something truthy and return that. A throw from
 * `fn` counts as "not yet" (and is kept for the timeout message). On timeout
 * throws a WaitTimeoutError naming `what` and the last value or error; if
 * `signal` aborts first, rejects with its reason (e.g. "the daemon exited").
 */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  opts: { timeoutMs?: number; intervalMs?: number; signal?: AbortSignal } = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 50;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  let lastError: unknown;
  for (;;) {
    opts.signal?.throwIfAborted();
    try {
      const value = await fn();
      if (value) return value;
      last = value;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    opts.signal?.throwIfAborted();
    const left = deadline - Date.now();
    if (left <= 0) {
      const detail = lastError !== undefined ? `last error: ${errorText(lastError)}` : `last value: ${String(last)}`;
      throw new WaitTimeoutError(`timed out after ${timeoutMs} ms waiting for ${what}; ${detail}`, { cause: lastError });
    }
    try {
      await delay(Math.min(intervalMs, left), undefined, { signal: opts.signal });
    } catch (err) {
      throw opts.signal?.aborted ? opts.signal.reason : err;
    }
  }
}

/** A long-running process inside a lab namespace, leader of its own process group. */
export class LabProc {
  readonly pid: number;
  readonly name: string;
  /** Resolves (never rejects) once the process has exited and its output is drained. */
  readonly exited: Promise<ExitStatus>;
  /** Aborted when the process exits; the reason is a LabProcExitedError with its output tail. */
  readonly exitSignal: AbortSignal;
  private readonly chunks: string[] = [];
  private size = 0;
  private status: ExitStatus | undefined;
  private readonly watchers = new Set<() => void>();
  private readonly abort = new AbortController();
  /** Set once the leader is reaped: from then on the group id is never signalled. */
  private groupGone = false;

  constructor(child: ChildProcess, name: string) {
    this.name = name;
    this.exitSignal = this.abort.signal;
    const onData = (data: Buffer): void => this.append(data.toString('utf8'));
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    this.exited = new Promise<ExitStatus>((resolve) => {
      const finish = (status: ExitStatus): void => {
        if (this.status) return;
        this.status = status;
        this.abort.abort(new LabProcExitedError(`${this.name} (pid ${this.pid}) ${this.describeExit()}; output tail:\n${this.tail()}`));
        this.notify();
        resolve(status);
      };
      child.on('error', (error) => finish({ code: null, signal: null, error }));
      // 'close' comes after the output pipes are drained, so the final output
      // is in the buffer before anyone hears about the exit.
      child.on('close', (code, signal) => finish({ code, signal }));
      child.on('exit', () => {
        // The leader is gone: kill whatever is left of its group now, while the
        // group id still cannot have been reused by an unrelated process.
        this.signalGroup('SIGKILL');
        this.groupGone = true;
      });
    });
    if (child.pid === undefined) {
      this.pid = -1;
      this.groupGone = true;
    } else {
      this.pid = child.pid;
    }
  }

  get alive(): boolean {
    return this.status === undefined && !this.groupGone;
  }

  /** Everything the process printed so far (stdout and stderr interleaved; the last 1 MiB). */
  output(): string {
    return this.chunks.join('');
  }

  /** Resolve with the first match of `re` in the output; reject clearly if the process exits first or time runs out. */
  waitForOutput(re: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const match = this.output().match(re);
        if (match) {
          done();
          resolve(match);
        } else if (this.status) {
          done();
          reject(new LabProcExitedError(`${this.name} (pid ${this.pid}) ${this.describeExit()} before printing ${re}; output tail:\n${this.tail()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new WaitTimeoutError(`timed out after ${timeoutMs} ms waiting for ${this.name} (pid ${this.pid}) to print ${re}; output tail:\n${this.tail()}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.watchers.delete(check);
      };
      this.watchers.add(check);
      check();
    });
  }

  /** Signal the process group, wait for exit; SIGKILL after `graceMs`. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = STOP_GRACE_MS): Promise<ExitStatus> {
    if (this.status) return this.status;
    this.signalGroup(signal);
    const timer = new AbortController();
    const timedOut = await Promise.race([
      this.exited.then(() => false),
      delay(graceMs, true, { signal: timer.signal }).catch(() => false),
    ]);
    timer.abort();
    if (timedOut) this.signalGroup('SIGKILL');
    return this.exited;
  }

  /** Synchronous last resort for the 'exit' handler. */
  killNow(): void {
    this.signalGroup('SIGKILL');
  }

  /** "exited with code 1", "was killed by SIGTERM", "failed to spawn: ...", or "is running". */
  describeExit(): string {
    const s = this.status;
    if (!s) return 'is running';
    if (s.error) return `failed to spawn: ${s.error.message}`;
    if (s.signal) return `was killed by ${s.signal}`;
    return `exited with code ${s.code}`;
  }

  /** The last `lines` lines of output, for error messages. */
  tail(lines = 30): string {
    const all = this.output().trimEnd().split('\n');
    return all.slice(-lines).map((l) => `  | ${l}`).join('\n') || '  | (no output)';
  }

  private signalGroup(signal: NodeJS.Signals): void {
    if (this.groupGone || this.pid <= 0) return;
    try {
      process.kill(-this.pid, signal);
    } catch {
      // ESRCH: the whole group is already gone.
    }
  }

  private append(text: string): void {
    this.chunks.push(text);
    this.size += text.length;
    while (this.size > OUTPUT_RING_CHARS && this.chunks.length > 1) {
      this.size -= this.chunks.shift()?.length ?? 0;
    }
    if (process.env.LAB_VERBOSE === '1') {
      process.stderr.write(text.replace(/^(?=.)/gm, `[${this.name}] `));
    }
    this.notify();
  }

  private notify(): void {
    for (const watcher of [...this.watchers]) watcher();
  }
}

/** Labs not yet cleaned up, for the process exit/signal handlers. */
const liveLabs = new Set<Lab>();
let handlersInstalled = false;

function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', () => {
    for (const lab of liveLabs) lab.cleanupSync();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    // once: a second signal falls through to the default action (immediate death).
    process.once(sig, () => {
      void Promise.allSettled([...liveLabs].map((lab) => lab.cleanup())).finally(() => {
        process.exit(128 + osConstants.signals[sig]);
      });
    });
  }
}

/** Run `ip` from the root namespace (namespace management and `ip -n` only). */
function ip(args: string[], allowFail = false): Promise<ShResult> {
  return run(['ip', ...args], { allowFail, timeoutMs: SH_TIMEOUT_MS });
}

function run(
  command: string[],
  opts: { allowFail?: boolean; timeoutMs?: number; env?: NodeJS.ProcessEnv; track?: Set<ChildProcess> },
): Promise<ShResult> {
  return new Promise((resolve, reject) => {
    const [file, ...args] = command;
    const child = execFile(
      file ?? 'false',
      args,
      { encoding: 'utf8', maxBuffer: 64 << 20, timeout: opts.timeoutMs ?? SH_TIMEOUT_MS, env: opts.env },
      (err, stdout, stderr) => {
        opts.track?.delete(child);
        const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
        if (code === 0 || (opts.allowFail && code !== null)) {
          resolve({ stdout, stderr, code: code ?? 0 });
        } else {
          const why = err && code === null ? `${stderr}${err.killed ? '(killed: timeout)' : err.message}` : stderr;
          reject(new LabCommandError(command, code, stdout, why, { cause: err }));
        }
      },
    );
    opts.track?.add(child);
  });
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** One test's (or the demo's) set of namespaces and processes. */
export class Lab {
  /** `wl-<tag>-<pid>-<random>`; every namespace of this lab starts with it. */
  readonly prefix: string;
  private readonly namespaces: string[] = [];
  private readonly procs = new Set<LabProc>();
  private readonly shells = new Set<ChildProcess>();
  private readonly paths = new Set<string>();
  private readonly nameSalt: string;
  private counter = 0;
  private cleaning: Promise<void> | undefined;

  private constructor(tag: string) {
    const clean = tag.toLowerCase().replace(/[^a-z0-9]+/g, '').slice(0, 12) || 'lab';
    this.prefix = `wl-${clean}-${process.pid}-${randomBytes(3).toString('hex')}`;
    this.nameSalt = randomBytes(2).readUInt16BE(0).toString(36).padStart(3, '0').slice(-3);
  }

  static create(tag: string): Lab {
    installExitHandlers();
    const lab = new Lab(tag);
    liveLabs.add(lab);
    return lab;
  }

  /** Namespaces created so far (full names). */
  get namespaceNames(): readonly string[] {
    return this.namespaces;
  }

  /** Processes spawned so far. */
  get processes(): readonly LabProc[] {
    return [...this.procs];
  }

  /**
   * A globally unique interface name (≤ 15 chars) for things whose name is
   * global even across namespaces, like wireguard-go's control socket:
   * `<hint≤4><pid base36><random><counter>`.
   */
  uniqueIfname(hint = 'wg'): string {
    const name = `${hint.replace(/[^a-z0-9]/gi, '').slice(0, 4)}${process.pid.toString(36)}${this.nameSalt}${(this.counter++).toString(36)}`;
    if (name.length > 15) throw new Error(`interface name too long: ${name}`);
    return name;
  }

  /** Remove this file or directory at cleanup (key dirs, stale control sockets). */
  trackPath(path: string): void {
    this.paths.add(path);
  }

  /** Create namespace `<prefix>-<name>` with `lo` up; returns its full name. */
  async ns(name: string): Promise<string> {
    this.assertOpen();
    if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new Error(`bad namespace name: ${name}`);
    const full = `${this.prefix}-${name}`;
    await ip(['netns', 'add', full]);
    this.namespaces.push(full);
    await ip(['-n', full, 'link', 'set', 'lo', 'up']);
    return full;
  }

  /** A veth pair created directly inside the two namespaces, both ends up. */
  async veth(nsA: string, ifA: string, nsB: string, ifB: string, opts: { mtu?: number } = {}): Promise<void> {
    this.assertOpen();
    await ip(['-n', nsA, 'link', 'add', ifA, 'type', 'veth', 'peer', 'name', ifB, 'netns', nsB]);
    for (const [ns, ifname] of [[nsA, ifA], [nsB, ifB]] as const) {
      if (opts.mtu !== undefined) await ip(['-n', ns, 'link', 'set', ifname, 'mtu', String(opts.mtu)]);
      await ip(['-n', ns, 'link', 'set', ifname, 'up']);
    }
  }

  /** Add an address; IPv6 addresses skip duplicate address detection so they work at once. */
  async addr(ns: string, ifname: string, cidr: string): Promise<void> {
    const args = ['-n', ns, 'addr', 'add', cidr, 'dev', ifname];
    if (cidr.includes(':')) args.push('nodad');
    await ip(args);
  }

  /** `ip route ARGS` in `ns`; adds `-6` when an argument is an IPv6 address and no family is given. */
  async route(ns: string, ...args: string[]): Promise<void> {
    const family = args.some((a) => a === '-4' || a === '-6') ? [] : args.some((a) => a.includes(':')) ? ['-6'] : [];
    await ip(['-n', ns, ...family, 'route', ...args]);
  }

  /** Run a command to completion inside `ns`; throws LabCommandError on non-zero exit unless allowFail. */
  async sh(
    ns: string,
    cmd: string[],
    opts: { allowFail?: boolean; timeoutMs?: number; env?: Record<string, string> } = {},
  ): Promise<ShResult> {
    this.assertOpen();
    return run(['ip', 'netns', 'exec', ns, ...cmd], {
      allowFail: opts.allowFail,
      timeoutMs: opts.timeoutMs,
      env: opts.env ? { ...process.env, ...opts.env } : undefined,
      track: this.shells,
    });
  }

  /** Start a long-running process inside `ns`, in its own process group, output captured. */
  spawn(ns: string, cmd: string[], opts: { env?: Record<string, string>; name?: string } = {}): LabProc {
    this.assertOpen();
    const child = spawnChild('ip', ['netns', 'exec', ns, ...cmd], {
      detached: true, // own session and process group: stop() signals the whole group
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...opts.env },
    });
    const proc = new LabProc(child, opts.name ?? `${ns.slice(this.prefix.length + 1)}:${cmd[0] ?? '?'}`);
    this.procs.add(proc);
    return proc;
  }

  /**
   * Stop every process (SIGTERM, then SIGKILL after a grace period), delete
   * the namespaces and tracked paths. Idempotent; throws if something could
   * not be removed (after trying everything).
   */
  cleanup(): Promise<void> {
    this.cleaning ??= this.doCleanup();
    return this.cleaning;
  }

  private async doCleanup(): Promise<void> {
    const errors: unknown[] = [];
    for (const shell of this.shells) shell.kill('SIGKILL');
    await Promise.all([...this.procs].map((p) => p.stop('SIGTERM')));
    for (const ns of [...this.namespaces].reverse()) {
      const res = await ip(['netns', 'del', ns], true).catch((err: unknown) => ({ code: -1, stderr: errorText(err) }));
      if (res.code !== 0) errors.push(new Error(`ip netns del ${ns}: ${res.stderr.trim()}`));
    }
    this.removePaths(errors);
    liveLabs.delete(this);
    if (errors.length > 0) throw new AggregateError(errors, `lab ${this.prefix}: cleanup incomplete`);
  }

  /** Best-effort synchronous teardown for the process 'exit' event. */
  cleanupSync(): void {
    if (!liveLabs.has(this)) return;
    liveLabs.delete(this);
    for (const shell of this.shells) shell.kill('SIGKILL');
    for (const proc of this.procs) proc.killNow();
    for (const ns of [...this.namespaces].reverse()) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: 10_000 });
      } catch {
        // best effort
      }
    }
    this.removePaths([]);
  }

  private removePaths(errors: unknown[]): void {
    for (const path of this.paths) {
      try {
        rmSync(path, { recursive: true, force: true });
      } catch (err) {
        errors.push(err);
      }
    }
  }

  private assertOpen(): void {
    if (this.cleaning) throw new Error(`lab ${this.prefix} is already cleaned up`);
  }
}

/** Underlay of twoHosts(): private ranges that never leave the lab namespaces. */
export const TWO_HOSTS = {
  aAddr: '10.201.0.1',
  bAddr: '10.201.0.2',
  prefixLen4: 24,
  aAddr6: 'fd7a:5741:201::1',
  bAddr6: 'fd7a:5741:201::2',
  prefixLen6: 64,
} as const;

export interface TwoHosts {
  a: string;
  b: string;
  /** Interface name of the link on each side. */
  aIf: string;
  bIf: string;
  aAddr: string;
  bAddr: string;
  aAddr6: string;
  bAddr6: string;
}

/** Two namespaces `a` and `b` joined by one veth (`eth0` on each side), IPv4 + IPv6. */
export async function twoHosts(lab: Lab, names: [string, string] = ['a', 'b']): Promise<TwoHosts> {
  const a = await lab.ns(names[0]);
  const b = await lab.ns(names[1]);
  await lab.veth(a, 'eth0', b, 'eth0');
  const t = TWO_HOSTS;
  await lab.addr(a, 'eth0', `${t.aAddr}/${t.prefixLen4}`);
  await lab.addr(b, 'eth0', `${t.bAddr}/${t.prefixLen4}`);
  await lab.addr(a, 'eth0', `${t.aAddr6}/${t.prefixLen6}`);
  await lab.addr(b, 'eth0', `${t.bAddr6}/${t.prefixLen6}`);
  return { a, b, aIf: 'eth0', bIf: 'eth0', aAddr: t.aAddr, bAddr: t.bAddr, aAddr6: t.aAddr6, bAddr6: t.bAddr6 };
}
