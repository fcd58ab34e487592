/* Tests of raftwire: every Raft message survives a frame round trip, and
 * every damaged payload is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/dfs_error.h"
#include "common/protocol.h"
#include "master/raftwire.h"

static struct raft_entry sample_entries[] = {
    { .index = 8, .term = 3, .type = RAFT_ENTRY_NORMAL, .len = 5, .data = "hello" },
    { .index = 9, .term = 3, .type = RAFT_ENTRY_NOOP, .len = 0, .data = NULL },
    { .index = 10, .term = 4, .type = RAFT_ENTRY_NORMAL, .len = 3, .data = "abc" },
};

static struct raft_msg sample(uint32_t type)
{
    struct raft_msg m = { .type = type, .term = 4, .from = 2, .to = 3 };
    switch (type) {
    case RAFT_MSG_VOTE:
        m.u.vote = (struct raft_msg_vote){ .last_index = 77, .last_term = 3,
                                           .pre = 1, .transfer = 1 };
        break;
    case RAFT_MSG_VOTE_RESP:
        m.u.vote_resp = (struct raft_msg_vote_resp){ .pre = 1, .granted = 1 };
        break;
    case RAFT_MSG_APPEND:
        m.u.append = (struct raft_msg_append){ .prev_index = 7, .prev_term = 2,
                                               .commit = 6, .seq = 99,
                                               .n_entries = 3,
                                               .entries = sample_entries };
        break;
    case RAFT_MSG_APPEND_RESP:
        m.u.append_resp = (struct raft_msg_append_resp){
            .reject = 1, .index = 12, .hint_index = 9, .hint_term = 2, .seq = 5 };
        break;
    case RAFT_MSG_HEARTBEAT:
        m.u.heartbeat = (struct raft_msg_heartbeat){ .commit = 40, .seq = 41 };
        break;
    case RAFT_MSG_HEARTBEAT_RESP:
        m.u.heartbeat_resp.seq = 41;
        break;
    case RAFT_MSG_SNAPSHOT:
        m.u.snapshot.meta.index = 100;
        m.u.snapshot.meta.term = 3;
        m.u.snapshot.meta.members.n = 2;
        m.u.snapshot.meta.members.servers[0] = (struct raft_server){ 1, RAFT_VOTER };
        m.u.snapshot.meta.members.servers[1] = (struct raft_server){ 5, RAFT_LEARNER };
        m.u.snapshot.total = 1000;
        m.u.snapshot.offset = 200;
        m.u.snapshot.len = 4;
        m.u.snapshot.data = "snap";
        break;
    case RAFT_MSG_SNAPSHOT_RESP:
        m.u.snapshot_resp = (struct raft_msg_snapshot_resp){ .index = 100,
                                                             .offset = 204,
                                                             .done = 1,
                                                             .gap = 1 };
        break;
    }
    return m;
}

static void encode(const struct raft_msg *m, struct wire_writer *w,
                   struct wire_frame *f)
{
    wire_writer_init(w);
    assert_int_equal(raftwire_encode(w, m), 0);
    assert_int_equal(wire_frame_split(w->buf, w->len, WIRE_MAX_PAYLOAD, f), 1);
    assert_int_equal(f->span, w->len);
    assert_true(raftwire_is_raft(f->hdr.type));
}

static void assert_same(const struct raft_msg *a, const struct raft_msg *b)
{
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->term, b->term);
    assert_int_equal(a->from, b->from);
    assert_int_equal(a->to, b->to);
    if (a->type == RAFT_MSG_APPEND) {
        const struct raft_msg_append *x = &a->u.append, *y = &b->u.append;
        assert_int_equal(x->prev_index, y->prev_index);
        assert_int_equal(x->prev_term, y->prev_term);
        assert_int_equal(x->commit, y->commit);
        assert_int_equal(x->seq, y->seq);
        assert_int_equal(x->n_entries, y->n_entries);
        for (uint32_t i = 0; i < x->n_entries; i++) {
            assert_int_equal(x->entries[i].index, y->entries[i].index);
            assert_int_equal(x->entries[i].term, y->entries[i].term);
            assert_int_equal(x->entries[i].type, y->entries[i].type);
            assert_int_equal(x->entries[i].len, y->entries[i].len);
            if (x->entries[i].len)
                assert_memory_equal(x->entries[i].data, y->entries[i].data,
                                    x->entries[i].len);
        }
        return;
    }
    if (a->type == RAFT_MSG_SNAPSHOT) {
        const struct raft_msg_snapshot *x = &a->u.snapshot, *y = &b->u.snapshot;
        assert_int_equal(x->meta.index, y->meta.index);
        assert_int_equal(x->meta.term, y->meta.term);
        assert_memory_equal(&x->meta.members, &y->meta.members,
                            sizeof(x->meta.members));
        assert_int_equal(x->total, y->total);
        assert_int_equal(x->offset, y->offset);
        assert_int_equal(x->len, y->len);
        assert_memory_equal(x->data, y->data, x->len);
        return;
    }
    assert_memory_equal(&a->u, &b->u, sizeof(a->u));
}

static void test_round_trip_every_type(void **state)
{
    (void)state;
    for (uint32_t t = 1; t <= RAFT_MSG_TYPE_LAST; t++) {
        struct raft_msg m = sample(t), d;
        struct wire_writer w;
        struct wire_frame f;
        encode(&m, &w, &f);
        struct raft_entry *entries;
        assert_int_equal(raftwire_decode(f.hdr.type, f.payload, f.hdr.payload_len,
                                         &d, &entries), 0);
        assert_same(&m, &d);
        free(entries);
        wire_writer_release(&w);
    }
}

static void test_every_truncation_and_extra_byte_refused(void **state)
{
    (void)state;
    for (uint32_t t = 1; t <= RAFT_MSG_TYPE_LAST; t++) {
        struct raft_msg m = sample(t), d;
        struct wire_writer w;
        struct wire_frame f;
        encode(&m, &w, &f);
        size_t n = f.hdr.payload_len;
        uint8_t *copy = malloc(n + 1);
        memcpy(copy, f.payload, n);
        for (size_t cut = 0; cut < n; cut++) {
            /* A fresh allocation of exactly cut bytes: ASan sees overreads. */
            uint8_t *p = malloc(cut ? cut : 1);
            memcpy(p, copy, cut);
            struct raft_entry *entries = (void *)1;
            assert_true(raftwire_decode(f.hdr.type, p, cut, &d, &entries) < 0);
            assert_null(entries);
            free(p);
        }
        copy[n] = 0;
        struct raft_entry *entries;
        assert_int_equal(raftwire_decode(f.hdr.type, copy, n + 1, &d, &entries),
                         -EBADMSG);
        free(copy);
        wire_writer_release(&w);
    }
}

