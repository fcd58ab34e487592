/* Tests of mmember: the master address book, the decommission set, and
 * their entry, snapshot-section and cache-file encodings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wire.h"
#include "master/mmember.h"

static struct mmember *three(void)
{
    struct mmember *mm = malloc(sizeof(*mm));
    assert_non_null(mm);
    mmember_init(mm);
    assert_int_equal(mmember_set(mm, 3, "10.0.0.3:9400", "10.0.0.3:9480"), 0);
    assert_int_equal(mmember_set(mm, 1, "10.0.0.1:9400", "10.0.0.1:9480"), 0);
    assert_int_equal(mmember_set(mm, 2, "10.0.0.2:9400", NULL), 0);
    return mm;
}

static void test_book_sorted_and_updated(void **state)
{
    (void)state;
    struct mmember *mm = three();
    assert_int_equal(mm->n, 3);
    assert_int_equal(mm->m[0].id, 1);
    assert_int_equal(mm->m[2].id, 3);
    assert_string_equal(mmember_find(mm, 2)->http, "");
    assert_int_equal(mmember_set(mm, 2, "10.0.0.9:1", "h:2"), 0);
    assert_int_equal(mm->n, 3);
    assert_string_equal(mmember_find(mm, 2)->addr, "10.0.0.9:1");
    assert_int_equal(mmember_find_addr(mm, "10.0.0.9:1")->id, 2);
    assert_null(mmember_find_addr(mm, "10.0.0.2:9400"));
    assert_int_equal(mmember_drop(mm, 2), 0);
    assert_int_equal(mmember_drop(mm, 2), -ENOENT);
    assert_null(mmember_find(mm, 2));
    assert_int_equal(mmember_set(mm, 0, "a:1", ""), -EINVAL);
    assert_int_equal(mmember_set(mm, 5, "", ""), -EINVAL);
    char longaddr[MMEMBER_ADDR_MAX + 1];
    memset(longaddr, 'a', sizeof(longaddr) - 1);
    longaddr[sizeof(longaddr) - 1] = '\0';
    assert_int_equal(mmember_set(mm, 5, longaddr, ""), -EINVAL);
    for (uint64_t id = 10; mm->n < MMEMBER_MAX; id++)
        assert_int_equal(mmember_set(mm, id, "x:1", ""), 0);
    assert_int_equal(mmember_set(mm, 99, "x:1", ""), -ENOSPC);
    free(mm);
}

static void test_decommission_set(void **state)
{
    (void)state;
    struct mmember *mm = three();
    assert_false(mmember_is_decommissioned(mm, 4));
    assert_int_equal(mmember_decommission(mm, 7), 0);
    assert_int_equal(mmember_decommission(mm, 4), 0);
    assert_int_equal(mmember_decommission(mm, 7), 0);   /* idempotent */
    assert_int_equal(mm->ndecom, 2);
    assert_int_equal(mm->decom[0], 4);
    assert_true(mmember_is_decommissioned(mm, 7));
    assert_int_equal(mmember_decommission(mm, 0), -EINVAL);
    free(mm);
}

static void test_entries_round_trip(void **state)
{
    (void)state;
    struct mmember *mm = three(), *other = malloc(sizeof(*other));
    mmember_init(other);
    assert_int_equal(mmember_set(other, 9, "old:1", ""), 0);
    struct wire_writer w;
    wire_writer_init(&w);
    mmember_encode_masters(mm, &w);
    assert_int_equal(w.err, 0);
    assert_true(mmember_is_entry(w.buf, w.len));
    struct mmember_change ch;
    assert_int_equal(mmember_apply(other, w.buf, w.len, &ch), 0);
    assert_int_equal(ch.kind, MMEMBER_MASTERS);
    assert_int_equal(other->n, 3);
    assert_memory_equal(other->m, mm->m, 3 * sizeof(mm->m[0]));
    wire_writer_release(&w);

    wire_writer_init(&w);
    mmember_encode_decommission(5, &w);
    assert_int_equal(mmember_apply(other, w.buf, w.len, &ch), 0);
    assert_int_equal(ch.kind, MMEMBER_DECOMMISSION);
    assert_int_equal(ch.cs, 5);
    assert_true(mmember_is_decommissioned(other, 5));
    wire_writer_release(&w);

    /* A namespace op (format byte 1) is not ours. */
    uint8_t ns_op[] = { 1, 1, 0, 0 };
    assert_false(mmember_is_entry(ns_op, sizeof(ns_op)));
    assert_false(mmember_is_entry(ns_op, 0));
    free(mm);
    free(other);
}

/* Every truncation and one corrupted byte of an entry: refused whole, or
 * (for a byte that stays valid) applied whole; never half. */
