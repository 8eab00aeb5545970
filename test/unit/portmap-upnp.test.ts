/**
 * The pure UPnP-IGD parts: the bounded XML reader (what it accepts, what it
 * refuses — DOCTYPE, entities, depth, size — and garbage), SSDP answers,
 * device descriptions (only WAN services whose control URL is on the
 * gateway itself), SOAP envelopes and answers, UPnP faults.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseXml, descendantsNamed, childText, XML_LIMITS } from '../../src/nat/portmap/xml.js';
import {
  encodeMSearch, gatewayUrl, parseDescription, parseSoapResponse, parseSsdpResponse, soapRequest, SSDP_MAX_BYTES,
} from '../../src/nat/portmap/igd.js';
import { rng } from '../helpers/rng.js';
import { createServer } from 'node:http';
import { httpText, UPNP_MAX_BODY } from '../../src/nat/portmap/upnp.js';

const GW = '192.168.1.1';
const LOCATION = `http://${GW}:5000/rootDesc.xml`;

// ------------------------------------------------------------------ xml

test('xml: elements, prefixes dropped, text with entities and CDATA, comments, PIs', () => {
  const x = parseXml('<?xml version="1.0"?>\n<!-- hi --><s:a xmlns:s="urn:x" b=\'1\'><s:b>x &amp; y &lt;z&gt; &#65;&#x42;</s:b><c/><d><![CDATA[<raw>]]></d></s:a>\n');
  assert.ok(x);
  assert.equal(x.name, 'a');
  assert.deepEqual(x.children.map((c) => c.name), ['b', 'c', 'd']);
  assert.equal(childText(x, 'b'), 'x & y <z> AB');
  assert.equal(childText(x, 'd'), '<raw>');
});

test('xml: DOCTYPE and entity declarations are refused (no expansion, nothing fetched)', () => {
  const bomb = '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><root>&lol2;</root>';
  assert.equal(parseXml(bomb), null);
  assert.equal(parseXml('<!DOCTYPE root SYSTEM "http://evil/"><root/>'), null);
  assert.equal(parseXml('<root>&xxe;</root>'), null, 'undeclared entity');
  assert.equal(parseXml('<root>a & b</root>'), null, 'bare ampersand');
  assert.equal(parseXml('<root>&#0;</root>'), null, 'NUL reference');
  assert.equal(parseXml('<root>&#xD800;</root>'), null, 'surrogate reference');
});

test('xml: malformed documents are null', () => {
  for (const bad of ['', 'text', '<a>', '<a></b>', '<a><b></a></b>', '<a/><b/>', '<a x=1/>', '<a x="1></a>', '<a>text</a>tail',
    '<1a/>', '<a><!-- open </a>', '<a><![CDATA[ open</a>', '<?xml open', '</a>', '<a></a></a>']) {
    assert.equal(parseXml(bad), null, JSON.stringify(bad));
  }
});

test('xml: size, depth and element-count bounds', () => {
  assert.equal(parseXml(`<a>${'x'.repeat(XML_LIMITS.maxChars)}</a>`), null, 'too long');
  const deep = (n: number): string => '<a>'.repeat(n) + '</a>'.repeat(n);
  assert.ok(parseXml(deep(XML_LIMITS.maxDepth)));
  assert.equal(parseXml(deep(XML_LIMITS.maxDepth + 1)), null, 'too deep');
  assert.ok(parseXml(`<r>${'<e/>'.repeat(XML_LIMITS.maxElements - 1)}</r>`));
  assert.equal(parseXml(`<r>${'<e/>'.repeat(XML_LIMITS.maxElements)}</r>`), null, 'too many elements');
});

test('xml: random and mutated input never throws', () => {
  const r = rng(1900);
  const alphabet = '<>/="\'&;#x!?[]-: abcAB01\n';
  const doc = DESCRIPTION;
  for (let i = 0; i < 5000; i++) {
    let s = '';
    const n = Math.floor(r() * 120);
    for (let j = 0; j < n; j++) s += alphabet[Math.floor(r() * alphabet.length)];
    parseXml(s);
    const at = Math.floor(r() * doc.length);
    const m = doc.slice(0, at) + alphabet[Math.floor(r() * alphabet.length)] + doc.slice(at + 1);
    parseXml(m);
    parseDescription(m, LOCATION, GW);
    parseXml(doc.slice(0, at));
  }
});

// ------------------------------------------------------------------ ssdp

test('ssdp: M-SEARCH names the group, discover, MX and the search target', () => {
  const t = Buffer.from(encodeMSearch('urn:schemas-upnp-org:device:InternetGatewayDevice:1')).toString();
  assert.equal(t, 'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\nMX: 1\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\r\n');
});

test('ssdp: an answer gives LOCATION (headers case-insensitive); anything else is null', () => {
  const ok = Buffer.from(`HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nUSN: uuid:x\r\nEXT:\r\nSERVER: Debian/12 UPnP/1.1 MiniUPnPd/2.3.1\r\nlocation: ${LOCATION}\r\n\r\n`);
  assert.deepEqual(parseSsdpResponse(ok), { location: LOCATION, st: 'urn:schemas-upnp-org:device:InternetGatewayDevice:1', server: 'Debian/12 UPnP/1.1 MiniUPnPd/2.3.1' });
  assert.equal(parseSsdpResponse(Buffer.from('HTTP/1.1 404 Not Found\r\nLOCATION: x\r\n\r\n')), null);
  assert.equal(parseSsdpResponse(Buffer.from('NOTIFY * HTTP/1.1\r\nLOCATION: x\r\n\r\n')), null);
  assert.equal(parseSsdpResponse(Buffer.from('HTTP/1.1 200 OK\r\nST: x\r\n\r\n')), null, 'no location');
  assert.equal(parseSsdpResponse(Buffer.from(`HTTP/1.1 200 OK\r\nLOCATION: http://${GW}/${'a'.repeat(600)}\r\n\r\n`)), null, 'huge location');
  assert.equal(parseSsdpResponse(new Uint8Array(SSDP_MAX_BYTES + 1)), null, 'oversized');
  const r = rng(1901);
  for (let i = 0; i < 3000; i++) {
    const b = new Uint8Array(Math.floor(r() * 300)).map(() => Math.floor(r() * 256));
    parseSsdpResponse(b);
  }
});

// ------------------------------------------------------------------ urls, descriptions

test('gatewayUrl: http to the gateway\'s own address only', () => {
  assert.equal(gatewayUrl('/ctl/IPConn', LOCATION, GW)?.href, `http://${GW}:5000/ctl/IPConn`);
  assert.equal(gatewayUrl(`http://${GW}:1234/x`, undefined, GW)?.port, '1234');
  for (const bad of ['http://192.168.1.77:5000/x', 'https://192.168.1.1/x', 'http://router.lan/x', 'http://user:pw@192.168.1.1/x',
    'file:///etc/passwd', '//10.0.0.1/x', 'http://192.168.1.1.evil.com/x', 'http://[::1]/x', 'http://3232235857/x']) {
    assert.equal(gatewayUrl(bad, LOCATION, GW), null, bad);
  }
  assert.equal(gatewayUrl('not a url', undefined, GW), null, 'relative without a base');
  // WHATWG URL parsing normalises numeric hosts: this one is the gateway itself.
  assert.equal(gatewayUrl('http://0xc0a80101/x', undefined, GW)?.hostname, GW);
});

const DESCRIPTION = `<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0" configId="1337">
<specVersion><major>1</major><minor>1</minor></specVersion>
<device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:2</deviceType><friendlyName>Lab router</friendlyName>
<serviceList><service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType><controlURL>/ctl/L3F</controlURL></service></serviceList>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:2</deviceType>
<serviceList><service><serviceType>urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1</serviceType><controlURL>/ctl/CmnIfCfg</controlURL></service></serviceList>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:2</deviceType>
<serviceList>
<service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType><serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId><controlURL>/ctl/IPConn1</controlURL><eventSubURL>/evt/IPConn</eventSubURL><SCPDURL>/WANIPCn.xml</SCPDURL></service>
<service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:2</serviceType><controlURL>/ctl/IPConn</controlURL></service>
<service><serviceType>urn:schemas-upnp-org:service:WANIPv6FirewallControl:1</serviceType><controlURL>/ctl/IP6FCtl</controlURL></service>
</serviceList></device></deviceList></device></deviceList>
<presentationURL>http://192.168.1.1/</presentationURL></device></root>`;

test('description: WAN connection services best first, control URLs resolved against the location', () => {
  assert.deepEqual(parseDescription(DESCRIPTION, LOCATION, GW), [
    { serviceType: 'urn:schemas-upnp-org:service:WANIPConnection:2', controlUrl: `http://${GW}:5000/ctl/IPConn` },
    { serviceType: 'urn:schemas-upnp-org:service:WANIPConnection:1', controlUrl: `http://${GW}:5000/ctl/IPConn1` },
  ]);
});

/** What Debian's miniupnpd 2.3.1 serves at /rootDesc.xml (captured in the NAT lab). */
const MINIUPNPD_DESCRIPTION = `<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0" configId="1337"><specVersion><major>1</major><minor>1</minor></specVersion><device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:2</deviceType><friendlyName>Debian router</friendlyName><manufacturer>Debian</manufacturer><manufacturerURL>http://www.debian.org/</manufacturerURL><modelDescription>Debian router</modelDescription><modelName>Debian router</modelName><modelNumber>1</modelNumber><modelURL>http://www.debian.org/</modelURL><serialNumber>00000000</serialNumber><UDN>uuid:060ec10d-0128-4157-ba3f-ff0939dac3c3</UDN><serviceList><service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType><serviceId>urn:upnp-org:serviceId:L3Forwarding1</serviceId><SCPDURL>/L3F.xml</SCPDURL><controlURL>/ctl/L3F</controlURL><eventSubURL>/evt/L3F</eventSubURL></service><service><serviceType>urn:schemas-upnp-org:service:DeviceProtection:1</serviceType><serviceId>urn:upnp-org:serviceId:DeviceProtection1</serviceId><SCPDURL>/DP.xml</SCPDURL><controlURL>/ctl/DP</controlURL><eventSubURL>/evt/DP</eventSubURL></service></serviceList><deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:2</deviceType><friendlyName>WANDevice</friendlyName><manufacturer>MiniUPnP</manufacturer><manufacturerURL>http://miniupnp.free.fr/</manufacturerURL><modelDescription>WAN Device</modelDescription><modelName>WAN Device</modelName><modelNumber>20221221</modelNumber><modelURL>http://miniupnp.free.fr/</modelURL><serialNumber>00000000</serialNumber><UDN>uuid:060ec10d-0128-4157-ba3f-ff0939dac3c4</UDN><UPC>000000000000</UPC><serviceList><service><serviceType>urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1</serviceType><serviceId>urn:upnp-org:serviceId:WANCommonIFC1</serviceId><SCPDURL>/WANCfg.xml</SCPDURL><controlURL>/ctl/CmnIfCfg</controlURL><eventSubURL>/evt/CmnIfCfg</eventSubURL></service></serviceList><deviceList><device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:2</deviceType><friendlyName>WANConnectionDevice</friendlyName><manufacturer>MiniUPnP</manufacturer><manufacturerURL>http://miniupnp.free.fr/</manufacturerURL><modelDescription>MiniUPnP daemon</modelDescription><modelName>MiniUPnPd</modelName><modelNumber>20221221</modelNumber><modelURL>http://miniupnp.free.fr/</modelURL><serialNumber>00000000</serialNumber><UDN>uuid:060ec10d-0128-4157-ba3f-ff0939dac3c5</UDN><UPC>000000000000</UPC><serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:2</serviceType><serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId><SCPDURL>/WANIPCn.xml</SCPDURL><controlURL>/ctl/IPConn</controlURL><eventSubURL>/evt/IPConn</eventSubURL></service><service><serviceType>urn:schemas-upnp-org:service:WANIPv6FirewallControl:1</serviceType><serviceId>urn:upnp-org:serviceId:WANIPv6Firewall1</serviceId><SCPDURL>/WANIP6FC.xml</SCPDURL><controlURL>/ctl/IP6FCtl</controlURL><eventSubURL>/evt/IP6FCtl</eventSubURL></service></serviceList></device></deviceList></device></deviceList><presentationURL>http://192.168.1.1/</presentationURL></device></root>
`;

