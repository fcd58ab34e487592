/*
 * dfs_error: the one error space of dfs.
 *
 * 0 is success; a negative errno is a failure.  POSIX codes fit a file
 * system and cross the FUSE edge unchanged.  The few conditions errno cannot
 * name get DFS_E* codes above errno's range (also used negated).  Any module
 * may include this; dfs_strerror() is the one table from code to message.
 */
#ifndef DFS_ERROR_H
#define DFS_ERROR_H

enum {
    DFS_EBASE = 1000,
    DFS_EMAGIC,        /* frame does not start with the dfs magic */
    DFS_EVERSION,      /* peer speaks another protocol version */
    DFS_EHDRCRC,       /* frame header checksum mismatch */
    DFS_ETOOBIG,       /* a length is over its configured maximum */
    DFS_ETRUNC,        /* input ends before the value it announced */
    DFS_EAUTH,         /* peer failed the cluster-key handshake */
    DFS_ENOTLEADER,    /* this master is not the Raft leader */
    DFS_ECORRUPT,      /* stored data fails its checksum */
    DFS_ESTALE_VER,    /* replica has an older chunk version */
    DFS_ECONF,         /* configuration file or option is invalid */
    DFS_ECLUSTER,      /* data directory belongs to another cluster */
    DFS_EIDINUSE,      /* a leader-chosen id (inode, chunk, session) is taken */
    DFS_ESESSION,      /* no such client session (never opened or expired) */
    DFS_ESEQ,          /* request sequence too old to deduplicate */
    DFS_ENOLEASE,      /* the session holds no write lease on that chunk */
    DFS_ENOTREADY,     /* leader still applying earlier terms: retry */
    DFS_ERESTARTED,    /* replica's server restarted in the write session */
    DFS_ELAST
};

/*
 * Message for an error code, positive or negative, DFS_E* or errno.
 * Returns a static string; never NULL.
 */
const char *dfs_strerror(int err);

#endif
