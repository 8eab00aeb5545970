/**
 * The OS side of the tunnel: owns the tunnel interface's MTU and link state, its
 * addresses, the routes that send traffic into it, and — for a default route —
 * wg-quick's policy routing (a table and fwmark of our own, so the tunnel's own
 * UDP never loops into the tunnel). It drives iproute2 (`ip`, no shell) and
 * remembers exactly what it installed: `apply()` changes only the difference
 * from the previous call, and `teardown()` removes what it added.
 *
 * Default routes, exactly like wg-quick with `Table = auto`: 0.0.0.0/0 and ::/0
 * never go into the main table. Instead a table T (the configured fwmark, else
 * the first of 51820, 51821, ... with no routes in it) gets the default route,
 * and per family
 *
 *   ip rule add pref 32764 table main suppress_prefixlength 0   (specific routes in main still win)
 *   ip rule add pref 32765 not fwmark T table T                (everything else into the tunnel)
 *
 * and the caller puts mark T on its UDP socket (`apply()` returns it), which
 * the first rule lets through to the real default route. For IPv4,
 * net.ipv4.conf.all.src_valid_mark is set to 1, as wg-quick does. Other routes
 * go to the main table (`Table = auto`), to table N (`Table = N`, default
 * routes included, no rules), or nowhere (`Table = off`).
 *
 * Not done here (wg-quick does them with nft): the conntrack mark save/restore
 * for strict rp_filter and the guard against spoofed packets to the tunnel
 * address. Routes that already exist (for example the kernel's prefix route for
 * an address) are left alone and are not removed later.
 */
import { execFile, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { canonicalPrefix } from './wgquick.js';

/** Packets the kernel may queue on the TUN before warrend reads them. */
export const TUN_TXQUEUELEN = 100;

export interface RouterConfig {
  /** The tunnel interface's name. */
  tun: string;
  mtu: number;
  /** Interface addresses with prefix length ("100.64.0.1/32", "fd7a::1/128"). */
  addresses: string[];
  /** Prefixes routed into the tunnel: the peers' allowed IPs. */
  routes: string[];
  table: 'off' | 'auto' | number;
  /** The mark the tunnel's own UDP socket carries; 0 = none. */
  fwMark: number;
}

export interface ApplyResult {
  /** The mark the caller must put on its UDP socket(s) (SO_MARK); 0 = none. */
  fwMark: number;
}

export type ExecFn = (cmd: string, args: string[]) => Promise<string>;

/**
 * Runs many `ip` commands (the words after `ip`, no family flag) in one
 * process; resolves to each command's error text, or null where it worked.
 */
export type IpBatchFn = (commands: string[][]) => Promise<Array<string | null>>;

export interface RouterOptions {
  /** Runs a command without a shell and resolves to its stdout; rejects with stderr in the message. */
  exec?: ExecFn;
  /**
   * Route changes in one `ip -batch` process (one spawn per peer cost 1.6 s for
   * 100 peers' 200 routes, 10 ms batched). Default: `ip -force -batch -`, unless
   * a custom `exec` is given, which then runs one command per route.
   */
  ipBatch?: IpBatchFn;
  log?: (msg: string) => void;
  /** Work inside this network namespace (`ip -n NS`, `ip netns exec NS sysctl`). */
  netns?: string;
  /** Sets a sysctl ("net.ipv4.conf.all.src_valid_mark", "1"). Default: /proc/sys, or sysctl -w in `netns`. */
  writeSysctl?: (key: string, value: string) => Promise<void>;
  /**
   * Called during apply() when the mark the UDP socket needs changes, after the
   * rules for the old mark are gone and before the rules for the new one go in
   * (wg-quick's order: `wg set fwmark` before `ip rule add`), so the tunnel's own
   * packets never loop into it. apply() also returns the mark.
   */
  onFwMark?: (mark: number) => void | Promise<void>;
}

/** One or more `ip` commands failed; `errors` has each failure. */
export class RouterError extends Error {
  readonly code = 'EROUTER';
  override readonly name = 'RouterError';
  readonly errors: Error[];

  constructor(message: string, errors: Error[] = []) {
    super(message, errors[0] ? { cause: errors[0] } : undefined);
    this.errors = errors;
  }
}

/** First table tried when no fwmark is configured (wg-quick's choice). */
export const DEFAULT_POLICY_TABLE = 51820;
/** Rule priorities: suppress first, so specific routes in main win over the tunnel's default. */
export const RULE_PREF_SUPPRESS = 32764;
export const RULE_PREF_FWMARK = 32765;
const TABLE_SEARCH_LIMIT = 1000;

type Family = 4 | 6;

interface AddressItem {
  family: Family;
  addr: string;
  dev: string;
}
interface RouteItem {
  family: Family;
  prefix: string;
  table: number | 'main';
  dev: string;
}
interface RuleItem {
  family: Family;
  /** Everything after `rule add`, e.g. ['pref', '32765', 'not', 'fwmark', '51820', 'table', '51820']. */
  spec: string[];
}

interface Desired {
  addresses: Map<string, AddressItem>;
  routes: Map<string, RouteItem>;
  rules: Map<string, RuleItem>;
  /** Policy table in use for default routes, or null. */
  policyTable: number | null;
  fwMark: number;
  srcValidMark: boolean;
}

const familyOf = (prefix: string): Family => (prefix.includes(':') ? 6 : 4);
const routeKey = (r: RouteItem): string => `${r.table} ${r.prefix}`;
const ruleKey = (r: RuleItem): string => `-${r.family} ${r.spec.join(' ')}`;

/** iproute2 / kernel texts (as seen on Linux 6.x) that mean "already there" and "already gone". */
const EXISTS_RE = /File exists|Address already assigned/i;
const GONE_RE =
  /No such process|Cannot find device|No such device|Cannot assign requested address|No such file or directory|Address not found|FIB table does not exist/i;
const NO_TABLE_RE = /FIB table does not exist/i;

/** Runs `cmd` without a shell; resolves to stdout, rejects with stderr in the message. The default `exec`. */
export function execCommand(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 10_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) {
        const why = stderr.trim() || err.message;
        reject(new Error(`${cmd} ${args.join(' ')}: ${why}`, { cause: err }));
      } else {
        resolve(stdout);
      }
    });
  });
}

