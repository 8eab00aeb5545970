/**
 * Tests for src/dataplane/replay.ts: the Linux kernel's counter selftest
 * (drivers/net/wireguard/selftest/counter.c) translated to our limits, plus
 * a randomized comparison against a naive Set-based model.
 */
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { MAX_COUNTER, REPLAY_WINDOW_SIZE, ReplayWindow } from '../../src/dataplane/replay.js';
import { rng } from '../helpers/rng.js';


/** Checks, accepts, and confirms the counter is then seen. */
function expect(w: ReplayWindow, counter: number, want: boolean, step: string): void {
  assert.equal(w.check(counter), want, `check(${counter}) at ${step}`);
  assert.equal(w.accept(counter), want, `accept(${counter}) at ${step}`);
  assert.equal(w.check(counter), false, `check(${counter}) after accept at ${step}`);
}

const W = REPLAY_WINDOW_SIZE;
/** The kernel's T_LIM. */
const LIM = W + 1;
/** The kernel's REJECT_AFTER_MESSAGES: the first counter refused. */
const REJECT = MAX_COUNTER + 1;

void describe('ReplayWindow', () => {
  void it('has the kernel window size and a safe limit', () => {
    assert.equal(W, 8128);
    assert.equal(MAX_COUNTER, 2 ** 53 - 2);
    assert.ok(Number.isSafeInteger(MAX_COUNTER + 1));
  });

  void it('passes the kernel selftest sequence', () => {
    const w = new ReplayWindow();
    const seq: Array<[number, boolean]> = [
      [0, true], [1, true], [1, false], [9, true], [8, true], [7, true], [7, false],
      [LIM, true], [LIM - 1, true], [LIM - 1, false], [LIM - 2, true], [2, true], [2, false],
      [LIM + 16, true], [3, false], [LIM + 16, false],
      [LIM * 4, true], [LIM * 4 - (LIM - 1), true], [10, false],
      [LIM * 4 - LIM, false], [LIM * 4 - (LIM + 1), false], [LIM * 4 - (LIM - 2), true],
      [LIM * 4 + 1 - LIM, false], [0, false],
      [REJECT, false], [REJECT - 1, true], [REJECT, false], [REJECT - 1, false], [REJECT - 2, true],
      [REJECT + 1, false], [REJECT + 2, false], [REJECT - 2, false], [REJECT - 3, true], [0, false],
    ];
    seq.forEach(([c, want], i) => expect(w, c, want, `step ${i}`));
  });

  void it('accepts a full window in order, then 0 once', () => {
    const w = new ReplayWindow();
    for (let i = 1; i <= W; i++) expect(w, i, true, 'fill');
    expect(w, 0, true, 'edge');
    expect(w, 0, false, 'dup');
  });

  void it('accepts 1 at the edge but not 0 past it', () => {
    const w = new ReplayWindow();
    for (let i = 2; i <= W + 1; i++) expect(w, i, true, 'fill');
    expect(w, 1, true, 'edge');
    expect(w, 0, false, 'past edge');
  });

  void it('accepts a full window in reverse order', () => {
    const w = new ReplayWindow();
    for (let i = W + 1; i-- > 0; ) expect(w, i, true, 'reverse');
  });

  void it('rejects the counter just past the edge after a reverse fill', () => {
    const w = new ReplayWindow();
    for (let i = W + 2; i-- > 1; ) expect(w, i, true, 'reverse');
    expect(w, 0, false, 'past edge');
  });

  void it('accepts a new maximum after a reverse fill, then rejects 0', () => {
    const w = new ReplayWindow();
    for (let i = W + 1; i-- > 1; ) expect(w, i, true, 'reverse');
    expect(w, W + 1, true, 'new max');
    expect(w, 0, false, 'now too old');
  });

  void it('accepts 0 before moving the window on', () => {
    const w = new ReplayWindow();
    for (let i = W + 1; i-- > 1; ) expect(w, i, true, 'reverse');
    expect(w, 0, true, 'edge');
    expect(w, W + 1, true, 'new max');
  });

  void it('clears old bits on a far jump and rejects what fell out', () => {
    const w = new ReplayWindow();
    for (let i = 0; i < 100; i++) expect(w, i, true, 'fill');
    const far = 1_000_000;
    expect(w, far, true, 'jump');
    expect(w, 50, false, 'old after jump');
    expect(w, far - W, true, 'edge after jump');
    expect(w, far - W - 1, false, 'past edge after jump');
    // Slots that aliased earlier counters in the ring are clean again.
    for (let i = far - 100; i < far; i++) expect(w, i, true, 'below the jump');
    for (let i = far + 1; i < far + 100; i++) expect(w, i, true, 'above the jump');
    // A jump by exactly the ring size must not leave stale bits behind.
    const w2 = new ReplayWindow();
    expect(w2, 5, true, 'seed');
    expect(w2, 5 + 8192, true, 'ring-size jump');
    expect(w2, 5 + 8192 - 32, true, 'same word offset');
    expect(w2, 5 + 8192 - 1, true, 'below');
  });

  void it('rejects out-of-range and non-integer counters without changing state', () => {
    const w = new ReplayWindow();
    for (const c of [-1, 0.5, NaN, Infinity, -Infinity, MAX_COUNTER + 1, 2 ** 53, 2 ** 64]) {
      assert.equal(w.check(c), false, String(c));
      assert.equal(w.accept(c), false, String(c));
    }
    expect(w, 0, true, 'still fresh');
    expect(w, MAX_COUNTER, true, 'max');
    expect(w, MAX_COUNTER - W, true, 'edge at max');
    expect(w, MAX_COUNTER - W - 1, false, 'past edge at max');
  });

  void it('check() does not mark', () => {
    const w = new ReplayWindow();
    assert.equal(w.check(5), true);
    assert.equal(w.check(5), true);
    assert.equal(w.check(100_000), true);
    assert.equal(w.accept(5), true);
    assert.equal(w.check(0), true);
  });

  void it('reset() forgets everything', () => {
    const w = new ReplayWindow();
    expect(w, 0, true, 'before');
    expect(w, 1_000_000, true, 'before');
    w.reset();
    expect(w, 0, true, 'after reset');
    expect(w, 1_000_000, true, 'after reset');
    expect(w, 5, false, 'old after reset');
  });

  void describe('matches a naive Set model', () => {
    for (const [name, start] of [
      ['low counters', 0],
      ['counters past 2^32', 2 ** 32 - 20_000],
      ['counters running into MAX_COUNTER', MAX_COUNTER - 40_000_000],
    ] as const) {
      void it(name, () => fuzz(start, 0xc0ffee + start));
    }
  });
});

