/*
 * dfslocal: local reads, the client side (docs/LOCAL_READS.md).
 *
 * For each chunkserver address the session meets, whether it runs on
 * this host: asked once with PROTO_CS_LOCAL over TCP, then proven by
 * connecting to the abstract socket it names (which only a process in
 * the same kernel and network namespace can).  Requests on that socket
 * return chunk files' descriptors; reads then pread the file and verify
 * every block against the CRCs stored beside it.
 *
 * Locking: ls->mu guards the server table and the idle connections; no
 * socket call is made under it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "common/dfs_error.h"
#include "common/ev.h"
#include "common/libdfs/dfs_priv.h"
#include "common/net.h"

#define LOCAL_SERVERS 64
#define LOCAL_IDLE 2            /* idle connections kept per server */
#define LOCAL_RETRY_MS 30000    /* before asking a non-local server again */
#define LOCAL_DOWN_MS 2000      /* ... and one that did not answer */
#define LOCAL_IO_MS 10000       /* one request on the local socket */
#define B PROTO_BLOCK_SIZE
#define LOCAL_RUN 4             /* blocks read with one pread */

enum local_state { LOCAL_UNKNOWN, LOCAL_NO, LOCAL_YES };

/* What PROTO_CS_LOCAL tells of a server's local socket. */
struct local_peer {
    char name[PROTO_LOCAL_NAME_MAX];
    uint8_t token[PROTO_LOCAL_TOKEN];
    uint32_t pid, uid;          /* the socket's owner */
};

struct local_server {
    char addr[PROTO_ADDR_MAX];
    enum local_state state;
    uint64_t no_until;          /* LOCAL_NO: ask again after (ev_clock_ms) */
    struct local_peer peer;     /* LOCAL_YES */
    int idle[LOCAL_IDLE];
    size_t nidle;
};

struct dfs_locals {
    pthread_mutex_t mu;
    bool enabled;
    struct local_server srv[LOCAL_SERVERS];
    size_t n;
};

struct dfs_locals *dfs_locals_new(bool enabled)
{
    struct dfs_locals *ls = calloc(1, sizeof(*ls));
    if (!ls)
        return NULL;
    pthread_mutex_init(&ls->mu, NULL);
    ls->enabled = enabled;
    return ls;
}

void dfs_locals_free(struct dfs_locals *ls)
{
    if (!ls)
        return;
    for (size_t i = 0; i < ls->n; i++)
        for (size_t k = 0; k < ls->srv[i].nidle; k++)
            close(ls->srv[i].idle[k]);
    pthread_mutex_destroy(&ls->mu);
    free(ls);
}

/* The entry for addr, added when new; NULL when the table is full. */
static struct local_server *server_of(struct dfs_locals *ls, const char *addr)
{
    for (size_t i = 0; i < ls->n; i++)
        if (strcmp(ls->srv[i].addr, addr) == 0)
            return &ls->srv[i];
    if (ls->n == LOCAL_SERVERS || strlen(addr) >= PROTO_ADDR_MAX)
        return NULL;
    struct local_server *s = &ls->srv[ls->n++];
    memset(s, 0, sizeof(*s));
    strcpy(s->addr, addr);
    return s;
}

