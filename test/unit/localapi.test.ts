import { after, test } from 'node:test';
import { deepEqual, equal, match, ok, rejects } from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/warren.js';
import type { DeviceStatus } from '../../src/dataplane/status.js';
import { LocalApiClient, LocalApiClientError, explainConnectError } from '../../src/localapi/client.js';
import { LocalApiError, LocalApiServer, LocalApiServerError, MAX_BODY_BYTES } from '../../src/localapi/server.js';
import type { LocalApiHandlers } from '../../src/localapi/server.js';

const root = mkdtempSync(join(tmpdir(), 'warren-localapi-'));
let n = 0;
/** A fresh socket path in a directory that does not exist yet. */
function socketPath(): string {
  return join(root, `d${n++}`, 'run', 'warrend.sock');
}

after(() => rmSync(root, { recursive: true, force: true }));

const STATUS: DeviceStatus = {
  publicKey: 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=',
  listenPort: 51820,
  fwMark: 0,
  tun: 'wg0',
  peers: [
    {
      publicKey: 'HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=',
      endpoint: '10.0.0.2:51820',
      allowedIps: ['10.9.0.2/32'],
      latestHandshake: 1_700_000_000,
      rxBytes: 10,
      txBytes: 20,
      persistentKeepalive: 25,
      presharedKey: false,
    },
  ],
  drops: { bad_mac: 1 },
  counters: { rx_packets: 5 },
};

const handlers: LocalApiHandlers = { status: () => STATUS };

async function withServer(h: LocalApiHandlers, fn: (path: string) => Promise<void>): Promise<void> {
  const path = socketPath();
  const server = new LocalApiServer({ socketPath: path, handlers: h });
  await server.start();
  try {
    await fn(path);
  } finally {
    await server.stop();
  }
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function httpRequest(path: string, method: string, url: string, body?: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers = body ? { 'content-length': body.length } : {};
    const req = request({ socketPath: path, method, path: url, agent: false, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Writes `head` (and `body`) on a raw connection; resolves to the status line's code and the rest. */
function rawRequest(path: string, head: string, body?: Buffer): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const sock = connect(path);
    let text = '';
    sock.setEncoding('utf8');
    sock.on('data', (c: string) => (text += c));
    sock.on('end', () => resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1] ?? 0), text }));
    sock.on('error', reject);
    sock.write(head);
    if (body) sock.write(body);
  });
}

function capture(): { write(s: string): boolean; text: string } {
  return {
    text: '',
    write(s: string) {
      this.text += s;
      return true;
    },
  };
}

void test('client reads status over the socket; socket is 0600, directory 0755', async () => {
  await withServer(handlers, async (path) => {
    deepEqual(await new LocalApiClient(path).status(), STATUS);
    equal(statSync(path).mode & 0o777, 0o600);
    ok(statSync(path).isSocket());
    equal(statSync(join(path, '..')).mode & 0o777, 0o755);
  });
});

void test('stop() removes the socket file', async () => {
  const path = socketPath();
  const server = new LocalApiServer({ socketPath: path, handlers });
  await server.start();
  ok(existsSync(path));
  await server.stop();
  equal(existsSync(path), false);
  await server.stop(); // idempotent
});

void test('unknown path is 404, wrong method 405, both with a JSON error', async () => {
  await withServer(handlers, async (path) => {
    const a = await httpRequest(path, 'GET', '/v0/nope');
    equal(a.status, 404);
    match((JSON.parse(a.body) as { error: string }).error, /no such endpoint: \/v0\/nope/);
    equal(a.headers['content-type'], 'application/json; charset=utf-8');

    const b = await httpRequest(path, 'POST', '/v0/status');
    equal(b.status, 405);
    equal(b.headers.allow, 'GET');
    match((JSON.parse(b.body) as { error: string }).error, /method POST not allowed/);

    const c = await httpRequest(path, 'GET', '/v0/status?x=1');
    equal(c.status, 200);
    deepEqual(JSON.parse(c.body), STATUS);
  });
});

void test('a body over 1 MiB is 413, whether declared or streamed', async () => {
  await withServer(handlers, async (path) => {
    const declared = await rawRequest(
      path,
      `GET /v0/status HTTP/1.1\r\nHost: x\r\nContent-Length: ${2 * MAX_BODY_BYTES}\r\n\r\n`,
    );
    equal(declared.status, 413);
    match(declared.text, /"error":"request body larger than 1048576 bytes"/);

    const size = MAX_BODY_BYTES + 1;
    const chunk = Buffer.concat([Buffer.from(`${size.toString(16)}\r\n`), Buffer.alloc(size, 0x61), Buffer.from('\r\n')]);
    const streamed = await rawRequest(path, 'GET /v0/status HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n', chunk);
    equal(streamed.status, 413);

    // A body under the limit is fine.
    const small = await httpRequest(path, 'GET', '/v0/status', Buffer.alloc(1000));
    equal(small.status, 200);
  });
});

void test('a handler that throws is 500 with its message; LocalApiError picks the status', async () => {
  const failing: LocalApiHandlers = {
    status: () => {
      throw new Error('engine exploded');
    },
  };
  await withServer(failing, async (path) => {
    const a = await httpRequest(path, 'GET', '/v0/status');
    equal(a.status, 500);
    deepEqual(JSON.parse(a.body), { error: 'engine exploded' });
    await rejects(new LocalApiClient(path).status(), (err: unknown) => {
      ok(err instanceof LocalApiClientError);
      equal(err.code, 'http');
      equal(err.status, 500);
      equal(err.message, 'engine exploded');
      return true;
    });
  });
  const notReady: LocalApiHandlers = {
    status: () => Promise.reject(new LocalApiError(503, 'engine not started')),
  };
  await withServer(notReady, async (path) => {
    const a = await httpRequest(path, 'GET', '/v0/status');
    equal(a.status, 503);
    deepEqual(JSON.parse(a.body), { error: 'engine not started' });
  });
});

