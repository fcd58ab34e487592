/*
 * Helpers shared by the namespace tests (tests/unit/test_ns*.c): a test
 * context that builds ops, sends every one through the byte codec (as the
 * Raft log would), applies it, keeps its result and checks the
 * namespace's invariants after it.  Include after <cmocka.h>.
 */
#ifndef DFS_TEST_NS_H
#define DFS_TEST_NS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/dfs_error.h"
#include "common/wire.h"
#include "master/ns.h"
#include "master/ns_op.h"
#include "master/ns_snapshot.h"

static const struct ns_cred T_ROOT = { .uid = 0, .gid = 0 };

static inline struct ns_cred t_user(uint32_t uid, uint32_t gid)
{
    return (struct ns_cred){ .uid = uid, .gid = gid };
}

static inline struct ns_str t_str(const char *s)
{
    return (struct ns_str){ s, (uint32_t)strlen(s) };
}

struct tctx {
    struct ns *ns;
    int64_t now;
    uint64_t last_ino;          /* inode numbers come from ns_next_free_ino */
    uint64_t next_chunk;
    uint64_t client, seq;       /* 0: ops without a session */
    bool unchecked;             /* skip ns_check after each op (big tests) */
    struct ns_result res;       /* of the last op */
};

static inline void t_init(struct tctx *t)
{
    memset(t, 0, sizeof(*t));
    t->ns = ns_new();
    assert_non_null(t->ns);
    t->now = 1000;
    t->next_chunk = 0x100;
    ns_result_init(&t->res);
}

static inline void t_fini(struct tctx *t)
{
    ns_result_release(&t->res);
    ns_free(t->ns);
}

static inline struct ns_op t_op(struct tctx *t, enum ns_op_type type,
                                const struct ns_cred *cred)
{
    struct ns_op op;
    memset(&op, 0, sizeof(op));
    op.type = type;
    op.now = ++t->now;
    op.cred = *cred;
    op.client = t->client;
    op.seq = t->client ? ++t->seq : 0;
    return op;
}

/* Encodes, decodes, applies; checks invariants; returns the reply's err. */
static inline int t_apply(struct tctx *t, const struct ns_op *op)
{
    struct wire_writer w;
    wire_writer_init(&w);
    ns_op_encode(op, &w);
    assert_int_equal(w.err, 0);
    struct ns_op dec;
    assert_int_equal(ns_op_decode(w.buf, w.len, &dec), 0);
    ns_result_release(&t->res);
    ns_result_init(&t->res);
    int rc = ns_apply(t->ns, &dec, &t->res);
    wire_writer_release(&w);
    if (!t->unchecked)
        assert_int_equal(ns_check(t->ns), 0);
    return rc;
}

/* Applies op again as a new request (fresh seq and time), not a retry. */
static inline int t_again(struct tctx *t, struct ns_op *op)
{
    op->now = ++t->now;
    if (op->client)
        op->seq = ++t->seq;
    return t_apply(t, op);
}

static inline int t_make(struct tctx *t, enum ns_op_type type,
                         const struct ns_cred *c, uint64_t parent,
                         const char *name, uint32_t mode, uint64_t *ino)
{
    struct ns_op op = t_op(t, type, c);
    op.u.make.parent = parent;
    op.u.make.name = t_str(name);
    op.u.make.mode = mode;
    op.u.make.ino = ns_next_free_ino(t->ns, t->last_ino);
    int rc = t_apply(t, &op);
    if (rc == 0 && t->res.reply.attr.ino == op.u.make.ino)
        t->last_ino = op.u.make.ino;
    if (ino)
        *ino = t->res.reply.attr.ino;
    return rc;
}

static inline int t_mkdir(struct tctx *t, const struct ns_cred *c, uint64_t parent,
                          const char *name, uint32_t mode, uint64_t *ino)
{
    return t_make(t, NS_OP_MKDIR, c, parent, name, mode, ino);
}

static inline int t_create(struct tctx *t, const struct ns_cred *c, uint64_t parent,
                           const char *name, uint32_t mode, uint64_t *ino)
{
    return t_make(t, NS_OP_CREATE, c, parent, name, mode, ino);
}

static inline int t_symlink(struct tctx *t, const struct ns_cred *c, uint64_t parent,
                            const char *name, const char *target, uint64_t *ino)
{
    struct ns_op op = t_op(t, NS_OP_SYMLINK, c);
    op.u.make.parent = parent;
    op.u.make.name = t_str(name);
    op.u.make.target = t_str(target);
    op.u.make.ino = ns_next_free_ino(t->ns, t->last_ino);
    int rc = t_apply(t, &op);
    if (ino)
        *ino = t->res.reply.attr.ino;
    return rc;
}

static inline int t_remove(struct tctx *t, enum ns_op_type type,
                           const struct ns_cred *c, uint64_t parent, const char *name)
{
    struct ns_op op = t_op(t, type, c);
    op.u.remove.parent = parent;
    op.u.remove.name = t_str(name);
    return t_apply(t, &op);
}

static inline int t_unlink(struct tctx *t, const struct ns_cred *c, uint64_t parent,
                           const char *name)
{
    return t_remove(t, NS_OP_UNLINK, c, parent, name);
}

static inline int t_rmdir(struct tctx *t, const struct ns_cred *c, uint64_t parent,
                          const char *name)
{
    return t_remove(t, NS_OP_RMDIR, c, parent, name);
}

