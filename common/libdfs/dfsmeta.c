/*
 * dfsmeta: the client library's extended-attribute and advisory-lock
 * calls (dfs.h, last section), over dfs.c's request path.
 *
 * Owns nothing between calls.  Blocking locks use dfs_call_wait: their own
 * connection to the leader, so that a wait never holds up the session's
 * other calls, and no deadline.  A LOCK is idempotent (granting an owner
 * what it holds changes nothing), which is what lets every try of such a
 * wait take a new sequence number.
 */
#include "common/libdfs/dfs.h"
#include "common/libdfs/dfs_priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/protocol.h"
#include "common/wire.h"

/* A blocking wait is sent again after this long without an answer, which
 * bounds how long a master that hangs (without closing) can hold it. */
#define DFSMETA_LOCK_TRY_MS 10000

static int name_ok(const char *name)
{
    size_t n = strlen(name);
    return n == 0 || n > PROTO_XATTR_NAME_MAX ? -ERANGE : 0;
}

/* ---- extended attributes ---------------------------------------------------- */

int dfs_getxattr(struct dfs *d, uint64_t ino, const char *name, void **value,
                 size_t *len)
{
    *value = NULL;
    *len = 0;
    int rc = name_ok(name);
    if (rc < 0)
        return rc;
    struct wire_writer b;
    wire_writer_init(&b);
    wire_put_u64(&b, ino);
    wire_put_str(&b, name);
    struct rpc_reply r;
    rc = dfs_call_ok(d, PROTO_GETXATTR, false, &b, &r);
    if (rc < 0)
        return rc;
    struct wire_reader rd;
    wire_reader_init(&rd, r.payload, r.len);
    const uint8_t *p;
    size_t n = wire_get_bytes(&rd, &p, PROTO_XATTR_VALUE_MAX);
    rc = wire_reader_finish(&rd) < 0 ? -EBADMSG : 0;
    if (rc == 0) {
        *value = malloc(n ? n : 1);
        if (*value) {
            memcpy(*value, p, n);
            *len = n;
        } else {
            rc = -ENOMEM;
        }
    }
    rpc_reply_release(&r);
    return rc;
}

int dfs_setxattr(struct dfs *d, uint64_t ino, const char *name,
                 const void *value, size_t len, uint32_t flags)
{
    int rc = name_ok(name);
    if (rc < 0)
        return rc;
    if (len > PROTO_XATTR_VALUE_MAX)
        return -E2BIG;
    struct wire_writer b;
    wire_writer_init(&b);
    wire_put_u64(&b, ino);
    wire_put_str(&b, name);
    wire_put_bytes(&b, value, len);
    wire_put_u32(&b, (flags & DFS_XATTR_CREATE ? PROTO_XATTR_CREATE : 0) |
                     (flags & DFS_XATTR_REPLACE ? PROTO_XATTR_REPLACE : 0));
    return dfs_call_void(d, PROTO_SETXATTR, &b);
}

/* LISTXATTR's count u32, str[count] into the NUL-separated list. */
static int list_decode(const struct rpc_reply *r, char **names, size_t *len)
{
    struct wire_reader rd;
    wire_reader_init(&rd, r->payload, r->len);
    uint32_t count = wire_get_u32(&rd);
    /* every name is at least a 4-byte length and a byte; the list is at
     * most the payload, each length replaced by a NUL */
    if (rd.err || count > rd.left / 5)
        return -EBADMSG;
    char *buf = count ? malloc(rd.left) : NULL;
    if (count && !buf)
        return -ENOMEM;
    size_t at = 0;
    for (uint32_t i = 0; i < count && !rd.err; i++) {
        const uint8_t *p;
        size_t n = wire_get_bytes(&rd, &p, PROTO_XATTR_NAME_MAX);
        if (!rd.err && (n == 0 || memchr(p, '\0', n)))
            rd.err = -EBADMSG;
        if (rd.err)
            break;
        memcpy(buf + at, p, n);
        at += n;
        buf[at++] = '\0';
    }
    if (wire_reader_finish(&rd) < 0) {
        free(buf);
        return -EBADMSG;
    }
    *names = buf;
    *len = at;
    return 0;
}

int dfs_listxattr(struct dfs *d, uint64_t ino, char **names, size_t *len)
{
    *names = NULL;
    *len = 0;
    struct wire_writer b;
    wire_writer_init(&b);
    wire_put_u64(&b, ino);
    struct rpc_reply r;
    int rc = dfs_call_ok(d, PROTO_LISTXATTR, false, &b, &r);
    if (rc < 0)
        return rc;
    rc = list_decode(&r, names, len);
    rpc_reply_release(&r);
    return rc;
}

