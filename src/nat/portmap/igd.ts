/**
 * UPnP-IGD messages, pure: the SSDP search and its answer, the device
 * description (which WAN connection service, at which control URL), and the
 * SOAP envelopes of the four actions a port mapper uses
 * (GetExternalIPAddress, AddPortMapping, DeletePortMapping,
 * GetSpecificPortMappingEntry) with their answers and UPnP errors.
 *
 * The rule that keeps a LAN device from steering the agent: every URL
 * (description, control) must be plain http to the gateway's own IPv4
 * address — gatewayUrl() returns null for anything else, names included
 * (a name could resolve anywhere).
 */
import { childNamed, childText, descendantsNamed, parseXml, type XmlElement } from './xml.js';

export const SSDP_GROUP = '239.255.255.250';
export const SSDP_PORT = 1900;
/** SSDP answers are small; anything longer is not one. */
export const SSDP_MAX_BYTES = 2048;

export const IGD_DEVICE_TYPES = [
  'urn:schemas-upnp-org:device:InternetGatewayDevice:2',
  'urn:schemas-upnp-org:device:InternetGatewayDevice:1',
] as const;

/** WAN connection services, most capable first. */
export const WAN_SERVICE_TYPES = [
  'urn:schemas-upnp-org:service:WANIPConnection:2',
  'urn:schemas-upnp-org:service:WANIPConnection:1',
  'urn:schemas-upnp-org:service:WANPPPConnection:1',
] as const;

/** UPnP error codes a mapper acts on (UPnP IGD WANIPConnection:2 §2.4.16). */
export const UpnpErrorCode = {
  INVALID_ARGS: 402,
  ACTION_FAILED: 501,
  NO_SUCH_ENTRY: 714,
  CONFLICT: 718,
  ONLY_PERMANENT_LEASES: 725,
} as const;

export function encodeMSearch(st: string, mx = 1): Uint8Array {
  return Buffer.from(`M-SEARCH * HTTP/1.1\r\nHOST: ${SSDP_GROUP}:${SSDP_PORT}\r\nMAN: "ssdp:discover"\r\nMX: ${mx}\r\nST: ${st}\r\n\r\n`, 'latin1');
}

export interface SsdpResponse {
  location: string;
  st: string | null;
  server: string | null;
}

/** A search answer ("HTTP/1.1 200 OK" + headers with a LOCATION); null for anything else. */
export function parseSsdpResponse(b: Uint8Array): SsdpResponse | null {
  if (b.length > SSDP_MAX_BYTES) return null;
  const text = Buffer.from(b).toString('latin1');
  const lines = text.split(/\r?\n/);
  if (!/^HTTP\/1\.[01] 200\b/.test(lines[0] ?? '')) return null;
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    if (line === '') break;
    const c = line.indexOf(':');
    if (c <= 0) continue;
    headers.set(line.slice(0, c).trim().toLowerCase(), line.slice(c + 1).trim());
  }
  const location = headers.get('location');
  if (!location || location.length > 512) return null;
  return { location, st: headers.get('st') ?? null, server: headers.get('server') ?? null };
}

/** `raw` resolved against `base`, if it is http://<gateway>[:port]/… and nothing else. */
export function gatewayUrl(raw: string, base: string | undefined, gateway: string): URL | null {
  let u: URL;
  try {
    u = base === undefined ? new URL(raw) : new URL(raw, base);
  } catch {
    return null;
  }
  if (u.protocol !== 'http:' || u.hostname !== gateway || u.username || u.password) return null;
  return u;
}

export interface IgdService {
  serviceType: string;
  controlUrl: string;
}

/**
 * The WAN connection services of a device description, best first, keeping
 * only those whose control URL is on the gateway itself.
 */
export function parseDescription(xml: string, location: string, gateway: string): IgdService[] {
  const root = parseXml(xml);
  if (!root || root.name !== 'root') return [];
  const urlBase = childText(root, 'URLBase');
  const base = urlBase && gatewayUrl(urlBase, undefined, gateway) ? urlBase : location;
  const found: IgdService[] = [];
  for (const svc of descendantsNamed(root, 'service')) {
    const type = childText(svc, 'serviceType');
    if (!(WAN_SERVICE_TYPES as readonly string[]).includes(type)) continue;
    const url = gatewayUrl(childText(svc, 'controlURL'), base, gateway);
    if (url) found.push({ serviceType: type, controlUrl: url.href });
  }
  const rank = (t: string): number => (WAN_SERVICE_TYPES as readonly string[]).indexOf(t);
  return found.sort((a, b) => rank(a.serviceType) - rank(b.serviceType));
}

const escapeXml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function soapRequest(serviceType: string, action: string, args: Array<[string, string | number]>): { body: string; soapAction: string } {
  const inner = args.map(([k, v]) => `<${k}>${escapeXml(String(v))}</${k}>`).join('');
  const body = '<?xml version="1.0"?>\r\n'
    + '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">'
    + `<s:Body><u:${action} xmlns:u="${escapeXml(serviceType)}">${inner}</u:${action}></s:Body></s:Envelope>\r\n`;
  return { body, soapAction: `"${serviceType}#${action}"` };
}

export type SoapResult =
  | { ok: true; values: Record<string, string> }
  | { ok: false; errorCode: number | null; description: string };

function body(root: XmlElement): XmlElement | null {
  return root.name === 'Envelope' ? childNamed(root, 'Body') ?? null : null;
}

/** The answer to `action` (its out-arguments) or the UPnP error in a SOAP fault; null if neither. */
export function parseSoapResponse(xml: string, action: string): SoapResult | null {
  const root = parseXml(xml);
  const b = root && body(root);
  if (!b) return null;
  const resp = childNamed(b, `${action}Response`);
  if (resp) {
    // fromEntries defines own properties: a "__proto__" element cannot reach the prototype.
    return { ok: true, values: Object.fromEntries(resp.children.map((c) => [c.name, c.text.trim()])) };
  }
  const fault = childNamed(b, 'Fault');
  if (!fault) return null;
  const err = descendantsNamed(fault, 'UPnPError')[0];
  const codeText = err ? childText(err, 'errorCode') : '';
  const code = /^\d{1,4}$/.test(codeText) ? Number(codeText) : null;
  const description = (err ? childText(err, 'errorDescription') : '') || childText(fault, 'faultstring') || 'SOAP fault';
  return { ok: false, errorCode: code, description: description.slice(0, 200) };
}
