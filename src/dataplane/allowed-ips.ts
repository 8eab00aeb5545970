/**
 * Cryptokey routing: the AllowedIPs table of the WireGuard data plane.
 *
 * Owns parsing and formatting of IP prefixes ("10.0.0.0/8", "fd00::/64") and
 * the longest-prefix-match table that maps an inner packet's address to the
 * peer allowed to use it. Outbound, the destination address picks the peer to
 * encrypt for; inbound, the source address must map back to the peer that
 * sent the packet.
 *
 * The table is a path-compressed binary trie per family, the same shape as
 * wireguard-go's allowedips.go. Keys are held as 32-bit words in plain number
 * fields, so {@link AllowedIps.lookupV4} and {@link AllowedIps.lookupV6} read
 * the address straight out of a packet buffer and walk the trie without
 * allocating, converting to strings or creating closures.
 *
 * @example
 * ```ts
 * const t = new AllowedIps<string>();
 * t.insert(parsePrefix('10.0.0.0/8'), 'peer-a');
 * t.insert(parsePrefix('10.1.0.0/16'), 'peer-b');
 * t.lookup('10.1.2.3'); // 'peer-b'
 * t.lookupV4(packet, 16); // destination address of an IPv4 header
 * ```
 */

/** An IP prefix. `bytes` holds the network address with host bits zeroed. */
export interface Prefix {
  family: 4 | 6;
  /** 4 bytes for IPv4, 16 for IPv6, network byte order, host bits zero. */
  bytes: Uint8Array;
  /** Prefix length: 0..32 for IPv4, 0..128 for IPv6. */
  bits: number;
}

/** Thrown by {@link parsePrefix} and {@link parseAddress} for bad text. */
export class PrefixError extends Error {
  readonly code = 'ERR_INVALID_PREFIX';
  /** The text that could not be parsed. */
  readonly input: string;

  constructor(input: string, reason: string) {
    super(`invalid IP prefix ${JSON.stringify(input)}: ${reason}`);
    this.name = 'PrefixError';
    this.input = input;
  }
}

// ---------------------------------------------------------------------------
// Parsing and formatting

const DEC_OCTET = /^(?:0|[1-9][0-9]{0,2})$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;
const PREFIX_LEN = /^[0-9]{1,3}$/;

function parseV4Into(s: string, out: Uint8Array, at: number): boolean {
  const parts = s.split('.');
  if (parts.length !== 4) return false;
  for (let i = 0; i < 4; i++) {
    const p = parts[i] as string;
    if (!DEC_OCTET.test(p)) return false;
    const v = Number(p);
    if (v > 255) return false;
    out[at + i] = v;
  }
  return true;
}

function parseHexGroups(s: string, out: number[]): boolean {
  if (s === '') return true;
  for (const g of s.split(':')) {
    if (!HEX_GROUP.test(g)) return false;
    out.push(parseInt(g, 16));
  }
  return true;
}

function parseV6(s: string): Uint8Array | null {
  const out = new Uint8Array(16);
  let body = s;
  let groupsWanted = 8;
  // A trailing dotted quad fills the last two groups.
  const lastColon = s.lastIndexOf(':');
  if (s.indexOf('.', lastColon) >= 0) {
    if (!parseV4Into(s.slice(lastColon + 1), out, 12)) return null;
    // Keep a "::" that directly precedes the quad ("::1.2.3.4").
    body = s[lastColon - 1] === ':' ? s.slice(0, lastColon + 1) : s.slice(0, lastColon);
    groupsWanted = 6;
  }
  const dbl = body.indexOf('::');
  const head: number[] = [];
  const tail: number[] = [];
  if (dbl < 0) {
    if (!parseHexGroups(body, head) || head.length !== groupsWanted) return null;
  } else {
    if (body.indexOf('::', dbl + 1) >= 0) return null;
    if (!parseHexGroups(body.slice(0, dbl), head)) return null;
    if (!parseHexGroups(body.slice(dbl + 2), tail)) return null;
    // "::" stands for at least one zero group.
    if (head.length + tail.length > groupsWanted - 1) return null;
  }
  const tailStart = groupsWanted - tail.length;
  for (let i = 0; i < head.length; i++) putGroup(out, i, head[i] as number);
  for (let i = 0; i < tail.length; i++) putGroup(out, tailStart + i, tail[i] as number);
  return out;
}

