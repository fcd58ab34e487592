/* Tests of strbuf: growth, formatting, bounds and the sticky error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dfs_error.h"
#include "common/strbuf.h"

static void test_empty(void **state)
{
    (void)state;
    struct strbuf sb;
    strbuf_init(&sb, 0);
    assert_string_equal(strbuf_str(&sb), "");
    assert_int_equal(strbuf_error(&sb), 0);
    size_t len = 99;
    char *s = strbuf_detach(&sb, &len);
    assert_non_null(s);
    assert_string_equal(s, "");
    assert_int_equal(len, 0);
    free(s);
    strbuf_release(&sb);
}

/* Appends past several doublings keep every byte, NUL-terminated. */
static void test_grows_and_keeps_bytes(void **state)
{
    (void)state;
    struct strbuf sb;
    strbuf_init(&sb, 0);
    for (int i = 0; i < 5000; i++) {
        strbuf_addf(&sb, "%d,", i);
        strbuf_addc(&sb, 'x');
        strbuf_add(&sb, "ab\0cd", 2);
        strbuf_adds(&sb, "");
    }
    assert_int_equal(strbuf_error(&sb), 0);
    const char *p = strbuf_str(&sb);
    for (int i = 0; i < 5000; i++) {
        char want[32];
        int n = snprintf(want, sizeof(want), "%d,xab", i);
        assert_memory_equal(p, want, (size_t)n);
        p += n;
    }
    assert_int_equal(*p, '\0');
    assert_int_equal(sb.len, (size_t)(p - strbuf_str(&sb)));
    size_t len;
    char *s = strbuf_detach(&sb, &len);
    assert_int_equal(len, strlen(s));
    assert_int_equal(sb.len, 0);
    assert_string_equal(strbuf_str(&sb), "");
    free(s);
}

/* Past the bound: sticky error, no more appends, detach refuses. */
static void test_bound_is_sticky(void **state)
{
    (void)state;
    struct strbuf sb;
    strbuf_init(&sb, 10);
    strbuf_adds(&sb, "0123456789");
    assert_int_equal(strbuf_error(&sb), 0);
    assert_int_equal(sb.len, 10);
    strbuf_addc(&sb, 'x');
    assert_int_equal(strbuf_error(&sb), -DFS_ETOOBIG);
    strbuf_reset(&sb);
    strbuf_adds(&sb, "ab");
    assert_int_equal(strbuf_error(&sb), 0);
    strbuf_addf(&sb, "%s", "0123456789");
    assert_int_equal(strbuf_error(&sb), -DFS_ETOOBIG);
    strbuf_adds(&sb, "c");        /* would fit, but the error is sticky */
    assert_string_equal(strbuf_str(&sb), "ab");
    assert_null(strbuf_detach(&sb, NULL));
    strbuf_reset(&sb);
    assert_int_equal(strbuf_error(&sb), 0);
    assert_string_equal(strbuf_str(&sb), "");
    strbuf_release(&sb);
    assert_int_equal(sb.max, 10);
}

/* A length whose doubling would overflow is refused, not wrapped. */
static void test_huge_append_refused(void **state)
{
    (void)state;
    struct strbuf sb;
    strbuf_init(&sb, 0);
    strbuf_adds(&sb, "x");
    strbuf_add(&sb, "", (size_t)-1 / 2);
    assert_int_equal(strbuf_error(&sb), -DFS_ETOOBIG);
    assert_string_equal(strbuf_str(&sb), "x");
    strbuf_release(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_grows_and_keeps_bytes),
        cmocka_unit_test(test_bound_is_sticky),
        cmocka_unit_test(test_huge_append_refused),
    };
    return cmocka_run_group_tests_name("strbuf", tests, NULL, NULL);
}
