/**
 * koffi bindings for libwarren_native.so (native/warren_native.c): TUN and
 * UDP sockets, batched I/O, poll/eventfd, and WireGuard transport sealing.
 *
 * `loadNative()` returns the bound functions; each is the koffi function
 * itself (no JS wrapper), so a call costs one koffi transition. Buffers and
 * typed arrays passed as pointers are handed to C without copying for these
 * synchronous calls, and in-place writes are visible to JS on return. Every
 * function returns a negative errno on failure (see `errnoMessage`).
 *
 * Load it in the thread that uses it (it works in worker threads; each thread
 * loads its own binding). The hot path calls the functions directly with
 * preallocated buffers; `encodeAddr`/`decodeAddr`/`checkErrno` allocate and
 * are for set-up, tests and slow paths.
 */
import koffi from 'koffi';
import { existsSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { constants as osConstants } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getSystemErrorMap } from 'node:util';

/** Must equal WN_ABI_VERSION in native/warren_native.h. */
export const ABI_VERSION = 1;
/** Bytes per encoded address (wn_addr): family, 0, port BE, 16 address bytes. */
export const ADDR_LEN = 20;
/** WireGuard transport header: type, receiver index, counter. */
export const HEADER_LEN = 16;
/** Poly1305 tag. */
export const TAG_LEN = 16;
export const KEY_LEN = 32;
/** Datagrams per recvmmsg call; wn_udp_recv_batch returns at most this. */
export const BATCH_MAX = 256;
/** fds per wn_poll call. */
export const POLL_MAX = 272;
export const IFNAMSIZ = 16;

/** poll(2) event bits (identical on every Linux architecture). */
export const POLLIN = 0x001;
export const POLLOUT = 0x004;
export const POLLERR = 0x008;
export const POLLHUP = 0x010;
export const POLLNVAL = 0x020;

/** The library's name under the package root. */
export const NATIVE_LIB_PATH = 'native/build/libwarren_native.so';

type Bytes = Uint8Array;
/** A pointer that may be NULL. */
type Nullable<T> = T | null;

/**
 * The bound functions. Sizes and indexes are ints; results are >= 0 on
 * success, -errno on failure. Layouts are described in warren_native.h.
 */
export interface WarrenNative {
  abiVersion(): number;
  /** Open a TUN (IFF_TUN|IFF_NO_PI, nonblocking); the kernel's name goes to outName (IFNAMSIZ bytes, NUL-terminated). Returns the fd. */
  tunOpen(name: string | null, outName: Nullable<Bytes>): number;
  /** Nonblocking UDP socket on the wildcard address (IPv6: V6ONLY). fwmark 0 = none, bufsize 0 = default. Returns the fd. */
  udpOpen(family: 4 | 6, port: number, fwmark: number, bufsize: number): number;
  sockPort(fd: number): number;
  setMark(fd: number, mark: number): number;
  close(fd: number): number;
  /** recvmmsg up to min(max, BATCH_MAX) datagrams into buf + i*slot; lens[i] = length or -1 if truncated; sources at addrs + i*ADDR_LEN. Returns the count (0 if none). */
  udpRecvBatch(fd: number, buf: Bytes, slot: number, max: number, lens: Int32Array, addrs: Nullable<Bytes>): number;
  /**
   * sendmmsg datagram i = lens[i] bytes at buf + i*slot + offs[i] to addrs + i*ADDR_LEN
   * (slot 0: offs[i] are absolute offsets into buf, bounds guaranteed by the caller).
   * Returns the number consumed (sent + dropped); fewer than n means EAGAIN: resume
   * from there after POLLOUT. errs = [dropped, last errno] for datagrams the kernel refused.
   */
  udpSendBatch(fd: number, buf: Bytes, slot: number, n: number, offs: Int32Array, lens: Int32Array, addrs: Bytes, errs: Nullable<Int32Array>): number;
  /** read() TUN packets into buf + i*slot + off until EAGAIN or max. Returns the count. */
  readBatch(fd: number, buf: Bytes, slot: number, off: number, max: number, lens: Int32Array): number;
  /** write() packet i = lens[i] bytes at buf + i*slot + offs[i] (slot 0: absolute offsets). Same return/errs contract as udpSendBatch. */
  writeBatch(fd: number, buf: Bytes, slot: number, n: number, offs: Int32Array, lens: Int32Array, errs: Nullable<Int32Array>): number;
  /** poll() fds for events[i] (null: POLLIN for all); results in revents. Returns ready count, 0 on timeout/EINTR. */
  poll(fds: Int32Array, events: Nullable<Int16Array>, nfds: number, revents: Int16Array, timeoutMs: number): number;
  eventfd(): number;
  eventfdSignal(fd: number): number;
  /** Returns the number of signals pending (0 if none). */
  eventfdDrain(fd: number): number;
  /**
   * Seal in place: plaintext of plainLen bytes at pkt+16 is padded (to 16, capped at mtu;
   * mtu 0 = no cap), encrypted, tagged, and the header written at pkt.
   * Returns the message length or -EMSGSIZE if it exceeds cap.
   */
  seal(key: Bytes, receiverIndex: number, counter: number | bigint, pkt: Bytes, plainLen: number, mtu: number, cap: number): number;
  /** Open in place a message of len bytes; returns the plaintext length (len - 32) at pkt+16, or -EBADMSG. */
  open(key: Bytes, pkt: Bytes, len: number): number;
  /** Seal n packets (slot i, plaintext lens[i] at +16) with counters first..first+n-1; lens[i] becomes the length or -errno. Returns the number sealed. */
  sealBatch(key: Bytes, receiverIndex: number, firstCounter: number | bigint, buf: Bytes, slot: number, n: number, lens: Int32Array, mtu: number): number;
  /** Open n messages (buf + i*slot + offs[i], lens[i] bytes) with keys + 32*keyIdx[i] (negative: skip, -ENOKEY); lens[i] becomes the plaintext length or -errno. */
  openBatch(keys: Bytes, keyIdx: Nullable<Int32Array>, buf: Bytes, slot: number, n: number, offs: Nullable<Int32Array>, lens: Int32Array): number;
  /** madvise(MADV_DONTNEED) on [addr, addr+len) (page-aligned): 0 or -errno. Only for unmodified read-only file mappings (page-trim.ts). */
  madviseDontneed(addr: bigint, len: bigint): number;
}