function putGroup(out: Uint8Array, i: number, v: number): void {
  out[2 * i] = v >> 8;
  out[2 * i + 1] = v & 0xff;
}

/** A bare IP address, network byte order. */
export interface ParsedAddress {
  family: 4 | 6;
  bytes: Uint8Array;
}

/** Parses an address, or returns why it is bad. */
function tryParseAddress(s: string): ParsedAddress | string {
  if (s.includes(':')) {
    if (s.includes('%')) return 'IPv6 zone ids are not allowed';
    const bytes = parseV6(s);
    return bytes === null ? 'bad IPv6 address' : { family: 6, bytes };
  }
  const bytes = new Uint8Array(4);
  return parseV4Into(s, bytes, 0) ? { family: 4, bytes } : 'bad IPv4 address';
}

/**
 * Parses a bare IPv4 or IPv6 address. Strict like inet_pton: dotted-quad
 * IPv4 without leading zeros; IPv6 with at most one "::" and an optional
 * trailing dotted quad; no zone ids, no surrounding whitespace.
 */
export function parseAddress(s: string): ParsedAddress {
  const r = tryParseAddress(s);
  if (typeof r === 'string') throw new PrefixError(s, r);
  return r;
}

/** Zeroes every bit of `bytes` after the first `bits`, in place. */
function maskBytes(bytes: Uint8Array, bits: number): void {
  for (let i = 0; i < bytes.length; i++) {
    const keep = bits - 8 * i;
    if (keep >= 8) continue;
    bytes[i] = keep <= 0 ? 0 : (bytes[i] as number) & (0xff << (8 - keep));
  }
}

/**
 * Parses "addr/len" or a bare address (a host prefix, /32 or /128). Host bits
 * are masked off, as wg does: "10.1.2.3/8" becomes 10.0.0.0/8.
 * @throws {PrefixError} naming the bad text.
 */
export function parsePrefix(s: string): Prefix {
  const slash = s.indexOf('/');
  const addr = tryParseAddress(slash < 0 ? s : s.slice(0, slash));
  if (typeof addr === 'string') throw new PrefixError(s, addr);
  const max = addr.family === 4 ? 32 : 128;
  let bits = max;
  if (slash >= 0) {
    const lenText = s.slice(slash + 1);
    if (!PREFIX_LEN.test(lenText)) throw new PrefixError(s, 'bad prefix length');
    bits = Number(lenText);
    if (bits > max) {
      throw new PrefixError(s, `prefix length ${bits} out of range 0..${max}`);
    }
  }
  maskBytes(addr.bytes, bits);
  return { family: addr.family, bytes: addr.bytes, bits };
}

