/**
 * The router's `ip -force -batch` error parsing, against stderr captured from
 * iproute2 6.1 (Debian bookworm): each failed line's message is attributed to
 * its command, the others succeed.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { parseIpBatchErrors } from '../../src/control/router.js';

// `printf 'route add A dev d0\nroute add A dev d0\nroute add B dev nodev\nroute del C dev d0\nroute add D dev d0\n' | ip -force -batch -`
const CAPTURED = 'RTNETLINK answers: File exists\nCommand failed -:2\nCannot find device "nodev"\nCommand failed -:3\nRTNETLINK answers: No such process\nCommand failed -:4\n';

test('each failure goes to its line; the rest worked', () => {
  assert.deepEqual(parseIpBatchErrors(CAPTURED, 5, 1), [
    null, 'RTNETLINK answers: File exists', 'Cannot find device "nodev"', 'RTNETLINK answers: No such process', null,
  ]);
});

test('no stderr and exit 0: all worked', () => {
  assert.deepEqual(parseIpBatchErrors('', 3, 0), [null, null, null]);
});

test('a non-zero exit with no line named fails every command instead of claiming success', () => {
  assert.deepEqual(parseIpBatchErrors('ip: out of memory\n', 2, 1), ['ip: out of memory', 'ip: out of memory']);
});

test('line numbers out of range are ignored', () => {
  assert.deepEqual(parseIpBatchErrors('boom\nCommand failed -:9\n', 2, 1), [null, null]);
});
