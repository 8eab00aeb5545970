/**
 * Servers: warren-control (control/) and, later, warren-relay; shared TLS
 * certificate handling (tls-cert.ts). Never imported by the node side.
 */
export * as control from './control/index.js';
export * from './tls-cert.js';
