/**
 * warren-control, the coordination server: storage (SQLite behind the Store
 * interface), the HTTPS API (challenges, registration, key rotation), the map
 * streams with versioned deltas (hub), housekeeping (ephemeral nodes, key
 * expiry), the admin API on a unix socket, and the command line.
 */
export * from './store.js';
export * from './sqlite-store.js';
export { ControlServer, type ControlServerOptions } from './server.js';
export { main } from './cli.js';
