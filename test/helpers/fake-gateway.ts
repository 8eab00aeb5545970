/**
 * A behavioural fake home router for port-mapping tests: it really speaks
 * NAT-PMP and/or PCP on UDP (5351 by default) and/or UPnP-IGD (SSDP on 1900,
 * a device description and SOAP control over HTTP) — any subset, so a
 * gateway that offers only one protocol can be stood up — and keeps a table
 * of mappings with lifetimes and an epoch. It does not forward packets (the
 * real miniupnpd tests do that). Written from the RFCs and the IGD spec,
 * independently of src/ (it parses requests with its own byte offsets and
 * regular expressions), so a bug shared with the client would not hide.
 *
 * `misbehave` turns on hostile answers: garbage bytes, truncated answers, a
 * wrong PCP nonce, a private external address, a mapping for another
 * internal port, answers from another address (spoof), an SSDP LOCATION
 * that points off the gateway, a description that is an entity bomb.
 *
 * In process (unit tests, on loopback with ephemeral ports):
 *   const gw = await FakeGateway.start({ bind: '127.0.0.1', protocols: ['pcp'], externalIp: '11.1.0.2', udpPort: 0 });
 * In a lab namespace (as the router, real ports, joined to the SSDP group):
 *   node dist/test/helpers/fake-gateway.js --bind 192.168.1.1 --protocols upnp --external-ip 11.1.0.2 --multicast
 * which prints "fake gateway ready …" and one line per request it served.
 */
import { createSocket, type Socket } from 'node:dgram';
import { createServer, type Server, type IncomingMessage } from 'node:http';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

export type FakeProtocol = 'pcp' | 'natpmp' | 'upnp';
export type FakeMisbehaviour = 'garbage' | 'truncated' | 'wrong-nonce' | 'private-ip' | 'wrong-port' | 'spoof' | 'foreign-location' | 'bad-xml';

export interface FakeGatewayOptions {
  /** The LAN address it serves on. */
  bind: string;
  protocols: FakeProtocol[];
  /** The public address it hands out. */
  externalIp: string;
  /** NAT-PMP/PCP port (default 5351; 0 = ephemeral). */
  udpPort?: number;
  /** SSDP port (default 1900; 0 = ephemeral). */
  ssdpPort?: number;
  /** HTTP port for UPnP (default 0 = ephemeral). */
  httpPort?: number;
  /** Listen for SSDP on the multicast group too (lab). */
  multicast?: boolean;
  misbehave?: FakeMisbehaviour[];
  /** The other address used by 'spoof' and 'foreign-location' (must be local). */
  spoofFrom?: string;
  /** Print one line per request (CLI mode). */
  verbose?: boolean;
  /** Milliseconds clock for epochs and lifetimes (tests pass their fake clock). Default Date.now. */
  now?: () => number;
  /** How long the router has been up when the fake starts (its epoch), seconds. Default 3600. */
  uptimeSec?: number;
}

export interface FakeMapping {
  protocol: FakeProtocol;
  internalIp: string;
  internalPort: number;
  externalPort: number;
  lifetime: number;
  expiresAt: number;
  nonce?: string;
}

const SSDP_GROUP = '239.255.255.250';
const PRIVATE_IP = '10.0.0.1';
const IGD_SERVICE = 'urn:schemas-upnp-org:service:WANIPConnection:1';

function bindUdp(address: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createSocket({ type: 'udp4', reuseAddr: true });
    s.once('error', reject);
    s.bind(port, address, () => {
      s.off('error', reject);
      s.on('error', () => undefined);
      resolve(s);
    });
  });
}

function listen(server: Server, address: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => resolve((server.address() as { port: number }).port));
  });
}

const ipBytes = (ip: string): number[] => ip.split('.').map(Number);
const mapped = (ip: string): Buffer => Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...ipBytes(ip)]);

export class FakeGateway {
  udpPort = 0;
  ssdpPort = 0;
  httpPort = 0;
  foreignHttpPort = 0;
  readonly requests = { natpmp: 0, pcp: 0, ssdp: 0, http: 0, foreignHttp: 0 };
  private readonly table = new Map<string, FakeMapping>();
  private epochStart: number;
  private readonly now: () => number;
  private readonly sockets: Socket[] = [];
  private readonly servers: Server[] = [];
  private udp: Socket | null = null;
  private spoofUdp: Socket | null = null;
  private spoofSsdp: Socket | null = null;
  private readonly bad: Set<FakeMisbehaviour>;

