/*
 * ns_snapshot: the whole namespace as bytes (the Raft snapshot's payload)
 * and back, plus the digest of the same canonical form.
 *
 * The body is canonical: inodes by number, entries by entry id, xattrs by
 * name, locks in lock order, sessions by id, their opens, leases and
 * replies sorted; nothing that depends on hash layout or allocation
 * history (chunk handles, table capacities) is in it.  Two namespaces
 * with equal bodies behave identically.
 */
#ifndef DFS_NS_SNAPSHOT_H
#define DFS_NS_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

struct ns;
struct wire_writer;

/*
 * Appends the snapshot to w: a header (magic, format, body length), the
 * body deflated (zlib), and a CRC32C of everything before it.  0, -ENOMEM
 * or w->err.
 */
int ns_snapshot_write(const struct ns *ns, struct wire_writer *w);
/*
 * The same in a given format: 5 (the current one), 4 (the format before
 * the chunk size), 3 (before chunks carried a trim_from) or 2 (before locks
 * carried a pid), as a master of that version reads it.  -DFS_EVERSION for
 * another format, for formats 4 to 2 when the chunk size is fixed, for
 * format 3 or 2 when a chunk has a trim_from, or for format 2 when a lock
 * has a pid.
 */
int ns_snapshot_write_format(const struct ns *ns, uint32_t format,
                             struct wire_writer *w);

/*
 * A new namespace from a snapshot in buf[0..len) (the buffer is not kept).
 * 0 and *out (the caller frees with ns_free), or: -DFS_ETRUNC (short),
 * -DFS_ECORRUPT (bad magic, checksum, compressed stream or content, or a
 * state that fails ns_check), -DFS_EVERSION (unknown format; formats 2, 3
 * and 4 load, the older ones' chunks with trim_from 0 and format 2's locks
 * with pid 0), -DFS_ETOOBIG (a declared size over the limits), -ENOMEM.
 */
int ns_snapshot_load(const void *buf, size_t len, struct ns **out);

/* SHA-256 of the canonical body into md.  0 or -ENOMEM. */
int ns_snapshot_hash(const struct ns *ns, uint8_t md[32]);

#endif
