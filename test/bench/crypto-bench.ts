/**
 * Seal throughput for one 1420-byte WireGuard transport packet at a time:
 * node:crypto (a cipher object per packet), @noble/ciphers (in place), and
 * the native wn_seal through koffi (per packet, batched, and in a worker),
 * plus wn_open and wn_open_batch, koffi's bare call overhead, a check that koffi does not copy
 * pointer buffers, and `openssl speed` as the ceiling. Run after `make native`
 * and a build:  node dist/test/bench/crypto-bench.js [seconds-per-case]
 *
 * Numbers from one shared VM are noisy: compare the ratios within one run.
 */
import { execFileSync } from 'node:child_process';
import { createCipheriv, randomBytes } from 'node:crypto';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { HEADER_LEN, TAG_LEN, loadNative } from '../../src/dataplane/io/native.js';

const PLAIN = 1420; // MTU-sized packet: a multiple of 4, padded by WireGuard to the MTU
const MTU = 1420;
const SLOT = 1536;
const BATCH = 64;
const SECONDS = Number(process.argv[2] ?? '1');

interface Result {
  name: string;
  ops: number; // calls or packets per second
  unit: 'packets' | 'calls';
}

/** Run fn (which does `per` units of work) repeatedly for SECONDS; return units per second. */
function rate(fn: () => void, per = 1, seconds = SECONDS): number {
  for (let i = 0; i < 200; i++) fn(); // warm up the JIT and any lazy init
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(seconds * 1e9));
  let n = 0;
  let now = start;
  while (now < end) {
    for (let i = 0; i < 64; i++) fn();
    n += 64;
    now = process.hrtime.bigint();
  }
  return (n * per) / (Number(now - start) / 1e9);
}

function nativeSealCases(): Result[] {
  const wn = loadNative();
  const key = randomBytes(32);
  const pkt = Buffer.alloc(SLOT);
  randomBytes(PLAIN).copy(pkt, HEADER_LEN);
  let counter = 0;
  const perPacket = rate(() => {
    wn.seal(key, 1, counter++, pkt, PLAIN, MTU, SLOT);
  });

  const buf = Buffer.alloc(SLOT * BATCH);
  const lens = new Int32Array(BATCH);
  const batched = rate(() => {
    lens.fill(PLAIN);
    wn.sealBatch(key, 1, counter, buf, SLOT, BATCH, lens, MTU);
    counter += BATCH;
  }, BATCH);

  // Open: seal once, then open a fresh copy each time (opening is in place).
  const sealed = Buffer.alloc(SLOT);
  randomBytes(PLAIN).copy(sealed, HEADER_LEN);
  const sealedLen = wn.seal(key, 1, 5, sealed, PLAIN, MTU, SLOT);
  const work = Buffer.alloc(SLOT);
  const open = rate(() => {
    sealed.copy(work, 0, 0, sealedLen);
    if (wn.open(key, work, sealedLen) !== PLAIN) throw new Error('open failed');
  });

  // Open batch: a batch sealed once (counters 0..BATCH-1), copied back before each call.
  const sealedBatch = Buffer.alloc(SLOT * BATCH);
  const sealedLens = new Int32Array(BATCH).fill(PLAIN);
  wn.sealBatch(key, 1, 0, sealedBatch, SLOT, BATCH, sealedLens, MTU);
  const openLens = new Int32Array(BATCH);
  const openBatched = rate(() => {
    sealedBatch.copy(buf);
    openLens.set(sealedLens);
    if (wn.openBatch(key, null, buf, SLOT, BATCH, null, openLens) !== BATCH) throw new Error('open batch failed');
  }, BATCH);
  return [
    { name: 'wn_seal via koffi, one call per packet', ops: perPacket, unit: 'packets' },
    { name: `wn_seal_batch via koffi, ${BATCH} packets per call`, ops: batched, unit: 'packets' },
    { name: 'wn_open via koffi (+ a 1452-byte copy), one call per packet', ops: open, unit: 'packets' },
    { name: `wn_open_batch via koffi, ${BATCH} per call (+ their copy)`, ops: openBatched, unit: 'packets' },
  ];
}

