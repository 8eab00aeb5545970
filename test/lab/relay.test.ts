/**
 * The real warren-relay and warren-control binaries in namespaces on one
 * bridge, with real RelayClients (relay-agent.js) and a 1,000-client swarm
 * (relay-swarm.js), each in a namespace of its own:
 *
 * - the relay gets its admission list from control (shared secret); a relay
 *   with a wrong secret is refused and admits nobody;
 * - two registered nodes exchange packets and ping through the relay; a key
 *   that is not a node is refused;
 * - deleting a node with `warren-control nodes delete` cuts its session;
 * - half-open: nft DROP both ways between a client's namespace and the relay
 *   — both ends notice within the read deadline (2 × 1 s keepalive); what the
 *   client tried to send meanwhile is refused, never delivered later; it
 *   reconnects once the path is back;
 * - control down: sessions go on, a known node still connects; the list is
 *   fresh again when control is back;
 * - 1,000 concurrent clients held by the relay process, memory per client from
 *   its own process.memoryUsage() (SIGUSR1 stats line) before and after.
 */
import * as assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Lab, waitFor, type LabProc } from '../helpers/lab.js';
import { MeshLab, WARREN_CONTROL, type ControlHandle } from '../helpers/mesh.js';
import { generatePrivateKey, publicKeyOf } from '../../src/crypto/x25519.js';
import { toB64 } from '../../src/wire/control.js';
import type { AgentConfig } from '../helpers/relay-agent.js';
import type { SwarmInput } from '../helpers/relay-swarm.js';

const WARREN_RELAY = WARREN_CONTROL.replace(/warren-control\.js$/, 'warren-relay.js');
const HELPERS = join(WARREN_CONTROL, '..', '..', '..', 'test', 'helpers');
const KEEPALIVE_S = 1;

const lab = Lab.create('relay');
const m = new MeshLab(lab);
let c: ControlHandle;
let relay: LabProc;
let relayNs: string;
let relayUrl = '';
let relayFp = '';
let dir: string;
let secretFile: string;
let authKey: string;

after(() => lab.cleanup());

interface Agent {
  name: string;
  key: string;
  priv: string;
  proc: LabProc;
  ns: string;
  commands: string;
  events(type?: string): Array<Record<string, unknown>>;
  send(to: string, data: string): void;
}

function events(p: LabProc, type?: string): Array<Record<string, unknown>> {
  return p.output().split('\n').filter((l) => l.startsWith('{"event"')).map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((e) => type === undefined || e['event'] === type);
}

function newKey(): { priv: string; key: string } {
  const p = generatePrivateKey();
  return { priv: toB64(p), key: toB64(publicKeyOf(p)) };
}

async function agent(name: string, opts: { register?: boolean; registerOnly?: boolean; keys?: { priv: string; key: string }; ns?: string } = {}): Promise<Agent> {
  const ns = opts.ns ?? (await m.host(name)).ns;
  const k = opts.keys ?? newKey();
  const commands = join(dir, `${name}-${Date.now()}.cmd`);
  writeFileSync(commands, '');
  const cfg: AgentConfig = {
    name, privateKey: k.priv, relayUrl, relayFingerprint: relayFp, keepaliveMs: KEEPALIVE_S * 1000, commandFile: commands,
    registerOnly: opts.registerOnly ?? false,
    ...(opts.register !== false ? { register: { url: c.url, ca: readFileSync(join(c.dir, 'tls-cert.pem'), 'utf8'), fingerprint: c.fingerprint, authKey } } : {}),
  };
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify(cfg));
  const proc = lab.spawn(ns, ['node', join(HELPERS, 'relay-agent.js'), file], { name: `agent-${name}` });
  return {
    name, key: k.key, priv: k.priv, proc, ns, commands,
    events: (type) => events(proc, type),
    send: (to, data) => appendFileSync(commands, JSON.stringify({ cmd: 'send', to, data }) + '\n'),
  };
}

