/**
 * The UPnP-IGD driver: an SSDP search (multicast to 239.255.255.250:1900 and
 * unicast to the gateway), the device description, and SOAP calls to the
 * WAN connection service — on node:http, with the small XML reader in
 * xml.ts. (Why not the `nat-upnp` package: see index.ts.)
 *
 * Only the gateway is believed: SSDP answers from any other address are
 * dropped, and the description and control URLs must be http to the
 * gateway's own address (igd.ts gatewayUrl) — a device on the LAN cannot
 * send the agent anywhere else. Every exchange is bounded: SSDP answers
 * 2 KiB, HTTP bodies 64 KiB and headers 8 KiB, each request by a deadline
 * that covers a slow trickle too; redirects are never followed.
 */
import { createSocket } from 'node:dgram';
import { request as httpRequest } from 'node:http';
import { randomInt } from 'node:crypto';
import { encodeMSearch, gatewayUrl, IGD_DEVICE_TYPES, parseDescription, parseSoapResponse, parseSsdpResponse, soapRequest, UpnpErrorCode, type IgdService, type SoapResult } from './igd.js';
import type { CheckResult, DriverContext, MapDriver, MapRequest, MapResult } from './driver.js';
import type { ExchangeTiming } from './gateway-socket.js';

export interface UpnpNet {
  ssdpPort: number;
  /** Multicast group for the search; null = unicast to the gateway only (tests on loopback). */
  ssdpGroup: string | null;
  /** Largest HTTP body accepted (bytes). */
  maxBodyBytes: number;
}

export const UPNP_MAX_BODY = 64 * 1024;
const MAX_HEADER_BYTES = 8 * 1024;
const DESCRIPTION = 'warren';
/** AddPortMapping attempts on a conflict (the suggested port, then random ones). */
const CONFLICT_TRIES = 3;

/** One HTTP exchange with a hard deadline and size bounds; null on any failure. */
export function httpText(url: URL, o: { method: 'GET' | 'POST'; headers?: Record<string, string>; body?: string; timeoutMs: number; maxBytes: number }): Promise<{ status: number; text: string } | null> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (v: { status: number; text: string } | null): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(v);
    };
    let req: ReturnType<typeof httpRequest>;
    try {
      req = httpRequest({
        host: url.hostname, port: url.port || 80, path: `${url.pathname}${url.search}`, method: o.method, agent: false,
        maxHeaderSize: MAX_HEADER_BYTES, headers: { ...o.headers, ...(o.body !== undefined ? { 'Content-Length': String(Buffer.byteLength(o.body)) } : {}) },
      }, (res) => {
        const declared = Number(res.headers['content-length']);
        if (Number.isFinite(declared) && declared > o.maxBytes) {
          req.destroy();
          return finish(null);
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > o.maxBytes) {
            req.destroy();
            return finish(null);
          }
          chunks.push(c);
        });
        res.on('end', () => finish({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', () => finish(null));
      });
    } catch {
      resolve(null);
      return;
    }
    const timer = setTimeout(() => {
      req.destroy();
      finish(null);
    }, o.timeoutMs);
    req.on('error', () => finish(null));
    req.end(o.body);
  });
}

export class UpnpClient implements MapDriver {
  readonly protocol = 'upnp' as const;
  service: IgdService | null = null;
  private permanentOnly = false;
  private externalIp: string | null = null;

  constructor(private readonly ctx: DriverContext, private readonly net: UpnpNet) {}

