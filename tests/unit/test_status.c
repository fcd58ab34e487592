/*
 * Tests of status: the rings, the JSON (validated by a small recursive-
 * descent parser below), the Prometheus text (checked line by line against
 * the exposition format rules), and escaping of hostile strings in all
 * three renderings.
 *
 * With STATUS_HTML_OUT=path set, the fixture page is also written there
 * (how docs/status-page.png is made).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dfs_error.h"
#include "common/strbuf.h"
#include "master/status.h"

#define HOSTILE "<script>alert(\"x\")</script>\\&'\n\x01"

/* ---- fixture ------------------------------------------------------------ */

static const int64_t T0 = 1718000000000; /* a fixed wall clock, ms */

static void fill_history(struct status_history *h)
{
    for (int i = 0; i < STATUS_HISTORY_MAX; i++) {
        /* a slow triangle wave with some jitter, a write burst at the end */
        uint64_t tri = (uint64_t)(i % 24 < 12 ? i % 24 : 24 - i % 24);
        uint64_t wave = tri + (uint64_t)(i * 7 % 5);
        struct status_sample s = {
            .time_ms = T0 - (STATUS_HISTORY_MAX - 1 - i) * 10000,
            .ops = 8000 + wave * 900 + (uint64_t)i * 120,
            .read_bytes = (60u + wave * 9u + (uint64_t)(i % 7) * 11u) << 20,
            .write_bytes = (i > 44 ? 900u - (uint64_t)(i - 45) * 30u
                                   : 120u + wave * 6u) << 20,
        };
        status_history_add(h, &s);
    }
}

static void fill_events(struct status_events *ev)
{
    status_events_add(ev, T0 - 3600000, STATUS_EV_LEADER,
                      "master 1 elected leader for term 7");
    status_events_add(ev, T0 - 3500000, STATUS_EV_CS_JOIN,
                      "chunkserver 4 (10.0.2.14:9422) joined, rack r2");
    status_events_add(ev, T0 - 400000, STATUS_EV_CS_LEAVE,
                      "chunkserver 5 (10.0.3.15:9422) stopped heartbeating");
    status_events_add(ev, T0 - 380000, STATUS_EV_REREPLICATE,
                      "re-replicating 214 chunks that were on chunkserver 5");
    status_events_add(ev, T0 - 95000, STATUS_EV_CORRUPT,
                      "chunk 00000000000a41c7 v3 corrupt on chunkserver 2 "
                      "(block 17); copy scheduled");
    status_events_add(ev, T0 - 20000, STATUS_EV_REREPLICATE,
                      "chunk 00000000000a41c7 copied 3 -> 6");
}

static void set_master(struct status_master *m, uint64_t id,
                       enum status_role role, int64_t age, uint64_t match)
{
    m->id = id;
    snprintf(m->address, sizeof(m->address), "10.0.0.%" PRIu64 ":9420", id);
    snprintf(m->http, sizeof(m->http), "http://10.0.0.%" PRIu64 ":9425/", id);
    m->role = role;
    m->contact_age_ms = age;
    m->match_index = match;
    m->snapshot_index = 480000;
}

static void set_cs(struct status_chunkserver *cs, uint32_t id,
                   const char *rack, enum status_cs_state state,
                   uint64_t total_gib, uint64_t used_gib, int64_t age)
{
    cs->id = id;
    snprintf(cs->address, sizeof(cs->address), "10.0.%u.%u:9422",
             (id - 1) / 2 + 1, 10 + id);
    snprintf(cs->rack, sizeof(cs->rack), "%s", rack);
    cs->state = state;
    cs->bytes_total = total_gib << 30;
    cs->bytes_used = used_gib << 30;
    cs->chunks = used_gib * 15;
    cs->load = state == STATUS_CS_UP ? id * 3 % 11 : 0;
    cs->heartbeat_age_ms = age;
}

