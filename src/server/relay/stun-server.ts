/**
 * The relay host's STUN server (UDP, 3478 by default): RFC 8489 Binding,
 * classic RFC 3489 requests answered per RFC 8489 §11, and — given two
 * addresses of one family (`--stun-listen` twice) — RFC 5780 behaviour
 * discovery: it also listens on an alternate port of each address, answers
 * CHANGE-REQUEST from the other IP and/or port, and says where it answered
 * from (RESPONSE-ORIGIN / SOURCE-ADDRESS) and what its other address is
 * (OTHER-ADDRESS / CHANGED-ADDRESS).
 *
 *            primary port   alternate port (default primary + 1)
 *   addr 0   socket [0][0]  socket [0][1]
 *   addr 1   socket [1][0]  socket [1][1]
 *
 * A request received on [a][p] is answered from [a ^ changeIp][p ^ changePort],
 * and OTHER-ADDRESS is [a ^ 1][p ^ 1]. With one address (or two of different
 * families, answered independently) a CHANGE-REQUEST that asks for a change
 * gets 420 Unknown Attribute, as RFC 5780 §6.1 requires; one with no flags
 * set (the stock `stun` client always sends one) is simply answered.
 *
 * answerStun() is the pure decision; startStunServer() the node:dgram
 * plumbing. Nothing is logged per packet: bad datagrams are dropped and
 * counted, and no datagram can throw out of the receive path.
 */
import { createSocket } from 'node:dgram';
import type { RemoteInfo, Socket } from 'node:dgram';
import { isIP } from 'node:net';
import {
  BINDING_REQUEST, StunAttr, StunClass, decodeStun, encodeBindingError, encodeBindingSuccess, readFields, stunClass,
  stunMethod, unknownRequired,
} from '../../wire/stun.js';
import type { StunAddress } from '../../wire/stun.js';

/** SOFTWARE in our RFC 8489 responses. */
export const STUN_SOFTWARE = 'warren-relay';

/** Comprehension-required attributes a request may carry and still be answered (authentication is not used, so its attributes are ignored). */
const UNDERSTOOD: ReadonlySet<number> = new Set([
  StunAttr.CHANGE_REQUEST, StunAttr.USERNAME, StunAttr.REALM, StunAttr.NONCE, StunAttr.USERHASH,
]);

/** The server's sockets as [address][0 = primary port, 1 = alternate port]; `paired` = RFC 5780 mode. */
export interface StunLayout {
  sockets: StunAddress[][];
  paired: boolean;
}

/** Which socket: address index and port index (0 primary, 1 alternate). */
export interface SocketRef {
  addr: number;
  alt: number;
}

export type StunAnswer =
  | { kind: 'drop' }
  | { kind: 'reply'; data: Uint8Array; via: SocketRef; classic: boolean; error: boolean };

const DROP: StunAnswer = { kind: 'drop' };

/** What to send back for `data` from `from`, received on socket `at`. Pure; never throws for any datagram. */
export function answerStun(data: Uint8Array, from: StunAddress, at: SocketRef, layout: StunLayout): StunAnswer {
  const m = decodeStun(data);
  if (!m || stunClass(m.type) !== StunClass.Request) return DROP; // responses and indications get no answer
  const reply = (bytes: Uint8Array, via: SocketRef, error: boolean): StunAnswer => ({ kind: 'reply', data: bytes, via, classic: m.classic, error });
  const fail = (code: number, reason: string, unknown?: number[]): StunAnswer =>
    reply(encodeBindingError(m.transactionId, { code, reason, unknown, software: STUN_SOFTWARE, method: stunMethod(m.type) }), at, true);

  if (stunMethod(m.type) !== stunMethod(BINDING_REQUEST)) return fail(400, 'Bad Request');
  const unknown = unknownRequired(m, UNDERSTOOD);
  if (unknown.length > 0) return fail(420, 'Unknown Attribute', unknown);
  const f = readFields(m);
  if (!f) return fail(400, 'Bad Request');
  const changeIp = f.changeRequest?.ip === true;
  const changePort = f.changeRequest?.port === true;
  if ((changeIp || changePort) && !layout.paired) return fail(420, 'Unknown Attribute', [StunAttr.CHANGE_REQUEST]);

  const via = { addr: changeIp ? at.addr ^ 1 : at.addr, alt: changePort ? at.alt ^ 1 : at.alt };
  const origin = layout.sockets[via.addr]?.[via.alt];
  const other = layout.paired ? layout.sockets[at.addr ^ 1]?.[at.alt ^ 1] : undefined;
  if (!origin) return DROP; // a layout/socket mismatch: cannot happen with startStunServer's layouts
  try {
    const bytes = encodeBindingSuccess(m.transactionId, {
      mapped: from,
      responseOrigin: isUnspecified(origin.ip) ? undefined : origin,
      otherAddress: other,
      software: STUN_SOFTWARE,
    });
    return reply(bytes, via, false);
  } catch {
    return DROP; // `from` not an address: cannot happen with datagrams from a socket
  }
}

function isUnspecified(ip: string): boolean {
  return ip === '0.0.0.0' || ip === '::';
}

export interface StunServerStats {
  /** Binding requests answered (success or error), classic ones included. */
  requests: number;
  /** Of those, classic RFC 3489 requests (no magic cookie). */
  classic: number;
  /** Of those, answered from another IP and/or port (CHANGE-REQUEST). */
  changed: number;
  /** Error responses sent (400, 420). */
  errors: number;
  /** Datagrams dropped without an answer: not STUN, malformed, not a request. */
  garbage: number;
  /** Replies the socket refused to send. */
  sendErrors: number;
}

