/* Tests of what client sessions hold: open files and orphans, chunk write
 * leases and versions, truncation, locks, expiry, and exactly-once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>

#include "test_ns.h"

#define CS NS_CHUNK_SIZE_DEFAULT

/* A namespace with one file "f" (mode 0666) and a session for client 7. */
static uint64_t setup_file(struct tctx *t)
{
    t_init(t);
    uint64_t f;
    assert_int_equal(t_create(t, &T_ROOT, NS_ROOT_INO, "f", 0666, &f), 0);
    t_session(t, 7, 70, 1000000);
    return f;
}

/* Switches the context to another client (its own session and seqs). */
static void as_client(struct tctx *t, uint64_t client, uint64_t *seq_slot)
{
    t->client = client;
    t->seq = *seq_slot;
}

static void test_open_release_counts(void **state)
{
    (void)state;
    struct tctx t;
    uint64_t f = setup_file(&t);
    assert_int_equal(t_open(&t, &T_ROOT, f, NS_OPEN_READ), 0);
    assert_int_equal(t_open(&t, &T_ROOT, f, NS_OPEN_READ | NS_OPEN_WRITE), 0);
    assert_int_equal(t_release(&t, f, NS_OPEN_WRITE, 0), 0);
    assert_int_equal(t_release(&t, f, NS_OPEN_WRITE, 0), -EBADF);  /* no writer left */
    assert_int_equal(t_release(&t, f, NS_OPEN_READ, 0), 0);
    assert_int_equal(t_release(&t, f, NS_OPEN_READ, 0), -EBADF);
    assert_int_equal(t_open(&t, &T_ROOT, NS_ROOT_INO, NS_OPEN_READ), -EISDIR);
    assert_int_equal(t_open(&t, &T_ROOT, 999, NS_OPEN_READ), -ENOENT);
    assert_int_equal(t_open(&t, &T_ROOT, f, 0), -EINVAL);
    assert_int_equal(t_open(&t, &T_ROOT, f, 64), -EINVAL);
    uint64_t s;
    assert_int_equal(t_symlink(&t, &T_ROOT, NS_ROOT_INO, "s", "f", &s), 0);
    assert_int_equal(t_open(&t, &T_ROOT, s, NS_OPEN_READ), -ELOOP);
    /* permission at open; none for the creator of a new file */
    assert_int_equal(t_chmod(&t, &T_ROOT, f, 0640), 0);
    struct ns_cred alice = t_user(1000, 100);
    assert_int_equal(t_open(&t, &alice, f, NS_OPEN_READ), -EACCES);
    struct ns_op op = t_op(&t, NS_OP_CREATE, &alice);
    assert_int_equal(t_chmod(&t, &T_ROOT, NS_ROOT_INO, 0777), 0);
    op = t_op(&t, NS_OP_CREATE, &alice);
    op.u.make = (struct ns_op_make){ .parent = NS_ROOT_INO, .name = t_str("ro"),
                                     .mode = 0444, .flags = NS_OPEN_WRITE,
                                     .ino = ns_next_free_ino(t.ns, 0) };
    assert_int_equal(t_apply(&t, &op), 0);
    uint64_t ro = t.res.reply.attr.ino;
    assert_int_equal(t_write_begin(&t, ro, 0), 0);
    /* opening the existing file through CREATE checks permission */
    op.u.make.ino = ns_next_free_ino(t.ns, 0);
    assert_int_equal(t_again(&t, &op), -EACCES);
    op.u.make.flags = NS_OPEN_WRITE | NS_CREATE_EXCL;
    assert_int_equal(t_again(&t, &op), -EEXIST);
    t_fini(&t);
}