export class Router {
  private readonly exec: ExecFn;
  private readonly ipBatch: IpBatchFn | null;
  private readonly log: (msg: string) => void;
  private readonly netns: string | undefined;
  private readonly writeSysctl: (key: string, value: string) => Promise<void>;
  private readonly onFwMark: (mark: number) => void | Promise<void>;

  /** What this router installed and has not removed yet. */
  private dev: string | null = null;
  /** The MTU set (and link brought up) on `dev`, or null. */
  private mtu: number | null = null;
  private addresses = new Map<string, AddressItem>();
  private routes = new Map<string, RouteItem>();
  private rules = new Map<string, RuleItem>();
  /** The policy table and whether we picked it (true) or it came from the fwmark (false). */
  private policy: { table: number; picked: boolean } | null = null;
  private srcValidMarkSet = false;
  private currentMark = 0;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(opts: RouterOptions = {}) {
    this.exec = opts.exec ?? execCommand;
    this.ipBatch = opts.ipBatch ?? (opts.exec ? null : (commands) => ipBatchCommand(commands, opts.netns));
    this.log = opts.log ?? (() => {});
    this.netns = opts.netns;
    this.writeSysctl = opts.writeSysctl ?? ((key, value) => this.defaultSysctl(key, value));
    this.onFwMark = opts.onFwMark ?? (() => {});
  }

  /** The mark the caller's UDP socket must carry after the last apply(); 0 = none. */
  get fwMark(): number {
    return this.currentMark;
  }

  /**
   * Makes the OS match `cfg`, changing only what differs from the last call.
   * On failures it still does every step it can, then rejects with a
   * RouterError; calling apply() again retries what is missing.
   */
  apply(cfg: RouterConfig): Promise<ApplyResult> {
    return this.serialize(() => this.doApply(cfg));
  }

