/**
 * Framing of the control map stream (control-protocol.md, "The map stream"):
 *
 *   0               4                     4 + length
 *   +---------------+---------------------+
 *   | length u32 BE | UTF-8 JSON (length) |  next frame ...
 *   +---------------+---------------------+
 *
 * encodeFrame() writes one frame; FrameDecoder reassembles frames from
 * arbitrary TCP chunks. A frame longer than the limit (4 MiB by default) is
 * refused as soon as its header is read, before any of its body is buffered.
 * The decoder only checks framing and JSON syntax; message validation is the
 * schemas' job (control.ts).
 */

/** Bytes in a frame header. */
export const FRAME_HEADER_LEN = 4;
/** Largest frame body either side accepts (the spec's 4 MiB). */
export const MAX_FRAME_BYTES = 4 * 1024 * 1024;

export type FrameErrorCode = 'frame_too_large' | 'frame_not_json';

/** A framing violation. The stream is unusable afterwards: close the connection. */
export class FrameError extends Error {
  readonly code: FrameErrorCode;
  constructor(code: FrameErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FrameError';
    this.code = code;
  }
}

/** One frame holding JSON.stringify(obj). Throws FrameError if obj has no JSON form or is too large. */
export function encodeFrame(obj: unknown, maxFrame: number = MAX_FRAME_BYTES): Buffer {
  let json: string | undefined;
  try {
    json = JSON.stringify(obj);
  } catch (err) {
    throw new FrameError('frame_not_json', `frame cannot be encoded as JSON: ${(err as Error).message}`, { cause: err });
  }
  if (json === undefined) throw new FrameError('frame_not_json', `frame cannot be encoded as JSON (${typeof obj})`);
  const len = Buffer.byteLength(json, 'utf8');
  if (len > maxFrame) throw new FrameError('frame_too_large', `frame of ${len} bytes exceeds the ${maxFrame}-byte limit`);
  const out = Buffer.allocUnsafe(FRAME_HEADER_LEN + len);
  out.writeUInt32BE(len, 0);
  out.write(json, FRAME_HEADER_LEN, 'utf8');
  return out;
}

export interface FrameDecoderOptions {
  /** Largest accepted frame body in bytes (default MAX_FRAME_BYTES). */
  maxFrame?: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Streaming decoder: push() each received chunk, get back the frames it
 * completed, in order. Chunks are kept by reference until consumed (a frame
 * split over many chunks is joined once, when complete).
 *
 * On a framing error push() throws FrameError; frames completed earlier in
 * the same chunk are dropped with it, and every later push() throws the same
 * error — the caller is expected to close the connection.
 */
export class FrameDecoder {
  readonly maxFrame: number;
  /** Received chunks; those before `head` are fully consumed. */
  private chunks: Buffer[] = [];
  private head = 0;
  /** Unconsumed bytes, starting `offset` bytes into chunks[head]. */
  private buffered = 0;
  private offset = 0;
  /** Body length of the frame whose header has been read, or -1 while awaiting a header. */
  private bodyLen = -1;
  private failed: FrameError | null = null;

  constructor(opts: FrameDecoderOptions = {}) {
    this.maxFrame = opts.maxFrame ?? MAX_FRAME_BYTES;
  }

  /** Bytes received but not yet returned as frames. */
  get pending(): number {
    return this.buffered;
  }

  push(chunk: Uint8Array): unknown[] {
    if (this.failed) throw this.failed;
    if (chunk.length > 0) {
      this.chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
      this.buffered += chunk.length;
    }
    const frames: unknown[] = [];
    for (;;) {
      if (this.bodyLen < 0) {
        if (this.buffered < FRAME_HEADER_LEN) break;
        const len = this.take(FRAME_HEADER_LEN).readUInt32BE(0);
        if (len > this.maxFrame) {
          this.fail(new FrameError('frame_too_large', `frame of ${len} bytes exceeds the ${this.maxFrame}-byte limit`));
        }
        this.bodyLen = len;
      }
      if (this.buffered < this.bodyLen) break;
      const body = this.take(this.bodyLen);
      this.bodyLen = -1;
      frames.push(this.decodeBody(body));
    }
    return frames;
  }

  private decodeBody(body: Buffer): unknown {
    let text: string;
    try {
      text = utf8.decode(body);
    } catch (err) {
      return this.fail(new FrameError('frame_not_json', `frame of ${body.length} bytes is not valid UTF-8`, { cause: err }));
    }
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      return this.fail(new FrameError('frame_not_json', `frame of ${body.length} bytes is not JSON: ${(err as Error).message}`, { cause: err }));
    }
  }

  private fail(err: FrameError): never {
    this.failed = err;
    this.chunks = [];
    this.head = 0;
    this.buffered = 0;
    this.offset = 0;
    throw err;
  }

  /** Remove and return the next n buffered bytes (n <= buffered); a view when they sit in one chunk. */
  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[this.head];
    if (first && first.length - this.offset >= n) {
      const out = first.subarray(this.offset, this.offset + n);
      this.advance(n);
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[this.head]!;
      const m = Math.min(n - filled, c.length - this.offset);
      c.copy(out, filled, this.offset, this.offset + m);
      filled += m;
      this.advance(m);
    }
    return out;
  }

  private advance(n: number): void {
    this.buffered -= n;
    this.offset += n;
    while (this.head < this.chunks.length && this.offset >= this.chunks[this.head]!.length) {
      this.offset -= this.chunks[this.head]!.length;
      this.head++;
    }
    // Drop consumed chunks in batches, so many tiny chunks cost O(n) overall.
    if (this.head === this.chunks.length) {
      this.chunks = [];
      this.head = 0;
    } else if (this.head >= 64 && this.head * 2 >= this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
  }
}