static void test_bad_entries_change_nothing(void **state)
{
    (void)state;
    struct mmember *mm = three(), *copy = malloc(sizeof(*copy));
    struct wire_writer w;
    wire_writer_init(&w);
    mmember_encode_masters(mm, &w);
    struct mmember_change ch;
    for (size_t len = 0; len < w.len; len++) {
        *copy = *mm;
        copy->n = 1;
        assert_int_not_equal(mmember_apply(copy, w.buf, len, &ch), 0);
        assert_int_equal(copy->n, 1);
    }
    /* Two masters with the same id. */
    struct mmember dup;
    mmember_init(&dup);
    mmember_set(&dup, 1, "a:1", "");
    mmember_set(&dup, 2, "b:1", "");
    struct wire_writer d;
    wire_writer_init(&d);
    mmember_encode_masters(&dup, &d);
    /* The second id field: format, kind, count, id 1, addr, http, then id 2. */
    size_t at = 1 + 1 + 4 + 8 + 4 + 3 + 4 + 0;
    assert_int_equal(d.buf[at], 2);
    d.buf[at] = 1;
    *copy = *mm;
    assert_int_equal(mmember_apply(copy, d.buf, d.len, &ch), -EBADMSG);
    assert_int_equal(copy->n, 3);
    /* Unknown kind. */
    d.buf[1] = 9;
    assert_int_equal(mmember_apply(copy, d.buf, d.len, &ch), -EBADMSG);
    wire_writer_release(&d);
    wire_writer_release(&w);
    free(mm);
    free(copy);
}

static void test_snapshot_section(void **state)
{
    (void)state;
    struct mmember *mm = three(), *got = malloc(sizeof(*got));
    mmember_decommission(mm, 2);
    mmember_decommission(mm, 11);
    struct wire_writer w;
    wire_writer_init(&w);
    mmember_snapshot_write(mm, &w);
    wire_put_raw(&w, "NSDATA", 6);
    mmember_init(got);
    const void *rest;
    size_t rest_len;
    assert_int_equal(mmember_snapshot_split(w.buf, w.len, got, &rest, &rest_len), 1);
    assert_int_equal(rest_len, 6);
    assert_memory_equal(rest, "NSDATA", 6);
    assert_int_equal(got->n, 3);
    assert_memory_equal(got->m, mm->m, 3 * sizeof(mm->m[0]));
    assert_int_equal(got->ndecom, 2);
    assert_true(mmember_is_decommissioned(got, 11));

    /* An older snapshot has no section: all of it is the namespace. */
    mmember_init(got);
    assert_int_equal(mmember_snapshot_split("NSDATA", 6, got, &rest, &rest_len), 0);
    assert_int_equal(rest_len, 6);
    assert_int_equal(got->n, 0);

    /* A section cut short is refused and changes nothing. */
    for (size_t len = 8; len < w.len - 6; len++) {
        mmember_init(got);
        assert_int_equal(mmember_snapshot_split(w.buf, len, got, &rest, &rest_len), -EBADMSG);
        assert_int_equal(got->n, 0);
    }
    wire_writer_release(&w);
    free(mm);
    free(got);
}

static void test_cache_file_text(void **state)
{
    (void)state;
    struct mmember *mm = three(), *got = malloc(sizeof(*got));
    char buf[4096];
    int len = mmember_format_masters(mm, buf, sizeof(buf));
    assert_true(len > 0);
    assert_string_equal(buf, "1 10.0.0.1:9400 10.0.0.1:9480\n"
                             "2 10.0.0.2:9400 -\n"
                             "3 10.0.0.3:9400 10.0.0.3:9480\n");
    mmember_init(got);
    mmember_decommission(got, 8);
    assert_int_equal(mmember_parse_masters(got, buf), 0);
    assert_int_equal(got->n, 3);
    assert_memory_equal(got->m, mm->m, 3 * sizeof(mm->m[0]));
    assert_true(mmember_is_decommissioned(got, 8));   /* untouched */
    assert_int_equal(mmember_format_masters(mm, buf, 20), -ENOSPC);

    assert_int_equal(mmember_parse_masters(got, "# comment\n\n4 a:1 b:2\n"), 0);
    assert_int_equal(got->n, 1);
    const char *bad[] = { "x a:1 b:2\n", "1 a:1\n", "1 a:1 b:2 extra\n",
                          "1 a:1 -\n1 b:1 -\n", "0 a:1 -\n" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(mmember_parse_masters(got, bad[i]), -EINVAL);
        assert_int_equal(got->n, 1);
        assert_int_equal(got->m[0].id, 4);
    }
    free(mm);
    free(got);
}

/* A master stops for good only on the leader's committed removal of it. */
static void test_removed_only_when_committed(void **state)
{
    (void)state;
    struct mmember_answer a = { .from = 2, .leader = 2, .term = 5, .commit = 40,
                                .config_index = 40, .lists_us = false };
    assert_true(mmember_removed(&a, 5));
    assert_true(mmember_removed(&a, 4));
    a.config_index = 41;   /* appended, not committed: may be undone */
    assert_false(mmember_removed(&a, 5));
    a.config_index = 0;    /* an older leader does not say */
    assert_false(mmember_removed(&a, 5));
    a.config_index = 40;
    assert_false(mmember_removed(&a, 6));   /* its term is older than ours */
    a.leader = 3;          /* a follower's view decides nothing */
    assert_false(mmember_removed(&a, 5));
    a.leader = 0;
    assert_false(mmember_removed(&a, 5));
    a.leader = 2;
    a.lists_us = true;
    assert_false(mmember_removed(&a, 5));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_book_sorted_and_updated),
        cmocka_unit_test(test_decommission_set),
        cmocka_unit_test(test_entries_round_trip),
        cmocka_unit_test(test_bad_entries_change_nothing),
        cmocka_unit_test(test_snapshot_section),
        cmocka_unit_test(test_cache_file_text),
        cmocka_unit_test(test_removed_only_when_committed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
