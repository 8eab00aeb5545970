/**
 * Bounds shared by several wire formats, in a module of their own so that a
 * codec needing one (disco, in the packet worker) does not load the control
 * protocol's zod schemas with it (10 MB of the worker's RSS, 100+ ms of its start).
 */

/** Endpoints one node may advertise: in control messages and in a disco call-me-maybe. */
export const MAX_ENDPOINTS = 64;
