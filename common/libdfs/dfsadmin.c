/*
 * dfsadmin (libdfs): the membership requests of the admin protocol —
 * listing, adding and removing masters, leadership transfer and
 * chunkserver decommission (common/protocol.h 0x0202-0x0207).
 *
 * Invariants:
 *  1. Every change is idempotent on the master's side, so a request
 *     retried across a failover or a dropped connection is safe.
 *  2. A master add may wait for minutes (the new master catches up): it
 *     goes on a connection of its own, retried until its deadline.
 */
#include "dfs.h"
#include "dfs_priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/protocol.h"
#include "common/rpc.h"
#include "common/wire.h"

#define DFS_ADD_TIMEOUT_MS 600000
#define DFS_ADD_TRY_MS 20000

static int64_t dfsadmin_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void get_text(struct wire_reader *r, char *out, size_t cap)
{
    char *t = wire_get_str(r, cap - 1);
    snprintf(out, cap, "%s", t ? t : "");
    free(t);
}

int dfs_admin_masters(struct dfs *d, struct dfs_members *out)
{
    struct rpc_reply r;
    memset(out, 0, sizeof(*out));
    int rc = dfs_call(d, PROTO_ADMIN_MASTERS, false, NULL, &r);
    if (rc < 0)
        return rc;
    rc = r.hdr.status;
    if (rc == 0) {
        struct wire_reader rd;
        char skip[DFS_ADDR_MAX];
        wire_reader_init(&rd, r.payload, r.len);
        out->cluster_id = wire_get_u64(&rd);
        out->self_id = wire_get_u64(&rd);
        out->self_role = wire_get_u8(&rd);
        get_text(&rd, skip, sizeof(skip));   /* self_addr, self_http: the */
        get_text(&rd, skip, sizeof(skip));   /* members list has them */
        out->leader_id = wire_get_u64(&rd);
        out->term = wire_get_u64(&rd);
        out->commit = wire_get_u64(&rd);
        uint32_t n = wire_get_u32(&rd);
        if (!rd.err && n > sizeof(out->m) / sizeof(out->m[0]))
            rd.err = -EBADMSG;
        for (uint32_t i = 0; i < n && !rd.err; i++) {
            struct dfs_member *m = &out->m[out->n++];
            m->id = wire_get_u64(&rd);
            m->role = wire_get_u8(&rd);
            get_text(&rd, m->addr, sizeof(m->addr));
            get_text(&rd, m->http, sizeof(m->http));
        }
        rc = wire_reader_finish(&rd) < 0 ? -EBADMSG : 0;
    }
    rpc_reply_release(&r);
    return rc;
}

/* A change answered with an empty payload (or a u64 into *id). */
static int change(struct dfs *d, uint16_t type, const struct wire_writer *b,
                  uint64_t *id)
{
    if (b->err)
        return b->err;
    struct rpc_reply r;
    int rc = dfs_call(d, type, true, b, &r);
    if (rc < 0)
        return rc;
    rc = r.hdr.status;
    if (rc == 0 && id) {
        struct wire_reader rd;
        wire_reader_init(&rd, r.payload, r.len);
        *id = wire_get_u64(&rd);
        rc = wire_reader_finish(&rd) < 0 ? -EBADMSG : 0;
    }
    rpc_reply_release(&r);
    return rc;
}

static bool past_deadline(void *arg)
{
    return dfsadmin_mono_ms() >= *(const int64_t *)arg;
}

int dfs_admin_master_add(struct dfs *d, const char *addr, int timeout_ms,
                         uint64_t *id)
{
    if (!addr || !addr[0] || strlen(addr) >= PROTO_ADDR_MAX)
        return -EINVAL;
    struct wire_writer b;
    wire_writer_init(&b);
    wire_put_str(&b, addr);
    int64_t deadline = dfsadmin_mono_ms() + (timeout_ms > 0 ? timeout_ms : DFS_ADD_TIMEOUT_MS);
    struct rpc_reply r;
    int rc = b.err ? b.err
           : dfs_call_wait(d, PROTO_ADMIN_MASTER_ADD, &b, DFS_ADD_TRY_MS,
                           past_deadline, &deadline, &r);
    wire_writer_release(&b);
    if (rc == -EINTR)
        return -ETIMEDOUT;
    if (rc < 0)
        return rc;
    rc = r.hdr.status;
    if (rc == 0) {
        struct wire_reader rd;
        wire_reader_init(&rd, r.payload, r.len);
        *id = wire_get_u64(&rd);
        rc = wire_reader_finish(&rd) < 0 ? -EBADMSG : 0;
    }
    rpc_reply_release(&r);
    return rc;
}

/* A change about master id, answered empty. */
static int change_master(struct dfs *d, uint16_t type, uint64_t id)
{
    struct wire_writer b;
    wire_writer_init(&b);
    wire_put_u64(&b, id);
    int rc = change(d, type, &b, NULL);
    wire_writer_release(&b);
    return rc;
}

int dfs_admin_master_remove(struct dfs *d, uint64_t id)
{
    return change_master(d, PROTO_ADMIN_MASTER_REMOVE, id);
}

int dfs_admin_leader_transfer(struct dfs *d, uint64_t id)
{
    return change_master(d, PROTO_ADMIN_LEADER_TRANSFER, id);
}

int dfs_admin_cs_decommission(struct dfs *d, uint32_t cs)
{
    struct wire_writer b;
    wire_writer_init(&b);
    wire_put_u32(&b, cs);
    int rc = change(d, PROTO_ADMIN_CS_DECOMMISSION, &b, NULL);
    wire_writer_release(&b);
    return rc;
}
