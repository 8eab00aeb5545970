/**
 * warren-relay's security and forwarding, in process on 127.0.0.1: a control
 * server with relay admission, a relay fed by its admission stream, real
 * RelayClients and hand-driven RawRelay connections.
 *
 * - two nodes exchange packets and measure latency through the relay;
 * - a client that cannot prove its key is refused (a wrong box, another
 *   node's key), and so is a proven key that is not a current node;
 * - deleting, expiring or rotating a node cuts its live session at once;
 * - nobody receives packets addressed to a key they do not hold, and nothing
 *   crosses tailnets (the sender hears peer-gone, as for an absent key);
 * - peer-gone is sent when the destination is absent, rate-limited;
 * - garbage and oversized frames close that connection only;
 * - the per-client byte rate and the per-connection send queue drop and count;
 * - the relay closes a client that goes silent (read deadline 2× keepalive).
 */
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RawRelay, rawLogin, startRelayRig, until, keyPair, type RelayRig } from '../helpers/relay.js';
import { fetchChallenge, httpJson, proof, type SimNode } from '../helpers/sim-node.js';
import { RelayClient } from '../../src/nat/relay-client.js';
import { toB64 } from '../../src/wire/control.js';
import { encodeRelayFrame, makeRelayProof } from '../../src/wire/relay-frames.js';

const dir = mkdtempSync(join(tmpdir(), 'warren-relay-'));
let rig: RelayRig;
const toClose: Array<{ close(): unknown }> = [];

before(async () => {
  rig = await startRelayRig(dir, { relay: { keepaliveMs: 300, peerGoneIntervalMs: 60_000 } });
  await until('the relay to load its admission list', () => rig.admission.loaded);
});

after(async () => {
  for (const c of toClose) await c.close();
  await rig.stop();
  rmSync(dir, { recursive: true, force: true });
});

const bytes = (s: string): Uint8Array => new Uint8Array(Buffer.from(s));

interface Received {
  src: string;
  data: string;
}

function client(n: SimNode, got: Received[] = [], extra: { gone?: Array<{ key: string; reason: string }>; keepaliveMs?: number } = {}): RelayClient {
  const c = new RelayClient({
    url: rig.url, fingerprint: rig.fingerprint, nodeKey: n.node,
    onPacket: (src, data) => got.push({ src: toB64(src), data: Buffer.from(data).toString() }),
    onPeerGone: (key, reason) => extra.gone?.push({ key: toB64(key), reason }),
    log: () => undefined, keepaliveMs: extra.keepaliveMs ?? 300, backoff: { minMs: 20, maxMs: 100 },
  });
  toClose.push(c);
  c.start();
  return c;
}

async function admitted(n: SimNode): Promise<void> {
  await until(`${n.o.hostname} to be admitted on the relay`, () => rig.admission.tailnetOf(n.nodeKey) !== undefined);
}

/** Two connected RawRelays for fresh nodes; returns them with their nodes. */
async function rawPair(prefix: string): Promise<Array<{ n: SimNode; r: RawRelay }>> {
  const out = [];
  for (const name of [`${prefix}a`, `${prefix}b`]) {
    const n = await rig.node(name);
    await admitted(n);
    const { r, verdict } = await rawLogin(rig, n.node);
    assert.equal(verdict.type, 'server-ok', JSON.stringify(verdict));
    toClose.push(r);
    out.push({ n, r });
  }
  return out;
}

describe('forwarding', () => {
  it('two nodes exchange packets both ways, and ping through the relay', async () => {
    const a = await rig.node('fwd-a'), b = await rig.node('fwd-b');
    await admitted(a);
    await admitted(b);
    const gotA: Received[] = [], gotB: Received[] = [];
    const ca = client(a, gotA), cb = client(b, gotB);
    await until('both clients connected', () => ca.connected && cb.connected);
    for (let i = 0; i < 20; i++) assert.equal(ca.send(b.node.publicKey, bytes(`a->b ${i}`)), true);
    assert.equal(cb.send(a.node.publicKey, bytes('b->a')), true);
    await until('all packets delivered', () => gotB.length === 20 && gotA.length === 1);
    assert.deepEqual(gotB.map((g) => g.data), Array.from({ length: 20 }, (_, i) => `a->b ${i}`));
    assert.ok(gotB.every((g) => g.src === a.nodeKey), 'recv-packet names the true sender');
    assert.deepEqual(gotA, [{ src: b.nodeKey, data: 'b->a' }]);
    const rtt = await ca.ping();
    assert.ok(rtt >= 0 && rtt < 1000, `rtt ${rtt}`);
  });

  it('tells the sender when the destination is not connected (peer-gone, rate-limited)', async () => {
    const a = await rig.node('gone-a');
    await admitted(a);
    const gone: Array<{ key: string; reason: string }> = [];
    const ca = client(a, [], { gone });
    await until('connected', () => ca.connected);
    const absent = keyPair().publicKey;
    const before = rig.relay.counters.droppedNoPeer;
    for (let i = 0; i < 10; i++) ca.send(absent, bytes('hello?'));
    await until('peer-gone', () => gone.length >= 1);
    await until('all ten dropped', () => rig.relay.counters.droppedNoPeer - before === 10);
    assert.deepEqual(gone, [{ key: toB64(absent), reason: 'not connected to this relay' }]);
  });
});