/* A leader's view of a busy six-chunkserver cluster with some trouble. */
static struct status_snap *fixture(void)
{
    struct status_snap *s = status_snap_new(3, 6);
    assert_non_null(s);
    snprintf(s->cluster, sizeof(s->cluster), "prod-eu1");
    snprintf(s->version, sizeof(s->version), "dfs 0.1.0");
    s->now_ms = T0;
    s->start_ms = T0 - 3 * 86400000 - 5 * 3600000;
    s->self_id = 1;
    s->role = STATUS_ROLE_LEADER;
    s->leader_id = 1;
    s->term = 7;
    s->commit_index = 512345;
    s->applied_index = 512345;
    s->snapshot_index = 500000;
    s->leader_changes_total = 3;
    s->files = 1834221;
    s->directories = 40217;
    s->bytes_logical = 9431ull << 30;
    s->bytes_physical = 28100ull << 30;
    s->chunks = (struct status_chunks){.total = 161422, .healthy = 161201,
                                       .under_replicated = 214, .missing = 0,
                                       .corrupt = 7, .rereplicating = 48};
    const char *ops[] = {"lookup", "getattr", "readdir", "create", "write_begin",
                         "write_end", "chunk_locations", "unlink", "rename"};
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        assert_int_equal(status_ops_add(&s->ops, ops[i], 1000000 / (i + 1)), 0);
    s->read_bytes_total = 51234ull << 30;
    s->write_bytes_total = 20311ull << 30;
    s->rereplications_total = 1862;
    s->corrupt_replicas_total = 9;
    fill_history(&s->history);
    fill_events(&s->events);
    set_master(&s->masters[0], 1, STATUS_ROLE_LEADER, 0, 512345);
    s->masters[0].self = true;
    set_master(&s->masters[1], 2, STATUS_ROLE_FOLLOWER, 42, 512345);
    set_master(&s->masters[2], 3, STATUS_ROLE_FOLLOWER, 130, 512290);
    set_cs(&s->chunkservers[0], 1, "r1", STATUS_CS_UP, 7450, 4210, 310);
    set_cs(&s->chunkservers[1], 2, "r1", STATUS_CS_UP, 7450, 4380, 870);
    s->chunkservers[1].errors_total = 7;
    set_cs(&s->chunkservers[2], 3, "r2", STATUS_CS_UP, 7450, 6910, 120);
    set_cs(&s->chunkservers[3], 4, "r2", STATUS_CS_UP, 7450, 3020, 640);
    set_cs(&s->chunkservers[4], 5, "r3", STATUS_CS_DOWN, 7450, 4490, 412000);
    set_cs(&s->chunkservers[5], 6, "r3", STATUS_CS_DECOMMISSIONING, 3725,
           1210, 450);
    return s;
}

static char *render(int (*fn)(const struct status_snap *, struct strbuf *),
                    const struct status_snap *snap)
{
    struct strbuf sb;
    strbuf_init(&sb, 0);
    assert_int_equal(fn(snap, &sb), 0);
    char *s = strbuf_detach(&sb, NULL);
    assert_non_null(s);
    return s;
}

static int render_html5(const struct status_snap *snap, struct strbuf *out)
{
    return status_render_html(snap, 5, out);
}

/* ---- a strict JSON validator (RFC 8259) ---------------------------------- */

struct jp {
    const char *p;
    int depth;
};

static bool jp_value(struct jp *j);

