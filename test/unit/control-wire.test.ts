/**
 * Control protocol messages (src/wire/control.ts): each schema accepts a
 * valid example from control-protocol.md and rejects each kind of bad input
 * with a message naming the field; possession proofs round-trip and fail for
 * another purpose, nonce, server key, claimed key or a tampered box; and
 * verifyProof never throws, whatever it is handed.
 */
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import {
  ChallengeResponse,
  Change,
  ClientFrame,
  DeltaFrame,
  ErrorResponse,
  Netmap,
  NodeView,
  Proof,
  RegisterRequest,
  RegisterResponse,
  RotateRequest,
  RotateResponse,
  ServerFrame,
  MAX_ENDPOINTS,
  fromB64,
  makeProof,
  parseEndpoint,
  parseOr400,
  type Schema,
  toB64,
  verifyProof,
} from '../../src/wire/index.js';
import { boxOpenAfterNm, boxSeal } from '../../src/crypto/box.js';
import { generatePrivateKey, publicKeyOf } from '../../src/crypto/x25519.js';
import { rng } from '../helpers/rng.js';
import { h } from '../helpers/hex.js';

function bytes(n: number, fill: number): Uint8Array {
  return new Uint8Array(n).fill(fill);
}

/** Deep copy with one change at a dotted path ("a.b[2].c" style given as keys). */
function withField(obj: unknown, path: (string | number)[], value: unknown): unknown {
  const copy = structuredClone(obj) as Record<string | number, unknown>;
  let cur = copy;
  for (const k of path.slice(0, -1)) cur = cur[k] as Record<string | number, unknown>;
  const last = path[path.length - 1]!;
  if (value === undefined) delete cur[last];
  else cur[last] = value;
  return copy;
}

function ok<T>(schema: Schema<T>, data: unknown): T {
  const r = parseOr400(schema, data);
  assert.ok(r.ok, r.ok ? '' : `expected valid, got: ${r.error}`);
  return r.value;
}

function bad(schema: Schema<unknown>, data: unknown, message: RegExp): void {
  const r = parseOr400(schema, data);
  assert.equal(r.ok, false, `expected ${String(message)} but the input was accepted`);
  if (!r.ok) assert.match(r.error, message);
}

// ---------------------------------------------------------------- examples

const serverSk = generatePrivateKey();
const serverPk = publicKeyOf(serverSk);
const machineSk = generatePrivateKey();
const machinePk = publicKeyOf(machineSk);
const nodeSk = generatePrivateKey();
const nodePk = publicKeyOf(nodeSk);
const nonce = bytes(24, 7);
const key = toB64(bytes(32, 1));
const key2 = toB64(bytes(32, 2));

const proof = makeProof('machine:register', nonce, serverPk, machineSk, machinePk);
const register = {
  machine: proof,
  node: makeProof('node:register', nonce, serverPk, nodeSk, nodePk),
  discoKey: key,
  authKey: 'wkey-0123456789abcdef',
  hostname: 'pi-kitchen',
};
const nodeView = {
  id: 1, name: 'pi-kitchen', nodeKey: key, discoKey: key2,
  addresses: ['100.64.0.1/32', 'fd7a:115c:a1e0::1/128'],
  allowedIps: ['100.64.0.1/32', 'fd7a:115c:a1e0::1/128', '192.168.1.0/24'],
  endpoints: ['192.0.2.1:41641', '[2001:db8::1]:41641'],
  online: true, lastSeen: 1_700_000_000_000, keyExpiry: null, tags: ['tag:server'],
  hostinfo: { os: 'linux', warren: '0.1.0', net: { v6: true, ifaces: ['eth0', 'wlan0'] } },
  homeRegion: 1,
};
const peer = { ...nodeView, id: 2, name: 'laptop', online: false, lastSeen: null, keyExpiry: 1_800_000_000_000, tags: [], hostinfo: {} };
const netmap = {
  self: nodeView, peers: [peer],
  dns: { nameservers: ['100.100.100.100', 'fd7a:115c:a1e0::53'], domains: ['warren.internal'] },
  packetFilter: [{ src: ['*'], dst: ['*'] }],
  keepaliveMs: 30000,
  relayMap: { regions: [{ id: 1, code: 'home', name: 'Home relay', nodes: [{ name: 'relay1', url: 'https://203.0.113.5:443', fingerprint: 'ab'.repeat(32), stun: ['203.0.113.5:3478'] }] }] },
};
const hello = {
  type: 'hello', machine: makeProof('machine:map', nonce, serverPk, machineSk, machinePk), nodeKey: toB64(nodePk),
  version: null, endpoints: ['192.0.2.1:41641'], hostinfo: { hostname: 'pi-kitchen', os: 'linux' },
};