static void test_orphan_lives_until_last_close(void **state)
{
    (void)state;
    struct tctx t;
    uint64_t f = setup_file(&t);
    assert_int_equal(t_open(&t, &T_ROOT, f, NS_OPEN_READ | NS_OPEN_WRITE), 0);
    assert_int_equal(t_write_begin(&t, f, 0), 0);
    uint64_t c0 = t.res.reply.chunk_id;
    assert_int_equal(t_write_end(&t, f, 0, 100, 0), 0);
    assert_int_equal(t_unlink(&t, &T_ROOT, NS_ROOT_INO, "f"), 0);
    assert_int_equal(t.res.freed.n, 0);
    struct ns_attr a = t_attr(&t, f);
    assert_int_equal(a.nlink, 0);
    assert_int_equal(a.size, 100);
    struct ns_statfs st;
    ns_statfs(t.ns, &st);
    assert_int_equal(st.orphans, 1);
    /* still writable: a second chunk */
    assert_int_equal(t_write_begin(&t, f, 1), 0);
    uint64_t c1 = t.res.reply.chunk_id;
    assert_int_equal(t_write_end(&t, f, 1, 10, 0), 0);
    assert_int_equal(t_attr(&t, f).size, CS + 10);
    /* a link to an orphan is refused */
    assert_int_equal(t_link(&t, &T_ROOT, f, NS_ROOT_INO, "back"), -ENOENT);
    /* last close frees it and reports its chunks */
    assert_int_equal(t_release(&t, f, NS_OPEN_WRITE, 0), 0);
    assert_true(t_freed(&t, c0));
    assert_true(t_freed(&t, c1));
    assert_int_equal(ns_getattr(t.ns, f, &a), -ENOENT);
    ns_statfs(t.ns, &st);
    assert_int_equal(st.orphans, 0);
    assert_int_equal(st.chunks, 0);
    struct ns_chunk_info ci;
    assert_int_equal(ns_chunk_lookup(t.ns, c0, &ci), -ENOENT);
    t_fini(&t);
}

static void test_orphan_freed_at_expiry(void **state)
{
    (void)state;
    struct tctx t;
    uint64_t f = setup_file(&t);
    assert_int_equal(t_open(&t, &T_ROOT, f, NS_OPEN_WRITE), 0);
    assert_int_equal(t_write_begin(&t, f, 0), 0);
    uint64_t c0 = t.res.reply.chunk_id;
    assert_int_equal(t_lock(&t, f, 1, NS_LOCK_FLOCK, NS_LOCK_WR, 0, 0), 0);
    assert_int_equal(t_unlink(&t, &T_ROOT, NS_ROOT_INO, "f"), 0);

    uint64_t ids[4];
    assert_int_equal(ns_expired_sessions(t.ns, 999999, ids, 4), 0);
    assert_int_equal(ns_expired_sessions(t.ns, 1000000, ids, 4), 1);
    assert_int_equal(ids[0], 70);
    t.client = 0;
    struct ns_op op = t_op(&t, NS_OP_SESSION_EXPIRE, &T_ROOT);
    op.u.session.session = 70;
    op.now = 999999;
    assert_int_equal(t_apply(&t, &op), -EAGAIN);     /* not yet expired */
    op.now = 1000000;
    assert_int_equal(t_apply(&t, &op), 0);
    assert_int_equal(t.res.session_ended, 70);
    assert_true(t_freed(&t, c0));
    assert_int_equal(t.res.leases.n, 1);
    assert_int_equal(t.res.leases.v[0], c0);
    assert_int_equal(t.res.lock_inos.n, 1);
    struct ns_attr a;
    assert_int_equal(ns_getattr(t.ns, f, &a), -ENOENT);
    assert_int_equal(t_apply(&t, &op), -DFS_ESESSION);
    /* the client is gone: its ops are refused */
    t.client = 7;
    assert_int_equal(t_open(&t, &T_ROOT, NS_ROOT_INO, NS_OPEN_READ), -DFS_ESESSION);
    /* expiry is the master's op only */
    t_session(&t, 8, 80, 5);
    op = t_op(&t, NS_OP_SESSION_EXPIRE, &T_ROOT);
    op.u.session.session = 80;
    assert_int_equal(t_apply(&t, &op), -EPERM);
    t_fini(&t);
}

