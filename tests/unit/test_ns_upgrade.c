/*
 * Upgrades in place: a master of this version restarts from what the
 * versions before wrote (a format-3 snapshot, whose chunks have no
 * trim_from; a format-2 one, whose locks have no pid either; op format 1
 * log entries), and writes log entries an older follower still decodes
 * (format 1 unless a lock carries a pid).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>

#include <zlib.h>

#include "common/crc32c.h"
#include "test_ns.h"

#define HDR 20u   /* magic, u32 format, u64 body length */

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* The inflated body of a snapshot, malloc'ed; its length in *len. */
static uint8_t *body_of(const struct wire_writer *w, uLongf *len)
{
    *len = (uLongf)le64(w->buf + 12);
    uint8_t *body = malloc(*len ? *len : 1);
    assert_non_null(body);
    uLong slen = w->len - HDR - 4;
    assert_int_equal(uncompress2(body, len, w->buf + HDR, &slen), Z_OK);
    return body;
}

/* A namespace like one the versions before built: files, a directory, an
 * xattr, a session with an open file, one chunk and two locks (no pid in
 * format 2). */
static void build(struct tctx *t, uint64_t *file)
{
    uint64_t dir, f;
    t_init(t);
    assert_int_equal(t_mkdir(t, &T_ROOT, NS_ROOT_INO, "d", 0755, &dir), 0);
    assert_int_equal(t_create(t, &T_ROOT, dir, "f", 0644, &f), 0);
    t_session(t, 7, 70, INT64_MAX / 2);
    assert_int_equal(t_open(t, &T_ROOT, f, NS_OPEN_READ | NS_OPEN_WRITE), 0);
    assert_int_equal(t_write_begin(t, f, 0), 0);
    assert_int_equal(t_write_end(t, f, 0, 4096, 0), 0);
    struct ns_op op = t_op(t, NS_OP_SETXATTR, &T_ROOT);
    op.u.xattr = (struct ns_op_xattr){ .ino = f, .name = t_str("user.k"),
                                       .value = t_str("v") };
    assert_int_equal(t_apply(t, &op), 0);
    assert_int_equal(t_lock(t, f, 1, NS_LOCK_POSIX, NS_LOCK_WR, 0, 9), 0);
    assert_int_equal(t_lock(t, f, 2, NS_LOCK_FLOCK, NS_LOCK_RD, 0, UINT64_MAX), 0);
    *file = f;
}

static void test_loads_format2_snapshot(void **state)
{
    (void)state;
    struct tctx t;
    uint64_t f;
    build(&t, &f);
    struct wire_writer w2, w3, w4, w5;
    wire_writer_init(&w2);
    wire_writer_init(&w3);
    wire_writer_init(&w4);
    wire_writer_init(&w5);
    assert_int_equal(ns_snapshot_write_format(t.ns, 2, &w2), 0);
    assert_int_equal(ns_snapshot_write_format(t.ns, 3, &w3), 0);
    assert_int_equal(ns_snapshot_write_format(t.ns, 4, &w4), 0);
    assert_int_equal(ns_snapshot_write(t.ns, &w5), 0);
    assert_int_equal(le32(w2.buf + 8), 2);
    assert_int_equal(le32(w3.buf + 8), 3);
    assert_int_equal(le32(w4.buf + 8), 4);
    assert_int_equal(le32(w5.buf + 8), 5);
    /* The layouts differ only by the pid of each of the two locks, then
     * by the trim_from of the one chunk, then by the chunk size. */
    uLongf l2, l3, l4, l5;
    uint8_t *b2 = body_of(&w2, &l2), *b3 = body_of(&w3, &l3), *b4 = body_of(&w4, &l4);
    uint8_t *b5 = body_of(&w5, &l5);
    assert_int_equal(l3 - l2, 2 * 4);
    assert_int_equal(l4 - l3, 4);
    assert_int_equal(l5 - l4, 8);
    free(b2);
    free(b3);
    free(b4);
    free(b5);
    wire_writer_release(&w4);
    wire_writer_release(&w5);

    struct ns *old;
    assert_int_equal(ns_snapshot_load(w2.buf, w2.len, &old), 0);
    assert_int_equal(ns_digest(old), ns_digest(t.ns));
    uint8_t h1[32], h2[32];
    assert_int_equal(ns_snapshot_hash(old, h1), 0);
    assert_int_equal(ns_snapshot_hash(t.ns, h2), 0);
    assert_memory_equal(h1, h2, 32);
    struct ns_op_lock q = { .ino = f, .owner = 9, .kind = NS_LOCK_POSIX,
                            .type = NS_LOCK_WR, .start = 5, .end = 5 };
    struct ns_lock k;
    assert_int_equal(ns_getlk(old, 7, &q, &k), -EAGAIN);
    assert_int_equal(k.pid, 0);

    /* Entries the version before wrote (op format 1) replay on it, and
     * bring both to the same state. */
    struct ns *orig = t.ns;
    struct ns_op ops[3];
    ops[0] = t_op(&t, NS_OP_LOCK, &T_ROOT);
    ops[0].u.lock = (struct ns_op_lock){ .ino = f, .owner = 3, .kind = NS_LOCK_POSIX,
                                         .type = NS_LOCK_RD, .start = 100, .end = 200 };
    ops[1] = t_op(&t, NS_OP_MKDIR, &T_ROOT);
    ops[1].u.make = (struct ns_op_make){ .parent = NS_ROOT_INO, .name = t_str("e"),
                                         .mode = 0700, .ino = ns_next_free_ino(orig, 0) };
    ops[2] = t_op(&t, NS_OP_WRITE_BEGIN, &T_ROOT);
    ops[2].u.write = (struct ns_op_write){ .ino = f, .index = 1, .chunk_id = 0x999 };
    for (int i = 0; i < 3; i++) {
        struct wire_writer e;
        wire_writer_init(&e);
        ns_op_encode(&ops[i], &e);
        assert_int_equal(e.err, 0);
        assert_int_equal(e.buf[0], 1);   /* what the version before wrote */
        struct ns_op dec;
        assert_int_equal(ns_op_decode(e.buf, e.len, &dec), 0);
        struct ns_result a, b;
        ns_result_init(&a);
        ns_result_init(&b);
        assert_int_equal(ns_apply(orig, &dec, &a), 0);
        assert_int_equal(ns_apply(old, &dec, &b), 0);
        assert_memory_equal(&a.reply, &b.reply, sizeof(a.reply));
        ns_result_release(&a);
        ns_result_release(&b);
        wire_writer_release(&e);
    }
    assert_int_equal(ns_check(old), 0);
    assert_int_equal(ns_digest(old), ns_digest(orig));

    ns_free(old);
    wire_writer_release(&w2);
    wire_writer_release(&w3);
    t_fini(&t);
}