describe('schemas accept the spec examples', () => {
  it('requests and responses', () => {
    ok(Proof, proof);
    ok(ChallengeResponse, { serverKey: toB64(serverPk), nonce: toB64(nonce), expiresInMs: 60000 });
    const r = ok(RegisterRequest, register);
    assert.equal(r.hostname, 'pi-kitchen');
    ok(RegisterResponse, { nodeId: 1, name: 'pi-kitchen', addresses: ['100.64.0.1/32', 'fd7a:115c:a1e0::1/128'], keyExpiry: null, tags: [] });
    ok(RegisterResponse, { nodeId: 7, name: 'a', addresses: [], keyExpiry: 1_700_000_000_000, tags: ['tag:x'] });
    ok(RotateRequest, { machine: proof, newNode: proof, discoKey: key });
    ok(RotateResponse, { nodeId: 1, keyExpiry: null });
    ok(ErrorResponse, { error: 'auth key expired', code: 'authkey_expired' });
  });

  it('netmap, node views and changes', () => {
    ok(NodeView, nodeView);
    ok(NodeView, peer);
    ok(Netmap, netmap);
    ok(Netmap, { ...netmap, peers: [], dns: { nameservers: [], domains: [] }, packetFilter: [] });
    ok(Change, { op: 'upsert', node: peer });
    ok(Change, { op: 'remove', id: 2 });
    ok(Change, { op: 'self', node: nodeView });
  });

  it('client frames', () => {
    const f = ok(ClientFrame, hello);
    assert.equal(f.type, 'hello');
    if (f.type === 'hello') assert.equal(f.machine.key, toB64(machinePk)); // narrowing works
    ok(ClientFrame, { ...hello, version: 42 });
    ok(ClientFrame, { type: 'keepalive' });
    ok(ClientFrame, { type: 'endpoints', endpoints: [] });
    ok(ClientFrame, { type: 'endpoints', endpoints: Array.from({ length: MAX_ENDPOINTS }, (_, i) => `10.0.0.${i}:1`) });
    ok(ClientFrame, { type: 'hostinfo', hostinfo: { os: 'linux', n: 1, ok: true, none: null } });
  });

  it('server frames', () => {
    const f = ok(ServerFrame, { type: 'full', version: 3, netmap });
    if (f.type === 'full') assert.equal(f.netmap.peers[0]!.name, 'laptop');
    ok(ServerFrame, { type: 'delta', version: 4, changes: [{ op: 'remove', id: 2 }, { op: 'upsert', node: peer }] });
    ok(ServerFrame, { type: 'delta', version: 5, changes: [] });
    ok(ServerFrame, { type: 'keepalive' });
    for (const code of ['node_deleted', 'key_expired', 'bad_proof', 'unknown_node', 'node_key_mismatch']) {
      ok(ServerFrame, { type: 'error', code, error: 'bye' });
    }
  });
});

