/**
 * The LocalAPI: HTTP over a unix socket (owner-only) between warrend and the
 * warren CLI (and later the web console). Server, client, and default paths.
 */
export * from './server.js';
export * from './client.js';
export * from './paths.js';