/* A read lock on f's bytes 300..400 taken by pid 1234: what formats
 * before 3 (snapshots) and 2 (ops) cannot hold. */
static struct ns_op pid_lock_op(struct tctx *t, uint64_t f)
{
    struct ns_op op = t_op(t, NS_OP_LOCK, &T_ROOT);
    op.u.lock = (struct ns_op_lock){ .ino = f, .owner = 4, .kind = NS_LOCK_POSIX,
                                     .type = NS_LOCK_RD, .start = 300, .end = 400,
                                     .pid = 1234 };
    return op;
}

/* What the version before wrote (format 3: locks with their pid, chunks
 * without a trim_from) loads, and goes on like the original, cuts too. */
static void test_loads_format3_snapshot(void **state)
{
    (void)state;
    struct tctx t;
    uint64_t f;
    build(&t, &f);
    struct ns_op op = pid_lock_op(&t, f);
    assert_int_equal(t_apply(&t, &op), 0);
    struct wire_writer w3;
    wire_writer_init(&w3);
    assert_int_equal(ns_snapshot_write_format(t.ns, 3, &w3), 0);
    assert_int_equal(le32(w3.buf + 8), 3);
    struct ns *old;
    assert_int_equal(ns_snapshot_load(w3.buf, w3.len, &old), 0);
    assert_int_equal(ns_digest(old), ns_digest(t.ns));
    struct ns_op_lock q = { .ino = f, .owner = 9, .kind = NS_LOCK_POSIX,
                            .type = NS_LOCK_WR, .start = 350, .end = 350 };
    struct ns_lock k;
    assert_int_equal(ns_getlk(old, 7, &q, &k), -EAGAIN);
    assert_int_equal(k.pid, 1234);

    /* A cut after the upgrade: both set the same trim_from. */
    struct ns *orig = t.ns;
    op = t_op(&t, NS_OP_SETATTR, &T_ROOT);
    op.u.setattr = (struct ns_op_setattr){ .ino = f, .valid = NS_SET_SIZE, .size = 100 };
    struct ns_result a, b;
    ns_result_init(&a);
    ns_result_init(&b);
    assert_int_equal(ns_apply(orig, &op, &a), 0);
    assert_int_equal(ns_apply(old, &op, &b), 0);
    assert_int_equal(a.ntrimmed, 1);
    assert_int_equal(b.ntrimmed, 1);
    assert_memory_equal(a.trimmed, b.trimmed, sizeof(*a.trimmed));
    assert_int_equal(a.trimmed[0].trim_from, 1);
    ns_result_release(&a);
    ns_result_release(&b);
    assert_int_equal(ns_check(old), 0);
    assert_int_equal(ns_digest(old), ns_digest(orig));
    ns_free(old);
    wire_writer_release(&w3);
    t_fini(&t);
}

