/*
 * auth: the cluster-key handshake that opens every dfs TCP connection.
 *
 * Every node and tool holds the same 32-byte cluster key.  Before the first
 * frame, both ends of a connection prove they know it without sending it:
 *
 *   each side sends    HELLO = "DFSA" ver type role 0  nonce[32]   (40 bytes)
 *   on the peer HELLO  PROOF = "DFSA" ver type role 0  mac[32]     (40 bytes)
 *
 *   mac = HMAC-SHA256(key, "dfs-auth-v1\0" || purpose || HELLO_client
 *                                                     || HELLO_server)
 *   purpose: 1 client's proof, 2 server's proof, 3 session value.
 *
 * Both HELLOs go out at once (neither waits), so the handshake costs one
 * round trip, and each side sends its PROOF before it checks the peer's,
 * so a wrong key is detected and refused on both sides.  The MAC binds
 * both fresh nonces (no replay), the prover's role (a reflected PROOF or
 * HELLO is useless) and the version (inside each HELLO).  A peer whose
 * first bytes are not "DFSA" (an HTTP client, a node without the handshake)
 * fails at the first wrong byte.  docs/SECURITY.md has the threat model.
 *
 * Two interfaces over one core: a pure state machine (no sockets, no
 * clock) for the event loop, and auth_handshake_fd() for blocking tools.
 *
 * Errors are the dfs error space: -DFS_EAUTH (wrong key, reflection, peer
 * with our own role), -DFS_EMAGIC (not a dfs handshake), -DFS_EVERSION,
 * -EPROTO (a dfs peer sent a malformed message), -DFS_ECONF (bad key file).
 */
#ifndef DFS_AUTH_H
#define DFS_AUTH_H

#include <stddef.h>

#define AUTH_KEY_LEN     32   /* bytes of cluster key */
#define AUTH_NONCE_LEN   32
#define AUTH_MAC_LEN     32   /* HMAC-SHA256 */
#define AUTH_SESSION_LEN 32
#define AUTH_MSG_LEN     40   /* HELLO and PROOF alike */
#define AUTH_VERSION     1

/* A role is also the byte sent in the role field of every message. */
enum auth_role { AUTH_CLIENT = 1, AUTH_SERVER = 2 };

enum auth_status { AUTH_RUNNING, AUTH_DONE, AUTH_FAILED };

/* The cluster key.  Plain storage owned by whoever declares it; wipe it
 * with auth_key_release() when done. */
struct auth_key {
    unsigned char bytes[AUTH_KEY_LEN];
};

/*
 * Writes a fresh random key (RAND_bytes) to path as 64 hex digits and a
 * newline, mode 0600.  The file appears complete or not at all (written to
 * a temporary name in the same directory, fsynced, then linked), and an
 * existing file is never replaced: that is -EEXIST.  Returns 0 or a
 * negative errno (-EIO if the random generator fails).
 */
int auth_keygen(const char *path);

/*
 * Reads a key file written by auth_keygen (64 hex digits; surrounding
 * whitespace ignored) into *out.  A file readable or writable by group or
 * others is loaded but logged as a warning.  On failure returns -errno (the
 * file cannot be opened or read) or -DFS_ECONF (not a regular file, bad
 * length, bad hex digit), *out is zeroed and, when err is not NULL, err gets
 * a one-line message naming the file (truncated to errlen).
 */
int auth_key_load(const char *path, struct auth_key *out, char *err, size_t errlen);

/* Wipes the key (OPENSSL_cleanse).  NULL is a no-op. */
void auth_key_release(struct auth_key *key);

/*
 * One side of one handshake.  Declare it anywhere (embedded in a
 * connection); the fields are private, use the functions below.
 */
struct auth_state {
    const struct auth_key *key;            /* borrowed, see auth_init */
    enum auth_role role;
    enum auth_status status;
    int err;                               /* 0, or negative once FAILED */
    int peer_msgs;                         /* peer messages complete: 0..2 */
    unsigned char hello[2][AUTH_MSG_LEN];  /* [0] client's, [1] server's */
    unsigned char out[2 * AUTH_MSG_LEN];   /* our HELLO then our PROOF */
    size_t out_len;                        /* bytes of out queued so far */
    size_t out_given;                      /* bytes handed to auth_output */
    unsigned char in[AUTH_MSG_LEN];        /* peer message being received */
    size_t in_have;
    unsigned char session[AUTH_SESSION_LEN];
    char reason[112];
};

/*
 * Starts a handshake as AUTH_CLIENT (the side that connected) or
 * AUTH_SERVER (the side that accepted); our HELLO is queued at once.  key is
 * borrowed and must outlive st.  Returns 0, -EINVAL (bad role or NULL key)
 * or -EIO (no randomness); on error st is FAILED and needs no release
 * (releasing it anyway is fine).
 */
int auth_init(struct auth_state *st, const struct auth_key *key, enum auth_role role);

/*
 * Hands out the bytes queued to send since the last call (*len may be 0)
 * and counts them as taken: the caller must send them all, in order, e.g.
 * by copying them to its write buffer.  *ptr points into st and stays valid
 * until auth_release.  Call it after auth_init and after every auth_input,
 * also when the state became DONE or FAILED: our PROOF may still be queued
 * then, and a failed peer learns of its wrong key from it.
 */
void auth_output(struct auth_state *st, const void **ptr, size_t *len);

/*
 * Feeds bytes received from the peer, any split.  Returns how many were
 * consumed; the handshake never takes more than its own 80 bytes, so once
 * DONE the bytes from data + return value on are the first frame.  A
 * message that is wrong moves st to FAILED at its first wrong byte; a call
 * in DONE or FAILED consumes nothing.
 */
size_t auth_input(struct auth_state *st, const void *data, size_t len);

enum auth_status auth_status(const struct auth_state *st);

/* 0 unless FAILED, then the negative error code. */
int auth_error(const struct auth_state *st);

/* Why st FAILED, for a log line ("" otherwise); valid while st lives. */
const char *auth_reason(const struct auth_state *st);

/*
 * A value both sides derive once DONE (HMAC of the transcript), unknown to
 * anyone without the key; AUTH_SESSION_LEN bytes inside st, NULL unless
 * DONE.  Meant for later per-frame MACs; nothing uses it yet.
 */
const unsigned char *auth_session(const struct auth_state *st);

/* Logs "auth: refused <peer>: <reason>" as a warning for a FAILED st. */
void auth_log_refusal(const struct auth_state *st, const char *peer);

/* Wipes st (nonces, session value).  NULL is a no-op. */
void auth_release(struct auth_state *st);

/*
 * Runs the whole handshake on a connected socket, blocking in poll(2) up to
 * timeout_ms in total (negative: no limit).  Reads no byte past the
 * handshake, so the next layer starts exactly at the first frame.  The fd
 * may be blocking or not; its flags are left as they were.  peer_name
 * names the peer in log lines; NULL means its address from getpeername.
 * Returns 0 when both sides are authenticated; otherwise logs
 * "auth: refused <peer>: <reason>" and returns the state's error,
 * -ETIMEDOUT, -ECONNRESET (peer closed mid-handshake) or another -errno.
 */
int auth_handshake_fd(int fd, const struct auth_key *key, enum auth_role role,
                      int timeout_ms, const char *peer_name);

#endif
