/**
 * Map-stream framing (src/wire/control-frames.ts): byte snapshots, frames
 * split at every boundary or packed many to a chunk, limits enforced on the
 * header alone, bad UTF-8/JSON, and garbage that may only ever raise FrameError.
 */
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { FRAME_HEADER_LEN, FrameDecoder, FrameError, MAX_FRAME_BYTES, encodeFrame } from '../../src/wire/control-frames.js';
import { rng } from '../helpers/rng.js';

function h(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}

function isFrameError(code: string): (e: unknown) => boolean {
  return (e: unknown) => e instanceof FrameError && e.code === code;
}

describe('encodeFrame', () => {
  it('writes a big-endian length and the UTF-8 JSON (hex snapshot)', () => {
    assert.equal(encodeFrame({ type: 'keepalive' }).toString('hex'),
      '00000014' + '7b2274797065223a226b656570616c697665227d');
    // é is two bytes in UTF-8: the length counts bytes, not characters.
    assert.equal(encodeFrame({ h: 'é' }).toString('hex'), '0000000a' + '7b2268223a22c3a9227d');
    assert.equal(encodeFrame(null).toString('hex'), '00000004' + '6e756c6c');
  });

  it('refuses values without a JSON form', () => {
    assert.throws(() => encodeFrame(undefined), isFrameError('frame_not_json'));
    assert.throws(() => encodeFrame(() => 1), isFrameError('frame_not_json'));
    assert.throws(() => encodeFrame({ n: 1n }), isFrameError('frame_not_json'));
    const circular: Record<string, unknown> = {};
    circular['self'] = circular;
    assert.throws(() => encodeFrame(circular), isFrameError('frame_not_json'));
  });

  it('refuses a frame over the limit', () => {
    assert.throws(() => encodeFrame('x'.repeat(20), 21), isFrameError('frame_too_large'));
    assert.equal(encodeFrame('x'.repeat(20), 22).length, FRAME_HEADER_LEN + 22);
  });
});

