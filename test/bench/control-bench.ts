/**
 * The control server at scale (not a test: figures vary with the machine's
 * load). 1,000 simulated nodes (test/helpers/sim-node.ts) register with one
 * reusable key and hold a map stream each; then, for several single changes
 * (a rename by the server, a new endpoint from one node):
 *   - the time until every node has applied the change (median, and spread),
 *   - the bytes sent to all nodes for it (delta frames as received on the
 *     nodes' streams, against what a full map to each would have been),
 *   - the server's memory (VmRSS / VmHWM of its own process).
 *
 *   node dist/test/bench/control-bench.js          (as root; BENCH_NODES=N to change the count)
 *
 * Layout: this process makes one lab namespace and starts the driver in it
 * (the sims); the driver forks the server as its own child process, so the
 * server's RSS is its own and each side has its own file-descriptor limit.
 * The server listens on the namespace's 127.0.0.1; nothing touches the
 * machine's own network.
 */
import { execFile, fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab } from '../helpers/lab.js';
import { SimNode, SimServer, startInProcessServer } from '../helpers/sim-node.js';
import { encodeFrame } from '../../src/wire/control-frames.js';

const SELF = fileURLToPath(import.meta.url);
const CHANGES = Number(process.env['BENCH_CHANGES'] ?? 7);

// ------------------------------------------------------------------ server child

interface ServerReady {
  type: 'ready';
  port: number;
  cert: string;
  fingerprint: string;
  authKey: string;
}

type ServerCommand = { cmd: 'rename'; id: number; name: string; seq: number } | { cmd: 'mem' } | { cmd: 'stop' };

interface ServerMem {
  type: 'mem';
  /** After a full garbage collection: what the server still holds. */
  heapUsedMb: number;
  heapTotalMb: number;
  externalMb: number;
  rssAfterGcMb: number;
}

async function serverMain(dir: string): Promise<void> {
  const ctl = await startInProcessServer(dir, { keepaliveMs: 30_000, housekeepingMs: 10_000, keepLogs: false });
  const { key } = await ctl.store.createAuthKey({ reusable: true });
  process.on('message', (m: ServerCommand) => {
    if (m.cmd === 'rename') {
      void ctl.server.renameNode(m.id, m.name).then(
        () => process.send!({ type: 'renamed', seq: m.seq }),
        (e: Error) => process.send!({ type: 'renamed', seq: m.seq, error: e.message }),
      );
    } else if (m.cmd === 'mem') {
      (globalThis as { gc?: () => void }).gc?.();
      const u = process.memoryUsage();
      process.send!({ type: 'mem', heapUsedMb: u.heapUsed / 1048576, heapTotalMb: u.heapTotal / 1048576, externalMb: u.external / 1048576, rssAfterGcMb: u.rss / 1048576 } satisfies ServerMem);
    } else if (m.cmd === 'stop') {
      void ctl.stop().finally(() => process.exit(0));
    }
  });
  const ready: ServerReady = { type: 'ready', port: ctl.port, cert: ctl.sim.ca, fingerprint: ctl.sim.fingerprint, authKey: key };
  process.send!(ready);
}

// ------------------------------------------------------------------ driver (the sims)

function procStatus(pid: number | 'self'): { rssMb: number; hwmMb: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)?.[1] ?? NaN);
  return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024 };
}

function fdLimit(): number {
  const m = /Max open files\s+(\d+|unlimited)/.exec(readFileSync('/proc/self/limits', 'utf8'));
  return !m || m[1] === 'unlimited' ? Infinity : Number(m[1]);
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

async function pool<T>(items: T[], width: number, fn: (x: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (i < items.length) await fn(items[i++]!);
  }));
}

/** Resolve when `cond()` holds, checked on every applied update of any sim (no timers); reject after `ms`. */
function whenAll(sims: SimNode[], cond: (s: SimNode) => boolean, what: string, ms: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const pending = new Set(sims.filter((s) => !cond(s)));
    if (pending.size === 0) return resolve(performance.now());
    const timer = setTimeout(() => {
      for (const s of sims) s.onUpdate = null;
      reject(new Error(`timed out after ${ms} ms waiting for ${what}: ${pending.size} of ${sims.length} still pending`));
    }, ms);
    for (const s of pending) {
      s.onUpdate = (n): void => {
        if (!pending.has(n) || !cond(n)) return;
        pending.delete(n);
        n.onUpdate = null;
        if (pending.size === 0) {
          clearTimeout(timer);
          resolve(performance.now());
        }
      };
    }
  });
}

/** TCP payload bytes the server has sent on its established sockets (ss bytes_sent): TLS records, headers and all. */
function serverBytesSent(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    execFile('ss', ['-tinH', 'state', 'established', `( sport = :${port} )`], { maxBuffer: 64 << 20 }, (err, out) => {
      if (err) return reject(err);
      resolve([...out.matchAll(/bytes_sent:(\d+)/g)].reduce((a, m) => a + Number(m[1]), 0));
    });
  });
}

