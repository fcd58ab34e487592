/* Tests of fuse/inodes: the lookup counts the kernel holds, and the page
 * cache decisions of opens (keep only an unchanged file's cache, never
 * while this mount writes it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdint.h>

#include "fuse/inodes.h"

static const struct inodes_stamp s1 = { .size = 10, .mtime = 100, .ctime = 100 };
static const struct inodes_stamp s2 = { .size = 10, .mtime = 100, .ctime = 101 };

static void test_counts(void **state)
{
    (void)state;
    struct inodes *t = inodes_new(false);
    assert_non_null(t);
    /* enough inodes to grow the table several times and collide */
    for (uint64_t ino = 2; ino < 5000; ino++)
        assert_int_equal(inodes_ref(t, ino), 0);
    assert_int_equal(inodes_ref(t, 7), 0);
    assert_int_equal(inodes_size(t), 4998);
    assert_int_equal(inodes_count(t, 7), 2);
    assert_int_equal(inodes_forget(t, 7, 1), 1);
    for (uint64_t ino = 2; ino < 5000; ino += 2)
        assert_int_equal(inodes_forget(t, ino, 1), 0);
    assert_int_equal(inodes_size(t), 2499);
    for (uint64_t ino = 3; ino < 5000; ino += 2)
        assert_int_equal(inodes_count(t, ino), 1);   /* chains intact */
    assert_int_equal(inodes_count(t, 4), 0);
    /* a forget of more than was given is clamped (not strict) */
    assert_int_equal(inodes_forget(t, 9, 5), 0);
    assert_int_equal(inodes_forget(t, 123456, 1), 0);
    assert_int_equal(inodes_size(t), 2498);
    inodes_free(t);
}

static enum inodes_cache open_of(struct inodes *t, uint64_t ino,
                                 const struct inodes_stamp *s, bool writing,
                                 bool *counted)
{
    bool c;
    enum inodes_cache r = inodes_open(t, ino, s, writing, counted ? counted : &c);
    if (!writing)
        assert_false(counted ? *counted : c);
    return r;
}

static void test_keep_unchanged(void **state)
{
    (void)state;
    struct inodes *t = inodes_new(true);
    assert_int_equal(inodes_ref(t, 5), 0);
    /* nothing known: empty the cache, then it is of s1 */
    assert_int_equal(open_of(t, 5, &s1, false, NULL), INODES_CACHE_STALE);
    inodes_stamp(t, 5, &s1);
    assert_int_equal(open_of(t, 5, &s1, false, NULL), INODES_CACHE_KEEP);
    assert_int_equal(open_of(t, 5, &s1, false, NULL), INODES_CACHE_KEEP);
    /* changed elsewhere (ctime alone is enough) */
    assert_int_equal(open_of(t, 5, &s2, false, NULL), INODES_CACHE_STALE);
    inodes_stamp(t, 5, &s2);
    assert_int_equal(open_of(t, 5, &s2, false, NULL), INODES_CACHE_KEEP);
    /* an inode the kernel does not hold: never kept, never counted */
    bool counted = true;
    assert_int_equal(inodes_open(t, 6, &s1, true, &counted), INODES_CACHE_DROP);
    assert_false(counted);
    inodes_stamp(t, 6, &s1);
    assert_int_equal(inodes_size(t), 1);
    inodes_free(t);
}

static void test_writers(void **state)
{
    (void)state;
    struct inodes *t = inodes_new(true);
    assert_int_equal(inodes_ref(t, 5), 0);
    assert_int_equal(open_of(t, 5, &s1, false, NULL), INODES_CACHE_STALE);
    inodes_stamp(t, 5, &s1);
    /* the first writer still finds the cache good, and forgets the stamp */
    bool w1, w2;
    assert_int_equal(open_of(t, 5, &s1, true, &w1), INODES_CACHE_KEEP);
    assert_true(w1);
    /* while it writes, every open drops, and no stamp is taken */
    assert_int_equal(open_of(t, 5, &s1, false, NULL), INODES_CACHE_DROP);
    assert_int_equal(open_of(t, 5, &s1, true, &w2), INODES_CACHE_DROP);
    inodes_stamp(t, 5, &s1);
    inodes_close(t, 5);
    assert_int_equal(open_of(t, 5, &s1, false, NULL), INODES_CACHE_DROP);
    inodes_close(t, 5);
    /* after the last writer: start afresh even if the stamp looks equal */
    assert_int_equal(open_of(t, 5, &s1, false, NULL), INODES_CACHE_STALE);
    inodes_stamp(t, 5, &s1);
    assert_int_equal(open_of(t, 5, &s1, false, NULL), INODES_CACHE_KEEP);
    /* a forgotten inode forgets its stamp */
    assert_int_equal(inodes_forget(t, 5, 1), 0);
    assert_int_equal(inodes_ref(t, 5), 0);
    assert_int_equal(open_of(t, 5, &s1, false, NULL), INODES_CACHE_STALE);
    inodes_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_keep_unchanged),
        cmocka_unit_test(test_writers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
