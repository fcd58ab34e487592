/*
 * protocol: every dfs message id and its payload layout, in one place
 * (STYLE §11).  docs/PROTOCOL.md mirrors this file; change both together,
 * and bump PROTO_VERSION when a layout changes incompatibly.
 *
 * A connection starts with the cluster-key handshake (common/auth.h), which
 * is not framed.  After it, both directions carry frames (common/wire.h):
 * a 28-byte header (magic, version, flags, type, req_id, payload_len,
 * status, header CRC) and a payload laid out as below.
 *
 * Layout notation (all integers little-endian, no padding, no alignment):
 *   u8 u16 u32 u64    unsigned integers      i32 i64   two's complement
 *   bytes             u32 length, then that many bytes
 *   str               bytes holding text, no NUL inside nor at the end
 *   T[n]              n items of T back to back; "count u32, T[count]"
 *                     is how every list is sent
 *   X?                X present only under the stated condition
 *   -> ...            request payload        <- ...   reply payload
 *
 * Requests and replies.  A request carries a req_id chosen by its sender,
 * unique among that sender's outstanding requests on the connection; the
 * answer is a frame of the same type with WIRE_F_REPLY and the same req_id.
 * Each direction numbers its own requests (the master sends orders to a
 * chunkserver on the connection the chunkserver opened).  Replies may come
 * in any order.  Raft messages (0x03xx) are the exception: one-way, req_id
 * 0, each answer its own message type.
 *
 * Status.  A reply's status is 0 or a negative error from the dfs error
 * space (common/dfs_error.h): a negative errno (Linux numbering, which
 * every dfs node shares) or a negative DFS_E* code.  An error is carried
 * only there: an error reply has an empty payload, except -DFS_ENOTLEADER
 * (NOT_LEADER, below the message ids) and a failed CS_WRITE (it names the
 * node that failed).  wire_hdr_decode() maps codes it does not know to
 * -EPROTO.  Requests carry status 0.  An unknown request type is
 * answered with -ENOSYS.  A frame that fails to decode (bad header, a
 * payload not exactly its fields) closes the connection.
 *
 * Compound types used below:
 *   HEAD   session u64, seq u64, seq_done u64, CRED
 *          Starts every client -> master request except SESSION_OPEN.
 *          session: from SESSION_OPEN (0: none; allowed only where a
 *          request needs no session state).  seq: for a request marked
 *          [M] (mutating), the client's next sequence number in that
 *          session, counting from 1, and the same on every retry (also to
 *          another master after a failover): the leader applies it at most
 *          once and answers a repeat with the first reply.  0 for other
 *          requests.  seq_done: every seq below it has been answered and
 *          may be forgotten (Raft thesis §6.3).
 *   CRED   uid u32, gid u32, ngroups u32, gid u32[ngroups]
 *          The caller (the process behind the mount): permission checks
 *          and the owner of what it creates.  ngroups at most
 *          PROTO_GROUPS_MAX.
 *   ATTR   inode u64, mode u32, nlink u32, uid u32, gid u32, rdev u32,
 *          size u64, atime i64, mtime i64, ctime i64, goal u8
 *          mode includes the S_IFMT type bits; times are nanoseconds since
 *          the Unix epoch; goal is the replication goal.
 *   NODE   cs_id u32, addr str             a chunkserver, addr "host:port"
 *   CHAIN  count u32, NODE[count]          an ordered list of chunkservers
 *   REPLICA chunk_id u64, version u32, length u32, state u8 (PROTO_REPLICA_*)
 *   DATA   offset u64, length u32, nblocks u32, crc u32[nblocks],
 *          data[length] (raw, no length prefix)
 *          CRC32C per PROTO_BLOCK_SIZE grid cell of the chunk, so the
 *          first and last block may be partial (wire_put_blocks,
 *          wire_get_blocks, wire_verify_blocks in common/wire.h).
 *   RAFT   from u64, to u64, term u64      starts every Raft message
 */
#ifndef DFS_PROTOCOL_H
#define DFS_PROTOCOL_H

/* The version byte of every frame header; bumped when any layout changes
 * incompatibly.  Peers with another version are refused (-DFS_EVERSION). */
#define PROTO_VERSION 1

/* ---- sizes and limits ------------------------------------------------- */