/** C prototypes, keyed by the wrapper's name. */
const PROTOTYPES: Record<keyof WarrenNative, string> = {
  abiVersion: 'int wn_abi_version(void)',
  tunOpen: 'int wn_tun_open(const char *name, uint8_t *out_name)',
  udpOpen: 'int wn_udp_open(int family, int port, int fwmark, int bufsize)',
  sockPort: 'int wn_sock_port(int fd)',
  setMark: 'int wn_set_mark(int fd, int mark)',
  close: 'int wn_close(int fd)',
  udpRecvBatch: 'int wn_udp_recv_batch(int fd, uint8_t *buf, int slot, int max, int32_t *lens, uint8_t *addrs)',
  udpSendBatch:
    'int wn_udp_send_batch(int fd, const uint8_t *buf, int slot, int n, const int32_t *offs, const int32_t *lens, const uint8_t *addrs, int32_t *errs)',
  readBatch: 'int wn_read_batch(int fd, uint8_t *buf, int slot, int off, int max, int32_t *lens)',
  writeBatch:
    'int wn_write_batch(int fd, const uint8_t *buf, int slot, int n, const int32_t *offs, const int32_t *lens, int32_t *errs)',
  poll: 'int wn_poll(const int32_t *fds, const int16_t *events, int nfds, int16_t *revents, int timeout_ms)',
  eventfd: 'int wn_eventfd(void)',
  eventfdSignal: 'int wn_eventfd_signal(int fd)',
  eventfdDrain: 'int wn_eventfd_drain(int fd)',
  seal: 'int wn_seal(const uint8_t *key, uint32_t receiver_index, uint64_t counter, uint8_t *pkt, int plain_len, int mtu, int cap)',
  open: 'int wn_open(const uint8_t *key, uint8_t *pkt, int len)',
  sealBatch:
    'int wn_seal_batch(const uint8_t *key, uint32_t receiver_index, uint64_t first_counter, uint8_t *buf, int slot, int n, int32_t *lens, int mtu)',
  openBatch:
    'int wn_open_batch(const uint8_t *keys, const int32_t *key_idx, uint8_t *buf, int slot, int n, const int32_t *offs, int32_t *lens)',
  madviseDontneed: 'int wn_madvise_dontneed(uint64_t addr, uint64_t len)',
};

export type NativeErrorCode = 'ERR_NATIVE_MISSING' | 'ERR_NATIVE_LOAD' | 'ERR_NATIVE_ABI' | 'ERR_NATIVE_CALL';

/** A failure to load the library, or a failed set-up call (checkErrno). */
export class NativeError extends Error {
  override readonly name = 'NativeError';
  constructor(
    readonly code: NativeErrorCode,
    message: string,
    options?: { cause?: unknown },
    /** The errno for ERR_NATIVE_CALL (positive), else 0. */
    readonly errno = 0,
  ) {
    super(message, options);
  }
}

/** Directory holding package.json, searched upwards from this file (works from src/ and dist/src/). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new NativeError('ERR_NATIVE_MISSING', 'cannot find the package root above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

/** Where the library is: $WARREN_NATIVE_LIB, else native/build under the package root. */
export function nativeLibraryPath(): string {
  const override = process.env['WARREN_NATIVE_LIB'];
  return override !== undefined && override !== '' ? resolve(override) : join(packageRoot(), NATIVE_LIB_PATH);
}

let cached: WarrenNative | undefined;

