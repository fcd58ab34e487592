/*
 * status: the snapshot value, its rings, the alarms derived from it, and
 * the three renderers (HTML page, JSON, Prometheus text).
 *
 * Owns: nothing between calls.  A snapshot is one heap block (the struct,
 * then its masters, then its chunkservers), so status_snap_free is one
 * free().
 *
 * Invariants:
 *  1. Renderers are pure: they read the snapshot and append to the strbuf;
 *     no clock, no globals.  Relative times ("3 s ago") are computed from
 *     snap->now_ms.
 *  2. Every string that came from outside (names, addresses, racks, event
 *     texts, op names) reaches the output only through html_esc, json_str
 *     or prom_label_value; nothing else escapes, so that is where to look.
 *  3. The page loads nothing: no scripts, fonts, images or links to other
 *     hosts except the leader's own status page, and that only when it is
 *     an http(s) URL.
 *  4. Alarms are computed once (status_alarms) and the page, JSON and
 *     metrics all show that one list.
 */
#include "status.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/strbuf.h"

/* A peer not heard from for this long is shown as unreachable. */
#define STATUS_CONTACT_ALARM_MS 5000
/* A chunkserver fuller than this (percent) raises an alarm. */
#define STATUS_DISK_ALARM_PCT 90

/* ---- snapshot and rings ------------------------------------------------ */

struct status_snap *status_snap_new(size_t nmasters, size_t ncs)
{
    size_t bytes = sizeof(struct status_snap) +
                   nmasters * sizeof(struct status_master) +
                   ncs * sizeof(struct status_chunkserver);
    struct status_snap *snap = calloc(1, bytes);
    if (!snap)
        return NULL;
    snap->masters = (struct status_master *)(snap + 1);
    snap->nmasters = nmasters;
    snap->chunkservers =
        (struct status_chunkserver *)(snap->masters + nmasters);
    snap->ncs = ncs;
    return snap;
}

void status_snap_free(struct status_snap *snap)
{
    free(snap);
}

void status_history_add(struct status_history *h,
                        const struct status_sample *sample)
{
    h->s[h->next] = *sample;
    h->next = (h->next + 1) % STATUS_HISTORY_MAX;
    if (h->count < STATUS_HISTORY_MAX)
        h->count++;
}

const struct status_sample *status_history_at(const struct status_history *h,
                                              size_t i)
{
    size_t first = (h->next + STATUS_HISTORY_MAX - h->count) %
                   STATUS_HISTORY_MAX;
    return &h->s[(first + i) % STATUS_HISTORY_MAX];
}

void status_events_add(struct status_events *ev, int64_t time_ms,
                       enum status_event_kind kind, const char *fmt, ...)
{
    struct status_event *e = &ev->e[ev->next];
    e->time_ms = time_ms;
    e->kind = kind;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->text, sizeof(e->text), fmt, ap);
    va_end(ap);
    ev->next = (ev->next + 1) % STATUS_EVENTS_MAX;
    if (ev->count < STATUS_EVENTS_MAX)
        ev->count++;
}

const struct status_event *status_events_at(const struct status_events *ev,
                                            size_t i)
{
    size_t first = (ev->next + STATUS_EVENTS_MAX - ev->count) %
                   STATUS_EVENTS_MAX;
    return &ev->e[(first + i) % STATUS_EVENTS_MAX];
}

int status_ops_add(struct status_ops *ops, const char *name, uint64_t n)
{
    for (size_t i = 0; i < ops->count; i++) {
        if (strncmp(ops->op[i].name, name, STATUS_NAME_MAX - 1) == 0) {
            ops->op[i].count += n;
            return 0;
        }
    }
    if (ops->count == STATUS_OPS_MAX)
        return -ENOSPC;
    struct status_op *op = &ops->op[ops->count++];
    snprintf(op->name, sizeof(op->name), "%s", name);
    op->count = n;
    return 0;
}

const char *status_role_name(enum status_role role)
{
    switch (role) {
    case STATUS_ROLE_FOLLOWER:  return "follower";
    case STATUS_ROLE_CANDIDATE: return "candidate";
    case STATUS_ROLE_LEADER:    return "leader";
    case STATUS_ROLE_LEARNER:   return "learner";
    case STATUS_ROLE_UNKNOWN:   break;
    }
    return "unknown";
}

const char *status_cs_state_name(enum status_cs_state state)
{
    switch (state) {
    case STATUS_CS_UP:              return "up";
    case STATUS_CS_DOWN:            return "down";
    case STATUS_CS_DECOMMISSIONING: return "decommissioning";
    case STATUS_CS_DECOMMISSIONED:  return "decommissioned";
    }
    return "down";
}

const char *status_event_kind_name(enum status_event_kind kind)
{
    switch (kind) {
    case STATUS_EV_LEADER:      return "leader";
    case STATUS_EV_CS_JOIN:     return "chunkserver-join";
    case STATUS_EV_CS_LEAVE:    return "chunkserver-leave";
    case STATUS_EV_REREPLICATE: return "re-replication";
    case STATUS_EV_CORRUPT:     return "corruption";
    case STATUS_EV_MEMBERSHIP:  return "membership";
    case STATUS_EV_OTHER:       break;
    }
    return "other";
}

/* ---- derived values ---------------------------------------------------- */

struct status_space {
    uint64_t total;
    uint64_t used;
    uint64_t free;
};

/* Space on chunkservers that take data (up and not decommissioning). */
static struct status_space status_space(const struct status_snap *snap)
{
    struct status_space sp = {0};
    for (size_t i = 0; i < snap->ncs; i++) {
        const struct status_chunkserver *cs = &snap->chunkservers[i];
        if (cs->state != STATUS_CS_UP)
            continue;
        sp.total += cs->bytes_total;
        sp.used += cs->bytes_used < cs->bytes_total ? cs->bytes_used
                                                    : cs->bytes_total;
    }
    sp.free = sp.total - sp.used;
    return sp;
}

static unsigned pct(uint64_t part, uint64_t whole)
{
    if (whole == 0)
        return 0;
    if (part >= whole)
        return 100;
    return (unsigned)((double)part * 100.0 / (double)whole);
}

static const struct status_master *status_leader(const struct status_snap *snap)
{
    if (snap->leader_id == 0)
        return NULL;
    for (size_t i = 0; i < snap->nmasters; i++)
        if (snap->masters[i].id == snap->leader_id)
            return &snap->masters[i];
    return NULL;
}

static uint64_t status_ops_total(const struct status_snap *snap)
{
    uint64_t n = 0;
    for (size_t i = 0; i < snap->ops.count; i++)
        n += snap->ops.op[i].count;
    return n;
}

/* Entries the peer is behind the commit index, when this master knows. */
static bool master_lag(const struct status_snap *snap,
                       const struct status_master *m, uint64_t *lag)
{
    if (m->self) {
        *lag = snap->commit_index > snap->applied_index
                   ? snap->commit_index - snap->applied_index : 0;
        return true;
    }
    if (snap->role != STATUS_ROLE_LEADER)
        return false;
    *lag = snap->commit_index > m->match_index
               ? snap->commit_index - m->match_index : 0;
    return true;
}

/* ---- alarms ------------------------------------------------------------ */

enum alarm_id {
    ALARM_NO_LEADER,
    ALARM_CHUNKS_MISSING,
    ALARM_CHUNKS_CORRUPT,
    ALARM_UNDER_REPLICATED,
    ALARM_CS_DOWN,
    ALARM_MASTER_UNREACHABLE,
    ALARM_DISK_FULL,
    ALARM_SAFE_MODE,
    ALARM_COUNT
};

struct alarm_def {
    const char *code;
    const char *severity;            /* "critical", "warning", "info" */
};

