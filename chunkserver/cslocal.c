/*
 * cslocal: the local-read socket.  One thread polls the socket, an
 * eventfd that cslocal_stop rings, and up to CSLOCAL_CONNS connections;
 * each request opens the chunk (a file open, no data read) and answers
 * with its descriptor.  Replies are sent without blocking: a client that
 * does not read its answers loses its connection, never the thread.
 */
#include "chunkserver/cslocal.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "chunkserver/chunkfile.h"
#include "chunkserver/vols.h"
#include "common/dfs_error.h"
#include "common/log.h"
#include "common/net.h"
#include "common/wire.h"

#define CSLOCAL_CONNS 64

_Static_assert(CHUNKFILE_CRC_OFF == PROTO_LOCAL_CRC_OFF,
               "local readers find the CRC array where chunk files keep it");

struct cslocal {
    struct vols *vols;            /* borrowed */
    int listen_fd;
    int wake_fd;                  /* eventfd: stop */
    pthread_t thread;
    int conns[CSLOCAL_CONNS];
    uint64_t used[CSLOCAL_CONNS];   /* when each last sent a request */
    uint64_t clock;                 /* counts requests and accepts */
    size_t nconns;
    char name[PROTO_LOCAL_NAME_MAX];
    uint8_t token[PROTO_LOCAL_TOKEN];
};

