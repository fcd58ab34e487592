/* Tests of master/mlock (the leader's parked lock waiters) and of what the
 * namespace keeps for them: the locking pid, through the log encoding
 * (format 2, and format 1 entries without it), apply, F_GETLK and a
 * snapshot. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>

#include "common/dfs_error.h"
#include "master/mlock.h"
#include "master/ns_snapshot.h"
#include "test_ns.h"

static struct mlock_waiter waiter(int conn, uint64_t req, uint64_t client,
                                  uint64_t ino, uint64_t owner, uint32_t kind,
                                  uint64_t start, uint64_t end)
{
    struct mlock_waiter w = { .conn = (void *)(uintptr_t)conn, .req_id = req };
    w.op.type = NS_OP_LOCK;
    w.op.client = client;
    w.op.seq = req;
    w.op.u.lock = (struct ns_op_lock){ .ino = ino, .owner = owner, .kind = kind,
                                       .type = NS_LOCK_WR, .start = start,
                                       .end = end, .pid = 40 + (uint32_t)req };
    return w;
}

static void test_wake_in_order(void **state)
{
    (void)state;
    struct mlock *m = mlock_new();
    assert_non_null(m);
    struct mlock_waiter w = waiter(1, 1, 7, 100, 1, NS_LOCK_POSIX, 0, 9);
    assert_int_equal(mlock_park(m, &w), 0);
    w = waiter(1, 2, 8, 200, 1, NS_LOCK_POSIX, 0, 9);
    assert_int_equal(mlock_park(m, &w), 0);
    w = waiter(2, 3, 9, 100, 1, NS_LOCK_FLOCK, 0, UINT64_MAX);
    assert_int_equal(mlock_park(m, &w), 0);
    assert_int_equal(mlock_count(m), 3);

    struct mlock_waiter out;
    assert_false(mlock_take_due(m, &out));   /* parked, not due */
    assert_int_equal(mlock_wake_ino(m, 300), 0);
    assert_int_equal(mlock_wake_ino(m, 100), 2);
    assert_int_equal(mlock_wake_ino(m, 100), 0);  /* already due */
    assert_true(mlock_take_due(m, &out));
    assert_int_equal(out.req_id, 1);              /* oldest first */
    assert_int_equal(out.op.u.lock.pid, 41);      /* the op comes back whole */
    assert_true(mlock_take_due(m, &out));
    assert_int_equal(out.req_id, 3);
    assert_false(mlock_take_due(m, &out));
    assert_int_equal(mlock_count(m), 1);

    /* parking again clears due; a session's end wakes its waiters */
    out.due = true;
    assert_int_equal(mlock_park(m, &out), 0);
    assert_false(mlock_take_due(m, &out));
    assert_int_equal(mlock_wake_client(m, 8), 1);
    assert_true(mlock_take_due(m, &out));
    assert_int_equal(out.req_id, 2);
    mlock_free(m);
}

static void test_cancel_matches_owner_and_range(void **state)
{
    (void)state;
    struct ns_op_lock un = { .ino = 100, .owner = 1, .kind = NS_LOCK_POSIX,
                             .type = NS_LOCK_UN, .start = 10, .end = 19 };
    struct ns_op_lock w = un;
    w.type = NS_LOCK_WR;
    w.start = 19;
    w.end = 30;
    assert_true(mlock_unlock_cancels(7, &un, 7, &w));
    assert_false(mlock_unlock_cancels(7, &un, 8, &w));    /* another session */
    w.start = 20;
    assert_false(mlock_unlock_cancels(7, &un, 7, &w));    /* no overlap */
    w.start = 0;
    w.end = 10;
    assert_true(mlock_unlock_cancels(7, &un, 7, &w));
    w.owner = 2;
    assert_false(mlock_unlock_cancels(7, &un, 7, &w));    /* another owner */
    w.owner = 1;
    w.ino = 101;
    assert_false(mlock_unlock_cancels(7, &un, 7, &w));    /* another inode */
    w.ino = 100;
    w.kind = NS_LOCK_FLOCK;
    assert_false(mlock_unlock_cancels(7, &un, 7, &w));    /* another kind */
    un.kind = NS_LOCK_FLOCK;
    w.start = 500;
    w.end = 600;
    assert_true(mlock_unlock_cancels(7, &un, 7, &w));     /* flock: any range */

    struct mlock *m = mlock_new();
    assert_non_null(m);
    struct mlock_waiter a = waiter(1, 1, 7, 100, 1, NS_LOCK_POSIX, 0, 9);
    struct mlock_waiter b = waiter(1, 2, 7, 100, 1, NS_LOCK_POSIX, 50, 59);
    struct mlock_waiter c = waiter(1, 3, 7, 100, 2, NS_LOCK_POSIX, 0, 9);
    assert_int_equal(mlock_park(m, &a), 0);
    assert_int_equal(mlock_park(m, &b), 0);
    assert_int_equal(mlock_park(m, &c), 0);
    struct mlock_waiter out;
    assert_true(mlock_take_cancelled(m, 7, 100, 1, NS_LOCK_POSIX, 5, 55, &out));
    assert_int_equal(out.req_id, 1);
    assert_true(mlock_take_cancelled(m, 7, 100, 1, NS_LOCK_POSIX, 5, 55, &out));
    assert_int_equal(out.req_id, 2);
    assert_false(mlock_take_cancelled(m, 7, 100, 1, NS_LOCK_POSIX, 5, 55, &out));
    assert_int_equal(mlock_count(m), 1);
    mlock_free(m);
}