describe('schemas reject bad input, naming the field', () => {
  it('Proof: keys, nonces and boxes in base64 of the right size', () => {
    bad(Proof, { ...proof, key: 'not base64!' }, /^key: not base64$/);
    bad(Proof, { ...proof, key: toB64(bytes(31, 1)) }, /^key: must be 32 bytes, got 31$/);
    bad(Proof, { ...proof, key: toB64(bytes(33, 1)) }, /^key: (too long for 32 bytes|must be 32 bytes, got 33)$/);
    bad(Proof, { ...proof, key: key.replace(/\+/g, '-').replace('A', '_') }, /^key: not base64$/); // base64url
    bad(Proof, { ...proof, key: key.slice(0, -1) }, /^key: not base64$/); // unpadded
    // Non-canonical: the last symbol carries nonzero padding bits.
    bad(Proof, { ...proof, key: 'AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQF=' }, /^key: not base64$/);
    bad(Proof, { ...proof, key: 5 }, /^key: expected string, got number$/);
    bad(Proof, { ...proof, nonce: toB64(bytes(16, 0)) }, /^nonce: must be 24 bytes, got 16$/);
    bad(Proof, { ...proof, box: toB64(bytes(16, 0)) }, /^box: must be 41\.\.72 bytes, got 16$/);
    bad(Proof, { ...proof, box: toB64(bytes(4096, 0)) }, /^box: too long for 72 bytes$/);
    bad(Proof, { ...proof, box: undefined }, /^box: missing$/);
    bad(Proof, { ...proof, extra: 1 }, /^extra: unknown field$/);
    bad(Proof, { ...proof, a: 1, b: 2 }, /^a: unknown field \(and 1 more\)$/);
    bad(Proof, null, /^\(body\): expected object, got null$/);
  });

  it('ChallengeResponse', () => {
    const c = { serverKey: toB64(serverPk), nonce: toB64(nonce), expiresInMs: 60000 };
    bad(ChallengeResponse, { ...c, expiresInMs: 0 }, /^expiresInMs: must be >= 1$/);
    bad(ChallengeResponse, { ...c, expiresInMs: 1.5 }, /^expiresInMs: expected int, got number$/);
    bad(ChallengeResponse, { ...c, serverKey: undefined }, /^serverKey: missing$/);
  });

  it('RegisterRequest', () => {
    bad(RegisterRequest, withField(register, ['machine', 'box'], '@@@@'), /^machine\.box: not base64$/);
    bad(RegisterRequest, withField(register, ['node', 'key'], toB64(bytes(16, 3))), /^node\.key: must be 32 bytes, got 16$/);
    bad(RegisterRequest, withField(register, ['node'], undefined), /^node: missing$/);
    bad(RegisterRequest, withField(register, ['machine', 'purpose'], 'x'), /^machine\.purpose: unknown field$/);
    bad(RegisterRequest, { ...register, discoKey: '' }, /^discoKey: /);
    bad(RegisterRequest, { ...register, authKey: '' }, /^authKey: empty$/);
    bad(RegisterRequest, { ...register, authKey: 'k'.repeat(201) }, /^authKey: too long \(max 200 characters\)$/);
    bad(RegisterRequest, { ...register, authKey: 'wkey with spaces' }, /^authKey: not an auth key/);
    for (const name of ['x'.repeat(64), '', '-pi', 'pi-', 'pi_kitchen', 'pi.kitchen', 'pi kitchen', 'pï']) {
      bad(RegisterRequest, { ...register, hostname: name }, /^hostname: not a DNS label/);
    }
    ok(RegisterRequest, { ...register, hostname: 'x'.repeat(63) });
    ok(RegisterRequest, { ...register, hostname: 'A1' });
    bad(RegisterRequest, { ...register, admin: true }, /^admin: unknown field$/);
    bad(RegisterRequest, {}, /^machine: missing; node: missing; discoKey: missing; \(and 2 more\)$/);
    bad(RegisterRequest, { ...register, machine: [] }, /^machine: expected object, got array$/);
    bad(RegisterRequest, { ...register, machine: [proof] }, /^machine: expected object, got array$/);
  });

  it('RegisterResponse, RotateRequest, RotateResponse, ErrorResponse', () => {
    const rr = { nodeId: 1, name: 'pi', addresses: ['100.64.0.1/32'], keyExpiry: null, tags: [] };
    bad(RegisterResponse, { ...rr, nodeId: -1 }, /^nodeId: must be >= 0$/);
    bad(RegisterResponse, { ...rr, addresses: ['100.64.0.1/33'] }, /^addresses\[0\]: not an address\/prefix$/);
    bad(RegisterResponse, { ...rr, addresses: ['100.64.0.1/32', 'fd7a::1/129'] }, /^addresses\[1\]: not an address\/prefix$/);
    bad(RegisterResponse, { ...rr, addresses: ['100.64.0.1'] }, /^addresses\[0\]: not an address\/prefix$/);
    bad(RegisterResponse, { ...rr, keyExpiry: 'soon' }, /^keyExpiry: expected number, got string$/);
    bad(RegisterResponse, { ...rr, tags: Array.from({ length: 33 }, (_, i) => `t${i}`) }, /^tags: too many items \(max 32\)$/);
    bad(RegisterResponse, { ...rr, tags: ['has space'] }, /^tags\[0\]: not a tag/);
    bad(RotateRequest, { machine: proof, newNode: { ...proof, key: '!' }, discoKey: key }, /^newNode\.key: not base64$/);
    bad(RotateRequest, { machine: proof, node: proof, discoKey: key }, /newNode: missing/);
    bad(RotateResponse, { nodeId: 1 }, /^keyExpiry: missing$/);
    bad(ErrorResponse, { error: 'x', code: 'Bad Code' }, /^code: not a snake_case code$/);
    bad(ErrorResponse, { error: 'x'.repeat(1025), code: 'x' }, /^error: too long/);
  });

  it('NodeView: endpoints, addresses, hostinfo', () => {
    for (const ep of ['1.2.3.4', '1.2.3.4:0', '1.2.3.4:65536', '1.2.3.4:123456', '::1:80', '[1.2.3.4]:80',
      '[fe80::1%eth0]:80', '256.1.1.1:80', 'host.example:80', '[::1]', ' 1.2.3.4:80', '1.2.3.4:80 ']) {
      bad(NodeView, { ...nodeView, endpoints: [ep] }, /^endpoints\[0\]: not ip:port or \[ipv6\]:port$/);
    }
    bad(NodeView, { ...nodeView, endpoints: Array.from({ length: MAX_ENDPOINTS + 1 }, () => '10.0.0.1:1') }, /^endpoints: too many items \(max 64\)$/);
    bad(NodeView, { ...nodeView, allowedIps: ['10.0.0.0/8', 'nope'] }, /^allowedIps\[1\]: not an address\/prefix$/);
    bad(NodeView, { ...nodeView, online: 'yes' }, /^online: expected boolean, got string$/);
    bad(NodeView, { ...nodeView, lastSeen: undefined }, /^lastSeen: missing$/);
    bad(NodeView, { ...nodeView, hostinfo: undefined }, /^hostinfo: missing$/);
    bad(NodeView, { ...nodeView, hostinfo: [] }, /^hostinfo: expected an object$/);
    bad(NodeView, { ...nodeView, hostinfo: 'linux' }, /^hostinfo: expected an object$/);
    bad(NodeView, { ...nodeView, hostinfo: { big: 'x'.repeat(5000) } }, /^hostinfo: \d+ bytes, more than 4096$/);
    bad(NodeView, { ...nodeView, hostinfo: { a: { b: { c: { d: { e: 1 } } } } } }, /^hostinfo: nested deeper than 4$/);
    bad(NodeView, { ...nodeView, hostinfo: { a: [[[[]]]] } }, /^hostinfo: nested deeper than 4$/);
    ok(NodeView, { ...nodeView, hostinfo: { a: { b: { c: { d: 1 } } } } });
    bad(NodeView, { ...nodeView, hostinfo: { many: Array.from({ length: 5000 }, () => 0) } }, /^hostinfo: more than 4096 bytes$/);
    bad(NodeView, { ...nodeView, hostinfo: JSON.parse('{"__proto__": {"x": 1}}') as unknown }, /^hostinfo: reserved key __proto__$/);
    let deep: unknown = 1;
    for (let i = 0; i < 200_000; i++) deep = [deep];
    bad(NodeView, { ...nodeView, hostinfo: { deep } }, /^hostinfo: nested deeper than 4$/);
  });

  it('Netmap', () => {
    bad(Netmap, withField(netmap, ['peers', 0, 'nodeKey'], 'zz'), /^peers\[0\]\.nodeKey: not base64$/);
    bad(Netmap, withField(netmap, ['self', 'name'], 'no spaces please'), /^self\.name: not a DNS label/);
    bad(Netmap, withField(netmap, ['dns', 'nameservers', 1], '1.2.3'), /^dns\.nameservers\[1\]: not an IP address$/);
    bad(Netmap, withField(netmap, ['dns', 'domains', 0], 'bad domain'), /^dns\.domains\[0\]: not a DNS name$/);
    bad(Netmap, withField(netmap, ['dns', 'search'], []), /^dns\.search: unknown field$/);
    bad(Netmap, withField(netmap, ['packetFilter', 0, 'src', 0], 'a b'), /^packetFilter\[0\]\.src\[0\]: not a filter item$/);
    bad(Netmap, withField(netmap, ['packetFilter', 0, 'proto'], 'tcp'), /^packetFilter\[0\]\.proto: unknown field$/);
    bad(Netmap, { ...netmap, keepaliveMs: 0 }, /^keepaliveMs: must be >= 1$/);
    const region = netmap.relayMap.regions[0]!;
    const relayNode = region.nodes[0]!;
    const withNode = (n: object): unknown => ({ ...netmap, relayMap: { regions: [{ ...region, nodes: [{ ...relayNode, ...n }] }] } });
    bad(Netmap, withNode({ url: 'http://203.0.113.5' }), /^relayMap\.regions\[0\]\.nodes\[0\]\.url: not an https:\/\/host\[:port\] URL$/);
    bad(Netmap, withNode({ url: 'https://relay.example/derp' }), /url: not an https/);
    bad(Netmap, withNode({ fingerprint: 'AB'.repeat(32) }), /fingerprint: not a SHA-256 fingerprint/);
    bad(Netmap, withNode({ stun: ['nope'] }), /stun\[0\]: not ip:port/);
    ok(Netmap, withNode({ fingerprint: null, url: 'https://relay.example' }));
    bad(Netmap, { ...netmap, relayMap: { regions: [region, region] } }, /^relayMap\.regions\[1\]\.id: region id 1 appears twice$/);
    bad(Netmap, { ...netmap, relayMap: { regions: [{ ...region, code: 'Home' }] } }, /code: not a region code/);
    bad(NodeView, { ...nodeView, homeRegion: -1 }, /^homeRegion: must be >= 0$/);
    bad(Netmap, { ...netmap, self: undefined }, /^self: missing$/);
  });

  it('Change', () => {
    bad(Change, { op: 'move', id: 1 }, /^op: "move" is not one of "upsert", "remove", "self"$/);
    bad(Change, { id: 1 }, /^op: missing \(one of "upsert", "remove", "self"\)$/);
    bad(Change, { op: 'remove' }, /^id: missing$/);
    bad(Change, { op: 'remove', id: 1, node: peer }, /^node: unknown field$/);
    bad(DeltaFrame, { type: 'delta', version: 1, changes: [[]] }, /^changes\[0\]: expected object, got array$/);
    bad(DeltaFrame, { type: 'delta', version: 1, changes: [{ op: 'remove', id: 1.5 }] }, /^changes\[0\]\.id: expected int, got number$/);
    bad(Change, { op: 'upsert', node: { ...peer, id: 'two' } }, /^node\.id: expected number, got string$/);
  });

  it('client frames', () => {
    bad(ClientFrame, { ...hello, type: undefined }, /^type: missing/);
    bad(ClientFrame, { ...hello, type: 'full' }, /^type: "full" is not one of "hello", "keepalive", "endpoints", "hostinfo"$/);
    bad(ClientFrame, { ...hello, version: -1 }, /^version: must be >= 0$/);
    bad(ClientFrame, { ...hello, version: undefined }, /^version: missing$/);
    bad(ClientFrame, withField(hello, ['machine', 'box'], 'AAAA'), /^machine\.box: must be 41\.\.72 bytes, got 3$/);
    bad(ClientFrame, { ...hello, nodeKey: toB64(bytes(24, 0)) }, /^nodeKey: must be 32 bytes, got 24$/);
    bad(ClientFrame, { type: 'keepalive', at: 1 }, /^at: unknown field$/);
    bad(ClientFrame, { type: 'endpoints', endpoints: ['1.2.3.4:5', 'x'] }, /^endpoints\[1\]: not ip:port/);
    bad(ClientFrame, { type: 'hostinfo', hostinfo: null }, /^hostinfo: expected an object$/);
    bad(ClientFrame, [], /^\(body\): expected object, got array$/);
    bad(ClientFrame, 'hello', /^\(body\): expected object, got string$/);
  });

  it('server frames', () => {
    bad(ServerFrame, { type: 'full', version: 1, netmap: { ...netmap, self: undefined } }, /^netmap\.self: missing$/);
    bad(ServerFrame, { type: 'delta', version: 1, changes: [{ op: 'nope' }] }, /^changes\[0\]\.op: "nope" is not one of/);
    bad(ServerFrame, { type: 'delta', version: 1.5, changes: [] }, /^version: expected int, got number$/);
    bad(ServerFrame, { type: 'error', code: 'Node Deleted', error: 'x' }, /^code: not a snake_case code$/);
    bad(ServerFrame, { type: 'error', code: 'node_deleted' }, /^error: missing$/);
    bad(ServerFrame, { type: 'hello' }, /^type: "hello" is not one of "full", "delta", "keepalive", "error"$/);
  });

  it('parseOr400 never throws on hostile input', () => {
    const r = rng(0xc0de);
    const pool: unknown[] = [null, undefined, 0, -1, 1.5, NaN, '', 'x', true, [], {}, [1, 2], { type: 'hello' }, { op: 'remove' },
      { type: 'delta', version: 1, changes: 'x' }, { key: key }, Object.create(null) as unknown];
    for (let i = 0; i < 2000; i++) {
      const obj: Record<string, unknown> = {};
      for (const k of ['type', 'op', 'machine', 'key', 'nonce', 'box', 'endpoints', 'hostinfo', 'version', 'netmap', 'changes', 'id', 'node']) {
        if (r() < 0.4) obj[k] = pool[Math.floor(r() * pool.length)];
      }
      for (const schema of [ClientFrame, ServerFrame, RegisterRequest, Change, NodeView, Proof] as Schema<unknown>[]) {
        const res = parseOr400(schema, obj);
        if (!res.ok) assert.equal(typeof res.error, 'string');
      }
    }
  });
});