static const struct alarm_def alarm_defs[ALARM_COUNT] = {
    [ALARM_NO_LEADER]          = {"no_leader", "critical"},
    [ALARM_CHUNKS_MISSING]     = {"chunks_missing", "critical"},
    [ALARM_CHUNKS_CORRUPT]     = {"chunks_corrupt", "warning"},
    [ALARM_UNDER_REPLICATED]   = {"chunks_under_replicated", "warning"},
    [ALARM_CS_DOWN]            = {"chunkserver_down", "warning"},
    [ALARM_MASTER_UNREACHABLE] = {"master_unreachable", "warning"},
    [ALARM_DISK_FULL]          = {"chunkserver_disk_full", "warning"},
    [ALARM_SAFE_MODE]          = {"safe_mode", "info"},
};

struct status_alarms {
    bool on[ALARM_COUNT];
    char text[ALARM_COUNT][160];
};

static void alarm_set(struct status_alarms *a, enum alarm_id id,
                      const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void alarm_set(struct status_alarms *a, enum alarm_id id,
                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->text[id], sizeof(a->text[id]), fmt, ap);
    va_end(ap);
    a->on[id] = true;
}

static void status_alarms_cs(const struct status_snap *snap,
                             struct status_alarms *a)
{
    size_t down = 0, full = 0;
    for (size_t i = 0; i < snap->ncs; i++) {
        const struct status_chunkserver *cs = &snap->chunkservers[i];
        if (cs->state == STATUS_CS_DOWN)
            down++;
        else if (pct(cs->bytes_used, cs->bytes_total) >= STATUS_DISK_ALARM_PCT)
            full++;
    }
    if (down)
        alarm_set(a, ALARM_CS_DOWN, "%zu chunkserver%s down", down,
                  down == 1 ? " is" : "s are");
    if (full)
        alarm_set(a, ALARM_DISK_FULL, "%zu chunkserver%s over %d%% full",
                  full, full == 1 ? " is" : "s are", STATUS_DISK_ALARM_PCT);
}

static void status_alarms_masters(const struct status_snap *snap,
                                  struct status_alarms *a)
{
    size_t unreachable = 0;
    for (size_t i = 0; i < snap->nmasters; i++) {
        const struct status_master *m = &snap->masters[i];
        if (!m->self && (m->contact_age_ms < 0 ||
                         m->contact_age_ms > STATUS_CONTACT_ALARM_MS))
            unreachable++;
    }
    if (unreachable && snap->role == STATUS_ROLE_LEADER)
        alarm_set(a, ALARM_MASTER_UNREACHABLE,
                  "%zu master%s not answered for over %d s", unreachable,
                  unreachable == 1 ? " has" : "s have",
                  STATUS_CONTACT_ALARM_MS / 1000);
}

static void status_alarms(const struct status_snap *snap,
                          struct status_alarms *a)
{
    memset(a, 0, sizeof(*a));
    const struct status_chunks *c = &snap->chunks;
    if (snap->leader_id == 0)
        alarm_set(a, ALARM_NO_LEADER, "no leader: metadata is read-only "
                  "until a majority of masters elects one");
    if (c->missing)
        alarm_set(a, ALARM_CHUNKS_MISSING, "%" PRIu64 " chunk%s no readable "
                  "replica", c->missing, c->missing == 1 ? " has" : "s have");
    if (c->corrupt)
        alarm_set(a, ALARM_CHUNKS_CORRUPT, "%" PRIu64 " chunk%s a corrupt "
                  "replica", c->corrupt, c->corrupt == 1 ? " has" : "s have");
    if (c->under_replicated)
        alarm_set(a, ALARM_UNDER_REPLICATED, "%" PRIu64 " chunk%s below "
                  "%s replication goal (%" PRIu64 " being copied)",
                  c->under_replicated, c->under_replicated == 1 ? " is" : "s are",
                  c->under_replicated == 1 ? "its" : "their", c->rereplicating);
    status_alarms_cs(snap, a);
    status_alarms_masters(snap, a);
    if (snap->safe_mode)
        alarm_set(a, ALARM_SAFE_MODE, "safe mode: waiting for chunkserver "
                  "reports before re-replicating or deleting");
}

/* ---- escaping ---------------------------------------------------------- */

static void html_esc(struct strbuf *sb, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':  strbuf_adds(sb, "&amp;"); break;
        case '<':  strbuf_adds(sb, "&lt;"); break;
        case '>':  strbuf_adds(sb, "&gt;"); break;
        case '"':  strbuf_adds(sb, "&quot;"); break;
        case '\'': strbuf_adds(sb, "&#39;"); break;
        default:   strbuf_addc(sb, *s); break;
        }
    }
}

/* Length of the valid UTF-8 sequence at s, or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s)
{
    size_t n;
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4;
    else
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    /* overlong 3/4-byte forms, surrogates, and past U+10FFFF */
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0) ||
        (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))
        return 0;
    return n;
}

/* A JSON string: escapes quotes and controls, replaces bad UTF-8. */
static void json_str(struct strbuf *sb, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    strbuf_addc(sb, '"');
    while (*s) {
        size_t n = utf8_len(s);
        if (n == 0) {
            strbuf_adds(sb, "\\ufffd");
            s++;
        } else if (*s == '"' || *s == '\\') {
            strbuf_addc(sb, '\\');
            strbuf_addc(sb, (char)*s++);
        } else if (*s < 0x20 || *s == 0x7f) {
            strbuf_addf(sb, "\\u%04x", *s++);
        } else if (*s == '<') {
            /* keeps "</script>" inert should anyone embed the JSON */
            strbuf_adds(sb, "\\u003c");
            s++;
        } else {
            strbuf_add(sb, s, n);
            s += n;
        }
    }
    strbuf_addc(sb, '"');
}

/* A Prometheus label value: backslash, double quote and newline escaped. */
static void prom_label_value(struct strbuf *sb, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '\\': strbuf_adds(sb, "\\\\"); break;
        case '"':  strbuf_adds(sb, "\\\""); break;
        case '\n': strbuf_adds(sb, "\\n"); break;
        default:   strbuf_addc(sb, *s); break;
        }
    }
}

/* ---- JSON -------------------------------------------------------------- */

#define JW_DEPTH 8

/* A JSON writer that places the commas. */
struct jw {
    struct strbuf *sb;
    int depth;
    bool nonempty[JW_DEPTH];         /* a value was written at that depth */
};

static void jw_key(struct jw *w, const char *key)
{
    if (w->nonempty[w->depth])
        strbuf_addc(w->sb, ',');
    w->nonempty[w->depth] = true;
    if (key) {
        json_str(w->sb, key);
        strbuf_addc(w->sb, ':');
    }
}

static void jw_open(struct jw *w, const char *key, char bracket)
{
    jw_key(w, key);
    strbuf_addc(w->sb, bracket);
    if (w->depth + 1 < JW_DEPTH)
        w->nonempty[++w->depth] = false;
}

static void jw_close(struct jw *w, char bracket)
{
    if (w->depth > 0)
        w->depth--;
    strbuf_addc(w->sb, bracket);
}

static void jw_u64(struct jw *w, const char *key, uint64_t v)
{
    jw_key(w, key);
    strbuf_addf(w->sb, "%" PRIu64, v);
}

static void jw_i64(struct jw *w, const char *key, int64_t v)
{
    jw_key(w, key);
    strbuf_addf(w->sb, "%" PRId64, v);
}

static void jw_num(struct jw *w, const char *key, double v)
{
    jw_key(w, key);
    strbuf_addf(w->sb, "%.3f", v);
}

static void jw_str(struct jw *w, const char *key, const char *v)
{
    jw_key(w, key);
    json_str(w->sb, v);
}

static void jw_bool(struct jw *w, const char *key, bool v)
{
    jw_key(w, key);
    strbuf_adds(w->sb, v ? "true" : "false");
}

static void json_masters(struct jw *w, const struct status_snap *snap)
{
    jw_open(w, "masters", '[');
    for (size_t i = 0; i < snap->nmasters; i++) {
        const struct status_master *m = &snap->masters[i];
        uint64_t lag;
        jw_open(w, NULL, '{');
        jw_u64(w, "id", m->id);
        jw_str(w, "address", m->address);
        jw_str(w, "role", status_role_name(m->role));
        jw_str(w, "http", m->http);
        jw_bool(w, "self", m->self);
        jw_i64(w, "contact_age_ms", m->contact_age_ms);
        jw_u64(w, "match_index", m->match_index);
        if (master_lag(snap, m, &lag))
            jw_u64(w, "log_lag", lag);
        jw_u64(w, "snapshot_index", m->snapshot_index);
        jw_close(w, '}');
    }
    jw_close(w, ']');
}

