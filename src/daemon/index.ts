/**
 * warrend's process-level wiring: flags, modes (plain WireGuard today, mesh
 * later), test-only knobs, signals and shutdown.
 */
export { main } from './main.js';
