/**
 * One relay holds 1,000 concurrent clients: 1,000 nodes are registered on
 * the control server and admitted through the admission stream; a swarm of
 * lean clients in a worker thread connects them all, proves each key, and
 * passes one packet around the ring (client i → i+1). Memory is taken from
 * process.memoryUsage() before and after, and printed per client:
 *
 * - heap+external: this thread only, i.e. the relay (and control) side;
 * - rss: the whole process, so both ends (the swarm's TLS sockets too) — an
 *   upper bound for the relay alone. The lab test measures the real
 *   warren-relay process by itself.
 */
import { after, before, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Worker } from 'node:worker_threads';
import { startRelayRig, until, type RelayRig } from '../helpers/relay.js';
import type { SwarmReport } from '../helpers/relay-swarm.js';
import { generatePrivateKey, publicKeyOf } from '../../src/crypto/x25519.js';
import { toB64 } from '../../src/wire/control.js';
import { isRefusal, type NodeRecord } from '../../src/server/control/store.js';

const N = 1000;
const dir = mkdtempSync(join(tmpdir(), 'warren-relay-scale-'));
let rig: RelayRig;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

before(async () => {
  rig = await startRelayRig(dir, { relay: { keepaliveMs: 10_000 } });
  await until('admission list', () => rig.admission.loaded);
});

after(async () => {
  await rig.stop();
  rmSync(dir, { recursive: true, force: true });
});

function memory(): { rss: number; js: number } {
  gc();
  const m = process.memoryUsage();
  return { rss: m.rss, js: m.heapUsed + m.external };
}

it(`holds ${N} concurrent clients, forwards between all of them, and records memory per client`, { timeout: 90_000 }, async () => {
  const t0 = Date.now();
  const { key } = await rig.control.store.createAuthKey({ reusable: true });
  const privs: Uint8Array[] = [];
  const nodes: NodeRecord[] = [];
  for (let i = 0; i < N; i++) {
    const priv = generatePrivateKey();
    privs.push(priv);
    const r = await rig.control.store.registerNode({
      machineKey: toB64(publicKeyOf(generatePrivateKey())), nodeKey: toB64(publicKeyOf(priv)), discoKey: toB64(publicKeyOf(generatePrivateKey())),
      hostname: `sim-${i}`, authKeySecret: key, now: Date.now(), defaultKeyExpiryMs: 86_400_000,
    });
    assert.ok(!isRefusal(r));
    nodes.push(r.node);
  }
  // Announce them as registration does: through the hub, which feeds the admission stream.
  const hub = rig.control.server.hub;
  await hub.serial(() => hub.publish(nodes.map((n) => hub.upsert(n))));
  await until(`${N} keys admitted on the relay`, () => rig.admission.size >= N, 10_000);
  const tRegistered = Date.now();

  const before = memory();
  const worker = new Worker(fileURLToPath(new URL('../helpers/relay-swarm.js', import.meta.url)), {
    workerData: { swarm: { url: rig.url, ca: rig.ca, fingerprint: rig.fingerprint, keys: privs.map(toB64), concurrency: 50 } },
  });
  const reports: SwarmReport[] = [];
  worker.on('message', (r: SwarmReport) => reports.push(r));
  worker.on('error', (e) => reports.push({ event: 'closed', connected: 0, failed: N, errors: [e.message] }));
  try {
    await until('the swarm to connect', () => reports.length >= 1, 60_000);
    const ready = reports[0]!;
    assert.equal(ready.event, 'ready', JSON.stringify(ready));
    assert.equal(ready.connected, N, `connected ${ready.connected}, errors ${ready.errors.join('; ')}`);
    await until(`${N} sessions on the relay`, () => rig.relay.clientCount === N);
    const held = memory();
    worker.postMessage('ring');
    await until('the ring', () => reports.length >= 2, 30_000);
    const ring = reports[1]!;
    assert.equal(ring.ringReceived, N, `${ring.ringReceived} of ${N} ring packets arrived from the right sender`);
    assert.equal(rig.relay.counters.packetsForwarded >= N, true);
    const perClient = (a: number, b: number): string => `${((b - a) / N / 1024).toFixed(1)} KiB`;
    process.stdout.write(`relay holding ${N} clients: per client ${perClient(before.js, held.js)} heap+external (relay thread), ` +
      `${perClient(before.rss, held.rss)} rss (whole process, both ends); connect ${ready.ms} ms, ring ${ring.ms} ms; ` +
      `registration ${tRegistered - t0} ms\n`);
    process.stdout.write(`relay: ${rig.relay.summary()}\n`);
  } finally {
    worker.postMessage('close');
    await until('the worker to finish', () => reports.some((r) => r.event === 'closed'), 10_000).catch(() => undefined);
    await worker.terminate();
  }
  await until('the relay to see every client go', () => rig.relay.clientCount === 0, 10_000);
});