int dfs_local_connect(const char *name, uint32_t pid, uint32_t uid)
{
    struct sockaddr_un sa;
    socklen_t len = net_abstract_addr(name, &sa);
    if (len == 0)
        return -ENAMETOOLONG;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* A server stuck on its disk must not hold the reader: it goes on
     * through TCP, whose own timeouts apply. */
    struct timeval tv = { LOCAL_IO_MS / 1000, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int rc = connect(fd, (struct sockaddr *)&sa, len) < 0 ? -errno : 0;
    /* Once its server is gone, anyone may bind the name: the token goes
     * only to the process that told it. */
    struct ucred cred;
    socklen_t clen = sizeof(cred);
    if (rc == 0 && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0)
        rc = -errno;
    if (rc == 0 && ((uint32_t)cred.pid != pid || (uint32_t)cred.uid != uid))
        rc = -EPERM;
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

/*
 * Asks the server at addr for its local socket and connects to it: a
 * connection (>= 0) with *peer filled, -ENOTSUP when the server is not on
 * this host or has local reads off, or a transport error.
 */
static int discover(struct dfs *d, const char *addr, struct local_peer *peer)
{
    struct wire_writer w;
    wire_writer_init(&w);
    struct rpc_reply r;
    int rc = dfs_cs_call(d, addr, PROTO_CS_LOCAL, &w, &r);
    wire_writer_release(&w);
    if (rc < 0)
        return rc;
    rc = r.hdr.status;
    if (rc == 0) {
        struct wire_reader rd;
        wire_reader_init(&rd, r.payload, r.len);
        char *name = wire_get_str(&rd, PROTO_LOCAL_NAME_MAX - 1);
        wire_get_raw(&rd, peer->token, PROTO_LOCAL_TOKEN);
        peer->pid = wire_get_u32(&rd);
        peer->uid = wire_get_u32(&rd);
        rc = wire_reader_finish(&rd) < 0 || !name ? -EBADMSG : 0;
        if (rc == 0)
            strcpy(peer->name, name);
        free(name);
    }
    rpc_reply_release(&r);
    if (rc < 0)
        return -ENOTSUP;     /* -ENOSYS: off, or a server without them */
    rc = dfs_local_connect(peer->name, peer->pid, peer->uid);
    return rc < 0 ? -ENOTSUP : rc;
}

/*
 * A connection to addr's local socket, and the server's token: >= 0,
 * -ENOTSUP, or a transport error.  *pooled says it was idle in the pool
 * (the server may have closed it meanwhile).
 */
static int conn_take(struct dfs *d, struct dfs_locals *ls, const char *addr,
                     uint8_t token[PROTO_LOCAL_TOKEN], bool *pooled)
{
    *pooled = false;
    pthread_mutex_lock(&ls->mu);
    struct local_server *s = server_of(ls, addr);
    if (!s || (s->state == LOCAL_NO && ev_clock_ms() < s->no_until)) {
        pthread_mutex_unlock(&ls->mu);
        return -ENOTSUP;
    }
    struct local_peer peer;
    if (s->state == LOCAL_YES) {
        peer = s->peer;
        int fd = s->nidle ? s->idle[--s->nidle] : -1;
        pthread_mutex_unlock(&ls->mu);
        *pooled = fd >= 0;
        if (fd < 0)
            fd = dfs_local_connect(peer.name, peer.pid, peer.uid);
        if (fd >= 0) {
            memcpy(token, peer.token, PROTO_LOCAL_TOKEN);
            return fd;
        }
        /* A restarted server has another name: learn it again. */
        pthread_mutex_lock(&ls->mu);
        if (strcmp(s->peer.name, peer.name) == 0)
            s->state = LOCAL_UNKNOWN;
    }
    pthread_mutex_unlock(&ls->mu);
    int fd = discover(d, addr, &peer);
    pthread_mutex_lock(&ls->mu);
    if (fd >= 0) {
        s->state = LOCAL_YES;
        s->peer = peer;
        memcpy(token, peer.token, PROTO_LOCAL_TOKEN);
    } else {
        s->state = LOCAL_NO;
        s->no_until = ev_clock_ms() + (fd == -ENOTSUP ? LOCAL_RETRY_MS : LOCAL_DOWN_MS);
    }
    pthread_mutex_unlock(&ls->mu);
    return fd;
}

static void conn_put(struct dfs_locals *ls, const char *addr, int fd)
{
    pthread_mutex_lock(&ls->mu);
    struct local_server *s = server_of(ls, addr);
    if (s && s->state == LOCAL_YES && s->nidle < LOCAL_IDLE) {
        s->idle[s->nidle++] = fd;
        fd = -1;
    }
    pthread_mutex_unlock(&ls->mu);
    if (fd >= 0)
        close(fd);
}

static int request(int conn, const uint8_t token[PROTO_LOCAL_TOKEN],
                   uint64_t chunk, uint32_t min_version,
                   struct dfs_local_chunk *c, bool *conn_ok)
{
    *conn_ok = false;
    struct wire_writer w;
    wire_writer_init(&w);
    wire_put_u32(&w, PROTO_LOCAL_MAGIC);
    wire_put_raw(&w, token, PROTO_LOCAL_TOKEN);
    wire_put_u64(&w, chunk);
    wire_put_u32(&w, min_version);
    int rc = w.err;
    if (rc == 0 && send(conn, w.buf, w.len, MSG_NOSIGNAL) != (ssize_t)w.len)
        rc = -EPIPE;
    wire_writer_release(&w);
    if (rc < 0)
        return rc;
    uint8_t buf[PROTO_LOCAL_REPLY_LEN];
    struct iovec iov = { buf, sizeof(buf) };
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                          .msg_control = ctl.buf,
                          .msg_controllen = sizeof(ctl.buf) };
    ssize_t n = recvmsg(conn, &msg, MSG_CMSG_CLOEXEC);
    int fd = -1;
    struct cmsghdr *cm = n > 0 ? CMSG_FIRSTHDR(&msg) : NULL;
    if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
        cm->cmsg_len == CMSG_LEN(sizeof(int)))
        memcpy(&fd, CMSG_DATA(cm), sizeof(int));
    if (n != (ssize_t)sizeof(buf) || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
        if (fd >= 0)
            close(fd);
        return n < 0 ? -errno : -EBADMSG;
    }
    struct wire_reader rd;
    wire_reader_init(&rd, buf, sizeof(buf));
    rc = wire_get_i32(&rd);
    c->version = wire_get_u32(&rd);
    c->length = wire_get_u64(&rd);
    c->data_off = wire_get_u64(&rd);
    c->tail_crc = wire_get_u32(&rd);
    *conn_ok = true;
    struct stat st;
    if (rc == 0 && (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)))
        rc = -EBADMSG;      /* a FIFO, say, would block every pread */
    if (rc < 0) {
        if (fd >= 0)
            close(fd);
        return rc;
    }
    c->fd = fd;
    c->chunk = chunk;
    return 0;
}

