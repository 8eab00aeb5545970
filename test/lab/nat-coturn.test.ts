/**
 * Netcheck against a stock STUN server: the relay map points at coturn
 * (STUN only, two addresses) instead of warren-relay's STUN. Behind an easy
 * NAT the mapping does not vary and the public endpoint is right; behind a
 * hard NAT it varies.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createNatTailnet, type NatTailnet } from '../helpers/nat-tailnet.js';
import type { NodeHandle } from '../helpers/mesh.js';
import type { Site } from '../helpers/nat-lab.js';
import type { NetcheckReport } from '../../src/nat/netcheck.js';

type Member = { site: Site; node: NodeHandle };
let tn: NatTailnet;

async function netcheck(n: NodeHandle): Promise<NetcheckReport> {
  const r = await n.cli(['netcheck', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as NetcheckReport;
}

describe('netcheck against coturn', { timeout: 120_000 }, () => {
  let easy: Member;
  let hard: Member;
  before(async () => {
    tn = await createNatTailnet('natcoturn', { coturn: true });
    [easy, hard] = await Promise.all([tn.node('ke', { nat: 'easy' }), tn.node('kh', { nat: 'hard' })]);
  });
  after(() => tn?.close());

  test('easy NAT: UDP, the right public endpoint, mapping does not vary', async () => {
    const r = await netcheck(easy.node);
    assert.equal(r.udp, true);
    assert.equal(r.publicIPv4, `${easy.site.publicIp}:41641`);
    assert.equal(r.mappingVaries, false);
    assert.equal(r.regions[0]!.via, 'stun');
  });

  test('hard NAT: mapping varies', async () => {
    const r = await netcheck(hard.node);
    assert.equal(r.udp, true);
    assert.equal(r.mappingVaries, true);
    assert.ok(r.publicIPv4?.startsWith(`${hard.site.publicIp}:`), String(r.publicIPv4));
  });
});