test('description: the one miniupnpd 2.3.1 serves (IGD 2, WANIPConnection:2)', () => {
  assert.deepEqual(parseDescription(MINIUPNPD_DESCRIPTION, 'http://192.168.1.1:33437/rootDesc.xml', GW), [
    { serviceType: 'urn:schemas-upnp-org:service:WANIPConnection:2', controlUrl: 'http://192.168.1.1:33437/ctl/IPConn' },
  ]);
});

test('description: a control URL off the gateway is dropped; a foreign URLBase is not used', () => {
  const steer = DESCRIPTION.replace('<controlURL>/ctl/IPConn</controlURL>', '<controlURL>http://10.9.9.9/ctl/IPConn</controlURL>');
  assert.deepEqual(parseDescription(steer, LOCATION, GW).map((s) => s.controlUrl), [`http://${GW}:5000/ctl/IPConn1`]);
  const base = DESCRIPTION.replace('<specVersion>', '<URLBase>http://10.9.9.9:80/</URLBase><specVersion>');
  assert.ok(parseDescription(base, LOCATION, GW).every((s) => s.controlUrl.startsWith(`http://${GW}:5000/`)));
  const ownBase = DESCRIPTION.replace('<specVersion>', `<URLBase>http://${GW}:6000/</URLBase><specVersion>`);
  assert.ok(parseDescription(ownBase, LOCATION, GW).every((s) => s.controlUrl.startsWith(`http://${GW}:6000/`)));
});