static int crcs_load(struct dfs_local_chunk *c);

int dfs_local_request(int conn, const uint8_t token[PROTO_LOCAL_TOKEN],
                      uint64_t chunk, uint32_t min_version,
                      struct dfs_local_chunk **out, bool *conn_ok)
{
    struct dfs_local_chunk *c = calloc(1, sizeof(*c));
    if (!c) {
        *conn_ok = true;        /* nothing was sent on it */
        return -ENOMEM;
    }
    int rc = request(conn, token, chunk, min_version, c, conn_ok);
    if (rc < 0) {
        free(c);
        return rc;
    }
    atomic_init(&c->refs, 1);
    rc = crcs_load(c);
    if (rc < 0) {
        dfs_local_unref(c);     /* closes the descriptor, frees the CRCs */
        return rc;
    }
    *out = c;
    return 0;
}

int dfs_local_open(struct dfs *d, const char *addr, uint64_t chunk,
                   uint32_t min_version, struct dfs_local_chunk **out)
{
    struct dfs_locals *ls = dfs_locals_of(d);
    if (!ls->enabled)
        return -ENOTSUP;
    int rc = -EPIPE;
    for (bool pooled = true; pooled && rc < 0;) {
        /* A pooled connection the server closed fails at once: once more
         * on a fresh one. */
        uint8_t token[PROTO_LOCAL_TOKEN];
        int conn = conn_take(d, ls, addr, token, &pooled);
        if (conn < 0)
            return conn;
        bool conn_ok;
        rc = dfs_local_request(conn, token, chunk, min_version, out, &conn_ok);
        if (conn_ok)
            conn_put(ls, addr, conn);
        else
            close(conn);
        if (conn_ok)
            break;
    }
    return rc;
}

void dfs_local_ref(struct dfs_local_chunk *c)
{
    atomic_fetch_add(&c->refs, 1);
}

void dfs_local_unref(struct dfs_local_chunk *c)
{
    if (c && atomic_fetch_sub(&c->refs, 1) == 1) {
        close(c->fd);
        free(c->crcs);
        free(c);
    }
}

/* pread of len bytes; bytes past the end of the file are zeros (a chunk
 * file need not extend to its length: chunkserver/store.c invariant 3). */