  /** Removes every rule, route and address this router added. */
  teardown(): Promise<void> {
    return this.serialize(() => this.doTeardown());
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async doApply(cfg: RouterConfig): Promise<ApplyResult> {
    validate(cfg);
    const errors: Error[] = [];
    if (this.dev !== null && this.dev !== cfg.tun) {
      this.log(`router: tunnel changed from ${this.dev} to ${cfg.tun}; removing the old state`);
      await this.removeAll(errors);
      if (errors.length > 0) {
        throw new RouterError(`router: could not clear ${this.dev}: ${errors[0]?.message ?? ''}`, errors);
      }
    }
    this.dev = cfg.tun;
    const want = await this.desired(cfg);

    // Take away first (rules, then routes, then addresses), then add in the opposite order.
    for (const [key, rule] of this.rules) {
      if (!want.rules.has(key)) await this.delRule(key, rule, errors);
    }
    await this.delRoutes([...this.routes].filter(([key]) => !want.routes.has(key)), errors);
    for (const [key, a] of this.addresses) {
      if (!want.addresses.has(key)) await this.delAddress(key, a, errors);
    }

    if (this.mtu !== cfg.mtu) {
      try {
        // A short queue on the TUN: under load the kernel's default 500 packets
        // (~11 ms at 0.5 Gbit/s) sit in front of every interactive packet; 100
        // keeps throughput and cuts the standing queue (measured: ping under
        // load 11.5 ms → 5 ms, iperf3 unchanged; 64 and below lose throughput).
        await this.ip(['link', 'set', 'dev', cfg.tun, 'mtu', String(cfg.mtu), 'txqueuelen', String(TUN_TXQUEUELEN), 'up']);
        this.mtu = cfg.mtu;
      } catch (err) {
        errors.push(asError(err));
      }
    }
    for (const [key, a] of want.addresses) {
      if (!this.addresses.has(key)) await this.addAddress(key, a, errors);
    }
    await this.addRoutes([...want.routes].filter(([key]) => !this.routes.has(key)), errors);
    if (want.srcValidMark && !this.srcValidMarkSet) {
      try {
        await this.writeSysctl('net.ipv4.conf.all.src_valid_mark', '1');
        this.srcValidMarkSet = true;
      } catch (err) {
        // Only strict rp_filter needs it; the routes work without it, so warn and go on.
        this.log(`router: could not set net.ipv4.conf.all.src_valid_mark=1: ${asError(err).message}`);
      }
    }
    if (want.fwMark !== this.currentMark) {
      try {
        await this.onFwMark(want.fwMark);
      } catch (err) {
        errors.push(asError(err));
      }
      this.currentMark = want.fwMark;
    }
    for (const [key, rule] of want.rules) {
      if (!this.rules.has(key)) await this.addRule(key, rule, errors);
    }

    this.policy = want.policyTable === null ? null : { table: want.policyTable, picked: cfg.fwMark === 0 };
    if (errors.length > 0) {
      throw new RouterError(`router: ${errors.length} change(s) failed: ${errors[0]?.message ?? ''}`, errors);
    }
    return { fwMark: want.fwMark };
  }

  private async doTeardown(): Promise<void> {
    const errors: Error[] = [];
    await this.removeAll(errors);
    if (errors.length > 0) {
      throw new RouterError(`router: teardown left ${errors.length} item(s): ${errors[0]?.message ?? ''}`, errors);
    }
  }

  private async removeAll(errors: Error[]): Promise<void> {
    for (const [key, rule] of this.rules) await this.delRule(key, rule, errors);
    await this.delRoutes([...this.routes], errors);
    for (const [key, a] of this.addresses) await this.delAddress(key, a, errors);
    if (errors.length === 0) {
      this.dev = null;
      this.mtu = null;
      this.policy = null;
      this.currentMark = 0;
    }
  }

  /** The full desired state for `cfg`; may look up which policy table is free. */
  private async desired(cfg: RouterConfig): Promise<Desired> {
    const want: Desired = {
      addresses: new Map(),
      routes: new Map(),
      rules: new Map(),
      policyTable: null,
      fwMark: cfg.fwMark,
      srcValidMark: false,
    };
    for (const text of cfg.addresses) {
      const addr = canonicalPrefix(text, false) as string; // validated
      want.addresses.set(addr, { family: familyOf(addr), addr, dev: cfg.tun });
    }
    if (cfg.table === 'off') return want;

    const prefixes = [...new Set(cfg.routes.map((r) => canonicalPrefix(r, true) as string))];
    const defaults = prefixes.filter((p) => p.endsWith('/0'));
    let policyTable: number | null = null;
    if (cfg.table === 'auto' && defaults.length > 0) {
      policyTable = await this.policyTableFor(cfg.fwMark);
      want.policyTable = policyTable;
      want.fwMark = policyTable;
      for (const prefix of defaults) {
        const family = familyOf(prefix);
        const t = String(policyTable);
        const rules: RuleItem[] = [
          { family, spec: ['pref', String(RULE_PREF_FWMARK), 'not', 'fwmark', t, 'table', t] },
          { family, spec: ['pref', String(RULE_PREF_SUPPRESS), 'table', 'main', 'suppress_prefixlength', '0'] },
        ];
        for (const r of rules) want.rules.set(ruleKey(r), r);
        if (family === 4) want.srcValidMark = true;
      }
    }
    for (const prefix of prefixes) {
      let table: number | 'main';
      if (typeof cfg.table === 'number') table = cfg.table;
      else if (prefix.endsWith('/0') && policyTable !== null) table = policyTable;
      else table = 'main';
      const r: RouteItem = { family: familyOf(prefix), prefix, table, dev: cfg.tun };
      want.routes.set(routeKey(r), r);
    }
    return want;
  }

  /** wg-quick's choice: the fwmark if set, else the first free table from 51820. */
  private async policyTableFor(fwMark: number): Promise<number> {
    if (fwMark !== 0) return fwMark;
    if (this.policy?.picked) return this.policy.table;
    for (let t = DEFAULT_POLICY_TABLE; t < DEFAULT_POLICY_TABLE + TABLE_SEARCH_LIMIT; t++) {
      if ((await this.tableEmpty(4, t)) && (await this.tableEmpty(6, t))) return t;
    }
    throw new RouterError(`router: no free routing table in ${DEFAULT_POLICY_TABLE}..${DEFAULT_POLICY_TABLE + TABLE_SEARCH_LIMIT - 1}`);
  }

  private async tableEmpty(family: Family, table: number): Promise<boolean> {
    try {
      return (await this.ip([`-${family}`, 'route', 'show', 'table', String(table)])).trim() === '';
    } catch (err) {
      if (NO_TABLE_RE.test(asError(err).message)) return true; // never had a route
      throw err;
    }
  }

  private async addAddress(key: string, a: AddressItem, errors: Error[]): Promise<void> {
    const args = [`-${a.family}`, 'address', 'add', a.addr, 'dev', a.dev];
    if (a.family === 6) args.push('nodad');
    // An address already on our own interface is ours either way.
    if (await this.tryAdd(args, errors)) this.addresses.set(key, a);
  }

  private async delAddress(key: string, a: AddressItem, errors: Error[]): Promise<void> {
    if (await this.tryDel([`-${a.family}`, 'address', 'del', a.addr, 'dev', a.dev], errors)) this.addresses.delete(key);
  }

  private async addRoutes(items: Array<[string, RouteItem]>, errors: Error[]): Promise<void> {
    const results = await this.routeCommands('add', items.map(([, r]) => r), errors);
    items.forEach(([key, r], i) => {
      const result = addOutcome(results[i]!, errors);
      if (result === 'added') {
        this.routes.set(key, r);
      } else if (result === 'exists') {
        // Someone else's route (or the kernel's prefix route for an address): leave it, never delete it.
        this.log(`router: route ${r.prefix} (table ${r.table}) already exists; leaving it as it is`);
      }
    });
  }

  private async delRoutes(items: Array<[string, RouteItem]>, errors: Error[]): Promise<void> {
    const results = await this.routeCommands('del', items.map(([, r]) => r), errors);
    items.forEach(([key], i) => {
      if (delOutcome(results[i]!, errors)) this.routes.delete(key);
    });
  }

  /** `ip route add|del` for each route: in one batch when we can; each one's error or null. */
  private async routeCommands(verb: 'add' | 'del', routes: RouteItem[], errors: Error[]): Promise<Array<Error | null>> {
    const words = (r: RouteItem): string[] => ['route', verb, r.prefix, 'dev', r.dev, ...tableArgs(r.table)];
    if (routes.length === 0) return [];
    if (!this.ipBatch) {
      const out: Array<Error | null> = [];
      for (const r of routes) out.push(await this.ip([`-${r.family}`, ...words(r)]).then(() => null, asError));
      return out;
    }
    try {
      const texts = await this.ipBatch(routes.map(words));
      return routes.map((r, i) => (texts[i] == null ? null : new Error(`ip ${words(r).join(' ')}: ${texts[i]}`)));
    } catch (err) {
      errors.push(asError(err));
      return routes.map(() => new Error('not attempted: the batch failed'));
    }
  }

  private async addRule(key: string, r: RuleItem, errors: Error[]): Promise<void> {
    // An identical rule (left by a crashed run) is adopted, so teardown removes it.
    if (await this.tryAdd([`-${r.family}`, 'rule', 'add', ...r.spec], errors)) this.rules.set(key, r);
  }

  /** Runs an add; 'added', 'exists' (the kernel already had it), or false (failed, error recorded). */
  private async tryAdd(args: string[], errors: Error[]): Promise<'added' | 'exists' | false> {
    return addOutcome(await this.ip(args).then(() => null, asError), errors);
  }

  private async delRule(key: string, r: RuleItem, errors: Error[]): Promise<void> {
    if (await this.tryDel([`-${r.family}`, 'rule', 'del', ...r.spec], errors)) this.rules.delete(key);
  }

  /** Runs a delete; true when the item is gone (deleted now or already). */
  private async tryDel(args: string[], errors: Error[]): Promise<boolean> {
    return delOutcome(await this.ip(args).then(() => null, asError), errors);
  }

  private ip(args: string[]): Promise<string> {
    return this.exec('ip', this.netns === undefined ? args : ['-n', this.netns, ...args]);
  }

  private async defaultSysctl(key: string, value: string): Promise<void> {
    if (this.netns !== undefined) {
      await this.exec('ip', ['netns', 'exec', this.netns, 'sysctl', '-q', '-w', `${key}=${value}`]);
    } else {
      await writeFile(`/proc/sys/${key.replaceAll('.', '/')}`, value);
    }
  }
}

/** An add's result: 'added', 'exists' (the kernel already had it), or false (failed, error recorded). */
function addOutcome(err: Error | null, errors: Error[]): 'added' | 'exists' | false {
  if (err === null) return 'added';
  if (EXISTS_RE.test(err.message)) return 'exists';
  errors.push(err);
  return false;
}

/** A delete's result: true when the item is gone (deleted now or already). */
function delOutcome(err: Error | null, errors: Error[]): boolean {
  if (err === null || GONE_RE.test(err.message)) return true;
  errors.push(err);
  return false;
}

/**
 * `ip [-n NS] -force -batch -`: one process for many commands. With -force ip
 * carries on after a failure and prints the error, then "Command failed -:N"
 * (N = the line), on stderr.
 */
export function ipBatchCommand(commands: string[][], netns?: string): Promise<Array<string | null>> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', [...(netns === undefined ? [] : ['-n', netns]), '-force', '-batch', '-'], { stdio: ['pipe', 'ignore', 'pipe'], timeout: 10_000 });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => (stderr += d));
    child.on('error', (err) => reject(new Error(`ip -batch: ${err.message}`, { cause: err })));
    child.on('close', (code, signal) => {
      if (signal) return reject(new Error(`ip -batch: killed by ${signal}`));
      resolve(parseIpBatchErrors(stderr, commands.length, code ?? 0));
    });
    child.stdin.on('error', () => undefined); // an early exit shows up in 'close'
    child.stdin.end(commands.map((c) => c.join(' ')).join('\n') + '\n');
  });
}