  private constructor(private readonly o: FakeGatewayOptions) {
    this.bad = new Set(o.misbehave ?? []);
    this.now = o.now ?? Date.now;
    this.epochStart = this.now() - (o.uptimeSec ?? 3600) * 1000;
  }

  static async start(o: FakeGatewayOptions): Promise<FakeGateway> {
    const g = new FakeGateway(o);
    try {
      await g.open();
    } catch (e) {
      g.close();
      throw e;
    }
    return g;
  }

  private has(p: FakeProtocol): boolean {
    return this.o.protocols.includes(p);
  }

  private say(line: string): void {
    if (this.o.verbose) process.stdout.write(`${line}\n`);
  }

  private async open(): Promise<void> {
    const o = this.o;
    if (this.has('pcp') || this.has('natpmp')) {
      this.udp = await bindUdp(o.bind, o.udpPort ?? 5351);
      this.sockets.push(this.udp);
      this.udpPort = this.udp.address().port;
      this.udp.on('message', (m, r) => this.onUdp(m, r.address, r.port));
      if (this.bad.has('spoof') && o.spoofFrom) {
        this.spoofUdp = await bindUdp(o.spoofFrom, this.udpPort);
        this.sockets.push(this.spoofUdp);
      }
    }
    if (this.has('upnp')) {
      const http = createServer((req, res) => {
        void this.onHttp(req).then(({ status, body }) => {
          res.writeHead(status, { 'Content-Type': 'text/xml; charset="utf-8"', 'Content-Length': Buffer.byteLength(body) });
          res.end(body);
        });
      });
      this.servers.push(http);
      this.httpPort = await listen(http, o.bind, o.httpPort ?? 0);
      if (this.bad.has('foreign-location') && o.spoofFrom) {
        const foreign = createServer((req, res) => {
          this.requests.foreignHttp++;
          this.say(`foreign http ${req.method} ${req.url} from ${req.socket.remoteAddress}`);
          res.end(this.description());
        });
        this.servers.push(foreign);
        this.foreignHttpPort = await listen(foreign, o.spoofFrom, 0);
      }
      const ssdp = await bindUdp(o.multicast ? '0.0.0.0' : o.bind, o.ssdpPort ?? 1900);
      this.sockets.push(ssdp);
      this.ssdpPort = ssdp.address().port;
      if (o.multicast) ssdp.addMembership(SSDP_GROUP, o.bind);
      ssdp.on('message', (m, r) => this.onSsdp(ssdp, m, r.address, r.port));
      if (this.bad.has('spoof') && o.spoofFrom) {
        this.spoofSsdp = await bindUdp(o.spoofFrom, 0);
        this.sockets.push(this.spoofSsdp);
      }
    }
  }

  // ------------------------------------------------------------ state

  get epoch(): number {
    return Math.floor((this.now() - this.epochStart) / 1000);
  }

  /** The ISP renumbers the router: a new public address, mappings kept. */
  setExternalIp(ip: string): void {
    this.o.externalIp = ip;
  }

  /** A router reboot: every mapping forgotten, epoch from 0. */
  restart(): void {
    this.table.clear();
    this.epochStart = this.now();
  }

  mappings(): FakeMapping[] {
    this.purge();
    return [...this.table.values()];
  }

  private purge(): void {
    const now = this.now();
    for (const [k, m] of this.table) if (m.lifetime > 0 && m.expiresAt <= now) this.table.delete(k);
  }

  private freePort(want: number, key: string): number {
    const used = new Set([...this.table].filter(([k]) => k !== key).map(([, m]) => m.externalPort));
    for (let p = want || 1024; ; p = p >= 65535 ? 1024 : p + 1) if (!used.has(p)) return p;
  }

  private upsert(protocol: FakeProtocol, ip: string, port: number, suggested: number, lifetime: number, nonce?: string): FakeMapping {
    this.purge();
    const key = `${ip}:${port}`;
    const old = this.table.get(key);
    const externalPort = old?.externalPort ?? this.freePort(suggested || port, key);
    const m: FakeMapping = { protocol, internalIp: ip, internalPort: port, externalPort, lifetime, expiresAt: this.now() + lifetime * 1000, ...(nonce ? { nonce } : {}) };
    this.table.set(key, m);
    return m;
  }