export interface StunServer {
  readonly stats: Readonly<StunServerStats>;
  /** What is listening, per address: the primary socket and, in RFC 5780 mode, the alternate port. */
  readonly listening: { primary: StunAddress; alternate?: StunAddress }[];
  /** Two addresses of one family: CHANGE-REQUEST, OTHER-ADDRESS and RESPONSE-ORIGIN work. */
  readonly rfc5780: boolean;
  close(): Promise<void>;
}

export interface StunServerOptions {
  /** One or two addresses (`--stun-listen`); port 0 picks a free port (the second address then uses the same number). */
  addresses: StunAddress[];
  /** The alternate port of each address in RFC 5780 mode (default: its port + 1). */
  altPort?: number;
  log: (level: 'info' | 'warn' | 'debug', msg: string) => void;
}

export async function startStunServer(opts: StunServerOptions): Promise<StunServer> {
  const addrs = opts.addresses;
  if (addrs.length < 1 || addrs.length > 2) throw new Error(`the STUN server takes one or two addresses, not ${addrs.length}`);
  for (const a of addrs) {
    if (isIP(a.ip) === 0) throw new Error(`not an IP address for STUN: ${a.ip}`);
    if (!Number.isInteger(a.port) || a.port < 0 || a.port > 65535) throw new Error(`bad STUN port: ${a.port}`);
  }
  const paired = addrs.length === 2 && isIP(addrs[0]!.ip) === isIP(addrs[1]!.ip) && !addrs.some((a) => isUnspecified(a.ip));
  if (addrs.length === 2 && !paired) {
    opts.log('warn', 'STUN: the two addresses are of different families or include a wildcard; answering on each, without RFC 5780 tests');
  }

  const stats: StunServerStats = { requests: 0, classic: 0, changed: 0, errors: 0, garbage: 0, sendErrors: 0 };
  const layout: StunLayout = { sockets: [], paired };
  const sockets: Socket[][] = [];
  let socketErrors = 0;

  const onMessage = (at: SocketRef, msg: Buffer, rinfo: RemoteInfo): void => {
    try {
      const answer = answerStun(msg, { ip: rinfo.address, port: rinfo.port }, at, layout);
      if (answer.kind === 'drop') {
        stats.garbage++;
        return;
      }
      stats.requests++;
      if (answer.classic) stats.classic++;
      if (answer.error) stats.errors++;
      if (answer.via.addr !== at.addr || answer.via.alt !== at.alt) stats.changed++;
      sockets[answer.via.addr]![answer.via.alt]!.send(answer.data, rinfo.port, rinfo.address, (err) => {
        if (err) stats.sendErrors++;
      });
    } catch {
      stats.garbage++;
    }
  };

  try {
    for (let i = 0; i < addrs.length; i++) {
      const a = addrs[i]!;
      const ports = paired ? [a.port, opts.altPort ?? (a.port === 0 ? 0 : a.port + 1)] : [a.port];
      sockets[i] = [];
      layout.sockets[i] = [];
      for (let k = 0; k < ports.length; k++) {
        const port = ports[k] === 0 && i > 0 ? layout.sockets[0]![k]!.port : ports[k]!;
        const sock = await bindUdp(a.ip, port);
        sock.on('error', (err) => {
          if (socketErrors++ === 0) opts.log('warn', `STUN socket error (later ones only counted): ${err.message}`);
        });
        const at = { addr: i, alt: k };
        sock.on('message', (msg, rinfo) => onMessage(at, msg, rinfo));
        sockets[i]!.push(sock);
        layout.sockets[i]!.push({ ip: a.ip, port: sock.address().port });
      }
    }
  } catch (err) {
    await Promise.all(sockets.flat().map(closeUdp));
    throw err;
  }

  const listening = layout.sockets.map(([primary, alternate]) => (alternate ? { primary: primary!, alternate } : { primary: primary! }));
  opts.log('info', `STUN listening on ${listening.map((l) => [l.primary, l.alternate].filter((x) => x).map((x) => fmt(x!)).join(' + ')).join(', ')}${paired ? ' (RFC 5780)' : ''}`);
  let closing: Promise<void> | undefined;
  return {
    stats,
    listening,
    rfc5780: paired,
    close: () => (closing ??= Promise.all(sockets.flat().map(closeUdp)).then(() => undefined)),
  };
}

function bindUdp(ip: string, port: number): Promise<Socket> {
  const six = isIP(ip) === 6;
  const sock = createSocket({ type: six ? 'udp6' : 'udp4', ipv6Only: six });
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      sock.close();
      reject(new Error(`cannot listen for STUN on ${fmt({ ip, port })}: ${err.message}`, { cause: err }));
    };
    sock.once('error', onError);
    sock.bind({ address: ip, port, exclusive: true }, () => {
      sock.off('error', onError);
      resolve(sock);
    });
  });
}

function closeUdp(sock: Socket): Promise<void> {
  return new Promise((resolve) => {
    try {
      sock.close(() => resolve());
    } catch {
      resolve(); // already closed
    }
  });
}

function fmt(a: StunAddress): string {
  return a.ip.includes(':') ? `[${a.ip}]:${a.port}` : `${a.ip}:${a.port}`;
}
