/**
 * The node's relay client (src/nat/relay-client.ts) against an in-process
 * relay and a deliberately broken one:
 *
 * - a relay that goes silent after the handshake (half-open) is noticed
 *   within the read deadline and replaced by a new connection;
 * - the client keeps to the relay's keepalive interval when it is shorter;
 * - send() while disconnected returns false and nothing sent then is ever
 *   delivered after the reconnect;
 * - a wrong pin never connects and says so; close() stops for good.
 */
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRelayRig, until, keyPair, type RelayRig } from '../helpers/relay.js';
import type { SimNode } from '../helpers/sim-node.js';
import { RelayClient, type RelayClientOptions } from '../../src/nat/relay-client.js';
import { RelayFrameReader, encodeRelayFrame } from '../../src/wire/relay-frames.js';
import { generatePrivateKey, publicKeyOf } from '../../src/crypto/x25519.js';
import { loadOrCreateSelfSigned } from '../../src/server/tls-cert.js';

const dir = mkdtempSync(join(tmpdir(), 'warren-relayc-'));
let rig: RelayRig;
const clients: RelayClient[] = [];

before(async () => {
  rig = await startRelayRig(dir, { relay: { keepaliveMs: 300 } });
  await until('admission list', () => rig.admission.loaded);
});

after(async () => {
  for (const c of clients) await c.close();
  await rig.stop();
  rmSync(dir, { recursive: true, force: true });
});

function client(o: Partial<RelayClientOptions> & Pick<RelayClientOptions, 'nodeKey'>, got: string[] = []): RelayClient {
  const c = new RelayClient({
    url: rig.url, fingerprint: rig.fingerprint, onPacket: (_src, data) => got.push(Buffer.from(data).toString()),
    log: () => undefined, keepaliveMs: 300, backoff: { minMs: 20, maxMs: 100 }, ...o,
  });
  clients.push(c);
  c.start();
  return c;
}

async function node(name: string): Promise<SimNode> {
  const n = await rig.node(name);
  await until('admitted', () => rig.admission.tailnetOf(n.nodeKey) !== undefined);
  return n;
}

describe('RelayClient', () => {
  it('never delivers, after a reconnect, what send() refused while disconnected', async () => {
    const a = await node('q-a'), b = await node('q-b');
    const gotB: string[] = [];
    const states: string[] = [];
    const ca = client({ nodeKey: a.node, onState: (s) => states.push(s) });
    const cb = client({ nodeKey: b.node }, gotB);
    await until('connected', () => ca.connected && cb.connected);
    assert.equal(ca.send(b.node.publicKey, Buffer.from('before')), true);
    await until('first packet', () => gotB.length === 1);
    // Control stops admitting A for a moment: the relay cuts it, and it cannot get back in.
    rig.admission.apply([], [a.nodeKey]);
    await until('A disconnected', () => !ca.connected);
    const refused = [1, 2, 3].map((i) => ca.send(b.node.publicKey, Buffer.from(`while down ${i}`)));
    assert.deepEqual(refused, [false, false, false]);
    assert.ok(ca.stats.sendDropped >= 3);
    rig.admission.apply([{ key: a.nodeKey, tailnet: 'default' }], []);
    await until('A back', () => ca.connected, 5000);
    assert.equal(ca.send(b.node.publicKey, Buffer.from('after')), true);
    await until('the packet sent after the reconnect', () => gotB.includes('after'));
    assert.deepEqual(gotB, ['before', 'after']);
    assert.ok(states.includes('disconnected') && states.at(-1) === 'connected', states.join(','));
  });

  it('follows the relay\'s shorter keepalive interval, so the relay keeps it', async () => {
    const a = await node('ka-a');
    const ca = client({ nodeKey: a.node, keepaliveMs: 30_000 });
    await until('connected', () => ca.connected);
    const connects = ca.stats.connects;
    const expired = rig.relay.counters.deadlineExpired;
    await new Promise((r) => setTimeout(r, 1500)); // 2.5 × the relay's read deadline
    assert.equal(ca.connected, true);
    assert.equal(ca.stats.connects, connects);
    assert.equal(rig.relay.counters.deadlineExpired, expired);
  });

  it('measures latency with ping, and fails pings when not connected', async () => {
    const a = await node('ping-a');
    const ca = client({ nodeKey: a.node });
    await until('connected', () => ca.connected);
    const ms = await ca.ping(2000);
    assert.ok(ms >= 0 && ms < 1000);
    await ca.close();
    await assert.rejects(ca.ping(), /not connected/);
    assert.equal(ca.send(a.node.publicKey, new Uint8Array(1)), false);
  });

  it('refuses a relay whose certificate is not the pinned one', async () => {
    const a = await node('pin-a');
    const wrong = 'ab'.repeat(32);
    const ca = client({ nodeKey: a.node, fingerprint: wrong });
    await until('a pin error', () => /pinned to|fingerprint/.test(ca.lastError ?? ''), 5000);
    assert.equal(ca.connected, false);
    await ca.close();
  });

  it('reports a refusal from the relay (a key that is not admitted)', async () => {
    const ca = client({ nodeKey: keyPair() });
    await until('the refusal', () => /not admitted/.test(ca.lastError ?? ''), 5000);
    assert.equal(ca.connected, false);
    await ca.close();
  });
});

describe('half-open connections (client side)', () => {
  let fake: Server;
  let port = 0;
  let upgrades = 0;
  const sockets = new Set<Socket>();

  before(async () => {
    // A relay that completes the handshake, asks for 100 ms keepalives, then never says another word.
    const cert = await loadOrCreateSelfSigned(join(dir, 'fake'), { commonName: 'fake' });
    const priv = generatePrivateKey();
    fake = createServer({ cert: cert.certPem, key: cert.keyPem });
    fake.on('upgrade', (_req: IncomingMessage, socket: Socket) => {
      upgrades++;
      sockets.add(socket);
      socket.write(Buffer.concat([Buffer.from('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: warren-relay/1\r\n\r\n'),
        encodeRelayFrame({ type: 'server-challenge', serverKey: publicKeyOf(priv), nonce: new Uint8Array(24) })]));
      const r = new RelayFrameReader();
      socket.on('data', (c: Buffer) => r.push(c, (f) => {
        if (f.type === 'client-proof') socket.write(encodeRelayFrame({ type: 'server-ok', keepaliveMs: 100 }));
      }));
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
    port = (fake.address() as { port: number }).port;
    (fake as Server & { fp?: string }).fp = cert.fingerprint;
  });

  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => fake.close(() => resolve()));
  });

  it('notices a silent relay within the read deadline and reconnects', async () => {
    const deadlines: number[] = [];
    let upAt = 0;
    const c = new RelayClient({
      url: `https://127.0.0.1:${port}`, fingerprint: (fake as Server & { fp?: string }).fp!, nodeKey: keyPair(),
      onPacket: () => undefined, keepaliveMs: 5000, backoff: { minMs: 10, maxMs: 20 }, log: () => undefined,
      onState: (s) => {
        if (s === 'connected') upAt = Date.now();
        if (s === 'disconnected' && upAt) deadlines.push(Date.now() - upAt);
      },
    });
    clients.push(c);
    c.start();
    await until('two read deadlines and a third connection', () => c.stats.deadlineExpired >= 2 && upgrades >= 3, 5000);
    // The relay asked for 100 ms keepalives: 200 ms of silence is a dead connection.
    assert.ok(deadlines.every((d) => d >= 190 && d < 1000), `noticed after ${deadlines.join(', ')} ms`);
    await c.close();
    const n = upgrades;
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(upgrades, n, 'no reconnect after close()');
  });
});
