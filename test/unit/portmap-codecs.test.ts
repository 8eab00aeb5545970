/**
 * NAT-PMP (RFC 6886) and PCP (RFC 6887) codecs against byte vectors laid out
 * by hand from the RFCs' packet diagrams, round trips, and garbage: random
 * and mutated datagrams never throw and never decode into a success that
 * was not there.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeNatPmpResponse, encodeNatPmpAddressRequest, encodeNatPmpMapRequest, isNatPmpUnsupportedVersion, NatPmpResult,
} from '../../src/wire/natpmp.js';
import {
  decodePcpResponse, encodePcpAnnounceRequest, encodePcpMapRequest, isPcpUnsupportedVersion, pcpAddress, pcpAddressText,
  IPPROTO_UDP, PcpOp, PcpResult,
} from '../../src/wire/pcp.js';
import { h, hex } from '../helpers/hex.js';
import { rng } from '../helpers/rng.js';

// ------------------------------------------------------------------ NAT-PMP

test('NAT-PMP: external address request is version 0, opcode 0 (RFC 6886 §3.2)', () => {
  assert.equal(hex(encodeNatPmpAddressRequest()), '0000');
});

test('NAT-PMP: external address response (§3.2): epoch and IPv4', () => {
  // vers 0 | op 128 | result 0 | seconds since start of epoch 0x1234 | 203.0.113.7
  const r = decodeNatPmpResponse(h('00 80 0000 00001234 cb007107'));
  assert.deepEqual(r, { kind: 'address', result: 0, epoch: 0x1234, externalIp: '203.0.113.7' });
});

test('NAT-PMP: UDP map request (§3.3): internal 41641, suggested 41641, 7200 s', () => {
  const b = encodeNatPmpMapRequest({ protocol: 'udp', internalPort: 41641, suggestedExternalPort: 41641, lifetime: 7200 });
  assert.equal(hex(b), '00010000a2a9a2a900001c20');
  const tcp = encodeNatPmpMapRequest({ protocol: 'tcp', internalPort: 22, suggestedExternalPort: 0, lifetime: 3600 });
  assert.equal(hex(tcp), '000200000016000000000e10');
});

test('NAT-PMP: delete is lifetime 0 and external port 0 (§3.4)', () => {
  assert.equal(hex(encodeNatPmpMapRequest({ protocol: 'udp', internalPort: 41641, suggestedExternalPort: 0, lifetime: 0 })), '00010000a2a9000000000000');
});

test('NAT-PMP: map response (§3.3): epoch, ports, lifetime', () => {
  const r = decodeNatPmpResponse(h('00 81 0000 0000003c a2a9 a2aa 00001c20'));
  assert.deepEqual(r, { kind: 'map', protocol: 'udp', result: 0, epoch: 60, internalPort: 41641, externalPort: 41642, lifetime: 7200 });
});

test('NAT-PMP: an error may be cut after the epoch (§3.5); its fields read as zero', () => {
  const r = decodeNatPmpResponse(h('00 81 0002 00000005'));
  assert.deepEqual(r, { kind: 'map', protocol: 'udp', result: NatPmpResult.NOT_AUTHORIZED, epoch: 5, internalPort: 0, externalPort: 0, lifetime: 0 });
  assert.equal(decodeNatPmpResponse(h('00 80 0003 00000005'))?.kind, 'address');
});

test('NAT-PMP: truncated success, another version, a request, an unknown opcode: null', () => {
  assert.equal(decodeNatPmpResponse(h('00 81 0000 0000003c a2a9 a2aa 00001c')), null, 'truncated map');
  assert.equal(decodeNatPmpResponse(h('00 80 0000 00001234 cb0071')), null, 'truncated address');
  assert.equal(decodeNatPmpResponse(h('02 80 0000 00001234 cb007107')), null, 'PCP version');
  assert.equal(decodeNatPmpResponse(h('00 01 0000 a2a9 a2a9 00001c20')), null, 'a request');
  assert.equal(decodeNatPmpResponse(h('00 83 0000 00000001')), null, 'unknown opcode');
  assert.equal(decodeNatPmpResponse(h('00 80 00')), null, 'too short');
  assert.equal(decodeNatPmpResponse(new Uint8Array(0)), null);
});

test('NAT-PMP: trailing bytes are ignored', () => {
  assert.equal(decodeNatPmpResponse(h('00 80 0000 00001234 cb007107 deadbeef'))?.kind, 'address');
});

test('NAT-PMP: "unsupported version" answer to a PCP request is recognised', () => {
  // A NAT-PMP-only gateway answering PCP ANNOUNCE: vers 0, op 128+0, result 1.
  assert.equal(isNatPmpUnsupportedVersion(h('00 80 0001 00000010')), true);
  assert.equal(isNatPmpUnsupportedVersion(h('00 80 0000 00000010 0b010002')), false);
  assert.equal(isNatPmpUnsupportedVersion(h('02 80 0001')), false);
});

test('NAT-PMP: encoder refuses out-of-range fields', () => {
  assert.throws(() => encodeNatPmpMapRequest({ protocol: 'udp', internalPort: 70000, suggestedExternalPort: 0, lifetime: 1 }), RangeError);
  assert.throws(() => encodeNatPmpMapRequest({ protocol: 'udp', internalPort: 1, suggestedExternalPort: -1, lifetime: 1 }), RangeError);
  assert.throws(() => encodeNatPmpMapRequest({ protocol: 'udp', internalPort: 1, suggestedExternalPort: 1, lifetime: 2 ** 32 }), RangeError);
});

// ------------------------------------------------------------------ PCP

const NONCE = h('000102030405060708090a0b');

test('PCP: addresses are 16 bytes, IPv4 mapped (RFC 6887 §5)', () => {
  assert.equal(hex(pcpAddress('192.168.1.2')), '00000000000000000000ffffc0a80102');
  assert.equal(hex(pcpAddress('2001:db8::1')), '20010db8000000000000000000000001');
  assert.equal(pcpAddressText(h('00000000000000000000ffffcb007107')), '203.0.113.7');
  assert.equal(pcpAddressText(h('20010db8000000000000000000000001')), '2001:db8::1');
  for (const bad of ['1.2.3', '1.2.3.256', 'example.com', '0x7f.1.1.1', '']) assert.throws(() => pcpAddress(bad), RangeError, bad);
});

test('PCP: ANNOUNCE request (§14.1): version 2, opcode 0, lifetime 0, client IP', () => {
  assert.equal(hex(encodePcpAnnounceRequest('192.168.1.2')), '02000000' + '00000000' + '00000000000000000000ffffc0a80102');
});

test('PCP: MAP request (§11.1): header, nonce, UDP, ports, no external-address preference', () => {
  const b = encodePcpMapRequest({ clientIp: '192.168.1.2', lifetime: 7200, nonce: NONCE, protocol: IPPROTO_UDP, internalPort: 41641, suggestedExternalPort: 41641 });
  assert.equal(b.length, 60);
  assert.equal(hex(b),
    '02010000' + '00001c20' + '00000000000000000000ffffc0a80102'
    + '000102030405060708090a0b' + '11000000' + 'a2a9' + 'a2a9' + '00000000000000000000ffff00000000');
  assert.throws(() => encodePcpMapRequest({ clientIp: '192.168.1.2', lifetime: 1, nonce: new Uint8Array(8), protocol: 17, internalPort: 1, suggestedExternalPort: 0 }), RangeError);
});

const MAP_RESPONSE = '02810000' + '00001c20' + '0000003c' + '000000000000000000000000'
  + '000102030405060708090a0b' + '11000000' + 'a2a9' + 'a2aa' + '00000000000000000000ffffcb007107';

test('PCP: MAP response (§7.2, §11.1): result, lifetime, epoch, assigned endpoint, nonce', () => {
  const r = decodePcpResponse(h(MAP_RESPONSE))!;
  assert.equal(r.opcode, PcpOp.MAP);
  assert.equal(r.result, PcpResult.SUCCESS);
  assert.equal(r.lifetime, 7200);
  assert.equal(r.epoch, 60);
  assert.equal(hex(r.map!.nonce), hex(NONCE));
  assert.deepEqual({ ...r.map!, nonce: null }, { nonce: null, protocol: 17, internalPort: 41641, externalPort: 41642, externalIp: '203.0.113.7' });
});

test('PCP: options after the MAP body are skipped', () => {
  const r = decodePcpResponse(h(MAP_RESPONSE + '80000004' + 'deadbeef'));
  assert.equal(r?.map?.externalPort, 41642);
});

test('PCP: an ANNOUNCE response has no body; an error MAP response may be bare', () => {
  const a = decodePcpResponse(h('02800000' + '00000000' + '00000abc' + '000000000000000000000000'))!;
  assert.deepEqual(a, { opcode: PcpOp.ANNOUNCE, result: 0, lifetime: 0, epoch: 0xabc, map: null });
  const e = decodePcpResponse(h('02810008' + '0000001e' + '00000abc' + '000000000000000000000000'))!;
  assert.equal(e.result, PcpResult.NO_RESOURCES);
  assert.equal(e.map, null);
});

test('PCP: malformed responses are null (§7: 24…1100 bytes, multiple of 4, R bit, version)', () => {
  const ok = h(MAP_RESPONSE);
  assert.equal(decodePcpResponse(ok.subarray(0, 56)), null, 'success with truncated body');
  assert.equal(decodePcpResponse(ok.subarray(0, 59)), null, 'not a multiple of 4');
  assert.equal(decodePcpResponse(ok.subarray(0, 20)), null, 'shorter than a header');
  assert.equal(decodePcpResponse(new Uint8Array(1104).fill(0).map((_, i) => (i === 0 ? 2 : i === 1 ? 0x80 : 0))), null, 'over 1100 bytes');
  const req = ok.slice();
  req[1] = 0x01;
  assert.equal(decodePcpResponse(req), null, 'a request (R=0)');
  const v1 = ok.slice();
  v1[0] = 1;
  assert.equal(decodePcpResponse(v1), null, 'version 1');
});

test('PCP: unsupported-version answers are recognised in both formats', () => {
  assert.equal(isPcpUnsupportedVersion(h('02800001' + '00000000' + '00000001' + '000000000000000000000000')), true);
  assert.equal(isPcpUnsupportedVersion(h(MAP_RESPONSE)), false);
  assert.equal(isNatPmpUnsupportedVersion(h('02800001')), false);
});

// ------------------------------------------------------------------ garbage

test('garbage: random datagrams never throw; almost none decode', () => {
  const r = rng(6886);
  let natpmp = 0;
  let pcp = 0;
  for (let i = 0; i < 20_000; i++) {
    const len = Math.floor(r() * 80);
    const b = new Uint8Array(len);
    for (let j = 0; j < len; j++) b[j] = Math.floor(r() * 256);
    if (decodeNatPmpResponse(b)) natpmp++;
    if (decodePcpResponse(b)) pcp++;
    isNatPmpUnsupportedVersion(b);
    isPcpUnsupportedVersion(b);
  }
  assert.ok(natpmp < 50, `random bytes rarely look like NAT-PMP (${natpmp})`);
  assert.ok(pcp < 50, `random bytes rarely look like PCP (${pcp})`);
});

test('garbage: every truncation and single-byte mutation of valid responses is handled', () => {
  const r = rng(6887);
  const samples = [h(MAP_RESPONSE), h('00 81 0000 0000003c a2a9 a2aa 00001c20'), h('00 80 0000 00001234 cb007107')];
  for (const s of samples) {
    for (let n = 0; n <= s.length; n++) {
      decodeNatPmpResponse(s.subarray(0, n));
      decodePcpResponse(s.subarray(0, n));
    }
    for (let i = 0; i < 5000; i++) {
      const m = s.slice();
      m[Math.floor(r() * m.length)] = Math.floor(r() * 256);
      const p = decodePcpResponse(m);
      const q = decodeNatPmpResponse(m);
      if (p?.map) assert.equal(p.map.nonce.length, 12);
      if (q?.kind === 'map') assert.ok(q.externalPort >= 0 && q.externalPort <= 65535);
    }
  }
});
