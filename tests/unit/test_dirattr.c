/* Tests of fuse/dirattr: a directory's attributes as the mount's own
 * changes left them answer one GETATTR, while fresh, and never go back to
 * an older change. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdint.h>

#include "fuse/dirattr.h"

static struct dfs_attr dir(uint64_t ino, int64_t ctime, uint32_t nlink)
{
    return (struct dfs_attr){ .ino = ino, .mode = 040755, .nlink = nlink,
                              .mtime = ctime, .ctime = ctime };
}

static void test_answers_once_while_fresh(void **state)
{
    (void)state;
    struct dirattr *t = dirattr_new(1000);
    assert_non_null(t);
    struct dfs_attr a = dir(5, 100, 2), got;
    int64_t left;
    assert_false(dirattr_take(t, 5, 0, &got, &left));
    dirattr_put(t, &a, 10, DIRATTR_CHANGE_ANSWERS);
    assert_false(dirattr_take(t, 6, 20, &got, &left));   /* another ino */
    assert_true(dirattr_take(t, 5, 310, &got, &left));
    assert_int_equal(got.ctime, 100);
    assert_int_equal(got.nlink, 2);
    assert_int_equal(left, 700);                         /* what is left of 1 s */
    assert_false(dirattr_take(t, 5, 320, &got, &left));  /* once */
    dirattr_put(t, &a, 400, DIRATTR_CHANGE_ANSWERS);
    assert_false(dirattr_take(t, 5, 1400, &got, &left)); /* too old */
    dirattr_free(t);
}

static void test_never_older(void **state)
{
    (void)state;
    struct dirattr *t = dirattr_new(1000);
    struct dfs_attr newer = dir(5, 200, 3), older = dir(5, 100, 2), got;
    int64_t left;
    dirattr_put(t, &newer, 0, DIRATTR_CHANGE_ANSWERS);
    dirattr_put(t, &older, 1, DIRATTR_CHANGE_ANSWERS);          /* its reply came late */
    assert_true(dirattr_take(t, 5, 2, &got, &left));
    assert_int_equal(got.ctime, 200);
    /* nor after the newer one answered */
    dirattr_put(t, &older, 3, DIRATTR_CHANGE_ANSWERS);
    assert_false(dirattr_take(t, 5, 4, &got, &left));
    /* a drop (a change it did not see) takes anything afterwards */
    dirattr_drop(t, 5);
    dirattr_put(t, &older, 5, DIRATTR_CHANGE_ANSWERS);
    assert_true(dirattr_take(t, 5, 6, &got, &left));
    assert_int_equal(got.ctime, 100);
    dirattr_free(t);
}

static void test_collisions_and_off(void **state)
{
    (void)state;
    struct dirattr *t = dirattr_new(1000);
    struct dfs_attr a = dir(7, 100, 2), b = dir(7 + DIRATTR_SLOTS, 50, 2), got;
    int64_t left;
    dirattr_put(t, &a, 0, DIRATTR_CHANGE_ANSWERS);
    dirattr_put(t, &b, 1, DIRATTR_CHANGE_ANSWERS);   /* same slot: the older entry goes */
    assert_false(dirattr_take(t, 7, 2, &got, &left));
    assert_true(dirattr_take(t, 7 + DIRATTR_SLOTS, 2, &got, &left));
    dirattr_drop(t, 7);                 /* another ino's slot: nothing */
    dirattr_free(t);

    t = dirattr_new(0);                 /* attr_timeout 0: never answers */
    dirattr_put(t, &a, 0, DIRATTR_CHANGE_ANSWERS);
    assert_false(dirattr_take(t, 7, 0, &got, &left));
    dirattr_free(t);
}

/* A file opened read-only answers the two GETATTRs around its first
 * read, no third, and none once a write dropped it. */
static void test_file_answers_twice(void **state)
{
    (void)state;
    struct dirattr *t = dirattr_new(1000);
    struct dfs_attr a = dir(9, 100, 1), got;
    int64_t left;
    dirattr_put(t, &a, 0, DIRATTR_OPEN_ANSWERS);
    assert_true(dirattr_take(t, 9, 10, &got, &left));
    assert_int_equal(left, 990);
    assert_true(dirattr_take(t, 9, 20, &got, &left));
    assert_int_equal(got.ino, 9);
    assert_false(dirattr_take(t, 9, 30, &got, &left));
    dirattr_put(t, &a, 40, DIRATTR_OPEN_ANSWERS);
    dirattr_drop(t, 9);                 /* a write through the mount */
    assert_false(dirattr_take(t, 9, 50, &got, &left));
    dirattr_put(t, &a, 60, DIRATTR_OPEN_ANSWERS);
    assert_false(dirattr_take(t, 9, 1060, &got, &left));   /* too old */
    assert_false(dirattr_take(t, 9, 70, &got, &left));     /* ... and gone */
    dirattr_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answers_once_while_fresh),
        cmocka_unit_test(test_never_older),
        cmocka_unit_test(test_collisions_and_off),
        cmocka_unit_test(test_file_answers_twice),
    };
    return cmocka_run_group_tests_name("dirattr", tests, NULL, NULL);
}