/* The applied table of test_settle: req 4 is in the way of something
 * applied, req 6's session is gone; everything else would be granted. */
static int settle_table(void *arg, const struct ns_op *op)
{
    (*(int *)arg)++;
    if (op->seq == 4)
        return -EAGAIN;
    return op->seq == 6 ? -DFS_ESESSION : 0;
}

static void test_settle(void **state)
{
    (void)state;
    struct mlock *m = mlock_new();
    assert_non_null(m);
    struct mlock_waiter v[] = {
        waiter(1, 1, 7, 100, 1, NS_LOCK_POSIX, 0, 9),     /* granted first */
        waiter(1, 2, 8, 100, 1, NS_LOCK_POSIX, 5, 15),    /* behind 1 */
        waiter(1, 3, 9, 100, 1, NS_LOCK_POSIX, 50, 59),   /* no overlap */
        waiter(1, 4, 10, 100, 1, NS_LOCK_POSIX, 80, 89),  /* applied conflict */
        waiter(1, 5, 7, 100, 1, NS_LOCK_POSIX, 3, 4),     /* 1's owner */
        waiter(1, 6, 11, 100, 1, NS_LOCK_POSIX, 0, 9),    /* session gone */
        waiter(1, 7, 12, 100, 1, NS_LOCK_FLOCK, 0, UINT64_MAX), /* other kind */
        waiter(1, 8, 13, 100, 1, NS_LOCK_POSIX, 0, 9),    /* readers ... */
        waiter(1, 9, 14, 200, 1, NS_LOCK_POSIX, 0, 9),    /* not woken */
    };
    v[7].op.u.lock.type = NS_LOCK_RD;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        assert_int_equal(mlock_park(m, &v[i]), 0);
    assert_int_equal(mlock_wake_ino(m, 100), 8);
    int tests = 0;
    mlock_settle(m, settle_table, &tests);
    assert_int_equal(tests, 8);
    /* due: 1, 3, 5 (its own owner's), 6 (the proposal tells the client),
     * 7; not 2 or 8 (1 would block them), 4 (blocked), 9 (not woken) */
    uint64_t want[] = { 1, 3, 5, 6, 7 };
    struct mlock_waiter out;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_true(mlock_take_due(m, &out));
        assert_int_equal(out.req_id, want[i]);
    }
    assert_false(mlock_take_due(m, &out));
    assert_int_equal(mlock_count(m), 4);
    mlock_free(m);
}

static void test_park_bounded(void **state)
{
    (void)state;
    struct mlock *m = mlock_new();
    assert_non_null(m);
    struct mlock_waiter w = waiter(1, 1, 7, 100, 1, NS_LOCK_POSIX, 0, 9);
    for (int i = 0; i < MLOCK_MAX_WAITERS; i++)
        assert_int_equal(mlock_park(m, &w), 0);
    assert_int_equal(mlock_park(m, &w), -ENOLCK);
    struct mlock_waiter out;
    assert_true(mlock_take_any(m, &out));
    assert_int_equal(mlock_park(m, &w), 0);
    mlock_free(m);
}

static void test_drop_conn_and_take_any(void **state)
{
    (void)state;
    struct mlock *m = mlock_new();
    assert_non_null(m);
    for (int i = 0; i < 40; i++) {   /* past the first allocation */
        struct mlock_waiter w = waiter(i % 3, (uint64_t)i, 7, 100, (uint64_t)i,
                                       NS_LOCK_POSIX, 0, 9);
        assert_int_equal(mlock_park(m, &w), 0);
    }
    assert_int_equal(mlock_drop_conn(m, (void *)(uintptr_t)1), 13);
    assert_int_equal(mlock_drop_conn(m, (void *)(uintptr_t)1), 0);
    assert_int_equal(mlock_count(m), 27);
    struct mlock_waiter out;
    size_t n = 0;
    uint64_t last = 0;
    while (mlock_take_any(m, &out)) {
        assert_int_not_equal((uintptr_t)out.conn, 1);
        assert_true(n == 0 || out.req_id > last);
        last = out.req_id;
        n++;
    }
    assert_int_equal(n, 27);
    assert_int_equal(mlock_count(m), 0);
    mlock_free(m);
}