  /** SSDP: the first description URL the gateway itself announces (null if none in time). */
  search(): Promise<string | null> {
    const { env, timing } = this.ctx;
    return new Promise((resolve) => {
      const s = createSocket('udp4');
      let done = false;
      const finish = (v: string | null): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        try {
          s.close();
        } catch {
          // closed already
        }
        resolve(v);
      };
      const timer = setTimeout(() => finish(null), timing.timeoutMs);
      s.on('error', () => finish(null));
      s.on('message', (msg, rinfo) => {
        if (rinfo.address !== env.gateway) return this.ctx.count('ssdp_foreign');
        const r = parseSsdpResponse(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength));
        if (!r) return this.ctx.count('ssdp_bad');
        if (!gatewayUrl(r.location, undefined, env.gateway)) return this.ctx.count('upnp_foreign_url');
        finish(r.location);
      });
      s.bind(0, () => {
        try {
          if (this.net.ssdpGroup) {
            s.setMulticastInterface(env.local);
            s.setMulticastTTL(2);
          }
        } catch {
          // no multicast here: unicast still goes out
        }
        const targets = [...(this.net.ssdpGroup ? [this.net.ssdpGroup] : []), env.gateway];
        for (const st of IGD_DEVICE_TYPES) {
          for (const to of targets) s.send(encodeMSearch(st), this.net.ssdpPort, to, () => undefined);
        }
      });
    });
  }

  private async soap(svc: IgdService, action: string, args: Array<[string, string | number]>): Promise<SoapResult | null> {
    const url = gatewayUrl(svc.controlUrl, undefined, this.ctx.env.gateway);
    if (!url) return null;
    const { body, soapAction } = soapRequest(svc.serviceType, action, args);
    const r = await httpText(url, {
      method: 'POST', body, timeoutMs: this.ctx.timing.timeoutMs, maxBytes: this.net.maxBodyBytes,
      headers: { 'Content-Type': 'text/xml; charset="utf-8"', SOAPAction: soapAction },
    });
    if (!r) return null;
    const parsed = parseSoapResponse(r.text, action);
    if (!parsed) this.ctx.count('upnp_bad_xml');
    else if (parsed.ok && r.status !== 200) return null;
    return parsed;
  }

  private async getExternalIp(svc: IgdService): Promise<string | null> {
    const r = await this.soap(svc, 'GetExternalIPAddress', []);
    return r?.ok ? r.values['NewExternalIPAddress'] ?? null : null;
  }

  /** Find the gateway's WAN service; on failure the previous one (if any) is kept for later retries. */
  async probe(): Promise<boolean> {
    const location = await this.search();
    if (!location) return false;
    const url = gatewayUrl(location, undefined, this.ctx.env.gateway);
    const r = url && await httpText(url, { method: 'GET', timeoutMs: this.ctx.timing.timeoutMs, maxBytes: this.net.maxBodyBytes });
    if (!r || r.status !== 200) return false;
    const services = parseDescription(r.text, location, this.ctx.env.gateway);
    if (!services.length) {
      this.ctx.count('upnp_no_service');
      return false;
    }
    for (const svc of services) {
      const ip = await this.getExternalIp(svc);
      if (ip !== null) {
        this.service = svc;
        this.externalIp = ip;
        return true;
      }
    }
    return false;
  }

  private addArgs(r: MapRequest, port: number, lease: number): Array<[string, string | number]> {
    return [['NewRemoteHost', ''], ['NewExternalPort', port], ['NewProtocol', 'UDP'], ['NewInternalPort', r.internalPort],
      ['NewInternalClient', this.ctx.env.local], ['NewEnabled', 1], ['NewPortMappingDescription', DESCRIPTION], ['NewLeaseDuration', lease]];
  }

  /**
   * The service again, found afresh when its control URL stopped answering:
   * a restarted router (miniupnpd among them) often serves on a new HTTP port.
   */
  private async rediscover(): Promise<IgdService | null> {
    const old = this.service?.controlUrl;
    this.ctx.count('upnp_rediscover');
    if (!(await this.probe())) return null;
    return this.service && this.service.controlUrl !== old ? this.service : null;
  }

  async map(r: MapRequest): Promise<MapResult> {
    let svc = this.service;
    if (!svc) return { ok: false, error: 'no IGD service' };
    this.externalIp = await this.getExternalIp(svc);
    if (this.externalIp === null) {
      svc = await this.rediscover();
      if (!svc) return { ok: false, error: 'no answer to GetExternalIPAddress' };
    }
    let port = r.suggestedExternalPort || r.internalPort;
    let last = 'no answer';
    for (let attempt = 0; attempt < CONFLICT_TRIES + 1; attempt++) {
      const lease = this.permanentOnly ? 0 : r.lifetimeSec;
      const res = await this.soap(svc, 'AddPortMapping', this.addArgs(r, port, lease));
      if (!res) return { ok: false, error: last };
      if (res.ok) return { ok: true, grant: { externalIp: this.externalIp, externalPort: port, lifetimeSec: lease, gatewayReset: false } };
      last = `UPnP error ${res.errorCode ?? '?'} (${res.description})`;
      if (res.errorCode === UpnpErrorCode.ONLY_PERMANENT_LEASES && !this.permanentOnly) {
        this.permanentOnly = true;
        continue;
      }
      if (res.errorCode !== UpnpErrorCode.CONFLICT) break;
      port = randomInt(1024, 65536);
    }
    return { ok: false, error: last };
  }

  async check(r: MapRequest, externalPort: number): Promise<CheckResult> {
    const svc = this.service;
    if (!svc) return 'unknown';
    const res = await this.soap(svc, 'GetSpecificPortMappingEntry', [['NewRemoteHost', ''], ['NewExternalPort', externalPort], ['NewProtocol', 'UDP']]);
    if (!res) return (await this.rediscover()) ? 'lost' : 'unknown';
    if (!res.ok) return res.errorCode === UpnpErrorCode.NO_SUCH_ENTRY || res.errorCode === UpnpErrorCode.INVALID_ARGS ? 'lost' : 'unknown';
    const ours = Number(res.values['NewInternalPort']) === r.internalPort && res.values['NewInternalClient'] === this.ctx.env.local;
    if (!ours) return 'lost';
    // A new public address (the ISP renumbered the router): map again to learn it.
    const ip = await this.getExternalIp(svc);
    return ip !== null && ip !== this.externalIp ? 'lost' : 'ok';
  }

  async unmap(_r: MapRequest, externalPort: number, timing: ExchangeTiming): Promise<void> {
    const svc = this.service;
    if (!svc) return;
    const url = gatewayUrl(svc.controlUrl, undefined, this.ctx.env.gateway);
    if (!url) return;
    const { body, soapAction } = soapRequest(svc.serviceType, 'DeletePortMapping', [['NewRemoteHost', ''], ['NewExternalPort', externalPort], ['NewProtocol', 'UDP']]);
    await httpText(url, { method: 'POST', body, timeoutMs: timing.timeoutMs, maxBytes: this.net.maxBodyBytes, headers: { 'Content-Type': 'text/xml; charset="utf-8"', SOAPAction: soapAction } });
  }

  close(): void {
    this.service = null;
  }
}