  // ------------------------------------------------------------ NAT-PMP and PCP

  private reply(b: Buffer, ip: string, port: number): void {
    let out = b;
    if (this.bad.has('garbage')) out = randomBytes(1 + (b[0]! % 64));
    else if (this.bad.has('truncated')) out = b.subarray(0, Math.max(1, b.length >> 1));
    const via = this.bad.has('spoof') && this.spoofUdp ? this.spoofUdp : this.udp!;
    via.send(out, port, ip);
  }

  private onUdp(m: Buffer, ip: string, port: number): void {
    if (m.length < 2) return;
    const publicIp = this.bad.has('private-ip') ? PRIVATE_IP : this.o.externalIp;
    if (m[0] === 0) {
      this.requests.natpmp++;
      if (!this.has('natpmp')) {
        // A PCP-only server answers other versions with PCP UNSUPP_VERSION (RFC 6887 §9).
        if (this.has('pcp')) this.reply(this.pcpHeader(m[1]! & 0x7f, 1, 0), ip, port);
        return;
      }
      const op = m[1]!;
      const head = Buffer.alloc(8);
      head[1] = 128 + op;
      head.writeUInt32BE(this.epoch, 4);
      if (op === 0) {
        this.say(`natpmp address from ${ip}`);
        return this.reply(Buffer.concat([head, Buffer.from(ipBytes(publicIp))]), ip, port);
      }
      if ((op !== 1 && op !== 2) || m.length < 12) {
        head.writeUInt16BE(5, 2);
        return this.reply(head, ip, port);
      }
      const internal = m.readUInt16BE(4);
      const suggested = m.readUInt16BE(6);
      const lifetime = m.readUInt32BE(8);
      const body = Buffer.alloc(8);
      body.writeUInt16BE(internal + (this.bad.has('wrong-port') ? 1 : 0), 0);
      if (lifetime === 0) {
        this.table.delete(`${ip}:${internal}`);
        this.say(`natpmp delete ${ip}:${internal}`);
      } else {
        const x = this.upsert('natpmp', ip, internal, suggested, lifetime);
        body.writeUInt16BE(x.externalPort, 2);
        body.writeUInt32BE(lifetime, 4);
        this.say(`natpmp map ${publicIp}:${x.externalPort} -> ${ip}:${internal} ${lifetime}s`);
      }
      return this.reply(Buffer.concat([head, body]), ip, port);
    }
    if (m[0] === 2) {
      this.requests.pcp++;
      if (!this.has('pcp')) {
        // A NAT-PMP-only gateway: "unsupported version" in NAT-PMP format (RFC 6886 §3.5).
        if (this.has('natpmp')) {
          const b = Buffer.alloc(8);
          b[1] = 128 + (m[1]! & 0x7f);
          b.writeUInt16BE(1, 2);
          b.writeUInt32BE(this.epoch, 4);
          this.reply(b, ip, port);
        }
        return;
      }
      this.onPcp(m, ip, port, publicIp);
    }
  }

  private pcpHeader(opcode: number, result: number, lifetime: number): Buffer {
    const b = Buffer.alloc(24);
    b[0] = 2;
    b[1] = 0x80 | opcode;
    b[3] = result;
    b.writeUInt32BE(lifetime, 4);
    b.writeUInt32BE(this.epoch, 8);
    return b;
  }

