/*
 * warren_native.c — see warren_native.h for what this library owns, the
 * wn_addr layout and the WireGuard transport framing.
 *
 * Conventions: every exported function returns a negative errno on failure;
 * fds are nonblocking and close-on-exec; batches live in caller-owned buffers
 * of fixed-size slots; system-call scratch (mmsghdr, iovec, sockaddr) lives on
 * the stack, so nothing is allocated per packet. The only allocations are
 * each thread's crypto state (cipher and MAC contexts, a scratch buffer),
 * made on first use and freed when the thread exits.
 */
#define _GNU_SOURCE
#include "warren_native.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define WN_EXPORT __attribute__((visibility("default")))

int WN_EXPORT wn_abi_version(void) { return WN_ABI_VERSION; }

/* ------------------------------------------------------------------------ */
/* Addresses                                                                */
/* ------------------------------------------------------------------------ */

union wn_sockaddr {
    struct sockaddr sa;
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
};

/* wn_addr -> sockaddr. Returns the sockaddr length, or 0 for an unknown
 * family (the kernel then refuses the datagram with EDESTADDRREQ). */
static socklen_t addr_to_sockaddr(const uint8_t *a, union wn_sockaddr *sa)
{
    uint16_t port_be;
    memcpy(&port_be, a + 2, 2); /* already network order */
    memset(sa, 0, sizeof *sa);
    if (a[0] == 4) {
        sa->v4.sin_family = AF_INET;
        sa->v4.sin_port = port_be;
        memcpy(&sa->v4.sin_addr, a + 4, 4);
        return sizeof sa->v4;
    }
    if (a[0] == 6) {
        sa->v6.sin6_family = AF_INET6;
        sa->v6.sin6_port = port_be;
        memcpy(&sa->v6.sin6_addr, a + 4, 16);
        return sizeof sa->v6;
    }
    return 0;
}

/* sockaddr -> wn_addr (unknown families become all zeros). */
static void sockaddr_to_addr(const union wn_sockaddr *sa, uint8_t *a)
{
    memset(a, 0, WN_ADDR_LEN);
    if (sa->sa.sa_family == AF_INET) {
        a[0] = 4;
        memcpy(a + 2, &sa->v4.sin_port, 2);
        memcpy(a + 4, &sa->v4.sin_addr, 4);
    } else if (sa->sa.sa_family == AF_INET6) {
        a[0] = 6;
        memcpy(a + 2, &sa->v6.sin6_port, 2);
        memcpy(a + 4, &sa->v6.sin6_addr, 16);
    }
}

/* Errors that concern the fd or the caller's memory rather than one packet:
 * a batch stops on them instead of skipping the packet. */
static int is_fatal(int e) { return e == EBADF || e == ENOTSOCK || e == EFAULT; }

/* ------------------------------------------------------------------------ */
/* Devices and sockets                                                      */
/* ------------------------------------------------------------------------ */

int WN_EXPORT wn_tun_open(const char *name, char *out_name)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    if (name != NULL) {
        if (strlen(name) >= IFNAMSIZ)
            return -EINVAL;
        strcpy(ifr.ifr_name, name); /* "" lets the kernel pick tunN */
    }
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;

    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (out_name != NULL) {
        memcpy(out_name, ifr.ifr_name, IFNAMSIZ);
        out_name[IFNAMSIZ - 1] = '\0';
    }
    return fd;
}

/* Set a buffer size, preferring the *FORCE variant (needs CAP_NET_ADMIN,
 * ignores net.core.[rw]mem_max) and falling back to the capped one. */
static int set_bufsize(int fd, int force_opt, int opt, int size)
{
    if (setsockopt(fd, SOL_SOCKET, force_opt, &size, sizeof size) == 0)
        return 0;
    if (setsockopt(fd, SOL_SOCKET, opt, &size, sizeof size) == 0)
        return 0;
    return -errno;
}