describe('helpers', () => {
  it('parseEndpoint', () => {
    assert.deepEqual(parseEndpoint('192.0.2.1:41641'), { ip: '192.0.2.1', port: 41641 });
    assert.deepEqual(parseEndpoint('[2001:db8::1]:1'), { ip: '2001:db8::1', port: 1 });
    assert.deepEqual(parseEndpoint('[::ffff:1.2.3.4]:65535'), { ip: '::ffff:1.2.3.4', port: 65535 });
    for (const s of ['1.2.3.4:080', '1.2.3.4:0', '1.2.3.4:65536', '[::1]:', '[::1]:-1', '01.2.3.4:80', '[::1]:80:80', `[${'1:'.repeat(7)}1]:99999`]) {
      assert.equal(parseEndpoint(s), null, s);
    }
  });

  it('fromB64 / toB64', () => {
    assert.deepEqual(fromB64(toB64(bytes(32, 9)), 32), bytes(32, 9));
    assert.equal(fromB64(toB64(bytes(32, 9)), 24), null);
    assert.equal(fromB64('AQ', 1), null);
    assert.deepEqual(fromB64('AQ=='), Uint8Array.of(1));
    assert.equal(fromB64('AR=='), null);
    assert.equal(fromB64(42), null);
  });
});

describe('possession proofs', () => {
  const serverB = generatePrivateKey();

  it('round trip: the proof verifies and yields the proven key', () => {
    const p = makeProof('machine:register', nonce, serverPk, machineSk, machinePk);
    assert.deepEqual(verifyProof(p, 'machine:register', serverSk), machinePk);
    assert.deepEqual(verifyProof(p, 'machine:register', serverSk, nonce), machinePk);
    assert.equal(p.key, toB64(machinePk));
    assert.equal(p.nonce, toB64(nonce));
    ok(Proof, p);
    // Several proofs on one nonce, one per purpose, all verify.
    const q = makeProof('node:register', nonce, serverPk, nodeSk, nodePk);
    assert.deepEqual(verifyProof(q, 'node:register', serverSk, nonce), nodePk);
  });

  it('the box is crypto_box of nonce || purpose (checked with the NaCl paper key pair)', () => {
    const alicesk = h('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
    const alicepk = h('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
    const bobpk = h('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
    const firstkey = h('1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389');
    const n = h('69696ee955b62b73cd62bda875fc73d68219e0036b7a0b37');
    const p = makeProof('machine:map', n, bobpk, alicesk, alicepk);
    const opened = boxOpenAfterNm(fromB64(p.box)!, n, firstkey);
    assert.ok(opened);
    assert.equal(Buffer.from(opened).toString('hex'), Buffer.from(n).toString('hex') + Buffer.from('machine:map').toString('hex'));
  });

  it('fails for another purpose', () => {
    const p = makeProof('machine:register', nonce, serverPk, machineSk, machinePk);
    for (const other of ['node:register', 'machine:map', 'machine:rotate', 'node:rotate'] as const) {
      assert.equal(verifyProof(p, other, serverSk), null, other);
    }
  });

  it('fails for another nonce', () => {
    const p = makeProof('machine:map', nonce, serverPk, machineSk, machinePk);
    const other = bytes(24, 8);
    // The claimed nonce changed: the box no longer opens.
    assert.equal(verifyProof({ ...p, nonce: toB64(other) }, 'machine:map', serverSk), null);
    // A genuine proof on another challenge is refused when the server names its nonce.
    const q = makeProof('machine:map', other, serverPk, machineSk, machinePk);
    assert.equal(verifyProof(q, 'machine:map', serverSk, nonce), null);
    // A box opened under the right nonce but holding another nonce inside.
    const inner = new Uint8Array([...other, ...Buffer.from('machine:map')]);
    const forged = { ...p, box: toB64(boxSeal(inner, nonce, serverPk, machineSk)) };
    assert.equal(verifyProof(forged, 'machine:map', serverSk), null);
  });

  it('fails for another server key', () => {
    const p = makeProof('machine:map', nonce, publicKeyOf(serverB), machineSk, machinePk);
    assert.equal(verifyProof(p, 'machine:map', serverSk), null);
    assert.ok(verifyProof(p, 'machine:map', serverB));
  });

  it('fails when the claimed key is not the one that sealed', () => {
    const p = makeProof('machine:map', nonce, serverPk, machineSk, machinePk);
    assert.equal(verifyProof({ ...p, key: toB64(nodePk) }, 'machine:map', serverSk), null);
    // An attacker boxing with its own key while claiming the victim's.
    const attacker = generatePrivateKey();
    const fake = makeProof('machine:map', nonce, serverPk, attacker, machinePk);
    assert.equal(verifyProof(fake, 'machine:map', serverSk), null);
  });

  it('fails for a tampered box (every byte) and for trailing bytes', () => {
    const p = makeProof('machine:rotate', nonce, serverPk, machineSk, machinePk);
    const box = fromB64(p.box)!;
    for (let i = 0; i < box.length; i++) {
      const t = box.slice();
      t[i]! ^= 0x01;
      assert.equal(verifyProof({ ...p, box: toB64(t) }, 'machine:rotate', serverSk), null, `byte ${i}`);
    }
    const longer = new Uint8Array([...nonce, ...Buffer.from('machine:rotate!')]);
    assert.equal(verifyProof({ ...p, box: toB64(boxSeal(longer, nonce, serverPk, machineSk)) }, 'machine:rotate', serverSk), null);
    assert.equal(verifyProof({ ...p, box: toB64(box.subarray(0, box.length - 1)) }, 'machine:rotate', serverSk), null);
  });

  it('never throws on garbage', () => {
    const p = makeProof('node:rotate', nonce, serverPk, nodeSk, nodePk);
    const smallOrder = toB64(h('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800'));
    const cases: unknown[] = [
      null, undefined, 0, 'proof', [], [p], {}, Object.create(null) as unknown,
      { key: 5, nonce: p.nonce, box: p.box }, { ...p, key: null }, { ...p, nonce: '' }, { ...p, box: '' },
      { ...p, box: 'A'.repeat(1 << 20) }, { ...p, key: 'A'.repeat(43) + '=' + 'A' }, { ...p, key: smallOrder },
      { ...p, key: toB64(bytes(32, 0)) }, { ...p, nonce: p.box, box: p.nonce }, { ...p, box: toB64(bytes(16, 0)) },
      new Proxy({}, { get() { throw new Error('hostile getter'); } }),
    ];
    for (const c of cases) assert.equal(verifyProof(c, 'node:rotate', serverSk), null);
    // Malformed server keys and expected nonces are refused, not thrown.
    assert.equal(verifyProof(p, 'node:rotate', new Uint8Array(5)), null);
    assert.equal(verifyProof(p, 'node:rotate', serverSk, new Uint8Array(3)), null);

    const r = rng(0x9a7bae);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=';
    const junk = (): string => Array.from({ length: Math.floor(r() * 120) }, () => alphabet[Math.floor(r() * alphabet.length)]).join('');
    for (let i = 0; i < 500; i++) {
      const c = { key: r() < 0.5 ? p.key : junk(), nonce: r() < 0.5 ? p.nonce : junk(), box: r() < 0.3 ? p.box : junk() };
      const out = verifyProof(c, 'node:rotate', serverSk);
      if (out !== null) assert.deepEqual(c, p);
    }
  });
});
