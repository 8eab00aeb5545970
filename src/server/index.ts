/**
 * Servers: warren-control (control/) and warren-relay (relay/); shared TLS
 * certificate handling (tls-cert.ts). Never imported by the node side.
 */
export * as control from './control/index.js';
export * as relay from './relay/index.js';
export * from './tls-cert.js';
