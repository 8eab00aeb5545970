/**
 * Bounds shared by several wire formats, in a module of their own so that a
 * codec needing one (disco, in the packet worker) does not load the control
 * protocol's schemas and their validation library with it (10 MB of the
 * worker's RSS and 100+ ms of its start when that library was zod).
 */

/** Endpoints one node may advertise: in control messages and in a disco call-me-maybe. */
export const MAX_ENDPOINTS = 64;