int dfs_removexattr(struct dfs *d, uint64_t ino, const char *name)
{
    int rc = name_ok(name);
    if (rc < 0)
        return rc;
    struct wire_writer b;
    wire_writer_init(&b);
    wire_put_u64(&b, ino);
    wire_put_str(&b, name);
    return dfs_call_void(d, PROTO_REMOVEXATTR, &b);
}

/* ---- locks ---------------------------------------------------------------------- */

static int lock_ok(const struct dfs_lock *l, bool unlock)
{
    if (l->kind != DFS_LOCK_FLOCK && l->kind != DFS_LOCK_POSIX)
        return -EINVAL;
    if (!unlock && l->type != DFS_LOCK_READ && l->type != DFS_LOCK_WRITE)
        return -EINVAL;
    return l->start > l->end ? -EINVAL : 0;
}

int dfs_lock(struct dfs *d, uint64_t ino, const struct dfs_lock *l,
             const struct dfs_lock_wait *wait)
{
    int rc = lock_ok(l, false);
    if (rc < 0)
        return rc;
    bool flock = l->kind == DFS_LOCK_FLOCK;
    struct wire_writer b;
    wire_writer_init(&b);
    wire_put_u64(&b, ino);
    wire_put_u64(&b, l->owner);
    wire_put_u8(&b, l->kind);             /* DFS_LOCK_* == PROTO_LOCK_* */
    wire_put_u8(&b, l->type);
    wire_put_u8(&b, wait != NULL);
    wire_put_u64(&b, flock ? 0 : l->start);
    wire_put_u64(&b, flock ? UINT64_MAX : l->end);
    wire_put_u32(&b, l->pid);
    if (!wait)
        return dfs_call_void(d, PROTO_LOCK, &b);
    struct rpc_reply r;
    rc = b.err ? b.err : dfs_call_wait(d, PROTO_LOCK, &b, DFSMETA_LOCK_TRY_MS,
                                       wait->cancelled, wait->arg, &r);
    wire_writer_release(&b);
    if (rc < 0)
        return rc;
    rc = r.hdr.status;
    rpc_reply_release(&r);
    return rc;
}

/* UNLOCK (a mutation) and LOCK_CANCEL (answered by the leader alone):
 * the same body. */
static int lock_range_call(struct dfs *d, uint16_t type, bool mutating,
                           uint64_t ino, const struct dfs_lock *l)
{
    int rc = lock_ok(l, true);
    if (rc < 0)
        return rc;
    bool flock = l->kind == DFS_LOCK_FLOCK;
    struct wire_writer b;
    wire_writer_init(&b);
    wire_put_u64(&b, ino);
    wire_put_u64(&b, l->owner);
    wire_put_u8(&b, l->kind);
    wire_put_u64(&b, flock ? 0 : l->start);
    wire_put_u64(&b, flock ? UINT64_MAX : l->end);
    struct rpc_reply r;
    rc = dfs_call_ok(d, type, mutating, &b, &r);
    if (rc == 0)
        rpc_reply_release(&r);
    return rc;
}

int dfs_unlock(struct dfs *d, uint64_t ino, const struct dfs_lock *l)
{
    return lock_range_call(d, PROTO_UNLOCK, true, ino, l);
}

int dfs_lock_cancel(struct dfs *d, uint64_t ino, const struct dfs_lock *l)
{
    return lock_range_call(d, PROTO_LOCK_CANCEL, false, ino, l);
}

int dfs_lock_test(struct dfs *d, uint64_t ino, struct dfs_lock *l)
{
    struct dfs_lock q = *l;
    q.kind = DFS_LOCK_POSIX;
    int rc = lock_ok(&q, false);
    if (rc < 0)
        return rc;
    struct wire_writer b;
    wire_writer_init(&b);
    wire_put_u64(&b, ino);
    wire_put_u64(&b, l->owner);
    wire_put_u8(&b, l->type);
    wire_put_u64(&b, l->start);
    wire_put_u64(&b, l->end);
    struct rpc_reply r;
    rc = dfs_call_ok(d, PROTO_LOCK_TEST, false, &b, &r);
    if (rc < 0)
        return rc;
    struct wire_reader rd;
    wire_reader_init(&rd, r.payload, r.len);
    uint8_t type = wire_get_u8(&rd);
    uint64_t start = wire_get_u64(&rd);
    uint64_t end = wire_get_u64(&rd);
    uint32_t pid = wire_get_u32(&rd);
    rc = wire_reader_finish(&rd) < 0 || type > DFS_LOCK_WRITE ? -EBADMSG : 0;
    rpc_reply_release(&r);
    if (rc < 0)
        return rc;
    l->type = type;
    if (type != DFS_LOCK_NONE) {
        l->start = start;
        l->end = end;
        l->pid = pid;
    }
    return 0;
}