static inline int t_rename(struct tctx *t, const struct ns_cred *c, uint64_t parent,
                           const char *name, uint64_t newparent, const char *newname,
                           uint32_t flags)
{
    struct ns_op op = t_op(t, NS_OP_RENAME, c);
    op.u.rename.parent = parent;
    op.u.rename.name = t_str(name);
    op.u.rename.newparent = newparent;
    op.u.rename.newname = t_str(newname);
    op.u.rename.flags = flags;
    return t_apply(t, &op);
}

static inline int t_link(struct tctx *t, const struct ns_cred *c, uint64_t ino,
                         uint64_t newparent, const char *newname)
{
    struct ns_op op = t_op(t, NS_OP_LINK, c);
    op.u.link.ino = ino;
    op.u.link.newparent = newparent;
    op.u.link.newname = t_str(newname);
    return t_apply(t, &op);
}

static inline int t_chmod(struct tctx *t, const struct ns_cred *c, uint64_t ino,
                          uint32_t mode)
{
    struct ns_op op = t_op(t, NS_OP_SETATTR, c);
    op.u.setattr.ino = ino;
    op.u.setattr.valid = NS_SET_MODE;
    op.u.setattr.mode = mode;
    return t_apply(t, &op);
}

static inline int t_truncate(struct tctx *t, const struct ns_cred *c, uint64_t ino,
                             uint64_t size)
{
    struct ns_op op = t_op(t, NS_OP_SETATTR, c);
    op.u.setattr.ino = ino;
    op.u.setattr.valid = NS_SET_SIZE;
    op.u.setattr.size = size;
    return t_apply(t, &op);
}

/* The inode named name in parent (as root), or 0. */
static inline uint64_t t_ino(struct tctx *t, uint64_t parent, const char *name)
{
    struct ns_attr a;
    return ns_lookup(t->ns, &T_ROOT, parent, t_str(name), &a) == 0 ? a.ino : 0;
}

static inline struct ns_attr t_attr(struct tctx *t, uint64_t ino)
{
    struct ns_attr a;
    assert_int_equal(ns_getattr(t->ns, ino, &a), 0);
    return a;
}

/* ---- sessions ---------------------------------------------------------- */

/* Opens a session for client (which then signs every op with a seq). */
static inline void t_session(struct tctx *t, uint64_t client, uint64_t sess_id,
                             int64_t expiry)
{
    t->client = client;
    struct ns_op op = t_op(t, NS_OP_SESSION_OPEN, &T_ROOT);
    op.u.session.session = sess_id;
    op.u.session.expiry = expiry;
    assert_int_equal(t_apply(t, &op), 0);
}

static inline int t_open(struct tctx *t, const struct ns_cred *c, uint64_t ino,
                         uint32_t flags)
{
    struct ns_op op = t_op(t, NS_OP_OPEN, c);
    op.u.open.ino = ino;
    op.u.open.flags = flags;
    return t_apply(t, &op);
}

static inline int t_release(struct tctx *t, uint64_t ino, uint32_t flags,
                            uint64_t owner)
{
    struct ns_op op = t_op(t, NS_OP_RELEASE, &T_ROOT);
    op.u.open.ino = ino;
    op.u.open.flags = flags;
    op.u.open.owner = owner;
    return t_apply(t, &op);
}

static inline int t_write_begin(struct tctx *t, uint64_t ino, uint32_t index)
{
    struct ns_op op = t_op(t, NS_OP_WRITE_BEGIN, &T_ROOT);
    op.u.write.ino = ino;
    op.u.write.index = index;
    op.u.write.chunk_id = ++t->next_chunk;
    return t_apply(t, &op);
}

static inline int t_write_end(struct tctx *t, uint64_t ino, uint32_t index,
                              uint32_t length, uint32_t flags)
{
    struct ns_op op = t_op(t, NS_OP_WRITE_END, &T_ROOT);
    op.u.write.ino = ino;
    op.u.write.index = index;
    op.u.write.length = length;
    op.u.write.mtime = t->now * 10;
    op.u.write.flags = flags;
    return t_apply(t, &op);
}

static inline int t_lock(struct tctx *t, uint64_t ino, uint64_t owner, uint32_t kind,
                         uint32_t type, uint64_t start, uint64_t end)
{
    struct ns_op op = t_op(t, NS_OP_LOCK, &T_ROOT);
    op.u.lock = (struct ns_op_lock){ .ino = ino, .owner = owner, .kind = kind,
                                     .type = type, .start = start, .end = end };
    return t_apply(t, &op);
}

/* Whether chunk id is in the last result's freed list. */
static inline bool t_freed(const struct tctx *t, uint64_t id)
{
    for (size_t i = 0; i < t->res.freed.n; i++) {
        if (t->res.freed.v[i] == id)
            return true;
    }
    return false;
}

/* The seed of a randomized test: $NS_SEED or the given default; printed. */
static inline uint64_t t_seed(const char *test, uint64_t dflt)
{
    const char *s = getenv("NS_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 0) : dflt;
    printf("%s: seed %llu (replay: NS_SEED=%llu)\n", test,
           (unsigned long long)seed, (unsigned long long)seed);
    return seed;
}

/* xorshift64*: the tests' deterministic generator. */
static inline uint64_t t_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

#endif
