/*
 * ns_op: byte encoding of namespace ops and replies (common/wire.h).
 *
 * Owns nothing: a decoded op borrows its strings from the input.
 *
 * Layout of an op (little-endian, "str" = u32 length + bytes):
 *   u8 format (NS_OP_FORMAT), u8 type, u64 client, u64 seq, i64 now,
 *   u32 uid, u32 gid, u32 ngroups, u32 groups[ngroups],
 *   then the type's fields in the order of its struct in ns_op.h.
 * Format 2 added the lock's pid, format 3 the chunk size of a CONFIG;
 * entries of the formats before still decode (pid 0, chunk size 0), so a
 * log written before replays.  The encoder writes the lowest format the
 * op needs (1 unless a LOCK has a pid or a CONFIG a chunk size): a
 * follower still running the version before decodes every other entry a
 * new leader writes, which keeps a rolling upgrade possible.
 * Invariant: ns_op_decode(ns_op_encode(op)) == op for every op, and the
 * decoder accepts no trailing bytes.
 */
#include "master/ns_op.h"

#include <errno.h>
#include <string.h>

#include "common/dfs_error.h"
#include "common/wire.h"

#define NS_OP_FORMAT_CHUNK_SIZE 3      /* CONFIG carries a chunk size */
#define NS_OP_FORMAT_PID 2             /* LOCK carries a pid */
#define NS_OP_FORMAT_NO_PID 1
#define NS_OP_FORMAT NS_OP_FORMAT_CHUNK_SIZE   /* the newest */

static void put_str(struct wire_writer *w, struct ns_str s)
{
    wire_put_bytes(w, s.p, s.len);
}

/* Bounded by the entry only: ns_apply() answers over-long strings with
 * their POSIX errors, and an entry every replica refused would be worse. */
static struct ns_str get_str(struct wire_reader *r)
{
    const uint8_t *p;
    size_t n = wire_get_bytes(r, &p, UINT32_MAX);
    return (struct ns_str){ (const char *)p, (uint32_t)n };
}

/* ---- per type --------------------------------------------------------- */

static void make_enc(const struct ns_op_make *o, struct wire_writer *w)
{
    wire_put_u64(w, o->parent);
    put_str(w, o->name);
    wire_put_u64(w, o->ino);
    wire_put_u32(w, o->mode);
    wire_put_u32(w, o->rdev);
    wire_put_u32(w, o->flags);
    put_str(w, o->target);
}

static void make_dec(struct ns_op_make *o, struct wire_reader *r)
{
    o->parent = wire_get_u64(r);
    o->name = get_str(r);
    o->ino = wire_get_u64(r);
    o->mode = wire_get_u32(r);
    o->rdev = wire_get_u32(r);
    o->flags = wire_get_u32(r);
    o->target = get_str(r);
}

static void link_enc(const struct ns_op_link *o, struct wire_writer *w)
{
    wire_put_u64(w, o->ino);
    wire_put_u64(w, o->newparent);
    put_str(w, o->newname);
}

static void link_dec(struct ns_op_link *o, struct wire_reader *r)
{
    o->ino = wire_get_u64(r);
    o->newparent = wire_get_u64(r);
    o->newname = get_str(r);
}

static void remove_enc(const struct ns_op_remove *o, struct wire_writer *w)
{
    wire_put_u64(w, o->parent);
    put_str(w, o->name);
}

static void remove_dec(struct ns_op_remove *o, struct wire_reader *r)
{
    o->parent = wire_get_u64(r);
    o->name = get_str(r);
}

static void rename_enc(const struct ns_op_rename *o, struct wire_writer *w)
{
    wire_put_u64(w, o->parent);
    wire_put_u64(w, o->newparent);
    put_str(w, o->name);
    put_str(w, o->newname);
    wire_put_u32(w, o->flags);
}

static void rename_dec(struct ns_op_rename *o, struct wire_reader *r)
{
    o->parent = wire_get_u64(r);
    o->newparent = wire_get_u64(r);
    o->name = get_str(r);
    o->newname = get_str(r);
    o->flags = wire_get_u32(r);
}

static void setattr_enc(const struct ns_op_setattr *o, struct wire_writer *w)
{
    wire_put_u64(w, o->ino);
    wire_put_u32(w, o->valid);
    wire_put_u32(w, o->mode);
    wire_put_u32(w, o->uid);
    wire_put_u32(w, o->gid);
    wire_put_u64(w, o->size);
    wire_put_i64(w, o->atime);
    wire_put_i64(w, o->mtime);
    wire_put_u32(w, o->goal);
}