/** Formats an address: dotted quad, or RFC 5952 compressed IPv6. */
export function formatAddress(family: 4 | 6, bytes: Uint8Array): string {
  if (family === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push(((bytes[2 * i] as number) << 8) | (bytes[2 * i + 1] as number));
  // IPv4-mapped addresses keep their dotted quad, as inet_ntop prints them.
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `::ffff:${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  }
  // Longest run of two or more zero groups, the first one on a tie.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number): string =>
    g.slice(from, to).map((v) => v.toString(16)).join(':');
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLen, 8)}`;
}

/** Formats a prefix canonically, always with its length: "fd00::/64". */
export function formatPrefix(p: Prefix): string {
  return `${formatAddress(p.family, p.bytes)}/${p.bits}`;
}

// ---------------------------------------------------------------------------
// The trie

/**
 * A trie node. An IPv4 key uses k0 only; IPv6 uses k0..k3, big-endian words
 * stored as signed int32 so they stay small integers for V8. Key bits past
 * `cidr` are zero. A node without a value is an intermediate
 * branch point and always has two children.
 */
class Node<T> {
  k0: number;
  k1: number;
  k2: number;
  k3: number;
  cidr: number;
  readonly family: 4 | 6;
  has = false;
  value: T | undefined = undefined;
  c0: Node<T> | null = null;
  c1: Node<T> | null = null;
  parent: Node<T> | null = null;

  constructor(family: 4 | 6, key: Uint32Array, cidr: number) {
    this.family = family;
    this.k0 = (key[0] as number) | 0;
    this.k1 = (key[1] as number) | 0;
    this.k2 = (key[2] as number) | 0;
    this.k3 = (key[3] as number) | 0;
    this.cidr = cidr;
  }
}

function nodeWord<T>(n: Node<T>, i: number): number {
  return i === 0 ? n.k0 : i === 1 ? n.k1 : i === 2 ? n.k2 : n.k3;
}

/** Number of leading bits the node's key shares with `key`. */
function commonBits<T>(n: Node<T>, key: Uint32Array, words: number): number {
  for (let i = 0; i < words; i++) {
    const x = nodeWord(n, i) ^ (key[i] as number);
    if (x !== 0) return 32 * i + Math.clz32(x);
  }
  return 32 * words;
}

function keyBit(key: Uint32Array, pos: number): number {
  return ((key[pos >>> 5] as number) >>> (31 - (pos & 31))) & 1;
}

function nodeBit<T>(n: Node<T>, pos: number): number {
  return (nodeWord(n, pos >>> 5) >>> (31 - (pos & 31))) & 1;
}

/** Converts prefix bytes to four big-endian words, masked to `bits`. */
function toKey(bytes: Uint8Array, bits: number): Uint32Array {
  const key = new Uint32Array(4);
  for (let i = 0; i < bytes.length; i += 4) key[i >>> 2] = read32(bytes, i);
  return maskedKey(key, bits);
}

/** A copy of `key` with every bit after the first `bits` zeroed. */
function maskedKey(key: Uint32Array, bits: number): Uint32Array {
  const out = new Uint32Array(4);
  for (let w = 0; w < 4; w++) {
    const keep = bits - 32 * w;
    const k = key[w] as number;
    out[w] = keep >= 32 ? k : keep <= 0 ? 0 : k & ~(0xffffffff >>> keep);
  }
  return out;
}

function nodePrefix<T>(n: Node<T>): Prefix {
  const family = n.family;
  const len = family === 4 ? 4 : 16;
  const bytes = new Uint8Array(len);
  for (let i = 0; i < len; i++) {
    bytes[i] = (nodeWord(n, i >>> 2) >>> (24 - 8 * (i & 3))) & 0xff;
  }
  return { family, bytes, bits: n.cidr };
}

/** One family's trie. Only the insert/remove (control) paths live here. */
class Trie<T> {
  root: Node<T> | null = null;
  readonly words: number;

  constructor(readonly family: 4 | 6) {
    this.words = family === 4 ? 1 : 4;
  }

  /** The node holding exactly key/cidr, valued or not, or null. */
  find(key: Uint32Array, cidr: number): Node<T> | null {
    let n = this.root;
    while (n !== null && n.cidr <= cidr && commonBits(n, key, this.words) >= n.cidr) {
      if (n.cidr === cidr) return n;
      n = keyBit(key, n.cidr) === 0 ? n.c0 : n.c1;
    }
    return null;
  }

  /** Returns the node now holding key/cidr; the caller sets its value. */
  insert(key: Uint32Array, cidr: number): Node<T> {
    let parent: Node<T> | null = null;
    let down = this.root;
    while (down !== null && down.cidr <= cidr && commonBits(down, key, this.words) >= down.cidr) {
      if (down.cidr === cidr) return down;
      parent = down;
      down = keyBit(key, down.cidr) === 0 ? down.c0 : down.c1;
    }
    const fresh = new Node<T>(this.family, key, cidr);
    if (down === null) {
      this.attach(parent, parent === null ? 0 : keyBit(key, parent.cidr), fresh);
      return fresh;
    }
    // `down` sits where the new node belongs but is not on its path, or is
    // more specific than it. Either the new node becomes down's ancestor, or
    // a branch node is needed where the two keys first differ.
    const slotBit = parent === null ? 0 : keyBit(key, parent.cidr);
    const common = Math.min(commonBits(down, key, this.words), cidr);
    if (common === cidr) {
      this.setChild(fresh, nodeBit(down, cidr), down);
      this.attach(parent, slotBit, fresh);
      return fresh;
    }
    const branch = new Node<T>(this.family, maskedKey(key, common), common);
    this.setChild(branch, nodeBit(down, common), down);
    this.setChild(branch, keyBit(key, common), fresh);
    this.attach(parent, slotBit, branch);
    return fresh;
  }

  /** Drops a node's value and prunes nodes that no longer branch. */
  removeValue(n: Node<T>): void {
    n.has = false;
    n.value = undefined;
    if (n.c0 !== null && n.c1 !== null) return;
    const child = n.c0 ?? n.c1;
    const parent = n.parent;
    this.replace(n, child);
    if (child !== null || parent === null || parent.has) return;
    // n was a leaf; its valueless parent now has one child and is redundant.
    this.replace(parent, parent.c0 ?? parent.c1);
  }

  private setChild(n: Node<T>, bit: number, child: Node<T>): void {
    if (bit === 0) n.c0 = child;
    else n.c1 = child;
    child.parent = n;
  }

  private attach(parent: Node<T> | null, bit: number, n: Node<T>): void {
    if (parent === null) {
      this.root = n;
      n.parent = null;
    } else {
      this.setChild(parent, bit, n);
    }
  }

  /** Puts `child` (possibly null) in n's place and unlinks n. */
  private replace(n: Node<T>, child: Node<T> | null): void {
    const parent = n.parent;
    if (parent === null) this.root = child;
    else if (parent.c0 === n) parent.c0 = child;
    else parent.c1 = child;
    if (child !== null) child.parent = parent;
    n.parent = n.c0 = n.c1 = null;
  }
}

function countNodes<T>(n: Node<T> | null): number {
  return n === null ? 0 : 1 + countNodes(n.c0) + countNodes(n.c1);
}

function read32(buf: Uint8Array, off: number): number {
  return (
    ((buf[off] as number) << 24) |
    ((buf[off + 1] as number) << 16) |
    ((buf[off + 2] as number) << 8) |
    (buf[off + 3] as number)
  );
}

/**
 * Longest-prefix-match table from IP prefixes to values (peers). Inserting a
 * prefix that is already present replaces its value, as `wg set` does.
 */
export class AllowedIps<T> {
  private readonly v4 = new Trie<T>(4);
  private readonly v6 = new Trie<T>(6);
  private readonly byValue = new Map<T, Set<Node<T>>>();
  private count = 0;

  /** Number of prefixes in the table. */
  get size(): number {
    return this.count;
  }

  insert(p: Prefix, value: T): void {
    const trie = this.trieFor(p);
    const n = trie.insert(toKey(p.bytes, p.bits), p.bits);
    if (n.has) {
      if (n.value === value) return;
      this.unindex(n);
    } else {
      this.count++;
    }
    n.has = true;
    n.value = value;
    let set = this.byValue.get(value);
    if (set === undefined) {
      set = new Set();
      this.byValue.set(value, set);
    }
    set.add(n);
  }

  /** Removes one prefix. Returns whether it was present. */
  remove(p: Prefix): boolean {
    const trie = this.trieFor(p);
    const n = trie.find(toKey(p.bytes, p.bits), p.bits);
    if (n === null || !n.has) return false;
    this.unindex(n);
    trie.removeValue(n);
    this.count--;
    return true;
  }

  /** Removes every prefix that maps to `value` (all of a peer's AllowedIPs). */
  removeValue(value: T): number {
    const set = this.byValue.get(value);
    if (set === undefined) return 0;
    this.byValue.delete(value);
    for (const n of set) {
      (n.family === 4 ? this.v4 : this.v6).removeValue(n);
    }
    this.count -= set.size;
    return set.size;
  }

  /**
   * Looks up the IPv4 address in `buf[offset..offset+4)`, e.g. offset 12
   * (source) or 16 (destination) of an IPv4 header. Allocation-free.
   * Returns undefined if nothing matches or the buffer is too short.
   */
  lookupV4(buf: Uint8Array, offset: number): T | undefined {
    if (!(offset >= 0 && offset + 4 <= buf.length)) return undefined;
    const a = read32(buf, offset);
    let n = this.v4.root;
    let found: T | undefined = undefined;
    while (n !== null) {
      const cidr = n.cidr;
      if (Math.clz32(a ^ n.k0) < cidr) break;
      if (n.has) found = n.value;
      if (cidr === 32) break;
      n = ((a >>> (31 - cidr)) & 1) === 0 ? n.c0 : n.c1;
    }
    return found;
  }

  /**
   * Looks up the IPv6 address in `buf[offset..offset+16)`, e.g. offset 8
   * (source) or 24 (destination) of an IPv6 header. Allocation-free.
   * Returns undefined if nothing matches or the buffer is too short.
   */
  lookupV6(buf: Uint8Array, offset: number): T | undefined {
    if (!(offset >= 0 && offset + 16 <= buf.length)) return undefined;
    const a = read32(buf, offset);
    const b = read32(buf, offset + 4);
    const c = read32(buf, offset + 8);
    const d = read32(buf, offset + 12);
    let n = this.v6.root;
    let found: T | undefined = undefined;
    while (n !== null) {
      const cidr = n.cidr;
      let x: number;
      let common: number;
      if ((x = a ^ n.k0) !== 0) common = Math.clz32(x);
      else if ((x = b ^ n.k1) !== 0) common = 32 + Math.clz32(x);
      else if ((x = c ^ n.k2) !== 0) common = 64 + Math.clz32(x);
      else if ((x = d ^ n.k3) !== 0) common = 96 + Math.clz32(x);
      else common = 128;
      if (common < cidr) break;
      if (n.has) found = n.value;
      if (cidr === 128) break;
      const w = cidr >>> 5;
      const word = w === 0 ? a : w === 1 ? b : w === 2 ? c : d;
      n = ((word >>> (31 - (cidr & 31))) & 1) === 0 ? n.c0 : n.c1;
    }
    return found;
  }

  /** Looks up an address given as text (control path, not per packet). */
  lookup(addr: string): T | undefined {
    const { family, bytes } = parseAddress(addr);
    return family === 4 ? this.lookupV4(bytes, 0) : this.lookupV6(bytes, 0);
  }

  /** The prefixes mapped to `value`, IPv4 first, in address order. */
  entriesFor(value: T): Prefix[] {
    const set = this.byValue.get(value);
    if (set === undefined) return [];
    const out: Prefix[] = [];
    this.walk(this.v4.root, (n) => {
      if (set.has(n)) out.push(nodePrefix(n));
    });
    this.walk(this.v6.root, (n) => {
      if (set.has(n)) out.push(nodePrefix(n));
    });
    return out;
  }

  /** Every prefix and its value, IPv4 first, in address order. */
  entries(): Array<{ prefix: Prefix; value: T }> {
    const out: Array<{ prefix: Prefix; value: T }> = [];
    this.walk(this.v4.root, (n) => out.push({ prefix: nodePrefix(n), value: n.value as T }));
    this.walk(this.v6.root, (n) => out.push({ prefix: nodePrefix(n), value: n.value as T }));
    return out;
  }

  /**
   * Trie nodes, branch points included: at most 2 * size - 1. For tests and
   * memory metrics; walks the whole trie.
   */
  nodeCount(): number {
    return countNodes(this.v4.root) + countNodes(this.v6.root);
  }

  /** Removes everything. */
  clear(): void {
    this.v4.root = null;
    this.v6.root = null;
    this.byValue.clear();
    this.count = 0;
  }

  private trieFor(p: Prefix): Trie<T> {
    const max = p.family === 4 ? 32 : p.family === 6 ? 128 : -1;
    if (max < 0) throw new RangeError(`bad prefix family ${String(p.family)}`);
    if (p.bytes.length !== max / 8) {
      throw new RangeError(`IPv${p.family} prefix needs ${max / 8} bytes, got ${p.bytes.length}`);
    }
    if (!Number.isInteger(p.bits) || p.bits < 0 || p.bits > max) {
      throw new RangeError(`IPv${p.family} prefix length ${p.bits} out of range 0..${max}`);
    }
    return p.family === 4 ? this.v4 : this.v6;
  }

  private unindex(n: Node<T>): void {
    const set = this.byValue.get(n.value as T);
    if (set === undefined) return;
    set.delete(n);
    if (set.size === 0) this.byValue.delete(n.value as T);
  }

  /** Pre-order walk over valued nodes: address order, shorter prefix first. */
  private walk(n: Node<T> | null, visit: (n: Node<T>) => void): void {
    if (n === null) return;
    if (n.has) visit(n);
    this.walk(n.c0, visit);
    this.walk(n.c1, visit);
  }
}