#define PROTO_CHUNK_SIZE      (64u << 20)   /* bytes per chunk by default: the
                                               cluster's comes in SESSION_OPEN
                                               and CS_REGISTER replies */
#define PROTO_BLOCK_SIZE      (64u << 10)   /* bytes per CRC32C block */
#define PROTO_CHUNKS_MAX      (1u << 24)    /* chunks per file */
#define PROTO_DATA_MAX        (1u << 20)    /* data bytes in one DATA */
#define PROTO_NAME_MAX        255           /* a directory entry name */
#define PROTO_PATH_MAX        4096          /* a symlink target */
#define PROTO_XATTR_NAME_MAX  255
#define PROTO_XATTR_VALUE_MAX (64u << 10)
#define PROTO_ADDR_MAX        256           /* "host:port" */
#define PROTO_CLIENT_NAME_MAX 256
#define PROTO_READDIR_MAX     1024          /* entries in one READDIR reply */
#define PROTO_SNAPSHOT_PIECE  (1u << 20)    /* snapshot bytes per message */
#define PROTO_ROOT_INODE      1
#define PROTO_GROUPS_MAX      32            /* supplementary groups in CRED */

/* ---- message ids ------------------------------------------------------ */

enum proto_msg {
    /* ---- client <-> master: sessions (0x010x) ---- */

    /* -> client_name str, lease_ms u32 (wanted)
     * <- session u64, lease_ms u32 (granted), chunk_size u64 (the
     *    cluster's bytes per chunk: chunk i holds [i, i+1) * chunk_size)
     * Not deduplicated: a retry may open a second session, which expires. */
    PROTO_SESSION_OPEN = 0x0101,
    /* -> HEAD                 <- lease_ms u32
     * Renews the session lease; a session not renewed within it expires,
     * releasing its open files, write leases and locks. */
    PROTO_SESSION_KEEPALIVE = 0x0102,
    /* [M] -> HEAD             <- (empty) */
    PROTO_SESSION_CLOSE = 0x0103,

    /* ---- client <-> master: namespace (0x011x) ---- */

    /* -> HEAD, parent u64, name str            <- ATTR */
    PROTO_LOOKUP = 0x0110,
    /* -> HEAD, inode u64                       <- ATTR */
    PROTO_GETATTR = 0x0111,
    /* [M] -> HEAD, inode u64, valid u32 (PROTO_SETATTR_*), mode u32,
     *        uid u32, gid u32, size u64, atime i64, mtime i64, goal u8
     *     <- ATTR
     * Fields whose bit is not in valid are ignored. */
    PROTO_SETATTR = 0x0112,
    /* [M] -> HEAD, parent u64, name str, mode u32
     *     <- ATTR */
    PROTO_MKDIR = 0x0113,
    /* [M] -> HEAD, parent u64, name str        <- (empty) */
    PROTO_RMDIR = 0x0114,
    /* [M] -> HEAD, parent u64, name str, mode u32, flags u32 (PROTO_OPEN_*)
     *     <- fh u64, ATTR
     * Creates and opens, as one step. */
    PROTO_CREATE = 0x0115,
    /* [M] -> HEAD, parent u64, name str, mode u32, rdev u32
     *     <- ATTR */
    PROTO_MKNOD = 0x0116,
    /* [M] -> HEAD, parent u64, name str        <- (empty)
     * An unlinked file still open stays (orphan) until its last RELEASE
     * or its sessions expire. */
    PROTO_UNLINK = 0x0117,
    /* [M] -> HEAD, parent u64, name str, new_parent u64, new_name str,
     *        flags u32 (PROTO_RENAME_*)
     *     <- (empty) */
    PROTO_RENAME = 0x0118,
    /* [M] -> HEAD, inode u64, new_parent u64, new_name str   <- ATTR */
    PROTO_LINK = 0x0119,
    /* [M] -> HEAD, parent u64, name str, target str
     *     <- ATTR */
    PROTO_SYMLINK = 0x011A,
    /* -> HEAD, inode u64                       <- target str */
    PROTO_READLINK = 0x011B,
    /* -> HEAD, dir u64, cookie u64, max u32, flags u8 (PROTO_READDIR_*)
     * <- count u32, ENTRY[count], eof u8
     *    ENTRY = cookie u64, inode u64, mode u32, name str,
     *            ATTR? (with PROTO_READDIR_PLUS)
     * cookie 0 starts; an entry's cookie resumes after it.  Cookies are
     * stable entry ids: inserts, deletes and rehashing between calls never
     * make an entry present throughout appear twice or not at all.  "."
     * and ".." are not sent. */
    PROTO_READDIR = 0x011C,
    /* -> HEAD
     * <- bytes_total u64, bytes_free u64, bytes_avail u64, files u64,
     *    files_free u64 */
    PROTO_STATFS = 0x011D,

