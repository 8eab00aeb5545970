/**
 * Tests for the native UDP path on loopback (127.0.0.1 and ::1 only): socket
 * options, sendmmsg/recvmmsg batches with contents, lengths and source
 * addresses, per-datagram errors skipped and counted, truncation, poll, and an
 * eventfd waking a poll() blocked in a worker thread.
 */
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { networkInterfaces } from 'node:os';
import { after, describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import {
  ADDR_LEN,
  BATCH_MAX,
  POLLIN,
  POLLOUT,
  checkErrno,
  decodeAddr,
  encodeAddr,
  errnoMessage,
  loadNative,
} from '../../src/dataplane/io/native.js';

const wn = loadNative();
const EINVAL = -22;
const EBADF = -9;
const EADDRINUSE = -98;
const BUFSIZE = 4 << 20;
const SLOT = 2048;

const hasLoopback6 = Object.values(networkInterfaces())
  .flat()
  .some((a) => a?.family === 'IPv6' && a.address === '::1');

/** Sockets opened by a test, closed after the file. */
const opened: number[] = [];
after(() => {
  for (const fd of opened) wn.close(fd);
});

function udp(family: 4 | 6, port = 0, fwmark = 0, bufsize = BUFSIZE): number {
  const fd = checkErrno(wn.udpOpen(family, port, fwmark, bufsize), `udp_open v${family}`);
  opened.push(fd);
  return fd;
}

/** Deterministic payload for datagram i. */
function payload(i: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  for (let j = 0; j < len; j++) b[j] = (i * 31 + j * 7) & 0xff;
  return b;
}

/** Receive until `want` datagrams arrived (poll between batches, bounded by 5 s in total). */
function recvAll(fd: number, want: number, slot = SLOT): { buf: Buffer; lens: Int32Array; addrs: Buffer; count: number } {
  const buf = Buffer.alloc(slot * want);
  const lens = new Int32Array(want);
  const addrs = Buffer.alloc(ADDR_LEN * want);
  const fds = Int32Array.of(fd);
  const revents = new Int16Array(1);
  const deadline = Date.now() + 5000;
  let count = 0;
  while (count < want && Date.now() < deadline) {
    if (wn.poll(fds, null, 1, revents, 500) <= 0) continue;
    const n = wn.udpRecvBatch(
      fd,
      buf.subarray(count * slot),
      slot,
      want - count,
      lens.subarray(count),
      addrs.subarray(count * ADDR_LEN),
    );
    assert.ok(n >= 0, `recv: ${errnoMessage(n)}`);
    count += n;
  }
  return { buf, lens, addrs, count };
}

/** A batch of `count` datagrams to one destination, of varying (or fixed) sizes and offsets. */
function batch(count: number, family: 4 | 6, ip: string, port: number, fixedLen?: number) {
  const buf = Buffer.alloc(SLOT * count);
  const offs = new Int32Array(count);
  const lens = new Int32Array(count);
  const addrs = Buffer.alloc(ADDR_LEN * count);
  for (let i = 0; i < count; i++) {
    offs[i] = (i % 5) * 16;
    lens[i] = fixedLen ?? (i === 0 ? 0 : (i * 97) % 1500); // includes an empty datagram
    buf.set(payload(i, lens[i]!), i * SLOT + offs[i]!);
    encodeAddr(addrs, i * ADDR_LEN, family, ip, port);
  }
  return { buf, offs, lens, addrs };
}

function roundTrip(family: 4 | 6, ip: string): void {
  const a = udp(family);
  const b = udp(family);
  const portA = wn.sockPort(a);
  const portB = wn.sockPort(b);
  assert.ok(portA > 0 && portB > 0 && portA !== portB);

  const count = 64;
  const out = batch(count, family, ip, portB);
  const errs = new Int32Array(2);
  assert.equal(wn.udpSendBatch(a, out.buf, SLOT, count, out.offs, out.lens, out.addrs, errs), count);
  assert.deepEqual(Array.from(errs), [0, 0]);

  const got = recvAll(b, count);
  assert.equal(got.count, count);
  for (let i = 0; i < count; i++) {
    assert.equal(got.lens[i], out.lens[i], `length of datagram ${i}`);
    assert.ok(got.buf.subarray(i * SLOT, i * SLOT + got.lens[i]!).equals(payload(i, out.lens[i]!)), `datagram ${i}`);
    assert.deepEqual(decodeAddr(got.addrs, i * ADDR_LEN), { family, ip, port: portA });
  }
  // Nothing more is waiting: recv returns 0, not an error.
  assert.equal(wn.udpRecvBatch(b, got.buf, SLOT, 8, got.lens, got.addrs), 0);
}

describe('loading and errors', () => {
  it('names a missing library and says how to build it', () => {
    const url = new URL('../../src/dataplane/io/native.js', import.meta.url).href;
    const out = execFileSync(
      process.execPath,
      ['--input-type=module', '-e', `const m = await import(${JSON.stringify(url)}); try { m.loadNative(); } catch (e) { console.log(e.code + ': ' + e.message); }`],
      { env: { ...process.env, WARREN_NATIVE_LIB: '/nonexistent/libwarren_native.so' }, encoding: 'utf8' },
    );
    assert.equal(out.trim(), 'ERR_NATIVE_MISSING: native helper not found at /nonexistent/libwarren_native.so: run `make native`');
  });

  it('turns -errno into a name and text, and checkErrno throws a coded error', () => {
    assert.equal(errnoMessage(-2), 'ENOENT (no such file or directory)');
    assert.equal(errnoMessage(-74), 'EBADMSG');
    assert.equal(errnoMessage(-4242), 'errno 4242');
    assert.equal(checkErrno(7, 'x'), 7);
    assert.throws(() => checkErrno(EADDRINUSE, 'udp_open v4 port 51820'), {
      name: 'NativeError',
      code: 'ERR_NATIVE_CALL',
      errno: 98,
      message: 'udp_open v4 port 51820: EADDRINUSE (address already in use)',
    });
  });
});

describe('wn_udp_open', () => {
  it('binds the wildcard address on an ephemeral or given port, without SO_REUSEADDR', () => {
    const a = udp(4);
    const port = wn.sockPort(a);
    assert.ok(port >= 1024);
    assert.equal(wn.udpOpen(4, port, 0, 0), EADDRINUSE);
    assert.equal(wn.udpOpen(5 as 4, 0, 0, 0), EINVAL);
    assert.equal(wn.udpOpen(4, 70000, 0, 0), EINVAL);
  });

  it('sets a fwmark and buffer sizes (as root), and wn_set_mark changes it', (t) => {
    if (process.getuid?.() !== 0) return t.skip('needs CAP_NET_ADMIN');
    const fd = udp(4, 0, 0x5157, 1 << 20);
    assert.equal(wn.setMark(fd, 0x1234), 0);
    assert.equal(wn.setMark(-1, 1), EBADF);
  });

  it('closes once; a second close reports EBADF', () => {
    const fd = checkErrno(wn.udpOpen(4, 0, 0, 0), 'udp_open');
    assert.equal(wn.close(fd), 0);
    assert.equal(wn.close(fd), EBADF);
  });
});

describe('batched UDP on loopback', () => {
  it('sends 64 datagrams with sendmmsg and receives them with recvmmsg over IPv4', () => {
    roundTrip(4, '127.0.0.1');
  });

  it('does the same over IPv6 ::1', (t) => {
    if (!hasLoopback6) return t.skip('no ::1 here');
    roundTrip(6, '::1');
  });

  it('sends more than one sendmmsg batch in one call', () => {
    const a = udp(4);
    const b = udp(4);
    const count = BATCH_MAX + 44;
    const out = batch(count, 4, '127.0.0.1', wn.sockPort(b), 40);
    assert.equal(wn.udpSendBatch(a, out.buf, SLOT, count, out.offs, out.lens, out.addrs, null), count);
    assert.equal(recvAll(b, count).count, count);
  });

  it('skips and counts datagrams the kernel refuses, delivering the rest in order', () => {
    const a = udp(4);
    const b = udp(4);
    const portB = wn.sockPort(b);
    const out = batch(7, 4, '127.0.0.1', portB, 10);
    encodeAddr(out.addrs, 1 * ADDR_LEN, 4, '127.0.0.1', 0); // port 0: EINVAL
    encodeAddr(out.addrs, 3 * ADDR_LEN, 6, '::1', portB); // IPv6 on an IPv4 socket: EAFNOSUPPORT
    out.addrs.fill(0, 5 * ADDR_LEN, 6 * ADDR_LEN); // no family: EDESTADDRREQ
    const errs = new Int32Array(2);
    assert.equal(wn.udpSendBatch(a, out.buf, SLOT, 7, out.offs, out.lens, out.addrs, errs), 7);
    assert.equal(errs[0], 3);
    assert.equal(errnoMessage(-errs[1]!).split(' ')[0], 'EDESTADDRREQ');
    const got = recvAll(b, 4);
    assert.equal(got.count, 4);
    [0, 2, 4, 6].forEach((i, k) => {
      assert.ok(got.buf.subarray(k * SLOT, k * SLOT + 10).equals(payload(i, 10)), `datagram ${i}`);
    });
  });

  it('refuses a batch with a packet outside its slot, sending nothing', () => {
    const a = udp(4);
    const b = udp(4);
    const out = batch(3, 4, '127.0.0.1', wn.sockPort(b));
    out.offs[2] = SLOT - 5;
    out.lens[2] = 6;
    assert.equal(wn.udpSendBatch(a, out.buf, SLOT, 3, out.offs, out.lens, out.addrs, null), EINVAL);
    const revents = new Int16Array(1);
    assert.equal(wn.poll(Int32Array.of(b), null, 1, revents, 0), 0);
  });

  it('marks a datagram larger than its slot with length -1 and keeps the next one', () => {
    const a = udp(4);
    const b = udp(4);
    const out = batch(2, 4, '127.0.0.1', wn.sockPort(b));
    out.lens[0] = 1800;
    out.lens[1] = 100;
    out.buf.set(payload(1, 100), SLOT + out.offs[1]!);
    assert.equal(wn.udpSendBatch(a, out.buf, SLOT, 2, out.offs, out.lens, out.addrs, null), 2);
    const got = recvAll(b, 2, 1500);
    assert.equal(got.count, 2);
    assert.equal(got.lens[0], -1);
    assert.equal(got.lens[1], 100);
    assert.ok(got.buf.subarray(1500, 1600).equals(payload(1, 100)));
  });

  it('polls for POLLIN and POLLOUT per fd', () => {
    const a = udp(4);
    const b = udp(4);
    const fds = Int32Array.of(a, b);
    const revents = new Int16Array(2);
    assert.equal(wn.poll(fds, Int16Array.of(POLLIN, POLLOUT), 2, revents, 0), 1);
    assert.deepEqual(Array.from(revents), [0, POLLOUT]);
    assert.equal(wn.poll(fds, Int16Array.of(0, 0), 1000, revents, 0), EINVAL, 'more fds than WN_POLL_MAX (272)');
  });
});

describe('eventfd', () => {
  it('counts signals and drains to zero', () => {
    const efd = checkErrno(wn.eventfd(), 'eventfd');
    opened.push(efd);
    assert.equal(wn.eventfdDrain(efd), 0);
    assert.equal(wn.eventfdSignal(efd), 0);
    assert.equal(wn.eventfdSignal(efd), 0);
    const revents = new Int16Array(1);
    assert.equal(wn.poll(Int32Array.of(efd), null, 1, revents, 0), 1);
    assert.equal(revents[0], POLLIN);
    assert.equal(wn.eventfdDrain(efd), 2);
    assert.equal(wn.poll(Int32Array.of(efd), null, 1, revents, 0), 0);
  });

  it('wakes a poll() blocked in a worker thread', async () => {
    const efd = checkErrno(wn.eventfd(), 'eventfd');
    const sock = udp(4);
    opened.push(efd);
    const url = new URL('../../src/dataplane/io/native.js', import.meta.url).href;
    // The worker blocks in wn_poll (up to 20 s) on a quiet socket and the eventfd.
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      import(workerData.url).then((m) => {
        const wn = m.loadNative();
        const fds = Int32Array.of(workerData.sock, workerData.efd);
        const revents = new Int16Array(2);
        parentPort.postMessage('polling');
        const t0 = Date.now();
        const r = wn.poll(fds, null, 2, revents, 20000);
        parentPort.postMessage({ r, revents: Array.from(revents), ms: Date.now() - t0, drained: wn.eventfdDrain(workerData.efd) });
      });`;
    const w = new Worker(code, { eval: true, workerData: { url, efd, sock } });
    const result = await new Promise<{ r: number; revents: number[]; ms: number; drained: number }>((resolve, reject) => {
      w.on('message', (m: unknown) => {
        if (m === 'polling') assert.equal(wn.eventfdSignal(efd), 0);
        else resolve(m as { r: number; revents: number[]; ms: number; drained: number });
      });
      w.once('error', reject);
    });
    await w.terminate();
    assert.equal(result.r, 1);
    assert.deepEqual(result.revents, [0, POLLIN]);
    assert.equal(result.drained, 1);
    assert.ok(result.ms < 10000, `woke after ${result.ms} ms`);
  });
});
