/**
 * warren-control's HTTPS API and map streams, in process on 127.0.0.1 with a
 * SqliteStore in a temp dir and simulated nodes (test/helpers/sim-node.ts):
 *   - scale: 200 nodes register at once with one reusable key, get unique
 *     addresses, and each ends up with the other 199 in its netmap;
 *   - hostile input: malformed, oversized and out-of-order requests to every
 *     endpoint and on the map stream get a 4xx / an error frame with a
 *     meaningful message (or a closed stream), the server keeps answering,
 *     and a fuzz run leaves the database intact (integrity_check, counts);
 *   - impersonation: another node's public keys (all a netmap holds) are not
 *     enough to register, open a map stream or rotate as that node, and a
 *     replayed request is refused.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import Database from 'better-sqlite3';
import {
  SimNode, fetchChallenge, httpJson, keyPair, openMapStream, proof, startInProcessServer,
  type HttpAnswer, type InProcessServer, type SimServer,
} from '../helpers/sim-node.js';
import { rng } from '../helpers/rng.js';
import { makeProof, toB64, MAX_BODY_BYTES } from '../../src/wire/control.js';
import { encodeFrame } from '../../src/wire/control-frames.js';

const KEEPALIVE_MS = 1000;

let root = '';
let ctl: InProcessServer;
let srv: SimServer;
let reusableKey = '';
let reusableKeyId = 0;
const sims: SimNode[] = [];

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'warren-ctl-unit-'));
  ctl = await startInProcessServer(root, { keepaliveMs: KEEPALIVE_MS, housekeepingMs: 200 });
  srv = ctl.sim;
  const k = await ctl.store.createAuthKey({ reusable: true });
  reusableKey = k.key;
  reusableKeyId = k.record.id;
});

after(async () => {
  for (const s of sims) s.close();
  await ctl?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

function track(s: SimNode): SimNode {
  sims.push(s);
  return s;
}

/** A 4xx answer whose `error` says something about `mention` and whose code is `code`. */
function assertRefused(r: HttpAnswer, status: number, code: string | null, mention: RegExp, what: string): void {
  assert.equal(r.status, status, `${what}: HTTP ${r.status} ${r.text}`);
  const b = r.body as { error?: unknown; code?: unknown };
  assert.equal(typeof b, 'object', `${what}: answer is not JSON: ${r.text}`);
  assert.equal(typeof b.error, 'string', `${what}: no error text: ${r.text}`);
  if (code !== null) assert.equal(b.code, code, `${what}: ${r.text}`);
  assert.match(b.error as string, mention, `${what}: unhelpful message: ${r.text}`);
}

async function assertAlive(what: string): Promise<void> {
  const r = await httpJson(srv, 'GET', '/v1/challenge', undefined, { fresh: true });
  assert.equal(r.status, 200, `server stopped answering after ${what}`);
}

function serverErrors(): string[] {
  return ctl.logs.filter((l) => l.startsWith('error:'));
}

// ------------------------------------------------------------------ scale

describe('200 simulated nodes', () => {
  const N = 200;
  const fleet: SimNode[] = [];

  test('register concurrently with one reusable key and get unique addresses', async () => {
    for (let i = 0; i < N; i++) fleet.push(track(new SimNode(srv, { hostname: `sim${i}`, authKey: reusableKey, endpoints: [`192.0.2.${(i % 250) + 1}:${41000 + i}`] })));
    const regs = await Promise.all(fleet.map((s) => s.register()));
    const ids = new Set(regs.map((r) => r.nodeId));
    const v4 = new Set(regs.map((r) => r.addresses.find((a) => a.endsWith('/32'))));
    const v6 = new Set(regs.map((r) => r.addresses.find((a) => a.endsWith('/128'))));
    const names = new Set(regs.map((r) => r.name));
    assert.equal(ids.size, N, 'node ids are not unique');
    assert.equal(v4.size, N, 'IPv4 addresses are not unique');
    assert.equal(v6.size, N, 'IPv6 addresses are not unique');
    assert.equal(names.size, N, 'names are not unique');
    for (const a of v4) assert.match(a ?? '', /^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.\d+\.\d+\/32$/, `not in 100.64.0.0/10: ${a}`);
    const stored = await ctl.store.listNodes();
    assert.equal(stored.length, N);
    const key = (await ctl.store.listAuthKeys()).find((k) => k.reusable);
    assert.equal(key?.usedCount, N);
  });

  test('connect concurrently: each netmap lists the other 199 with their keys and addresses', async () => {
    await Promise.all(fleet.map((s) => s.connect()));
    await Promise.all(fleet.map((s) => s.waitFor('199 peers, all online', (n) => n.netmap?.peers.length === N - 1 && n.netmap.peers.every((p) => p.online), 60_000)));
    const byId = new Map(fleet.map((s) => [s.registration!.nodeId, s]));
    for (const s of fleet) {
      const nm = s.netmap!;
      assert.equal(nm.self.id, s.registration!.nodeId);
      assert.equal(nm.self.nodeKey, s.nodeKey);
      assert.deepEqual(nm.self.addresses, s.registration!.addresses);
      assert.ok(!nm.peers.some((p) => p.id === nm.self.id), `${s.o.hostname} lists itself as a peer`);
      assert.equal(new Set(nm.peers.map((p) => p.id)).size, N - 1, `${s.o.hostname}: duplicate peers`);
      for (const p of nm.peers) {
        const other = byId.get(p.id);
        assert.ok(other, `${s.o.hostname} has an unknown peer ${p.id}`);
        assert.equal(p.nodeKey, other.nodeKey);
        assert.equal(p.discoKey, toB64(other.disco.publicKey));
        assert.deepEqual(p.addresses, other.registration!.addresses);
        assert.deepEqual(p.endpoints, other.o.endpoints);
      }
      assert.deepEqual(s.problems, [], `${s.o.hostname}: ${s.problems.join('; ')}`);
      assert.deepEqual(s.errors, []);
    }
  });

  test('keepalives flow both ways: streams outlive several read deadlines', async () => {
    const before = fleet.map((s) => s.stats.frames.keepalive);
    await waitUntil('three keepalives on every stream', () => fleet.every((s, i) => s.stats.frames.keepalive >= before[i]! + 3), 3 * KEEPALIVE_MS + 5000);
    assert.ok(fleet.every((s) => !s.closed), 'a stream was closed although its node answered keepalives');
    assert.equal(ctl.server.hub.sessions.size, N);
  });

  test('a change reaches all 200 as one small delta each', async () => {
    const target = fleet[7]!;
    for (const s of fleet) s.resetStats();
    await ctl.server.renameNode(target.registration!.nodeId, 'renamed-seven');
    await Promise.all(fleet.map((s) => s.waitFor('the rename', (n) => n === target
      ? n.netmap?.self.name === 'renamed-seven'
      : n.netmap?.peers.find((p) => p.id === target.registration!.nodeId)?.name === 'renamed-seven')));
    for (const s of fleet) {
      assert.equal(s.stats.frames.full, 0, 'a full map was sent for a single change');
      assert.ok(s.stats.bytes.delta < 2048, `delta of ${s.stats.bytes.delta} bytes for one rename`);
    }
  });

  test('nodes that hang up are marked offline for the rest (and the fleet shrinks for the tests below)', async () => {
    const leaving = fleet.slice(20);
    const staying = fleet.slice(0, 20);
    for (const s of leaving) s.close();
    const gone = new Set(leaving.map((s) => s.registration!.nodeId));
    await Promise.all(staying.map((s) => s.waitFor('the others offline', (n) => n.netmap!.peers.filter((p) => gone.has(p.id)).every((p) => !p.online && p.lastSeen !== null), 20_000)));
    await waitUntil('the server to drop the closed sessions', () => ctl.server.hub.sessions.size === staying.length, 10_000);
  });
});