static void json_chunkservers(struct jw *w, const struct status_snap *snap)
{
    jw_open(w, "chunkservers", '[');
    for (size_t i = 0; i < snap->ncs; i++) {
        const struct status_chunkserver *cs = &snap->chunkservers[i];
        jw_open(w, NULL, '{');
        jw_u64(w, "id", cs->id);
        jw_str(w, "address", cs->address);
        jw_str(w, "rack", cs->rack);
        jw_str(w, "state", status_cs_state_name(cs->state));
        jw_u64(w, "bytes_total", cs->bytes_total);
        jw_u64(w, "bytes_used", cs->bytes_used);
        jw_u64(w, "chunks", cs->chunks);
        jw_u64(w, "load", cs->load);
        jw_i64(w, "heartbeat_age_ms", cs->heartbeat_age_ms);
        jw_u64(w, "errors", cs->errors_total);
        jw_close(w, '}');
    }
    jw_close(w, ']');
}

static void json_chunks(struct jw *w, const struct status_chunks *c)
{
    jw_open(w, "chunks", '{');
    jw_u64(w, "total", c->total);
    jw_u64(w, "healthy", c->healthy);
    jw_u64(w, "under_replicated", c->under_replicated);
    jw_u64(w, "missing", c->missing);
    jw_u64(w, "corrupt", c->corrupt);
    jw_u64(w, "rereplicating", c->rereplicating);
    jw_close(w, '}');
}

static void json_activity(struct jw *w, const struct status_snap *snap)
{
    jw_open(w, "activity", '[');
    for (size_t i = 0; i < snap->history.count; i++) {
        const struct status_sample *s = status_history_at(&snap->history, i);
        jw_open(w, NULL, '{');
        jw_i64(w, "time_ms", s->time_ms);
        jw_num(w, "ops_per_second", (double)s->ops / STATUS_SAMPLE_SECONDS);
        jw_num(w, "read_bytes_per_second",
               (double)s->read_bytes / STATUS_SAMPLE_SECONDS);
        jw_num(w, "write_bytes_per_second",
               (double)s->write_bytes / STATUS_SAMPLE_SECONDS);
        jw_close(w, '}');
    }
    jw_close(w, ']');
}

static void json_events(struct jw *w, const struct status_snap *snap)
{
    jw_open(w, "events", '[');
    for (size_t i = snap->events.count; i-- > 0;) {
        const struct status_event *e = status_events_at(&snap->events, i);
        jw_open(w, NULL, '{');
        jw_i64(w, "time_ms", e->time_ms);
        jw_str(w, "kind", status_event_kind_name(e->kind));
        jw_str(w, "text", e->text);
        jw_close(w, '}');
    }
    jw_close(w, ']');
}

static void json_alarms(struct jw *w, const struct status_alarms *a)
{
    jw_open(w, "alarms", '[');
    for (int i = 0; i < ALARM_COUNT; i++) {
        if (!a->on[i])
            continue;
        jw_open(w, NULL, '{');
        jw_str(w, "code", alarm_defs[i].code);
        jw_str(w, "severity", alarm_defs[i].severity);
        jw_str(w, "text", a->text[i]);
        jw_close(w, '}');
    }
    jw_close(w, ']');
}

static void json_counters(struct jw *w, const struct status_snap *snap)
{
    jw_open(w, "ops", '{');
    for (size_t i = 0; i < snap->ops.count; i++)
        jw_u64(w, snap->ops.op[i].name, snap->ops.op[i].count);
    jw_close(w, '}');
    jw_u64(w, "read_bytes_total", snap->read_bytes_total);
    jw_u64(w, "write_bytes_total", snap->write_bytes_total);
    jw_u64(w, "rereplications_total", snap->rereplications_total);
    jw_u64(w, "corrupt_replicas_total", snap->corrupt_replicas_total);
}

int status_render_json(const struct status_snap *snap, struct strbuf *out)
{
    struct jw w = {.sb = out};
    struct status_alarms alarms;
    struct status_space sp = status_space(snap);
    const struct status_master *leader = status_leader(snap);

    status_alarms(snap, &alarms);
    jw_open(&w, NULL, '{');
    jw_str(&w, "cluster", snap->cluster);
    jw_str(&w, "version", snap->version);
    jw_u64(&w, "chunk_size", snap->chunk_size);
    jw_i64(&w, "time_ms", snap->now_ms);
    jw_i64(&w, "start_time_ms", snap->start_ms);
    jw_u64(&w, "self", snap->self_id);
    jw_str(&w, "role", status_role_name(snap->role));
    jw_key(&w, "leader");
    if (snap->leader_id)
        strbuf_addf(out, "%" PRIu64, snap->leader_id);
    else
        strbuf_adds(out, "null");
    jw_str(&w, "leader_address", leader ? leader->address : "");
    jw_str(&w, "leader_http", leader ? leader->http : "");
    jw_u64(&w, "term", snap->term);
    jw_u64(&w, "commit_index", snap->commit_index);
    jw_u64(&w, "applied_index", snap->applied_index);
    jw_u64(&w, "snapshot_index", snap->snapshot_index);
    char digest[17];
    snprintf(digest, sizeof(digest), "%016" PRIx64, snap->state_digest);
    jw_str(&w, "digest", digest);
    jw_u64(&w, "digest_index", snap->digest_index);
    jw_u64(&w, "leader_changes", snap->leader_changes_total);
    jw_bool(&w, "safe_mode", snap->safe_mode);
    jw_u64(&w, "files", snap->files);
    jw_u64(&w, "directories", snap->directories);
    jw_u64(&w, "bytes_logical", snap->bytes_logical);
    jw_u64(&w, "bytes_physical", snap->bytes_physical);
    jw_open(&w, "space", '{');
    jw_u64(&w, "total", sp.total);
    jw_u64(&w, "used", sp.used);
    jw_u64(&w, "free", sp.free);
    jw_close(&w, '}');
    json_chunks(&w, &snap->chunks);
    json_masters(&w, snap);
    json_chunkservers(&w, snap);
    json_counters(&w, snap);
    json_activity(&w, snap);
    json_events(&w, snap);
    json_alarms(&w, &alarms);
    jw_close(&w, '}');
    strbuf_addc(out, '\n');
    return strbuf_error(out);
}

/* ---- Prometheus -------------------------------------------------------- */