describe('who may connect', () => {
  it('refuses a client that cannot prove its key', async () => {
    const r = new RawRelay(rig.url, rig.ca, rig.fingerprint);
    toClose.push(r);
    await r.open();
    const ch = await r.waitFor('server-challenge');
    const p = makeRelayProof(ch, keyPair(), r.channel()) as Extract<ReturnType<typeof makeRelayProof>, { type: 'client-proof' }>;
    p.box[0]! ^= 1;
    const before = rig.relay.counters.refusedProof;
    r.send(p);
    const refused = await r.waitFor('server-refused');
    assert.match(refused.reason, /does not hold that node key/);
    await r.waitClosed();
    assert.equal(rig.relay.counters.refusedProof, before + 1);
  });

  it('refuses a client claiming another node\'s key (the proof is made with its own private key)', async () => {
    const victim = await rig.node('victim');
    await admitted(victim);
    const r = new RawRelay(rig.url, rig.ca, rig.fingerprint);
    toClose.push(r);
    await r.open();
    const ch = await r.waitFor('server-challenge');
    const mallory = keyPair();
    const p = makeRelayProof(ch, mallory, r.channel()) as Extract<ReturnType<typeof makeRelayProof>, { type: 'client-proof' }>;
    r.send({ ...p, nodeKey: victim.node.publicKey });
    assert.match((await r.waitFor('server-refused')).reason, /does not hold/);
    assert.equal(rig.relay.isConnected(victim.nodeKey), false);
  });

  it('refuses a proven key that is not a current node', async () => {
    const { verdict, r } = await rawLogin(rig, keyPair());
    toClose.push(r);
    assert.equal(verdict.type, 'server-refused');
    assert.match((verdict as { reason: string }).reason, /not admitted/);
    await r.waitClosed();
  });

  it('refuses a proof replayed on another connection (the nonce is per connection)', async () => {
    const n = await rig.node('replay');
    await admitted(n);
    const first = new RawRelay(rig.url, rig.ca, rig.fingerprint);
    toClose.push(first);
    await first.open();
    const p = makeRelayProof(await first.waitFor('server-challenge'), n.node, first.channel());
    const second = new RawRelay(rig.url, rig.ca, rig.fingerprint);
    toClose.push(second);
    await second.open();
    await second.waitFor('server-challenge');
    second.send(p);
    assert.equal((await second.waitFor('server-refused')).type, 'server-refused');
  });

  it('refuses a proof bound to another TLS connection (a relay passing on another relay\'s challenge)', async () => {
    const n = await rig.node('mitm');
    await admitted(n);
    // The victim's connection (to a malicious relay) and the attacker's (to this relay) are different TLS sessions:
    // the attacker passes this relay's challenge on, the victim proves on its own connection.
    const attacker = new RawRelay(rig.url, rig.ca, rig.fingerprint);
    const victimSide = new RawRelay(rig.url, rig.ca, rig.fingerprint);
    toClose.push(attacker, victimSide);
    await attacker.open();
    await victimSide.open();
    const ch = await attacker.waitFor('server-challenge');
    attacker.send(makeRelayProof(ch, n.node, victimSide.channel()));
    assert.match((await attacker.waitFor('server-refused')).reason, /does not hold/);
    assert.equal(rig.relay.isConnected(n.nodeKey), false);
  });

  it('cuts the session of a node deleted through the admin path, and refuses it afterwards', async () => {
    const n = await rig.node('doomed');
    await admitted(n);
    const c = client(n);
    await until('connected', () => c.connected);
    assert.ok(await rig.control.server.deleteNode(n.registration!.nodeId));
    await until('the relay to drop the deleted node', () => !rig.relay.isConnected(n.nodeKey) && !c.connected);
    assert.match(c.lastError ?? '', /no longer admitted/);
    const { verdict, r } = await rawLogin(rig, n.node);
    toClose.push(r);
    assert.equal(verdict.type, 'server-refused');
  });

  it('cuts the session of a node whose key expired', async () => {
    const n = await rig.node('expiring');
    await admitted(n);
    const { r } = await rawLogin(rig, n.node);
    toClose.push(r);
    await rig.control.server.expireNode(n.registration!.nodeId);
    await r.waitFor('server-refused');
    await r.waitClosed();
    assert.equal(rig.admission.tailnetOf(n.nodeKey), undefined);
  });

  it('cuts the old key\'s session when a node rotates its key, and admits the new one', async () => {
    const n = await rig.node('rotor');
    await admitted(n);
    const old = await rawLogin(rig, n.node);
    toClose.push(old.r);
    assert.equal(old.verdict.type, 'server-ok');
    const next = keyPair();
    const ch = await fetchChallenge(rig.control.sim);
    const res = await httpJson(rig.control.sim, 'POST', '/v1/rotate', {
      machine: proof('machine:rotate', ch, n.machine), newNode: proof('node:rotate', ch, next), discoKey: toB64(n.disco.publicKey),
    });
    assert.equal(res.status, 200, res.text);
    await old.r.waitClosed();
    await until('the new key admitted', () => rig.admission.tailnetOf(toB64(next.publicKey)) !== undefined);
    const fresh = await rawLogin(rig, next);
    toClose.push(fresh.r);
    assert.equal(fresh.verdict.type, 'server-ok');
  });
});