static void jp_ws(struct jp *j)
{
    while (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')
        j->p++;
}

static bool jp_lit(struct jp *j, const char *lit)
{
    size_t n = strlen(lit);
    if (strncmp(j->p, lit, n) != 0)
        return false;
    j->p += n;
    return true;
}

static bool jp_string(struct jp *j)
{
    if (*j->p++ != '"')
        return false;
    for (;;) {
        unsigned char c = (unsigned char)*j->p++;
        if (c == '"')
            return true;
        if (c < 0x20)
            return false;           /* includes the terminating NUL */
        if (c != '\\')
            continue;
        c = (unsigned char)*j->p++;
        if (c == 'u') {
            for (int i = 0; i < 4; i++)
                if (!isxdigit((unsigned char)*j->p++))
                    return false;
        } else if (!strchr("\"\\/bfnrt", c) || c == 0) {
            return false;
        }
    }
}

static bool jp_number(struct jp *j)
{
    const char *start = j->p;
    if (*j->p == '-')
        j->p++;
    if (*j->p == '0')
        j->p++;
    else if (isdigit((unsigned char)*j->p))
        while (isdigit((unsigned char)*j->p))
            j->p++;
    else
        return false;
    if (*j->p == '.') {
        j->p++;
        if (!isdigit((unsigned char)*j->p))
            return false;
        while (isdigit((unsigned char)*j->p))
            j->p++;
    }
    if (*j->p == 'e' || *j->p == 'E') {
        j->p++;
        if (*j->p == '+' || *j->p == '-')
            j->p++;
        if (!isdigit((unsigned char)*j->p))
            return false;
        while (isdigit((unsigned char)*j->p))
            j->p++;
    }
    return j->p > start;
}

/* An object (close '}') or array (close ']') after its opening bracket. */
static bool jp_container(struct jp *j, char close)
{
    if (++j->depth > 64)
        return false;
    jp_ws(j);
    if (*j->p == close) {
        j->p++;
        j->depth--;
        return true;
    }
    for (;;) {
        jp_ws(j);
        if (close == '}') {
            if (!jp_string(j))
                return false;
            jp_ws(j);
            if (*j->p++ != ':')
                return false;
        }
        if (!jp_value(j))
            return false;
        jp_ws(j);
        char c = *j->p++;
        if (c == close)
            break;
        if (c != ',')
            return false;
    }
    j->depth--;
    return true;
}

static bool jp_value(struct jp *j)
{
    jp_ws(j);
    switch (*j->p) {
    case '{': j->p++; return jp_container(j, '}');
    case '[': j->p++; return jp_container(j, ']');
    case '"': return jp_string(j);
    case 't': return jp_lit(j, "true");
    case 'f': return jp_lit(j, "false");
    case 'n': return jp_lit(j, "null");
    default:  return jp_number(j);
    }
}

static bool json_valid(const char *s)
{
    struct jp j = {.p = s};
    if (!jp_value(&j))
        return false;
    jp_ws(&j);
    return *j.p == '\0';
}

/* The validator itself must reject what it should, or it proves nothing. */
static void test_json_validator_bites(void **state)
{
    (void)state;
    assert_true(json_valid("{\"a\":[1,2.5,-3e4,true,false,null,\"x\\u00e9\"]}"));
    const char *bad[] = {
        "{\"a\":1,}", "[1,]", "{\"a\" 1}", "{'a':1}", "\"a\nb\"", "[01]",
        "{\"a\":1}}", "[1.]", "\"\\x\"", "{\"a\":nul}", "", "{\"a\":1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (json_valid(bad[i]))
            fail_msg("validator accepted %s", bad[i]);
    }
}

/* ---- a Prometheus text format checker ------------------------------------ */

struct family {
    char name[128];
    char type[16];
    bool help;
    bool sampled;
};

static bool prom_name_ok(const char *s, size_t n)
{
    if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':'))
            return false;
    return true;
}

/* Checks `{a="..",b=".."}` at *p, moving past it; label values escaped. */
static bool prom_labels_ok(const char **pp)
{
    const char *p = *pp;
    if (*p != '{')
        return true;
    p++;
    while (*p != '}') {
        const char *n = p;
        while (isalnum((unsigned char)*p) || *p == '_')
            p++;
        if (!prom_name_ok(n, (size_t)(p - n)) || *p++ != '=' || *p++ != '"')
            return false;
        while (*p != '"') {
            if (*p == '\n' || *p == '\0')
                return false;
            if (*p == '\\') {
                p++;
                if (*p != '\\' && *p != '"' && *p != 'n')
                    return false;
            }
            p++;
        }
        p++;
        if (*p == ',')
            p++;
        else if (*p != '}')
            return false;
    }
    *pp = p + 1;
    return true;
}

struct prom_check {
    struct family fam[128];
    size_t nfam;
    size_t samples;
    char err[256];
};

static struct family *prom_family_get(struct prom_check *c, const char *name,
                                      size_t n)
{
    for (size_t i = 0; i < c->nfam; i++)
        if (strlen(c->fam[i].name) == n && strncmp(c->fam[i].name, name, n) == 0)
            return &c->fam[i];
    if (c->nfam == 128 || n >= sizeof(c->fam[0].name))
        return NULL;
    struct family *f = &c->fam[c->nfam++];
    memset(f, 0, sizeof(*f));
    memcpy(f->name, name, n);
    return f;
}

static bool prom_comment(struct prom_check *c, const char *line)
{
    bool help = strncmp(line, "# HELP ", 7) == 0;
    if (!help && strncmp(line, "# TYPE ", 7) != 0)
        return true;                /* a plain comment */
    const char *name = line + 7;
    size_t n = strcspn(name, " ");
    struct family *f = prom_family_get(c, name, n);
    if (!f || !prom_name_ok(name, n) || name[n] != ' ' || f->sampled)
        return false;
    if (help) {
        if (f->help)
            return false;
        f->help = true;
        return true;
    }
    if (f->type[0])
        return false;
    snprintf(f->type, sizeof(f->type), "%s", name + n + 1);
    if (strcmp(f->type, "counter") != 0 && strcmp(f->type, "gauge") != 0)
        return false;
    return strcmp(f->type, "counter") != 0 ||
           (n > 6 && strncmp(name + n - 6, "_total", 6) == 0);
}

