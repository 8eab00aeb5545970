/**
 * The packet worker: a poll() loop over the TUN, the UDP sockets and a wakeup
 * eventfd, moving packets in batches through preallocated slot buffers —
 * TUN → seal in place → sendmmsg, and recvmmsg → open in place → TUN — with
 * the Device deciding per packet and sealing or opening each batch in one
 * crypto call per session run. It returns to its event loop only when the
 * main thread signals the eventfd (a message is waiting).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { loadNative, POLLIN, POLLOUT, POLL_MAX } from './io/native.js';
import { Device, type DeviceIO } from './device.js';
import { systemClock } from './clock.js';
import { PersistentTimestamps } from './timestamp-store.js';
import { NativeTransportCrypto } from './native-crypto.js';
import { NodeTransportCrypto, type TransportCrypto } from './transport-crypto.js';
import { ENDPOINT_LEN, RELAY_FAMILY } from './endpoint.js';
import { messageType, TRANSPORT_HEADER_SIZE } from '../wire/wireguard.js';
import { isControlDatagram, DatagramBudget } from './demux.js';
import type { WorkerInit, ToWorker, FromWorker, Datagram } from './engine-protocol.js';

const init = workerData as WorkerInit;
const port = parentPort!;
const native = loadNative();
const post = (m: FromWorker): void => port.postMessage(m);

const BATCH = 64;
const SLOT = Math.max(2048, Math.ceil((init.mtu + 96) / 64) * 64);
/** Room for the WireGuard header before each TUN packet (handleTunBatch seals in place from the slot start). */
const HEADROOM = TRANSPORT_HEADER_SIZE;

/** One outgoing list: datagrams (or TUN writes) pointing into one batch buffer. */
class OutList {
  n = 0;
  readonly offs = new Int32Array(BATCH);
  readonly lens = new Int32Array(BATCH);
  readonly addrs = new Uint8Array(BATCH * ENDPOINT_LEN);
}

const tunIn = new Uint8Array(BATCH * SLOT);
const tunInLens = new Int32Array(BATCH);
const udpIn = new Uint8Array(BATCH * SLOT);
const udpInLens = new Int32Array(BATCH);
const udpInAddrs = new Uint8Array(BATCH * ENDPOINT_LEN);
const out4 = new OutList();
const out6 = new OutList();
const tunOut = new OutList();
const errs = new Int32Array(2);
const one = { offs: new Int32Array(1), lens: new Int32Array(1) };
/** Extra UDP sockets (birthday-paradox probing): endpoint byte [1] = index 1..255 selects one. */
const extraFds = new Map<number, number>();
let pollFds = new Int32Array([init.wakeFd, init.tunFd, init.udp4Fd, init.udp6Fd]); // poll(2) ignores fd -1
let pollIndex: number[] = [];
let revents = new Int16Array(4);

function setExtraSockets(list: Array<{ index: number; fd: number }>): void {
  extraFds.clear();
  for (const s of list) if (s.index >= 1 && s.index <= 255 && extraFds.size < POLL_MAX - 4) extraFds.set(s.index, s.fd);
  pollIndex = [...extraFds.keys()];
  pollFds = new Int32Array([init.wakeFd, init.tunFd, init.udp4Fd, init.udp6Fd, ...pollIndex.map((i) => extraFds.get(i)!)]);
  revents = new Int16Array(pollFds.length);
}
const outFd = new Int32Array(1);
const outEv = new Int16Array([POLLOUT]);
const outRev = new Int16Array(1);
const drops = { udp_send_failed: 0, tun_write_failed: 0, rx_truncated: 0, control_ratelimited: 0 };
/** Disco/STUN datagrams for the main thread, WireGuard messages for relays, active peers: posted once per loop turn. */
let rxOut: Datagram[] = [];
let relayOut: Datagram[] = [];
let activity: string[] = [];
const budget = new DatagramBudget(4000, 1000, systemClock.now());

function postQueued(): void {
  if (rxOut.length) {
    post({ type: 'rx', items: rxOut });
    rxOut = [];
  }
  if (relayOut.length) {
    post({ type: 'relay-tx', items: relayOut });
    relayOut = [];
  }
  if (activity.length && systemClock.now() - activitySince >= ACTIVITY_POST_DELAY_MS) {
    post({ type: 'activity', keys: activity });
    activity = [];
  }
}