static void prom_family(struct strbuf *sb, const char *name, const char *type,
                        const char *help)
{
    strbuf_addf(sb, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A scalar that is a uint64_t field of the snapshot. */
struct prom_scalar {
    const char *name;
    const char *type;
    const char *help;
    size_t offset;
};

#define SNAP_FIELD(f) offsetof(struct status_snap, f)

static const struct prom_scalar prom_scalars[] = {
    {"dfs_raft_term", "gauge", "Current Raft term.", SNAP_FIELD(term)},
    {"dfs_raft_commit_index", "gauge", "Highest log index known committed.",
     SNAP_FIELD(commit_index)},
    {"dfs_raft_applied_index", "gauge",
     "Highest log index applied to the state machine.",
     SNAP_FIELD(applied_index)},
    {"dfs_raft_snapshot_index", "gauge", "Log index of the latest snapshot.",
     SNAP_FIELD(snapshot_index)},
    {"dfs_raft_leader_changes_total", "counter",
     "Leader changes seen by this master since it started.",
     SNAP_FIELD(leader_changes_total)},
    {"dfs_raft_leader_id", "gauge", "Id of the current leader (0: none).",
     SNAP_FIELD(leader_id)},
    {"dfs_namespace_files", "gauge", "Regular files in the namespace.",
     SNAP_FIELD(files)},
    {"dfs_namespace_directories", "gauge", "Directories in the namespace.",
     SNAP_FIELD(directories)},
    {"dfs_logical_bytes", "gauge", "Sum of all file sizes.",
     SNAP_FIELD(bytes_logical)},
    {"dfs_physical_bytes", "gauge", "Bytes stored, counting every replica.",
     SNAP_FIELD(bytes_physical)},
    {"dfs_chunks", "gauge", "Chunks in the chunk table.",
     SNAP_FIELD(chunks.total)},
    {"dfs_client_read_bytes_total", "counter",
     "Bytes clients read, as reported to this master.",
     SNAP_FIELD(read_bytes_total)},
    {"dfs_client_write_bytes_total", "counter",
     "Bytes clients wrote, as committed through this master.",
     SNAP_FIELD(write_bytes_total)},
    {"dfs_rereplications_total", "counter",
     "Chunk copies made to restore a replication goal.",
     SNAP_FIELD(rereplications_total)},
    {"dfs_corrupt_replicas_total", "counter",
     "Replicas found corrupt (checksum mismatch).",
     SNAP_FIELD(corrupt_replicas_total)},
};

static void prom_scalars_render(struct strbuf *sb,
                                const struct status_snap *snap)
{
    for (size_t i = 0; i < sizeof(prom_scalars) / sizeof(prom_scalars[0]);
         i++) {
        const struct prom_scalar *m = &prom_scalars[i];
        uint64_t v;
        memcpy(&v, (const char *)snap + m->offset, sizeof(v));
        prom_family(sb, m->name, m->type, m->help);
        strbuf_addf(sb, "%s %" PRIu64 "\n", m->name, v);
    }
    prom_family(sb, "dfs_safe_mode", "gauge",
                "1 while the leader waits for chunk reports.");
    strbuf_addf(sb, "dfs_safe_mode %d\n", snap->safe_mode ? 1 : 0);
    prom_family(sb, "dfs_start_time_seconds", "gauge",
                "Unix time this master started.");
    strbuf_addf(sb, "dfs_start_time_seconds %.3f\n",
                (double)snap->start_ms / 1000.0);
}

static void prom_role(struct strbuf *sb, const struct status_snap *snap)
{
    static const enum status_role roles[] = {
        STATUS_ROLE_FOLLOWER, STATUS_ROLE_CANDIDATE, STATUS_ROLE_LEADER,
        STATUS_ROLE_LEARNER,
    };
    prom_family(sb, "dfs_raft_role", "gauge",
                "1 for this master's current Raft role, 0 for the others.");
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
        strbuf_addf(sb, "dfs_raft_role{role=\"%s\"} %d\n",
                    status_role_name(roles[i]), snap->role == roles[i]);
}

static void prom_chunk_health(struct strbuf *sb, const struct status_chunks *c)
{
    const struct { const char *state; uint64_t v; } rows[] = {
        {"healthy", c->healthy}, {"under_replicated", c->under_replicated},
        {"missing", c->missing}, {"corrupt", c->corrupt},
        {"rereplicating", c->rereplicating},
    };
    prom_family(sb, "dfs_chunks_by_health", "gauge",
                "Chunks by health (rereplicating is a subset of "
                "under_replicated).");
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        strbuf_addf(sb, "dfs_chunks_by_health{health=\"%s\"} %" PRIu64 "\n",
                    rows[i].state, rows[i].v);
}

static void prom_space(struct strbuf *sb, const struct status_snap *snap)
{
    struct status_space sp = status_space(snap);
    prom_family(sb, "dfs_space_bytes", "gauge",
                "Space on chunkservers that are up, by kind.");
    strbuf_addf(sb, "dfs_space_bytes{kind=\"total\"} %" PRIu64 "\n", sp.total);
    strbuf_addf(sb, "dfs_space_bytes{kind=\"used\"} %" PRIu64 "\n", sp.used);
    strbuf_addf(sb, "dfs_space_bytes{kind=\"free\"} %" PRIu64 "\n", sp.free);
}

static void prom_ops(struct strbuf *sb, const struct status_snap *snap)
{
    prom_family(sb, "dfs_client_ops_total", "counter",
                "Client requests handled, by operation.");
    for (size_t i = 0; i < snap->ops.count; i++) {
        strbuf_adds(sb, "dfs_client_ops_total{op=\"");
        prom_label_value(sb, snap->ops.op[i].name);
        strbuf_addf(sb, "\"} %" PRIu64 "\n", snap->ops.op[i].count);
    }
}

/* Per-chunkserver series: one value each, labelled id, address, rack. */
struct prom_cs_metric {
    const char *name;
    const char *type;
    const char *help;
    double (*value)(const struct status_chunkserver *cs);
};

static double cs_up(const struct status_chunkserver *cs)
{
    return cs->state != STATUS_CS_DOWN;
}
static double cs_decom(const struct status_chunkserver *cs)
{
    return cs->state == STATUS_CS_DECOMMISSIONING;
}
static double cs_total(const struct status_chunkserver *cs)
{
    return (double)cs->bytes_total;
}
static double cs_used(const struct status_chunkserver *cs)
{
    return (double)cs->bytes_used;
}
static double cs_chunks(const struct status_chunkserver *cs)
{
    return (double)cs->chunks;
}
static double cs_load(const struct status_chunkserver *cs)
{
    return cs->load;
}
static double cs_hb_age(const struct status_chunkserver *cs)
{
    return cs->heartbeat_age_ms < 0 ? -1.0
                                    : (double)cs->heartbeat_age_ms / 1000.0;
}
static double cs_errors(const struct status_chunkserver *cs)
{
    return (double)cs->errors_total;
}

static const struct prom_cs_metric prom_cs_metrics[] = {
    {"dfs_chunkserver_up", "gauge", "1 while the chunkserver heartbeats.",
     cs_up},
    {"dfs_chunkserver_decommissioning", "gauge",
     "1 while the chunkserver is being drained.", cs_decom},
    {"dfs_chunkserver_capacity_bytes", "gauge", "Disk space for chunks.",
     cs_total},
    {"dfs_chunkserver_used_bytes", "gauge", "Disk space used.", cs_used},
    {"dfs_chunkserver_chunks", "gauge", "Chunk replicas held.", cs_chunks},
    {"dfs_chunkserver_load", "gauge", "Requests in flight at last heartbeat.",
     cs_load},
    {"dfs_chunkserver_heartbeat_age_seconds", "gauge",
     "Seconds since the last heartbeat (-1: never).", cs_hb_age},
    {"dfs_chunkserver_errors_total", "counter",
     "I/O and checksum errors the chunkserver reported.", cs_errors},
};

static void prom_cs_labels(struct strbuf *sb,
                           const struct status_chunkserver *cs)
{
    strbuf_addf(sb, "{id=\"%" PRIu32 "\",address=\"", cs->id);
    prom_label_value(sb, cs->address);
    strbuf_adds(sb, "\",rack=\"");
    prom_label_value(sb, cs->rack);
    strbuf_adds(sb, "\"}");
}

static void prom_chunkservers(struct strbuf *sb,
                              const struct status_snap *snap)
{
    for (size_t m = 0; m < sizeof(prom_cs_metrics) / sizeof(prom_cs_metrics[0]);
         m++) {
        const struct prom_cs_metric *pm = &prom_cs_metrics[m];
        prom_family(sb, pm->name, pm->type, pm->help);
        for (size_t i = 0; i < snap->ncs; i++) {
            strbuf_adds(sb, pm->name);
            prom_cs_labels(sb, &snap->chunkservers[i]);
            strbuf_addf(sb, " %.17g\n", pm->value(&snap->chunkservers[i]));
        }
    }
}

static void prom_masters(struct strbuf *sb, const struct status_snap *snap)
{
    prom_family(sb, "dfs_raft_peer_contact_age_seconds", "gauge",
                "Seconds since this master last heard from each peer "
                "(-1: never).");
    for (size_t i = 0; i < snap->nmasters; i++) {
        const struct status_master *m = &snap->masters[i];
        if (m->self)
            continue;
        strbuf_addf(sb, "dfs_raft_peer_contact_age_seconds{id=\"%" PRIu64
                    "\",address=\"", m->id);
        prom_label_value(sb, m->address);
        strbuf_addf(sb, "\"} %.3f\n", m->contact_age_ms < 0
                    ? -1.0 : (double)m->contact_age_ms / 1000.0);
    }
    prom_family(sb, "dfs_raft_peer_match_index", "gauge",
                "Highest log index known replicated on each peer "
                "(leader only).");
    for (size_t i = 0; i < snap->nmasters && snap->role == STATUS_ROLE_LEADER;
         i++) {
        const struct status_master *m = &snap->masters[i];
        strbuf_addf(sb, "dfs_raft_peer_match_index{id=\"%" PRIu64
                    "\",address=\"", m->id);
        prom_label_value(sb, m->address);
        strbuf_addf(sb, "\"} %" PRIu64 "\n",
                    m->self ? snap->commit_index : m->match_index);
    }
}

static void prom_alarms(struct strbuf *sb, const struct status_alarms *a)
{
    prom_family(sb, "dfs_alarm", "gauge",
                "1 while the alarm is raised (see docs/STATUS.md).");
    for (int i = 0; i < ALARM_COUNT; i++)
        strbuf_addf(sb, "dfs_alarm{alarm=\"%s\",severity=\"%s\"} %d\n",
                    alarm_defs[i].code, alarm_defs[i].severity, a->on[i]);
}

int status_render_metrics(const struct status_snap *snap, struct strbuf *out)
{
    struct status_alarms alarms;
    status_alarms(snap, &alarms);
    prom_family(out, "dfs_master_info", "gauge",
                "Constant 1, labelled with this master's id and version.");
    strbuf_addf(out, "dfs_master_info{id=\"%" PRIu64 "\",version=\"",
                snap->self_id);
    prom_label_value(out, snap->version);
    strbuf_adds(out, "\",cluster=\"");
    prom_label_value(out, snap->cluster);
    strbuf_adds(out, "\"} 1\n");
    prom_scalars_render(out, snap);
    prom_role(out, snap);
    prom_masters(out, snap);
    prom_chunk_health(out, &snap->chunks);
    prom_space(out, snap);
    prom_chunkservers(out, snap);
    prom_ops(out, snap);
    prom_alarms(out, &alarms);
    return strbuf_error(out);
}

/* ---- HTML: formatting --------------------------------------------------- */

struct fmt { char s[48]; };

static struct fmt fmt_bytes(uint64_t v)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB",
                                        "PiB", "EiB"};
    struct fmt f;
    double x = (double)v;
    size_t u = 0;
    while (x >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
        x /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(f.s, sizeof(f.s), "%" PRIu64 " B", v);
    else
        snprintf(f.s, sizeof(f.s), x < 10 ? "%.2f %s" : x < 100 ? "%.1f %s"
                 : "%.0f %s", x, units[u]);
    return f;
}

/* 1234567 -> "1,234,567" */
static struct fmt fmt_count(uint64_t v)
{
    char digits[24];
    struct fmt f;
    int n = snprintf(digits, sizeof(digits), "%" PRIu64, v);
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            f.s[o++] = ',';
        f.s[o++] = digits[i];
    }
    f.s[o] = '\0';
    return f;
}