int WN_EXPORT wn_udp_open(int family, int port, int fwmark, int bufsize)
{
    if ((family != 4 && family != 6) || port < 0 || port > 65535)
        return -EINVAL;
    int af = family == 4 ? AF_INET : AF_INET6;
    int fd = socket(af, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;

    int one = 1, e = 0;
    /* SO_REUSEADDR stays off (the default): a port is ours alone. */
    if (af == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)
        e = -errno;
    if (e == 0 && fwmark != 0 &&
        setsockopt(fd, SOL_SOCKET, SO_MARK, &fwmark, sizeof fwmark) < 0)
        e = -errno;
    if (e == 0 && bufsize > 0)
        e = set_bufsize(fd, SO_RCVBUFFORCE, SO_RCVBUF, bufsize);
    if (e == 0 && bufsize > 0)
        e = set_bufsize(fd, SO_SNDBUFFORCE, SO_SNDBUF, bufsize);
    if (e == 0) {
        union wn_sockaddr sa;
        socklen_t len;
        memset(&sa, 0, sizeof sa);
        if (af == AF_INET) {
            sa.v4.sin_family = AF_INET;
            sa.v4.sin_port = htons((uint16_t)port);
            sa.v4.sin_addr.s_addr = htonl(INADDR_ANY);
            len = sizeof sa.v4;
        } else {
            sa.v6.sin6_family = AF_INET6;
            sa.v6.sin6_port = htons((uint16_t)port);
            sa.v6.sin6_addr = in6addr_any;
            len = sizeof sa.v6;
        }
        if (bind(fd, &sa.sa, len) < 0)
            e = -errno;
    }
    if (e != 0) {
        close(fd);
        return e;
    }
    return fd;
}

int WN_EXPORT wn_sock_port(int fd)
{
    union wn_sockaddr sa;
    socklen_t len = sizeof sa;
    if (getsockname(fd, &sa.sa, &len) < 0)
        return -errno;
    if (sa.sa.sa_family == AF_INET)
        return ntohs(sa.v4.sin_port);
    if (sa.sa.sa_family == AF_INET6)
        return ntohs(sa.v6.sin6_port);
    return -EAFNOSUPPORT;
}

int WN_EXPORT wn_set_mark(int fd, int mark)
{
    if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) < 0)
        return -errno;
    return 0;
}

