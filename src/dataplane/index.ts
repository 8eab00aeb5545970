/**
 * The data plane: WireGuard sessions and timers (device, handshake, peer,
 * keypair, noise, cookie, replay), cryptokey routing (allowed-ips), transport
 * crypto, and the engine that runs the packet path in a worker thread over a
 * TUN and UDP sockets (engine, engine-worker, io/). The control side hands it
 * immutable DeviceConfig snapshots through Engine.reconfig; the packet path
 * never waits on control, disk or HTTP.
 */
export { Engine, type EngineOptions } from './engine.js';
export { Device, type DeviceConfig, type PeerConfig, type DeviceIO } from './device.js';
export type { DeviceStatus, PeerStatus } from './status.js';