  private onPcp(m: Buffer, ip: string, port: number, publicIp: string): void {
    const opcode = m[1]! & 0x7f;
    if (m.length < 24 || m.length % 4 !== 0) return this.reply(this.pcpHeader(opcode, 3, 0), ip, port);
    if (!m.subarray(8, 24).equals(mapped(ip))) return this.reply(this.pcpHeader(opcode, 12, 0), ip, port); // ADDRESS_MISMATCH
    if (opcode === 0) {
      this.say(`pcp announce from ${ip}`);
      return this.reply(this.pcpHeader(0, 0, 0), ip, port);
    }
    if (opcode !== 1 || m.length < 60) return this.reply(this.pcpHeader(opcode, 4, 0), ip, port);
    const lifetime = m.readUInt32BE(4);
    const nonce = Buffer.from(m.subarray(24, 36));
    const proto = m[36]!;
    const internal = m.readUInt16BE(40);
    const suggested = m.readUInt16BE(42);
    let externalPort = 0;
    let granted = lifetime;
    if (lifetime === 0) {
      const old = this.table.get(`${ip}:${internal}`);
      if (old?.nonce === nonce.toString('hex')) this.table.delete(`${ip}:${internal}`);
      this.say(`pcp delete ${ip}:${internal}`);
    } else {
      const x = this.upsert('pcp', ip, internal, suggested, lifetime, nonce.toString('hex'));
      externalPort = x.externalPort;
      granted = x.lifetime;
      this.say(`pcp map ${publicIp}:${externalPort} -> ${ip}:${internal} ${lifetime}s`);
    }
    if (this.bad.has('wrong-nonce')) nonce[0] ^= 0xff;
    const body = Buffer.alloc(36);
    nonce.copy(body, 0);
    body[12] = proto;
    body.writeUInt16BE(internal + (this.bad.has('wrong-port') ? 1 : 0), 16);
    body.writeUInt16BE(externalPort, 18);
    mapped(publicIp).copy(body, 20);
    this.reply(Buffer.concat([this.pcpHeader(1, 0, granted), body]), ip, port);
  }

  // ------------------------------------------------------------ UPnP

  private onSsdp(sock: Socket, m: Buffer, ip: string, port: number): void {
    const text = m.toString('latin1');
    if (!text.startsWith('M-SEARCH') || !/ST:\s*(urn:schemas-upnp-org:device:InternetGatewayDevice:\d|ssdp:all|upnp:rootdevice)/i.test(text)) return;
    this.requests.ssdp++;
    const host = this.bad.has('foreign-location') && this.o.spoofFrom ? `${this.o.spoofFrom}:${this.foreignHttpPort}` : `${this.o.bind}:${this.httpPort}`;
    const st = /ST:\s*(\S+)/i.exec(text)?.[1] ?? 'upnp:rootdevice';
    let answer = Buffer.from(`HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: ${st}\r\nUSN: uuid:fake::${st}\r\nEXT:\r\nSERVER: fake/1 UPnP/1.1 warren-test/1\r\nLOCATION: http://${host}/rootDesc.xml\r\n\r\n`);
    if (this.bad.has('garbage')) answer = randomBytes(64);
    (this.bad.has('spoof') && this.spoofSsdp ? this.spoofSsdp : sock).send(answer, port, ip);
  }

  private description(): string {
    if (this.bad.has('bad-xml')) {
      return '<?xml version="1.0"?><!DOCTYPE root [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>'
        + `<root><device><serviceList><service><serviceType>${IGD_SERVICE}</serviceType><controlURL>/ctl/&c;</controlURL></service></serviceList></device></root>`;
    }
    if (this.bad.has('garbage')) return randomBytes(200).toString('latin1');
    return `<?xml version="1.0"?>\r\n<root xmlns="urn:schemas-upnp-org:device-1-0"><specVersion><major>1</major><minor>0</minor></specVersion>
<device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType><friendlyName>fake gateway</friendlyName>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType><deviceList><device>
<deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType><serviceList><service>
<serviceType>${IGD_SERVICE}</serviceType><serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>
<controlURL>/ctl/IPConn</controlURL><eventSubURL>/evt/IPConn</eventSubURL><SCPDURL>/WANIPCn.xml</SCPDURL>
</service></serviceList></device></deviceList></device></deviceList></device></root>\r\n`;
  }