static void test_session_lifecycle(void **state)
{
    (void)state;
    struct tctx t;
    uint64_t f = setup_file(&t);
    uint64_t id;
    int64_t expiry;
    assert_int_equal(ns_session_of(t.ns, 7, &id, &expiry), 0);
    assert_int_equal(id, 70);
    assert_int_equal(expiry, 1000000);
    struct ns_op op = t_op(&t, NS_OP_SESSION_KEEPALIVE, &T_ROOT);
    op.u.session.expiry = 2000000;
    assert_int_equal(t_apply(&t, &op), 0);
    op = t_op(&t, NS_OP_SESSION_KEEPALIVE, &T_ROOT);
    op.u.session.expiry = 1500000;                 /* never shrinks */
    assert_int_equal(t_apply(&t, &op), 0);
    assert_int_equal(ns_session_of(t.ns, 7, &id, &expiry), 0);
    assert_int_equal(expiry, 2000000);
    /* a retried SESSION_OPEN with the same id is harmless */
    op = t_op(&t, NS_OP_SESSION_OPEN, &T_ROOT);
    op.u.session = (struct ns_op_session){ .session = 70, .expiry = 5 };
    assert_int_equal(t_apply(&t, &op), 0);
    assert_int_equal(ns_session_of(t.ns, 7, &id, &expiry), 0);
    assert_int_equal(expiry, 2000000);
    /* a new session id for the same client replaces (and ends) the old one */
    assert_int_equal(t_open(&t, &T_ROOT, f, NS_OPEN_READ), 0);
    op = t_op(&t, NS_OP_SESSION_OPEN, &T_ROOT);
    op.u.session = (struct ns_op_session){ .session = 71, .expiry = 3000000 };
    assert_int_equal(t_apply(&t, &op), 0);
    assert_int_equal(t.res.session_ended, 70);
    assert_int_equal(t_release(&t, f, NS_OPEN_READ, 0), -EBADF);
    /* session ids are unique across clients */
    t.client = 8;
    op = t_op(&t, NS_OP_SESSION_OPEN, &T_ROOT);
    op.u.session = (struct ns_op_session){ .session = 71, .expiry = 1 };
    assert_int_equal(t_apply(&t, &op), -DFS_EIDINUSE);
    assert_int_equal(ns_max_session_id(t.ns), 71);
    t.client = 7;
    op = t_op(&t, NS_OP_SESSION_CLOSE, &T_ROOT);
    assert_int_equal(t_apply(&t, &op), 0);
    assert_int_equal(t.res.session_ended, 71);
    assert_int_equal(ns_session_of(t.ns, 7, &id, &expiry), -DFS_ESESSION);
    struct ns_statfs st;
    ns_statfs(t.ns, &st);
    assert_int_equal(st.sessions, 0);
    t_fini(&t);
}

