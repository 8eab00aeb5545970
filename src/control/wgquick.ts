/**
 * wg-quick configuration files: owns parsing the `[Interface]` / `[Peer]` text
 * that `warrend --wg-config FILE` reads into a validated {@link WgQuickConfig}.
 *
 * Accepted, as wg-quick spells them (keys and section names case-insensitive):
 *
 *   [Interface]  PrivateKey, ListenPort, Address, MTU, DNS, Table, FwMark
 *   [Peer]       PublicKey, PresharedKey, AllowedIPs, Endpoint, PersistentKeepalive
 *
 * Everything else is rejected with a {@link ConfigError} naming the file and the
 * line: the hooks (PreUp/PostUp/PreDown/PostDown, because warrend never runs
 * shell commands from a config), SaveConfig, unknown keys and sections, a key
 * outside a section, a key given twice in one section. Nothing is silently
 * ignored, so a config that parses means what it says.
 *
 * Normal forms: addresses keep their host bits ("10.0.0.1/24"), allowed IPs are
 * masked network prefixes ("10.0.0.0/24"); a missing prefix length means a
 * single host (/32 or /128); IPv6 is written per RFC 5952. "off" for FwMark or
 * PersistentKeepalive leaves the field out. Endpoint hosts may be names: they
 * are kept as text and resolved later.
 */
import { createRequire } from 'node:module';
import type * as IpaddrModule from 'ipaddr.js';

// ipaddr.js is CommonJS with `export =`; without esModuleInterop a default
// import does not type-check, and Node exposes no named exports for it.
type Ipaddr = typeof IpaddrModule;
type IpAddr = ReturnType<Ipaddr['parse']>;
type IPv6Addr = ReturnType<Ipaddr['IPv6']['parse']>;
const ipaddr = createRequire(import.meta.url)('ipaddr.js') as Ipaddr;

export interface WgQuickInterface {
  privateKey: Uint8Array;
  listenPort?: number;
  /** Addresses for the tunnel interface, with prefix length ("10.0.0.1/24"). */
  addresses: string[];
  mtu?: number;
  /** DNS servers (IP addresses) and search domains, in file order. */
  dns: string[];
  table?: 'off' | 'auto' | number;
  fwMark?: number;
}

export interface WgQuickPeer {
  publicKey: Uint8Array;
  presharedKey?: Uint8Array;
  /** Canonical network prefixes ("10.0.0.0/24", "fd00::/64"), duplicates removed. */
  allowedIps: string[];
  endpoint?: { host: string; port: number };
  persistentKeepalive?: number;
}

export interface WgQuickConfig {
  interface: WgQuickInterface;
  peers: WgQuickPeer[];
}

/** A wg-quick file that warrend will not run. `message` is `SOURCE:LINE: what`. */
export class ConfigError extends Error {
  readonly code = 'EWGCONFIG';
  override readonly name = 'ConfigError';
  /** The file name (or other label) the text came from. */
  readonly source: string;
  /** 1-based line the problem is on. */
  readonly line: number;
  /** The message without the `SOURCE:LINE: ` prefix. */
  readonly detail: string;

  constructor(source: string, line: number, detail: string, options?: ErrorOptions) {
    super(`${source}:${line}: ${detail}`, options);
    this.source = source;
    this.line = line;
    this.detail = detail;
  }
}

type Section = 'interface' | 'peer';

/** Canonical spelling of each key we accept, by lower-case name, with its section. */
const KEYS: Record<string, { name: string; section: Section }> = {
  privatekey: { name: 'PrivateKey', section: 'interface' },
  listenport: { name: 'ListenPort', section: 'interface' },
  address: { name: 'Address', section: 'interface' },
  mtu: { name: 'MTU', section: 'interface' },
  dns: { name: 'DNS', section: 'interface' },
  table: { name: 'Table', section: 'interface' },
  fwmark: { name: 'FwMark', section: 'interface' },
  publickey: { name: 'PublicKey', section: 'peer' },
  presharedkey: { name: 'PresharedKey', section: 'peer' },
  allowedips: { name: 'AllowedIPs', section: 'peer' },
  endpoint: { name: 'Endpoint', section: 'peer' },
  persistentkeepalive: { name: 'PersistentKeepalive', section: 'peer' },
};

/** Keys that may be given more than once in a section; their values accumulate. */
const LIST_KEYS = new Set(['address', 'dns', 'allowedips']);