void test('a stale socket file left by a killed daemon is removed on start', async () => {
  const path = socketPath();
  const dir = join(path, '..');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const child = spawn(
    process.execPath,
    ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('ready'))`],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) resolve();
    });
    child.once('error', reject);
    child.once('exit', () => reject(new Error('listener exited early')));
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
  ok(statSync(path).isSocket(), 'the killed daemon left its socket behind');

  const server = new LocalApiServer({ socketPath: path, handlers });
  await server.start();
  try {
    deepEqual(await new LocalApiClient(path).status(), STATUS);
  } finally {
    await server.stop();
  }
});

void test('a second server on a live socket refuses and leaves the first alone', async () => {
  await withServer(handlers, async (path) => {
    const second = new LocalApiServer({ socketPath: path, handlers });
    await rejects(second.start(), (err: unknown) => {
      ok(err instanceof LocalApiServerError);
      equal(err.code, 'in_use');
      match(err.message, /another warrend is already listening on /);
      return true;
    });
    deepEqual(await new LocalApiClient(path).status(), STATUS);
  });
});

void test('start refuses to replace a path that is not a socket', async () => {
  const path = socketPath();
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, 'precious');
  const server = new LocalApiServer({ socketPath: path, handlers });
  await rejects(server.start(), (err: unknown) => err instanceof LocalApiServerError && err.code === 'not_a_socket');
  equal(readFileSync(path, 'utf8'), 'precious');
});

void test('client errors: missing socket says not running; EACCES says run as root', async () => {
  const path = socketPath();
  await rejects(new LocalApiClient(path).status(), (err: unknown) => {
    ok(err instanceof LocalApiClientError);
    equal(err.code, 'not_running');
    equal(err.message, `warrend is not running (no socket at ${path})`);
    return true;
  });
  const eacces = Object.assign(new Error('connect EACCES'), { code: 'EACCES' });
  const e = explainConnectError(eacces, '/run/warren/warrend.sock');
  equal(e.code, 'permission_denied');
  match(e.message, /run as root/);
  equal(e.cause, eacces);
});

void test('warren status --json prints the handler status as parseable JSON', async () => {
  await withServer(handlers, async (path) => {
    const stdout = capture();
    const stderr = capture();
    equal(await main(['--socket', path, 'status', '--json'], { stdout, stderr }), 0);
    equal(stderr.text, '');
    deepEqual(JSON.parse(stdout.text), STATUS);

    const text = capture();
    const code = await main(['status'], { stdout: text, stderr, env: { WARREN_SOCKET: path }, now: () => 1_700_000_010_000 });
    equal(code, 0);
    match(text.text, /^interface: wg0\n/);
    match(text.text, /latest handshake: 10 seconds ago/);
  });
});

void test('warren against a missing socket exits 1 with "not running"', async () => {
  const path = socketPath();
  const stdout = capture();
  const stderr = capture();
  equal(await main([`--socket=${path}`, 'status'], { stdout, stderr }), 1);
  equal(stdout.text, '');
  equal(stderr.text, `warren: warrend is not running (no socket at ${path})\n`);
});

void test('warren usage errors exit 2 with a hint; help and version exit 0', async () => {
  const run = async (...argv: string[]): Promise<{ code: number; out: string; err: string }> => {
    const stdout = capture();
    const stderr = capture();
    const code = await main(argv, { stdout, stderr, env: {} });
    return { code, out: stdout.text, err: stderr.text };
  };

  const unknownCmd = await run('frobnicate');
  equal(unknownCmd.code, 2);
  match(unknownCmd.err, /unknown command "frobnicate"/);
  match(unknownCmd.err, /warren help/);

  const unknownFlag = await run('status', '--bogus');
  equal(unknownFlag.code, 2);
  match(unknownFlag.err, /unknown flag --bogus/);
  match(unknownFlag.err, /warren status --help/);

  const unknownGlobal = await run('--bogus', 'status');
  equal(unknownGlobal.code, 2);
  match(unknownGlobal.err, /unknown flag --bogus/);

  const missingValue = await run('--socket');
  equal(missingValue.code, 2);

  const extra = await run('status', 'wg0');
  equal(extra.code, 2);
  match(extra.err, /unexpected argument/);

  const none = await run();
  equal(none.code, 2);
  match(none.err, /^Usage: warren/);

  for (const argv of [['help'], ['--help'], ['-h']]) {
    const h = await run(...argv);
    equal(h.code, 0);
    match(h.out, /^Usage: warren \[--socket PATH\] <command>/);
    match(h.out, /\n {2}status +show this node's interface/);
  }
  const statusHelp = await run('status', '--help');
  equal(statusHelp.code, 0);
  match(statusHelp.out, /Usage: warren status \[--json\]/);
  deepEqual(await run('help', 'status'), statusHelp);

  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  deepEqual(await run('version'), { code: 0, out: `warren ${pkg.version}\n`, err: '' });
  deepEqual(await run('--version'), { code: 0, out: `warren ${pkg.version}\n`, err: '' });
});