/** The obvious implementation: remember every counter in the window. */
class SetModel {
  private seen = new Set<number>();
  private max = 0;

  accept(c: number): boolean {
    if (!Number.isInteger(c) || c < 0 || c > MAX_COUNTER) return false;
    if (c < this.max - W || this.seen.has(c)) return false;
    this.seen.add(c);
    if (c > this.max) {
      this.max = c;
      if (this.seen.size > 4 * W) {
        for (const s of this.seen) if (s < this.max - W) this.seen.delete(s);
      }
    }
    return true;
  }
}

function fuzz(start: number, seed: number): void {
  const rand = rng(seed);
  const w = new ReplayWindow();
  const model = new SetModel();
  let cursor = start;
  const recent: number[] = [];
  let accepted = 0;
  let rejected = 0;
  for (let i = 0; i < 60_000; i++) {
    const r = rand();
    let c: number;
    if (r < 0.45) {
      c = cursor + Math.floor(rand() * 40) - 8; // mostly in order, some reordering
    } else if (r < 0.6) {
      c = recent.length > 0 ? (recent[Math.floor(rand() * recent.length)] as number) : cursor; // duplicates
    } else if (r < 0.8) {
      c = cursor - W - 3 + Math.floor(rand() * 8); // right at the window edge
    } else if (r < 0.9) {
      c = cursor - Math.floor(rand() * (W + 200)); // anywhere in or just below the window
    } else if (r < 0.97) {
      c = cursor + Math.floor(rand() * 3 * W); // jumps ahead, some past the whole ring
    } else {
      c = [-1, 1.5, MAX_COUNTER + 1, 2 ** 53, cursor + 0.25][Math.floor(rand() * 5)] as number;
    }
    c = Math.min(c, MAX_COUNTER + 1);
    const want = model.accept(c);
    assert.equal(w.check(c), want, `check(${c}) at ${i}`);
    assert.equal(w.accept(c), want, `accept(${c}) at ${i}`);
    if (want) {
      accepted++;
      if (c > cursor) cursor = c;
      recent.push(c);
      if (recent.length > 64) recent.shift();
    } else {
      rejected++;
    }
  }
  // The mix must exercise both outcomes substantially.
  assert.ok(accepted > 10_000, `accepted ${accepted}`);
  assert.ok(rejected > 10_000, `rejected ${rejected}`);
}