static void setattr_dec(struct ns_op_setattr *o, struct wire_reader *r)
{
    o->ino = wire_get_u64(r);
    o->valid = wire_get_u32(r);
    o->mode = wire_get_u32(r);
    o->uid = wire_get_u32(r);
    o->gid = wire_get_u32(r);
    o->size = wire_get_u64(r);
    o->atime = wire_get_i64(r);
    o->mtime = wire_get_i64(r);
    o->goal = wire_get_u32(r);
}

static void xattr_enc(const struct ns_op_xattr *o, struct wire_writer *w)
{
    wire_put_u64(w, o->ino);
    put_str(w, o->name);
    put_str(w, o->value);
    wire_put_u32(w, o->flags);
}

static void xattr_dec(struct ns_op_xattr *o, struct wire_reader *r)
{
    o->ino = wire_get_u64(r);
    o->name = get_str(r);
    o->value = get_str(r);
    o->flags = wire_get_u32(r);
}

static void open_enc(const struct ns_op_open *o, struct wire_writer *w)
{
    wire_put_u64(w, o->ino);
    wire_put_u32(w, o->flags);
    wire_put_u64(w, o->owner);
}

static void open_dec(struct ns_op_open *o, struct wire_reader *r)
{
    o->ino = wire_get_u64(r);
    o->flags = wire_get_u32(r);
    o->owner = wire_get_u64(r);
}

static void write_enc(const struct ns_op_write *o, struct wire_writer *w)
{
    wire_put_u64(w, o->ino);
    wire_put_u32(w, o->index);
    wire_put_u64(w, o->chunk_id);
    wire_put_u32(w, o->length);
    wire_put_i64(w, o->mtime);
    wire_put_u32(w, o->flags);
}

static void write_dec(struct ns_op_write *o, struct wire_reader *r)
{
    o->ino = wire_get_u64(r);
    o->index = wire_get_u32(r);
    o->chunk_id = wire_get_u64(r);
    o->length = wire_get_u32(r);
    o->mtime = wire_get_i64(r);
    o->flags = wire_get_u32(r);
}

static void session_enc(const struct ns_op_session *o, struct wire_writer *w)
{
    wire_put_u64(w, o->session);
    wire_put_i64(w, o->expiry);
}

static void session_dec(struct ns_op_session *o, struct wire_reader *r)
{
    o->session = wire_get_u64(r);
    o->expiry = wire_get_i64(r);
}

static void lock_enc(const struct ns_op_lock *o, struct wire_writer *w,
                     uint8_t format)
{
    wire_put_u64(w, o->ino);
    wire_put_u64(w, o->owner);
    wire_put_u32(w, o->kind);
    wire_put_u32(w, o->type);
    wire_put_u64(w, o->start);
    wire_put_u64(w, o->end);
    if (format != NS_OP_FORMAT_NO_PID)
        wire_put_u32(w, o->pid);
}

static void lock_dec(struct ns_op_lock *o, struct wire_reader *r, uint8_t format)
{
    o->ino = wire_get_u64(r);
    o->owner = wire_get_u64(r);
    o->kind = wire_get_u32(r);
    o->type = wire_get_u32(r);
    o->start = wire_get_u64(r);
    o->end = wire_get_u64(r);
    o->pid = format == NS_OP_FORMAT_NO_PID ? 0 : wire_get_u32(r);
}

static void config_enc(const struct ns_op_config *o, struct wire_writer *w,
                       uint8_t format)
{
    wire_put_u32(w, o->flags);
    wire_put_u32(w, o->squash_uid);
    wire_put_u32(w, o->squash_gid);
    if (format >= NS_OP_FORMAT_CHUNK_SIZE)
        wire_put_u64(w, o->chunk_size);
}

static void config_dec(struct ns_op_config *o, struct wire_reader *r, uint8_t format)
{
    o->flags = wire_get_u32(r);
    o->squash_uid = wire_get_u32(r);
    o->squash_gid = wire_get_u32(r);
    o->chunk_size = format >= NS_OP_FORMAT_CHUNK_SIZE ? wire_get_u64(r) : 0;
}

/* ---- the op ----------------------------------------------------------- */