describe('FrameDecoder', () => {
  const frames: unknown[] = [
    { type: 'hello', version: null, endpoints: ['192.0.2.1:41641', '[2001:db8::1]:41641'], hostinfo: { os: 'linux' } },
    { type: 'keepalive' },
    { type: 'hostinfo', hostinfo: { note: 'ünïcødé ✓ 🐇' } },
    [],
    0,
    'text',
  ];
  const stream = Buffer.concat(frames.map((f) => encodeFrame(f)));

  it('decodes a whole stream pushed at once (many frames per chunk)', () => {
    const d = new FrameDecoder();
    assert.deepEqual(d.push(stream), frames);
    assert.equal(d.pending, 0);
  });

  it('decodes the stream split at every byte boundary', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const d = new FrameDecoder();
      const got = [...d.push(stream.subarray(0, cut)), ...d.push(stream.subarray(cut))];
      assert.deepEqual(got, frames, `cut at ${cut}`);
    }
  });

  it('decodes the stream one byte at a time, and in random-sized chunks', () => {
    const d = new FrameDecoder();
    const got: unknown[] = [];
    for (const b of stream) got.push(...d.push(Buffer.of(b)));
    assert.deepEqual(got, frames);

    const r = rng(0xf4a3e);
    for (let round = 0; round < 200; round++) {
      const d2 = new FrameDecoder();
      const out: unknown[] = [];
      for (let i = 0; i < stream.length;) {
        const n = Math.floor(r() * 40);
        out.push(...d2.push(stream.subarray(i, i + n)));
        i += n;
      }
      assert.deepEqual(out, frames, `round ${round}`);
    }
  });

  it('accepts plain Uint8Array chunks', () => {
    assert.deepEqual(new FrameDecoder().push(new Uint8Array(encodeFrame({ a: 1 }))), [{ a: 1 }]);
  });

  it('reassembles a large frame sent in small chunks', () => {
    const big = { blob: 'z'.repeat(200_000) };
    const bytes = encodeFrame(big);
    const d = new FrameDecoder();
    const out: unknown[] = [];
    for (let i = 0; i < bytes.length; i += 7) out.push(...d.push(bytes.subarray(i, i + 7)));
    assert.deepEqual(out, [big]);
  });

  it('accepts a frame of exactly maxFrame bytes', () => {
    const d = new FrameDecoder({ maxFrame: 16 });
    const f = encodeFrame('x'.repeat(14)); // "xxxxxxxxxxxxxx" with quotes = 16 bytes
    assert.equal(f.readUInt32BE(0), 16);
    assert.deepEqual(d.push(f), ['x'.repeat(14)]);
  });

  it('rejects an oversized length from the header alone, before any body arrives', () => {
    const d = new FrameDecoder({ maxFrame: 16 });
    assert.throws(() => d.push(h('00000011')), isFrameError('frame_too_large'));
    assert.equal(d.pending, 0);
    // The decoder stays failed: later chunks are refused too.
    assert.throws(() => d.push(encodeFrame(1)), isFrameError('frame_too_large'));

    const dflt = new FrameDecoder();
    assert.equal(dflt.maxFrame, MAX_FRAME_BYTES);
    assert.deepEqual(dflt.push(h('004000')), []);
    assert.throws(() => dflt.push(h('01')), isFrameError('frame_too_large')); // 4 MiB + 1
    assert.throws(() => new FrameDecoder().push(h('ffffffff')), isFrameError('frame_too_large'));
  });

  it('rejects invalid UTF-8', () => {
    for (const body of ['fffe', 'c080' /* overlong NUL */, '22c3', 'eda080' /* surrogate */]) {
      const frame = Buffer.concat([h((body.length / 2).toString(16).padStart(8, '0')), h(body)]);
      assert.throws(() => new FrameDecoder().push(frame), isFrameError('frame_not_json'), body);
    }
  });

  it('rejects invalid JSON and the zero-length frame', () => {
    for (const text of ['{"a":', 'hello', '{"a":1}}', "{'a':1}", '\ufeff{}']) {
      const body = Buffer.from(text, 'utf8');
      const frame = Buffer.concat([h(body.length.toString(16).padStart(8, '0')), body]);
      assert.throws(() => new FrameDecoder().push(frame), isFrameError('frame_not_json'), text);
    }
    assert.throws(() => new FrameDecoder().push(h('00000000')), isFrameError('frame_not_json'));
  });

  it('frames before a bad one in earlier chunks are delivered; the error carries a cause', () => {
    const d = new FrameDecoder();
    assert.deepEqual(d.push(encodeFrame({ ok: true })), [{ ok: true }]);
    try {
      d.push(Buffer.concat([h('00000002'), Buffer.from('{x')]));
      assert.fail('expected a FrameError');
    } catch (e) {
      assert.ok(e instanceof FrameError);
      assert.equal(e.code, 'frame_not_json');
      assert.ok(e.cause instanceof SyntaxError);
    }
  });

  it('garbage never raises anything but FrameError', () => {
    const r = rng(0x6a5ba6e);
    let errors = 0;
    let decoded = 0;
    for (let round = 0; round < 2000; round++) {
      const d = new FrameDecoder({ maxFrame: 1 + Math.floor(r() * 64) });
      for (let c = 0; c < 8; c++) {
        const len = Math.floor(r() * 24);
        // Bias towards small lengths so bodies actually complete sometimes.
        const chunk = Buffer.from(Array.from({ length: len }, (_, i) => (i % 5 < 3 && r() < 0.7 ? 0 : Math.floor(r() * 256))));
        try {
          decoded += d.push(chunk).length;
        } catch (e) {
          assert.ok(e instanceof FrameError, `round ${round}: ${String(e)}`);
          errors++;
          break;
        }
      }
    }
    assert.ok(errors > 0, 'the fuzz never hit an error path');
    assert.ok(decoded >= 0);
  });

  it('mutated valid streams decode or raise FrameError, nothing else', () => {
    const r = rng(0x5eed);
    let decoded = 0;
    let errors = 0;
    for (let round = 0; round < 2000; round++) {
      const bytes = Buffer.from(stream);
      const flips = 1 + Math.floor(r() * 3);
      for (let i = 0; i < flips; i++) bytes[Math.floor(r() * bytes.length)] = Math.floor(r() * 256);
      const d = new FrameDecoder({ maxFrame: 256 });
      try {
        for (let i = 0; i < bytes.length;) {
          const n = 1 + Math.floor(r() * 50);
          decoded += d.push(bytes.subarray(i, i + n)).length;
          i += n;
        }
      } catch (e) {
        assert.ok(e instanceof FrameError, `round ${round}: ${String(e)}`);
        errors++;
      }
    }
    assert.ok(decoded > 0 && errors > 0, `decoded ${decoded}, errors ${errors}`);
  });
});