test('description: garbage, another root, no WAN service, DOCTYPE: no services', () => {
  assert.deepEqual(parseDescription('garbage', LOCATION, GW), []);
  assert.deepEqual(parseDescription('<html><body>hi</body></html>', LOCATION, GW), []);
  assert.deepEqual(parseDescription(DESCRIPTION.replace(/WANIPConnection/g, 'WANIPConnectionX'), LOCATION, GW), []);
  assert.deepEqual(parseDescription('<!DOCTYPE r [<!ENTITY e "x">]>' + DESCRIPTION.replace('<?xml version="1.0"?>', ''), LOCATION, GW), []);
  assert.equal(descendantsNamed(parseXml(DESCRIPTION)!, 'service').length, 5);
});

// ------------------------------------------------------------------ soap

test('soap: envelope with the action, namespace, escaped arguments and SOAPAction', () => {
  const r = soapRequest('urn:schemas-upnp-org:service:WANIPConnection:1', 'AddPortMapping', [['NewExternalPort', 41641], ['NewPortMappingDescription', 'a<b&"c']]);
  assert.equal(r.soapAction, '"urn:schemas-upnp-org:service:WANIPConnection:1#AddPortMapping"');
  assert.match(r.body, /<u:AddPortMapping xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1"><NewExternalPort>41641<\/NewExternalPort><NewPortMappingDescription>a&#60;b&#38;&#34;c<\/NewPortMappingDescription><\/u:AddPortMapping>/);
  const back = parseXml(r.body)!;
  assert.equal(childText(descendantsNamed(back, 'AddPortMapping')[0]!, 'NewPortMappingDescription'), 'a<b&"c');
});

const envelope = (inner: string): string => `<?xml version="1.0"?>\r\n<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>${inner}</s:Body></s:Envelope>\r\n`;

test('soap: an answer gives its out-arguments', () => {
  const r = parseSoapResponse(envelope('<u:GetExternalIPAddressResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:2"><NewExternalIPAddress>11.1.0.2</NewExternalIPAddress></u:GetExternalIPAddressResponse>'), 'GetExternalIPAddress');
  assert.deepEqual(r, { ok: true, values: { NewExternalIPAddress: '11.1.0.2' } });
  assert.equal(parseSoapResponse(envelope('<u:OtherResponse/>'), 'GetExternalIPAddress'), null, 'the answer to another action');
  const proto = parseSoapResponse(envelope('<u:XResponse><__proto__>1</__proto__></u:XResponse>'), 'X');
  assert.ok(proto?.ok && proto.values['__proto__'] === '1' && ({} as Record<string, unknown>)['polluted'] === undefined);
});

test('soap: a UPnP fault gives its error code and description', () => {
  const fault = envelope('<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>718</errorCode><errorDescription>ConflictInMappingEntry</errorDescription></UPnPError></detail></s:Fault>');
  assert.deepEqual(parseSoapResponse(fault, 'AddPortMapping'), { ok: false, errorCode: 718, description: 'ConflictInMappingEntry' });
  const bare = envelope('<s:Fault><faultcode>s:Server</faultcode><faultstring>boom</faultstring></s:Fault>');
  assert.deepEqual(parseSoapResponse(bare, 'AddPortMapping'), { ok: false, errorCode: null, description: 'boom' });
  const weird = envelope('<s:Fault><detail><UPnPError><errorCode>-1e9</errorCode></UPnPError></detail></s:Fault>');
  assert.equal((parseSoapResponse(weird, 'AddPortMapping') as { errorCode: number | null }).errorCode, null);
});

test('soap: not an envelope, garbage, truncated: null', () => {
  const good = envelope('<u:AddPortMappingResponse/>');
  assert.equal(parseSoapResponse('<html/>', 'AddPortMapping'), null);
  assert.equal(parseSoapResponse('', 'AddPortMapping'), null);
  for (let n = 0; n < good.length - 3; n++) assert.equal(parseSoapResponse(good.slice(0, n), 'AddPortMapping'), null, `cut at ${n}`);
  assert.deepEqual(parseSoapResponse(good, 'AddPortMapping'), { ok: true, values: {} });
});

// ------------------------------------------------------------------ http bounds

test('http: bodies over the bound, oversized headers, a slow trickle and redirects give nothing', async () => {
  const server = createServer((req, res) => {
    if (req.url === '/big') {
      res.writeHead(200);
      res.end('x'.repeat(UPNP_MAX_BODY + 1));
    } else if (req.url === '/big-chunked') {
      res.writeHead(200, { 'Transfer-Encoding': 'chunked' });
      const chunk = 'y'.repeat(16 * 1024);
      for (let i = 0; i < 8; i++) res.write(chunk);
      res.end();
    } else if (req.url === '/headers') {
      res.writeHead(200, { 'X-Pad': 'z'.repeat(16 * 1024) });
      res.end('ok');
    } else if (req.url === '/slow') {
      res.writeHead(200);
      const t = setInterval(() => res.write('.'), 50);
      res.on('close', () => clearInterval(t));
    } else if (req.url === '/redirect') {
      res.writeHead(302, { Location: 'http://10.9.9.9/x' });
      res.end();
    } else {
      res.end('fine');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const get = (path: string, timeoutMs = 2000): ReturnType<typeof httpText> =>
    httpText(new URL(`http://127.0.0.1:${port}${path}`), { method: 'GET', timeoutMs, maxBytes: UPNP_MAX_BODY });
  try {
    assert.deepEqual(await get('/ok'), { status: 200, text: 'fine' });
    assert.equal(await get('/big'), null, 'declared too long');
    assert.equal(await get('/big-chunked'), null, 'streamed too long');
    assert.equal(await get('/headers'), null, 'headers over 8 KiB');
    const started = Date.now();
    assert.equal(await get('/slow', 300), null, 'a trickle is cut at the deadline');
    assert.ok(Date.now() - started < 1500);
    assert.deepEqual(await get('/redirect'), { status: 302, text: '' }, 'a redirect is an answer, never followed');
  } finally {
    server.closeAllConnections();
    server.close();
  }
});