static void body_enc(const struct ns_op *op, struct wire_writer *w, uint8_t format)
{
    switch (op->type) {
    case NS_OP_MKDIR: case NS_OP_CREATE: case NS_OP_MKNOD: case NS_OP_SYMLINK:
        make_enc(&op->u.make, w);
        break;
    case NS_OP_LINK:
        link_enc(&op->u.link, w);
        break;
    case NS_OP_UNLINK: case NS_OP_RMDIR:
        remove_enc(&op->u.remove, w);
        break;
    case NS_OP_RENAME:
        rename_enc(&op->u.rename, w);
        break;
    case NS_OP_SETATTR:
        setattr_enc(&op->u.setattr, w);
        break;
    case NS_OP_SETXATTR: case NS_OP_REMOVEXATTR:
        xattr_enc(&op->u.xattr, w);
        break;
    case NS_OP_OPEN: case NS_OP_RELEASE:
        open_enc(&op->u.open, w);
        break;
    case NS_OP_WRITE_BEGIN: case NS_OP_WRITE_END:
        write_enc(&op->u.write, w);
        break;
    case NS_OP_SESSION_OPEN: case NS_OP_SESSION_KEEPALIVE:
    case NS_OP_SESSION_CLOSE: case NS_OP_SESSION_EXPIRE:
        session_enc(&op->u.session, w);
        break;
    case NS_OP_LOCK:
        lock_enc(&op->u.lock, w, format);
        break;
    case NS_OP_CONFIG:
        config_enc(&op->u.config, w, format);
        break;
    case NS_OP_TYPE_END:
        break;
    }
}

/* 0, or -DFS_ECORRUPT for an unknown type. */
static int body_dec(struct ns_op *op, struct wire_reader *r, uint8_t format)
{
    switch (op->type) {
    case NS_OP_MKDIR: case NS_OP_CREATE: case NS_OP_MKNOD: case NS_OP_SYMLINK:
        make_dec(&op->u.make, r);
        return 0;
    case NS_OP_LINK:
        link_dec(&op->u.link, r);
        return 0;
    case NS_OP_UNLINK: case NS_OP_RMDIR:
        remove_dec(&op->u.remove, r);
        return 0;
    case NS_OP_RENAME:
        rename_dec(&op->u.rename, r);
        return 0;
    case NS_OP_SETATTR:
        setattr_dec(&op->u.setattr, r);
        return 0;
    case NS_OP_SETXATTR: case NS_OP_REMOVEXATTR:
        xattr_dec(&op->u.xattr, r);
        return 0;
    case NS_OP_OPEN: case NS_OP_RELEASE:
        open_dec(&op->u.open, r);
        return 0;
    case NS_OP_WRITE_BEGIN: case NS_OP_WRITE_END:
        write_dec(&op->u.write, r);
        return 0;
    case NS_OP_SESSION_OPEN: case NS_OP_SESSION_KEEPALIVE:
    case NS_OP_SESSION_CLOSE: case NS_OP_SESSION_EXPIRE:
        session_dec(&op->u.session, r);
        return 0;
    case NS_OP_LOCK:
        lock_dec(&op->u.lock, r, format);
        return 0;
    case NS_OP_CONFIG:
        config_dec(&op->u.config, r, format);
        return 0;
    case NS_OP_TYPE_END:
        break;
    }
    return -DFS_ECORRUPT;
}

void ns_op_encode(const struct ns_op *op, struct wire_writer *w)
{
    uint32_t ng = op->cred.ngroups < NS_GROUPS_MAX ? op->cred.ngroups : NS_GROUPS_MAX;
    uint8_t format = op->type == NS_OP_CONFIG && op->u.config.chunk_size ? NS_OP_FORMAT_CHUNK_SIZE
                     : op->type == NS_OP_LOCK && op->u.lock.pid     ? NS_OP_FORMAT_PID
                                                                    : NS_OP_FORMAT_NO_PID;
    wire_put_u8(w, format);
    wire_put_u8(w, (uint8_t)op->type);
    wire_put_u64(w, op->client);
    wire_put_u64(w, op->seq);
    wire_put_i64(w, op->now);
    wire_put_u32(w, op->cred.uid);
    wire_put_u32(w, op->cred.gid);
    wire_put_u32(w, ng);
    for (uint32_t i = 0; i < ng; i++)
        wire_put_u32(w, op->cred.groups[i]);
    body_enc(op, w, format);
}