  private async onHttp(req: IncomingMessage): Promise<{ status: number; body: string }> {
    this.requests.http++;
    const from = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    this.say(`http ${req.method} ${req.url} from ${from}`);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    if (req.method === 'GET' && req.url === '/rootDesc.xml') return { status: 200, body: this.description() };
    if (req.method !== 'POST' || req.url !== '/ctl/IPConn') return { status: 404, body: '' };
    const action = /#(\w+)"?$/.exec(String(req.headers['soapaction'] ?? ''))?.[1] ?? '';
    const arg = (name: string): string => new RegExp(`<${name}>([^<]*)</${name}>`).exec(body)?.[1] ?? '';
    const ok = (inner = ''): { status: number; body: string } => ({ status: 200, body: envelope(`<u:${action}Response xmlns:u="${IGD_SERVICE}">${inner}</u:${action}Response>`) });
    const fail = (code: number, text: string): { status: number; body: string } => ({
      status: 500,
      body: envelope(`<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>${code}</errorCode><errorDescription>${text}</errorDescription></UPnPError></detail></s:Fault>`),
    });
    if (this.bad.has('garbage')) return { status: 200, body: randomBytes(100).toString('latin1') };
    this.purge();
    const ext = Number(arg('NewExternalPort'));
    const entry = [...this.table.values()].find((m) => m.protocol === 'upnp' && m.externalPort === ext);
    switch (action) {
      case 'GetExternalIPAddress':
        return ok(`<NewExternalIPAddress>${this.bad.has('private-ip') ? PRIVATE_IP : this.o.externalIp}</NewExternalIPAddress>`);
      case 'AddPortMapping': {
        const client = arg('NewInternalClient');
        const internal = Number(arg('NewInternalPort'));
        if (client !== from) return fail(606, 'Action not authorized');
        if (!(ext >= 1 && ext <= 65535)) return fail(716, 'WildCardNotPermittedInExtPort');
        const taken = [...this.table.values()].find((m) => m.externalPort === ext && `${m.internalIp}:${m.internalPort}` !== `${client}:${internal}`);
        if (taken) return fail(718, 'ConflictInMappingEntry');
        const lease = Number(arg('NewLeaseDuration'));
        const key = `${client}:${internal}`;
        this.table.set(key, { protocol: 'upnp', internalIp: client, internalPort: internal, externalPort: ext, lifetime: lease, expiresAt: this.now() + lease * 1000 });
        this.say(`upnp map ${this.o.externalIp}:${ext} -> ${key} ${lease}s`);
        return ok();
      }
      case 'DeletePortMapping':
        if (!entry) return fail(714, 'NoSuchEntryInArray');
        this.table.delete(`${entry.internalIp}:${entry.internalPort}`);
        this.say(`upnp delete ${ext}`);
        return ok();
      case 'GetSpecificPortMappingEntry':
        if (!entry) return fail(714, 'NoSuchEntryInArray');
        return ok(`<NewInternalPort>${entry.internalPort + (this.bad.has('wrong-port') ? 1 : 0)}</NewInternalPort><NewInternalClient>${entry.internalIp}</NewInternalClient>`
          + `<NewEnabled>1</NewEnabled><NewPortMappingDescription>x</NewPortMappingDescription><NewLeaseDuration>${entry.lifetime}</NewLeaseDuration>`);
      default:
        return fail(401, 'Invalid Action');
    }
  }

  close(): void {
    for (const s of this.sockets) {
      try {
        s.close();
      } catch {
        // closed
      }
    }
    for (const s of this.servers) s.close();
  }
}

function envelope(inner: string): string {
  return `<?xml version="1.0"?>\r\n<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>${inner}</s:Body></s:Envelope>\r\n`;
}

// ------------------------------------------------------------ CLI (lab namespaces)

async function main(argv: string[]): Promise<void> {
  const arg = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const list = (v: string | undefined): string[] => (v ? v.split(',').filter(Boolean) : []);
  const bind = arg('bind');
  const externalIp = arg('external-ip');
  if (!bind || !externalIp) throw new Error('usage: fake-gateway --bind IP --external-ip IP --protocols pcp,natpmp,upnp [--misbehave a,b] [--spoof-from IP] [--multicast]');
  const spoofFrom = arg('spoof-from');
  const g = await FakeGateway.start({
    bind, externalIp, protocols: list(arg('protocols')) as FakeProtocol[], misbehave: list(arg('misbehave')) as FakeMisbehaviour[],
    multicast: argv.includes('--multicast'), verbose: true, ...(spoofFrom ? { spoofFrom } : {}),
  });
  process.stdout.write(`fake gateway ready udp=${g.udpPort} ssdp=${g.ssdpPort} http=${g.httpPort}\n`);
  const stop = (): void => {
    g.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGUSR1', () => {
    g.restart();
    process.stdout.write('fake gateway restarted\n');
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((e: Error) => {
    process.stderr.write(`${e.message}\n`);
    process.exit(1);
  });
}