/** wg-quick keys we know and refuse, with the reason. */
const REFUSED: Record<string, string> = {
  preup: 'PreUp is not supported by warrend (it never runs shell commands from a config)',
  postup: 'PostUp is not supported by warrend (it never runs shell commands from a config)',
  predown: 'PreDown is not supported by warrend (it never runs shell commands from a config)',
  postdown: 'PostDown is not supported by warrend (it never runs shell commands from a config)',
  saveconfig: 'SaveConfig is not supported by warrend (it never rewrites its config file)',
};

const SECTION_TITLE: Record<Section, string> = { interface: '[Interface]', peer: '[Peer]' };

/** A section while it is being read: the result's fields, the key still optional, plus where things were seen. */
interface Draft {
  headerLine: number;
  seen: Map<string, number>;
}
type PeerDraft = Draft & Omit<WgQuickPeer, 'publicKey'> & { publicKey?: Uint8Array };
type InterfaceDraft = Draft & Omit<WgQuickInterface, 'privateKey'> & { privateKey?: Uint8Array };

/**
 * Parses the text of a wg-quick config file. `source` names the file in error
 * messages (e.g. "wg0.conf"). Throws {@link ConfigError} on the first problem.
 */
export function parseWgQuick(text: string, source: string): WgQuickConfig {
  const fail: (line: number, detail: string) => never = (line, detail) => {
    throw new ConfigError(source, line, detail);
  };

  let iface: InterfaceDraft | undefined;
  const peers: PeerDraft[] = [];
  let current: { section: Section; draft: InterfaceDraft | PeerDraft } | undefined;
  const peerKeyLines = new Map<string, number>();

  const lines = text.replace(/^\uFEFF/, '').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const raw = lines[i] ?? '';
    const hash = raw.indexOf('#');
    const line = (hash >= 0 ? raw.slice(0, hash) : raw).trim(); // trim() also drops the CR of CRLF
    if (line === '') continue;

    if (line.startsWith('[')) {
      const m = /^\[\s*([^\]]*?)\s*\]$/.exec(line);
      if (!m) fail(lineNo, `malformed section header "${line}"`);
      const name = m[1].toLowerCase();
      if (name === 'interface') {
        if (iface) fail(lineNo, `second [Interface] section (the first is at line ${iface.headerLine})`);
        iface = { headerLine: lineNo, seen: new Map(), addresses: [], dns: [] };
        current = { section: 'interface', draft: iface };
      } else if (name === 'peer') {
        const peer: PeerDraft = { headerLine: lineNo, seen: new Map(), allowedIps: [] };
        peers.push(peer);
        current = { section: 'peer', draft: peer };
      } else {
        fail(lineNo, `unknown section "${line}" (warrend accepts [Interface] and [Peer])`);
      }
      continue;
    }

    const eq = line.indexOf('=');
    if (eq < 0) fail(lineNo, `expected "Key = Value", got "${line}"`);
    const rawKey = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    if (rawKey === '') fail(lineNo, `missing key before "=" in "${line}"`);
    const lower = rawKey.toLowerCase();

    const refused = REFUSED[lower];
    if (refused !== undefined) fail(lineNo, refused);
    const spec = KEYS[lower];
    if (spec === undefined) {
      const where = current ? ` in ${SECTION_TITLE[current.section]}` : '';
      fail(lineNo, `unknown key "${rawKey}"${where}`);
    }
    const { name, section } = spec;
    if (!current) fail(lineNo, `${name} is outside any section (put it under ${SECTION_TITLE[section]})`);
    const cur = current;
    if (cur.section !== section) {
      fail(lineNo, `${name} belongs in ${SECTION_TITLE[section]}, not ${SECTION_TITLE[cur.section]}`);
    }
    if (value === '') fail(lineNo, `${name} has no value`);
    const firstAt = cur.draft.seen.get(lower);
    if (firstAt !== undefined && !LIST_KEYS.has(lower)) {
      fail(lineNo, `${name} is given twice in this ${SECTION_TITLE[section]} section (first at line ${firstAt})`);
    }
    if (firstAt === undefined) cur.draft.seen.set(lower, lineNo);

    const bad = (what: string): never => fail(lineNo, `${name}: ${what}`);
    if (cur.section === 'interface') {
      const d = cur.draft as InterfaceDraft;
      switch (lower) {
        case 'privatekey':
          d.privateKey = parseKey(value, bad, true);
          break;
        case 'listenport':
          d.listenPort = parseUint(value, 0, 65535, bad);
          break;
        case 'address':
          for (const item of splitList(value, bad)) d.addresses.push(parsePrefix(item, false, bad));
          break;
        case 'mtu':
          d.mtu = parseUint(value, 576, 65535, bad);
          break;
        case 'dns':
          for (const item of splitList(value, bad)) d.dns.push(parseDnsEntry(item, bad));
          break;
        case 'table':
          d.table = parseTable(value, bad);
          break;
        case 'fwmark':
          if (value.toLowerCase() !== 'off') d.fwMark = parseMark(value, bad);
          break;
      }
    } else {
      const p = cur.draft as PeerDraft;
      switch (lower) {
        case 'publickey': {
          p.publicKey = parseKey(value, bad);
          const canon = Buffer.from(p.publicKey).toString('base64');
          const other = peerKeyLines.get(canon);
          if (other !== undefined) bad(`peer ${canon} is already defined (PublicKey at line ${other})`);
          peerKeyLines.set(canon, lineNo);
          break;
        }
        case 'presharedkey':
          p.presharedKey = parseKey(value, bad, true);
          break;
        case 'allowedips':
          for (const item of splitList(value, bad)) {
            const prefix = parsePrefix(item, true, bad);
            if (!p.allowedIps.includes(prefix)) p.allowedIps.push(prefix);
          }
          break;
        case 'endpoint':
          p.endpoint = parseEndpoint(value, bad);
          break;
        case 'persistentkeepalive':
          if (value.toLowerCase() !== 'off') p.persistentKeepalive = parseUint(value, 0, 65535, bad);
          break;
      }
    }
  }

  if (!iface) return fail(1, 'no [Interface] section');
  if (!iface.privateKey) return fail(iface.headerLine, '[Interface] has no PrivateKey');
  const out: WgQuickConfig = {
    interface: { privateKey: iface.privateKey, addresses: iface.addresses, dns: iface.dns },
    peers: [],
  };
  if (iface.listenPort !== undefined) out.interface.listenPort = iface.listenPort;
  if (iface.mtu !== undefined) out.interface.mtu = iface.mtu;
  if (iface.table !== undefined) out.interface.table = iface.table;
  if (iface.fwMark !== undefined) out.interface.fwMark = iface.fwMark;

  for (const p of peers) {
    if (!p.publicKey) return fail(p.headerLine, '[Peer] has no PublicKey');
    const peer: WgQuickPeer = { publicKey: p.publicKey, allowedIps: p.allowedIps };
    if (p.presharedKey) peer.presharedKey = p.presharedKey;
    if (p.endpoint) peer.endpoint = p.endpoint;
    if (p.persistentKeepalive !== undefined) peer.persistentKeepalive = p.persistentKeepalive;
    out.peers.push(peer);
  }
  return out;
}

