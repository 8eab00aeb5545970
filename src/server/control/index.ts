/**
 * The coordination server (`warren-control`): identities, auth keys, tailnet
 * addresses, node names and the versioned change log that feeds netmap deltas.
 *
 * Today this folder holds the storage layer — the async `Store` contract with
 * the rules every backend shares (store.ts) and its SQLite implementation
 * (sqlite-store.ts). The HTTPS endpoints (challenge, register, rotate), the
 * per-node map streams and the admin API over a unix socket come next and
 * build on the store; PostgreSQL can implement the same interface later.
 */
export * from './store.js';
export * from './sqlite-store.js';