function koffiOverheadCases(): Result[] {
  const wn = loadNative();
  const small = Buffer.alloc(64);
  const huge = Buffer.alloc(64 << 20);
  const key = Buffer.alloc(32);
  return [
    { name: 'koffi call, no arguments (wn_abi_version)', ops: rate(() => wn.abiVersion()), unit: 'calls' },
    // wn_open rejects len 0 before touching memory: the cost is the call and its arguments.
    { name: 'koffi call, 3 args, 64-byte buffers (wn_open, len 0)', ops: rate(() => wn.open(key, small, 0)), unit: 'calls' },
    { name: 'koffi call, 3 args, 64 MiB buffer (same)', ops: rate(() => wn.open(key, huge, 0)), unit: 'calls' },
  ];
}

function jsCases(): Result[] {
  const key = randomBytes(32);
  const plain = randomBytes(PLAIN);
  const nonce = Buffer.alloc(12);
  let counter = 0n;
  const node = rate(() => {
    nonce.writeBigUInt64LE(counter++, 4);
    const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
    c.update(plain);
    c.final();
    c.getAuthTag();
  });

  const pkt = new Uint8Array(SLOT);
  pkt.set(plain, HEADER_LEN);
  const noble = rate(() => {
    nonce.writeBigUInt64LE(counter++, 4);
    chacha20poly1305(key, nonce).encrypt(
      pkt.subarray(HEADER_LEN, HEADER_LEN + PLAIN),
      pkt.subarray(HEADER_LEN, HEADER_LEN + PLAIN + TAG_LEN),
    );
  });
  return [
    { name: 'node:crypto createCipheriv per packet', ops: node, unit: 'packets' },
    { name: '@noble/ciphers chacha20poly1305, in place', ops: noble, unit: 'packets' },
  ];
}

/** wn_seal per packet, measured inside a worker thread. */
async function workerCase(): Promise<Result> {
  const w = new Worker(new URL(import.meta.url), { workerData: { seconds: SECONDS }, argv: [String(SECONDS)] });
  const ops = await new Promise<number>((resolve, reject) => {
    w.once('message', (m: number) => resolve(m));
    w.once('error', reject);
  });
  await w.terminate();
  return { name: 'wn_seal via koffi in a worker thread', ops, unit: 'packets' };
}

/** `openssl speed` for 1420-byte buffers, in bytes per second, or undefined. */
function opensslSpeed(): number | undefined {
  try {
    const out = execFileSync('openssl', ['speed', '-evp', 'chacha20-poly1305', '-bytes', String(PLAIN), '-seconds', '2'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    // Last line: "ChaCha20-Poly1305   1234567.89k" (thousands of bytes per second).
    const m = /([\d.]+)k\s*$/.exec(out.trim());
    return m ? Number(m[1]) * 1000 : undefined;
  } catch {
    return undefined;
  }
}

function gbit(packetsPerSecond: number): string {
  return ((packetsPerSecond * PLAIN * 8) / 1e9).toFixed(2);
}

async function main(): Promise<void> {
  console.log(`ChaCha20-Poly1305 seal, ${PLAIN}-byte plaintext, ${SECONDS} s per case (Gbit/s counts plaintext bytes)\n`);
  const results = [...jsCases(), ...nativeSealCases(), await workerCase()];
  const base = results[0]!.ops;
  for (const r of results) {
    console.log(
      `${r.name.padEnd(62)} ${Math.round(r.ops).toLocaleString('en').padStart(11)} packets/s ` +
        `${gbit(r.ops).padStart(6)} Gbit/s  ${(r.ops / base).toFixed(2)}x node:crypto`,
    );
  }
  const ssl = opensslSpeed();
  if (ssl !== undefined) {
    const pps = ssl / PLAIN;
    console.log(
      `${'openssl speed -evp chacha20-poly1305 (one core, no framing)'.padEnd(62)} ${Math.round(pps).toLocaleString('en').padStart(11)} packets/s ` +
        `${gbit(pps).padStart(6)} Gbit/s  ${(pps / base).toFixed(2)}x node:crypto`,
    );
  } else {
    console.log('openssl speed: not available');
  }
  console.log('');
  for (const r of koffiOverheadCases()) {
    console.log(`${r.name.padEnd(62)} ${Math.round(r.ops).toLocaleString('en').padStart(11)} calls/s  ${(1e9 / r.ops).toFixed(0).padStart(5)} ns/call`);
  }
}

if (isMainThread) {
  await main();
} else {
  const seconds = (workerData as { seconds: number }).seconds;
  const wn = loadNative();
  const key = randomBytes(32);
  const pkt = Buffer.alloc(SLOT);
  let counter = 0;
  parentPort!.postMessage(rate(() => wn.seal(key, 1, counter++, pkt, PLAIN, MTU, SLOT), 1, seconds));
}
