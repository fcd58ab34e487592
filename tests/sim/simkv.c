/*
 * simkv: key/value state machine for the Raft simulation.
 *
 * Invariants:
 *  1. applied only moves by one (simkv_apply) or by a restore.
 *  2. A key's chain depends on every value written since its last put and
 *     on their order; the digest depends on every key's chain and count.
 */
#include "tests/sim/simkv.h"

#include <errno.h>
#include <string.h>

#include "master/raftrand.h"

void simkv_init(struct simkv *kv)
{
    memset(kv, 0, sizeof(*kv));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

uint64_t simkv_hash(const void *p, size_t len, uint64_t seed)
{
    const uint8_t *b = p;
    uint64_t h = raftrand_mix(seed ^ len);
    size_t i = 0;
    for (; i + 8 <= len; i += 8)
        h = raftrand_mix(h ^ get64(b + i));
    uint64_t tail = 0;
    for (; i < len; i++)
        tail = tail << 8 | b[i];
    return raftrand_mix(h ^ tail);
}

size_t simkv_cmd(uint8_t *buf, enum simkv_op op, unsigned key, uint64_t value,
                 size_t pad)
{
    buf[0] = (uint8_t)op;
    buf[1] = (uint8_t)(key % SIMKV_KEYS);
    put64(buf + 2, value);
    memset(buf + SIMKV_CMD_MIN, (int)(value & 0xff), pad);
    return SIMKV_CMD_MIN + pad;
}

uint64_t simkv_cmd_value(const struct raft_entry *e)
{
    if (e->type != RAFT_ENTRY_NORMAL || e->len < SIMKV_CMD_MIN)
        return 0;
    return get64((const uint8_t *)e->data + 2);
}

int simkv_apply(struct simkv *kv, const struct raft_entry *e)
{
    if (e->index != kv->applied + 1)
        return -ERANGE;
    if (e->type == RAFT_ENTRY_NORMAL) {
        const uint8_t *p = e->data;
        if (e->len < SIMKV_CMD_MIN || p[1] >= SIMKV_KEYS ||
            (p[0] != SIMKV_PUT && p[0] != SIMKV_APPEND))
            return -EINVAL;
        unsigned key = p[1];
        uint64_t value = get64(p + 2);
        if (p[0] == SIMKV_PUT) {
            kv->chain[key] = raftrand_mix(value);
            kv->count[key] = 1;
        } else {
            kv->chain[key] = raftrand_mix(kv->chain[key] ^ value);
            kv->count[key]++;
        }
    }
    kv->applied = e->index;
    return 0;
}

uint64_t simkv_digest(const struct simkv *kv)
{
    uint64_t h = 0;
    for (unsigned k = 0; k < SIMKV_KEYS; k++)
        h = raftrand_mix(h ^ kv->chain[k] ^ ((uint64_t)kv->count[k] << 32 | k));
    return h;
}

#define SNAP_HEAD (8 + 8)                 /* applied, pad */
#define SNAP_KEY (8 + 4)

size_t simkv_snapshot_size(size_t pad)
{
    return SNAP_HEAD + SIMKV_KEYS * SNAP_KEY + pad;
}

static uint8_t filler(uint64_t digest, size_t i)
{
    return (uint8_t)raftrand_mix(digest + i);
}

void simkv_snapshot(const struct simkv *kv, size_t pad, uint8_t *buf)
{
    put64(buf, kv->applied);
    put64(buf + 8, pad);
    uint8_t *p = buf + SNAP_HEAD;
    for (unsigned k = 0; k < SIMKV_KEYS; k++, p += SNAP_KEY) {
        put64(p, kv->chain[k]);
        put32(p + 8, kv->count[k]);
    }
    uint64_t d = simkv_digest(kv);
    for (size_t i = 0; i < pad; i++)
        p[i] = filler(d, i);
}

int simkv_restore(struct simkv *kv, const void *buf, size_t len)
{
    const uint8_t *b = buf;
    if (len < SNAP_HEAD)
        return -EINVAL;
    uint64_t pad = get64(b + 8);
    if (pad > len || len != simkv_snapshot_size(pad))
        return -EINVAL;
    struct simkv out;
    simkv_init(&out);
    out.applied = get64(b);
    const uint8_t *p = b + SNAP_HEAD;
    for (unsigned k = 0; k < SIMKV_KEYS; k++, p += SNAP_KEY) {
        out.chain[k] = get64(p);
        out.count[k] = get32(p + 8);
    }
    uint64_t d = simkv_digest(&out);
    for (size_t i = 0; i < pad; i++)
        if (p[i] != filler(d, i))
            return -EINVAL;
    *kv = out;
    return 0;
}