const connectedCount = (a: Agent): number => a.events('state').filter((e) => e['state'] === 'connected').length;

async function connected(a: Agent, count = 1): Promise<void> {
  await waitFor(`${a.name} connected to the relay (${count})`, () => connectedCount(a) >= count, { timeoutMs: 20_000, signal: a.proc.exitSignal });
}

async function received(a: Agent, data: string, timeoutMs = 5000): Promise<Record<string, unknown>> {
  return waitFor(`${a.name} to receive "${data}"`, () => a.events('packet').find((e) => e['data'] === data), { timeoutMs });
}

let statsSeen = 0;
/** SIGUSR1 → the relay's stats line: its process.memoryUsage() and counters. */
async function relayStats(): Promise<Record<string, string>> {
  process.kill(relay.pid, 'SIGUSR1');
  const want = ++statsSeen;
  const line = await waitFor('a stats line', () => {
    const all = relay.output().split('\n').filter((l) => l.includes('stats: clients='));
    return all.length >= want ? all[want - 1] : null;
  });
  return Object.fromEntries([...line.matchAll(/(\w+)=(\S+)/g)].map((x) => [x[1]!, x[2]!]));
}

async function startRelay(ns: string, addr: string, port: number, secret: string, stateDir: string): Promise<LabProc> {
  return lab.spawn(ns, ['node', WARREN_RELAY, '--listen', `${addr}:${port}`, '--stun-listen', `${addr}:${port === 443 ? 3478 : 3480}`, '--tls-self-signed',
    '--state-dir', stateDir, '--region-code', 'lab', '--control', c.url, '--control-fingerprint', c.fingerprint, '--control-secret-file', secret],
  { name: `warren-relay:${port}`, env: { ...m.env, WARREN_RELAY_KEEPALIVE: `${KEEPALIVE_S}s` } });
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'warren-relay-lab-'));
  lab.trackPath(dir);
  await m.init();
  secretFile = join(dir, 'relay.secret');
  writeFileSync(secretFile, `${toB64(generatePrivateKey())}\n`, { mode: 0o600 });
  c = await m.control({ args: ['--relay-secret-file', secretFile] });
  authKey = await c.authkey(['--reusable']);
  const h = await m.host('relay');
  relayNs = h.ns;
  relay = await startRelay(relayNs, h.addr, 443, secretFile, join(dir, 'relay-state'));
  await relay.waitForOutput(/ready/, 20_000);
  await relay.waitForOutput(/admission stream to .* up/, 20_000);
  assert.match(relay.output(), new RegExp(`STUN listening on ${h.addr.replaceAll('.', '\\.')}:3478`));
  relayUrl = `https://${h.addr}:443`;
  relayFp = (await lab.sh(relayNs, ['node', WARREN_RELAY, 'fingerprint', '--state-dir', join(dir, 'relay-state')])).stdout.trim();
  assert.match(relayFp, /^sha256:[0-9a-f]{64}$/);
});

let a: Agent;
let b: Agent;

test('two nodes exchange packets through the relay; a key that is not a node is refused', async () => {
  a = await agent('a');
  b = await agent('b');
  await connected(a);
  await connected(b);
  a.send(b.key, 'hello b');
  b.send(a.key, 'hello a');
  assert.equal((await received(b, 'hello b'))['src'], a.key);
  assert.equal((await received(a, 'hello a'))['src'], b.key);
  appendFileSync(a.commands, '{"cmd":"ping"}\n');
  const pong = await waitFor('a pong', () => a.events('pong')[0]);
  assert.equal(typeof pong['ms'], 'number', JSON.stringify(pong));

  const stranger = await agent('stranger', { register: false });
  await waitFor('the stranger refused', () => stranger.events('state').find((e) => /not admitted/.test(String(e['detail']))), { timeoutMs: 10_000 });
  assert.equal(connectedCount(stranger), 0);
  await stranger.proc.stop();
});

