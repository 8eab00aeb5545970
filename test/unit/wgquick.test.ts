/**
 * Tests for src/control/wgquick.ts: every accepted key, the normal forms, and
 * every rejection with the line it names.
 */
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { ConfigError, parseWgQuick } from '../../src/control/wgquick.js';

const PRIV = Buffer.alloc(32, 1).toString('base64');
const PUB_A = Buffer.alloc(32, 2).toString('base64');
const PUB_B = Buffer.alloc(32, 3).toString('base64');
const PSK = Buffer.alloc(32, 4).toString('base64');

const bytes = (b64: string): Uint8Array => new Uint8Array(Buffer.from(b64, 'base64'));

/** A minimal valid file plus extra lines in [Interface] and one [Peer]. */
function withInterface(...lines: string[]): string {
  return ['[Interface]', `PrivateKey = ${PRIV}`, ...lines, ''].join('\n');
}
function withPeer(...lines: string[]): string {
  return ['[Interface]', `PrivateKey = ${PRIV}`, '[Peer]', `PublicKey = ${PUB_A}`, ...lines, ''].join('\n');
}

void describe('parseWgQuick accepts', () => {
  void it('a full wg-quick file with CRLF, comments, odd case and repeated list keys', () => {
    const text = [
      '# wg0 for the laptop', //                                  1
      '',
      '[Interface]',
      `privatekey=${PRIV}   # trailing comment`,
      'ListenPort = 51820',
      'Address = 10.0.0.1/24, FD00:0:0::1/64',
      'address=100.64.0.7',
      'MTU = 1420',
      'DNS = 1.1.1.1, 2606:4700:4700::1111, home.arpa',
      'DNS = example.com',
      'Table = 1234',
      'FwMark = 0xca6c',
      '',
      '[peer]',
      `PublicKey = ${PUB_A}`,
      `PresharedKey = ${PSK}`,
      'AllowedIPs = 10.0.0.2/32, 192.168.7.99/24',
      'AllowedIPs = fd00::5/64,192.168.7.0/24',
      'Endpoint = vpn.example.net:51820',
      'PersistentKeepalive = 25',
      '[PEER]',
      `PUBLICKEY = ${PUB_B}`,
      'Endpoint = [2001:DB8::1]:443',
      'AllowedIPs = 0.0.0.0/0, ::/0',
      'PersistentKeepalive = off',
    ].join('\r\n');
    const cfg = parseWgQuick(text, 'wg0.conf');
    assert.deepEqual(cfg.interface, {
      privateKey: bytes(PRIV),
      listenPort: 51820,
      addresses: ['10.0.0.1/24', 'fd00::1/64', '100.64.0.7/32'],
      mtu: 1420,
      dns: ['1.1.1.1', '2606:4700:4700::1111', 'home.arpa', 'example.com'],
      table: 1234,
      fwMark: 0xca6c,
    });
    assert.equal(cfg.peers.length, 2);
    assert.deepEqual(cfg.peers[0], {
      publicKey: bytes(PUB_A),
      presharedKey: bytes(PSK),
      allowedIps: ['10.0.0.2/32', '192.168.7.0/24', 'fd00::/64'],
      endpoint: { host: 'vpn.example.net', port: 51820 },
      persistentKeepalive: 25,
    });
    assert.deepEqual(cfg.peers[1], {
      publicKey: bytes(PUB_B),
      allowedIps: ['0.0.0.0/0', '::/0'],
      endpoint: { host: '2001:db8::1', port: 443 },
    });
  });

  void it('a file with only a private key; optional fields stay absent', () => {
    const cfg = parseWgQuick(withInterface(), 'x.conf');
    assert.deepEqual(cfg, { interface: { privateKey: bytes(PRIV), addresses: [], dns: [] }, peers: [] });
    assert.equal(cfg.interface.privateKey.length, 32);
  });

  void it('a UTF-8 byte-order mark and a file without a final newline', () => {
    const cfg = parseWgQuick(`\uFEFF[Interface]\nPrivateKey = ${PRIV}`, 'x.conf');
    assert.deepEqual(cfg.interface.privateKey, bytes(PRIV));
  });

  void it('ListenPort 0 and 65535', () => {
    assert.equal(parseWgQuick(withInterface('ListenPort = 0'), 'x').interface.listenPort, 0);
    assert.equal(parseWgQuick(withInterface('ListenPort = 65535'), 'x').interface.listenPort, 65535);
  });

  void it('MTU 576 and 65535', () => {
    assert.equal(parseWgQuick(withInterface('MTU = 576'), 'x').interface.mtu, 576);
    assert.equal(parseWgQuick(withInterface('MTU = 65535'), 'x').interface.mtu, 65535);
  });

  void it('FwMark as decimal, hex, 0 and off', () => {
    assert.equal(parseWgQuick(withInterface('FwMark = 51820'), 'x').interface.fwMark, 51820);
    assert.equal(parseWgQuick(withInterface('FwMark = 0XFFFFFFFF'), 'x').interface.fwMark, 0xffffffff);
    assert.equal(parseWgQuick(withInterface('FwMark = 0'), 'x').interface.fwMark, 0);
    assert.equal('fwMark' in parseWgQuick(withInterface('FwMark = off'), 'x').interface, false);
  });

  void it('Table off, auto (any case) and a number', () => {
    assert.equal(parseWgQuick(withInterface('Table = off'), 'x').interface.table, 'off');
    assert.equal(parseWgQuick(withInterface('Table = Auto'), 'x').interface.table, 'auto');
    assert.equal(parseWgQuick(withInterface('Table = 4294967295'), 'x').interface.table, 4294967295);
  });

  void it('PersistentKeepalive off, 0 and 65535', () => {
    assert.equal('persistentKeepalive' in parseWgQuick(withPeer('PersistentKeepalive = off'), 'x').peers[0]!, false);
    assert.equal(parseWgQuick(withPeer('PersistentKeepalive = 0'), 'x').peers[0]?.persistentKeepalive, 0);
    assert.equal(parseWgQuick(withPeer('PersistentKeepalive = 65535'), 'x').peers[0]?.persistentKeepalive, 65535);
  });

  void it('Endpoint as IPv4, name, bracketed IPv6 with zone', () => {
    const ep = (v: string) => parseWgQuick(withPeer(`Endpoint = ${v}`), 'x').peers[0]?.endpoint;
    assert.deepEqual(ep('192.0.2.1:51820'), { host: '192.0.2.1', port: 51820 });
    assert.deepEqual(ep('wg.example.com.:1'), { host: 'wg.example.com.', port: 1 });
    assert.deepEqual(ep('[fe80::1%eth0]:65535'), { host: 'fe80::1%eth0', port: 65535 });
  });

  void it('AllowedIPs without a length as a host, masked, deduplicated', () => {
    const p = parseWgQuick(withPeer('AllowedIPs = 10.1.2.3, fd00::1, 10.1.2.3/32, 10.255.255.255/9'), 'x').peers[0];
    assert.deepEqual(p?.allowedIps, ['10.1.2.3/32', 'fd00::1/128', '10.128.0.0/9']);
  });

  void it('a peer with no AllowedIPs', () => {
    assert.deepEqual(parseWgQuick(withPeer(), 'x').peers[0]?.allowedIps, []);
  });
});

