/**
 * Review: the home relay connection is kept open across relay-map changes.
 * A new map that changes the home region's servers (a new certificate pin, a
 * STUN address added) closes the old connection; the home region must be
 * dialled again at once, or peers cannot reach this node through its relay
 * until it happens to send something there itself.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RelayPool, type RelayClientLike } from '../../src/nat/relay-pool.js';
import type { RelayClientOptions } from '../../src/nat/relay-client.js';
import type { RelayMap } from '../../src/wire/control.js';

function map(stun: string[]): RelayMap {
  return { regions: [{ id: 1, code: 'r1', name: 'R1', nodes: [{ name: 'relay1', url: 'https://relay1.example', fingerprint: null, stun }] }] };
}

test('a relay map that changes the home region\'s servers re-dials home at once', async () => {
  const clients: Array<{ o: RelayClientOptions; closed: boolean }> = [];
  const p = new RelayPool({
    nodeKey: { privateKey: new Uint8Array(32), publicKey: new Uint8Array(32) },
    onPacket: () => {},
    log: () => {},
    makeClient: (o): RelayClientLike => {
      const c = { o, closed: false };
      clients.push(c);
      return {
        start: () => {}, send: () => false, ping: () => Promise.resolve(1), connected: false,
        close: () => { c.closed = true; return Promise.resolve(); },
      };
    },
  });
  try {
    p.setMap(map(['192.0.2.1:3478']));
    p.setHome(1);
    assert.equal(clients.length, 1);
    p.setMap(map(['192.0.2.1:3478', '192.0.2.2:3478']));
    assert.equal(clients[0]!.closed, true, 'the connection to the old servers closed');
    assert.equal(clients.length, 2, 'home dialled again');
    assert.deepEqual(p.status().map((s) => ({ region: s.region, home: s.home })), [{ region: 1, home: true }]);
    // A home set while its region is missing from the map (a netcheck finishing after "down") is dialled once the map has it.
    p.setMap({ regions: [] });
    p.setHome(1);
    assert.equal(p.status().length, 0);
    p.setMap(map(['192.0.2.1:3478']));
    assert.equal(p.homeRegion, 1);
    assert.equal(p.status().length, 1, 'home dialled when its region appears');
  } finally {
    await p.close();
  }
});
