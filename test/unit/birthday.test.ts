/**
 * Birthday-paradox decisions: who plays which side, which of a peer's
 * candidates are public, the probe ports, and path choice keeping a socket
 * in a candidate (the hard side's winner is a specific extra socket).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BIRTHDAY_LIMITS, birthdayRole, peerMappingVaries, publicV4, randomPorts } from '../../src/nat/birthday.js';
import { PeerPaths, type DirectAddr } from '../../src/nat/peer-paths.js';
import { TEST_PATH_TIMERS } from '../../src/nat/path-timers.js';
import { FakeClock } from '../../src/dataplane/clock.js';

test('roles: hard toward easy, easy toward hard; nothing for easy↔easy, hard↔hard or unknown', () => {
  assert.equal(birthdayRole(true, false), 'hard');
  assert.equal(birthdayRole(false, true), 'easy');
  assert.equal(birthdayRole(false, false), null);
  assert.equal(birthdayRole(true, true), null);
  assert.equal(birthdayRole(null, true), null);
  assert.equal(birthdayRole(true, null), null);
});

test('a peer\'s verdict comes from hostinfo.netinfo.mappingVaries; anything else is unknown', () => {
  assert.equal(peerMappingVaries({ netinfo: { mappingVaries: true } }), true);
  assert.equal(peerMappingVaries({ netinfo: { mappingVaries: false } }), false);
  assert.equal(peerMappingVaries({ netinfo: { mappingVaries: 'yes' } }), null);
  assert.equal(peerMappingVaries({ netinfo: [] }), null);
  assert.equal(peerMappingVaries({}), null);
});

test('targets: public IPv4 candidates only (no LAN, carrier NAT, loopback, IPv6 or socket-bound ones)', () => {
  const c: DirectAddr[] = [
    { ip: '192.168.1.2', port: 41641 }, { ip: '100.72.0.9', port: 41641 }, { ip: '11.2.0.2', port: 40123 },
    { ip: '127.0.0.1', port: 1 }, { ip: '2001:db8::1', port: 41641 }, { ip: '10.0.0.1', port: 5 }, { ip: '11.3.0.2', port: 7, socket: 3 },
  ];
  assert.deepEqual(publicV4(c), [{ ip: '11.2.0.2', port: 40123 }]);
});

test('probe ports stay within 1024..65535; limits are bounded', () => {
  let x = 0;
  const seq = [0, 0.999999, 0.5];
  const ports = randomPorts(3, () => seq[x++]!);
  assert.deepEqual(ports, [1024, 65535, 1024 + Math.floor(0.5 * 64512)]);
  assert.ok(BIRTHDAY_LIMITS.sockets <= 255 && BIRTHDAY_LIMITS.probesPerSec <= 1000 && BIRTHDAY_LIMITS.durationMs <= 60_000);
});

test('path choice keeps the socket: the same address via an extra socket is its own candidate, pinged and used through it', () => {
  const clock = new FakeClock();
  const sent: DirectAddr[] = [];
  const txids: Uint8Array[] = [];
  const pp = new PeerPaths({ clock, timers: TEST_PATH_TIMERS, io: { sendPing: (to, txid) => { sent.push(to as DirectAddr); txids.push(txid); }, sendCallMeMaybe: () => {} } });
  pp.setPeerHomeRegion(1);
  pp.noteTraffic();
  pp.onPingReceived({ ip: '11.1.0.2', port: 41641, socket: 17 });
  const ping = sent.find((s) => s.socket === 17);
  assert.deepEqual(ping, { ip: '11.1.0.2', port: 41641, socket: 17 }, 'pinged through socket 17');
  assert.equal(pp.status().candidates.length, 1);
  const i = sent.indexOf(ping!);
  assert.equal(pp.onPong(txids[i]!, { ip: '11.1.0.2', port: 41641 }), null, 'the same address on the main socket is another path');
  clock.advance(3);
  assert.ok(pp.onPong(txids[i]!, { ip: '11.1.0.2', port: 41641, socket: 17 }));
  assert.deepEqual(pp.current(), { kind: 'direct', addr: { ip: '11.1.0.2', port: 41641, socket: 17 } });
});
