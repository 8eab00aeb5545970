/**
 * The admission stream between warren-relay and warren-control
 * (relay-protocol.md, "Admission"): which node keys a relay may serve, and
 * in which tailnet each one is. The control server sends the whole set in
 * `full` pages, then `delta`s as nodes register, rotate keys, are deleted or
 * expire; both sides send keepalives. Frames use the map stream's framing
 * (control-frames.ts: u32 length + JSON). Zod schemas only: no I/O.
 */
import * as z from 'zod';
import { b64Key } from './control.js';

/** `GET` path of the admission stream on the control server. */
export const ADMISSION_PATH = '/relay/v1/admission';
/** Its `Upgrade:` token. */
export const ADMISSION_UPGRADE_PROTOCOL = 'warren-relay-admission/1';
/** Entries per `full` page (a page stays far below the 4 MiB frame limit). */
export const MAX_ADMISSION_PAGE = 10_000;
/** A relay secret shorter than this is refused (bytes). */
export const MIN_RELAY_SECRET_LEN = 32;

const tailnet = z.string().min(1).max(63).regex(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/, 'not a tailnet name');

export const AdmittedNode = z.strictObject({ key: b64Key, tailnet });
export type AdmittedNode = z.infer<typeof AdmittedNode>;

export const AdmissionFull = z.strictObject({
  type: z.literal('full'),
  /** The control server's keepalive interval: the relay answers at least as often, and 2× silence is a dead stream. */
  keepaliveMs: z.int().min(1).max(3_600_000),
  nodes: z.array(AdmittedNode).max(MAX_ADMISSION_PAGE),
  /** The last page: the relay replaces its set with the pages received since the first. */
  final: z.boolean(),
});
export type AdmissionFull = z.infer<typeof AdmissionFull>;

export const AdmissionDelta = z.strictObject({
  type: z.literal('delta'),
  add: z.array(AdmittedNode).max(MAX_ADMISSION_PAGE),
  remove: z.array(b64Key).max(MAX_ADMISSION_PAGE),
});
export type AdmissionDelta = z.infer<typeof AdmissionDelta>;

export const AdmissionKeepalive = z.strictObject({ type: z.literal('keepalive') });

/** What the control server sends on the admission stream. */
export const AdmissionServerFrame = z.discriminatedUnion('type', [AdmissionFull, AdmissionDelta, AdmissionKeepalive]);
export type AdmissionServerFrame = z.infer<typeof AdmissionServerFrame>;

/** What the relay sends: keepalives only. */
export const AdmissionClientFrame = AdmissionKeepalive;