type Bad = (what: string) => never;

/** Exactly 32 bytes of standard base64: 43 characters and one "=". */
const KEY_RE = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/** Secret keys are never echoed into error messages (they end up in logs). */
function parseKey(value: string, bad: Bad, secret = false): Uint8Array {
  if (!KEY_RE.test(value)) bad(`${secret ? `value (${value.length} characters, not shown)` : `"${value}"`} is not a base64 key of 32 bytes`);
  return new Uint8Array(Buffer.from(value, 'base64'));
}

function parseUint(value: string, min: number, max: number, bad: Bad): number {
  if (!/^[0-9]+$/.test(value)) bad(`"${value}" is not a number`);
  const n = Number(value);
  if (n < min || n > max) bad(`${value} is out of range (${min}..${max})`);
  return n;
}

function parseMark(value: string, bad: Bad): number {
  let n: number;
  if (/^0x[0-9a-f]+$/i.test(value)) n = Number.parseInt(value.slice(2), 16);
  else if (/^[0-9]+$/.test(value)) n = Number(value);
  else return bad(`"${value}" is not a mark (decimal, 0x hex, or off)`);
  if (n > 0xffffffff) bad(`${value} does not fit in 32 bits`);
  return n;
}

function parseTable(value: string, bad: Bad): 'off' | 'auto' | number {
  const lower = value.toLowerCase();
  if (lower === 'off' || lower === 'auto') return lower;
  if (!/^[0-9]+$/.test(value)) bad(`"${value}" is not off, auto or a table number`);
  const n = Number(value);
  if (n < 1 || n > 0xffffffff) bad(`table ${value} is out of range (1..4294967295)`);
  return n;
}

function splitList(value: string, bad: Bad): string[] {
  const items = value.split(',').map((s) => s.trim());
  if (items.some((s) => s === '')) bad(`empty item in list "${value}"`);
  return items;
}

