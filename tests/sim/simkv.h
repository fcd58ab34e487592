/*
 * simkv: the simulator's state machine, a tiny key/value store.
 *
 * A command is put(key, value) or append(key, value) with a value unique
 * in the run; a key's state is a hash chain of the values written to it
 * since its last put, plus their count, so two replicas agree on a key
 * only if they applied the same writes in the same order.  Snapshots are
 * the whole store plus `pad` filler bytes derived from its contents (big
 * enough to need several InstallSnapshot chunks, and checked on decode so
 * a badly reassembled snapshot is caught).
 */
#ifndef DFS_SIMKV_H
#define DFS_SIMKV_H

#include <stddef.h>
#include <stdint.h>

#include "master/raft.h"

#define SIMKV_KEYS 8
#define SIMKV_CMD_MIN 10   /* op, key, u64 value */

enum simkv_op { SIMKV_PUT = 1, SIMKV_APPEND = 2 };

struct simkv {
    uint64_t applied;              /* last index applied */
    uint64_t chain[SIMKV_KEYS];
    uint32_t count[SIMKV_KEYS];
};

void simkv_init(struct simkv *kv);

/* Encodes a command into buf (SIMKV_CMD_MIN + pad bytes); returns its size. */
size_t simkv_cmd(uint8_t *buf, enum simkv_op op, unsigned key, uint64_t value,
                 size_t pad);
/* Value of a command entry (0 when e is not a command). */
uint64_t simkv_cmd_value(const struct raft_entry *e);

/*
 * Applies one committed entry; e->index must be applied + 1 (else
 * -ERANGE).  No-op and config entries only move applied.  -EINVAL for a
 * normal entry that is not a command.
 */
int simkv_apply(struct simkv *kv, const struct raft_entry *e);

/* Digest of the contents (not of applied). */
uint64_t simkv_digest(const struct simkv *kv);

/* Snapshot bytes: simkv_snapshot_size(pad) of them written to buf. */
size_t simkv_snapshot_size(size_t pad);
void simkv_snapshot(const struct simkv *kv, size_t pad, uint8_t *buf);
/* 0, or -EINVAL when the bytes are not a snapshot we wrote. */
int simkv_restore(struct simkv *kv, const void *buf, size_t len);

/* Hash of any bytes (entries, for the checker). */
uint64_t simkv_hash(const void *p, size_t len, uint64_t seed);

#endif
