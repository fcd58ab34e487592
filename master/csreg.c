/*
 * csreg: chunkservers by id (a sorted array: a cluster has tens to
 * thousands of them) and chunk replicas by chunk id (an open-addressing
 * hash of small inline arrays).
 *
 * Invariants:
 *  1. servers[] is sorted by id; ids are never 0.
 *  2. A chunk slot holds at most one replica per server.
 *  3. Placement never returns a server that is not up, a decommissioned
 *     one, twice the same server, or a server in the exclude list.
 *  4. A server's decommission flag equals membership of its id in decom[],
 *     whether the mark came before or after it registered.
 *  5. drain_left >= 0 only for a server that is up and reported: a server
 *     that goes down, registers again or has its reports forgotten is
 *     unknown (-1) until the next scan counts it.
 */
#include "csreg.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct csreg_chunk {
    uint64_t id;                /* 0: empty slot */
    uint8_t n;
    struct csreg_replica r[CSREG_MAX_REPLICAS];
};

/* Placement skips a server with less free space: it could only answer
 * ENOSPC. */
#define CSREG_MIN_FREE (UINT64_C(1) << 20)

struct csreg {
    struct csreg_server *servers;
    size_t n, cap;
    struct csreg_chunk *chunks; /* open addressing, linear probing */
    size_t nchunks, cap_chunks; /* cap a power of two */
    uint64_t timeout_ms;
    uint64_t rng;
    uint32_t *decom;            /* decommissioned ids, any order */
    size_t ndecom, cap_decom;
};

struct csreg *csreg_new(uint64_t heartbeat_timeout_ms, uint64_t seed)
{
    struct csreg *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->timeout_ms = heartbeat_timeout_ms;
    r->rng = seed | 1;
    return r;
}

void csreg_free(struct csreg *r)
{
    if (!r)
        return;
    free(r->servers);
    free(r->chunks);
    free(r->decom);
    free(r);
}

/* ---- servers ------------------------------------------------------------- */

static struct csreg_server *find_server(const struct csreg *r, uint32_t id)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r->servers[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < r->n && r->servers[lo].id == id ? &r->servers[lo] : NULL;
}

static struct csreg_server *insert_server(struct csreg *r, uint32_t id)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 16;
        struct csreg_server *s = realloc(r->servers, cap * sizeof(*s));
        if (!s)
            return NULL;
        r->servers = s;
        r->cap = cap;
    }
    size_t at = 0;
    while (at < r->n && r->servers[at].id < id)
        at++;
    memmove(&r->servers[at + 1], &r->servers[at], (r->n - at) * sizeof(*r->servers));
    r->n++;
    memset(&r->servers[at], 0, sizeof(r->servers[at]));
    r->servers[at].id = id;
    r->servers[at].drain_left = -1;
    for (size_t i = 0; i < r->ndecom; i++)
        r->servers[at].decommission |= r->decom[i] == id;
    return &r->servers[at];
}

int64_t csreg_register(struct csreg *r, uint32_t id, const char *addr,
                       const char *rack, uint64_t total, uint64_t used,
                       void *conn, int64_t now_ms)
{
    if (id == 0)
        id = r->n ? r->servers[r->n - 1].id + 1 : 1;
    struct csreg_server *s = find_server(r, id);
    if (s && s->conn && s->conn != conn && s->state != CSREG_DOWN)
        return -EEXIST;
    if (!s)
        s = insert_server(r, id);
    if (!s)
        return -ENOMEM;
    snprintf(s->addr, sizeof(s->addr), "%s", addr);
    snprintf(s->rack, sizeof(s->rack), "%s", rack && rack[0] ? rack : "default");
    if (s->state == CSREG_DOWN)
        s->state = CSREG_UP;
    s->bytes_total = total;
    s->bytes_used = used;
    s->conn = conn;
    s->last_heartbeat_ms = now_ms;
    s->reported = false;   /* its full report starts with this */
    s->drain_left = -1;
    return id;
}

int csreg_heartbeat(struct csreg *r, uint32_t id, const struct csreg_beat *b,
                    int64_t now_ms)
{
    struct csreg_server *s = find_server(r, id);
    if (!s || !s->conn)
        return -ENOENT;   /* it must register (again) first */
    s->bytes_total = b->total;
    s->bytes_used = b->used;
    s->chunks = b->chunks;
    s->load = b->load;
    s->read_bytes = b->read_bytes;
    s->write_bytes = b->write_bytes;
    s->errors = b->errors;
    s->last_heartbeat_ms = now_ms;
    if (s->state == CSREG_DOWN)
        s->state = CSREG_UP;
    return 0;
}

void csreg_disconnected(struct csreg *r, void *conn)
{
    for (size_t i = 0; i < r->n; i++) {
        if (r->servers[i].conn != conn)
            continue;
        r->servers[i].conn = NULL;
        if (r->servers[i].state == CSREG_UP)
            r->servers[i].state = CSREG_DOWN;
        r->servers[i].drain_left = -1;
    }
}

