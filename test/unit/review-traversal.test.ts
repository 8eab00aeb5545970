/**
 * Traversal (src/nat/traversal.ts) against a fake engine: what a review found.
 *  - A peer that rotates its node key keeps its disco key: its disco messages
 *    must still be recognised (the new entry must not lose its disco index
 *    when the old one is removed).
 *  - Every netmap is applied to the engine (which may recreate peers: a new
 *    own key, a renewed expiry) before Traversal sees it, so every peer's
 *    path is pushed again after it.
 *  - A disco message through the relay counts only if the relay says it comes
 *    from the node key whose disco key sealed it.
 *  - The node key in pings follows setNodeKey.
 *  - A peer with an unusable (low-order) disco key never makes an event throw.
 *  - Sealing with the cached shared key gives sealDisco's bytes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Traversal, type TraversalEngine } from '../../src/nat/traversal.js';
import { TEST_PATH_TIMERS } from '../../src/nat/path-timers.js';
import { openDisco, sealDisco, sealDiscoAfterNm } from '../../src/wire/disco.js';
import { boxBeforeNm } from '../../src/crypto/box.js';
import { generatePrivateKey, publicKeyOf } from '../../src/crypto/x25519.js';
import { encodeEndpoint, formatEndpoint } from '../../src/dataplane/endpoint.js';
import type { Datagram } from '../../src/dataplane/engine-protocol.js';
import type { EngineEvents } from '../../src/dataplane/engine.js';
import type { Netmap, NodeView } from '../../src/wire/control.js';

const b64 = (k: Uint8Array): string => Buffer.from(k).toString('base64');

function pair(): { privateKey: Uint8Array; publicKey: Uint8Array } {
  const privateKey = generatePrivateKey();
  return { privateKey, publicKey: publicKeyOf(privateKey) };
}

class FakeEngine implements TraversalEngine {
  readonly listenPort = 41641;
  readonly tun = 'review-none0';
  events: EngineEvents | null = null;
  sent: Datagram[] = [];
  pushes: Array<Array<{ key: string; endpoint: Uint8Array | null }>> = [];
  sendDatagrams(items: Datagram[]): void {
    this.sent.push(...items);
  }
  relayReceive(): void {}
  setEndpoints(items: Array<{ key: string; endpoint: Uint8Array | null }>): void {
    this.pushes.push(items);
  }
  setExtraSockets(): Promise<Map<number, number>> {
    return Promise.resolve(new Map());
  }
}

function node(id: number, nodeKey: Uint8Array, discoKey: Uint8Array, endpoints: string[] = []): NodeView {
  return {
    id, name: `n${id}`, nodeKey: b64(nodeKey), discoKey: b64(discoKey), addresses: [`100.64.0.${id}/32`],
    allowedIps: [`100.64.0.${id}/32`], endpoints, online: true, lastSeen: null, keyExpiry: null, tags: [],
    hostinfo: {}, homeRegion: 0,
  };
}

function netmap(self: NodeView, peers: NodeView[]): Netmap {
  return { self, peers, dns: { nameservers: [], domains: [] }, packetFilter: [], keepaliveMs: 30_000, relayMap: { regions: [] } };
}

function setup(): { t: Traversal; engine: FakeEngine; me: { node: ReturnType<typeof pair>; disco: ReturnType<typeof pair> }; self: NodeView } {
  const engine = new FakeEngine();
  const me = { node: pair(), disco: pair() };
  const t = new Traversal({
    engine, nodeKey: me.node, discoKey: me.disco, timers: TEST_PATH_TIMERS, staticEndpoints: [],
    log: () => {}, onEndpointsChanged: () => {}, onNetinfoChanged: () => {},
  });
  return { t, engine, me, self: node(1, me.node.publicKey, me.disco.publicKey) };
}

const FROM = encodeEndpoint('192.0.2.9', 41641);

test('a peer that rotated its node key (same disco key) is still recognised by its disco messages', async () => {
  const { t, engine, me, self } = setup();
  try {
    const peerDisco = pair();
    const k1 = pair(), k2 = pair();
    t.setNetmap(netmap(self, [node(2, k1.publicKey, peerDisco.publicKey)]));
    t.setNetmap(netmap(self, [node(2, k2.publicKey, peerDisco.publicKey)]));
    const ping = sealDisco({ type: 'ping', txid: new Uint8Array(12).fill(7), nodeKey: k2.publicKey }, peerDisco.privateKey, peerDisco.publicKey, me.disco.publicKey);
    engine.events!.datagrams([{ data: ping, addr: FROM }]);
    assert.equal(t.counters.disco_unknown_sender, 0, 'the ping\'s sender is known');
    assert.equal(t.counters.disco_rx, 1);
    const pong = engine.sent.find((d) => formatEndpoint(d.addr) === '192.0.2.9:41641');
    assert.ok(pong, 'a pong went back to where the ping came from');
    assert.equal(openDisco(pong.data, peerDisco.privateKey)?.msg.type, 'pong');
  } finally {
    await t.stop();
  }
});

test('every netmap pushes every peer\'s path again (the engine may have recreated the peer)', async () => {
  const { t, engine, self } = setup();
  try {
    const peer = node(2, pair().publicKey, pair().publicKey, ['192.0.2.7:41641']);
    t.setNetmap(netmap(self, [peer]));
    const first = engine.pushes.flat().filter((p) => p.key === peer.nodeKey);
    assert.equal(first.length, 1);
    assert.equal(formatEndpoint(first[0]!.endpoint!), '192.0.2.7:41641');
    engine.pushes = [];
    t.setNetmap(netmap(self, [peer]));
    const again = engine.pushes.flat().filter((p) => p.key === peer.nodeKey);
    assert.equal(again.length, 1, 'pushed again after the second netmap');
    assert.equal(formatEndpoint(again[0]!.endpoint!), '192.0.2.7:41641');
  } finally {
    await t.stop();
  }
});

test('a disco message via the relay counts only when the relay names its sealer\'s node key as the source', async () => {
  const { t, me, self } = setup();
  try {
    const peerDisco = pair(), peerNode = pair(), other = pair();
    t.setNetmap(netmap(self, [node(2, peerNode.publicKey, peerDisco.publicKey), node(3, other.publicKey, pair().publicKey)]));
    const fromRelay = (src: Uint8Array, data: Uint8Array): void =>
      (t as unknown as { fromRelay(region: number, src: Uint8Array, data: Uint8Array): void }).fromRelay(1, src, data);
    const ping = sealDisco({ type: 'ping', txid: new Uint8Array(12).fill(8), nodeKey: peerNode.publicKey }, peerDisco.privateKey, peerDisco.publicKey, me.disco.publicKey);
    fromRelay(other.publicKey, ping);
    assert.equal(t.counters.disco_rx, 0, 'another node relaying (replaying) the peer\'s ping is not the peer');
    fromRelay(peerNode.publicKey, ping);
    assert.equal(t.counters.disco_rx, 1, 'from the peer\'s own key it counts');
  } finally {
    await t.stop();
  }
});

test('after setNodeKey, pings carry the new node key', async () => {
  const { t, engine, me, self } = setup();
  try {
    const peerDisco = pair();
    const peer = node(2, pair().publicKey, peerDisco.publicKey, ['192.0.2.7:41641']);
    t.setNetmap(netmap(self, [peer]));
    const fresh = pair();
    t.setNodeKey(fresh);
    engine.sent = [];
    await t.ping(peer.nodeKey, 1).catch(() => undefined);
    const sent = engine.sent.map((d) => openDisco(d.data, peerDisco.privateKey)?.msg).find((m) => m?.type === 'ping');
    assert.ok(sent && sent.type === 'ping');
    assert.equal(b64(sent.nodeKey), b64(fresh.publicKey));
    void me;
  } finally {
    await t.stop();
  }
});

test('sealDiscoAfterNm seals exactly as sealDisco does (with the shared key made once)', () => {
  const a = pair(), b = pair();
  const nonce = new Uint8Array(24).fill(3);
  const msg = { type: 'pong' as const, txid: new Uint8Array(12).fill(1), src: { ip: '192.0.2.1', port: 41641 } };
  const slow = sealDisco(msg, a.privateKey, a.publicKey, b.publicKey, nonce);
  const fast = sealDiscoAfterNm(msg, a.publicKey, boxBeforeNm(b.publicKey, a.privateKey), nonce);
  assert.deepEqual(fast, slow);
  assert.equal(openDisco(fast, b.privateKey)?.msg.type, 'pong');
});

test('a peer whose disco key is unusable (a low-order point) never makes an engine event throw', async () => {
  const { t, engine, self } = setup();
  try {
    const bad = node(2, pair().publicKey, new Uint8Array(32), ['192.0.2.7:41641']);
    t.setNetmap(netmap(self, [bad]));
    assert.doesNotThrow(() => engine.events!.activity([bad.nodeKey]));
    await assert.rejects(t.ping(bad.nodeKey, 1));
    assert.equal(t.counters.disco_tx, 0);
  } finally {
    await t.stop();
  }
});

test('our endpoint list holds only what control accepts (a STUN answer of port 0 is left out)', async () => {
  const { t } = setup();
  try {
    (t as unknown as { stunEndpoints: string[] }).stunEndpoints = ['198.51.100.7:0', '198.51.100.7:41641'];
    const eps = t.endpoints();
    assert.ok(eps.includes('198.51.100.7:41641'));
    assert.ok(!eps.includes('198.51.100.7:0'));
  } finally {
    await t.stop();
  }
});

test('an unchanged netcheck does not tell control again (each report is a netmap delta to every peer)', async () => {
  let told = 0;
  const engine = new FakeEngine();
  const me = { node: pair(), disco: pair() };
  const t = new Traversal({
    engine, nodeKey: me.node, discoKey: me.disco, timers: TEST_PATH_TIMERS, staticEndpoints: [],
    log: () => {}, onEndpointsChanged: () => {}, onNetinfoChanged: () => told++,
  });
  try {
    await t.netcheck();
    const first = told;
    await t.netcheck();
    await t.netcheck();
    assert.equal(told, first, 'same netinfo: nothing more sent');
    assert.ok(first <= 1);
  } finally {
    await t.stop();
  }
});