function isIPv4Literal(s: string): boolean {
  return ipaddr.IPv4.isValidFourPartDecimal(s);
}

function isIPv6Literal(s: string): boolean {
  return s.includes(':') && !s.includes('%') && ipaddr.IPv6.isValid(s);
}

/** Canonical text of an IP literal (dotted quad, RFC 5952), or null. */
export function canonicalIp(s: string): string | null {
  if (isIPv4Literal(s)) return ipaddr.IPv4.parse(s).toString();
  if (isIPv6Literal(s)) return ipaddr.IPv6.parse(s).toRFC5952String();
  return null;
}

/**
 * "ADDR[/LEN]" to canonical text. With `mask`, host bits are cleared (a route
 * or allowed-IPs prefix); without, the address is kept (an interface address).
 */
export function canonicalPrefix(text: string, mask: boolean): string | null {
  const slash = text.indexOf('/');
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const lenText = slash < 0 ? undefined : text.slice(slash + 1);
  let addr: IpAddr;
  if (isIPv4Literal(addrText)) addr = ipaddr.IPv4.parse(addrText);
  else if (isIPv6Literal(addrText)) addr = ipaddr.IPv6.parse(addrText);
  else return null;
  const bits = addr.kind() === 'ipv4' ? 32 : 128;
  let len = bits;
  if (lenText !== undefined) {
    if (!/^[0-9]{1,3}$/.test(lenText)) return null;
    len = Number(lenText);
    if (len > bits) return null;
  }
  if (mask) {
    const bytes = addr.toByteArray();
    for (let i = 0; i < bytes.length; i++) {
      const keep = Math.max(0, Math.min(8, len - i * 8));
      bytes[i] = (bytes[i] ?? 0) & ((0xff << (8 - keep)) & 0xff);
    }
    addr = ipaddr.fromByteArray(bytes);
  }
  const shown = addr.kind() === 'ipv4' ? addr.toString() : (addr as IPv6Addr).toRFC5952String();
  return `${shown}/${len}`;
}

function parsePrefix(item: string, mask: boolean, bad: Bad): string {
  const out = canonicalPrefix(item, mask);
  if (out === null) bad(`"${item}" is not an IP ${mask ? 'prefix' : 'address'} (ADDR or ADDR/LEN)`);
  return out;
}

const HOSTNAME_RE =
  /^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

function isHostname(s: string): boolean {
  // All-numeric dotted text is a malformed IPv4 address, not a name.
  return HOSTNAME_RE.test(s) && !/^[0-9.]+$/.test(s);
}

function parseDnsEntry(item: string, bad: Bad): string {
  const ip = canonicalIp(item);
  if (ip !== null) return ip;
  if (!isHostname(item)) bad(`"${item}" is neither an IP address nor a search domain`);
  return item;
}

function parseEndpoint(value: string, bad: Bad): { host: string; port: number } {
  let host: string;
  let portText: string;
  if (value.startsWith('[')) {
    const m = /^\[([^\]]+)\]:([^:]*)$/.exec(value);
    if (!m) return bad(`"${value}" is not [IPv6]:port`);
    const h = m[1] ?? '';
    const zone = h.indexOf('%');
    const base = zone < 0 ? h : h.slice(0, zone);
    if (!isIPv6Literal(base) || (zone >= 0 && !/^%[A-Za-z0-9_.-]+$/.test(h.slice(zone)))) {
      bad(`"${h}" in "${value}" is not an IPv6 address`);
    }
    host = ipaddr.IPv6.parse(base).toRFC5952String() + (zone < 0 ? '' : h.slice(zone));
    portText = m[2] ?? '';
  } else {
    const colon = value.lastIndexOf(':');
    if (colon < 0) return bad(`"${value}" has no port (write host:port)`);
    const h = value.slice(0, colon);
    if (h.includes(':')) bad(`"${value}": write an IPv6 endpoint as [address]:port`);
    if (isIPv4Literal(h)) host = ipaddr.IPv4.parse(h).toString();
    else if (isHostname(h)) host = h;
    else return bad(`"${h}" in "${value}" is not an IPv4 address or host name`);
    portText = value.slice(colon + 1);
  }
  if (!/^[0-9]+$/.test(portText)) bad(`"${portText}" in "${value}" is not a port number`);
  const port = Number(portText);
  if (port < 1 || port > 65535) bad(`port ${portText} in "${value}" is out of range (1..65535)`);
  return { host, port };
}
