/**
 * dataplane/io owns the data plane's contact with the kernel: the TUN device,
 * the UDP sockets, batched packet I/O through preallocated buffers, poll() and
 * the eventfd that wakes the data-plane worker, and the native ChaCha20-Poly1305
 * sealing of WireGuard transport messages. The C side is native/warren_native.c
 * (built by `make native`); native.ts binds it with koffi.
 *
 * Nothing here knows about peers, sessions or routing: callers hand it fds,
 * buffers, keys and counters, and it moves and transforms bytes. Per-packet
 * calls never throw or allocate; they return counts or a negative errno.
 *
 * @packageDocumentation
 */
export * from './native.js';
