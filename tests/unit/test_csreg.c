/* Tests of csreg: registration, expiry, replica locations and placement. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "master/csreg.h"

static int conns[16];
#define conn_a conns[0]
#define conn_b conns[15]

static struct csreg *with_servers(int n, int racks)
{
    struct csreg *r = csreg_new(3000, 42);
    for (int i = 1; i <= n; i++) {
        char addr[32], rack[16];
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", 9000 + i);
        snprintf(rack, sizeof(rack), "r%d", racks ? i % racks : 0);
        assert_int_equal(csreg_register(r, (uint32_t)i, addr, rack, (uint64_t)100 << 30,
                                        (uint64_t)i << 30, &conns[i], 0), i);
    }
    return r;
}

static void test_register_assigns_ids_and_refuses_twins(void **state)
{
    (void)state;
    struct csreg *r = csreg_new(3000, 1);
    assert_int_equal(csreg_register(r, 0, "a:1", "", 10, 0, &conn_a, 0), 1);
    assert_int_equal(csreg_register(r, 0, "b:1", "", 10, 0, &conn_b, 0), 2);
    assert_int_equal(csreg_register(r, 1, "c:1", "", 10, 0, &conn_b, 0), -EEXIST);
    assert_string_equal(csreg_server(r, 1)->rack, "default");
    csreg_disconnected(r, &conn_a);
    assert_int_equal(csreg_server(r, 1)->state, CSREG_DOWN);
    struct csreg_beat b = { .total = 10 };
    assert_int_equal(csreg_heartbeat(r, 1, &b, 5), -ENOENT);
    assert_int_equal(csreg_register(r, 1, "a:2", "x", 10, 0, &conn_a, 10), 1);
    assert_int_equal(csreg_server(r, 1)->state, CSREG_UP);
    assert_string_equal(csreg_server(r, 1)->addr, "a:2");
    csreg_free(r);
}

static void test_expiry(void **state)
{
    (void)state;
    struct csreg *r = with_servers(3, 0);
    struct csreg_beat b = { .total = 1, .read_bytes = 7 };
    assert_int_equal(csreg_heartbeat(r, 2, &b, 2500), 0);
    assert_int_equal(csreg_server(r, 2)->read_bytes, 7);
    assert_int_equal(csreg_expire(r, 3500), 2);
    assert_int_equal(csreg_up_count(r), 1);
    assert_int_equal(csreg_server(r, 2)->state, CSREG_UP);
    csreg_free(r);
}

static void test_locations_filter_version_corrupt_and_down(void **state)
{
    (void)state;
    struct csreg *r = with_servers(4, 0);
    assert_int_equal(csreg_set_replica(r, 77, 1, 5, 100, false), 0);
    assert_int_equal(csreg_set_replica(r, 77, 2, 4, 100, false), 0);  /* stale */
    assert_int_equal(csreg_set_replica(r, 77, 3, 5, 100, true), 0);   /* corrupt */
    assert_int_equal(csreg_set_replica(r, 77, 4, 5, 100, false), 0);
    uint32_t out[8];
    assert_int_equal(csreg_locations(r, 77, 5, 5, out, 8), 2);
    /* A range takes the stale one in too (when the caller says it is good). */
    assert_int_equal(csreg_locations(r, 77, 4, 5, out, 8), 3);
    csreg_disconnected(r, &conns[4]);
    assert_int_equal(csreg_locations(r, 77, 5, 5, out, 8), 1);
    assert_int_equal(out[0], 1);
    csreg_drop_replica(r, 77, 1);
    assert_int_equal(csreg_locations(r, 77, 5, 5, out, 8), 0);
    assert_int_equal(csreg_locations(r, 999, 1, 1, out, 8), 0);
    /* Many chunks force rehashing; every one stays findable. */
    for (uint64_t c = 1; c <= 5000; c++)
        assert_int_equal(csreg_set_replica(r, c * 7919, 2, 1, 0, false), 0);
    for (uint64_t c = 1; c <= 5000; c++)
        assert_int_equal(csreg_locations(r, c * 7919, 1, 1, out, 8), 1);
    csreg_forget_server_replicas(r, 2);
    assert_int_equal(csreg_locations(r, 7919, 1, 1, out, 8), 0);
    csreg_free(r);
}