/** Load and bind the library once per thread. Throws NativeError if it is missing or stale. */
export function loadNative(): WarrenNative {
  if (cached !== undefined) return cached;
  const path = nativeLibraryPath();
  if (!existsSync(path)) {
    throw new NativeError('ERR_NATIVE_MISSING', `native helper not found at ${path}: run \`make native\``);
  }
  let lib: koffi.IKoffiLib;
  try {
    lib = koffi.load(path);
  } catch (err) {
    throw new NativeError('ERR_NATIVE_LOAD', `cannot load ${path}: run \`make native\``, { cause: err });
  }
  const bound: Record<string, unknown> = {};
  try {
    for (const [name, proto] of Object.entries(PROTOTYPES)) bound[name] = lib.func(proto);
  } catch (err) {
    throw new NativeError('ERR_NATIVE_ABI', `${path} lacks an expected function: run \`make native\``, { cause: err });
  }
  const native = bound as unknown as WarrenNative;
  const abi = native.abiVersion();
  if (abi !== ABI_VERSION) {
    throw new NativeError('ERR_NATIVE_ABI', `${path} has ABI ${abi}, these bindings need ${ABI_VERSION}: run \`make native\``);
  }
  cached = native;
  return native;
}

// --- errno -----------------------------------------------------------------

let errnoNames: Map<number, string> | undefined;

/** The symbolic name of a positive errno ("ENOENT"), or "errno N". */
export function errnoName(errno: number): string {
  if (errnoNames === undefined) {
    errnoNames = new Map();
    for (const [name, value] of Object.entries(osConstants.errno)) {
      if (!errnoNames.has(value)) errnoNames.set(value, name);
    }
  }
  return errnoNames.get(errno) ?? `errno ${errno}`;
}

/** "ENOENT (no such file or directory)" for a native result of -ENOENT. */
export function errnoMessage(result: number): string {
  const errno = -result;
  const name = errnoName(errno);
  const text = getSystemErrorMap().get(-errno)?.[1];
  return text !== undefined ? `${name} (${text})` : name;
}

/** Return a non-negative native result, or throw NativeError(ERR_NATIVE_CALL) naming what failed. Not for the per-packet path. */
export function checkErrno(result: number, what: string): number {
  if (result >= 0) return result;
  throw new NativeError('ERR_NATIVE_CALL', `${what}: ${errnoMessage(result)}`, undefined, -result);
}

// --- wn_addr ---------------------------------------------------------------

/** Write a wn_addr (ADDR_LEN bytes) at buf[off]. The ip must match the family. */
export function encodeAddr(buf: Uint8Array, off: number, family: 4 | 6, ip: string, port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`bad port ${port}`);
  if (family === 4 ? !isIPv4(ip) : !isIPv6(ip)) throw new TypeError(`${ip} is not an IPv${family} address`);
  buf.fill(0, off, off + ADDR_LEN);
  buf[off] = family;
  buf[off + 2] = port >> 8;
  buf[off + 3] = port & 0xff;
  if (family === 4) buf.set(ipv4Bytes(ip), off + 4);
  else buf.set(ipv6Bytes(ip), off + 4);
}

export interface DecodedAddr {
  family: 4 | 6;
  ip: string;
  port: number;
}

/** Read a wn_addr at buf[off]. Throws on an unknown family byte. */
export function decodeAddr(buf: Uint8Array, off: number): DecodedAddr {
  const family = buf[off];
  const port = (buf[off + 2]! << 8) | buf[off + 3]!;
  if (family === 4) return { family, ip: buf.subarray(off + 4, off + 8).join('.'), port };
  if (family === 6) return { family, ip: formatIPv6(buf.subarray(off + 4, off + 20)), port };
  throw new TypeError(`bad wn_addr family ${String(family)}`);
}

/** Bytes of a dotted quad already validated by isIPv4. */
function ipv4Bytes(ip: string): number[] {
  return ip.split('.').map(Number);
}

/** 16 bytes of an IPv6 address already validated by isIPv6 (zone ids are dropped). */
function ipv6Bytes(ip: string): Uint8Array {
  let text = ip.split('%')[0]!;
  const groups: number[] = [];
  const dotted = text.lastIndexOf(':') < text.lastIndexOf('.');
  if (dotted) {
    // Embedded IPv4 suffix (::ffff:1.2.3.4): turn it into two groups.
    const cut = text.lastIndexOf(':');
    const [a, b, c, d] = ipv4Bytes(text.slice(cut + 1)) as [number, number, number, number];
    text = `${text.slice(0, cut + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const left = parse(head);
  const right = tail === undefined ? [] : parse(tail);
  groups.push(...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right);
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

/** RFC 5952 text: lower case, the longest run (>= 2) of zero groups as "::", IPv4-mapped as ::ffff:a.b.c.d. */
function formatIPv6(b: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i]! << 8) | b[i + 1]!);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) return `::ffff:${b.subarray(12).join('.')}`;
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  const hex = (gs: number[]): string => gs.map((g) => g.toString(16)).join(':');
  if (bestAt < 0) return hex(groups);
  return `${hex(groups.slice(0, bestAt))}::${hex(groups.slice(bestAt + bestLen))}`;
}