    /* ---- client <-> master: extended attributes (0x012x) ---- */

    /* -> HEAD, inode u64, name str             <- value bytes
     * -ENODATA when absent. */
    PROTO_GETXATTR = 0x0120,
    /* [M] -> HEAD, inode u64, name str, value bytes,
     *        flags u32 (PROTO_XATTR_*)
     *     <- (empty) */
    PROTO_SETXATTR = 0x0121,
    /* -> HEAD, inode u64                       <- count u32, name str[count] */
    PROTO_LISTXATTR = 0x0122,
    /* [M] -> HEAD, inode u64, name str         <- (empty) */
    PROTO_REMOVEXATTR = 0x0123,

    /* ---- client <-> master: open files and locks (0x013x) ---- */

    /* [M] -> HEAD, inode u64, flags u32 (PROTO_OPEN_*)
     *     <- fh u64, ATTR, and for a read open of a non-empty regular file
     *        the CHUNK_LOCATIONS answer for chunk 0 (the reader's first
     *        read needs it)
     * fh names this open in the session. */
    PROTO_OPEN = 0x0130,
    /* [M] -> HEAD, fh u64, flags u32 (the open's PROTO_OPEN_READ|WRITE)
     *     <- (empty)
     * Drops the open.  It names no lock owner: the client UNLOCKs first
     * what the open's owners hold; what remains goes with the session. */
    PROTO_RELEASE = 0x0131,
    /* [M] -> HEAD, fh u64, owner u64, kind u8 (PROTO_LOCK_FLOCK|POSIX),
     *        type u8 (PROTO_LOCK_READ|WRITE), wait u8, start u64, end u64,
     *        pid u32
     *     <- (empty)
     * end is inclusive, UINT64_MAX for "to end of file"; flock ignores
     * start/end.  Conflict without wait: -EAGAIN.  With wait the reply
     * comes when the lock is granted, or -EINTR when an UNLOCK or a
     * LOCK_CANCEL of the same owner and range cancels the wait (-EDEADLK is reserved: no deadlock
     * detection).  A wait whose connection closes is forgotten; a master
     * that stops leading answers it NOT_LEADER.  The fh is the inode. */
    PROTO_LOCK = 0x0132,
    /* [M] -> HEAD, fh u64, owner u64, kind u8, start u64, end u64
     *     <- (empty)
     * Releases the range and cancels this owner's pending waits on it. */
    PROTO_UNLOCK = 0x0133,
    /* -> HEAD, fh u64, owner u64, type u8, start u64, end u64
     * <- type u8 (0: no conflict), start u64, end u64, pid u32
     * POSIX F_GETLK: the first lock of another owner that conflicts. */
    PROTO_LOCK_TEST = 0x0134,
    /* -> HEAD, fh u64, owner u64, kind u8, start u64, end u64
     * <- (empty)
     * Cancels this owner's pending waits on the range (each answered
     * -EINTR) and releases nothing; the leader answers it alone, nothing
     * goes through the log (waits are the leader's, not the namespace's). */
    PROTO_LOCK_CANCEL = 0x0135,

    /* ---- client <-> master: chunks (0x014x) ---- */

