/**
 * NAT traversal on the node side: the relay client (packets over HTTPS when
 * UDP cannot get through), the STUN client (what our data socket looks like
 * from outside), disco (sealed ping/pong/call-me-maybe between peers' disco
 * keys), path choice (relay first, then the best direct path, back to the
 * relay when it goes quiet), netcheck and port mapping (portmap/). Same layer as control: it may use
 * wire and dataplane, never cli or daemon.
 */
export * from './traversal.js';
export * from './peer-paths.js';
export * from './path-timers.js';
export * from './netcheck.js';
export * from './relay-pool.js';
export * from './relay-client.js';
export * from './stun-client.js';
export * from './portmap/index.js';