static void test_write_leases_and_versions(void **state)
{
    (void)state;
    struct tctx t;
    uint64_t f = setup_file(&t);
    uint64_t seq7 = 0, seq8 = 0;
    assert_int_equal(t_write_begin(&t, f, 0), -EBADF);          /* not open */
    assert_int_equal(t_open(&t, &T_ROOT, f, NS_OPEN_READ), 0);
    assert_int_equal(t_write_begin(&t, f, 0), -EBADF);          /* read only */
    assert_int_equal(t_open(&t, &T_ROOT, f, NS_OPEN_WRITE), 0);
    assert_int_equal(t_write_begin(&t, f, NS_CHUNKS_MAX), -EFBIG);
    assert_int_equal(t_write_begin(&t, f, 2), 0);
    uint64_t c2 = t.res.reply.chunk_id;
    assert_int_equal(t.res.reply.version, 1);
    assert_int_equal(ns_lease_holder(t.ns, c2), 70);
    assert_int_equal(ns_max_chunk_id(t.ns), c2);
    /* the same session again: a new version, same lease */
    assert_int_equal(t_write_begin(&t, f, 2), 0);
    assert_int_equal(t.res.reply.chunk_id, c2);
    assert_int_equal(t.res.reply.version, 2);
    seq7 = t.seq;

    /* another session waits */
    t_session(&t, 8, 80, 1000000);
    assert_int_equal(t_open(&t, &T_ROOT, f, NS_OPEN_WRITE), 0);
    assert_int_equal(t_write_begin(&t, f, 2), -EAGAIN);
    assert_int_equal(t_write_end(&t, f, 2, 5, 0), -DFS_ENOLEASE);
    assert_int_equal(t_write_end(&t, f, 3, 5, 0), -DFS_ENOLEASE);
    seq8 = t.seq;

    /* fsync keeps the lease; the final end releases it */
    as_client(&t, 7, &seq7);
    assert_int_equal(t_write_end(&t, f, 2, 1000, NS_WRITE_KEEP_LEASE), 0);
    assert_int_equal(t.res.leases.n, 0);
    assert_int_equal(t_attr(&t, f).size, 2 * CS + 1000);
    assert_int_equal(t_write_end(&t, f, 2, 500, 0), 0);
    assert_int_equal(t_attr(&t, f).size, 2 * CS + 1000);        /* never shrinks */
    assert_int_equal(t.res.reply.attr.mtime, t.now * 10);
    assert_int_equal(t.res.leases.n, 1);
    assert_int_equal(ns_lease_holder(t.ns, c2), 0);
    assert_int_equal(t_write_end(&t, f, 2, 5, 0), -DFS_ENOLEASE);
    assert_int_equal(t_write_end(&t, f, 2, CS + 1, 0), -EINVAL);
    seq7 = t.seq;

    as_client(&t, 8, &seq8);
    assert_int_equal(t_write_begin(&t, f, 2), 0);
    assert_int_equal(t.res.reply.version, 3);

    struct ns_chunk_info ci[8];
    size_t n;
    assert_int_equal(ns_chunk_range(t.ns, f, 0, ci, 8, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(ci[0].id, 0);                              /* holes */
    assert_int_equal(ci[2].id, c2);
    assert_int_equal(ci[2].version, 3);
    assert_int_equal(ci[2].length, 1000);
    assert_int_equal(ci[2].goal, NS_GOAL_DEFAULT);
    assert_int_equal(ns_chunk_range(t.ns, f, 2, ci, 1, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ns_chunk_range(t.ns, NS_ROOT_INO, 0, ci, 8, &n), -EISDIR);

    /* the last writable release ends the session's leases on the file */
    assert_int_equal(t_release(&t, f, NS_OPEN_WRITE, 0), 0);
    assert_int_equal(t.res.leases.n, 1);
    assert_int_equal(ns_lease_holder(t.ns, c2), 0);

    /* leader-chosen chunk ids must be new */
    as_client(&t, 7, &seq7);
    struct ns_op op = t_op(&t, NS_OP_WRITE_BEGIN, &T_ROOT);
    op.u.write = (struct ns_op_write){ .ino = f, .index = 5, .chunk_id = c2 };
    assert_int_equal(t_apply(&t, &op), -DFS_EIDINUSE);
    op.u.write.chunk_id = 0;
    assert_int_equal(t_again(&t, &op), -EINVAL);
    assert_int_equal(t_attr(&t, f).nchunks, 3);                 /* unchanged */
    uint32_t cur = 0;
    int walked = 0;
    while (ns_chunk_walk(t.ns, &cur, &ci[0]))
        walked++;
    assert_int_equal(walked, 1);
    t_fini(&t);
}

static void test_truncate_frees_and_trims(void **state)
{
    (void)state;
    struct tctx t;
    uint64_t f = setup_file(&t);
    uint64_t ids[3];
    assert_int_equal(t_open(&t, &T_ROOT, f, NS_OPEN_WRITE), 0);
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(t_write_begin(&t, f, i), 0);
        ids[i] = t.res.reply.chunk_id;
        assert_int_equal(t_write_end(&t, f, i, (uint32_t)CS, 0), 0);
    }
    assert_int_equal(t_attr(&t, f).size, 3 * CS);
    /* cut inside chunk 1: chunk 2 freed, chunk 1 trimmed to a new version */
    assert_int_equal(t_truncate(&t, &T_ROOT, f, CS + 100), 0);
    assert_true(t_freed(&t, ids[2]));
    assert_int_equal(t.res.freed.n, 1);
    assert_int_equal(t.res.ntrimmed, 1);
    assert_int_equal(t.res.trimmed[0].id, ids[1]);
    assert_int_equal(t.res.trimmed[0].length, 100);
    assert_int_equal(t.res.trimmed[0].version, 2);
    struct ns_attr a = t_attr(&t, f);
    assert_int_equal(a.size, CS + 100);
    assert_int_equal(a.nchunks, 2);
    assert_int_equal(a.mtime, t.now);
    /* growing adds nothing; cutting on a boundary trims nothing */
    assert_int_equal(t_truncate(&t, &T_ROOT, f, 10 * CS), 0);
    assert_int_equal(t.res.freed.n + t.res.ntrimmed, 0);
    assert_int_equal(t_truncate(&t, &T_ROOT, f, CS), 0);
    assert_true(t_freed(&t, ids[1]));
    assert_int_equal(t.res.ntrimmed, 0);
    /* truncate of a chunk under lease ends the lease */
    assert_int_equal(t_write_begin(&t, f, 0), 0);
    assert_int_equal(t_truncate(&t, &T_ROOT, f, 0), 0);
    assert_true(t_freed(&t, ids[0]));
    assert_int_equal(t.res.leases.n, 1);
    assert_int_equal(t_attr(&t, f).nchunks, 0);
    /* O_TRUNC at open */
    assert_int_equal(t_write_begin(&t, f, 4), 0);
    uint64_t c4 = t.res.reply.chunk_id;
    assert_int_equal(t_write_end(&t, f, 4, 7, 0), 0);
    assert_int_equal(t_open(&t, &T_ROOT, f, NS_OPEN_WRITE | NS_OPEN_TRUNC), 0);
    assert_true(t_freed(&t, c4));
    assert_int_equal(t.res.reply.attr.size, 0);
    /* ftruncate through a writable handle needs no permission */
    assert_int_equal(t_chmod(&t, &T_ROOT, f, 0444), 0);
    struct ns_cred alice = t_user(1000, 100);
    struct ns_op op = t_op(&t, NS_OP_SETATTR, &alice);
    op.u.setattr = (struct ns_op_setattr){ .ino = f, .valid = NS_SET_SIZE, .size = 5 };
    assert_int_equal(t_apply(&t, &op), -EACCES);
    op.u.setattr.valid |= NS_SET_OPEN_FH;
    assert_int_equal(t_again(&t, &op), 0);
    t_fini(&t);
}

/* The chunk at index of file f. */
static struct ns_chunk_info chunk_at(struct tctx *t, uint64_t f, uint32_t index)
{
    struct ns_chunk_info ci;
    size_t n;
    assert_int_equal(ns_chunk_range(t->ns, f, index, &ci, 1, &n), 0);
    assert_int_equal(n, 1);
    return ci;
}

/* A cut remembers from which version replicas await their trim, until a
 * write session commits new content. */
static void test_truncate_remembers_untrimmed(void **state)
{
    (void)state;
    struct tctx t;
    uint64_t f = setup_file(&t);
    assert_int_equal(t_open(&t, &T_ROOT, f, NS_OPEN_WRITE), 0);
    assert_int_equal(t_write_begin(&t, f, 0), 0);
    assert_int_equal(t_write_end(&t, f, 0, 5000, 0), 0);
    assert_int_equal(t_write_begin(&t, f, 0), 0);               /* v2, never ends */
    assert_int_equal(t_release(&t, f, NS_OPEN_WRITE, 0), 0);
    assert_int_equal(chunk_at(&t, f, 0).trim_from, 0);

    /* the first cut: replicas from the old committed version on await it */
    assert_int_equal(t_truncate(&t, &T_ROOT, f, 3000), 0);
    struct ns_chunk_info ci = chunk_at(&t, f, 0);
    assert_int_equal(ci.version, 3);
    assert_int_equal(ci.committed, 3);
    assert_int_equal(ci.trim_from, 1);
    assert_int_equal(t.res.ntrimmed, 1);
    assert_int_equal(t.res.trimmed[0].trim_from, 1);
    /* a grow changes no chunk; a second cut keeps the oldest start */
    assert_int_equal(t_truncate(&t, &T_ROOT, f, 8000), 0);
    assert_int_equal(t.res.ntrimmed, 0);
    assert_int_equal(t_truncate(&t, &T_ROOT, f, 2000), 0);
    ci = chunk_at(&t, f, 0);
    assert_int_equal(ci.committed, 4);
    assert_int_equal(ci.length, 2000);
    assert_int_equal(ci.trim_from, 1);
    assert_int_equal(t.res.trimmed[0].trim_from, 1);
    assert_int_equal(t.res.trimmed[0].version, 4);

    /* a write session that does not commit changes nothing committed */
    assert_int_equal(t_open(&t, &T_ROOT, f, NS_OPEN_WRITE), 0);
    assert_int_equal(t_write_begin(&t, f, 0), 0);
    ci = chunk_at(&t, f, 0);
    assert_int_equal(ci.version, 5);
    assert_int_equal(ci.trim_from, 1);
    /* ... one that commits makes the replicas from before the cut stale */
    assert_int_equal(t_write_end(&t, f, 0, 2200, NS_WRITE_KEEP_LEASE), 0);
    ci = chunk_at(&t, f, 0);
    assert_int_equal(ci.committed, 5);
    assert_int_equal(ci.trim_from, 0);
    /* and the next cut starts from what that write committed */
    assert_int_equal(t_write_end(&t, f, 0, 2200, 0), 0);
    assert_int_equal(t_truncate(&t, &T_ROOT, f, 10), 0);
    ci = chunk_at(&t, f, 0);
    assert_int_equal(ci.committed, 6);
    assert_int_equal(ci.trim_from, 5);
    uint32_t cur = 0;
    struct ns_chunk_info walked;
    assert_true(ns_chunk_walk(t.ns, &cur, &walked));
    assert_int_equal(walked.trim_from, 5);
    assert_int_equal(ns_chunk_lookup(t.ns, ci.id, &walked), 0);
    assert_int_equal(walked.trim_from, 5);
    t_fini(&t);
}

static void test_locks(void **state)
{
    (void)state;
    struct tctx t;
    uint64_t f = setup_file(&t);
    uint64_t seq7, seq8;
    assert_int_equal(t_lock(&t, f, 1, NS_LOCK_POSIX, NS_LOCK_RD, 0, 99), -EBADF);
    assert_int_equal(t_open(&t, &T_ROOT, f, NS_OPEN_READ), 0);
    assert_int_equal(t_lock(&t, f, 1, NS_LOCK_POSIX, NS_LOCK_WR, 0, 99), -EBADF);
    assert_int_equal(t_lock(&t, f, 1, NS_LOCK_POSIX, NS_LOCK_RD, 0, 99), 0);
    assert_int_equal(t_lock(&t, f, 1, NS_LOCK_FLOCK, NS_LOCK_WR, 0, 0), 0);
    assert_int_equal(t_lock(&t, f, 1, NS_LOCK_POSIX, NS_LOCK_RD, 50, 10), -EINVAL);
    assert_int_equal(t_lock(&t, f, 1, 9, NS_LOCK_RD, 0, 10), -EINVAL);
    assert_int_equal(t_lock(&t, 999, 1, NS_LOCK_POSIX, NS_LOCK_RD, 0, 10), -ENOENT);
    seq7 = t.seq;

    t_session(&t, 8, 80, 1000000);
    assert_int_equal(t_open(&t, &T_ROOT, f, NS_OPEN_READ | NS_OPEN_WRITE), 0);
    assert_int_equal(t_lock(&t, f, 2, NS_LOCK_POSIX, NS_LOCK_RD, 50, 200), 0);  /* shared */
    assert_int_equal(t_lock(&t, f, 2, NS_LOCK_POSIX, NS_LOCK_WR, 90, 120), -EAGAIN);
    assert_int_equal(t_lock(&t, f, 2, NS_LOCK_POSIX, NS_LOCK_WR, 100, 120), 0);
    assert_int_equal(t_lock(&t, f, 2, NS_LOCK_FLOCK, NS_LOCK_RD, 0, 0), -EAGAIN);
    struct ns_op_lock q = { .ino = f, .owner = 2, .kind = NS_LOCK_POSIX,
                            .type = NS_LOCK_WR, .start = 0, .end = 10 };
    struct ns_lock conflict;
    assert_int_equal(ns_getlk(t.ns, 8, &q, &conflict), -EAGAIN);
    assert_int_equal(conflict.sess, 70);
    assert_int_equal(conflict.end, 99);
    q.start = 100;
    assert_int_equal(ns_getlk(t.ns, 8, &q, &conflict), 0);
    assert_int_equal(ns_getlk(t.ns, 99, &q, &conflict), -DFS_ESESSION);
    /* the -EAGAIN answer was not saved: the same seq retries for real */
    seq8 = t.seq;

    /* session 7 unlocks: the waiter's inode is reported */
    as_client(&t, 7, &seq7);
    assert_int_equal(t_lock(&t, f, 1, NS_LOCK_POSIX, NS_LOCK_UN, 0, UINT64_MAX), 0);
    assert_int_equal(t.res.lock_inos.n, 1);
    assert_int_equal(t.res.lock_inos.v[0], f);
    q.start = 0;
    q.end = 10;
    assert_int_equal(ns_getlk(t.ns, 8, &q, &conflict), 0);
    /* release with NS_RELEASE_FLOCK drops the owner's flock */
    assert_int_equal(t_release(&t, f, NS_OPEN_READ | NS_RELEASE_FLOCK, 1), 0);
    assert_int_equal(t.res.lock_inos.n, 1);
    seq7 = t.seq;

    as_client(&t, 8, &seq8);
    assert_int_equal(t_lock(&t, f, 2, NS_LOCK_FLOCK, NS_LOCK_RD, 0, 0), 0);
    /* closing the session drops all of its locks */
    struct ns_op op = t_op(&t, NS_OP_SESSION_CLOSE, &T_ROOT);
    assert_int_equal(t_apply(&t, &op), 0);
    assert_int_equal(t.res.lock_inos.n, 1);
    t_fini(&t);
}

static void test_exactly_once(void **state)
{
    (void)state;
    struct tctx t;
    t_init(&t);
    t_session(&t, 7, 70, 1000000);
    struct ns_op op = t_op(&t, NS_OP_MKDIR, &T_ROOT);
    op.u.make = (struct ns_op_make){ .parent = NS_ROOT_INO, .name = t_str("d"),
                                     .mode = 0755, .ino = 50 };
    assert_int_equal(t_apply(&t, &op), 0);
    assert_false(t.res.deduped);
    struct ns_attr first = t.res.reply.attr;
    /* the retry (same client, same seq) answers the saved reply */
    op.now += 100;
    assert_int_equal(t_apply(&t, &op), 0);
    assert_true(t.res.deduped);
    assert_memory_equal(&t.res.reply.attr, &first, sizeof(first));
    assert_int_equal(t_attr(&t, NS_ROOT_INO).nlink, 3);
    /* a failed op's answer is saved too */
    struct ns_op bad = t_op(&t, NS_OP_RMDIR, &T_ROOT);
    bad.u.remove = (struct ns_op_remove){ .parent = NS_ROOT_INO, .name = t_str("zz") };
    assert_int_equal(t_apply(&t, &bad), -ENOENT);
    assert_int_equal(t_mkdir(&t, &T_ROOT, NS_ROOT_INO, "zz", 0755, NULL), 0);
    assert_int_equal(t_apply(&t, &bad), -ENOENT);
    assert_true(t.res.deduped);
    /* the window: NS_DEDUP_WINDOW newer seqs make op's too old to tell */
    for (unsigned i = 0; i < NS_DEDUP_WINDOW; i++) {
        struct ns_op k = t_op(&t, NS_OP_SESSION_KEEPALIVE, &T_ROOT);
        k.u.session.expiry = 1000000;
        assert_int_equal(t_apply(&t, &k), 0);
    }
    assert_int_equal(t_apply(&t, &op), -DFS_ESEQ);
    assert_int_equal(t_attr(&t, NS_ROOT_INO).nlink, 4);
    /* an unseen seq below the newest but inside the window still applies */
    uint64_t skipped = t.seq + 2;
    t.seq += 5;
    struct ns_op k = t_op(&t, NS_OP_SESSION_KEEPALIVE, &T_ROOT);
    assert_int_equal(t_apply(&t, &k), 0);
    struct ns_op late = t_op(&t, NS_OP_MKDIR, &T_ROOT);
    late.seq = skipped;
    late.u.make = (struct ns_op_make){ .parent = NS_ROOT_INO, .name = t_str("late"),
                                       .mode = 0755, .ino = 60 };
    assert_int_equal(t_apply(&t, &late), 0);
    assert_false(t.res.deduped);
    /* the reply survives a snapshot */
    struct wire_writer w;
    wire_writer_init(&w);
    assert_int_equal(ns_snapshot_write(t.ns, &w), 0);
    struct ns *copy;
    assert_int_equal(ns_snapshot_load(w.buf, w.len, &copy), 0);
    wire_writer_release(&w);
    struct ns_result r;
    ns_result_init(&r);
    assert_int_equal(ns_apply(copy, &late, &r), 0);
    assert_true(r.deduped);
    assert_int_equal(r.reply.attr.ino, 60);
    ns_result_release(&r);
    assert_int_equal(ns_digest(copy), ns_digest(t.ns));
    ns_free(copy);
    /* a session's table goes with it */
    struct ns_op close = t_op(&t, NS_OP_SESSION_CLOSE, &T_ROOT);
    assert_int_equal(t_apply(&t, &close), 0);
    assert_int_equal(t_apply(&t, &late), -DFS_ESESSION);
    t_fini(&t);
}

/* A request from an earlier session of the client must not touch the
 * current one: its reply is gone, so it is refused. */
static void test_stale_retry_across_sessions(void **state)
{
    (void)state;
    struct tctx t;
    t_init(&t);
    t_session(&t, 7, 70, 1000000);
    struct ns_op old_open = t_op(&t, NS_OP_SESSION_OPEN, &T_ROOT);
    old_open.seq = t.seq - 1;               /* the open that made session 70 */
    old_open.u.session = (struct ns_op_session){ .session = 70, .expiry = 1000000 };
    struct ns_op old_close = t_op(&t, NS_OP_SESSION_CLOSE, &T_ROOT);
    assert_int_equal(t_apply(&t, &old_close), 0);
    /* the client comes back with a new session */
    struct ns_op op = t_op(&t, NS_OP_SESSION_OPEN, &T_ROOT);
    op.u.session = (struct ns_op_session){ .session = 71, .expiry = 1000000 };
    assert_int_equal(t_apply(&t, &op), 0);
    assert_int_equal(t_apply(&t, &old_close), -DFS_ESEQ);
    assert_int_equal(t_apply(&t, &old_open), -DFS_ESEQ);
    uint64_t id;
    int64_t expiry;
    assert_int_equal(ns_session_of(t.ns, 7, &id, &expiry), 0);
    assert_int_equal(id, 71);
    t_fini(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_release_counts),
        cmocka_unit_test(test_orphan_lives_until_last_close),
        cmocka_unit_test(test_orphan_freed_at_expiry),
        cmocka_unit_test(test_session_lifecycle),
        cmocka_unit_test(test_write_leases_and_versions),
        cmocka_unit_test(test_truncate_frees_and_trims),
        cmocka_unit_test(test_truncate_remembers_untrimmed),
        cmocka_unit_test(test_locks),
        cmocka_unit_test(test_exactly_once),
        cmocka_unit_test(test_stale_retry_across_sessions),
    };
    return cmocka_run_group_tests_name("ns_session", tests, NULL, NULL);
}
