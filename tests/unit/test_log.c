/* Tests of log and dfs_error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/dfs_error.h"
#include "common/log.h"

static void test_strerror_covers_every_code(void **state)
{
    (void)state;
    for (int e = DFS_EBASE + 1; e < DFS_ELAST; e++) {
        const char *m = dfs_strerror(-e);
        assert_non_null(m);
        assert_string_not_equal(m, "unknown dfs error");
    }
    assert_string_equal(dfs_strerror(0), "success");
    assert_string_equal(dfs_strerror(-ENOENT), strerror(ENOENT));
    assert_string_equal(dfs_strerror(DFS_ELAST + 5), "unknown dfs error");
}

static void test_log_to_file_filters_levels(void **state)
{
    (void)state;
    char path[] = "/tmp/dfs-test-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(log_init("t", LOG_WARN, path), 0);
    log_info("hidden %d", 1);
    log_warn("shown %d", 2);
    log_error("%s", "also shown");

    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char buf[4096] = { 0 };
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    unlink(path);
    assert_true(n > 0);
    assert_null(strstr(buf, "hidden"));
    assert_non_null(strstr(buf, "t["));
    assert_non_null(strstr(buf, "warn: shown 2\n"));
    assert_non_null(strstr(buf, "error: also shown\n"));
}

static void test_log_parse_level(void **state)
{
    (void)state;
    enum log_level l;
    assert_int_equal(log_parse_level("DEBUG", &l), 0);
    assert_int_equal(l, LOG_DEBUG);
    assert_int_equal(log_parse_level("error", &l), 0);
    assert_int_equal(l, LOG_ERROR);
    assert_int_equal(log_parse_level("loud", &l), -EINVAL);
}

static void test_log_init_bad_path(void **state)
{
    (void)state;
    assert_int_equal(log_init("t", LOG_INFO, "/nonexistent-dir/x.log"), -ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strerror_covers_every_code),
        cmocka_unit_test(test_log_to_file_filters_levels),
        cmocka_unit_test(test_log_parse_level),
        cmocka_unit_test(test_log_init_bad_path),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