/* A lock with a pid needs op format 2 and snapshot format 3 or later; a
 * chunk awaiting its trim needs snapshot format 4; a fixed chunk size op
 * format 3 and snapshot format 5; nothing else does. */
static void test_new_formats_only_when_needed(void **state)
{
    (void)state;
    struct tctx t;
    uint64_t f;
    build(&t, &f);
    struct ns_op op = pid_lock_op(&t, f);
    struct wire_writer e;
    wire_writer_init(&e);
    ns_op_encode(&op, &e);
    assert_int_equal(e.buf[0], 2);
    size_t with_pid = e.len;
    op.u.lock.pid = 0;
    e.len = 0;
    ns_op_encode(&op, &e);
    assert_int_equal(e.buf[0], 1);
    assert_int_equal(e.len, with_pid - 4);
    /* a CONFIG needs op format 3 only when it carries a chunk size */
    struct ns_op cfg = t_op(&t, NS_OP_CONFIG, &T_ROOT), dec;
    e.len = 0;
    ns_op_encode(&cfg, &e);
    assert_int_equal(e.buf[0], 1);
    size_t without = e.len;
    cfg.u.config.chunk_size = 4u << 20;
    e.len = 0;
    ns_op_encode(&cfg, &e);
    assert_int_equal(e.buf[0], 3);
    assert_int_equal(e.len, without + 8);
    assert_int_equal(ns_op_decode(e.buf, e.len, &dec), 0);
    assert_int_equal(dec.u.config.chunk_size, 4u << 20);
    wire_writer_release(&e);

    op.u.lock.pid = 1234;
    assert_int_equal(t_apply(&t, &op), 0);
    struct wire_writer w;
    wire_writer_init(&w);
    assert_int_equal(ns_snapshot_write_format(t.ns, 2, &w), -DFS_EVERSION);
    w.len = 0;
    w.err = 0;
    assert_int_equal(ns_snapshot_write_format(t.ns, 6, &w), -DFS_EVERSION);
    w.len = 0;
    w.err = 0;
    assert_int_equal(ns_snapshot_write_format(t.ns, 3, &w), 0);
    /* a cut gives the chunk a trim_from: format 3 cannot hold it */
    assert_int_equal(t_truncate(&t, &T_ROOT, f, 100), 0);
    w.len = 0;
    w.err = 0;
    assert_int_equal(ns_snapshot_write_format(t.ns, 3, &w), -DFS_EVERSION);
    w.len = 0;
    w.err = 0;
    assert_int_equal(ns_snapshot_write(t.ns, &w), 0);
    struct ns *copy;
    assert_int_equal(ns_snapshot_load(w.buf, w.len, &copy), 0);
    assert_int_equal(ns_digest(copy), ns_digest(t.ns));
    ns_free(copy);
    /* An unknown format is refused, not misread. */
    w.buf[8] = 6;
    uint32_t crc = crc32c(0, w.buf, w.len - 4);
    for (int i = 0; i < 4; i++)
        w.buf[w.len - 4 + i] = (uint8_t)(crc >> (8 * i));
    assert_int_equal(ns_snapshot_load(w.buf, w.len, &copy), -DFS_EVERSION);
    wire_writer_release(&w);
    t_fini(&t);

    /* A fixed chunk size: format 5 keeps it, format 4 cannot hold it. */
    t_init(&t);
    struct ns_op set = t_op(&t, NS_OP_CONFIG, &T_ROOT);
    set.u.config.chunk_size = 1u << 20;
    assert_int_equal(t_apply(&t, &set), 0);
    wire_writer_init(&w);
    assert_int_equal(ns_snapshot_write_format(t.ns, 4, &w), -DFS_EVERSION);
    w.len = 0;
    w.err = 0;
    assert_int_equal(ns_snapshot_write(t.ns, &w), 0);
    assert_int_equal(ns_snapshot_load(w.buf, w.len, &copy), 0);
    assert_true(ns_chunk_size_fixed(copy));
    assert_int_equal(ns_chunk_size(copy), 1u << 20);
    assert_int_equal(ns_digest(copy), ns_digest(t.ns));
    ns_free(copy);
    wire_writer_release(&w);
    t_fini(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loads_format2_snapshot),
        cmocka_unit_test(test_loads_format3_snapshot),
        cmocka_unit_test(test_new_formats_only_when_needed),
    };
    return cmocka_run_group_tests_name("ns_upgrade", tests, NULL, NULL);
}