function sendNow(buf: Uint8Array, off: number, len: number, dst: Uint8Array, dstOff: number): void {
  const sock = dst[dstOff + 1]!;
  const fd = sock !== 0 ? extraFds.get(sock) ?? -1 : dst[dstOff] === 6 ? init.udp6Fd : init.udp4Fd;
  if (fd < 0) {
    drops.udp_send_failed++;
    return;
  }
  one.offs[0] = off;
  one.lens[0] = len;
  const a = dstOff === 0 && dst.length === ENDPOINT_LEN ? dst : dst.subarray(dstOff, dstOff + ENDPOINT_LEN);
  if (native.udpSendBatch(fd, buf, 0, 1, one.offs, one.lens, a, errs) !== 1) drops.udp_send_failed++;
}

const io: DeviceIO = {
  sendUdp(buf, off, len, dst, dstOff) {
    if (dst[dstOff] === RELAY_FAMILY) {
      relayOut.push({ data: buf.slice(off, off + len), addr: dst.slice(dstOff, dstOff + ENDPOINT_LEN) });
      return;
    }
    if (buf !== tunIn || dst[dstOff + 1] !== 0) return sendNow(buf, off, len, dst, dstOff);
    const list = dst[dstOff] === 6 ? out6 : out4;
    const i = list.n++;
    list.offs[i] = off;
    list.lens[i] = len;
    const a = list.addrs;
    const base = i * ENDPOINT_LEN;
    for (let k = 0; k < ENDPOINT_LEN; k++) a[base + k] = dst[dstOff + k]!; // no subarray per packet
  },
  writeTun(buf, off, len) {
    if (buf !== udpIn) {
      one.offs[0] = off;
      one.lens[0] = len;
      if (native.writeBatch(init.tunFd, buf, 0, 1, one.offs, one.lens, errs) !== 1) drops.tun_write_failed++;
      return;
    }
    const i = tunOut.n++;
    tunOut.offs[i] = off;
    tunOut.lens[i] = len;
  },
};

const timestamps = new PersistentTimestamps(init.timestampPath, systemClock, (e) =>
  post({ type: 'log', level: 'warn', msg: `cannot persist handshake timestamp: ${e.message}` }));
let crypto: TransportCrypto;
if (init.crypto === 'node') crypto = new NodeTransportCrypto(init.mtu);
else {
  const nc = new NativeTransportCrypto(native, init.mtu);
  nc.register(tunIn, SLOT);
  nc.register(udpIn, SLOT);
  crypto = nc;
}
const device = new Device(io, crypto, {
  clock: systemClock,
  timestamps,
  timers: init.timers,
  log: (level, msg) => post({ type: 'log', level, msg }),
});
/**
 * Activity reports wait this long before they are posted. Posting wakes the
 * main thread; right after a packet went out, that wake-up would compete for
 * the CPU with whatever answers it (on a 2-core box, the peer's reply or the
 * local stack's): one ping a second paid ~0.15 ms for it. Nothing needs the
 * report sooner: path choice works in seconds.
 */
const ACTIVITY_POST_DELAY_MS = 20;
/** A peer quiet this long is starting traffic: its report goes at once (path choice starts looking for a direct path). */
const ACTIVITY_START_QUIET_MS = 10_000;
let activitySince = 0;
if (init.activityReports) {
  device.onActivity = (key, quietMs) => {
    if (activity.length === 0) activitySince = systemClock.now();
    if (quietMs >= ACTIVITY_START_QUIET_MS) activitySince = -Infinity;
    activity.push(key);
  };
}

function flushUdp(fd: number, list: OutList): void {
  let done = 0;
  let spins = 0;
  while (done < list.n) {
    // Offsets are absolute (slot 0): resuming after a partial send just skips entries.
    const r = native.udpSendBatch(fd, tunIn, 0, list.n - done, list.offs.subarray(done),
      list.lens.subarray(done), list.addrs.subarray(done * ENDPOINT_LEN), errs);
    if (errs[0]! > 0) drops.udp_send_failed += errs[0]!;
    if (r > 0) done += r;
    if (done < list.n) {
      if (r < 0 || ++spins > 50) {
        drops.udp_send_failed += list.n - done;
        break;
      }
      outFd[0] = fd;
      native.poll(outFd, outEv, 1, outRev, 20);
    }
  }
  list.n = 0;
}

function flushTun(): void {
  if (tunOut.n === 0) return;
  const r = native.writeBatch(init.tunFd, udpIn, 0, tunOut.n, tunOut.offs, tunOut.lens, errs);
  if (errs[0]! > 0) drops.tun_write_failed += errs[0]!;
  if (r < tunOut.n) drops.tun_write_failed += tunOut.n - Math.max(r, 0);
  tunOut.n = 0;
}