static struct fmt fmt_age(int64_t ms)
{
    struct fmt f;
    if (ms < 0)
        snprintf(f.s, sizeof(f.s), "never");
    else if (ms < 1000)
        snprintf(f.s, sizeof(f.s), "%" PRId64 " ms ago", ms);
    else if (ms < 10000)
        snprintf(f.s, sizeof(f.s), "%.1f s ago", (double)ms / 1000.0);
    else if (ms < 120000)
        snprintf(f.s, sizeof(f.s), "%" PRId64 " s ago", ms / 1000);
    else if (ms < 7200000)
        snprintf(f.s, sizeof(f.s), "%" PRId64 " min ago", ms / 60000);
    else
        snprintf(f.s, sizeof(f.s), "%" PRId64 " h ago", ms / 3600000);
    return f;
}

static struct fmt fmt_uptime(int64_t ms)
{
    struct fmt f;
    int64_t s = ms < 0 ? 0 : ms / 1000;
    if (s < 3600)
        snprintf(f.s, sizeof(f.s), "%" PRId64 "m %" PRId64 "s", s / 60, s % 60);
    else if (s < 86400)
        snprintf(f.s, sizeof(f.s), "%" PRId64 "h %" PRId64 "m", s / 3600,
                 s / 60 % 60);
    else
        snprintf(f.s, sizeof(f.s), "%" PRId64 "d %" PRId64 "h", s / 86400,
                 s / 3600 % 24);
    return f;
}

/* A share as "99.9%" (HTML), with more digits for small non-zero ones. */
static struct fmt fmt_share(uint64_t part, uint64_t whole)
{
    struct fmt f;
    double p = whole ? (double)part * 100.0 / (double)whole : 0.0;
    if (p > 0 && p < 0.01)
        snprintf(f.s, sizeof(f.s), "&lt;0.01%%");
    else
        snprintf(f.s, sizeof(f.s), p == 0 ? "0%%" : p < 1 ? "%.2f%%"
                 : "%.1f%%", p);
    return f;
}

/* Wall clock as "YYYY-MM-DD HH:MM:SS" (with_date) or "HH:MM:SS", UTC. */
static struct fmt fmt_clock(int64_t ms, bool with_date)
{
    struct fmt f;
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        snprintf(f.s, sizeof(f.s), "?");
        return f;
    }
    strftime(f.s, sizeof(f.s), with_date ? "%Y-%m-%d %H:%M:%S" : "%H:%M:%S",
             &tm);
    return f;
}

/* ---- HTML: page parts ---------------------------------------------------- */