static void test_placement_distinct_racks_excludes(void **state)
{
    (void)state;
    struct csreg *r = with_servers(6, 3);
    for (int round = 0; round < 200; round++) {
        uint32_t out[3], ex[1] = { 2 };
        assert_int_equal(csreg_place(r, 3, ex, 1, out), 3);
        for (int i = 0; i < 3; i++) {
            assert_int_not_equal(out[i], 2);
            for (int k = 0; k < i; k++) {
                assert_int_not_equal(out[i], out[k]);
                /* Three racks, three replicas: one per rack. */
                assert_string_not_equal(csreg_server(r, out[i])->rack,
                                        csreg_server(r, out[k])->rack);
            }
        }
    }
    /* Fewer servers up than asked: as many as there are, never a down one. */
    for (int i = 1; i <= 4; i++)
        csreg_disconnected(r, &conns[i]);
    uint32_t out[3];
    assert_int_equal(csreg_place(r, 3, NULL, 0, out), 2);
    assert_true(out[0] >= 5 && out[1] >= 5);
    csreg_free(r);
}

/* A server without a MiB free would only answer ENOSPC: never placed. */
static void test_full_server_never_placed(void **state)
{
    (void)state;
    struct csreg *r = with_servers(3, 0);
    assert_int_equal(csreg_register(r, 9, "x:9", "", 10u << 20, (10u << 20) - 4096,
                                    &conns[9], 0), 9);
    for (int round = 0; round < 200; round++) {
        uint32_t out[4];
        assert_int_equal(csreg_place(r, 4, NULL, 0, out), 3);
        for (int i = 0; i < 3; i++)
            assert_int_not_equal(out[i], 9);
    }
    csreg_free(r);
}

/* A decommissioned server takes nothing new but still serves reads; a
 * mark given before the server registers applies when it does. */
static void test_decommissioned_never_placed(void **state)
{
    (void)state;
    struct csreg *r = with_servers(4, 0);
    assert_int_equal(csreg_decommission(r, 2), 0);
    assert_int_equal(csreg_decommission(r, 7), 0);   /* not registered yet */
    assert_true(csreg_server(r, 2)->decommission);
    assert_int_equal(csreg_server(r, 2)->drain_left, -1);
    assert_int_equal(csreg_up_count(r), 3);
    for (int round = 0; round < 200; round++) {
        uint32_t out[3];
        assert_int_equal(csreg_place(r, 3, NULL, 0, out), 3);
        for (int i = 0; i < 3; i++)
            assert_int_not_equal(out[i], 2);
    }
    uint32_t out[4];
    assert_int_equal(csreg_place(r, 4, NULL, 0, out), 3);
    assert_int_equal(csreg_set_replica(r, 5, 2, 1, 10, false), 0);
    assert_int_equal(csreg_locations(r, 5, 1, 1, out, 4), 1);
    assert_int_equal(out[0], 2);
    assert_int_equal(csreg_register(r, 7, "x:7", "", 1u << 30, 0, &conns[7], 0), 7);
    assert_true(csreg_server(r, 7)->decommission);
    csreg_report_done(r, 7);
    csreg_set_drain_left(r, 7, 0);
    csreg_set_drain_left(r, 3, 0);   /* not decommissioned: ignored */
    assert_int_equal(csreg_server(r, 7)->drain_left, 0);
    assert_int_equal(csreg_server(r, 3)->drain_left, -1);
    csreg_clear_decommission(r);
    assert_false(csreg_server(r, 2)->decommission);
    assert_int_equal(csreg_up_count(r), 5);
    csreg_free(r);
}

/*
 * A decommissioned server is known drained only while up and reported:
 * one that died keeps its recorded replicas (they count as still needing
 * it) and an unknown drain_left, whatever a scan computes.
 */