int WN_EXPORT wn_close(int fd)
{
    /* On Linux the fd is released even when close() reports EINTR. */
    if (close(fd) < 0 && errno != EINTR)
        return -errno;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Batched UDP                                                              */
/* ------------------------------------------------------------------------ */

/* Receive up to max datagrams (at most WN_BATCH_MAX per call). Datagram i goes
 * to buf + i*slot, its length to lens[i] (-1 if it did not fit in a slot),
 * its source to addrs + i*WN_ADDR_LEN (addrs may be NULL). Returns the count,
 * 0 when nothing is waiting. */
int WN_EXPORT wn_udp_recv_batch(int fd, uint8_t *buf, int slot, int max,
                                int32_t *lens, uint8_t *addrs)
{
    if (slot <= 0 || max < 0)
        return -EINVAL;
    int n = max < WN_BATCH_MAX ? max : WN_BATCH_MAX;
    if (n == 0)
        return 0;

    struct mmsghdr msgs[WN_BATCH_MAX];
    struct iovec iov[WN_BATCH_MAX];
    union wn_sockaddr names[WN_BATCH_MAX];
    memset(msgs, 0, sizeof msgs[0] * (size_t)n);
    for (int i = 0; i < n; i++) {
        iov[i].iov_base = buf + (size_t)i * (size_t)slot;
        iov[i].iov_len = (size_t)slot;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &names[i];
        msgs[i].msg_hdr.msg_namelen = sizeof names[i];
    }

    int r;
    do {
        r = recvmmsg(fd, msgs, (unsigned)n, MSG_DONTWAIT, NULL);
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;

    for (int i = 0; i < r; i++) {
        lens[i] = (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) ? -1
                                                          : (int32_t)msgs[i].msg_len;
        if (addrs != NULL)
            sockaddr_to_addr(&names[i], addrs + (size_t)i * WN_ADDR_LEN);
    }
    return r;
}

/* Record one dropped packet in errs = {dropped count, last errno}. */
static void count_drop(int32_t *errs, int e)
{
    if (errs != NULL) {
        errs[0]++;
        errs[1] = e;
    }
}

/* Batch arguments of the send/write functions. slot == 0: offs[] are
 * absolute offsets into buf (the caller picks packets from any slot and
 * guarantees the bounds); otherwise each packet must lie in its own slot. */
static int batch_ok(int slot, int n, const int32_t *offs, const int32_t *lens)
{
    if (slot < 0 || n < 0)
        return 0;
    for (int i = 0; i < n; i++)
        if (offs[i] < 0 || lens[i] < 0 || (slot > 0 && (int64_t)offs[i] + lens[i] > slot))
            return 0;
    return 1;
}

/* Send n datagrams: datagram i is lens[i] bytes at buf + i*slot + offs[i],
 * to addrs + i*WN_ADDR_LEN. A datagram the kernel refuses for itself
 * (ENETUNREACH, EMSGSIZE, EPERM, ...) is skipped and counted in
 * errs = {dropped, last errno} (errs may be NULL; it is reset first).
 *
 * Returns the number of datagrams consumed (sent + dropped), in order: fewer
 * than n means the socket buffer is full (EAGAIN) and the caller should
 * resume from that index after POLLOUT. Returns -errno only when the fd
 * itself is unusable and nothing was consumed, or -EINVAL for a packet
 * outside its slot (nothing is sent then). */
int WN_EXPORT wn_udp_send_batch(int fd, const uint8_t *buf, int slot, int n,
                                const int32_t *offs, const int32_t *lens,
                                const uint8_t *addrs, int32_t *errs)
{
    if (errs != NULL)
        errs[0] = errs[1] = 0;
    if (!batch_ok(slot, n, offs, lens))
        return -EINVAL;

    struct mmsghdr msgs[WN_BATCH_MAX];
    struct iovec iov[WN_BATCH_MAX];
    union wn_sockaddr names[WN_BATCH_MAX];

    for (int base = 0; base < n; base += WN_BATCH_MAX) {
        int c = n - base < WN_BATCH_MAX ? n - base : WN_BATCH_MAX;
        memset(msgs, 0, sizeof msgs[0] * (size_t)c);
        for (int j = 0; j < c; j++) {
            int i = base + j;
            iov[j].iov_base = (void *)(buf + (size_t)i * (size_t)slot + offs[i]);
            iov[j].iov_len = (size_t)lens[i];
            msgs[j].msg_hdr.msg_iov = &iov[j];
            msgs[j].msg_hdr.msg_iovlen = 1;
            msgs[j].msg_hdr.msg_name = &names[j];
            msgs[j].msg_hdr.msg_namelen =
                addr_to_sockaddr(addrs + (size_t)i * WN_ADDR_LEN, &names[j]);
        }
        /* sendmmsg stops at the first failing datagram and reports the error
         * only if nothing was sent; the next call then fails on it. */
        int k = 0;
        while (k < c) {
            int r = sendmmsg(fd, msgs + k, (unsigned)(c - k), MSG_DONTWAIT);
            if (r > 0) {
                k += r;
                continue;
            }
            int e = errno;
            if (e == EINTR)
                continue;
            if (e == EAGAIN || e == EWOULDBLOCK)
                return base + k;
            if (is_fatal(e))
                return base + k > 0 ? base + k : -e;
            count_drop(errs, e); /* this datagram only */
            k++;
        }
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* Batched TUN                                                              */
/* ------------------------------------------------------------------------ */

/* Read packets until EAGAIN or max: packet i goes to buf + i*slot + off (at
 * most slot - off bytes; size slots for the MTU), its length to lens[i]. */
int WN_EXPORT wn_read_batch(int fd, uint8_t *buf, int slot, int off, int max,
                            int32_t *lens)
{
    if (off < 0 || slot <= off || max < 0)
        return -EINVAL;
    int i = 0;
    while (i < max) {
        ssize_t r = read(fd, buf + (size_t)i * (size_t)slot + off,
                         (size_t)(slot - off));
        if (r < 0) {
            int e = errno;
            if (e == EINTR)
                continue;
            if (e == EAGAIN || e == EWOULDBLOCK || i > 0)
                break;
            return -e;
        }
        if (r == 0)
            break;
        lens[i++] = (int32_t)r;
    }
    return i;
}

/* Write n packets (packet i: lens[i] bytes at buf + i*slot + offs[i]). Same
 * contract as wn_udp_send_batch: returns the number consumed, a packet the
 * kernel refuses (EINVAL for a non-IP packet, ...) is skipped and counted in
 * errs = {dropped, last errno}; fewer than n means EAGAIN. */
int WN_EXPORT wn_write_batch(int fd, const uint8_t *buf, int slot, int n,
                             const int32_t *offs, const int32_t *lens,
                             int32_t *errs)
{
    if (errs != NULL)
        errs[0] = errs[1] = 0;
    if (!batch_ok(slot, n, offs, lens))
        return -EINVAL;

    int i = 0;
    while (i < n) {
        ssize_t r = write(fd, buf + (size_t)i * (size_t)slot + offs[i],
                          (size_t)lens[i]);
        if (r >= 0) {
            i++;
            continue;
        }
        int e = errno;
        if (e == EINTR)
            continue;
        if (e == EAGAIN || e == EWOULDBLOCK)
            break;
        if (is_fatal(e))
            return i > 0 ? i : -e;
        count_drop(errs, e);
        i++;
    }
    return i;
}

/* ------------------------------------------------------------------------ */
/* Waiting and waking                                                       */
/* ------------------------------------------------------------------------ */

/* poll() the fds for events[i] (POLLIN for all when events is NULL); the
 * results land in revents[i]. Returns the number of ready fds, 0 on timeout
 * or when interrupted by a signal (the caller's loop just polls again). */
int WN_EXPORT wn_poll(const int32_t *fds, const int16_t *events, int nfds,
                      int16_t *revents, int timeout_ms)
{
    if (nfds < 0 || nfds > WN_POLL_MAX)
        return -EINVAL;
    struct pollfd p[WN_POLL_MAX];
    for (int i = 0; i < nfds; i++) {
        p[i].fd = fds[i];
        p[i].events = events != NULL ? events[i] : POLLIN;
        p[i].revents = 0;
    }
    int r = poll(p, (nfds_t)nfds, timeout_ms);
    if (r < 0 && errno != EINTR)
        return -errno;
    for (int i = 0; i < nfds; i++)
        revents[i] = r > 0 ? p[i].revents : 0;
    return r < 0 ? 0 : r;
}

int WN_EXPORT wn_eventfd(void)
{
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int WN_EXPORT wn_eventfd_signal(int fd)
{
    uint64_t one = 1;
    for (;;) {
        if (write(fd, &one, sizeof one) == (ssize_t)sizeof one)
            return 0;
        if (errno == EINTR)
            continue;
        /* EAGAIN: the counter is saturated, so the fd is readable anyway. */
        return errno == EAGAIN ? 0 : -errno;
    }
}

/* Reset the counter; returns how many signals it held (0 if none). */
int WN_EXPORT wn_eventfd_drain(int fd)
{
    uint64_t v;
    for (;;) {
        if (read(fd, &v, sizeof v) == (ssize_t)sizeof v)
            return v > INT_MAX ? INT_MAX : (int)v;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN ? 0 : -errno;
    }
}

/* ------------------------------------------------------------------------ */
/* WireGuard transport crypto                                               */
/* ------------------------------------------------------------------------ */

/*
 * ChaCha20-Poly1305 (RFC 8439) built from OpenSSL's raw ChaCha20 cipher and
 * its Poly1305 MAC rather than its AEAD cipher, for the sake of speed. The
 * AEAD cipher makes three ChaCha20 calls per packet: one for the Poly1305 key
 * (block 0), one for the whole blocks of the payload, and one for the last
 * partial block. A call of one block costs about as much as sixteen blocks in
 * OpenSSL's wide SIMD code (AVX-512 here: 144 ns for 64 bytes, 159 ns for
 * 1024), so this code runs one call per packet instead: the payload is copied
 * into a per-thread scratch buffer behind 64 zero bytes, and ChaCha20 runs
 * from block 0 over whole blocks, leaving the Poly1305 key in the first 32
 * bytes and the payload's ciphertext after it. The two copies cost ~16 ns
 * each for a 1420-byte packet.
 *
 * The cipher and MAC are fetched once per process (an implicit fetch on every
 * init is slow in OpenSSL 3); each thread gets its own contexts and scratch,
 * reused for every packet and freed by a pthread key destructor at exit.
 */
#define WN_CHUNK 2048 /* payload bytes through the scratch, a multiple of 64 */
#define WN_BLOCK 64   /* ChaCha20 block */

static EVP_CIPHER *g_chacha;
static EVP_MAC *g_poly;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_key;

/* A ChaCha20 context remembers the key it holds, so a packet under the same
 * key as the previous one only sets the nonce (re-keying costs ~25 ns). Seal
 * and open have a context each: a session's two directions use two keys. */
struct wn_stream {
    EVP_CIPHER_CTX *ctx;
    int has_key;
    uint8_t key[WN_KEY_LEN];
};
struct wn_thread {
    uint8_t scratch[WN_BLOCK + WN_CHUNK] __attribute__((aligned(64)));
    struct wn_stream seal, open;
    EVP_MAC_CTX *poly;
};
static __thread struct wn_thread *t_state;

static void thread_free(void *p)
{
    struct wn_thread *t = p;
    EVP_CIPHER_CTX_free(t->seal.ctx);
    EVP_CIPHER_CTX_free(t->open.ctx);
    EVP_MAC_CTX_free(t->poly);
    OPENSSL_cleanse(t, sizeof *t);
    free(t);
}

static void global_init(void)
{
    g_chacha = EVP_CIPHER_fetch(NULL, "ChaCha20", NULL);
    g_poly = EVP_MAC_fetch(NULL, "POLY1305", NULL);
    if (g_chacha == NULL || g_poly == NULL ||
        pthread_key_create(&g_key, thread_free) != 0) {
        EVP_CIPHER_free(g_chacha);
        EVP_MAC_free(g_poly);
        g_chacha = NULL;
        g_poly = NULL;
    }
}

static struct wn_thread *thread_state(void)
{
    if (t_state != NULL)
        return t_state;
    pthread_once(&g_once, global_init);
    if (g_chacha == NULL)
        return NULL;
    struct wn_thread *t = aligned_alloc(64, sizeof *t);
    if (t == NULL)
        return NULL;
    memset(t, 0, sizeof *t);
    t->seal.ctx = EVP_CIPHER_CTX_new();
    t->open.ctx = EVP_CIPHER_CTX_new();
    t->poly = EVP_MAC_CTX_new(g_poly);
    if (t->seal.ctx == NULL || t->open.ctx == NULL || t->poly == NULL ||
        EVP_EncryptInit_ex2(t->seal.ctx, g_chacha, NULL, NULL, NULL) != 1 ||
        EVP_EncryptInit_ex2(t->open.ctx, g_chacha, NULL, NULL, NULL) != 1 ||
        pthread_setspecific(g_key, t) != 0) {
        thread_free(t);
        return NULL;
    }
    t_state = t;
    return t;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* WireGuard's padding (wireguard-go calculatePaddingSize): round up to 16,
 * but never past the MTU; mtu <= 0 means no cap. Returns the padded length. */
static int padded_len(int len, int mtu)
{
    if (mtu <= 0)
        return (len + 15) & ~15;
    int last = len > mtu ? len % mtu : len;
    int padded = (last + 15) & ~15;
    if (padded > mtu)
        padded = mtu;
    return len + (padded - last);
}

/* Key equality without an early exit (both keys are secret). */
static int same_key(const uint8_t *a, const uint8_t *b)
{
    uint64_t x, y, d = 0;
    for (int i = 0; i < WN_KEY_LEN; i += 8) {
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        d |= x ^ y;
    }
    return d == 0;
}

/* Start the stream for one message (nonce = 4 zero bytes || counter LE64)
 * and run it over the first min(len, WN_CHUNK) bytes of data, through the
 * scratch: scratch[0..32] becomes the Poly1305 key and scratch+64 the
 * transformed bytes (data itself is untouched). Returns the number of bytes
 * done, or -1. The stream then stands at a block boundary. */
static int stream_start(struct wn_thread *t, struct wn_stream *s,
                        const uint8_t *key, const uint8_t *counter_le,
                        const uint8_t *data, int len)
{
    uint8_t iv[16] = {0}; /* OpenSSL's layout: block counter (LE32) || nonce */
    memcpy(iv + 8, counter_le, 8);
    int same = s->has_key && same_key(s->key, key);
    if (EVP_CipherInit_ex2(s->ctx, NULL, same ? NULL : key, iv, -1, NULL) != 1) {
        s->has_key = 0;
        return -1;
    }
    if (!same) {
        memcpy(s->key, key, WN_KEY_LEN);
        s->has_key = 1;
    }
    int n = len < WN_CHUNK ? len : WN_CHUNK;
    memset(t->scratch, 0, WN_BLOCK);
    memcpy(t->scratch + WN_BLOCK, data, (size_t)n);
    /* Whole blocks only: the bytes past n are whatever the scratch held. */
    int run = WN_BLOCK + ((n + WN_BLOCK - 1) & ~(WN_BLOCK - 1));
    int outl;
    if (EVP_EncryptUpdate(s->ctx, t->scratch, &outl, t->scratch, run) != 1)
        return -1;
    return n;
}

/* Continue the stream in place over the bytes past the first chunk. */
static int stream_rest(struct wn_stream *s, uint8_t *data, int len)
{
    int outl;
    return len <= 0 || EVP_EncryptUpdate(s->ctx, data, &outl, data, len) == 1;
}

/* Poly1305 of RFC 8439's AEAD construction with no AAD: ciphertext, zeros to
 * a multiple of 16, then LE64(0) || LE64(len). The key is scratch[0..32]. */
static int poly_tag(struct wn_thread *t, const uint8_t *ct, int len,
                    uint8_t tag[WN_TAG_LEN])
{
    uint8_t trailer[32] = {0};
    int pad = (16 - (len & 15)) & 15;
    put_le64(trailer + pad + 8, (uint64_t)len);
    size_t outl;
    return EVP_MAC_init(t->poly, t->scratch, 32, NULL) == 1 &&
           EVP_MAC_update(t->poly, ct, (size_t)len) == 1 &&
           EVP_MAC_update(t->poly, trailer, (size_t)pad + 16) == 1 &&
           EVP_MAC_final(t->poly, tag, &outl, WN_TAG_LEN) == 1 &&
           outl == WN_TAG_LEN;
}

/* Seal in place: plaintext at pkt+16, plain_len bytes; writes header, padded
 * ciphertext and tag. Returns the message length, -EMSGSIZE if it would not
 * fit in cap bytes. */
int WN_EXPORT wn_seal(const uint8_t *key, uint32_t receiver_index,
                      uint64_t counter, uint8_t *pkt, int plain_len, int mtu,
                      int cap)
{
    if (plain_len < 0)
        return -EINVAL;
    int body = padded_len(plain_len, mtu);
    int total = WN_HEADER_LEN + body + WN_TAG_LEN;
    if (total > cap)
        return -EMSGSIZE;
    struct wn_thread *t = thread_state();
    if (t == NULL)
        return -ENOMEM;

    uint8_t *data = pkt + WN_HEADER_LEN;
    memset(data + plain_len, 0, (size_t)(body - plain_len));
    put_le32(pkt, 4);
    put_le32(pkt + 4, receiver_index);
    put_le64(pkt + 8, counter);
    int n = stream_start(t, &t->seal, key, pkt + 8, data, body);
    if (n < 0)
        return -EIO;
    memcpy(data, t->scratch + WN_BLOCK, (size_t)n);
    if (!stream_rest(&t->seal, data + n, body - n) ||
        !poly_tag(t, data, body, data + body))
        return -EIO;
    return total;
}

/* Open in place: len is the whole message. Returns the plaintext length
 * (len - 32, padding included) at pkt+16, or -EBADMSG (a message of up to
 * WN_CHUNK payload bytes is then left as it was; a longer one may not be).
 * The caller checks the counter (pkt+8, LE) against its replay window after
 * this succeeds. */
int WN_EXPORT wn_open(const uint8_t *key, uint8_t *pkt, int len)
{
    if (len < WN_HEADER_LEN + WN_TAG_LEN)
        return -EBADMSG;
    struct wn_thread *t = thread_state();
    if (t == NULL)
        return -ENOMEM;

    int body = len - WN_HEADER_LEN - WN_TAG_LEN;
    uint8_t *data = pkt + WN_HEADER_LEN;
    uint8_t tag[WN_TAG_LEN];
    /* The first chunk's plaintext waits in the scratch until the tag checks. */
    int n = stream_start(t, &t->open, key, pkt + 8, data, body);
    if (n < 0 || !poly_tag(t, data, body, tag))
        return -EIO;
    if (CRYPTO_memcmp(tag, data + body, WN_TAG_LEN) != 0)
        return -EBADMSG;
    memcpy(data, t->scratch + WN_BLOCK, (size_t)n);
    if (!stream_rest(&t->open, data + n, body - n))
        return -EIO;
    return body;
}

/* Seal n packets of one session with counters first_counter + i: packet i's
 * plaintext is lens[i] bytes at buf + i*slot + 16; lens[i] becomes the
 * message length or a negative errno. Returns the number sealed. */
int WN_EXPORT wn_seal_batch(const uint8_t *key, uint32_t receiver_index,
                            uint64_t first_counter, uint8_t *buf, int slot,
                            int n, int32_t *lens, int mtu)
{
    int ok = 0;
    for (int i = 0; i < n; i++) {
        lens[i] = wn_seal(key, receiver_index, first_counter + (uint64_t)i,
                          buf + (size_t)i * (size_t)slot, lens[i], mtu, slot);
        ok += lens[i] >= 0;
    }
    return ok;
}

/* Open n received messages: message i is lens[i] bytes at buf + i*slot +
 * offs[i] (offs may be NULL: all 0), opened with the key at keys +
 * 32*key_idx[i] (key_idx may be NULL: key 0; a negative index skips the
 * packet with -ENOKEY). lens[i] becomes the plaintext length or a negative
 * errno. Returns the number opened. */
int WN_EXPORT wn_open_batch(const uint8_t *keys, const int32_t *key_idx,
                            uint8_t *buf, int slot, int n, const int32_t *offs,
                            int32_t *lens)
{
    int ok = 0;
    for (int i = 0; i < n; i++) {
        int k = key_idx != NULL ? key_idx[i] : 0;
        if (k < 0) {
            lens[i] = -ENOKEY;
            continue;
        }
        uint8_t *pkt = buf + (size_t)i * (size_t)slot + (offs ? offs[i] : 0);
        lens[i] = wn_open(keys + (size_t)k * WN_KEY_LEN, pkt, lens[i]);
        ok += lens[i] >= 0;
    }
    return ok;
}

/* ------------------------------------------------------------------------ */
/* Memory                                                                   */
/* ------------------------------------------------------------------------ */

/*
 * Drop this process's mappings of [addr, addr+len): madvise(MADV_DONTNEED).
 * Only for private, read-only file mappings whose pages are unmodified copies
 * of the file (page-trim.ts checks smaps first): their pages stay in the page
 * cache and come back on the next touch as minor faults.
 */
int WN_EXPORT wn_madvise_dontneed(uint64_t addr, uint64_t len)
{
    if (addr == 0 || len == 0 || (addr & 4095) != 0)
        return -EINVAL;
    return madvise((void *)(uintptr_t)addr, (size_t)len, MADV_DONTNEED) == 0 ? 0 : -errno;
}