static const char page_css[] =
    ":root{--bg:#f3f5f8;--card:#fff;--ink:#1b2430;--mute:#677284;"
    "--line:#e2e7ee;--acc:#2563eb;--ok:#16a34a;--warn:#d97706;--bad:#dc2626;"
    "--vio:#9333ea;--info:#0e7490}"
    "*{box-sizing:border-box}"
    "body{margin:0;background:var(--bg);color:var(--ink);font:13px/1.45 "
    "system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,"
    "sans-serif}"
    "a{color:var(--acc);text-decoration:none}a:hover{text-decoration:underline}"
    "header{background:#0f172a;color:#cbd5e1;display:flex;align-items:center;"
    "gap:12px;padding:10px 22px;flex-wrap:wrap}"
    ".logo{font-weight:800;font-size:17px;color:#fff;letter-spacing:.5px}"
    ".logo span{color:#60a5fa}"
    ".cl{font-size:15px;font-weight:600;color:#f1f5f9}"
    "header .meta{margin-left:auto;font-size:12px;color:#94a3b8}"
    "header .meta b{color:#e2e8f0;font-weight:600}"
    ".badge{display:inline-block;padding:1px 8px;border-radius:9px;"
    "font-size:11px;font-weight:600;text-transform:uppercase;"
    "letter-spacing:.4px;white-space:nowrap}"
    ".r-leader,.s-up{background:#dcfce7;color:#166534}"
    ".r-follower{background:#e0e7ff;color:#3730a3}"
    ".r-candidate,.s-decommissioning{background:#fef3c7;color:#92400e}"
    ".r-learner,.r-unknown,.s-decommissioned{background:#e5e7eb;color:#374151}"
    ".s-down{background:#fee2e2;color:#991b1b}"
    "main{padding:14px 22px;max-width:1480px;margin:0 auto}"
    ".banner{background:#eef2ff;border:1px solid #c7d2fe;border-radius:8px;"
    "padding:9px 14px;margin-bottom:12px;color:#312e81}"
    ".alarm{border-left:4px solid;border-radius:6px;padding:5px 12px;"
    "margin-bottom:5px;display:flex;gap:10px;align-items:center}"
    ".alarm b{text-transform:uppercase;font-size:11px;letter-spacing:.4px;"
    "min-width:62px}"
    ".a-critical{border-color:var(--bad);background:#fef2f2;color:#7f1d1d}"
    ".a-warning{border-color:var(--warn);background:#fffbeb;color:#78350f}"
    ".a-info{border-color:var(--info);background:#ecfeff;color:#164e63}"
    ".allok{border-left:4px solid var(--ok);background:#f0fdf4;color:#14532d;"
    "border-radius:6px;padding:7px 12px;margin-bottom:6px}"
    ".cards{display:grid;grid-template-columns:repeat(auto-fit,"
    "minmax(136px,1fr));gap:10px;margin:10px 0 12px}"
    ".card{background:var(--card);border:1px solid var(--line);"
    "border-radius:8px;padding:9px 12px}"
    ".k{color:var(--mute);font-size:11px;text-transform:uppercase;"
    "letter-spacing:.5px}"
    ".v{font-size:20px;font-weight:650;margin:1px 0;"
    "font-variant-numeric:tabular-nums;white-space:nowrap;overflow:hidden;"
    "text-overflow:ellipsis}"
    ".sub{color:var(--mute);font-size:12px;white-space:nowrap;overflow:hidden;"
    "text-overflow:ellipsis}"
    ".grid{display:grid;grid-template-columns:minmax(0,2fr) minmax(0,3fr);"
    "gap:12px}"
    ".panel{background:var(--card);border:1px solid var(--line);"
    "border-radius:8px;padding:11px 14px;margin-bottom:12px;min-width:0}"
    ".panel h2{font-size:12px;margin:0 0 9px;text-transform:uppercase;"
    "letter-spacing:.6px;color:#334155}"
    ".panel h2 .mute{text-transform:none;letter-spacing:0;font-weight:400}"
    "table{width:100%;border-collapse:collapse;"
    "font-variant-numeric:tabular-nums}"
    "th{text-align:left;font-weight:600;color:var(--mute);font-size:11px;"
    "text-transform:uppercase;letter-spacing:.3px;padding:4px 7px;"
    "border-bottom:1px solid var(--line)}"
    "td{padding:5px 7px;border-bottom:1px solid #eef1f5;white-space:nowrap}"
    "tr:last-child td{border-bottom:0}"
    ".n{text-align:right}.mute{color:var(--mute)}.err{color:var(--bad);"
    "font-weight:600}"
    ".bar{display:inline-block;vertical-align:middle;width:110px;height:8px;"
    "background:#e8ecf2;border-radius:4px;overflow:hidden;margin-right:8px}"
    ".bar i{display:block;height:100%;background:var(--acc)}"
    ".bar i.hi{background:var(--warn)}.bar i.full{background:var(--bad)}"
    ".wide{width:100%;height:10px;margin:6px 0 2px}"
    ".stack{display:flex;height:16px;border-radius:5px;overflow:hidden;"
    "background:#e8ecf2;margin:4px 0 10px}"
    ".stack i{display:block;height:100%}"
    ".dot{display:inline-block;width:10px;height:10px;border-radius:3px;"
    "margin-right:7px;vertical-align:-1px}"
    ".c-ok{background:var(--ok)}.c-warn{background:var(--warn)}"
    ".c-bad{background:var(--bad)}.c-vio{background:var(--vio)}"
    ".c-acc{background:var(--acc)}"
    ".charts{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));"
    "gap:16px}"
    ".ch .t{display:flex;justify-content:space-between;align-items:baseline}"
    ".ch .cur{font-size:17px;font-weight:650;font-variant-numeric:"
    "tabular-nums}"
    ".ch svg{display:block;width:100%;height:96px;border:1px solid "
    "var(--line);border-radius:5px;background:#fbfcfe;margin-top:3px}"
    ".ax{display:flex;justify-content:space-between;color:var(--mute);"
    "font-size:11px;margin-top:2px}"
    ".ev td{white-space:normal}.ev td:first-child,.ev td:nth-child(2)"
    "{white-space:nowrap;width:1%}"
    "footer{color:var(--mute);font-size:12px;text-align:center;"
    "padding:2px 22px 18px}"
    "@media(max-width:1000px){.grid,.charts{grid-template-columns:1fr}}";

static void html_head(struct strbuf *sb, const struct status_snap *snap,
                      int refresh_seconds)
{
    strbuf_adds(sb, "<!DOCTYPE html>\n<html lang=\"en\"><head>"
                "<meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width,"
                "initial-scale=1\">");
    if (refresh_seconds > 0)
        strbuf_addf(sb, "<meta http-equiv=\"refresh\" content=\"%d\">",
                    refresh_seconds);
    strbuf_adds(sb, "<title>");
    html_esc(sb, snap->cluster[0] ? snap->cluster : "dfs");
    strbuf_addf(sb, " \xc2\xb7 master %" PRIu64 " (%s)</title><style>",
                snap->self_id, status_role_name(snap->role));
    strbuf_adds(sb, page_css);
    strbuf_adds(sb, "</style></head><body>\n");
}

static void html_header(struct strbuf *sb, const struct status_snap *snap)
{
    const struct status_master *leader = status_leader(snap);
    strbuf_adds(sb, "<header><div class=\"logo\">dfs<span>.</span></div>"
                "<div class=\"cl\">");
    html_esc(sb, snap->cluster[0] ? snap->cluster : "cluster");
    strbuf_addf(sb, "</div><span class=\"badge r-%s\">%s</span>"
                "<div class=\"meta\">master <b>#%" PRIu64 "</b>",
                status_role_name(snap->role), status_role_name(snap->role),
                snap->self_id);
    strbuf_adds(sb, " &middot; leader <b>");
    if (leader) {
        strbuf_addf(sb, "#%" PRIu64 "</b> ", leader->id);
        html_esc(sb, leader->address);
    } else {
        strbuf_adds(sb, "none</b>");
    }
    strbuf_addf(sb, " &middot; term <b>%s</b>", fmt_count(snap->term).s);
    strbuf_addf(sb, " &middot; chunks of %s", fmt_bytes(snap->chunk_size).s);
    strbuf_addf(sb, " &middot; up %s &middot; ",
                fmt_uptime(snap->now_ms - snap->start_ms).s);
    html_esc(sb, snap->version);
    strbuf_addf(sb, " &middot; %s UTC</div></header>\n<main>\n",
                fmt_clock(snap->now_ms, true).s);
}

/* Only an http(s) URL becomes a link; anything else could be a script. */
static bool is_http_url(const char *s)
{
    return strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0;
}

static void html_follower(struct strbuf *sb, const struct status_snap *snap)
{
    if (snap->role == STATUS_ROLE_LEADER)
        return;
    const struct status_master *leader = status_leader(snap);
    strbuf_addf(sb, "<div class=\"banner\">This master is a <b>%s</b>: "
                "chunkservers, chunk health and activity are tracked by the "
                "leader. ", status_role_name(snap->role));
    if (!leader) {
        strbuf_adds(sb, "No leader is known right now.</div>\n");
        return;
    }
    strbuf_addf(sb, "The leader is master #%" PRIu64 ": ", leader->id);
    if (is_http_url(leader->http)) {
        strbuf_adds(sb, "<a href=\"");
        html_esc(sb, leader->http);
        strbuf_adds(sb, "\">");
        html_esc(sb, leader->http);
        strbuf_adds(sb, "</a>");
    } else {
        html_esc(sb, leader->address);
    }
    strbuf_adds(sb, "</div>\n");
}

static void html_alarms(struct strbuf *sb, const struct status_alarms *a)
{
    bool any = false;
    for (int i = 0; i < ALARM_COUNT; i++) {
        if (!a->on[i])
            continue;
        any = true;
        strbuf_addf(sb, "<div class=\"alarm a-%s\"><b>%s</b><span>",
                    alarm_defs[i].severity, alarm_defs[i].severity);
        html_esc(sb, a->text[i]);
        strbuf_addf(sb, "</span><span class=\"mute\" style=\"margin-left:"
                    "auto\">%s</span></div>\n", alarm_defs[i].code);
    }
    if (!any)
        strbuf_adds(sb, "<div class=\"allok\">All good: every chunk is at its "
                    "replication goal and every server answers.</div>\n");
}