const say = (s: string): void => void process.stdout.write(`${s}\n`);

async function driverMain(requested: number): Promise<void> {
  const limit = fdLimit();
  let n = requested;
  if (limit < n + 200) {
    n = Math.max(10, limit - 200);
    say(`note: open-file limit ${limit} fits ${n} streams, not ${requested}; running with ${n}`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'warren-ctlbench-'));
  const child: ChildProcess = fork(SELF, ['--server', dir], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: ['--expose-gc'] });
  const messages: Array<(m: { type: string; seq?: number; error?: string }) => void> = [];
  child.on('message', (m: { type: string; error?: string }) => {
    if (m.error) say(`server: ${m.error}`);
    for (const f of messages.splice(0)) f(m);
  });
  const next = <T>(): Promise<T> => new Promise((resolve) => messages.push((m) => resolve(m as T)));
  try {
    const ready = await next<ServerReady>();
    const pid = child.pid!;
    const mem = async (): Promise<ServerMem> => {
      const p = next<ServerMem>();
      child.send({ cmd: 'mem' } satisfies ServerCommand);
      return p;
    };
    const rss0 = procStatus(pid);
    const mem0 = await mem();
    const srv = new SimServer(`https://127.0.0.1:${ready.port}`, ready.cert, ready.fingerprint, { maxSockets: 32 });
    const sims = Array.from({ length: n }, (_, i) => new SimNode(srv, {
      hostname: `sim${i}`, authKey: ready.authKey, endpoints: [`198.51.100.${(i % 250) + 1}:${40000 + i}`], validate: false,
    }));

    let t = performance.now();
    await pool(sims, 32, async (s) => {
      await s.register();
    });
    const registerS = (performance.now() - t) / 1000;
    const rss1 = procStatus(pid);
    say(`registered ${n} nodes in ${registerS.toFixed(1)} s`);

    t = performance.now();
    const synced = whenAll(sims, (s) => s.netmap?.peers.length === n - 1 && s.netmap.peers.every((p) => p.online), `${n} netmaps with ${n - 1} online peers`, 600_000);
    await pool(sims, 32, async (s) => {
      await s.connect();
    });
    await synced;
    const connectS = (performance.now() - t) / 1000;
    const rss2 = procStatus(pid);
    const fullBytesAtConnect = sims.reduce((a, s) => a + s.stats.bytes.full, 0);
    const deltaBytesAtConnect = sims.reduce((a, s) => a + s.stats.bytes.delta, 0);
    say(`connected and synced ${n} map streams in ${connectS.toFixed(1)} s`);

    // What one full map is now (the same JSON the server would send), per node.
    const fullNow = encodeFrame({ type: 'full', version: sims[0]!.version, netmap: sims[0]!.netmap }).length;

    interface Sample { kind: string; allMs: number; firstMs: number; serverMs: number; deltaBytes: number; deltaFrames: number; wireBytes: number }
    const samples: Sample[] = [];
    const measure = async (kind: string, change: () => Promise<unknown> | void, applied: (s: SimNode) => boolean): Promise<void> => {
      for (const s of sims) s.resetStats();
      const wire0 = await serverBytesSent(ready.port);
      let first = 0;
      const t0 = performance.now();
      const all = whenAll(sims, (s) => {
        const ok = applied(s);
        if (ok && first === 0) first = performance.now();
        return ok;
      }, kind, 60_000);
      const done = change();
      const serverAt = done ? done.then(() => performance.now()) : null;
      const tAll = await all;
      const serverMs = serverAt ? (await serverAt) - t0 : NaN;
      samples.push({
        kind, allMs: tAll - t0, firstMs: first - t0, serverMs,
        deltaBytes: sims.reduce((a, s) => a + s.stats.bytes.delta, 0),
        deltaFrames: sims.reduce((a, s) => a + s.stats.frames.delta, 0),
        wireBytes: (await serverBytesSent(ready.port)) - wire0,
      });
    };

    for (let k = 0; k < CHANGES; k++) {
      const target = sims[(k * 137) % n]!;
      const id = target.registration!.nodeId;
      const name = `renamed-${k}`;
      await measure('rename (server)', () => {
        const reply = next<{ type: string; seq: number }>();
        child.send({ cmd: 'rename', id, name, seq: k } satisfies ServerCommand);
        return reply;
      }, (s) => (s === target ? s.netmap!.self.name === name : s.netmap!.peers.find((p) => p.id === id)?.name === name));
    }
    for (let k = 0; k < CHANGES; k++) {
      const from = sims[(k * 211 + 5) % n]!;
      const id = from.registration!.nodeId;
      const ep = `203.0.113.${k + 1}:${50000 + k}`;
      await measure('new endpoint (node)', () => from.sendEndpoints([ep]), (s) => (s === from ? s.netmap!.self.endpoints.includes(ep) : s.netmap!.peers.find((p) => p.id === id)?.endpoints.includes(ep) === true));
    }
    const rss3 = procStatus(pid);
    const mem3 = await mem();
    const me = procStatus('self');

    // ---- the table
    const kb = (b: number): string => `${(b / 1024).toFixed(1)} KiB`;
    const mb = (b: number): string => `${(b / 1048576).toFixed(1)} MiB`;
    say('');
    say(`control server, ${n} simulated connected nodes (server in its own process; the sims in another on the same ${cpus().length} cores; TLS on 127.0.0.1 in a lab namespace)`);
    say(`setup: register ${n} in ${registerS.toFixed(1)} s; connect + first sync of all in ${connectS.toFixed(1)} s ` +
      `(${mb(fullBytesAtConnect)} of full maps, ${mb(deltaBytesAtConnect)} of deltas while the others joined)`);
    say('');
    say('change                 | to all nodes (median) | range            | first node | server done | bytes to all (delta frames) | per node | on the wire (TCP payload: TLS)');
    say('-----------------------|-----------------------|------------------|------------|-------------|-----------------------------|----------|-------------------------------');
    for (const kind of [...new Set(samples.map((s) => s.kind))]) {
      const xs = samples.filter((s) => s.kind === kind);
      const all = xs.map((s) => s.allMs);
      const bytes = median(xs.map((s) => s.deltaBytes));
      say(`${kind.padEnd(22)} | ${`${median(all).toFixed(1)} ms`.padEnd(21)} | ${`${Math.min(...all).toFixed(1)}–${Math.max(...all).toFixed(1)} ms`.padEnd(16)} | ` +
        `${`${median(xs.map((s) => s.firstMs)).toFixed(1)} ms`.padEnd(10)} | ${(Number.isNaN(xs[0]!.serverMs) ? '-' : `${median(xs.map((s) => s.serverMs)).toFixed(1)} ms`).padEnd(11)} | ${`${kb(bytes)} (${median(xs.map((s) => s.deltaFrames))} frames)`.padEnd(27)} | ` +
        `${`${(bytes / n).toFixed(0)} B`.padEnd(8)} | ${kb(median(xs.map((s) => s.wireBytes)))}`);
    }
    say('(to all: until every node applied it; first node: the earliest; server done: the rename call returned, every frame handed to TLS)');
    say('');
    say(`a full map now: ${kb(fullNow)} per node → ${mb(fullNow * n)} to all ${n}; ` +
      `a delta is ${(fullNow * n / median(samples.map((s) => s.deltaBytes))).toFixed(0)}× smaller`);
    say('');
    say('server memory (its own process)           | VmRSS    | VmHWM (peak)');
    say('------------------------------------------|----------|-------------');
    for (const [label, r] of [['started, no nodes', rss0], [`${n} registered`, rss1], [`${n} connected and synced`, rss2], [`after ${samples.length} changes`, rss3]] as const) {
      say(`${label.padEnd(41)} | ${`${r.rssMb.toFixed(0)} MB`.padEnd(8)} | ${r.hwmMb.toFixed(0)} MB`);
    }
    for (const [label, m] of [['started, no nodes', mem0], ['after the changes', mem3]] as const) {
      say(`${`${label}, after a full GC`.padEnd(41)} | ${`${m.rssAfterGcMb.toFixed(0)} MB`.padEnd(8)} | ` +
        `JS heap ${m.heapUsedMb.toFixed(0)} MB used of ${m.heapTotalMb.toFixed(0)} MB, external ${m.externalMb.toFixed(0)} MB`);
    }
    say(`(the sims' process: VmRSS ${me.rssMb.toFixed(0)} MB, peak ${me.hwmMb.toFixed(0)} MB)`);
    for (const s of sims) s.close();
    srv.close();
  } finally {
    child.send({ cmd: 'stop' } satisfies ServerCommand);
    await new Promise((resolve) => {
      if (child.exitCode !== null) return resolve(null);
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.once('exit', () => {
        clearTimeout(t);
        resolve(null);
      });
    });
    rmSync(dir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------ entry

async function main(): Promise<void> {
  const [mode, arg] = process.argv.slice(2);
  if (mode === '--server') return serverMain(arg!);
  if (mode === '--driver') return driverMain(Number(arg));
  if (process.getuid?.() !== 0) {
    process.stderr.write('control-bench: needs root (it runs in a lab network namespace)\n');
    process.exit(1);
  }
  const nodes = Number(process.env['BENCH_NODES'] ?? 1000);
  const lab = Lab.create('ctlbench');
  try {
    const ns = await lab.ns('bench');
    const p = lab.spawn(ns, ['node', '--max-old-space-size=8192', SELF, '--driver', String(nodes)], { name: 'control-bench' });
    let shown = 0;
    const flush = (): void => {
      const out = p.output();
      if (out.length > shown) process.stdout.write(out.slice(shown));
      shown = out.length;
    };
    const ticker = setInterval(flush, 500);
    const st = await p.exited;
    clearInterval(ticker);
    flush();
    if (st.code !== 0) throw new Error(`the bench driver ${p.describeExit()}`);
  } finally {
    await lab.cleanup();
  }
}

main().catch((e: Error) => {
  process.stderr.write(`control-bench: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