static bool prom_sample(struct prom_check *c, const char *line,
                        struct family **last)
{
    const char *p = line;
    while (isalnum((unsigned char)*p) || *p == '_' || *p == ':')
        p++;
    struct family *f = prom_family_get(c, line, (size_t)(p - line));
    if (!f || !prom_name_ok(line, (size_t)(p - line)) || !f->help ||
        !f->type[0])
        return false;
    /* a family's samples are contiguous */
    if (f->sampled && *last != f)
        return false;
    f->sampled = true;
    *last = f;
    if (!prom_labels_ok(&p) || *p++ != ' ')
        return false;
    char *end;
    double v = strtod(p, &end);
    if (end == p || *end != '\0')
        return false;
    if (strcmp(f->type, "counter") == 0 && v < 0)
        return false;
    c->samples++;
    return true;
}

/* 0 when text follows the rules; else fails with the offending line. */
static void prom_check_text(const char *text, struct prom_check *c)
{
    memset(c, 0, sizeof(*c));
    struct family *last = NULL;
    char *copy = strdup(text);
    assert_non_null(copy);
    assert_true(strlen(text) > 0 && text[strlen(text) - 1] == '\n');
    char *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        bool ok = line[0] == '#' ? prom_comment(c, line)
                                 : prom_sample(c, line, &last);
        if (!ok) {
            snprintf(c->err, sizeof(c->err), "%s", line);
            break;
        }
    }
    free(copy);
    for (size_t i = 0; i < c->nfam && !c->err[0]; i++)
        if (!c->fam[i].help || !c->fam[i].type[0])
            snprintf(c->err, sizeof(c->err), "%s lacks HELP or TYPE",
                     c->fam[i].name);
}

static void test_prom_checker_bites(void **state)
{
    (void)state;
    struct prom_check c;
    prom_check_text("# HELP a_total x\n# TYPE a_total counter\n"
                    "a_total{l=\"q\\\"\\\\\\n\"} 3\n", &c);
    assert_string_equal(c.err, "");
    const char *bad[] = {
        "a 1\n",                                            /* no HELP/TYPE */
        "# HELP a x\n# TYPE a counter\na 1\n",              /* no _total */
        "# HELP a x\n# TYPE a gauge\na{l=\"x\"y\"} 1\n",    /* bad escape */
        "# HELP a x\n# TYPE a gauge\na{l=\"\\q\"} 1\n",
        "# HELP 1a x\n# TYPE 1a gauge\n1a 1\n",             /* bad name */
        "# HELP a x\n# TYPE a gauge\na one\n",
        "# HELP a x\n# TYPE a gauge\n# HELP b x\n# TYPE b gauge\n"
        "a 1\nb 1\na 2\n",                                  /* not grouped */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        prom_check_text(bad[i], &c);
        if (c.err[0] == '\0')
            fail_msg("checker accepted %s", bad[i]);
    }
}

/* ---- rings and counters -------------------------------------------------- */

static void test_history_ring(void **state)
{
    (void)state;
    struct status_history h = {0};
    for (int i = 0; i < STATUS_HISTORY_MAX + 7; i++) {
        struct status_sample s = {.time_ms = i, .ops = (uint64_t)i};
        status_history_add(&h, &s);
        size_t want = (size_t)i + 1 < STATUS_HISTORY_MAX ? (size_t)i + 1
                                                         : STATUS_HISTORY_MAX;
        assert_int_equal(h.count, want);
        assert_int_equal(status_history_at(&h, 0)->ops, (uint64_t)i + 1 - want);
        assert_int_equal(status_history_at(&h, h.count - 1)->ops, (uint64_t)i);
    }
}

