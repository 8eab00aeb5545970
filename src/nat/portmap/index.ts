/**
 * Port mapping (src/nat/portmap): asking the home router for a public UDP
 * port that forwards to warrend's data socket, with PCP (RFC 6887), NAT-PMP
 * (RFC 6886) or UPnP-IGD, probed at once; the granted endpoint becomes one
 * more candidate in Traversal.endpoints().
 *
 *   gateway.ts          default gateway from /proc/net/route, our address toward it
 *   gateway-socket.ts   UDP request/response with the gateway (retransmit, deadline, source check)
 *   pcp-client.ts       PCP driver (ANNOUNCE, MAP, nonces, epoch)
 *   natpmp-client.ts    NAT-PMP driver (external address, map, epoch)
 *   upnp.ts, igd.ts     UPnP-IGD driver: SSDP, description, SOAP (igd.ts is the pure part)
 *   xml.ts              a bounded XML reader for IGD descriptions and SOAP answers
 *   epoch.ts            "the gateway lost its state" from PCP/NAT-PMP epoch times
 *   memory.ts           the granted port and PCP nonce, kept in the state directory
 *   mapper.ts           PortMapper: probe, create, renew, check, delete
 * The NAT-PMP and PCP codecs are in src/wire (natpmp.ts, pcp.ts).
 *
 * Why not the `nat-upnp` npm package (which DESIGN.md first named): its
 * dependency tree is `request` (deprecated, with a published SSRF advisory),
 * `xml2js` 0.1 (a prototype-pollution advisory, fixed only in 0.5) and `ip`
 * 1.x (SSRF advisories on its address checks); it fetches the description
 * from whatever LOCATION any SSDP responder names, so a device on the LAN
 * could point the agent anywhere; and it has no PCP. Maintained
 * alternatives (e.g. @achingbrain/nat-port-mapper) also bring a general XML
 * parser and a logger stack and no PCP. What IGD needs is four SOAP actions
 * and two small documents, so Warren speaks it itself on node:http with a
 * ~150-line XML reader that refuses DOCTYPE/entities and bounds every size
 * and time — and only ever talks to the default gateway's own address.
 *
 * @example
 *   const m = new PortMapper({ internalPort: 41641, memoryFile: '/var/lib/warren/portmap.json', log });
 *   m.onChange = () => console.log('mapped', m.mappedEndpoint());
 *   m.start();
 *   // …
 *   await m.stop({ deleteMapping: true });
 */
export * from './mapper.js';
export * from './driver.js';
export * from './gateway.js';
export * from './epoch.js';
export * from './igd.js';
export * from './xml.js';
export * from './memory.js';
export { GatewaySocket, type ExchangeTiming, type SocketDrop } from './gateway-socket.js';
export { PcpClient } from './pcp-client.js';
export { NatPmpClient } from './natpmp-client.js';
export { UpnpClient, httpText, UPNP_MAX_BODY, type UpnpNet } from './upnp.js';