describe('isolation', () => {
  it('delivers a packet only to the key it is addressed to', async () => {
    const [a, b] = await rawPair('iso');
    const c = await rig.node('iso-c');
    await admitted(c);
    const { r: rc } = await rawLogin(rig, c.node);
    toClose.push(rc);
    for (let i = 0; i < 5; i++) rc.send({ type: 'send-packet', key: a!.n.node.publicKey, data: bytes(`for a ${i}`) });
    await a!.r.waitFor('recv-packet', 5000, 5);
    // A ping round trip on B's connection orders everything before it: B got nothing.
    b!.r.send({ type: 'ping', data: new Uint8Array(8) });
    await b!.r.waitFor('pong');
    assert.equal(b!.r.of('recv-packet').length, 0);
    assert.ok(a!.r.of('recv-packet').every((f) => toB64(f.key) === c.nodeKey));
  });

  it('never forwards between tailnets; the sender hears peer-gone as for an absent key', async () => {
    const a = await rig.node('tn-a');
    const x = await rig.node('tn-x', 'other');
    await admitted(a);
    await admitted(x);
    const { r: ra } = await rawLogin(rig, a.node);
    const { r: rx, verdict } = await rawLogin(rig, x.node);
    toClose.push(ra, rx);
    assert.equal(verdict.type, 'server-ok');
    const before = rig.relay.counters.droppedOtherTailnet;
    ra.send({ type: 'send-packet', key: x.node.publicKey, data: bytes('across') });
    rx.send({ type: 'send-packet', key: a.node.publicKey, data: bytes('back') });
    const gone = await ra.waitFor('peer-gone');
    assert.equal(toB64(gone.key), x.nodeKey);
    assert.equal(gone.reason, 'not connected to this relay');
    await rx.waitFor('peer-gone');
    rx.send({ type: 'ping', data: new Uint8Array(8) });
    ra.send({ type: 'ping', data: new Uint8Array(8) });
    await rx.waitFor('pong');
    await ra.waitFor('pong');
    assert.equal(rx.of('recv-packet').length + ra.of('recv-packet').length, 0);
    assert.equal(rig.relay.counters.droppedOtherTailnet, before + 2);
  });
});

