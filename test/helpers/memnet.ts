/**
 * An in-memory network for data-plane unit tests: devices attached at fixed
 * UDP endpoints exchange datagrams through a queue that the test drains, with a
 * shared FakeClock. Lets tests drop, capture and replay packets.
 */
import { Device, type DeviceConfig } from '../../src/dataplane/device.js';
import { FakeClock } from '../../src/dataplane/clock.js';
import { encodeEndpoint, formatEndpoint } from '../../src/dataplane/endpoint.js';
import { nodeTransportCrypto, type TransportCrypto } from '../../src/dataplane/transport-crypto.js';
import { TEST_TIMERS, PRODUCTION_TIMERS, type TimerProfile } from '../../src/dataplane/constants.js';
import { tai64n, compareTai64n } from '../../src/crypto/tai64n.js';
import type { TimestampSource } from '../../src/dataplane/handshake.js';

export interface Datagram {
  from: string;
  to: string;
  bytes: Uint8Array;
}

export class MemoryTimestamps implements TimestampSource {
  last: Uint8Array = new Uint8Array(12);
  constructor(private readonly clock: FakeClock) {}
  next(): Uint8Array {
    let t = tai64n(this.clock.wallNs());
    if (compareTai64n(t, this.last) <= 0) {
      t = new Uint8Array(this.last);
      for (let i = 11; i >= 0; i--) if (++t[i]! <= 255) break; else t[i] = 0;
    }
    this.last = t;
    return t;
  }
}

export class MemNode {
  readonly device: Device;
  readonly tunOut: Uint8Array[] = [];
  readonly addr: Uint8Array;
  constructor(readonly net: MemNet, readonly endpoint: string, crypto: TransportCrypto, timers: TimerProfile) {
    const [ip, port] = [endpoint.slice(0, endpoint.lastIndexOf(':')), Number(endpoint.slice(endpoint.lastIndexOf(':') + 1))];
    this.addr = encodeEndpoint(ip, port);
    this.device = new Device(
      {
        sendUdp: (buf, off, len, dst, dstOff) => net.queue.push({ from: endpoint, to: formatEndpoint(dst, dstOff), bytes: buf.slice(off, off + len) }),
        writeTun: (buf, off, len) => this.tunOut.push(buf.slice(off, off + len)),
      },
      crypto,
      { clock: net.clock, timestamps: new MemoryTimestamps(net.clock), timers },
    );
  }

  /** Send an IP packet into the device as if read from the TUN. */
  send(packet: Uint8Array): void {
    const buf = new Uint8Array(16 + packet.length + 64);
    buf.set(packet, 16);
    this.device.handleTun(buf, 16, packet.length, buf.length);
  }
}

export class MemNet {
  readonly clock = new FakeClock();
  readonly nodes = new Map<string, MemNode>();
  queue: Datagram[] = [];
  /** Every datagram delivered so far (for replay tests). */
  readonly log: Datagram[] = [];
  /** Return false to drop a datagram. */
  filter: (d: Datagram) => boolean = () => true;

  add(endpoint: string, crypto: TransportCrypto = nodeTransportCrypto, timers: TimerProfile = PRODUCTION_TIMERS): MemNode {
    const n = new MemNode(this, endpoint, crypto, timers);
    this.nodes.set(endpoint, n);
    return n;
  }

  deliverOne(d: Datagram, fromOverride?: string): void {
    const to = this.nodes.get(d.to);
    if (!to) return;
    const src = this.nodes.get(fromOverride ?? d.from)?.addr ?? encodeEndpoint(...splitEp(fromOverride ?? d.from));
    const buf = new Uint8Array(d.bytes.length + 64);
    buf.set(d.bytes);
    to.device.handleUdp(buf, 0, d.bytes.length, src, 0);
  }

  /** Deliver until the network is quiet (bounded). */
  run(maxSteps = 10_000): number {
    let n = 0;
    while (this.queue.length && n < maxSteps) {
      const d = this.queue.shift()!;
      n++;
      if (!this.filter(d)) continue;
      this.log.push(d);
      this.deliverOne(d);
    }
    return n;
  }

  /** Advance the clock in steps, ticking every device and delivering traffic. */
  advance(ms: number, step = 100): void {
    for (let t = 0; t < ms; t += step) {
      this.clock.advance(Math.min(step, ms - t));
      for (const n of this.nodes.values()) n.device.tick();
      this.run();
    }
  }
}

function splitEp(s: string): [string, number] {
  const i = s.lastIndexOf(':');
  return [s.slice(0, i).replace(/^\[|\]$/g, ''), Number(s.slice(i + 1))];
}

export { TEST_TIMERS, PRODUCTION_TIMERS };

/** A minimal IPv4/UDP packet from src to dst carrying payload (checksums zero: the device does not check them). */
export function ipv4Packet(src: string, dst: string, payload: Uint8Array): Uint8Array {
  const p = new Uint8Array(28 + payload.length);
  p[0] = 0x45;
  p[2] = p.length >> 8;
  p[3] = p.length & 0xff;
  p[8] = 64;
  p[9] = 17;
  p.set(src.split('.').map(Number), 12);
  p.set(dst.split('.').map(Number), 16);
  p[24] = (8 + payload.length) >> 8;
  p[25] = (8 + payload.length) & 0xff;
  p.set(payload, 28);
  return p;
}

export function configPair(aKey: Uint8Array, bKey: Uint8Array, aPub: Uint8Array, bPub: Uint8Array, opts: { psk?: Uint8Array } = {}): [DeviceConfig, DeviceConfig] {
  return [
    { privateKey: aKey, listenPort: 1, fwMark: 0, tun: 'a', peers: [{ publicKey: bPub, presharedKey: opts.psk ?? null, allowedIps: ['10.0.0.2/32'], endpoint: { ip: '192.0.2.2', port: 2 } }] },
    { privateKey: bKey, listenPort: 2, fwMark: 0, tun: 'b', peers: [{ publicKey: aPub, presharedKey: opts.psk ?? null, allowedIps: ['10.0.0.1/32'], endpoint: { ip: '192.0.2.1', port: 1 } }] },
  ];
}