static void test_hostile_counts_and_members(void **state)
{
    (void)state;
    struct raft_msg m = sample(RAFT_MSG_APPEND), d;
    struct wire_writer w;
    struct wire_frame f;
    encode(&m, &w, &f);
    uint8_t *p = malloc(f.hdr.payload_len);
    memcpy(p, f.payload, f.hdr.payload_len);
    struct raft_entry *entries;
    /* count field sits after from, to, term and four u64s. */
    size_t count_at = 3 * 8 + 4 * 8;
    uint32_t huge = 0xFFFFFFFFu;
    memcpy(p + count_at, &huge, 4);
    assert_int_equal(raftwire_decode(f.hdr.type, p, f.hdr.payload_len, &d, &entries),
                     -DFS_ETOOBIG);
    uint32_t many = 60000;   /* under the cap, over what the payload holds */
    memcpy(p + count_at, &many, 4);
    assert_int_equal(raftwire_decode(f.hdr.type, p, f.hdr.payload_len, &d, &entries),
                     -DFS_ETRUNC);
    free(p);
    wire_writer_release(&w);

    m = sample(RAFT_MSG_SNAPSHOT);
    m.u.snapshot.meta.members.servers[1].id = 1;   /* duplicate id */
    encode(&m, &w, &f);
    assert_int_equal(raftwire_decode(f.hdr.type, f.payload, f.hdr.payload_len, &d,
                                     &entries), -EINVAL);
    wire_writer_release(&w);

    assert_int_equal(raftwire_decode(PROTO_LOOKUP, f.payload, 0, &d, &entries),
                     -EINVAL);
    assert_false(raftwire_is_raft(PROTO_LOOKUP));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_type),
        cmocka_unit_test(test_every_truncation_and_extra_byte_refused),
        cmocka_unit_test(test_hostile_counts_and_members),
    };
    return cmocka_run_group_tests_name("raftwire", tests, NULL, NULL);
}