/** Each command's error text (null = it worked) from `ip -force -batch`'s stderr. */
export function parseIpBatchErrors(stderr: string, count: number, exitCode: number): Array<string | null> {
  const out: Array<string | null> = Array.from({ length: count }, () => null);
  let message: string[] = [];
  let failures = 0;
  for (const line of stderr.split('\n')) {
    const m = /^Command failed .*:(\d+)$/.exec(line.trim());
    if (!m) {
      if (line.trim()) message.push(line.trim());
      continue;
    }
    const i = Number(m[1]) - 1;
    if (i >= 0 && i < count) out[i] = message.join('; ') || 'failed';
    failures++;
    message = [];
  }
  // A failure ip did not attribute to a line (it should not happen): fail them all rather than claim success.
  if (exitCode !== 0 && failures === 0) return out.map(() => stderr.trim() || `ip -batch exited with code ${exitCode}`);
  return out;
}

function tableArgs(table: number | 'main'): string[] {
  return table === 'main' ? [] : ['table', String(table)];
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function validate(cfg: RouterConfig): void {
  const bad = (what: string): never => {
    throw new RouterError(`router: bad config: ${what}`);
  };
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(cfg.tun)) bad(`interface name "${cfg.tun}"`);
  if (!Number.isInteger(cfg.mtu) || cfg.mtu < 576 || cfg.mtu > 65535) bad(`mtu ${cfg.mtu}`);
  if (!Number.isInteger(cfg.fwMark) || cfg.fwMark < 0 || cfg.fwMark > 0xffffffff) bad(`fwMark ${cfg.fwMark}`);
  const t = cfg.table;
  if (t !== 'off' && t !== 'auto' && !(Number.isInteger(t) && t >= 1 && t <= 0xffffffff)) bad(`table ${String(t)}`);
  for (const a of cfg.addresses) if (canonicalPrefix(a, false) === null) bad(`address "${a}"`);
  for (const r of cfg.routes) if (canonicalPrefix(r, true) === null) bad(`route "${r}"`);
}