    /* [M] -> HEAD, inode u64, index u32
     *     <- chunk_id u64, version u32, prev_version u32, length u32,
     *        lease_ms u32, CHAIN
     * prev_version: the chunk's committed version (0 for a new chunk); the
     * chain's replicas are at it or later and move to version.
     * Grants this session the write lease on chunk index of the file
     * (waiting while another session holds it), creating the chunk
     * (prev_version 0) or bumping its version, committed through Raft
     * before the reply.  length: the chunk's length before this write. */
    PROTO_WRITE_BEGIN = 0x0140,
    /* [M] -> HEAD, inode u64, index u32, chunk_id u64, version u32,
     *        chunk_length u32, file_size u64, mtime i64, keep_lease u8
     *     <- ATTR
     * After the chain has the data on disk: commits the chunk length and
     * the file size (the larger of the current and file_size) and mtime. */
    PROTO_WRITE_END = 0x0141,
    /* [M] -> HEAD, inode u64, index u32, chunk_id u64, version u32,
     *        failed_cs u32
     *     <- as WRITE_BEGIN
     * A new version and chain without the failed replica (with a
     * replacement if one is free, else down to min_replicas; below that it
     * waits and fails with -EIO after the configured timeout). */
    PROTO_REPLACE_REPLICA = 0x0142,
    /* -> HEAD, inode u64, index u32, count u32
     * <- file_size u64, count u32, LOC[count]
     *    LOC = index u32, chunk_id u64, version u32, length u32, CHAIN
     * Chunks index .. index + count - 1 that exist (a hole is absent);
     * version is the chunk's committed version (last WRITE_END or
     * truncate) and CHAIN the live replicas at it or later: each holds
     * every committed byte. */
    PROTO_CHUNK_LOCATIONS = 0x0143,
    /* -> HEAD, chunk_id u64, version u32, cs_id u32, block u32
     * <- (empty)
     * A replica that failed its block CRC or its read. */
    PROTO_BAD_REPLICA = 0x0144,

    /* ---- client <-> master: administration (0x02xx) ---- */

    /* -> HEAD                  <- json str (the /api/status document) */
    PROTO_ADMIN_STATUS = 0x0201,
    /* [M] -> HEAD, addr str    <- master_id u64
     * Adds the master listening at addr (started with --join; its id is
     * the one it was configured with, learned from its ADMIN_MASTERS):
     * learner first, voter once caught up; answered once it votes.
     * Idempotent: a member at addr answers with its id. */
    PROTO_ADMIN_MASTER_ADD = 0x0202,
    /* [M] -> HEAD, master_id u64    <- (empty)
     * Answered once the configuration without it has committed; the
     * leader may remove itself (it steps down then).  -ENOENT when not a
     * member. */
    PROTO_ADMIN_MASTER_REMOVE = 0x0203,
    /* [M] -> HEAD, master_id u64    <- (empty)
     * Answered when master_id leads, or -ETIMEDOUT. */
    PROTO_ADMIN_LEADER_TRANSFER = 0x0204,
    /* [M] -> HEAD, cs_id u32        <- (empty)
     * Marks it decommissioned (replicated; answered once committed): no
     * new chunk goes there, its chunks are copied elsewhere, and the
     * status page shows "decommissioned" once it may be removed. */
    PROTO_ADMIN_CS_DECOMMISSION = 0x0205,
    /* -> HEAD, inode u64 (the subtree), verify u8
     * <- chunks u64, healthy u64, under_replicated u64, missing u64,
     *    corrupt u64, count u32, PROBLEM[count]
     *    PROBLEM = inode u64, index u32, chunk_id u64, version u32,
     *              replicas u32, goal u8, state u8 (PROTO_FSCK_*)
     * With verify, every chunkserver first re-reads its replicas of those
     * chunks (PROTO_CS_ORDER_VERIFY): the bad ones are marked corrupt (or
     * forgotten when gone) before the count, and the reply goes on with
     *    verified u64, bad u64, unverified u64, servers u32
     * replicas found good, found corrupt or gone, not re-read (server down
     * or silent, chunk being written), and the chunkservers asked. */
    PROTO_ADMIN_FSCK = 0x0206,
    /* -> HEAD
     * <- cluster_id u64, self_id u64, self_role u8, self_addr str,
     *    self_http str, leader_id u64, term u64, commit u64, count u32,
     *    MEMBER[count]
     *    MEMBER = id u64, role u8 (PROTO_MEMBER_*), addr str, http str
     * Any master answers with its own view (no leader needed): the Raft
     * configuration it holds with every member's addresses (http "" when
     * unknown); self_role is PROTO_MEMBER_NONE while it is not a member
     * (a master started with --join and not yet added), self_addr and
     * self_http its configured listen and http addresses.  A joining
     * master asks this of an existing one to learn the cluster; the leader
     * asks it of a master it adds.  Masters may add flags u8 after HEAD:
     * with PROTO_MASTERS_F_CONFIG the answer ends with config_index u64,
     * the index of the configuration entry the member list comes from
     * (committed when <= commit), so that a master can tell a committed
     * removal of itself from one that may still be undone. */
    PROTO_ADMIN_MASTERS = 0x0207,

