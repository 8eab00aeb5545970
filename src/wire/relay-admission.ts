/**
 * The admission stream between warren-relay and warren-control
 * (relay-protocol.md, "Admission"): which node keys a relay may serve, and
 * in which tailnet each one is. The control server sends the whole set in
 * `full` pages, then `delta`s as nodes register, rotate keys, are deleted or
 * expire; both sides send keepalives. Frames use the map stream's framing
 * (control-frames.ts: u32 length + JSON). valibot schemas only: no I/O.
 */
import * as v from 'valibot';
import { b64Key } from './control.js';

/** `GET` path of the admission stream on the control server. */
export const ADMISSION_PATH = '/relay/v1/admission';
/** Its `Upgrade:` token. */
export const ADMISSION_UPGRADE_PROTOCOL = 'warren-relay-admission/1';
/** Entries per `full` page (a page stays far below the 4 MiB frame limit). */
export const MAX_ADMISSION_PAGE = 10_000;
/** A relay secret shorter than this is refused (bytes). */
export const MIN_RELAY_SECRET_LEN = 32;

const tailnet = v.pipe(v.string(), v.minLength(1), v.maxLength(63), v.regex(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/, 'not a tailnet name'));

export const AdmittedNode = v.strictObject({ key: b64Key, tailnet });
export type AdmittedNode = v.InferOutput<typeof AdmittedNode>;

export const AdmissionFull = v.strictObject({
  type: v.literal('full'),
  /** The control server's keepalive interval: the relay answers at least as often, and 2× silence is a dead stream. */
  keepaliveMs: v.pipe(v.number(), v.safeInteger(), v.minValue(1), v.maxValue(3_600_000)),
  nodes: v.pipe(v.array(AdmittedNode), v.maxLength(MAX_ADMISSION_PAGE)),
  /** The last page: the relay replaces its set with the pages received since the first. */
  final: v.boolean(),
});
export type AdmissionFull = v.InferOutput<typeof AdmissionFull>;

export const AdmissionDelta = v.strictObject({
  type: v.literal('delta'),
  add: v.pipe(v.array(AdmittedNode), v.maxLength(MAX_ADMISSION_PAGE)),
  remove: v.pipe(v.array(b64Key), v.maxLength(MAX_ADMISSION_PAGE)),
});
export type AdmissionDelta = v.InferOutput<typeof AdmissionDelta>;

export const AdmissionKeepalive = v.strictObject({ type: v.literal('keepalive') });

/** What the control server sends on the admission stream. */
export const AdmissionServerFrame = v.variant('type', [AdmissionFull, AdmissionDelta, AdmissionKeepalive]);
export type AdmissionServerFrame = v.InferOutput<typeof AdmissionServerFrame>;

/** What the relay sends: keepalives only. */
export const AdmissionClientFrame = AdmissionKeepalive;