static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0) {
            memset(p, 0, len);
            return 0;
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

/* Reads the CRCs of the whole blocks below the length at the open, once:
 * a read then costs one pread.  A block rewritten since fails its check,
 * and the caller opens the replica afresh. */
static int crcs_load(struct dfs_local_chunk *c)
{
    size_t n = (size_t)(c->length / B) * 4;
    if (n == 0)
        return 0;
    c->crcs = malloc(n);
    if (!c->crcs)
        return -ENOMEM;
    return pread_full(c->fd, c->crcs, n, PROTO_LOCAL_CRC_OFF);
}

/* Bytes of block b below the length. */
static size_t block_bytes(const struct dfs_local_chunk *c, uint32_t b)
{
    uint64_t start = (uint64_t)b * B;
    return start >= c->length ? 0 : c->length - start < B ? (size_t)(c->length - start) : B;
}

/* Checks block b, whose bytes below the length are at p, against its
 * CRC, or the tail CRC. */
static int block_check(const struct dfs_local_chunk *c, uint32_t b, const uint8_t *p)
{
    size_t v = block_bytes(c, b);
    uint32_t want = c->tail_crc;
    if (v == B) {
        memcpy(&want, c->crcs + 4 * (size_t)b, 4);
        want = le32toh(want);
    }
    return crc32c(0, p, v) == want ? 0 : -DFS_ECORRUPT;
}

/* Whether block b's bytes below the length lie whole in [off, end). */
static bool block_inside(const struct dfs_local_chunk *c, uint32_t b,
                         uint64_t off, uint64_t end)
{
    uint64_t bs = (uint64_t)b * B;
    return bs >= off && bs + block_bytes(c, b) <= end;
}

/* Reads [off, end) (end <= length) into buf, verifying every block it
 * touches: runs of whole blocks straight into buf with one pread, the
 * partial ones at the edges through scratch. */
static int read_verified(const struct dfs_local_chunk *c, uint64_t off,
                         uint64_t end, uint8_t *buf)
{
    uint32_t c0 = (uint32_t)(off / B), c1 = (uint32_t)((end - 1) / B);
    uint8_t *scratch = NULL;
    int rc = 0;
    for (uint32_t b = c0; rc == 0 && b <= c1;) {
        uint64_t bs = (uint64_t)b * B;
        if (block_inside(c, b, off, end)) {
            /* A run no longer than LOCAL_RUN: its CRCs are computed
             * while the bytes are still in the cache. */
            uint32_t last = b;
            while (last < c1 && last - b + 1 < LOCAL_RUN && block_inside(c, last + 1, off, end))
                last++;
            uint64_t stop = (uint64_t)last * B + block_bytes(c, last);
            rc = pread_full(c->fd, buf + (bs - off), (size_t)(stop - bs), c->data_off + bs);
            for (uint32_t k = b; rc == 0 && k <= last; k++)
                rc = block_check(c, k, buf + ((uint64_t)k * B - off));
            b = last + 1;
            continue;
        }
        if (!scratch && !(scratch = malloc(B))) {
            rc = -ENOMEM;
            break;
        }
        size_t v = block_bytes(c, b);
        rc = pread_full(c->fd, scratch, v, c->data_off + bs);
        if (rc == 0)
            rc = block_check(c, b, scratch);
        uint64_t ps = off > bs ? off : bs, pe = end < bs + v ? end : bs + v;
        if (rc == 0)
            memcpy(buf + (ps - off), scratch + (ps - bs), (size_t)(pe - ps));
        b++;
    }
    free(scratch);
    return rc;
}

int dfs_local_read(const struct dfs_local_chunk *c, uint64_t off, uint8_t *buf,
                   size_t len)
{
    uint64_t end = off + len;
    uint64_t have = end < c->length ? end : c->length;
    if (off < have) {
        int rc = read_verified(c, off, have, buf);
        if (rc < 0)
            return rc;
    }
    if (have < end) {
        uint64_t from = have > off ? have : off;
        memset(buf + (from - off), 0, (size_t)(end - from));
    }
    return 0;
}
