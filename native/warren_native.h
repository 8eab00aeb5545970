/*
 * warren_native.h — the data plane's native helper (libwarren_native.so).
 *
 * It owns the few things Node cannot do cheaply from JavaScript: opening a TUN
 * device, batched UDP I/O (recvmmsg/sendmmsg) and TUN I/O over nonblocking
 * fds, poll() with an eventfd for wake-ups, and ChaCha20-Poly1305 sealing and
 * opening of WireGuard transport messages in place (OpenSSL libcrypto).
 *
 * It is called through koffi from src/dataplane/io/native.ts, from one worker
 * thread running a poll() loop. Every function returns a negative errno on
 * failure. Nothing here allocates memory per packet: the caller owns every
 * buffer, laid out as fixed-size slots (packet i lives at buf + i*slot).
 *
 * Shared address format ("wn_addr", WN_ADDR_LEN = 20 bytes):
 *
 *   0      1      2      3      4 ..................... 19
 *   +------+------+------+------+-------------------------+
 *   |family|  0   | port (BE)   | address (IPv4 in 4..7)  |
 *   +------+------+------+------+-------------------------+
 *   family is 4 or 6.
 *
 * WireGuard transport message (type 4), as sealed by wn_seal:
 *
 *   0           4                8                16
 *   +-----------+----------------+----------------+-------------------+-----+
 *   |04 00 00 00| receiver (LE32)| counter (LE64) | padded ciphertext | tag |
 *   +-----------+----------------+----------------+-------------------+-----+
 *
 *   The plaintext is padded with zeros to a multiple of 16, capped at the MTU
 *   (wireguard-go's rule: a 1420-byte packet under MTU 1420 stays 1420, so an
 *   IPv6 underlay datagram stays within 1500). Nonce = 4 zero bytes ||
 *   counter (LE64); no AAD; 16-byte Poly1305 tag.
 */
#ifndef WARREN_NATIVE_H
#define WARREN_NATIVE_H

#include <stdint.h>

/* Bumped whenever an exported signature or layout changes; the JS bindings
 * refuse a library built from other sources. */
#define WN_ABI_VERSION 1

#define WN_ADDR_LEN 20      /* bytes per wn_addr */
#define WN_HEADER_LEN 16    /* WireGuard transport header */
#define WN_TAG_LEN 16       /* Poly1305 tag */
#define WN_KEY_LEN 32       /* ChaCha20 key */
#define WN_BATCH_MAX 256    /* datagrams per recvmmsg/sendmmsg system call */
#define WN_POLL_MAX 272     /* fds per wn_poll: 4 + up to 255 extra UDP sockets */

int wn_abi_version(void);

/* Devices and sockets. */
int wn_tun_open(const char *name, char *out_name);
int wn_udp_open(int family, int port, int fwmark, int bufsize);
int wn_sock_port(int fd);
int wn_set_mark(int fd, int mark);
int wn_close(int fd);

/* Batched UDP I/O. errs (may be NULL) receives {dropped, last errno}. */
int wn_udp_recv_batch(int fd, uint8_t *buf, int slot, int max, int32_t *lens,
                      uint8_t *addrs);
int wn_udp_send_batch(int fd, const uint8_t *buf, int slot, int n,
                      const int32_t *offs, const int32_t *lens,
                      const uint8_t *addrs, int32_t *errs);

/* Batched TUN I/O. */
int wn_read_batch(int fd, uint8_t *buf, int slot, int off, int max,
                  int32_t *lens);
int wn_write_batch(int fd, const uint8_t *buf, int slot, int n,
                   const int32_t *offs, const int32_t *lens, int32_t *errs);

/* Waiting and waking. */
int wn_poll(const int32_t *fds, const int16_t *events, int nfds,
            int16_t *revents, int timeout_ms);
int wn_eventfd(void);
int wn_eventfd_signal(int fd);
int wn_eventfd_drain(int fd);

/* WireGuard transport crypto (ChaCha20-Poly1305, in place). */
int wn_seal(const uint8_t *key, uint32_t receiver_index, uint64_t counter,
            uint8_t *pkt, int plain_len, int mtu, int cap);
int wn_open(const uint8_t *key, uint8_t *pkt, int len);
int wn_seal_batch(const uint8_t *key, uint32_t receiver_index,
                  uint64_t first_counter, uint8_t *buf, int slot, int n,
                  int32_t *lens, int mtu);
int wn_open_batch(const uint8_t *keys, const int32_t *key_idx, uint8_t *buf,
                  int slot, int n, const int32_t *offs, int32_t *lens);

/* madvise(MADV_DONTNEED) on a page-aligned range; 0 or -errno. */
int wn_madvise_dontneed(uint64_t addr, uint64_t len);

#endif /* WARREN_NATIVE_H */
