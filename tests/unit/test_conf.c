/* Tests of conf: every type, bounds, file syntax, exact error messages,
 * override order, help text, and string ownership. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/conf.h"
#include "common/dfs_error.h"

struct tconf {
    char *name;
    int level;
    uint64_t count;
    bool flag;
    uint64_t chunk_size;
    uint64_t election_ms;
    char *path;
    uint64_t any_size;
    uint64_t any_ms;
    uint64_t big;
};

#define OFF(f) offsetof(struct tconf, f)

static const struct conf_key keys[] = {
    { "name", CONF_STRING, OFF(name), "dfs", NULL, NULL, "cluster name" },
    { "level", CONF_INT, OFF(level), "-3", "-10", "10", "a level" },
    { "count", CONF_UINT64, OFF(count), "7", NULL, "1000", "a count" },
    { "flag", CONF_BOOL, OFF(flag), "off", NULL, NULL, "a switch" },
    { "chunk_size", CONF_SIZE, OFF(chunk_size), "64M", "1M", "1G",
      "chunk size" },
    { "election_timeout", CONF_DURATION, OFF(election_ms), "1s", "50ms", "60s",
      "Raft election timeout" },
    { "path", CONF_STRING, OFF(path), NULL, NULL, NULL, "a path" },
    { "any_size", CONF_SIZE, OFF(any_size), NULL, NULL, NULL, "any size" },
    { "any_duration", CONF_DURATION, OFF(any_ms), NULL, NULL, NULL, "any" },
    { "big", CONF_UINT64, OFF(big), "5", "5", NULL, "at least 5" },
    { NULL },
};

static char conf_path[64];
static char err[256];

/* Writes text to the test's config file; returns its path. */
static const char *write_conf(const char *text)
{
    FILE *f = fopen(conf_path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return conf_path;
}

static int setup(void **state)
{
    (void)state;
    strcpy(conf_path, "/tmp/dfs-test-conf-XXXXXX");
    int fd = mkstemp(conf_path);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return unlink(conf_path);
}

/* Loads text over the defaults; the struct must be released by the caller. */
static int load_text(struct tconf *c, const char *text)
{
    memset(c, 0, sizeof(*c));
    err[0] = '\0';
    assert_int_equal(conf_apply_defaults(keys, c, err, sizeof(err)), 0);
    return conf_load_file(keys, write_conf(text), c, err, sizeof(err));
}

/* Asserts err is "<conf_path>:<rest>". */
static void assert_file_error(const char *rest)
{
    char want[512];
    snprintf(want, sizeof(want), "%s:%s", conf_path, rest);
    assert_string_equal(err, want);
}

static void test_defaults(void **state)
{
    (void)state;
    struct tconf c;
    memset(&c, 0, sizeof(c));
    assert_int_equal(conf_apply_defaults(keys, &c, err, sizeof(err)), 0);
    assert_string_equal(c.name, "dfs");
    assert_int_equal(c.level, -3);
    assert_int_equal(c.count, 7);
    assert_false(c.flag);
    assert_int_equal(c.chunk_size, 64 << 20);
    assert_int_equal(c.election_ms, 1000);
    assert_null(c.path);
    assert_int_equal(c.any_size, 0);
    /* Applying them again over set values does not leak the strings. */
    assert_int_equal(conf_set(keys, "path", "/x", &c, err, sizeof(err)), 0);
    assert_int_equal(conf_apply_defaults(keys, &c, err, sizeof(err)), 0);
    assert_null(c.path);
    conf_release(keys, &c);
    assert_null(c.name);
}

static void test_file_syntax(void **state)
{
    (void)state;
    struct tconf c;
    int rc = load_text(&c,
        "# a comment\n"
        "\n"
        "   \t\n"
        "  name   =   my cluster   \n"
        "level=5\n"
        "count = 1000 # the most allowed\n"
        "flag = YES\r\n"
        "chunk-size = 128M\n"
        "  # indented comment\n"
        "election_timeout = 150ms\n"
        "path = \"/a b/#c \\\"q\\\" \\\\\"  # quoted\n"
        "any_size = '1 #x'\n");
    assert_int_equal(rc, -DFS_ECONF);   /* any_size is not a size */
    assert_file_error("12: bad value \"1 #x\" for any_size: expected a size "
                      "(e.g. 4096, 64K, 1G)");
    assert_string_equal(c.name, "my cluster");
    assert_int_equal(c.level, 5);
    assert_int_equal(c.count, 1000);
    assert_true(c.flag);
    assert_int_equal(c.chunk_size, 128 << 20);
    assert_int_equal(c.election_ms, 150);
    assert_string_equal(c.path, "/a b/#c \"q\" \\");
    conf_release(keys, &c);

    rc = load_text(&c, "name = 'single # quoted'\npath=a#b\n"
                       "any_duration = 2s#no space: part of the value\n");
    assert_int_equal(rc, -DFS_ECONF);
    assert_file_error("3: bad value \"2s#no space: part of the value\" for "
                      "any_duration: expected a duration (e.g. 150ms, 2s, 5m)");
    assert_string_equal(c.name, "single # quoted");
    assert_string_equal(c.path, "a#b");
    conf_release(keys, &c);

    rc = load_text(&c, "name =\npath = \"\"\nany_size = 1K # c\n");
    assert_int_equal(rc, 0);
    assert_string_equal(c.name, "");
    assert_string_equal(c.path, "");
    assert_int_equal(c.any_size, 1024);
    conf_release(keys, &c);

    /* A long line. */
    char *text = malloc(20000);
    strcpy(text, "path = ");
    memset(text + 7, 'p', 15000);
    strcpy(text + 15007, "\n");
    assert_int_equal(load_text(&c, text), 0);
    assert_int_equal(strlen(c.path), 15000);
    free(text);
    conf_release(keys, &c);
}

/* key = value through conf_set; returns its rc. */
static int set(struct tconf *c, const char *key, const char *value)
{
    err[0] = '\0';
    return conf_set(keys, key, value, c, err, sizeof(err));
}

static void test_every_type(void **state)
{
    (void)state;
    struct tconf c;
    memset(&c, 0, sizeof(c));
    assert_int_equal(conf_apply_defaults(keys, &c, err, sizeof(err)), 0);

    static const struct {
        const char *key, *value;
        uint64_t want;
    } good[] = {
        { "any_size", "0", 0 }, { "any_size", "4096", 4096 },
        { "any_size", "4K", 4096 }, { "any_size", "4k", 4096 },
        { "any_size", "64M", 64ull << 20 }, { "any_size", "2G", 2ull << 30 },
        { "any_size", "1T", 1ull << 40 }, { "any_size", "8KiB", 8192 },
        { "any_size", "8KB", 8192 }, { "any_size", "100B", 100 },
        { "any_duration", "0", 0 }, { "any_duration", "150ms", 150 },
        { "any_duration", "2s", 2000 }, { "any_duration", "5m", 300000 },
        { "any_duration", "1h", 3600000 },
        { "big", "18446744073709551615", UINT64_MAX },
        { "count", "0", 0 }, { "count", "1000", 1000 },
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(set(&c, good[i].key, good[i].value), 0);
        uint64_t got = strcmp(good[i].key, "any_size") == 0 ? c.any_size
                     : strcmp(good[i].key, "any_duration") == 0 ? c.any_ms
                     : strcmp(good[i].key, "big") == 0 ? c.big : c.count;
        assert_int_equal(got, good[i].want);
    }

    assert_int_equal(set(&c, "level", "-10"), 0);
    assert_int_equal(c.level, -10);
    assert_int_equal(set(&c, "level", "+10"), 0);
    assert_int_equal(c.level, 10);

    static const char *const yes[] = { "true", "TRUE", "yes", "on", "1" };
    static const char *const no[] = { "false", "No", "off", "0" };
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(set(&c, "flag", yes[i]), 0);
        assert_true(c.flag);
        if (i < 4) {
            assert_int_equal(set(&c, "flag", no[i]), 0);
            assert_false(c.flag);
        }
    }

    static const struct {
        const char *key, *value;
    } bad[] = {
        { "any_size", "" }, { "any_size", "K" }, { "any_size", "1.5G" },
        { "any_size", "-1" }, { "any_size", "4 K" }, { "any_size", "4X" },
        { "any_size", "4b" }, { "any_duration", "5" },
        { "any_duration", "1.5s" }, { "any_duration", "s" },
        { "any_duration", "-1s" }, { "any_duration", "10 s" },
        { "any_duration", "5M" }, { "level", "abc" }, { "level", "" },
        { "level", "1e3" }, { "level", "5 " }, { "count", "-1" },
        { "count", "+1" }, { "count", "0x10" }, { "flag", "maybe" },
        { "flag", "" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        c.level = 1;
        c.any_size = c.any_ms = c.count = 2;
        c.flag = true;
        if (set(&c, bad[i].key, bad[i].value) != -DFS_ECONF)
            fail_msg("%s = \"%s\" was accepted", bad[i].key, bad[i].value);
        assert_non_null(strstr(err, "bad value"));
        /* a rejected value leaves the field as it was */
        assert_int_equal(c.level, 1);
        assert_int_equal(c.any_size + c.any_ms + c.count, 6);
        assert_true(c.flag);
    }
    conf_release(keys, &c);
}

static void test_ranges_and_overflow(void **state)
{
    (void)state;
    struct tconf c;
    memset(&c, 0, sizeof(c));
    assert_int_equal(conf_apply_defaults(keys, &c, err, sizeof(err)), 0);

    assert_int_equal(set(&c, "level", "11"), -DFS_ECONF);
    assert_string_equal(err, "command line: level = 11 is out of range "
                             "(-10..10)");
    assert_int_equal(set(&c, "level", "-11"), -DFS_ECONF);
    assert_int_equal(c.level, -3);
    assert_int_equal(set(&c, "count", "1001"), -DFS_ECONF);
    assert_string_equal(err, "command line: count = 1001 is out of range "
                             "(at most 1000)");
    assert_int_equal(set(&c, "big", "4"), -DFS_ECONF);
    assert_string_equal(err, "command line: big = 4 is out of range "
                             "(at least 5)");
    assert_int_equal(set(&c, "big", "5"), 0);
    assert_int_equal(set(&c, "chunk_size", "1023K"), -DFS_ECONF);
    assert_int_equal(set(&c, "chunk_size", "1024K"), 0);
    assert_int_equal(c.chunk_size, 1 << 20);
    assert_int_equal(set(&c, "chunk_size", "1G"), 0);
    assert_int_equal(set(&c, "chunk_size", "1025M"), -DFS_ECONF);
    assert_int_equal(set(&c, "election_timeout", "49ms"), -DFS_ECONF);
    assert_string_equal(err, "command line: election_timeout = 49ms is out "
                             "of range (50ms..60s)");
    assert_int_equal(set(&c, "election_timeout", "1m"), 0);
    assert_int_equal(c.election_ms, 60000);
    assert_int_equal(set(&c, "election_timeout", "61s"), -DFS_ECONF);

    /* Too big for the type at all. */
    assert_int_equal(set(&c, "big", "18446744073709551616"), -DFS_ECONF);
    assert_string_equal(err, "command line: bad value "
                             "\"18446744073709551616\" for big: out of range");
    assert_int_equal(set(&c, "any_size", "16777216T"), -DFS_ECONF);
    assert_int_equal(set(&c, "any_size", "16777215T"), 0);
    assert_int_equal(set(&c, "any_duration", "5124095576030432h"),
                     -DFS_ECONF);
    assert_int_equal(set(&c, "level", "2147483648"), -DFS_ECONF);
    assert_int_equal(set(&c, "level", "-2147483649"), -DFS_ECONF);
    conf_release(keys, &c);
}

static void test_file_errors(void **state)
{
    (void)state;
    struct tconf c;
    static const struct {
        const char *text, *msg;
        int line;
    } cases[] = {
        { "name = a\n\nelecton_timeout = 1s\n",
          "unknown key \"electon_timeout\"", 3 },
        { "# c\nelection_timeout = fast\n",
          "bad value \"fast\" for election_timeout: expected a duration "
          "(e.g. 150ms, 2s, 5m)", 2 },
        { "election_timeout = 10ms\n",
          "election_timeout = 10ms is out of range (50ms..60s)", 1 },
        { "count = 2000\n", "count = 2000 is out of range (at most 1000)", 1 },
        { "a = 1\nb = 2\n\njust words\n", "unknown key \"a\"", 1 },
        { "name = 1\n\n\njust words\n", "expected \"key = value\"", 4 },
        { "= 5\n", "expected \"key = value\"", 1 },
        { "name 5\n", "expected \"key = value\"", 1 },
        { "name = \"open\n", "unterminated quote in the value of name", 1 },
        { "name = 'a\" \n", "unterminated quote in the value of name", 1 },
        { "name = \"a\" b\n", "text after the closing quote of name", 1 },
        { "x\nlevel = 1\n\n\nlevel = 2\n", "expected \"key = value\"", 1 },
        { "name = x\nlevel = 1\n\n\nlevel = 2\n",
          "level is already set on line 2", 5 },
        { "chunk-size = 2M\nchunk_size = 4M\n",
          "chunk_size is already set on line 1", 2 },
        { "flag = maybe\n",
          "bad value \"maybe\" for flag: expected true or false", 1 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char want[256];
        assert_int_equal(load_text(&c, cases[i].text), -DFS_ECONF);
        snprintf(want, sizeof(want), "%d: %s", cases[i].line, cases[i].msg);
        assert_file_error(want);
        conf_release(keys, &c);
    }
}

static void test_missing_file(void **state)
{
    (void)state;
    struct tconf c;
    memset(&c, 0, sizeof(c));
    assert_int_equal(conf_load_file(keys, "/nonexistent/master.conf", &c, err,
                                    sizeof(err)), -ENOENT);
    assert_string_equal(err, "/nonexistent/master.conf: No such file or "
                             "directory");
    assert_int_equal(conf_load(keys, "/nonexistent/master.conf", NULL, 0, &c,
                               err, sizeof(err)), -ENOENT);
    conf_release(keys, &c);
}

static void test_overrides_beat_file(void **state)
{
    (void)state;
    struct tconf c;
    memset(&c, 0, sizeof(c));
    write_conf("level = 2\nname = from-file\nflag = no\ncount = 9\n");
    const char *const args[] = { "level=5", "flag", "election-timeout=2s",
                                 "path=/p=q" };
    assert_int_equal(conf_load(keys, conf_path, args, 4, &c, err,
                               sizeof(err)), 0);
    assert_int_equal(c.level, 5);
    assert_true(c.flag);
    assert_int_equal(c.election_ms, 2000);
    assert_string_equal(c.path, "/p=q");
    assert_string_equal(c.name, "from-file");
    assert_int_equal(c.count, 9);
    assert_int_equal(c.chunk_size, 64 << 20);   /* default kept */

    const char *const bad_key[] = { "electon_timeout=1s" };
    assert_int_equal(conf_load(keys, conf_path, bad_key, 1, &c, err,
                               sizeof(err)), -DFS_ECONF);
    assert_string_equal(err, "command line: unknown key \"electon_timeout\"");
    assert_int_equal(conf_set_option(keys, "name", &c, err, sizeof(err)),
                     -DFS_ECONF);
    assert_string_equal(err, "command line: name needs a value (name=...)");
    assert_int_equal(conf_set_option(keys, "nope", &c, err, sizeof(err)),
                     -DFS_ECONF);
    assert_string_equal(err, "command line: unknown key \"nope\"");
    assert_int_equal(conf_set_option(keys, "level=x", &c, err, sizeof(err)),
                     -DFS_ECONF);
    assert_string_equal(err, "command line: bad value \"x\" for level: "
                             "expected an integer");
    assert_int_equal(conf_load(keys, NULL, NULL, 0, &c, err, sizeof(err)), 0);
    assert_string_equal(c.name, "dfs");     /* no file: defaults */
    conf_release(keys, &c);
}

static void test_bad_tables(void **state)
{
    (void)state;
    struct tconf c;
    const struct conf_key bad_default[] = {
        { "n", CONF_INT, OFF(level), "ten", NULL, NULL, "" }, { NULL },
    };
    const struct conf_key bad_bound[] = {
        { "d", CONF_DURATION, OFF(any_ms), "1s", "1", NULL, "" }, { NULL },
    };
    const struct conf_key default_out_of_range[] = {
        { "n", CONF_INT, OFF(level), "20", "0", "10", "" }, { NULL },
    };
    const struct conf_key zero_out_of_range[] = {
        { "s", CONF_SIZE, OFF(any_size), NULL, "1K", NULL, "" }, { NULL },
    };
    memset(&c, 0, sizeof(c));
    assert_int_equal(conf_apply_defaults(bad_default, &c, err, sizeof(err)),
                     -DFS_ECONF);
    assert_string_equal(err, "conf table: bad value \"ten\" for n: expected "
                             "an integer");
    assert_int_equal(conf_apply_defaults(bad_bound, &c, err, sizeof(err)),
                     -DFS_ECONF);
    assert_string_equal(err, "conf table: bad bound for d");
    assert_int_equal(conf_apply_defaults(default_out_of_range, &c, err,
                                         sizeof(err)), -DFS_ECONF);
    assert_string_equal(err, "conf table: n = 20 is out of range (0..10)");
    assert_int_equal(conf_apply_defaults(zero_out_of_range, &c, err,
                                         sizeof(err)), -DFS_ECONF);
    assert_string_equal(err, "conf table: s = 0 is out of range "
                             "(at least 1K)");
}

static void test_error_buffer(void **state)
{
    (void)state;
    struct tconf c;
    char small[12];
    memset(&c, 0, sizeof(c));
    assert_int_equal(conf_set(keys, "nope", "1", &c, NULL, 0), -DFS_ECONF);
    assert_int_equal(conf_set(keys, "nope", "1", &c, small, sizeof(small)),
                     -DFS_ECONF);
    assert_string_equal(small, "command lin");
    assert_int_equal(conf_load_file(keys, "/nonexistent", &c, NULL, 0),
                     -ENOENT);
}

static void test_help(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    conf_print_help(keys, out);
    fclose(out);
    assert_non_null(strstr(text,
        "  election_timeout=DURATION  Raft election timeout "
        "(default 1s; 50ms..60s)\n"));
    assert_non_null(strstr(text,
        "  name=TEXT                  cluster name (default dfs)\n"));
    assert_non_null(strstr(text, "  path=TEXT "));
    assert_non_null(strstr(text, "a path (no default)\n"));
    assert_non_null(strstr(text, "a count (default 7; at most 1000)\n"));
    assert_non_null(strstr(text, "at least 5 (default 5; at least 5)\n"));
    assert_non_null(strstr(text, "any size (default 0)\n"));
    assert_non_null(strstr(text, "  chunk_size=SIZE "));
    assert_non_null(strstr(text, "  flag=BOOL "));
    assert_non_null(strstr(text, "  count=N "));
    assert_non_null(strstr(text, "  level=INT "));
    int lines = 0;
    for (char *p = text; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 10);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_file_syntax),
        cmocka_unit_test(test_every_type),
        cmocka_unit_test(test_ranges_and_overflow),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_overrides_beat_file),
        cmocka_unit_test(test_bad_tables),
        cmocka_unit_test(test_error_buffer),
        cmocka_unit_test(test_help),
    };
    return cmocka_run_group_tests_name("conf", tests, setup, teardown);
}
