/**
 * A checksummed TCP transfer across the tunnel, as two tiny programs run in
 * lab namespaces: `sink PORT` prints "listening" then, per connection, the
 * byte count and SHA-256 of what it received; `source HOST PORT BYTES SEED`
 * streams deterministic pseudo-random bytes and prints their SHA-256.
 * Run as: node dist/test/helpers/tcp-transfer.js sink|source ...
 */
import { createServer, connect } from 'node:net';
import { createHash, createCipheriv } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { Lab } from './lab.js';

export const TRANSFER_SCRIPT = fileURLToPath(import.meta.url);

function sink(port: number): void {
  const srv = createServer((sock) => {
    const h = createHash('sha256');
    let n = 0;
    sock.on('data', (d) => {
      h.update(d);
      n += d.length;
    });
    sock.on('end', () => {
      process.stdout.write(`received ${n} ${h.digest('hex')}\n`);
      sock.end();
      srv.close();
    });
  });
  srv.listen(port, '::', () => process.stdout.write('listening\n'));
}

/** Stream `total` bytes; with `rate` (bytes/s) paced, so a transfer can span an event. */
function source(host: string, port: number, total: number, seed: string, rate = 0): void {
  // AES-CTR keystream over zeros: fast deterministic pseudo-random bytes.
  const key = createHash('sha256').update(seed).digest();
  const gen = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(64 * 1024);
  const h = createHash('sha256');
  const sock = connect({ host, port }, () => {
    let sent = 0;
    const t0 = Date.now();
    const pump = (): void => {
      while (sent < total) {
        if (rate > 0) {
          const ahead = sent - ((Date.now() - t0) * rate) / 1000;
          if (ahead > 0) {
            setTimeout(pump, Math.ceil((ahead / rate) * 1000));
            return;
          }
        }
        const chunk = gen.update(zeros.subarray(0, Math.min(zeros.length, total - sent)));
        h.update(chunk);
        sent += chunk.length;
        if (!sock.write(chunk)) {
          sock.once('drain', pump);
          return;
        }
      }
      sock.end();
      process.stdout.write(`sent ${sent} ${h.digest('hex')}\n`);
    };
    pump();
  });
  sock.on('error', (e) => {
    process.stderr.write(`source: ${e.message}\n`);
    process.exit(1);
  });
}

/** Transfer `bytes` from ns `from` to `host:port` in ns `to`; returns both digests. */
export async function tcpTransfer(lab: Lab, from: string, to: string, host: string, port: number, bytes: number, rate = 0): Promise<{ sent: string; received: string; receivedBytes: number }> {
  return (await startTcpTransfer(lab, from, to, host, port, bytes, rate)).done;
}

/** Start a transfer (paced at `rate` bytes/s when given) once the sink listens; `done` settles when it ends. */
export async function startTcpTransfer(lab: Lab, from: string, to: string, host: string, port: number, bytes: number, rate = 0): Promise<{ done: Promise<{ sent: string; received: string; receivedBytes: number }> }> {
  const srv = lab.spawn(to, ['node', TRANSFER_SCRIPT, 'sink', String(port)], { name: 'tcp-sink' });
  await srv.waitForOutput(/listening/, 10_000);
  return { done: finishTransfer(lab, srv, from, host, port, bytes, rate) };
}

async function finishTransfer(lab: Lab, srv: ReturnType<Lab['spawn']>, from: string, host: string, port: number, bytes: number, rate: number): Promise<{ sent: string; received: string; receivedBytes: number }> {
  const r = await lab.sh(from, ['node', TRANSFER_SCRIPT, 'source', host, String(port), String(bytes), `seed-${port}`, String(rate)], { timeoutMs: 120_000 });
  const m = /sent (\d+) ([0-9a-f]{64})/.exec(r.stdout);
  const got = await srv.waitForOutput(/received (\d+) ([0-9a-f]{64})/, 60_000);
  if (!m) throw new Error(`source printed no digest: ${r.stdout} ${r.stderr}`);
  return { sent: m[2]!, received: got[2]!, receivedBytes: Number(got[1]) };
}

if (process.argv[1] === TRANSFER_SCRIPT) {
  const [mode, ...args] = process.argv.slice(2);
  if (mode === 'sink') sink(Number(args[0]));
  else if (mode === 'source') source(args[0]!, Number(args[1]), Number(args[2]), args[3] ?? 'seed', Number(args[4] ?? 0));
  else {
    process.stderr.write('usage: tcp-transfer sink PORT | source HOST PORT BYTES [SEED [RATE]]\n');
    process.exit(2);
  }
}