static void test_events_ring_truncates(void **state)
{
    (void)state;
    struct status_events ev = {0};
    char long_text[STATUS_EVENT_MAX * 2];
    memset(long_text, 'x', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';
    for (int i = 0; i < STATUS_EVENTS_MAX + 3; i++)
        status_events_add(&ev, i, STATUS_EV_OTHER, "%d %s", i, long_text);
    assert_int_equal(ev.count, STATUS_EVENTS_MAX);
    assert_int_equal(status_events_at(&ev, 0)->time_ms, 3);
    assert_int_equal(strlen(status_events_at(&ev, 0)->text),
                     STATUS_EVENT_MAX - 1);
    assert_int_equal(status_events_at(&ev, STATUS_EVENTS_MAX - 1)->time_ms,
                     STATUS_EVENTS_MAX + 2);
}

static void test_ops_counters(void **state)
{
    (void)state;
    struct status_ops ops = {0};
    assert_int_equal(status_ops_add(&ops, "lookup", 2), 0);
    assert_int_equal(status_ops_add(&ops, "lookup", 3), 0);
    assert_int_equal(ops.count, 1);
    assert_int_equal(ops.op[0].count, 5);
    char name[16];
    for (int i = 1; i < STATUS_OPS_MAX; i++) {
        snprintf(name, sizeof(name), "op%d", i);
        assert_int_equal(status_ops_add(&ops, name, 1), 0);
    }
    assert_int_equal(status_ops_add(&ops, "one_too_many", 1), -ENOSPC);
    assert_int_equal(status_ops_add(&ops, "op5", 1), 0);
    assert_int_equal(ops.op[5].count, 2);
}

/* ---- JSON ---------------------------------------------------------------- */

static void test_json_fields(void **state)
{
    (void)state;
    struct status_snap *s = fixture();
    char *j = render(status_render_json, s);
    assert_true(json_valid(j));
    const char *must[] = {
        "\"role\":\"leader\"", "\"leader\":1,", "\"term\":7,",
        "\"commit_index\":512345,", "\"files\":1834221,",
        "\"directories\":40217,",
        "\"masters\":[{\"id\":1,\"address\":\"10.0.0.1:9420\","
        "\"role\":\"leader\",\"http\":\"http://10.0.0.1:9425/\"",
        "{\"id\":5,\"address\":\"10.0.3.15:9422\",\"rack\":\"r3\","
        "\"state\":\"down\",\"bytes_total\":7999376588800,"
        "\"bytes_used\":4821100789760,\"chunks\":67350",
        "\"state\":\"decommissioning\"",
        "\"chunks\":{\"total\":161422,\"healthy\":161201,"
        "\"under_replicated\":214,\"missing\":0,\"corrupt\":7",
        "\"log_lag\":55", "\"lookup\":1000000",
        "\"code\":\"chunkserver_down\"", "\"code\":\"chunks_corrupt\"",
        "\"code\":\"chunkserver_disk_full\"",
    };
    for (size_t i = 0; i < sizeof(must) / sizeof(must[0]); i++)
        if (!strstr(j, must[i]))
            fail_msg("JSON lacks %s", must[i]);
    assert_null(strstr(j, "\"code\":\"no_leader\""));
    assert_null(strstr(j, "\"code\":\"chunks_missing\""));
    free(j);
    status_snap_free(s);
}

static void test_json_follower_without_leader(void **state)
{
    (void)state;
    struct status_snap *s = status_snap_new(0, 0);
    assert_non_null(s);
    s->role = STATUS_ROLE_CANDIDATE;
    char *j = render(status_render_json, s);
    assert_true(json_valid(j));
    assert_non_null(strstr(j, "\"leader\":null"));
    assert_non_null(strstr(j, "\"role\":\"candidate\""));
    assert_non_null(strstr(j, "\"masters\":[]"));
    assert_non_null(strstr(j, "\"code\":\"no_leader\""));
    free(j);
    status_snap_free(s);
}

static void test_json_escapes_hostile_strings(void **state)
{
    (void)state;
    struct status_snap *s = fixture();
    snprintf(s->chunkservers[0].rack, sizeof(s->chunkservers[0].rack),
             "%s", HOSTILE);
    /* invalid UTF-8: a lone continuation byte and a truncated sequence */
    snprintf(s->chunkservers[1].rack, sizeof(s->chunkservers[1].rack),
             "a\x80" "b\xe2\x82");
    snprintf(s->cluster, sizeof(s->cluster), "caf\xc3\xa9");
    status_events_add(&s->events, T0, STATUS_EV_OTHER, "%s", HOSTILE);
    assert_int_equal(status_ops_add(&s->ops, "x\"y", 1), 0);
    char *j = render(status_render_json, s);
    assert_true(json_valid(j));
    assert_null(strstr(j, "<script"));
    assert_non_null(strstr(j, "\\u003cscript>alert(\\\"x\\\")\\u003c/script>"
                              "\\\\&'\\u000a\\u0001"));
    assert_non_null(strstr(j, "\"a\\ufffdb\\ufffd\\ufffd\""));
    assert_non_null(strstr(j, "\"caf\xc3\xa9\""));
    free(j);
    status_snap_free(s);
}

/* ---- metrics ------------------------------------------------------------- */

static void test_metrics_format(void **state)
{
    (void)state;
    struct status_snap *s = fixture();
    snprintf(s->chunkservers[2].rack, sizeof(s->chunkservers[2].rack),
             "%s", HOSTILE);
    assert_int_equal(status_ops_add(&s->ops, "we\"ird\\op\nname", 4), 0);
    char *m = render(status_render_metrics, s);
    struct prom_check c;
    prom_check_text(m, &c);
    if (c.err[0])
        fail_msg("bad metrics line: %s", c.err);
    assert_true(c.samples > 50);
    const char *must[] = {
        "\ndfs_raft_term 7\n", "\ndfs_raft_commit_index 512345\n",
        "\ndfs_raft_applied_index 512345\n",
        "\ndfs_raft_leader_changes_total 3\n",
        "\ndfs_raft_role{role=\"leader\"} 1\n",
        "\ndfs_raft_role{role=\"follower\"} 0\n",
        "\ndfs_namespace_files 1834221\n",
        "\ndfs_namespace_directories 40217\n",
        "\ndfs_chunks_by_health{health=\"corrupt\"} 7\n",
        "\ndfs_chunks_by_health{health=\"missing\"} 0\n",
        "\ndfs_chunkserver_up{id=\"5\",address=\"10.0.3.15:9422\","
        "rack=\"r3\"} 0\n",
        "\ndfs_chunkserver_capacity_bytes{id=\"1\",address=\"10.0.1.11:9422\","
        "rack=\"r1\"} 7999376588800\n",
        "rack=\"<script>alert(\\\"x\\\")</script>\\\\&'\\n\x01\"}",
        "\ndfs_client_ops_total{op=\"lookup\"} 1000000\n",
        "\ndfs_client_ops_total{op=\"we\\\"ird\\\\op\\nname\"} 4\n",
        "\ndfs_alarm{alarm=\"chunkserver_down\",severity=\"warning\"} 1\n",
        "\ndfs_alarm{alarm=\"no_leader\",severity=\"critical\"} 0\n",
        "\n# TYPE dfs_chunkserver_errors_total counter\n",
    };
    for (size_t i = 0; i < sizeof(must) / sizeof(must[0]); i++)
        if (!strstr(m, must[i]))
            fail_msg("metrics lack %s", must[i]);
    free(m);
    status_snap_free(s);
}

/* ---- HTML ---------------------------------------------------------------- */

static void test_html_sections_and_values(void **state)
{
    (void)state;
    struct status_snap *s = fixture();
    char *h = render(render_html5, s);
    const char *must[] = {
        "<!DOCTYPE html>", "<meta http-equiv=\"refresh\" content=\"5\">",
        "prod-eu1", "Chunk health", "Masters", "Chunkservers", "Activity",
        "Recent events", "1,834,221", "40,217", "161,422",
        "<span class=\"badge s-decommissioning\">decommissioning</span>",
        "<span class=\"badge s-down\">down</span>", "<svg",
        "chunkserver 5 (10.0.3.15:9422) stopped heartbeating",
        "href=\"http://10.0.0.2:9425/\"", "</html>\n",
    };
    for (size_t i = 0; i < sizeof(must) / sizeof(must[0]); i++)
        if (!strstr(h, must[i]))
            fail_msg("page lacks %s", must[i]);
    /* self-contained: nothing loaded from elsewhere */
    assert_null(strstr(h, "<script"));
    assert_null(strstr(h, "src="));
    assert_null(strstr(h, "@import"));
    assert_null(strstr(h, "url("));
    assert_null(strstr(h, "follower</b>:"));
    const char *out = getenv("STATUS_HTML_OUT");
    if (out) {
        FILE *f = fopen(out, "w");
        assert_non_null(f);
        fputs(h, f);
        assert_int_equal(fclose(f), 0);
    }
    free(h);
    status_snap_free(s);
}

static void test_html_escapes_hostile_strings(void **state)
{
    (void)state;
    struct status_snap *s = fixture();
    snprintf(s->chunkservers[0].rack, sizeof(s->chunkservers[0].rack),
             "%s", HOSTILE);
    snprintf(s->chunkservers[1].address, sizeof(s->chunkservers[1].address),
             "\"><img src=x onerror=alert(1)>");
    snprintf(s->cluster, sizeof(s->cluster), "</title><script>");
    status_events_add(&s->events, T0, STATUS_EV_OTHER, "%s", HOSTILE);
    char *h = render(render_html5, s);
    assert_null(strstr(h, "<script"));
    assert_null(strstr(h, "<img"));
    assert_non_null(strstr(h, "&lt;script&gt;alert(&quot;x&quot;)"
                              "&lt;/script&gt;\\&amp;&#39;"));
    assert_non_null(strstr(h, "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
    assert_non_null(strstr(h, "&lt;/title&gt;&lt;script&gt;"));
    free(h);
    status_snap_free(s);
}

static void test_html_follower_links_leader_safely(void **state)
{
    (void)state;
    struct status_snap *s = fixture();
    s->self_id = 2;
    s->role = STATUS_ROLE_FOLLOWER;
    s->masters[0].self = false;
    s->masters[1].self = true;
    char *h = render(render_html5, s);
    assert_non_null(strstr(h, "This master is a <b>follower</b>"));
    assert_non_null(strstr(h, "The leader is master #1: <a href=\""
                              "http://10.0.0.1:9425/\">"));
    free(h);

    /* a leader URL that is not http(s) is shown, never linked */
    snprintf(s->masters[0].http, sizeof(s->masters[0].http),
             "javascript:alert(1)");
    h = render(render_html5, s);
    assert_null(strstr(h, "javascript:"));
    assert_non_null(strstr(h, "The leader is master #1: 10.0.0.1:9420"));
    free(h);

    s->leader_id = 0;
    h = render(render_html5, s);
    assert_non_null(strstr(h, "No leader is known right now."));
    assert_non_null(strstr(h, "no_leader"));
    free(h);
    status_snap_free(s);
}

static void test_html_empty_snapshot(void **state)
{
    (void)state;
    struct status_snap *s = status_snap_new(0, 0);
    assert_non_null(s);
    char *h = render(render_html5, s);
    assert_non_null(strstr(h, "No chunkserver known to this master."));
    assert_non_null(strstr(h, "Nothing has happened yet."));
    free(h);
    struct strbuf sb;
    strbuf_init(&sb, 0);
    assert_int_equal(status_render_html(s, 0, &sb), 0);
    assert_null(strstr(strbuf_str(&sb), "http-equiv"));
    strbuf_release(&sb);
    status_snap_free(s);
}

/* Every renderer reports a full buffer instead of returning half a page. */
static void test_render_reports_bounded_buffer(void **state)
{
    (void)state;
    struct status_snap *s = fixture();
    struct strbuf sb;
    strbuf_init(&sb, 1000);
    assert_int_equal(status_render_html(s, 5, &sb), -DFS_ETOOBIG);
    strbuf_release(&sb);
    assert_int_equal(status_render_json(s, &sb), -DFS_ETOOBIG);
    strbuf_release(&sb);
    assert_int_equal(status_render_metrics(s, &sb), -DFS_ETOOBIG);
    assert_null(strbuf_detach(&sb, NULL));
    strbuf_release(&sb);
    status_snap_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_validator_bites),
        cmocka_unit_test(test_prom_checker_bites),
        cmocka_unit_test(test_history_ring),
        cmocka_unit_test(test_events_ring_truncates),
        cmocka_unit_test(test_ops_counters),
        cmocka_unit_test(test_json_fields),
        cmocka_unit_test(test_json_follower_without_leader),
        cmocka_unit_test(test_json_escapes_hostile_strings),
        cmocka_unit_test(test_metrics_format),
        cmocka_unit_test(test_html_sections_and_values),
        cmocka_unit_test(test_html_escapes_hostile_strings),
        cmocka_unit_test(test_html_follower_links_leader_safely),
        cmocka_unit_test(test_html_empty_snapshot),
        cmocka_unit_test(test_render_reports_bounded_buffer),
    };
    return cmocka_run_group_tests_name("status", tests, NULL, NULL);
}