    /* ---- master <-> master: Raft (0x03xx), one-way, req_id 0 ---- */

    /* Layouts follow master/raft.h's struct raft_msg; master/raftwire
     * is the codec.  Every payload is RAFT, then: */
    /* last_index u64, last_term u64, flags u8 (PROTO_VOTE_*)
     * With PROTO_VOTE_PREVOTE, term is the term the candidate would
     * take; voters change no state. */
    PROTO_RAFT_REQUEST_VOTE = 0x0301,
    /* granted u8, flags u8 (PROTO_VOTE_PREVOTE echoed) */
    PROTO_RAFT_REQUEST_VOTE_RESP = 0x0302,
    /* prev_index u64, prev_term u64, commit u64, seq u64,
     *   count u32, ENTRY[count]
     *   ENTRY = term u64, type u8, data bytes
     * Entries are prev_index + 1, + 2, ...; type is the core's entry type
     * (normal, no-op, configuration); seq is the leader's ReadIndex round,
     * echoed in the answer. */
    PROTO_RAFT_APPEND_ENTRIES = 0x0303,
    /* reject u8, index u64, hint_index u64, hint_term u64, seq u64
     * index: accepted, the last index matching the leader's log; rejected,
     * the prev_index refused; (hint_index, hint_term): where to retry. */
    PROTO_RAFT_APPEND_ENTRIES_RESP = 0x0304,
    /* SNAPMETA, total u64, offset u64, piece bytes
     *   SNAPMETA = index u64, term u64, members bytes (raft_members_encode)
     * One piece (at most PROTO_SNAPSHOT_PIECE bytes) of the snapshot at
     * index; pieces go in order, the last ends at total. */
    PROTO_RAFT_INSTALL_SNAPSHOT = 0x0305,
    /* index u64, offset u64 (bytes received so far), flags u8
     * (PROTO_SNAP_DONE: installed; PROTO_SNAP_GAP: a piece arrived past
     * offset, resend from offset) */
    PROTO_RAFT_INSTALL_SNAPSHOT_RESP = 0x0306,
    /* (nothing more)
     * Leadership transfer: start an election now, votes flagged
     * PROTO_VOTE_TRANSFER. */
    PROTO_RAFT_TIMEOUT_NOW = 0x0307,
    /* commit u64, seq u64
     * Leadership and commit index, no log matching. */
    PROTO_RAFT_HEARTBEAT = 0x0308,
    /* seq u64 */
    PROTO_RAFT_HEARTBEAT_RESP = 0x0309,

    /* ---- chunkserver <-> master (0x04xx) ---- */

    /* cs -> master
     * -> cluster_id u64 (0: fresh data directory), cs_id u32 (0: new),
     *    addr str, rack str, bytes_total u64, bytes_used u64, more u8,
     *    count u32, REPLICA[count]
     * <- cs_id u32, cluster_id u64, heartbeat_ms u32, chunk_size u64
     * The first part of the full chunk report; with more, CHUNK_REPORT
     * frames of kind FULL follow until one has more = 0.  A cluster_id of
     * another cluster is refused with -DFS_ECLUSTER. */
    PROTO_CS_REGISTER = 0x0401,
    /* cs -> master
     * -> cs_id u32, bytes_total u64, bytes_used u64, chunks u32, load u32,
     *    read_bytes u64, write_bytes u64, errors u64 (counters since start)
     * <- (empty) */
    PROTO_CS_HEARTBEAT = 0x0402,
    /* cs -> master
     * -> cs_id u32, kind u8 (PROTO_REPORT_*), more u8, count u32,
     *    REPLICA[count]
     * <- (empty) */
    PROTO_CS_CHUNK_REPORT = 0x0403,
    /* master -> cs; the reply is the result, sent when the order is done
     * -> chunk_id u64, version u32, length u32, sources CHAIN
     * <- length u32
     * Copy the replica from one of sources (PROTO_CS_COPY), verify and
     * sync it, then answer. */
    PROTO_CS_ORDER_REPLICATE = 0x0410,
    /* master -> cs
     * -> count u32, { chunk_id u64, version u32 }[count]
     * <- count u32, status i32[count]
     * Deletes each replica if it has that version (0: any version). */
    PROTO_CS_ORDER_DELETE = 0x0411,
    /* master -> cs
     * -> count u32, { chunk_id u64, version u32 }[count]
     * <- count u32, status i32[count]
     * Re-reads each replica: 0, -DFS_ECORRUPT, -DFS_ESTALE_VER or
     * -ENOENT. */
    PROTO_CS_ORDER_VERIFY = 0x0412,
    /* master -> cs
     * -> count u32, { chunk_id u64, version u32, new_version u32,
     *    length u32 }[count]
     * <- count u32, status i32[count]
     * A truncate cut the chunk short: trim each replica at version to
     * length and move it to new_version (one already at new_version is
     * left alone). */
    PROTO_CS_ORDER_TRUNCATE = 0x0413,