/* ---- the pid in the namespace --------------------------------------------- */

static int lock_pid(struct tctx *t, uint64_t ino, uint64_t owner, uint32_t type,
                    uint64_t start, uint64_t end, uint32_t pid)
{
    struct ns_op op = t_op(t, NS_OP_LOCK, &T_ROOT);
    op.u.lock = (struct ns_op_lock){ .ino = ino, .owner = owner, .kind = NS_LOCK_POSIX,
                                     .type = type, .start = start, .end = end,
                                     .pid = pid };
    return t_apply(t, &op);
}

static void test_pid_reported_and_kept(void **state)
{
    (void)state;
    struct tctx t;
    t_init(&t);
    uint64_t f;
    assert_int_equal(t_create(&t, &T_ROOT, NS_ROOT_INO, "f", 0666, &f), 0);
    t_session(&t, 7, 70, 1000000);
    assert_int_equal(t_open(&t, &T_ROOT, f, NS_OPEN_READ | NS_OPEN_WRITE), 0);
    assert_int_equal(lock_pid(&t, f, 1, NS_LOCK_WR, 0, 9, 4242), 0);
    /* the same owner's adjacent lock merges; the merged lock takes its pid */
    assert_int_equal(lock_pid(&t, f, 1, NS_LOCK_WR, 10, 19, 4343), 0);
    assert_int_equal(lock_pid(&t, f, 2, NS_LOCK_RD, 100, 109, 5000), 0);

    struct ns_op_lock q = { .ino = f, .owner = 9, .kind = NS_LOCK_POSIX,
                            .type = NS_LOCK_WR, .start = 5, .end = 5 };
    struct ns_lock k;
    assert_int_equal(ns_getlk(t.ns, 7, &q, &k), -EAGAIN);
    assert_int_equal(k.pid, 4343);
    assert_int_equal(k.start, 0);
    assert_int_equal(k.end, 19);
    q.start = q.end = 105;
    assert_int_equal(ns_getlk(t.ns, 7, &q, &k), -EAGAIN);
    assert_int_equal(k.pid, 5000);
    assert_int_equal(k.type, NS_LOCK_RD);

    /* a snapshot keeps the pids */
    struct wire_writer w;
    wire_writer_init(&w);
    assert_int_equal(ns_snapshot_write(t.ns, &w), 0);
    struct ns *copy;
    assert_int_equal(ns_snapshot_load(w.buf, w.len, &copy), 0);
    assert_int_equal(ns_getlk(copy, 7, &q, &k), -EAGAIN);
    assert_int_equal(k.pid, 5000);
    assert_int_equal(ns_digest(copy), ns_digest(t.ns));
    ns_free(copy);
    wire_writer_release(&w);
    t_fini(&t);
}

/* A log written before the pid existed (op format 1) still replays. */
static void test_format1_lock_decodes(void **state)
{
    (void)state;
    struct ns_op op;
    memset(&op, 0, sizeof(op));
    op.type = NS_OP_LOCK;
    op.client = 7;
    op.seq = 3;
    op.u.lock = (struct ns_op_lock){ .ino = 5, .owner = 1, .kind = NS_LOCK_POSIX,
                                     .type = NS_LOCK_RD, .start = 2, .end = 8,
                                     .pid = 99 };
    struct wire_writer w;
    wire_writer_init(&w);
    ns_op_encode(&op, &w);
    assert_int_equal(w.err, 0);
    struct ns_op dec;
    assert_int_equal(ns_op_decode(w.buf, w.len, &dec), 0);
    assert_int_equal(dec.u.lock.pid, 99);
    assert_int_equal(dec.u.lock.end, 8);
    /* format 1: the same bytes without the trailing pid */
    w.buf[0] = 1;
    assert_int_equal(ns_op_decode(w.buf, w.len - 4, &dec), 0);
    assert_int_equal(dec.u.lock.pid, 0);
    assert_int_equal(dec.u.lock.end, 8);
    assert_int_not_equal(ns_op_decode(w.buf, w.len, &dec), 0);  /* trailing bytes */
    w.buf[0] = 4;
    assert_int_equal(ns_op_decode(w.buf, w.len, &dec), -DFS_EVERSION);
    wire_writer_release(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wake_in_order),
        cmocka_unit_test(test_cancel_matches_owner_and_range),
        cmocka_unit_test(test_settle),
        cmocka_unit_test(test_park_bounded),
        cmocka_unit_test(test_drop_conn_and_take_any),
        cmocka_unit_test(test_pid_reported_and_kept),
        cmocka_unit_test(test_format1_lock_decodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
