/*
 * mmember: the replicated membership state of the metadata service that
 * the Raft configuration does not hold — every master's addresses (the
 * "address book": Raft/client address and status-page address by master
 * id) and the set of chunkservers being decommissioned — with the byte
 * encodings of its log entries, of its snapshot section and of the local
 * cache file.
 *
 * Who is a member, and as voter or learner, is the Raft configuration
 * (master/raft_members); this module only says where each one is.  Plain
 * values and pure functions: no I/O, no clock; master/madmin owns the one
 * instance of a running master and is the only caller there.
 */
#ifndef DFS_MMEMBER_H
#define DFS_MMEMBER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct wire_writer;

#define MMEMBER_MAX 16          /* masters in the book (RAFT_MAX_SERVERS) */
#define MMEMBER_ADDR_MAX 256    /* "host:port", NUL included */
#define MMEMBER_DECOM_MAX 4096  /* chunkservers marked decommissioned */

/* First byte of a membership log entry; namespace ops start with 1. */
#define MMEMBER_ENTRY_FORMAT 0xD1

enum mmember_kind {
    MMEMBER_MASTERS = 1,        /* the whole address book, replaced */
    MMEMBER_DECOMMISSION = 2,   /* one chunkserver is decommissioned */
};

struct mmember_master {
    uint64_t id;
    char addr[MMEMBER_ADDR_MAX];   /* Raft and client address */
    char http[MMEMBER_ADDR_MAX];   /* status page, "" when none */
};

struct mmember {
    size_t n;
    struct mmember_master m[MMEMBER_MAX];   /* sorted by id */
    size_t ndecom;
    uint32_t decom[MMEMBER_DECOM_MAX];      /* sorted chunkserver ids */
};

/* What one applied entry changed (for the caller's side effects). */
struct mmember_change {
    enum mmember_kind kind;
    uint32_t cs;                /* MMEMBER_DECOMMISSION: the chunkserver */
};

void mmember_init(struct mmember *mm);

/*
 * Adds or updates master id (addr and http copied; http may be NULL or "").
 * -EINVAL for id 0, an empty or over-long address; -ENOSPC when full.
 */
int mmember_set(struct mmember *mm, uint64_t id, const char *addr,
                const char *http);
/* Removes master id; -ENOENT when absent. */
int mmember_drop(struct mmember *mm, uint64_t id);
/* Master id, or NULL; the pointer is valid until the next change. */
const struct mmember_master *mmember_find(const struct mmember *mm, uint64_t id);
/* The master at address addr, or NULL. */
const struct mmember_master *mmember_find_addr(const struct mmember *mm,
                                               const char *addr);

/* Marks chunkserver cs decommissioned (idempotent); -ENOSPC when full. */
int mmember_decommission(struct mmember *mm, uint32_t cs);
bool mmember_is_decommissioned(const struct mmember *mm, uint32_t cs);

/* ---- log entries --------------------------------------------------------- */

/* True when a committed entry's bytes are a membership entry. */
bool mmember_is_entry(const void *data, size_t len);
/* The entry replacing the book with mm's masters. */
void mmember_encode_masters(const struct mmember *mm, struct wire_writer *w);
/* The entry marking chunkserver cs decommissioned. */
void mmember_encode_decommission(uint32_t cs, struct wire_writer *w);
/*
 * Applies an entry to mm.  0 with *ch filled; -EBADMSG (or the wire error)
 * when it does not decode, -ENOSPC when a set is full: mm is then
 * unchanged, on every master alike.
 */
int mmember_apply(struct mmember *mm, const void *data, size_t len,
                  struct mmember_change *ch);

/* ---- snapshots ----------------------------------------------------------- */

/*
 * A master snapshot is this section followed by the namespace snapshot:
 * magic u64 "DFSMEMB1", len u32, then len bytes (masters and decommission
 * set).  A snapshot without the magic predates the section.
 */
void mmember_snapshot_write(const struct mmember *mm, struct wire_writer *w);
/*
 * Splits a master snapshot: 1 with the section decoded into *mm, 0 when
 * there is none (*mm untouched), or -EBADMSG; *rest / *rest_len receive
 * the namespace part either way (on success).
 */
int mmember_snapshot_split(const void *buf, size_t len, struct mmember *mm,
                           const void **rest, size_t *rest_len);

/* ---- removal ------------------------------------------------------------- */

/* What another master answered to ADMIN_MASTERS, as far as removal goes. */
struct mmember_answer {
    uint64_t from;                  /* the master that answered */
    uint64_t leader;                /* the leader it knows (0: none) */
    uint64_t term, commit;          /* its term and commit index */
    uint64_t config_index;          /* its configuration's entry (0: not said) */
    bool lists_us;                  /* that configuration holds us */
};

/*
 * True when the answer proves this master (in term our_term) is no longer
 * a member: the leader itself answered, in a term not older than ours,
 * and its configuration without us has committed.  A removal that is only
 * appended may still be undone by the next leader.
 */
bool mmember_removed(const struct mmember_answer *a, uint64_t our_term);

/* ---- the cache file ------------------------------------------------------ */

/*
 * Text, one master a line: "id addr http" (http "-" when none), so an
 * operator can read it.  format writes at most cap bytes (NUL included)
 * and returns the length, or -ENOSPC.  parse replaces mm's masters (the
 * decommission set is untouched); -EINVAL names nothing: the caller says
 * which file.
 */
int mmember_format_masters(const struct mmember *mm, char *buf, size_t cap);
int mmember_parse_masters(struct mmember *mm, const char *text);

#endif