    /* ---- client <-> chunkserver (0x05xx) ---- */

    /* client -> cs1, forwarded cs1 -> cs2 -> ...
     * -> chunk_id u64, version u32, prev_version u32, flags u8
     *    (PROTO_WRITE_*), CHAIN (the servers after the receiver), DATA
     * <- (empty)
     * The receiver verifies the DATA block CRCs (-DFS_ECORRUPT), forwards
     * the frame to CHAIN[0] with CHAIN[0] removed, writes, and answers once
     * it and everything downstream have the data (on disk, with
     * PROTO_WRITE_SYNC).  Its replica must be at version (a retry) or
     * prev_version (then moves to version); prev_version 0 creates the
     * replica; otherwise -DFS_ESTALE_VER.  A DATA of length 0 with
     * PROTO_WRITE_SYNC flushes the chain.
     * A failed write's reply carries cs_id u32, addr str: the node that
     * failed (the one exception to "error replies are empty"), so the
     * client can ask for a chain without it (REPLACE_REPLICA). */
    PROTO_CS_WRITE = 0x0501,
    /* -> chunk_id u64, version u32, offset u64, length u32
     * <- chunk_length u32, DATA
     * version: the lowest acceptable (the chunk's committed version, as
     * CHUNK_LOCATIONS gives it); an older replica is -DFS_ESTALE_VER.
     * DATA covers [offset, offset + length) clipped to the chunk length;
     * the server verifies before it sends. */
    PROTO_CS_READ = 0x0502,
    /* -> (empty)
     * <- name str, token PROTO_LOCAL_TOKEN bytes, pid u32, uid u32
     * Local reads (docs/LOCAL_READS.md): the abstract unix socket (name,
     * without the leading NUL) on which this server hands clients on its
     * host read-only descriptors of its chunk files, the token every
     * request there carries, and the process that owns the socket (the
     * client checks its peer against them before it sends the token: an
     * abstract name is free for anyone to take once its server is gone).
     * -ENOSYS when the server has local reads off.  Connecting works only
     * from the same host and network namespace. */
    PROTO_CS_LOCAL = 0x0503,

    /* ---- chunkserver <-> chunkserver (0x06xx) ---- */

    /* Also PROTO_CS_WRITE, forwarded down a chain.
     * -> chunk_id u64, version u32, offset u64, length u32
     * <- chunk_length u32, DATA
     * Re-replication: the target of PROTO_CS_ORDER_REPLICATE reads the
     * replica from a source in pieces of at most PROTO_DATA_MAX. */
    PROTO_CS_COPY = 0x0601,
};

/*
 * The local-read socket (SOCK_SEQPACKET, little-endian), one packet each
 * way per request:
 *   -> magic u32, token[PROTO_LOCAL_TOKEN], chunk_id u64, min_version u32
 *   <- status i32, version u32, length u64, data_off u64, tail_crc u32
 *      and, when status is 0, the chunk file's descriptor (SCM_RIGHTS),
 *      open read-only.  The file holds chunk byte i at data_off + i and
 *      the CRC32C of each whole block b at PROTO_LOCAL_CRC_OFF + 4 * b;
 *      tail_crc is that of the last block's bytes below length when
 *      length is not a block multiple.  A wrong token is -EACCES.
 */