size_t csreg_expire(struct csreg *r, int64_t now_ms)
{
    size_t changed = 0;
    for (size_t i = 0; i < r->n; i++) {
        struct csreg_server *s = &r->servers[i];
        if (s->state != CSREG_DOWN &&
            now_ms - s->last_heartbeat_ms > (int64_t)r->timeout_ms) {
            s->state = CSREG_DOWN;
            s->drain_left = -1;
            changed++;
        }
    }
    return changed;
}

const struct csreg_server *csreg_server(const struct csreg *r, uint32_t id)
{
    return find_server(r, id);
}

const struct csreg_server *csreg_at(const struct csreg *r, size_t i)
{
    return i < r->n ? &r->servers[i] : NULL;
}

size_t csreg_count(const struct csreg *r)
{
    return r->n;
}

size_t csreg_up_count(const struct csreg *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++)
        n += r->servers[i].state == CSREG_UP && !r->servers[i].decommission;
    return n;
}

static uint64_t free_bytes(const struct csreg_server *s)
{
    return s->bytes_total > s->bytes_used ? s->bytes_total - s->bytes_used : 0;
}

bool csreg_has_space(const struct csreg *r)
{
    for (size_t i = 0; i < r->n; i++) {
        const struct csreg_server *s = &r->servers[i];
        if (s->state == CSREG_UP && !s->decommission && free_bytes(s) >= CSREG_MIN_FREE)
            return true;
    }
    return false;
}

int csreg_decommission(struct csreg *r, uint32_t id)
{
    for (size_t i = 0; i < r->ndecom; i++) {
        if (r->decom[i] == id)
            return 0;
    }
    if (r->ndecom == r->cap_decom) {
        size_t cap = r->cap_decom ? 2 * r->cap_decom : 16;
        uint32_t *v = realloc(r->decom, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        r->decom = v;
        r->cap_decom = cap;
    }
    r->decom[r->ndecom++] = id;
    struct csreg_server *s = find_server(r, id);
    if (s) {
        s->decommission = true;
        s->drain_left = -1;
    }
    return 0;
}

void csreg_clear_decommission(struct csreg *r)
{
    r->ndecom = 0;
    for (size_t i = 0; i < r->n; i++) {
        r->servers[i].decommission = false;
        r->servers[i].drain_left = -1;
    }
}

void csreg_set_drain_left(struct csreg *r, uint32_t id, int64_t left)
{
    struct csreg_server *s = find_server(r, id);
    if (s && s->decommission)
        s->drain_left = s->state == CSREG_UP && s->reported ? left : -1;
}

void csreg_report_done(struct csreg *r, uint32_t id)
{
    struct csreg_server *s = find_server(r, id);
    if (s)
        s->reported = true;
}

void csreg_forget_reports(struct csreg *r)
{
    for (size_t i = 0; i < r->n; i++) {
        r->servers[i].reported = false;
        r->servers[i].drain_left = -1;
    }
}

/* ---- replicas ------------------------------------------------------------ */

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static struct csreg_chunk *find_chunk(const struct csreg *r, uint64_t id)
{
    if (!r->cap_chunks)
        return NULL;
    size_t mask = r->cap_chunks - 1;
    for (size_t i = mix(id) & mask;; i = (i + 1) & mask) {
        if (r->chunks[i].id == id)
            return &r->chunks[i];
        if (r->chunks[i].id == 0)
            return NULL;
    }
}

static struct csreg_chunk *slot_for(struct csreg_chunk *tab, size_t cap,
                                    uint64_t id)
{
    size_t mask = cap - 1;
    size_t i = mix(id) & mask;
    while (tab[i].id != 0 && tab[i].id != id)
        i = (i + 1) & mask;
    return &tab[i];
}

static int grow_chunks(struct csreg *r)
{
    size_t cap = r->cap_chunks ? 2 * r->cap_chunks : 1024;
    struct csreg_chunk *tab = calloc(cap, sizeof(*tab));
    if (!tab)
        return -ENOMEM;
    for (size_t i = 0; i < r->cap_chunks; i++) {
        if (r->chunks[i].id)
            *slot_for(tab, cap, r->chunks[i].id) = r->chunks[i];
    }
    free(r->chunks);
    r->chunks = tab;
    r->cap_chunks = cap;
    return 0;
}

int csreg_set_replica(struct csreg *r, uint64_t chunk, uint32_t cs,
                      uint32_t version, uint32_t length, bool corrupt)
{
    struct csreg_chunk *c = find_chunk(r, chunk);
    if (!c) {
        if (2 * (r->nchunks + 1) > r->cap_chunks && grow_chunks(r) < 0)
            return -ENOMEM;
        c = slot_for(r->chunks, r->cap_chunks, chunk);
        c->id = chunk;
        c->n = 0;
        r->nchunks++;
    }
    struct csreg_replica rep = { cs, version, length, corrupt };
    for (uint8_t i = 0; i < c->n; i++) {
        if (c->r[i].cs == cs) {
            c->r[i] = rep;
            return 0;
        }
    }
    if (c->n == CSREG_MAX_REPLICAS)
        return -ENOSPC;
    c->r[c->n++] = rep;
    return 0;
}

void csreg_drop_replica(struct csreg *r, uint64_t chunk, uint32_t cs)
{
    struct csreg_chunk *c = find_chunk(r, chunk);
    if (!c)
        return;
    for (uint8_t i = 0; i < c->n; i++) {
        if (c->r[i].cs == cs) {
            c->r[i] = c->r[--c->n];
            return;
        }
    }
}

void csreg_forget_server_replicas(struct csreg *r, uint32_t cs)
{
    for (size_t i = 0; i < r->cap_chunks; i++) {
        if (r->chunks[i].id)
            csreg_drop_replica(r, r->chunks[i].id, cs);
    }
}

size_t csreg_locations(const struct csreg *r, uint64_t chunk, uint32_t lo,
                       uint32_t hi, uint32_t *out, size_t max)
{
    const struct csreg_chunk *c = find_chunk(r, chunk);
    size_t n = 0;
    for (uint8_t i = 0; c && i < c->n && n < max; i++) {
        const struct csreg_server *s = find_server(r, c->r[i].cs);
        if (!c->r[i].corrupt && c->r[i].version >= lo && c->r[i].version <= hi &&
            s && s->state != CSREG_DOWN)
            out[n++] = c->r[i].cs;
    }
    /* Least loaded first: a tiny insertion sort. */
    for (size_t i = 1; i < n; i++) {
        for (size_t k = i; k > 0 && find_server(r, out[k])->load <
                                    find_server(r, out[k - 1])->load; k--) {
            uint32_t t = out[k];
            out[k] = out[k - 1];
            out[k - 1] = t;
        }
    }
    return n;
}

size_t csreg_recorded(const struct csreg *r, uint64_t chunk, uint32_t lo,
                      uint32_t hi, uint32_t *out, size_t max)
{
    const struct csreg_chunk *c = find_chunk(r, chunk);
    size_t n = 0;
    for (uint8_t i = 0; c && i < c->n && n < max; i++) {
        if (!c->r[i].corrupt && c->r[i].version >= lo && c->r[i].version <= hi)
            out[n++] = c->r[i].cs;
    }
    return n;
}

size_t csreg_replicas(const struct csreg *r, uint64_t chunk,
                      struct csreg_replica *out, size_t max)
{
    const struct csreg_chunk *c = find_chunk(r, chunk);
    size_t n = 0;
    for (uint8_t i = 0; c && i < c->n && n < max; i++)
        out[n++] = c->r[i];
    return n;
}

bool csreg_next_chunk(const struct csreg *r, size_t *cursor, uint64_t *chunk)
{
    while (*cursor < r->cap_chunks) {
        const struct csreg_chunk *c = &r->chunks[(*cursor)++];
        if (c->id && c->n) {
            *chunk = c->id;
            return true;
        }
    }
    return false;
}

/* ---- placement ------------------------------------------------------------- */

static uint64_t next_rand(struct csreg *r)
{
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    return r->rng;
}

static bool listed(const uint32_t *ids, size_t n, uint32_t id)
{
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == id)
            return true;
    }
    return false;
}