/* One summary card; v and sub are escaped. */
static void html_card(struct strbuf *sb, const char *k, const char *v,
                      const char *sub)
{
    strbuf_addf(sb, "<div class=\"card\"><div class=\"k\">%s</div>"
                "<div class=\"v\">", k);
    html_esc(sb, v);
    strbuf_adds(sb, "</div><div class=\"sub\">");
    html_esc(sb, sub);
    strbuf_adds(sb, "</div></div>");
}

static void html_bar(struct strbuf *sb, unsigned p, const char *extra_class)
{
    const char *level = p >= 95 ? " class=\"full\"" : p >= 80 ? " class=\"hi\""
                                                              : "";
    strbuf_addf(sb, "<span class=\"bar%s\"><i%s style=\"width:%u%%\"></i>"
                "</span>", extra_class, level, p);
}

static void html_cards(struct strbuf *sb, const struct status_snap *snap)
{
    const struct status_master *leader = status_leader(snap);
    struct status_space sp = status_space(snap);
    char v[64], sub[STATUS_ADDR_MAX + 32];

    strbuf_adds(sb, "<section class=\"cards\">");
    if (leader)
        snprintf(v, sizeof(v), "#%" PRIu64, leader->id);
    else
        snprintf(v, sizeof(v), "none");
    html_card(sb, "Leader", v, leader ? leader->address : "election pending");
    snprintf(sub, sizeof(sub), "%s leader changes",
             fmt_count(snap->leader_changes_total).s);
    html_card(sb, "Term", fmt_count(snap->term).s, sub);
    snprintf(sub, sizeof(sub), "applied %s", fmt_count(snap->applied_index).s);
    html_card(sb, "Commit index", fmt_count(snap->commit_index).s, sub);
    html_card(sb, "Files", fmt_count(snap->files).s, "regular files");
    html_card(sb, "Directories", fmt_count(snap->directories).s, "");
    snprintf(sub, sizeof(sub), "%s under goal",
             fmt_count(snap->chunks.under_replicated).s);
    html_card(sb, "Chunks", fmt_count(snap->chunks.total).s, sub);
    snprintf(sub, sizeof(sub), "stored %s", fmt_bytes(snap->bytes_physical).s);
    html_card(sb, "Data", fmt_bytes(snap->bytes_logical).s, sub);

    strbuf_addf(sb, "<div class=\"card\"><div class=\"k\">Space used</div>"
                "<div class=\"v\">%u%%</div>", pct(sp.used, sp.total));
    html_bar(sb, pct(sp.used, sp.total), " wide");
    strbuf_addf(sb, "<div class=\"sub\">%s free</div></div>",
                fmt_bytes(sp.free).s);
    strbuf_adds(sb, "</section>\n");
}

static void html_health(struct strbuf *sb, const struct status_snap *snap)
{
    const struct status_chunks *c = &snap->chunks;
    const struct { const char *name, *color; uint64_t v; bool in_bar; } rows[] = {
        {"Healthy", "c-ok", c->healthy, true},
        {"Under-replicated", "c-warn", c->under_replicated, true},
        {"Being re-replicated", "c-acc", c->rereplicating, false},
        {"Corrupt replica", "c-vio", c->corrupt, true},
        {"Missing", "c-bad", c->missing, true},
    };
    size_t nrows = sizeof(rows) / sizeof(rows[0]);

    strbuf_addf(sb, "<div class=\"panel\"><h2>Chunk health <span class=\"mute\">"
                "%s chunks</span></h2><div class=\"stack\">",
                fmt_count(c->total).s);
    for (size_t i = 0; i < nrows; i++) {
        if (!rows[i].in_bar || rows[i].v == 0 || c->total == 0)
            continue;
        double w = (double)rows[i].v * 100.0 / (double)c->total;
        strbuf_addf(sb, "<i class=\"%s\" style=\"width:%.2f%%;min-width:3px\" "
                    "title=\"%s\"></i>", rows[i].color, w > 100 ? 100 : w,
                    rows[i].name);
    }
    strbuf_adds(sb, "</div><table>");
    for (size_t i = 0; i < nrows; i++) {
        strbuf_addf(sb, "<tr><td><span class=\"dot %s\"></span>%s</td>"
                    "<td class=\"n\">%s</td><td class=\"n mute\">%s</td>"
                    "</tr>", rows[i].color, rows[i].name,
                    fmt_count(rows[i].v).s, fmt_share(rows[i].v, c->total).s);
    }
    strbuf_adds(sb, "</table></div>\n");
}

static void html_masters(struct strbuf *sb, const struct status_snap *snap)
{
    strbuf_addf(sb, "<div class=\"panel\"><h2>Masters <span class=\"mute\">%zu "
                "in the Raft group</span></h2><table><tr><th>#</th>"
                "<th>Address</th><th>Role</th><th>Last contact</th>"
                "<th class=\"n\">Log lag</th><th class=\"n\">Snapshot</th>"
                "<th>Page</th></tr>", snap->nmasters);
    for (size_t i = 0; i < snap->nmasters; i++) {
        const struct status_master *m = &snap->masters[i];
        uint64_t lag;
        strbuf_addf(sb, "<tr><td>%" PRIu64 "%s</td><td>", m->id,
                    m->self ? " <span class=\"mute\">(this)</span>" : "");
        html_esc(sb, m->address);
        strbuf_addf(sb, "</td><td><span class=\"badge r-%s\">%s</span></td>"
                    "<td>%s</td>", status_role_name(m->role),
                    status_role_name(m->role),
                    m->self ? "&mdash;" : fmt_age(m->contact_age_ms).s);
        if (master_lag(snap, m, &lag))
            strbuf_addf(sb, "<td class=\"n%s\">%s</td>", lag > 1000 ? " err"
                        : "", fmt_count(lag).s);
        else
            strbuf_adds(sb, "<td class=\"n mute\">&mdash;</td>");
        strbuf_addf(sb, "<td class=\"n\">%s</td><td>",
                    fmt_count(m->snapshot_index).s);
        if (!m->self && is_http_url(m->http)) {
            strbuf_adds(sb, "<a href=\"");
            html_esc(sb, m->http);
            strbuf_adds(sb, "\">open</a>");
        }
        strbuf_adds(sb, "</td></tr>");
    }
    strbuf_adds(sb, "</table></div>\n");
}

static void html_cs_row(struct strbuf *sb, const struct status_chunkserver *cs)
{
    unsigned p = pct(cs->bytes_used, cs->bytes_total);
    strbuf_addf(sb, "<tr class=\"cs\"><td>%" PRIu32 "</td><td>", cs->id);
    html_esc(sb, cs->address);
    strbuf_adds(sb, "</td><td>");
    html_esc(sb, cs->rack[0] ? cs->rack : "-");
    strbuf_addf(sb, "</td><td><span class=\"badge s-%s\">%s</span></td><td>",
                status_cs_state_name(cs->state),
                status_cs_state_name(cs->state));
    html_bar(sb, p, "");
    strbuf_addf(sb, "%u%% <span class=\"mute\">%s", p,
                fmt_bytes(cs->bytes_used).s);
    strbuf_addf(sb, " / %s</span></td>", fmt_bytes(cs->bytes_total).s);
    strbuf_addf(sb, "<td class=\"n\">%s</td><td class=\"n\">%" PRIu32 "</td>"
                "<td%s>%s</td>", fmt_count(cs->chunks).s, cs->load,
                cs->state == STATUS_CS_DOWN ? " class=\"err\"" : "",
                fmt_age(cs->heartbeat_age_ms).s);
    strbuf_addf(sb, "<td class=\"n%s\">%s</td></tr>",
                cs->errors_total ? " err" : " mute",
                fmt_count(cs->errors_total).s);
}