int ns_op_decode(const void *buf, size_t len, struct ns_op *op)
{
    struct wire_reader r;
    memset(op, 0, sizeof(*op));
    wire_reader_init(&r, buf, len);
    uint8_t format = wire_get_u8(&r);
    if (r.err == 0 && (format < NS_OP_FORMAT_NO_PID || format > NS_OP_FORMAT))
        return -DFS_EVERSION;
    uint8_t type = wire_get_u8(&r);
    op->client = wire_get_u64(&r);
    op->seq = wire_get_u64(&r);
    op->now = wire_get_i64(&r);
    op->cred.uid = wire_get_u32(&r);
    op->cred.gid = wire_get_u32(&r);
    op->cred.ngroups = wire_get_u32(&r);
    if (r.err)
        return r.err;
    if (op->cred.ngroups > NS_GROUPS_MAX)
        return -DFS_ETOOBIG;
    for (uint32_t i = 0; i < op->cred.ngroups; i++)
        op->cred.groups[i] = wire_get_u32(&r);
    if (type == 0 || type >= NS_OP_TYPE_END)
        return -DFS_ECORRUPT;
    op->type = (enum ns_op_type)type;
    int rc = body_dec(op, &r, format);
    if (rc < 0)
        return rc;
    rc = wire_reader_finish(&r);
    return rc == -EBADMSG ? -DFS_ECORRUPT : rc;
}

/* ---- replies ---------------------------------------------------------- */

void ns_op_reply_encode(const struct ns_reply *rp, struct wire_writer *w)
{
    const struct ns_attr *a = &rp->attr;
    wire_put_i32(w, rp->err);
    wire_put_u32(w, rp->version);
    wire_put_u64(w, rp->chunk_id);
    wire_put_u64(w, a->ino);
    wire_put_u64(w, a->size);
    wire_put_i64(w, a->atime);
    wire_put_i64(w, a->mtime);
    wire_put_i64(w, a->ctime);
    wire_put_u32(w, a->gen);
    wire_put_u32(w, a->mode);
    wire_put_u32(w, a->nlink);
    wire_put_u32(w, a->uid);
    wire_put_u32(w, a->gid);
    wire_put_u32(w, a->rdev);
    wire_put_u32(w, a->goal);
    wire_put_u32(w, a->nchunks);
}

void ns_op_reply_decode(struct wire_reader *r, struct ns_reply *out)
{
    struct ns_attr *a = &out->attr;
    out->err = wire_get_i32(r);
    out->version = wire_get_u32(r);
    out->chunk_id = wire_get_u64(r);
    a->ino = wire_get_u64(r);
    a->size = wire_get_u64(r);
    a->atime = wire_get_i64(r);
    a->mtime = wire_get_i64(r);
    a->ctime = wire_get_i64(r);
    a->gen = wire_get_u32(r);
    a->mode = wire_get_u32(r);
    a->nlink = wire_get_u32(r);
    a->uid = wire_get_u32(r);
    a->gid = wire_get_u32(r);
    a->rdev = wire_get_u32(r);
    a->goal = wire_get_u32(r);
    a->nchunks = wire_get_u32(r);
}

const char *ns_op_name(enum ns_op_type type)
{
    static const char *const names[NS_OP_TYPE_END] = {
        [NS_OP_MKDIR] = "mkdir", [NS_OP_CREATE] = "create",
        [NS_OP_MKNOD] = "mknod", [NS_OP_SYMLINK] = "symlink",
        [NS_OP_LINK] = "link", [NS_OP_UNLINK] = "unlink",
        [NS_OP_RMDIR] = "rmdir", [NS_OP_RENAME] = "rename",
        [NS_OP_SETATTR] = "setattr", [NS_OP_SETXATTR] = "setxattr",
        [NS_OP_REMOVEXATTR] = "removexattr", [NS_OP_OPEN] = "open",
        [NS_OP_RELEASE] = "release", [NS_OP_WRITE_BEGIN] = "write_begin",
        [NS_OP_WRITE_END] = "write_end", [NS_OP_SESSION_OPEN] = "session_open",
        [NS_OP_SESSION_KEEPALIVE] = "session_keepalive",
        [NS_OP_SESSION_CLOSE] = "session_close",
        [NS_OP_SESSION_EXPIRE] = "session_expire", [NS_OP_LOCK] = "lock",
        [NS_OP_CONFIG] = "config",
    };
    if (type <= 0 || type >= NS_OP_TYPE_END || !names[type])
        return "?";
    return names[type];
}