#define PROTO_LOCAL_MAGIC     0x4c534644u   /* "DFSL" little-endian */
#define PROTO_LOCAL_TOKEN     16
#define PROTO_LOCAL_NAME_MAX  64         /* the socket's name, with its NUL */
#define PROTO_LOCAL_REQ_LEN   (4 + PROTO_LOCAL_TOKEN + 8 + 4)
#define PROTO_LOCAL_REPLY_LEN (4 + 4 + 8 + 8 + 4)
#define PROTO_LOCAL_CRC_OFF   8192

/*
 * NOT_LEADER: the payload of a reply with status -DFS_ENOTLEADER, which a
 * master that does not lead gives to any client <-> master request (and to
 * CS_REGISTER, CS_HEARTBEAT, CS_CHUNK_REPORT):
 *     leader_id u64 (0: unknown), leader_addr str ("" when unknown)
 * The client retries the same request, with the same HEAD, at that master.
 */

/* ---- field values ----------------------------------------------------- */

/* SETATTR valid bits */
#define PROTO_SETATTR_MODE      0x001
#define PROTO_SETATTR_UID       0x002
#define PROTO_SETATTR_GID       0x004
#define PROTO_SETATTR_SIZE      0x008
#define PROTO_SETATTR_ATIME     0x010
#define PROTO_SETATTR_MTIME     0x020
#define PROTO_SETATTR_ATIME_NOW 0x040   /* the leader's clock, in the entry */
#define PROTO_SETATTR_MTIME_NOW 0x080
#define PROTO_SETATTR_GOAL      0x100

/* OPEN / CREATE flags */
#define PROTO_OPEN_READ    0x01
#define PROTO_OPEN_WRITE   0x02
#define PROTO_OPEN_TRUNC   0x04
#define PROTO_OPEN_APPEND  0x08
#define PROTO_OPEN_EXCL    0x10         /* CREATE: -EEXIST if present */

/* RENAME flags (the Linux renameat2 semantics) */
#define PROTO_RENAME_NOREPLACE 0x1
#define PROTO_RENAME_EXCHANGE  0x2

/* SETXATTR flags */
#define PROTO_XATTR_CREATE  0x1
#define PROTO_XATTR_REPLACE 0x2

/* READDIR flags */
#define PROTO_READDIR_PLUS  0x1         /* each ENTRY carries its ATTR */

/* LOCK kind and type */
#define PROTO_LOCK_FLOCK  1
#define PROTO_LOCK_POSIX  2
#define PROTO_LOCK_READ   1
#define PROTO_LOCK_WRITE  2

/* CS_WRITE flags */
#define PROTO_WRITE_SYNC     0x1        /* fdatasync before acknowledging */
#define PROTO_WRITE_TRUNCATE 0x2        /* then set the length to the end */

/* REPLICA state */
#define PROTO_REPLICA_OK      0
#define PROTO_REPLICA_CORRUPT 1

/* CHUNK_REPORT kind */
#define PROTO_REPORT_FULL    1          /* continues CS_REGISTER's report */
#define PROTO_REPORT_CHANGED 2          /* replicas changed since the last */

/* REQUEST_VOTE flags */
#define PROTO_VOTE_PREVOTE  0x1
#define PROTO_VOTE_TRANSFER 0x2         /* ignore the leader lease */

/* INSTALL_SNAPSHOT_RESP flags */
#define PROTO_SNAP_DONE 0x1
#define PROTO_SNAP_GAP  0x2

/* ADMIN_FSCK problem state */
#define PROTO_FSCK_UNDER   1            /* fewer healthy replicas than goal */
#define PROTO_FSCK_MISSING 2            /* no healthy replica */
#define PROTO_FSCK_CORRUPT 3            /* a replica failed verification */
/* No replica at the chunk's version yet, but replicas from before a
 * truncate's cut await their trim order (CS_ORDER_TRUNCATE): counted
 * under-replicated, its data is not lost. */
#define PROTO_FSCK_TRIMMING 4

/* ADMIN_MASTERS request flags */
#define PROTO_MASTERS_F_CONFIG 0x01     /* answer with config_index */

/* ADMIN_MASTERS member role */
#define PROTO_MEMBER_NONE    0          /* not in the configuration */
#define PROTO_MEMBER_LEARNER 1          /* receives the log, does not vote */
#define PROTO_MEMBER_VOTER   2

#endif