static bool rack_used(const struct csreg *r, const uint32_t *ids, size_t n,
                      const char *rack)
{
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(find_server(r, ids[i])->rack, rack))
            return true;
    }
    return false;
}

/* One weighted draw among eligible servers; 0 when none is left. */
static uint32_t draw(struct csreg *r, const uint32_t *exclude, size_t nexclude,
                     const uint32_t *chosen, size_t nchosen, bool new_rack)
{
    uint64_t total = 0;
    for (int pass = 0; pass < 2; pass++) {
        uint64_t pick = pass ? next_rand(r) % total : 0, acc = 0;
        for (size_t i = 0; i < r->n; i++) {
            const struct csreg_server *s = &r->servers[i];
            if (s->state != CSREG_UP || s->decommission ||
                listed(exclude, nexclude, s->id) ||
                listed(chosen, nchosen, s->id) ||
                (new_rack && rack_used(r, chosen, nchosen, s->rack)))
                continue;
            /* A full server would only answer ENOSPC. */
            uint64_t w = free_bytes(s) / CSREG_MIN_FREE;
            if (w == 0)
                continue;
            if (!pass) {
                total += w;
            } else if (pick < acc + w) {
                return s->id;
            } else {
                acc += w;
            }
        }
        if (!total)
            return 0;
    }
    return 0;
}

size_t csreg_place(struct csreg *r, size_t n, const uint32_t *exclude,
                   size_t nexclude, uint32_t *out)
{
    size_t got = 0;
    while (got < n) {
        uint32_t id = draw(r, exclude, nexclude, out, got, true);
        if (!id)
            id = draw(r, exclude, nexclude, out, got, false);
        if (!id)
            break;
        out[got++] = id;
    }
    return got;
}