describe('hostile input', () => {
  it('closes a connection that sends garbage right after the upgrade; others keep working', async () => {
    const [a, b] = await rawPair('garb');
    const r = new RawRelay(rig.url, rig.ca, rig.fingerprint);
    toClose.push(r);
    await r.open();
    r.sendRaw(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    await r.waitClosed();
    a!.r.send({ type: 'send-packet', key: b!.n.node.publicKey, data: bytes('still here') });
    await b!.r.waitFor('recv-packet');
  });

  it('closes a session that sends an oversized frame or a malformed one; others keep working', async () => {
    const [a, b] = await rawPair('big');
    const before = rig.relay.counters.oversizedFrames;
    const header = Buffer.from([0x05, 0, 1, 0, 0x21]); // payload 64 KiB + 33: one byte over
    a!.r.sendRaw(header);
    await a!.r.waitClosed();
    assert.equal(rig.relay.counters.oversizedFrames, before + 1);
    const [c, d] = await rawPair('mal');
    c!.r.sendRaw(Buffer.from([0x05, 0, 0, 0, 3, 1, 2, 3])); // a send-packet shorter than its key
    await c!.r.waitClosed();
    d!.r.send({ type: 'send-packet', key: b!.n.node.publicKey, data: bytes('unaffected') });
    await b!.r.waitFor('recv-packet');
    assert.equal(b!.r.closed, false);
  });

  it('closes a connection that sends anything but a proof first, or no proof at all', async () => {
    const r = new RawRelay(rig.url, rig.ca, rig.fingerprint);
    toClose.push(r);
    await r.open();
    r.send({ type: 'send-packet', key: keyPair().publicKey, data: bytes('x') });
    assert.match((await r.waitFor('server-refused')).reason, /expected client-proof/);
    await r.waitClosed();
  });

  it('answers other paths and protocols without upgrading', async () => {
    await assert.rejects(new RawRelay(rig.url, rig.ca, rig.fingerprint).open('/other'), /HTTP 400/);
    await assert.rejects(new RawRelay(rig.url, rig.ca, rig.fingerprint).open('/relay', 'websocket'), /HTTP 400/);
  });

  it('ignores frame types it does not know (forward compatibility)', async () => {
    const [a, b] = await rawPair('unk');
    a!.r.sendRaw(encodeRelayFrame({ type: 'unknown', code: 0x42, payload: bytes('future') }));
    a!.r.send({ type: 'send-packet', key: b!.n.node.publicKey, data: bytes('after') });
    await b!.r.waitFor('recv-packet');
    assert.equal(a!.r.closed, false);
  });
});

describe('limits', () => {
  it('closes a client that goes silent within its read deadline (2 × keepalive)', async () => {
    const [a] = await rawPair('mute');
    // Answering keepalives keeps it open well past the deadline (600 ms)...
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(a!.r.closed, false);
    // ...and silence closes it within the deadline.
    a!.r.answerKeepalives = false;
    const before = rig.relay.counters.deadlineExpired;
    const t0 = Date.now();
    await a!.r.waitClosed(3000);
    const took = Date.now() - t0;
    assert.ok(took < 1500, `closed ${took} ms after going silent (deadline 600 ms)`);
    assert.equal(rig.relay.counters.deadlineExpired, before + 1);
  });
});

describe('rate limits and slow readers', () => {
  const rigs: RelayRig[] = [];
  const dirs: string[] = [];

  after(async () => {
    for (const r of rigs) await r.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  async function pairOn(opts: Parameters<typeof startRelayRig>[1]): Promise<[RelayRig, RawRelay, RawRelay, SimNode]> {
    const d = mkdtempSync(join(tmpdir(), 'warren-relay-lim-'));
    dirs.push(d);
    const r = await startRelayRig(d, opts);
    rigs.push(r);
    const a = await r.node('lim-a'), b = await r.node('lim-b');
    await until('admitted', () => r.admission.tailnetOf(a.nodeKey) !== undefined && r.admission.tailnetOf(b.nodeKey) !== undefined);
    const ra = (await rawLogin(r, a.node)).r, rb = (await rawLogin(r, b.node)).r;
    toClose.push(ra, rb);
    return [r, ra, rb, b];
  }

  it('drops (and counts) what exceeds a client\'s byte rate, without closing it', async () => {
    const [r, ra, rb, b] = await pairOn({ relay: { clientRate: { bytesPerSec: 100_000, burstBytes: 20_000 } } });
    const pkt = new Uint8Array(1000);
    for (let i = 0; i < 100; i++) ra.send({ type: 'send-packet', key: b.node.publicKey, data: pkt });
    await until('the relay to handle all 100', () => r.relay.counters.packetsForwarded + r.relay.counters.droppedRateLimit >= 100);
    // Burst 20 kB ≈ 18 packets of 1000 + 37 bytes, plus the trickle refilled meanwhile.
    assert.ok(r.relay.counters.droppedRateLimit >= 50, `dropped ${r.relay.counters.droppedRateLimit}`);
    assert.ok(r.relay.counters.packetsForwarded >= 15, `forwarded ${r.relay.counters.packetsForwarded}`);
    await rb.waitFor('recv-packet', 5000, r.relay.counters.packetsForwarded);
    ra.send({ type: 'ping', data: new Uint8Array(8) });
    await ra.waitFor('pong');
    assert.equal(ra.closed || rb.closed, false);
  });

  it('drops (and counts) packets for a reader that does not read, without closing either side', async () => {
    const [r, ra, rb, b] = await pairOn({ relay: { clientRate: { bytesPerSec: 1e10, burstBytes: 1e10 }, maxQueueBytes: 64 * 1024 } });
    rb.socket.pause();
    const pkt = new Uint8Array(60_000);
    // The kernel's socket buffers fill first; then the relay's bounded queue drops.
    for (let round = 0; round < 40 && r.relay.counters.droppedQueueFull === 0; round++) {
      for (let i = 0; i < 100; i++) ra.send({ type: 'send-packet', key: b.node.publicKey, data: pkt });
      await until('the sender\'s socket to drain', () => ra.socket.writableLength === 0, 10_000);
    }
    assert.ok(r.relay.counters.droppedQueueFull > 0, 'packets for the stalled reader were dropped');
    rb.socket.resume();
    ra.send({ type: 'ping', data: new Uint8Array(8) });
    await ra.waitFor('pong', 10_000);
    assert.equal(ra.closed || rb.closed, false);
  });
});