/** Each case: file text, the line the error must name, and a pattern for the message. */
const REJECTS: Array<{ name: string; text: string; line: number; msg: RegExp }> = [
  { name: 'PostUp', text: withInterface('PostUp = iptables -A FORWARD'), line: 3,
    msg: /^wg0\.conf:3: PostUp is not supported by warrend \(it never runs shell commands from a config\)$/ },
  { name: 'PreUp', text: withInterface('preup = echo'), line: 3, msg: /PreUp is not supported/ },
  { name: 'PostDown', text: withInterface('PostDown = x'), line: 3, msg: /PostDown is not supported/ },
  { name: 'PreDown in a peer', text: withPeer('PreDown = x'), line: 5, msg: /PreDown is not supported/ },
  { name: 'SaveConfig', text: withInterface('SaveConfig = true'), line: 3, msg: /SaveConfig is not supported/ },
  { name: 'an unknown key', text: withInterface('Foo = bar'), line: 3, msg: /unknown key "Foo" in \[Interface\]/ },
  { name: 'an unknown section', text: withInterface('[Wat]'), line: 3, msg: /unknown section "\[Wat\]"/ },
  { name: 'a malformed section header', text: withInterface('[Peer'), line: 3, msg: /malformed section header "\[Peer"/ },
  { name: 'a key outside any section', text: `ListenPort = 1\n[Interface]\nPrivateKey = ${PRIV}\n`, line: 1,
    msg: /ListenPort is outside any section/ },
  { name: 'a peer key in [Interface]', text: withInterface(`PublicKey = ${PUB_A}`), line: 3,
    msg: /PublicKey belongs in \[Peer\], not \[Interface\]/ },
  { name: 'an interface key in [Peer]', text: withPeer('ListenPort = 1'), line: 5,
    msg: /ListenPort belongs in \[Interface\], not \[Peer\]/ },
  { name: 'a line without "="', text: withInterface('ListenPort 51820'), line: 3, msg: /expected "Key = Value", got "ListenPort 51820"/ },
  { name: 'a line with no key', text: withInterface('= 5'), line: 3, msg: /missing key/ },
  { name: 'a value-less key', text: withInterface('MTU ='), line: 3, msg: /: MTU has no value$/ },
  { name: 'a value that is only a comment', text: withPeer('AllowedIPs = # none'), line: 5, msg: /AllowedIPs has no value/ },
  { name: 'a second [Interface]', text: withInterface('[Interface]'), line: 3, msg: /second \[Interface\] section \(the first is at line 1\)/ },
  { name: 'a repeated scalar key', text: withInterface('MTU = 1400', '', 'mtu = 1300'), line: 5,
    msg: /MTU is given twice in this \[Interface\] section \(first at line 3\)/ },
  { name: 'no [Interface]', text: `# nothing\n[Peer]\nPublicKey = ${PUB_A}\n`, line: 1, msg: /no \[Interface\] section/ },
  { name: 'an empty file', text: '', line: 1, msg: /no \[Interface\] section/ },
  { name: 'a missing PrivateKey', text: '\n[Interface]\nListenPort = 1\n', line: 2, msg: /\[Interface\] has no PrivateKey/ },
  { name: 'a peer without PublicKey', text: withPeer('[Peer]', 'AllowedIPs = 10.0.0.0/8'), line: 5,
    msg: /\[Peer\] has no PublicKey/ },
  { name: 'a duplicate peer', text: withPeer('[Peer]', `PublicKey = ${PUB_A}`), line: 6,
    msg: new RegExp(`PublicKey: peer ${PUB_A.replace(/[+/]/g, '\\$&')} is already defined \\(PublicKey at line 4\\)`) },
  { name: 'a short key', text: '[Interface]\nPrivateKey = AAAA\n', line: 2, msg: /PrivateKey: value \(4 characters, not shown\) is not a base64 key of 32 bytes/ },
  { name: 'a 33-byte key', text: `[Interface]\nPrivateKey = ${Buffer.alloc(33).toString('base64')}\n`, line: 2, msg: /not a base64 key/ },
  { name: 'a key with bad characters', text: `[Interface]\nPrivateKey = ${PRIV.replace(/^../, '!!')}\n`, line: 2, msg: /not a base64 key/ },
  { name: 'a key with non-zero padding bits', text: `[Interface]\nPrivateKey = ${PRIV.slice(0, 42)}B=\n`, line: 2, msg: /not a base64 key/ },
  { name: 'a bad PresharedKey', text: withPeer('PresharedKey = nope'), line: 5, msg: /PresharedKey: value \(4 characters, not shown\) is not a base64 key/ },
  { name: 'ListenPort 65536', text: withInterface('ListenPort = 65536'), line: 3, msg: /ListenPort: 65536 is out of range \(0\.\.65535\)/ },
  { name: 'ListenPort -1', text: withInterface('ListenPort = -1'), line: 3, msg: /ListenPort: "-1" is not a number/ },
  { name: 'MTU 575', text: withInterface('MTU = 575'), line: 3, msg: /MTU: 575 is out of range \(576\.\.65535\)/ },
  { name: 'MTU 65536', text: withInterface('MTU = 65536'), line: 3, msg: /MTU: 65536 is out of range/ },
  { name: 'MTU 1e3', text: withInterface('MTU = 1e3'), line: 3, msg: /MTU: "1e3" is not a number/ },
  { name: 'FwMark text', text: withInterface('FwMark = mark'), line: 3, msg: /FwMark: "mark" is not a mark/ },
  { name: 'FwMark above 32 bits', text: withInterface('FwMark = 0x100000000'), line: 3, msg: /FwMark: 0x100000000 does not fit in 32 bits/ },
  { name: 'Table by name', text: withInterface('Table = main'), line: 3, msg: /Table: "main" is not off, auto or a table number/ },
  { name: 'Table 0', text: withInterface('Table = 0'), line: 3, msg: /Table: table 0 is out of range/ },
  { name: 'PersistentKeepalive 65536', text: withPeer('PersistentKeepalive = 65536'), line: 5, msg: /PersistentKeepalive: 65536 is out of range/ },
  { name: 'PersistentKeepalive text', text: withPeer('PersistentKeepalive = on'), line: 5, msg: /PersistentKeepalive: "on" is not a number/ },
  { name: 'a prefix length over 32', text: withPeer('AllowedIPs = 10.0.0.0/33'), line: 5,
    msg: /AllowedIPs: "10\.0\.0\.0\/33" is not an IP prefix/ },
  { name: 'a prefix length over 128', text: withPeer('AllowedIPs = ::/129'), line: 5, msg: /"::\/129" is not an IP prefix/ },
  { name: 'a short IPv4 form', text: withPeer('AllowedIPs = 10.1/16'), line: 5, msg: /"10\.1\/16" is not an IP prefix/ },
  { name: 'a name as a prefix', text: withPeer('AllowedIPs = 10.0.0.0/8, example.com'), line: 5, msg: /"example\.com" is not an IP prefix/ },
  { name: 'an empty list item', text: withPeer('AllowedIPs = 10.0.0.0/8,,10.1.0.0/16'), line: 5, msg: /AllowedIPs: empty item in list/ },
  { name: 'a bad Address', text: withInterface('Address = 10.0.0.300/24'), line: 3, msg: /Address: "10\.0\.0\.300\/24" is not an IP address/ },
  { name: 'a bad DNS entry', text: withInterface('DNS = 1.2.3'), line: 3, msg: /DNS: "1\.2\.3" is neither an IP address nor a search domain/ },
  { name: 'an Endpoint without port', text: withPeer('Endpoint = 192.0.2.1'), line: 5, msg: /Endpoint: "192\.0\.2\.1" has no port/ },
  { name: 'an Endpoint with bare IPv6', text: withPeer('Endpoint = 2001:db8::1:51820'), line: 5, msg: /write an IPv6 endpoint as \[address\]:port/ },
  { name: 'an Endpoint with port 0', text: withPeer('Endpoint = h.example:0'), line: 5, msg: /port 0 in "h\.example:0" is out of range/ },
  { name: 'an Endpoint with a text port', text: withPeer('Endpoint = h.example:wg'), line: 5, msg: /"wg" in "h\.example:wg" is not a port number/ },
  { name: 'an Endpoint with a bad bracketed address', text: withPeer('Endpoint = [10.0.0.1]:1'), line: 5, msg: /"10\.0\.0\.1" in "\[10\.0\.0\.1\]:1" is not an IPv6 address/ },
  { name: 'an Endpoint with a bad host', text: withPeer('Endpoint = a b:1'), line: 5, msg: /"a b" in "a b:1" is not an IPv4 address or host name/ },
  { name: 'the error line counts CRLF lines', text: withInterface('', 'Bogus = 1').replace(/\n/g, '\r\n'), line: 4, msg: /unknown key "Bogus"/ },
];

void describe('parseWgQuick rejects', () => {
  for (const c of REJECTS) {
    void it(c.name, () => {
      assert.throws(
        () => parseWgQuick(c.text, 'wg0.conf'),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError, `not a ConfigError: ${String(err)}`);
          assert.equal(err.code, 'EWGCONFIG');
          assert.equal(err.source, 'wg0.conf');
          assert.equal(err.line, c.line, err.message);
          assert.ok(err.message.startsWith(`wg0.conf:${c.line}: `), err.message);
          assert.match(err.message, c.msg);
          assert.equal(err.message, `wg0.conf:${c.line}: ${err.detail}`);
          return true;
        },
      );
    });
  }
});

void it('a malformed secret key is never echoed into the error message', () => {
  const secret = 'c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0cw=';
  for (const text of [`[Interface]\nPrivateKey = ${secret}\n`, `[Interface]\nPrivateKey = ${PRIV}\n\n[Peer]\nPublicKey = ${PUB_A}\nPresharedKey = ${secret}\n`]) {
    assert.throws(() => parseWgQuick(text, 'wg0.conf'), (err: Error) => !err.message.includes(secret) && /not shown/.test(err.message));
  }
});