/* Sends the reply, with fd attached when it is >= 0. */
static int send_reply(int conn, int status, const struct store_local *sl)
{
    struct wire_writer w;
    wire_writer_init(&w);
    wire_put_i32(&w, status);
    wire_put_u32(&w, sl ? sl->version : 0);
    wire_put_u64(&w, sl ? sl->length : 0);
    wire_put_u64(&w, sl ? sl->data_off : 0);
    wire_put_u32(&w, sl ? sl->tail_crc : 0);
    if (w.err) {
        wire_writer_release(&w);
        return w.err;
    }
    struct iovec iov = { w.buf, w.len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    if (sl) {
        memset(&ctl, 0, sizeof(ctl));
        msg.msg_control = ctl.buf;
        msg.msg_controllen = sizeof(ctl.buf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &sl->fd, sizeof(int));
    }
    ssize_t n = sendmsg(conn, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    int rc = n == (ssize_t)w.len ? 0 : n < 0 ? -errno : -EIO;
    wire_writer_release(&w);
    return rc;
}

/* Serves one request packet; a negative return drops the connection. */
static int serve(struct cslocal *l, int conn)
{
    uint8_t req[PROTO_LOCAL_REQ_LEN + 1];
    ssize_t n = recv(conn, req, sizeof(req), MSG_DONTWAIT);
    if (n == 0)
        return -ECONNRESET;
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
    if (n != PROTO_LOCAL_REQ_LEN)
        return -EBADMSG;
    struct wire_reader r;
    wire_reader_init(&r, req, (size_t)n);
    uint32_t magic = wire_get_u32(&r);
    uint8_t token[PROTO_LOCAL_TOKEN];
    wire_get_raw(&r, token, sizeof(token));
    uint64_t chunk = wire_get_u64(&r);
    uint32_t version = wire_get_u32(&r);
    if (wire_reader_finish(&r) < 0 || magic != PROTO_LOCAL_MAGIC)
        return -EBADMSG;
    if (CRYPTO_memcmp(token, l->token, sizeof(token)) != 0) {
        send_reply(conn, -EACCES, NULL);
        return -EACCES;
    }
    struct store_local sl;
    int rc = vols_open_local(l->vols, chunk, version, &sl);
    if (rc < 0)
        return send_reply(conn, rc, NULL);
    rc = send_reply(conn, 0, &sl);
    close(sl.fd);
    return rc;
}

static void conn_drop(struct cslocal *l, size_t i)
{
    close(l->conns[i]);
    l->nconns--;
    l->conns[i] = l->conns[l->nconns];
    l->used[i] = l->used[l->nconns];
}

/* A full table makes room by closing the connection idle the longest:
 * connections that never send a request (anyone on the host may open
 * one) cannot keep the readers that do out.  Its client, if any, opens
 * a new one when it next needs it. */
static void accept_one(struct cslocal *l)
{
    int fd = accept4(l->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    if (l->nconns == CSLOCAL_CONNS) {
        size_t oldest = 0;
        for (size_t i = 1; i < l->nconns; i++)
            if (l->used[i] < l->used[oldest])
                oldest = i;
        conn_drop(l, oldest);
    }
    l->used[l->nconns] = ++l->clock;
    l->conns[l->nconns++] = fd;
}

static void *cslocal_main(void *arg)
{
    struct cslocal *l = arg;
    struct pollfd p[2 + CSLOCAL_CONNS];
    for (;;) {
        p[0] = (struct pollfd){ .fd = l->wake_fd, .events = POLLIN };
        p[1] = (struct pollfd){ .fd = l->listen_fd, .events = POLLIN };
        size_t n = l->nconns;
        for (size_t i = 0; i < n; i++)
            p[2 + i] = (struct pollfd){ .fd = l->conns[i], .events = POLLIN };
        if (poll(p, 2 + n, -1) < 0)
            continue;
        if (p[0].revents)
            break;
        /* Backwards, so that dropping i moves an already served one. */
        for (size_t i = n; i-- > 0;) {
            if (!p[2 + i].revents)
                continue;
            l->used[i] = ++l->clock;
            if (serve(l, l->conns[i]) < 0)
                conn_drop(l, i);
        }
        if (p[1].revents)
            accept_one(l);
    }
    return NULL;
}

static int bind_random(struct cslocal *l)
{
    uint8_t rnd[8];
    if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd) ||
        getrandom(l->token, sizeof(l->token), 0) != sizeof(l->token))
        return -EIO;
    int len = snprintf(l->name, sizeof(l->name), "dfs-chunkserver-%d-", (int)getpid());
    for (size_t i = 0; i < sizeof(rnd); i++)
        len += snprintf(l->name + len, sizeof(l->name) - (size_t)len, "%02x", rnd[i]);
    l->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (l->listen_fd < 0)
        return -errno;
    struct sockaddr_un sa;
    socklen_t salen = net_abstract_addr(l->name, &sa);
    if (salen == 0)
        return -ENAMETOOLONG;
    if (bind(l->listen_fd, (struct sockaddr *)&sa, salen) < 0 ||
        listen(l->listen_fd, 64) < 0)
        return -errno;
    return 0;
}

int cslocal_start(struct vols *vols, struct cslocal **out)
{
    struct cslocal *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->vols = vols;
    l->listen_fd = -1;
    l->wake_fd = eventfd(0, EFD_CLOEXEC);
    int rc = l->wake_fd < 0 ? -errno : bind_random(l);
    if (rc == 0)
        rc = -pthread_create(&l->thread, NULL, cslocal_main, l);
    if (rc < 0) {
        log_warn("chunkserver: local reads off: %s", dfs_strerror(rc));
        if (l->listen_fd >= 0)
            close(l->listen_fd);
        if (l->wake_fd >= 0)
            close(l->wake_fd);
        free(l);
        return rc;
    }
    *out = l;
    return 0;
}

void cslocal_stop(struct cslocal *l)
{
    if (!l)
        return;
    uint64_t one = 1;
    if (write(l->wake_fd, &one, sizeof(one)) != sizeof(one))
        log_error("chunkserver: cannot stop the local-read thread: %s",
                  strerror(errno));
    pthread_join(l->thread, NULL);
    while (l->nconns)
        conn_drop(l, 0);
    close(l->listen_fd);
    close(l->wake_fd);
    free(l);
}

const char *cslocal_name(const struct cslocal *l)
{
    return l->name;
}

const uint8_t *cslocal_token(const struct cslocal *l)
{
    return l->token;
}