test('a relay with the wrong secret is refused by control and admits nobody', async () => {
  const wrong = join(dir, 'wrong.secret');
  writeFileSync(wrong, 'x'.repeat(40), { mode: 0o600 });
  const addr = relayUrl.replace(/^https:\/\/|:443$/g, '');
  const r2 = await startRelay(relayNs, addr, 8443, wrong, join(dir, 'relay2-state'));
  await r2.waitForOutput(/refused our relay secret \(HTTP 401/, 20_000);
  await r2.stop();
  assert.match(c.proc.output(), /relay admission from .*: refused: wrong or missing relay secret/);
});

test('half-open: DROP both ways — both ends notice within the read deadline; nothing sent meanwhile arrives later', async () => {
  const relayIp = new URL(relayUrl).hostname;
  const file = join(dir, 'cut.nft');
  writeFileSync(file, [
    'table inet wlrelaycut {',
    '  chain out { type filter hook output priority 0; policy accept; ip daddr ' + relayIp + ' tcp dport 443 drop; }',
    '  chain in { type filter hook input priority 0; policy accept; ip saddr ' + relayIp + ' tcp sport 443 drop; }',
    '}', '',
  ].join('\n'));
  const disconnects = (): number => a.events('state').filter((e) => e['state'] === 'disconnected').length;
  const relayClosed = (): number => relay.output().split('\n').filter((l) => /silent for \d+ ms; closing/.test(l)).length;
  const [disconnectsBefore, relayClosedBefore] = [disconnects(), relayClosed()];
  const t0 = Date.now();
  let clientMs = 0, relayMs = 0;
  await lab.sh(a.ns, ['nft', '-f', file]);
  try {
    // The client side: its read deadline (2 × 1 s) fires and it drops the connection.
    await waitFor('a to notice the silence', () => disconnects() > disconnectsBefore, { timeoutMs: 6000 });
    clientMs = Date.now() - t0;
    // The relay side: it closes a's session for silence too.
    await waitFor('the relay to notice the silence', () => relayClosed() > relayClosedBefore, { timeoutMs: 6000 });
    relayMs = Date.now() - t0;
    // While cut off, a's sends are refused at once (nothing is queued)...
    const sentBefore = a.events('sent').length;
    a.send(b.key, 'sent while cut off');
    const verdict = await waitFor('the send verdict', () => a.events('sent')[sentBefore]);
    assert.equal(verdict['ok'], false);
    // ...and b, writing to a, hears that a is gone.
    b.send(a.key, 'to a while cut off');
    await waitFor('peer-gone for a', () => b.events('peer-gone').find((e) => e['key'] === a.key), { timeoutMs: 5000 });
  } finally {
    await lab.sh(a.ns, ['nft', 'delete', 'table', 'inet', 'wlrelaycut']);
  }
  assert.ok(clientMs < 2 * KEEPALIVE_S * 1000 + 1500, `client noticed after ${clientMs} ms`);
  assert.ok(relayMs < 2 * KEEPALIVE_S * 1000 + 1500, `relay noticed after ${relayMs} ms`);
  await connected(a, 2);
  a.send(b.key, 'after the cut');
  await received(b, 'after the cut', 10_000);
  assert.equal(b.events('packet').some((e) => e['data'] === 'sent while cut off'), false, 'a packet refused while disconnected was never delivered');
  process.stdout.write(`half-open noticed by the client after ${clientMs} ms, by the relay after ${relayMs} ms (keepalive ${KEEPALIVE_S} s)\n`);
});

test('deleting a node cuts its relay session', async () => {
  const d = await agent('doomed');
  await connected(d);
  const r = await c.admin(['nodes', 'delete', 'doomed']);
  assert.equal(r.code, 0, r.stderr);
  await waitFor('doomed to be cut', () => d.events('state').find((e) => e['state'] === 'disconnected' && /no longer admitted/.test(String(e['detail']))), { timeoutMs: 10_000 });
  await d.proc.stop();
});

test('control down: sessions go on, a known node still connects; the list is fresh when control is back', async () => {
  const lateKeys = newKey();
  const admittedBefore = Number((await relayStats())['admitted']);
  const reg = await agent('late', { registerOnly: true, keys: lateKeys });
  await waitFor('late registered', () => reg.events('registered')[0], { timeoutMs: 15_000 });
  await reg.proc.exited;
  await waitFor('late admitted on the relay', async () => Number((await relayStats())['admitted']) > admittedBefore, { intervalMs: 200 });
  await c.proc.stop('SIGTERM');
  try {
    await relay.waitForOutput(/admission stream down/, 10_000);
    a.send(b.key, 'control is down');
    await received(b, 'control is down');
    const late = await agent('late-run', { register: false, keys: lateKeys });
    await connected(late);
    late.send(a.key, 'from late');
    await received(a, 'from late');
    await late.proc.stop();
  } finally {
    await c.restart();
  }
  await waitFor('the admission stream back', () => (relay.output().match(/admission stream to .* up/g) ?? []).length >= 2, { timeoutMs: 40_000 });
});

test('one relay holds 1,000 concurrent clients (memory per client from the relay process)', { timeout: 170_000 }, async () => {
  const N = 1000;
  const s = await m.host('swarm');
  const keys = Array.from({ length: N }, () => toB64(generatePrivateKey()));
  const input: SwarmInput = {
    url: relayUrl, ca: '', fingerprint: relayFp, keys, concurrency: 50, commandFile: join(dir, 'swarm.cmd'),
    register: { url: c.url, ca: readFileSync(join(c.dir, 'tls-cert.pem'), 'utf8'), fingerprint: c.fingerprint, authKey },
  };
  input.ca = readFileSync(join(dir, 'relay-state', 'tls-cert.pem'), 'utf8');
  writeFileSync(input.commandFile!, '');
  const file = join(dir, 'swarm.json');
  writeFileSync(file, JSON.stringify(input));
  const before = await relayStats();
  const swarm = lab.spawn(s.ns, ['node', '--max-old-space-size=1024', join(HELPERS, 'relay-swarm.js'), file], { name: 'swarm' });
  try {
    await waitFor('the swarm registered', () => events(swarm, 'registered')[0], { timeoutMs: 90_000, signal: swarm.exitSignal });
    const ready = await waitFor('the swarm connected', () => events(swarm, 'ready')[0], { timeoutMs: 60_000, signal: swarm.exitSignal });
    assert.equal(ready['connected'], N, JSON.stringify(ready));
    const held = await relayStats();
    assert.equal(Number(held['clients']), N + 2, 'a and b plus the swarm');
    appendFileSync(input.commandFile!, 'ring\n');
    const ring = await waitFor('the ring', () => events(swarm, 'ring')[0], { timeoutMs: 30_000, signal: swarm.exitSignal });
    assert.equal(ring['ringReceived'], N);
    const mib = (x: string | undefined): number => Number(String(x).replace('MiB', ''));
    const perClient = (k: string): string => (((mib(held[k]) - mib(before[k])) * 1024) / N).toFixed(1);
    process.stdout.write(`warren-relay holding ${N} clients: rss ${before['rss']} → ${held['rss']} (${perClient('rss')} KiB per client), ` +
      `heap ${before['heap']} → ${held['heap']} (${perClient('heap')} KiB per client); registration ${events(swarm, 'registered')[0]!['ms']} ms, ` +
      `connect ${ready['ms']} ms, ring ${ring['ms']} ms\n`);
    appendFileSync(input.commandFile!, 'close\n');
    await swarm.exited;
  } finally {
    await swarm.stop();
  }
});

test('SIGTERM stops the relay cleanly', async () => {
  const st = await relay.stop('SIGTERM');
  assert.equal(st.code, 0, relay.tail());
  assert.match(relay.output(), /SIGTERM: shutting down/);
});
