/**
 * warren-relay: the HTTPS relay that forwards opaque packets between
 * connected node keys (server, conn, counters, token-bucket), admitted from
 * the control server's list (admission-client, admission-set, secret-file),
 * the STUN server on the same host (stun-server), and its command line (cli).
 * Protocol: src/wire/relay-protocol.md.
 */
export { RelayServer, type RelayServerOptions, type RelayRateLimit, DEFAULT_CLIENT_RATE } from './server.js';
export { AdmissionSet } from './admission-set.js';
export { AdmissionClient, type AdmissionClientOptions } from './admission-client.js';
export { readSecretFile, SecretFileError } from './secret-file.js';
export type { RelayCounters } from './counters.js';
export { main } from './cli.js';