/** Poll a synchronous condition (no sleeps as waits: a deadline and short polls). */
async function waitUntil(what: string, cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// ------------------------------------------------------------ hostile input

/** A forged proof: it names `claimed` but is sealed with someone else's private key. */
function forged(purpose: Parameters<typeof proof>[0], ch: Awaited<ReturnType<typeof fetchChallenge>>, claimed: Uint8Array, realPrivate: Uint8Array): ReturnType<typeof proof> {
  return makeProof(purpose, ch.nonce, ch.serverKey, realPrivate, claimed);
}

describe('malformed, oversized and out-of-order requests', () => {
  test('unknown paths and wrong methods: 404 / 405 / 426 naming the problem', async () => {
    const cases: Array<[string, string, number, string, RegExp]> = [
      ['POST', '/v1/challenge', 405, 'method_not_allowed', /POST is not allowed on \/v1\/challenge/],
      ['GET', '/v1/register', 405, 'method_not_allowed', /GET is not allowed on \/v1\/register/],
      ['PUT', '/v1/register', 405, 'method_not_allowed', /PUT is not allowed/],
      ['DELETE', '/v1/rotate', 405, 'method_not_allowed', /DELETE is not allowed on \/v1\/rotate/],
      ['GET', '/v1/rotate', 405, 'method_not_allowed', /not allowed/],
      ['GET', '/', 404, 'not_found', /no such endpoint: \//],
      ['GET', '/v2/register', 404, 'not_found', /no such endpoint: \/v2\/register/],
      ['POST', '/admin/nodes/delete', 404, 'not_found', /no such endpoint/],
      ['GET', '/v1/map', 426, 'upgrade_required', /Upgrade: warren-control\/1/],
      ['POST', '/v1/map', 426, 'upgrade_required', /Upgrade/],
    ];
    for (const [method, path, status, code, mention] of cases) {
      assertRefused(await httpJson(srv, method, path, method === 'POST' || method === 'PUT' ? {} : undefined), status, code, mention, `${method} ${path}`);
    }
    await assertAlive('bad routes');
  });

  for (const path of ['/v1/register', '/v1/rotate']) {
    test(`malformed bodies at ${path}: 400 naming the field`, async () => {
      const ch = await fetchChallenge(srv);
      const a = keyPair(), b = keyPair();
      const good: Record<string, unknown> = path === '/v1/register'
        ? { machine: proof('machine:register', ch, a), node: proof('node:register', ch, b), discoKey: toB64(keyPair().publicKey), authKey: reusableKey, hostname: 'ok' }
        : { machine: proof('machine:rotate', ch, a), newNode: proof('node:rotate', ch, b), discoKey: toB64(keyPair().publicKey) };
      const cases: Array<[string, unknown, string, RegExp]> = [
        ['not JSON', 'hello{', 'bad_json', /body is not JSON/],
        ['empty', '', 'bad_request', /empty body/],
        ['an array', '[]', 'bad_request', /expected object, got array/],
        ['null', 'null', 'bad_request', /expected object, got null/],
        ['a number', '42', 'bad_request', /expected object, got number/],
        ['a string', '"x"', 'bad_request', /expected object, got string/],
        ['an empty object', {}, 'bad_request', /machine: missing/],
        ['an unknown field', { ...good, admin: true }, 'bad_request', /admin: unknown field/],
        ['a __proto__ field', `{"__proto__":{"polluted":1},${JSON.stringify(good).slice(1)}`, 'bad_request', /__proto__: unknown field/],
        ['bad base64', { ...good, discoKey: 'not*base64' }, 'bad_request', /discoKey: not base64/],
        ['a short key', { ...good, discoKey: toB64(new Uint8Array(16)) }, 'bad_request', /discoKey: must be 32 bytes, got 16/],
        ['a proof of the wrong type', { ...good, machine: 'me' }, 'bad_request', /machine: expected object, got string/],
        ['a proof with a missing box', { ...good, machine: { ...(good['machine'] as object), box: undefined } }, 'bad_request', /machine\.box: missing/],
        ['deep nesting', `{"machine":${'['.repeat(20_000)}${']'.repeat(20_000)}}`, 'bad_request', /machine: expected object, got array/],
      ];
      if (path === '/v1/register') {
        cases.push(
          ['a bad hostname', { ...good, hostname: 'no spaces allowed' }, 'bad_request', /hostname: not a DNS label/],
          ['an overlong auth key', { ...good, authKey: 'k'.repeat(5000) }, 'bad_request', /authKey: too long/],
          ['an auth key of the wrong type', { ...good, authKey: 7 }, 'bad_request', /authKey: expected string, got number/],
        );
      }
      for (const [what, body, code, mention] of cases) assertRefused(await httpJson(srv, 'POST', path, body), 400, code, mention, `${path} with ${what}`);
      const big = Buffer.alloc(MAX_BODY_BYTES + 1, 0x20);
      assertRefused(await httpJson(srv, 'POST', path, big), 413, 'too_large', /over 65536 bytes/, `${path} with content-length over 64 KiB`);
      assertRefused(await httpJson(srv, 'POST', path, big, { chunked: true }), 413, 'too_large', /over 65536 bytes/, `${path} with a chunked body over 64 KiB`);
      assertRefused(await httpJson(srv, 'POST', path, Buffer.alloc(8 << 20, 0x20), { chunked: true }), 413, 'too_large', /over 65536 bytes/, `${path} with 8 MiB chunked`);
      assertRefused(await httpJson(srv, 'POST', path, '{}', { headers: { 'content-length': 100 << 20 } }), 413, 'too_large', /over 65536 bytes/, `${path} declaring 100 MiB`);
      await assertAlive(`malformed ${path}`);
    });
  }

  test('out of order: unissued or consumed nonces, mixed nonces, wrong purposes, unknown machines, bad auth keys', async () => {
    const nodesBefore = (await ctl.store.listNodes()).length;
    const a = new SimNode(srv, { hostname: 'ooo-a', authKey: reusableKey });
    // A nonce the server never issued.
    const fake = { serverKey: (await fetchChallenge(srv)).serverKey, nonce: new Uint8Array(24).fill(7) };
    assertRefused(await httpJson(srv, 'POST', '/v1/register', a.registerBody(fake)), 401, 'bad_challenge', /unknown or expired challenge nonce/, 'register without a challenge');
    // A consumed nonce: the first use fails (bad auth key), the second is refused for the nonce.
    const ch = await fetchChallenge(srv);
    assertRefused(await httpJson(srv, 'POST', '/v1/register', a.registerBody(ch, 'wkey-999-nope')), 401, 'authkey_invalid', /auth key not recognised/, 'unknown auth key');
    assertRefused(await httpJson(srv, 'POST', '/v1/register', a.registerBody(ch)), 401, 'bad_challenge', /challenge nonce/, 'register with a consumed nonce');
    // The node proof on another challenge than the machine proof.
    const c1 = await fetchChallenge(srv), c2 = await fetchChallenge(srv);
    assertRefused(await httpJson(srv, 'POST', '/v1/register', { ...a.registerBody(c1), node: proof('node:register', c2, a.node) }), 401, 'bad_proof', /node:register/, 'proofs on two nonces');
    // A proof made for another purpose.
    const c3 = await fetchChallenge(srv);
    assertRefused(await httpJson(srv, 'POST', '/v1/register', { ...a.registerBody(c3), machine: proof('machine:map', c3, a.machine) }), 401, 'bad_proof', /machine:register/, 'a map proof used to register');
    // A low-order "public key".
    const c4 = await fetchChallenge(srv);
    assertRefused(await httpJson(srv, 'POST', '/v1/register', { ...a.registerBody(c4), machine: { ...proof('machine:register', c4, a.machine), key: toB64(new Uint8Array(32)) } }), 401, 'bad_proof', /machine:register/, 'an all-zero key');
    // Revoked and single-use keys.
    const single = await ctl.store.createAuthKey({});
    const revoked = await ctl.store.createAuthKey({ reusable: true });
    await ctl.store.revokeAuthKey(revoked.record.id);
    assertRefused(await httpJson(srv, 'POST', '/v1/register', a.registerBody(await fetchChallenge(srv), revoked.key)), 401, 'authkey_revoked', /revoked/, 'a revoked key');
    await a.register(single.key);
    const b = new SimNode(srv, { hostname: 'ooo-b' });
    assertRefused(await httpJson(srv, 'POST', '/v1/register', b.registerBody(await fetchChallenge(srv), single.key)), 401, 'authkey_used', /already been used/, 'a used single-use key');
    // Rotation for a machine the server does not know.
    const c5 = await fetchChallenge(srv);
    const stranger = keyPair();
    assertRefused(await httpJson(srv, 'POST', '/v1/rotate', { machine: proof('machine:rotate', c5, stranger), newNode: proof('node:rotate', c5, keyPair()), discoKey: toB64(keyPair().publicKey) }),
      404, 'unknown_node', /machine key is not registered/, 'rotate for an unknown machine');
    // Rotation to a node key another node holds (proven, so the caller really has it: still refused).
    const c6 = await fetchChallenge(srv);
    assertRefused(await httpJson(srv, 'POST', '/v1/rotate', { machine: proof('machine:rotate', c6, a.machine), newNode: proof('node:rotate', c6, sims[1]!.node), discoKey: toB64(a.disco.publicKey) }),
      409, 'node_key_in_use', /belongs to another node/, 'rotate to a key in use');
    assert.equal((await ctl.store.listNodes()).length, nodesBefore + 1, 'only the one valid registration created a node');
    await assertAlive('out-of-order requests');
  });

  test('map stream: wrong upgrades, frames before hello, a second hello, garbage, oversized and malformed frames', async () => {
    for (const [headers, path] of [[{ upgrade: 'websocket' }, '/v1/map'], [{}, '/v1/other'], [{ upgrade: 'warren-control/2' }, '/v1/map']] as const) {
      await assert.rejects(openMapStream(srv, { ...headers }, path), (e: Error & { status?: number; body?: string }) => {
        assert.equal(e.status, 400, e.message);
        assert.match(e.body ?? '', /only \/v1\/map upgrades, to warren-control\/1/);
        return true;
      });
    }
    const reg = sims[2]!; // a registered fleet node: its own stream stays up throughout
    const expectClose = async (what: string, code: string, mention: RegExp, act: (s: SimNode) => Promise<void> | void, hello: boolean | Record<string, unknown> = false): Promise<void> => {
      const s = new SimNode(srv, { hostname: 'probe', machine: reg.machine, node: reg.node });
      await s.connect({ hello });
      await act(s);
      const err = await s.waitClosed(5000);
      assert.ok(err, `${what}: closed without an error frame`);
      assert.equal(err.code, code, `${what}: ${JSON.stringify(err)}`);
      assert.match(err.error, mention, `${what}: ${JSON.stringify(err)}`);
    };
    await expectClose('a keepalive before hello', 'bad_proof', /expected hello, got keepalive/, (s) => s.send({ type: 'keepalive' }));
    await expectClose('endpoints before hello', 'bad_proof', /expected hello, got endpoints/, (s) => s.sendEndpoints(['192.0.2.1:1']));
    await expectClose('garbage', 'bad_frame', /exceeds the 4194304-byte limit/, (s) => s.sendRaw(Buffer.from('GET / HTTP/1.1\r\n\r\n')));
    const huge = Buffer.alloc(4);
    huge.writeUInt32BE(5 << 20);
    await expectClose('a 5 MiB frame header', 'bad_frame', /frame of 5242880 bytes exceeds/, (s) => s.sendRaw(huge));
    const notJson = Buffer.concat([Buffer.from([0, 0, 0, 5]), Buffer.from('{{{{{')]);
    await expectClose('a frame that is not JSON', 'bad_frame', /not JSON/, (s) => s.sendRaw(notJson));
    const badUtf8 = Buffer.from([0, 0, 0, 3, 0xff, 0xfe, 0xfd]);
    await expectClose('a frame that is not UTF-8', 'bad_frame', /not valid UTF-8/, (s) => s.sendRaw(badUtf8));
    await expectClose('an unknown frame type', 'bad_frame', /malformed frame \(type: "steal" is not one of/, (s) => s.send({ type: 'steal' }));
    await expectClose('a hello with extra fields', 'bad_frame', /malformed frame/, async (s) => s.send({ ...s.helloFrame(await fetchChallenge(srv)), admin: true }));
    await expectClose('a hello without a challenge', 'bad_proof', /unknown or expired challenge nonce/, (s) => s.send(s.helloFrame({ serverKey: fakeServerKey(), nonce: new Uint8Array(24).fill(9) })));
    const other = new SimNode(srv, { hostname: 'not-registered' });
    const strangerHello = other.helloFrame(await fetchChallenge(srv));
    const s1 = new SimNode(srv, { hostname: 'probe' });
    await s1.connect({ hello: strangerHello });
    assert.equal((await s1.waitClosed(5000))?.code, 'unknown_node');
    assert.match(s1.errors[0]!.error, /not registered/);
    await expectClose('a hello with the wrong node key', 'node_key_mismatch', /node key does not match/, async (s) => s.send({ ...s.helloFrame(await fetchChallenge(srv)), nodeKey: toB64(keyPair().publicKey) }));
    // An accepted stream (a node of our own) that then misbehaves.
    const own = track(new SimNode(srv, { hostname: 'misbehaver', authKey: reusableKey }));
    await own.register();
    const established = async (): Promise<SimNode> => {
      const s = new SimNode(srv, { hostname: 'misbehaver', machine: own.machine, node: own.node });
      await s.connect();
      await s.waitFor('its map', (n) => n.netmap !== null, 5000);
      return s;
    };
    const e1 = await established();
    e1.send(e1.helloFrame(await fetchChallenge(srv)));
    assert.match((await e1.waitClosed(5000))?.error ?? '', /a second hello/);
    const e2 = await established();
    e2.sendEndpoints(['not-an-endpoint']);
    assert.match((await e2.waitClosed(5000))?.error ?? '', /malformed frame \(endpoints\[0\]: not ip:port/);
    const e3 = await established();
    e3.send({ type: 'hostinfo', hostinfo: { deep: { a: { b: { c: { d: 1 } } } } } });
    assert.match((await e3.waitClosed(5000))?.error ?? '', /hostinfo: nested deeper than 4/);
    // A stream closed right after the upgrade, and TLS/HTTP garbage on the port.
    (await openMapStream(srv)).destroy();
    await rawGarbage(Buffer.from('\x16\x03\x01\x00\x05hello garbage'));
    await rawGarbage(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    assert.ok(!reg.closed && reg.errors.length === 0, 'the real node\'s stream was disturbed by probes with its keys');
    await assertAlive('map-stream abuse');
    assert.deepEqual(serverErrors(), []);
  });

  test('fuzz: thousands of random and mutated bodies and frames leave the database intact', async () => {
    const rand = rng(0x5eed3);
    const nodesBefore = (await ctl.store.listNodes()).length;
    const keysBefore = await ctl.store.listAuthKeys();
    const statuses = new Map<number, number>();
    const created = new Set<number>();
    let registerOk = 0;
    const fuzzNodes = [track(new SimNode(srv, { hostname: 'fuzz-a', authKey: reusableKey })), track(new SimNode(srv, { hostname: 'fuzz-b', authKey: reusableKey }))];
    for (const f of fuzzNodes) await f.register();
    const preexisting = new Set((await ctl.store.listNodes()).map((n) => n.id));
    const ITER = 3000;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < ITER) {
        const i = next++;
        const path = i % 2 === 0 ? '/v1/register' : '/v1/rotate';
        const body = await fuzzBody(rand, path, fuzzNodes[i % fuzzNodes.length]!);
        const r = await httpJson(srv, 'POST', path, body);
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        if (r.status === 200) {
          if (path === '/v1/register') {
            registerOk++;
            const id = (r.body as { nodeId: number }).nodeId;
            if (!preexisting.has(id)) created.add(id);
          }
          continue;
        }
        assert.ok(r.status >= 400 && r.status < 500, `fuzz ${i} ${path}: HTTP ${r.status} ${r.text} for ${String(body).slice(0, 200)}`);
        const b = r.body as { error?: unknown; code?: unknown };
        assert.ok(typeof b.error === 'string' && b.error.length > 5 && typeof b.code === 'string' && /^[a-z_]+$/.test(b.code), `fuzz ${i}: unclear refusal ${r.text}`);
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    // Random frames on map streams, some after a valid hello.
    let streams = 0;
    const frameWorker = async (): Promise<void> => {
      while (streams < 300) {
        streams++;
        const owner = fuzzNodes[streams % fuzzNodes.length]!;
        const s = new SimNode(srv, { hostname: 'fuzz', machine: owner.machine, node: owner.node, disco: owner.disco });
        const helloFirst = rand() < 0.4;
        await s.connect({ hello: helloFirst });
        for (let k = 1 + Math.floor(rand() * 4); k > 0; k--) s.sendRaw(fuzzFrame(rand, s));
        s.socket?.end();
        await s.waitClosed(10_000);
        for (const e of s.errors) assert.match(e.code, /^[a-z_]+$/);
      }
    };
    await Promise.all(Array.from({ length: 8 }, frameWorker));
    await assertAlive('the fuzz run');
    assert.deepEqual(serverErrors(), [], 'the server logged internal errors');
    // The database: intact, and holding exactly what the accepted requests created.
    const db = new Database(ctl.dbPath, { readonly: true });
    try {
      assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
      assert.equal((db.pragma('foreign_key_check') as unknown[]).length, 0);
      const nodes = (db.prepare('SELECT COUNT(*) AS n FROM nodes').get() as { n: number }).n;
      assert.equal(nodes, nodesBefore + 2 + created.size);
      const keys = (db.prepare('SELECT COUNT(*) AS n FROM auth_keys').get() as { n: number }).n;
      assert.equal(keys, keysBefore.length);
    } finally {
      db.close();
    }
    const after = await ctl.store.listAuthKeys();
    const reusable = (list: typeof after): number => list.find((k) => k.id === reusableKeyId)!.usedCount;
    assert.equal(reusable(after), reusable(keysBefore) + 2 + registerOk, 'the reusable key was consumed by something other than accepted registrations');
    const all = await ctl.store.listNodes();
    assert.equal(new Set(all.map((n) => n.ipv4)).size, all.length, 'duplicate IPv4 addresses after the fuzz run');
    assert.equal(new Set(all.map((n) => n.ipv6)).size, all.length, 'duplicate IPv6 addresses after the fuzz run');
    assert.equal(new Set(all.map((n) => n.nodeKey)).size, all.length, 'duplicate node keys after the fuzz run');
    const summary = [...statuses].sort((x, y) => x[0] - y[0]).map(([s, n]) => `${s}×${n}`).join(' ');
    assert.ok((statuses.get(400) ?? 0) > 100 && (statuses.get(401) ?? 0) > 100, `the fuzz did not reach past validation: ${summary}`);
  });
});

function fakeServerKey(): Uint8Array {
  return keyPair().publicKey;
}

/** Connect with TLS (or not) and send bytes that are not a request; the server must shrug. */
async function rawGarbage(bytes: Buffer): Promise<void> {
  const { connect } = await import('node:net');
  await new Promise<void>((resolve) => {
    const sock = connect(ctl.port, '127.0.0.1', () => sock.end(bytes));
    sock.on('error', () => resolve());
    sock.on('close', () => resolve());
    sock.resume();
  });
  await new Promise<void>((resolve) => {
    const sock = tlsConnect({ port: ctl.port, host: '127.0.0.1', ...srv.tls() }, () => sock.end(bytes));
    sock.on('error', () => resolve());
    sock.on('close', () => resolve());
    sock.resume();
  });
}

// ----------------------------------------------------------- impersonation

describe('impersonation', () => {
  let victim: SimNode;
  let watchers: SimNode[];
  let attacker: ReturnType<typeof keyPair>;
  let victimView: { nodeKey: string; addresses: string[]; discoKey: string };

  before(async () => {
    victim = track(new SimNode(srv, { hostname: 'victim', authKey: reusableKey, endpoints: ['192.0.2.50:41641'] }));
    await victim.register();
    await victim.connect();
    await victim.waitFor('its map', (n) => n.netmap !== null);
    watchers = sims.filter((s) => !s.closed && s !== victim && s.netmap !== null).slice(0, 10);
    if (watchers.length < 3) {
      for (let i = 0; i < 3; i++) {
        const w = track(new SimNode(srv, { hostname: `watcher${i}`, authKey: reusableKey }));
        await w.register();
        await w.connect();
        watchers.push(w);
      }
    }
    const id = victim.registration!.nodeId;
    await Promise.all(watchers.map((w) => w.waitFor('the victim', (n) => n.netmap?.peers.some((p) => p.id === id && p.online) === true)));
    // Everything a peer knows about the victim (plus its machine key, which netmaps do not even carry).
    const entry = watchers[0]!.netmap!.peers.find((p) => p.id === id)!;
    victimView = { nodeKey: entry.nodeKey, addresses: entry.addresses, discoKey: entry.discoKey };
    attacker = keyPair();
  });

  async function assertVictimIntact(what: string): Promise<void> {
    const rec = await ctl.store.getNode(victim.registration!.nodeId);
    assert.ok(rec, `${what}: the victim was deleted`);
    assert.equal(rec.nodeKey, victim.nodeKey, `${what}: the victim's node key changed`);
    assert.equal(rec.machineKey, victim.machineKey, `${what}: the victim's machine key changed`);
    assert.ok(!victim.closed && victim.errors.length === 0, `${what}: the victim's map stream was cut: ${JSON.stringify(victim.errors)}`);
    for (const w of watchers) {
      const p = w.netmap!.peers.find((x) => x.id === victim.registration!.nodeId);
      assert.equal(p?.nodeKey, victimView.nodeKey, `${what}: ${w.o.hostname} was told another key for the victim`);
      const holders = w.netmap!.peers.filter((x) => x.addresses.some((a) => victimView.addresses.includes(a)));
      assert.equal(holders.length, 1, `${what}: the victim's addresses appear on ${holders.length} peers`);
    }
  }

  test('register with the victim\'s node key but a proof from another private key: bad_proof, nothing created', async () => {
    const nodes = (await ctl.store.listNodes()).length;
    const ch = await fetchChallenge(srv);
    const victimNode = Buffer.from(victimView.nodeKey, 'base64');
    const r = await httpJson(srv, 'POST', '/v1/register', {
      machine: proof('machine:register', ch, attacker), node: forged('node:register', ch, victimNode, attacker.privateKey),
      discoKey: victimView.discoKey, authKey: reusableKey, hostname: 'victim',
    });
    assertRefused(r, 401, 'bad_proof', /proof for node:register does not open/, 'register with a forged node-key proof');
    assert.equal((await ctl.store.listNodes()).length, nodes);
    await assertVictimIntact('forged node-key registration');
  });

  test('register claiming the victim\'s machine key (to get its addresses back): bad_proof', async () => {
    const ch = await fetchChallenge(srv);
    const r = await httpJson(srv, 'POST', '/v1/register', {
      machine: forged('machine:register', ch, victim.machine.publicKey, attacker.privateKey), node: proof('node:register', ch, keyPair()),
      discoKey: toB64(keyPair().publicKey), authKey: reusableKey, hostname: 'victim',
    });
    assertRefused(r, 401, 'bad_proof', /proof for machine:register does not open/, 'register with a forged machine-key proof');
    await assertVictimIntact('forged machine-key registration');
  });

  test('the same reusable key with the attacker\'s own keys gives a new identity, never the victim\'s addresses or name', async () => {
    const a = track(new SimNode(srv, { hostname: 'victim', authKey: reusableKey, machine: attacker }));
    const reg = await a.register();
    assert.notEqual(reg.nodeId, victim.registration!.nodeId);
    assert.notEqual(reg.name, victim.registration!.name);
    assert.ok(!reg.addresses.some((x) => victimView.addresses.includes(x)), `the attacker got ${reg.addresses.join(' ')}`);
    await assertVictimIntact('a second node with the same auth key');
  });

  test('a map hello claiming the victim\'s machine key fails and does not displace the victim\'s stream', async () => {
    const fake = new SimNode(srv, { hostname: 'victim', machine: victim.machine, node: victim.node });
    const ch = await fetchChallenge(srv);
    await fake.connect({ hello: { ...fake.helloFrame(ch, null), machine: forged('machine:map', ch, victim.machine.publicKey, attacker.privateKey) } });
    const err = await fake.waitClosed(5000);
    assert.equal(err?.code, 'bad_proof', JSON.stringify(err));
    assert.match(err!.error, /machine-key proof does not open/);
    assert.equal(fake.netmap, null, 'the impostor received a netmap');
    assert.equal(fake.stats.frames.full + fake.stats.frames.delta, 0);
    await assertVictimIntact('a forged hello');
  });

  test('a rotate claiming the victim\'s machine key fails: its node key stays', async () => {
    const ch = await fetchChallenge(srv);
    const r = await httpJson(srv, 'POST', '/v1/rotate', {
      machine: forged('machine:rotate', ch, victim.machine.publicKey, attacker.privateKey), newNode: proof('node:rotate', ch, keyPair()),
      discoKey: toB64(keyPair().publicKey),
    });
    assertRefused(r, 401, 'bad_proof', /proof for machine:rotate does not open/, 'rotate with a forged machine-key proof');
    await assertVictimIntact('a forged rotation');
  });

  test('replays: a captured register request or hello is refused the second time', async () => {
    const fresh = track(new SimNode(srv, { hostname: 'replayed', authKey: reusableKey }));
    const ch = await fetchChallenge(srv);
    const body = fresh.registerBody(ch);
    assert.equal((await httpJson(srv, 'POST', '/v1/register', body)).status, 200);
    assertRefused(await httpJson(srv, 'POST', '/v1/register', body), 401, 'bad_challenge', /unknown or expired challenge nonce/, 'a replayed register request');
    // A replayed rotation of the victim (say, sniffed before TLS... or logged by a proxy).
    const rch = await fetchChallenge(srv);
    const newNode = keyPair();
    const rot = { machine: proof('machine:rotate', rch, fresh.machine), newNode: proof('node:rotate', rch, newNode), discoKey: toB64(fresh.disco.publicKey) };
    assert.equal((await httpJson(srv, 'POST', '/v1/rotate', rot)).status, 200);
    assertRefused(await httpJson(srv, 'POST', '/v1/rotate', rot), 401, 'bad_challenge', /challenge nonce/, 'a replayed rotate request');
    // The victim's own hello, captured and replayed on another connection.
    const hch = await fetchChallenge(srv);
    const hello = victim.helloFrame(hch, null);
    victim.close();
    const again = track(new SimNode(srv, { hostname: 'victim', machine: victim.machine, node: victim.node, disco: victim.disco }));
    await again.connect({ hello });
    await again.waitFor('the victim\'s map', (n) => n.netmap !== null, 5000);
    const replay = new SimNode(srv, { hostname: 'victim', machine: victim.machine, node: victim.node });
    await replay.connect({ hello });
    const err = await replay.waitClosed(5000);
    assert.equal(err?.code, 'bad_proof');
    assert.match(err!.error, /unknown or expired challenge nonce/);
    assert.equal(replay.netmap, null);
    assert.ok(!again.closed && again.errors.length === 0, 'the replay displaced the real stream');
    await assertAlive('impersonation attempts');
    assert.deepEqual(serverErrors(), []);
  });
});

// ------------------------------------------------------------- fuzz inputs

const pick = <T>(rand: () => number, xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;

function randomString(rand: () => number, max = 40): string {
  const n = Math.floor(rand() * max);
  const alphabets = ['abcdefghijklmnopqrstuvwxyz', 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=', ' \t\n"\\{}[]:,\u0000\u00e9\u2603\ud83d\ude00-_.'];
  const a = pick(rand, alphabets);
  let out = '';
  for (let i = 0; i < n; i++) out += a[Math.floor(rand() * a.length)];
  return out;
}

function randomJson(rand: () => number, depth = 0): unknown {
  const r = rand();
  if (depth > 3 || r < 0.1) return null;
  if (r < 0.2) return rand() < 0.5;
  if (r < 0.35) return pick(rand, [0, -1, 1.5, 2 ** 53, -(2 ** 63), 1e308, Number.MAX_SAFE_INTEGER, Math.floor(rand() * 1e6)]);
  if (r < 0.6) return randomString(rand);
  if (r < 0.75) return Array.from({ length: Math.floor(rand() * 4) }, () => randomJson(rand, depth + 1));
  const o: Record<string, unknown> = {};
  for (let i = Math.floor(rand() * 5); i > 0; i--) o[pick(rand, ['machine', 'node', 'newNode', 'key', 'nonce', 'box', 'discoKey', 'authKey', 'hostname', 'type', 'endpoints', 'hostinfo', randomString(rand, 8)])] = randomJson(rand, depth + 1);
  return o;
}

/** Replace, delete or add something at a random place in a JSON tree (in place). */
function mutate(rand: () => number, v: Record<string, unknown>): void {
  let node: Record<string, unknown> = v;
  while (rand() < 0.5) {
    const objs = Object.entries(node).filter(([, x]) => typeof x === 'object' && x !== null && !Array.isArray(x));
    if (!objs.length) break;
    node = pick(rand, objs)[1] as Record<string, unknown>;
  }
  const keys = Object.keys(node);
  const k = keys.length ? pick(rand, keys) : 'x';
  const cur = node[k];
  const r = rand();
  if (r < 0.2) delete node[k];
  else if (r < 0.35) node[randomString(rand, 10) || 'extra'] = randomJson(rand);
  else if (r < 0.55) node[k] = randomJson(rand);
  else if (typeof cur === 'string' && cur.length) {
    const i = Math.floor(rand() * cur.length);
    const edits = [
      () => cur.slice(0, i) + pick(rand, ['A', '/', '=', '*', '\u00e9']) + cur.slice(i + 1), // flip one character
      () => cur.slice(0, i), // truncate
      () => cur + cur, // double
      () => cur.slice(0, i) + randomString(rand, 6) + cur.slice(i),
    ];
    node[k] = pick(rand, edits)();
  } else node[k] = randomJson(rand);
}

const fakeNonce = (rand: () => number): { serverKey: Uint8Array; nonce: Uint8Array } => ({
  serverKey: Uint8Array.from({ length: 32 }, () => Math.floor(rand() * 256)), nonce: Uint8Array.from({ length: 24 }, () => Math.floor(rand() * 256)),
});

/** Keys for fuzz bodies, made once: X25519 key generation is the slow part of building a body. */
let keyPool: ReturnType<typeof keyPair>[] = [];

/** A proof that looks right but proves nothing: a random box of the right size. */
function junkProof(rand: () => number, ch: { nonce: Uint8Array }, key: ReturnType<typeof keyPair>, purpose: string): ReturnType<typeof proof> {
  const box = Uint8Array.from({ length: 16 + 24 + purpose.length }, () => Math.floor(rand() * 256));
  return { key: toB64(key.publicKey), nonce: toB64(ch.nonce), box: toB64(box) };
}

async function fuzzBody(rand: () => number, path: string, owner: SimNode): Promise<unknown> {
  if (!keyPool.length) keyPool = Array.from({ length: 24 }, keyPair);
  const r = rand();
  if (r < 0.1) return randomJson(rand);
  if (r < 0.15) return Buffer.from(Array.from({ length: Math.floor(rand() * 200) }, () => Math.floor(rand() * 256)));
  const real = rand() < 0.5;
  const ch = real ? await fetchChallenge(srv) : fakeNonce(rand);
  const prove = (purpose: Parameters<typeof proof>[0], key: ReturnType<typeof keyPair>): ReturnType<typeof proof> =>
    real ? proof(purpose, ch, key) : junkProof(rand, ch, key, purpose);
  const machine = rand() < 0.3 ? owner.machine : pick(rand, keyPool);
  let body: Record<string, unknown>;
  if (path === '/v1/register') {
    body = {
      machine: prove('machine:register', machine), node: prove('node:register', machine === owner.machine ? owner.node : pick(rand, keyPool)),
      discoKey: toB64(pick(rand, keyPool).publicKey),
      authKey: rand() < 0.8 ? reusableKey : pick(rand, ['', 'wkey-1-x', randomString(rand), `wkey-${Math.floor(rand() * 5)}-${randomString(rand, 30)}`]),
      hostname: pick(rand, ['fz', 'sim1', 'misbehaver', `fz${Math.floor(rand() * 1000)}`]),
    };
  } else {
    body = { machine: prove('machine:rotate', rand() < 0.7 ? owner.machine : machine), newNode: prove('node:rotate', pick(rand, keyPool)), discoKey: toB64(pick(rand, keyPool).publicKey) };
  }
  const n = Math.floor(rand() * 4);
  for (let i = 0; i < n; i++) mutate(rand, body);
  if (rand() < 0.15) {
    // Byte-level damage to the encoded text: may break JSON or UTF-8.
    const buf = Buffer.from(JSON.stringify(body));
    for (let i = 1 + Math.floor(rand() * 3); i > 0 && buf.length; i--) buf[Math.floor(rand() * buf.length)] = Math.floor(rand() * 256);
    return buf;
  }
  return body;
}

function frameOf(obj: unknown): Buffer {
  return encodeFrame(obj);
}

function fuzzFrame(rand: () => number, s: SimNode): Buffer {
  const r = rand();
  if (r < 0.15) return Buffer.from(Array.from({ length: Math.floor(rand() * 64) }, () => Math.floor(rand() * 256)));
  if (r < 0.25) {
    const b = Buffer.alloc(4 + Math.floor(rand() * 16));
    b.writeUInt32BE(Math.floor(rand() * 2 ** 32));
    return b;
  }
  if (r < 0.4) return frameOf(randomJson(rand));
  const base: Record<string, unknown> = pick(rand, [
    { type: 'keepalive' },
    { type: 'endpoints', endpoints: ['192.0.2.7:41641', '[2001:db8::1]:41641'] },
    { type: 'hostinfo', hostinfo: { hostname: 'fuzz', os: 'linux' } },
    s.helloFrame(fakeNonce(rand)),
  ]);
  for (let i = Math.floor(rand() * 3); i > 0; i--) mutate(rand, base);
  return frameOf(base);
}

// --------------------------------------------------------------- tailnets

describe('tailnets', () => {
  const net: Record<'a1' | 'a2' | 'b1', SimNode> = {} as never;
  /** Every peer id each node has ever had in its netmap (full maps and after every delta). */
  const seen = new Map<SimNode, Set<number>>();
  let alphaKey = '';
  let betaKey = '';

  const watch = (s: SimNode): SimNode => {
    const ids = new Set<number>();
    seen.set(s, ids);
    s.onUpdate = (n) => n.netmap!.peers.forEach((p) => ids.add(p.id));
    return track(s);
  };
  const idOf = (s: SimNode): number => s.registration!.nodeId;

  before(async () => {
    alphaKey = (await ctl.store.createAuthKey({ reusable: true, tailnet: 'alpha', user: 'alice' })).key;
    betaKey = (await ctl.store.createAuthKey({ reusable: true, tailnet: 'beta', user: 'bob' })).key;
    net.a1 = watch(new SimNode(srv, { hostname: 'alpha-one', authKey: alphaKey, endpoints: ['192.0.2.101:41641'] }));
    net.a2 = watch(new SimNode(srv, { hostname: 'alpha-two', authKey: alphaKey, endpoints: ['192.0.2.102:41641'] }));
    net.b1 = watch(new SimNode(srv, { hostname: 'beta-one', authKey: betaKey, endpoints: ['192.0.2.103:41641'] }));
    for (const s of Object.values(net)) await s.register();
    await Promise.all(Object.values(net).map((s) => s.connect()));
    await net.a1.waitFor('alpha-two online', (n) => n.netmap?.peers.some((p) => p.id === idOf(net.a2) && p.online) === true);
    await net.a2.waitFor('alpha-one online', (n) => n.netmap?.peers.some((p) => p.id === idOf(net.a1) && p.online) === true);
    await net.b1.waitFor('its map', (n) => n.netmap !== null);
  });

  test('nodes get their tailnet and user from the auth key, and IPv6 from the tailnet\'s own /48', async () => {
    const a1 = (await ctl.store.getNode(idOf(net.a1)))!;
    const b1 = (await ctl.store.getNode(idOf(net.b1)))!;
    assert.deepEqual([a1.tailnet, a1.user, b1.tailnet, b1.user], ['alpha', 'alice', 'beta', 'bob']);
    const tailnets = await ctl.store.listTailnets();
    const alpha = tailnets.find((t) => t.name === 'alpha')!;
    const beta = tailnets.find((t) => t.name === 'beta')!;
    const dflt = tailnets.find((t) => t.name === 'default')!;
    assert.equal(new Set([alpha.ipv6Prefix, beta.ipv6Prefix, dflt.ipv6Prefix]).size, 3, 'each tailnet has its own /48');
    assert.deepEqual([alpha.nodes, beta.nodes], [2, 1]);
    const p48 = (p: string): string => p.replace(/::\/48$/, ':');
    assert.ok(a1.ipv6.startsWith(p48(alpha.ipv6Prefix)), `${a1.ipv6} not in ${alpha.ipv6Prefix}`);
    assert.ok(b1.ipv6.startsWith(p48(beta.ipv6Prefix)), `${b1.ipv6} not in ${beta.ipv6Prefix}`);
    const v4 = (await ctl.store.listNodes()).map((n) => n.ipv4);
    assert.equal(new Set(v4).size, v4.length, 'IPv4 addresses are unique across the whole server');
    assert.deepEqual((await ctl.store.listNodes('alpha')).map((n) => n.id).sort(), [idOf(net.a1), idOf(net.a2)].sort());
  });

  test('full maps hold only the own tailnet\'s nodes, both ways', () => {
    assert.deepEqual(net.a1.netmap!.peers.map((p) => p.id), [idOf(net.a2)]);
    assert.deepEqual(net.a2.netmap!.peers.map((p) => p.id), [idOf(net.a1)]);
    assert.deepEqual(net.b1.netmap!.peers, [], 'beta-one is alone in its tailnet');
    const ours = new Set(Object.values(net).map(idOf));
    for (const s of sims.filter((x) => !x.closed && x.netmap && !Object.values(net).includes(x))) {
      assert.ok(!s.netmap!.peers.some((p) => ours.has(p.id)), `default-tailnet node ${s.o.hostname} sees an alpha/beta node`);
    }
  });

  test('deltas about another tailnet\'s nodes never reach a node, live or in a catch-up', async () => {
    const a1 = net.a1, a2 = net.a2, b1 = net.b1;
    // Live: beta changes (endpoints, rename), then an alpha change as a barrier (deltas arrive in order).
    b1.sendEndpoints(['192.0.2.203:41641']);
    await ctl.server.renameNode(idOf(b1), 'beta-renamed');
    await ctl.server.renameNode(idOf(a2), 'alpha-two-renamed');
    await a1.waitFor('the alpha rename', (n) => n.netmap?.peers.find((p) => p.id === idOf(a2))?.name === 'alpha-two-renamed');
    await b1.waitFor('its own rename', (n) => n.netmap?.self.name === 'beta-renamed');
    // Catch-up: a1 away while beta and alpha change; it comes back with its version and gets a delta.
    a1.close();
    await waitUntil('a1 offline', () => !ctl.server.hub.sessions.has(idOf(a1)), 5000);
    const fullsBefore = a1.stats.frames.full;
    await ctl.server.renameNode(idOf(b1), 'beta-again');
    await ctl.server.renameNode(idOf(a2), 'alpha-two-again');
    await a1.connect();
    await a1.waitFor('the catch-up', (n) => n.netmap?.peers.find((p) => p.id === idOf(a2))?.name === 'alpha-two-again');
    assert.equal(a1.stats.frames.full, fullsBefore, 'the catch-up came as a delta');
    // And a removal in beta is not announced to alpha.
    await ctl.server.deleteNode(idOf(b1));
    await ctl.server.renameNode(idOf(a2), 'alpha-two-last');
    await a1.waitFor('the last rename', (n) => n.netmap?.peers.find((p) => p.id === idOf(a2))?.name === 'alpha-two-last');
    for (const s of [a1, a2]) {
      assert.deepEqual([...seen.get(s)!], [idOf(s === a1 ? a2 : a1)], `${s.o.hostname} saw other nodes: ${[...seen.get(s)!].join(',')}`);
      assert.deepEqual(s.problems, [], `${s.o.hostname}: ${s.problems.join('; ')}`);
    }
    assert.deepEqual([...seen.get(b1)!], [], 'beta-one saw alpha nodes');
    assert.deepEqual(b1.problems, []);
  });

  test('a machine registered in one tailnet is refused with a key of another: machine_in_other_tailnet (409), nothing moves', async () => {
    const a2 = net.a2;
    const before = (await ctl.store.getNode(idOf(a2)))!;
    const ch = await fetchChallenge(srv);
    assertRefused(await httpJson(srv, 'POST', '/v1/register', a2.registerBody(ch, betaKey)), 409, 'machine_in_other_tailnet', /another tailnet/, 'moving a node');
    const after = (await ctl.store.getNode(idOf(a2)))!;
    assert.deepEqual(after, before, 'the node changed');
    assert.ok(!a2.closed && a2.errors.length === 0, 'the node\'s stream was cut');
    // The same tailnet's key re-registers it in place (same id and addresses).
    const again = await a2.register(alphaKey);
    assert.equal(again.nodeId, before.id);
    assert.deepEqual(again.addresses, [`${before.ipv4}/32`, `${before.ipv6}/128`]);
    assert.deepEqual(serverErrors(), []);
  });
});
