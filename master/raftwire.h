/*
 * raftwire: Raft messages (master/raft.h) to and from wire frames.
 *
 * The master's peer connections call it: raftwire_encode() appends one
 * frame per message to a writer, raftwire_decode() turns a received frame
 * back into a struct raft_msg for raft_step().  Layouts are in
 * common/protocol.h (0x03xx) and docs/PROTOCOL.md.
 */
#ifndef DFS_RAFTWIRE_H
#define DFS_RAFTWIRE_H

#include <stdint.h>

#include "common/wire.h"
#include "master/raft.h"

/* Entries accepted in one AppendEntries; more is a malformed frame. */
#define RAFTWIRE_MAX_ENTRIES 65536

/*
 * Appends m as one whole frame to w.  Returns 0, w->err, or -EINVAL for a
 * message type the codec does not know.
 */
int raftwire_encode(struct wire_writer *w, const struct raft_msg *m);

/* True for the frame types this codec decodes. */
int raftwire_is_raft(uint16_t type);

/*
 * Decodes the frame (type, payload[0..len)) into *m.  The message borrows
 * from payload (entry data, snapshot piece) and from *entries, a malloc'ed
 * array (NULL when there are no entries) that the caller frees after
 * raft_step() — which copies what it keeps.  Returns 0, or -EBADMSG /
 * -DFS_ETRUNC / -DFS_ETOOBIG / -EINVAL for a malformed payload (then
 * *entries is NULL).
 */
int raftwire_decode(uint16_t type, const uint8_t *payload, size_t len,
                    struct raft_msg *m, struct raft_entry **entries);

#endif