static void html_chunkservers(struct strbuf *sb,
                              const struct status_snap *snap)
{
    size_t up = 0;
    for (size_t i = 0; i < snap->ncs; i++)
        up += snap->chunkservers[i].state != STATUS_CS_DOWN;
    strbuf_addf(sb, "<div class=\"panel\"><h2>Chunkservers <span class=\"mute\">"
                "%zu of %zu up</span></h2>", up, snap->ncs);
    if (snap->ncs == 0) {
        strbuf_adds(sb, "<div class=\"mute\">No chunkserver known to this "
                    "master.</div></div>\n");
        return;
    }
    strbuf_adds(sb, "<table id=\"chunkservers\"><tr><th>#</th><th>Address</th><th>Rack</th>"
                "<th>State</th><th>Space used</th><th class=\"n\">Chunks</th>"
                "<th class=\"n\">Load</th><th>Last heartbeat</th>"
                "<th class=\"n\">Errors</th></tr>");
    for (size_t i = 0; i < snap->ncs; i++)
        html_cs_row(sb, &snap->chunkservers[i]);
    strbuf_adds(sb, "</table></div>\n");
}

/* The smallest 1, 2 or 5 times a power of ten that is >= v (and > 0). */
static double nice_max(double v)
{
    double p = 1e-3;
    while (p * 10 <= v)
        p *= 10;
    for (;;) {
        if (v <= p)
            return p;
        if (v <= 2 * p)
            return 2 * p;
        if (v <= 5 * p)
            return 5 * p;
        p *= 10;
    }
}

/* What one chart plots: a field of each sample, divided by scale. */
struct chart_def {
    const char *title;
    const char *unit;
    const char *color;
    size_t offset;                   /* of a uint64_t in struct status_sample */
    double scale;                    /* per second and into the unit */
};

static double chart_value(const struct chart_def *d,
                          const struct status_sample *s)
{
    uint64_t v;
    memcpy(&v, (const char *)s + d->offset, sizeof(v));
    return (double)v / STATUS_SAMPLE_SECONDS / d->scale;
}

#define CHART_W 600
#define CHART_H 100

/*
 * SVG path data through the samples, right-aligned so the newest is at
 * the right edge; `area` closes it along the bottom for the fill.
 */
static void chart_path(struct strbuf *sb, const struct status_history *h,
                       const struct chart_def *d, double max, bool area)
{
    size_t pad = STATUS_HISTORY_MAX - h->count;
    for (size_t i = 0; i < h->count; i++) {
        double x = (double)(pad + i) * CHART_W / (STATUS_HISTORY_MAX - 1);
        double y = CHART_H - chart_value(d, status_history_at(h, i)) / max *
                             (CHART_H - 4);
        if (i == 0 && area)
            strbuf_addf(sb, "M%.1f %d ", x, CHART_H);
        strbuf_addf(sb, "%c%.1f %.1f ", i == 0 && !area ? 'M' : 'L', x, y);
    }
    if (area)
        strbuf_addf(sb, "L%d %d Z", CHART_W, CHART_H);
}

static void html_chart(struct strbuf *sb, const struct status_history *h,
                       const struct chart_def *d)
{
    double max = 0, cur = 0;
    for (size_t i = 0; i < h->count; i++) {
        double v = chart_value(d, status_history_at(h, i));
        max = v > max ? v : max;
        cur = v;
    }
    max = nice_max(max);
    strbuf_addf(sb, "<div class=\"ch\"><div class=\"t\"><span class=\"k\">%s"
                "</span><span class=\"cur\">%.1f <span class=\"mute\" "
                "style=\"font-size:12px;font-weight:400\">%s</span></span>"
                "</div><svg viewBox=\"0 0 %d %d\" preserveAspectRatio=\"none\">"
                "<path d=\"M0 %d H%d M0 %d H%d M0 %d H%d\" stroke=\"#e5e9f0\" "
                "vector-effect=\"non-scaling-stroke\"/>",
                d->title, cur, d->unit, CHART_W, CHART_H, CHART_H / 4, CHART_W,
                CHART_H / 2, CHART_W, 3 * CHART_H / 4, CHART_W);
    if (h->count >= 2) {
        strbuf_addf(sb, "<path fill=\"%s\" fill-opacity=\".12\" d=\"",
                    d->color);
        chart_path(sb, h, d, max, true);
        strbuf_addf(sb, "\"/><path fill=\"none\" stroke=\"%s\" "
                    "stroke-width=\"1.8\" vector-effect=\"non-scaling-stroke\" "
                    "d=\"", d->color);
        chart_path(sb, h, d, max, false);
        strbuf_adds(sb, "\"/>");
    }
    strbuf_addf(sb, "</svg><div class=\"ax\"><span>%d min ago</span>"
                "<span>max %g %s</span><span>now</span></div></div>",
                STATUS_HISTORY_MAX * STATUS_SAMPLE_SECONDS / 60, max, d->unit);
}

static void html_activity(struct strbuf *sb, const struct status_snap *snap)
{
    static const struct chart_def charts[] = {
        {"Client operations", "ops/s", "#2563eb",
         offsetof(struct status_sample, ops), 1.0},
        {"Read", "MiB/s", "#16a34a",
         offsetof(struct status_sample, read_bytes), 1024.0 * 1024.0},
        {"Write", "MiB/s", "#d97706",
         offsetof(struct status_sample, write_bytes), 1024.0 * 1024.0},
    };
    strbuf_addf(sb, "<div class=\"panel\"><h2>Activity <span class=\"mute\">"
                "%d-second samples, %s ops since start</span></h2>"
                "<div class=\"charts\">", STATUS_SAMPLE_SECONDS,
                fmt_count(status_ops_total(snap)).s);
    for (size_t i = 0; i < sizeof(charts) / sizeof(charts[0]); i++)
        html_chart(sb, &snap->history, &charts[i]);
    strbuf_adds(sb, "</div></div>\n");
}

static const char *event_badge(enum status_event_kind kind)
{
    switch (kind) {
    case STATUS_EV_LEADER:      return "r-follower";
    case STATUS_EV_CS_JOIN:     return "s-up";
    case STATUS_EV_CS_LEAVE:    return "s-down";
    case STATUS_EV_REREPLICATE: return "r-candidate";
    case STATUS_EV_CORRUPT:     return "s-down";
    case STATUS_EV_MEMBERSHIP:  return "r-follower";
    case STATUS_EV_OTHER:       break;
    }
    return "r-unknown";
}

static void html_events(struct strbuf *sb, const struct status_snap *snap)
{
    strbuf_adds(sb, "<div class=\"panel\"><h2>Recent events <span "
                "class=\"mute\">newest first, UTC</span></h2>");
    if (snap->events.count == 0) {
        strbuf_adds(sb, "<div class=\"mute\">Nothing has happened yet."
                    "</div></div>\n");
        return;
    }
    strbuf_adds(sb, "<table class=\"ev\">");
    for (size_t i = snap->events.count; i-- > 0;) {
        const struct status_event *e = status_events_at(&snap->events, i);
        strbuf_addf(sb, "<tr><td class=\"mute\">%s</td><td><span class=\"badge "
                    "%s\">%s</span></td><td>", fmt_clock(e->time_ms, false).s,
                    event_badge(e->kind), status_event_kind_name(e->kind));
        html_esc(sb, e->text);
        strbuf_addf(sb, "</td><td class=\"n mute\">%s</td></tr>",
                    fmt_age(snap->now_ms - e->time_ms).s);
    }
    strbuf_adds(sb, "</table></div>\n");
}

int status_render_html(const struct status_snap *snap, int refresh_seconds,
                       struct strbuf *out)
{
    struct status_alarms alarms;
    status_alarms(snap, &alarms);
    html_head(out, snap, refresh_seconds);
    html_header(out, snap);
    html_follower(out, snap);
    html_alarms(out, &alarms);
    html_cards(out, snap);
    strbuf_adds(out, "<section class=\"grid\">");
    html_health(out, snap);
    html_masters(out, snap);
    strbuf_adds(out, "</section>\n");
    html_chunkservers(out, snap);
    html_activity(out, snap);
    html_events(out, snap);
    strbuf_adds(out, "</main><footer>");
    if (refresh_seconds > 0)
        strbuf_addf(out, "Refreshes every %d s &middot; ", refresh_seconds);
    strbuf_adds(out, "<a href=\"/api/status\">/api/status</a> (JSON) &middot; "
                "<a href=\"/metrics\">/metrics</a> (Prometheus)</footer>"
                "</body></html>\n");
    return strbuf_error(out);
}