static void test_drain_needs_an_up_reported_server(void **state)
{
    (void)state;
    struct csreg *r = with_servers(3, 0);
    assert_int_equal(csreg_set_replica(r, 5, 2, 3, 10, false), 0);
    assert_int_equal(csreg_set_replica(r, 5, 1, 3, 10, false), 0);
    assert_int_equal(csreg_decommission(r, 2), 0);
    csreg_set_drain_left(r, 2, 0);   /* registered, report not in yet */
    assert_int_equal(csreg_server(r, 2)->drain_left, -1);
    csreg_report_done(r, 2);
    csreg_set_drain_left(r, 2, 1);
    assert_int_equal(csreg_server(r, 2)->drain_left, 1);

    /* It dies before its chunk is copied. */
    csreg_disconnected(r, &conns[2]);
    assert_int_equal(csreg_server(r, 2)->drain_left, -1);
    uint32_t out[4];
    assert_int_equal(csreg_locations(r, 5, 3, 3, out, 4), 1);   /* live only */
    assert_int_equal(csreg_recorded(r, 5, 3, 3, out, 4), 2);    /* what a drain counts */
    assert_true(out[0] == 2 || out[1] == 2);
    assert_int_equal(csreg_recorded(r, 5, 4, 4, out, 4), 0);    /* version filter */
    csreg_set_drain_left(r, 2, 0);
    assert_int_equal(csreg_server(r, 2)->drain_left, -1);

    /* Back: a new registration is a new full report. */
    assert_int_equal(csreg_register(r, 2, "x:2", "", 1u << 30, 0, &conns[2], 100), 2);
    csreg_set_drain_left(r, 2, 0);
    assert_int_equal(csreg_server(r, 2)->drain_left, -1);
    csreg_report_done(r, 2);
    csreg_set_drain_left(r, 2, 0);
    assert_int_equal(csreg_server(r, 2)->drain_left, 0);
    /* Silent past the timeout: unknown again at once. */
    assert_int_equal(csreg_expire(r, 100 + 3001), 3);
    assert_int_equal(csreg_server(r, 2)->drain_left, -1);
    /* A new leadership forgets every report. */
    csreg_forget_reports(r);
    assert_false(csreg_server(r, 1)->reported);
    csreg_free(r);
}

/* WRITE_BEGIN answers ENOSPC before committing when no up server has room. */
static void test_has_space(void **state)
{
    (void)state;
    struct csreg *r = csreg_new(3000, 7);
    assert_false(csreg_has_space(r));
    assert_int_equal(csreg_register(r, 1, "a:1", "", 10u << 20, (10u << 20) - 4096,
                                    &conns[1], 0), 1);
    assert_int_equal(csreg_register(r, 2, "b:1", "", 10u << 20, 10u << 20, &conns[2], 0), 2);
    uint32_t out[2];
    assert_false(csreg_has_space(r));
    assert_int_equal(csreg_place(r, 2, NULL, 0, out), 0);
    assert_int_equal(csreg_register(r, 3, "c:1", "", 10u << 20, 0, &conns[3], 0), 3);
    assert_true(csreg_has_space(r));
    assert_int_equal(csreg_decommission(r, 3), 0);   /* room, but not for new chunks */
    assert_false(csreg_has_space(r));
    csreg_clear_decommission(r);
    csreg_disconnected(r, &conns[3]);                  /* room, but down */
    assert_false(csreg_has_space(r));
    csreg_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_assigns_ids_and_refuses_twins),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_locations_filter_version_corrupt_and_down),
        cmocka_unit_test(test_placement_distinct_racks_excludes),
        cmocka_unit_test(test_decommissioned_never_placed),
        cmocka_unit_test(test_full_server_never_placed),
        cmocka_unit_test(test_drain_needs_an_up_reported_server),
        cmocka_unit_test(test_has_space),
    };
    return cmocka_run_group_tests_name("csreg", tests, NULL, NULL);
}