function flush(): void {
  if (out4.n) flushUdp(init.udp4Fd, out4);
  if (out6.n) flushUdp(init.udp6Fd, out6);
  flushTun();
}

/** Whether datagram i of the receive batch is not for the device: truncated, or disco/STUN for the main thread. */
function notForDevice(i: number): boolean {
  const len = udpInLens[i]!;
  if (len < 0) {
    drops.rx_truncated++;
    return true;
  }
  const off = i * SLOT;
  if (messageType(udpIn, off, len) !== 0 || !isControlDatagram(udpIn, off, len)) return false;
  if (budget.take(systemClock.now())) {
    rxOut.push({ data: udpIn.slice(off, off + len), addr: udpInAddrs.slice(i * ENDPOINT_LEN, (i + 1) * ENDPOINT_LEN) });
  } else drops.control_ratelimited++;
  return true;
}

/** Receive from `fd`; `sock` (an extra socket's index, else 0) is stamped into each source endpoint's byte [1]. */
function drainUdp(fd: number, sock = 0): void {
  for (let round = 0; round < 8; round++) {
    const n = native.udpRecvBatch(fd, udpIn, SLOT, BATCH, udpInLens, udpInAddrs);
    if (n <= 0) return;
    for (let i = 0; i < n; i++) {
      if (sock !== 0) udpInAddrs[i * ENDPOINT_LEN + 1] = sock;
      if (notForDevice(i)) udpInLens[i] = -1; // the device skips it
    }
    device.handleUdpBatch(udpIn, SLOT, n, udpInLens, udpInAddrs);
    flush();
    if (n < BATCH) return;
  }
}

function drainTun(): void {
  for (let round = 0; round < 8; round++) {
    const n = native.readBatch(init.tunFd, tunIn, SLOT, HEADROOM, BATCH, tunInLens);
    if (n <= 0) return;
    device.handleTunBatch(tunIn, SLOT, n, tunInLens);
    flush();
    if (n < BATCH) return;
  }
}

let running = true;

function loop(): void {
  try {
    while (running) {
      const now = systemClock.now();
      const wait = Math.min(device.nextDeadline, activity.length ? activitySince + ACTIVITY_POST_DELAY_MS : Infinity) - now;
      const timeout = wait === Infinity ? 1000 : Math.max(0, Math.min(1000, Math.ceil(wait)));
      const r = native.poll(pollFds, null, pollFds.length, revents, timeout);
      if (r < 0) throw new Error(`poll failed (errno ${-r}) on ${pollFds.length} fds`);
      if (r > 0) {
        if (revents[2]! & POLLIN) drainUdp(init.udp4Fd);
        if (revents[3]! & POLLIN) drainUdp(init.udp6Fd);
        for (let k = 0; k < pollIndex.length; k++) if (revents[4 + k]! & POLLIN) drainUdp(pollFds[4 + k]!, pollIndex[k]!);
        if (revents[1]! & POLLIN) drainTun();
      }
      device.tick();
      flush();
      postQueued();
      if (r > 0 && revents[0]! & POLLIN) {
        native.eventfdDrain(init.wakeFd);
        setImmediate(loop); // let pending messages in, then carry on
        return;
      }
    }
  } catch (err) {
    post({ type: 'fatal', error: (err as Error).stack ?? String(err) });
  }
}

port.on('message', (m: ToWorker) => {
  try {
    if (m.type === 'reconfig') device.reconfig(m.config);
    else if (m.type === 'send') {
      for (const d of m.items) sendNow(d.data, 0, d.data.length, d.addr, 0);
    } else if (m.type === 'relay-rx') {
      for (const d of m.items) device.handleUdp(d.data, 0, d.data.length, d.addr, 0);
      flush();
      postQueued();
    } else if (m.type === 'sockets') {
      setExtraSockets(m.set);
      post({ type: 'sockets', id: m.id });
    } else if (m.type === 'endpoints') {
      for (const e of m.items) device.setEndpoint(e.key, e.endpoint);
      flush();
      postQueued();
    } else if (m.type === 'status') {
      const st = device.status();
      Object.assign(st.drops, drops);
      post({ type: 'status', id: m.id, status: st });
    } else if (m.type === 'stop') {
      running = false;
      for (const p of device.peers.values()) device.freeIndices(p.zeroAll());
      post({ type: 'stopped' });
      port.close();
    }
  } catch (err) {
    post({ type: 'log', level: 'warn', msg: `worker: ${(err as Error).message}` });
  }
});

post({ type: 'ready', crypto: crypto.name });
setImmediate(loop);
