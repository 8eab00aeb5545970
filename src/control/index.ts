/**
 * The control side of a node: configuration sources (wg-quick files today;
 * the coordination-server client later) and the router that makes the OS
 * match the desired addresses, routes and policy rules.
 */
export * from './wgquick.js';
export * from './router.js';
