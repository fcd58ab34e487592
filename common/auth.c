/*
 * auth: cluster key files and the mutual HMAC-SHA256 handshake.
 *
 * Owns: the key file format (64 hex digits), the handshake messages and
 * transcript (layout in auth.h and docs/SECURITY.md), the per-connection
 * state machine, and a blocking driver of it over a socket.
 *
 * States of struct auth_state (only auth_init and auth_input move them):
 *   RUNNING --peer HELLO ok--> RUNNING with our PROOF queued
 *           --peer PROOF verifies--> DONE
 *   any wrong byte, bad MAC, reflection or crypto failure --> FAILED
 *
 * Invariants:
 *  1. A peer is DONE only after CRYPTO_memcmp accepted a MAC that binds
 *     both nonces, the peer's role and, through the HELLOs, the version.
 *  2. Our PROOF is queued as soon as the peer's HELLO is valid and before
 *     the peer's PROOF is read, so a peer with a wrong key can tell too.
 *  3. auth_input consumes at most 2 * AUTH_MSG_LEN bytes over a handshake;
 *     the rest of the stream belongs to the next layer, and the fd driver
 *     never reads past the message it is waiting for.
 *  4. Key bytes, the expected MAC and the session value are wiped with
 *     OPENSSL_cleanse before their storage is given up.
 */
#include "auth.h"

#include "dfs_error.h"
#include "ev.h"
#include "log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

/* ---- key files ---------------------------------------------------------- */

#define KEY_HEX_LEN (2 * AUTH_KEY_LEN)
/* A key file is 64 digits and a newline; allow generous whitespace, but a
 * file far larger is not a key file and is not read whole. */
#define KEY_FILE_MAX 256

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0xf];
    }
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Makes a new directory entry durable: fsync of the directory holding it. */
static int fsync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path))
                      : strdup(".");
    if (!dir)
        return -ENOMEM;
    int rc = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0)
        rc = -errno;
    if (fd >= 0)
        close(fd);
    free(dir);
    return rc;
}

int auth_keygen(const char *path)
{
    unsigned char key[AUTH_KEY_LEN];
    char text[KEY_HEX_LEN + 1];
    int rc = 0;

    if (RAND_bytes(key, sizeof(key)) != 1)
        return -EIO;
    hex_encode(key, sizeof(key), text);
    text[KEY_HEX_LEN] = '\n';

    size_t plen = strlen(path);
    char *tmp = malloc(plen + sizeof(".tmp.XXXXXX"));
    if (!tmp) {
        rc = -ENOMEM;
        goto err_wipe;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", sizeof(".tmp.XXXXXX"));
    /* mkostemp creates the file mode 0600, so the key is never readable by
     * others, not even while it is being written. */
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        goto err_free_tmp;
    }
    rc = write_all(fd, text, sizeof(text));
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    /* link(2), unlike rename(2), fails on an existing name: a key that
     * nodes may already use is never silently replaced. */
    if (rc == 0 && link(tmp, path) != 0)
        rc = -errno;
    unlink(tmp);
    if (rc == 0)
        rc = fsync_parent_dir(path);
err_free_tmp:
    free(tmp);
err_wipe:
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(text, sizeof(text));
    return rc;
}

/* Parses the text of a key file; err messages name path. */
static int parse_key_text(const char *text, size_t n, struct auth_key *out,
                          const char *path, char *err, size_t errlen)
{
    size_t start = 0;
    while (start < n && isspace((unsigned char)text[start]))
        start++;
    while (n > start && isspace((unsigned char)text[n - 1]))
        n--;
    if (n - start != KEY_HEX_LEN) {
        set_err(err, errlen,
                "key file %s: expected %d hex digits (%d bytes), found %zu characters",
                path, KEY_HEX_LEN, AUTH_KEY_LEN, n - start);
        return -DFS_ECONF;
    }
    for (size_t i = 0; i < AUTH_KEY_LEN; i++) {
        size_t at = start + 2 * i;
        int hi = hex_value(text[at]);
        int lo = hex_value(text[at + 1]);
        if (hi < 0 || lo < 0) {
            set_err(err, errlen, "key file %s: not a hex digit at offset %zu", path,
                    hi < 0 ? at : at + 1);
            OPENSSL_cleanse(out, sizeof(*out));
            return -DFS_ECONF;
        }
        out->bytes[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

/* Reads up to cap bytes; returns the count or a negative errno. */
static ssize_t read_upto(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    while (got < cap) {
        ssize_t r = read(fd, buf + got, cap - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

int auth_key_load(const char *path, struct auth_key *out, char *err, size_t errlen)
{
    char text[KEY_FILE_MAX + 1];
    struct stat sb;
    int rc;

    memset(out, 0, sizeof(*out));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        set_err(err, errlen, "key file %s: %s", path, strerror(-rc));
        return rc;
    }
    if (fstat(fd, &sb) != 0) {
        rc = -errno;
        set_err(err, errlen, "key file %s: %s", path, strerror(-rc));
        goto out_close;
    }
    if (!S_ISREG(sb.st_mode)) {
        rc = -DFS_ECONF;
        set_err(err, errlen, "key file %s: not a regular file", path);
        goto out_close;
    }
    if (sb.st_mode & (S_IRWXG | S_IRWXO))
        log_warn("auth: key file %s has mode %04o: group or others can reach the "
                 "cluster key; chmod 600 it", path, (unsigned)(sb.st_mode & 07777));

    ssize_t n = read_upto(fd, text, sizeof(text));
    if (n < 0) {
        rc = (int)n;
        set_err(err, errlen, "key file %s: %s", path, strerror(-rc));
        goto out_close;
    }
    if (n > KEY_FILE_MAX) {
        rc = -DFS_ECONF;
        set_err(err, errlen, "key file %s: longer than %d bytes, expected %d hex digits",
                path, KEY_FILE_MAX, KEY_HEX_LEN);
        goto out_wipe;
    }
    rc = parse_key_text(text, (size_t)n, out, path, err, errlen);
out_wipe:
    OPENSSL_cleanse(text, sizeof(text));
out_close:
    close(fd);
    return rc;
}

void auth_key_release(struct auth_key *key)
{
    if (key)
        OPENSSL_cleanse(key, sizeof(*key));
}

/* ---- handshake state machine -------------------------------------------- */

static const unsigned char auth_magic[4] = { 'D', 'F', 'S', 'A' };

/* Message layout: the same 8-byte header on HELLO and PROOF. */
enum { OFF_MAGIC = 0, OFF_VERSION = 4, OFF_TYPE = 5, OFF_ROLE = 6, OFF_PAD = 7,
       OFF_BODY = 8 };
enum { MSG_HELLO = 1, MSG_PROOF = 2 };

/* The purpose byte of a transcript MAC: a proof uses its prover's role
 * (AUTH_CLIENT or AUTH_SERVER), so one side's MAC never verifies as the
 * other's; the session value has its own. */
enum { PURPOSE_SESSION = 3 };

/* With its NUL: 12 bytes, fixed, so the transcript needs no lengths. */
static const char auth_label[] = "dfs-auth-v1";

_Static_assert(OFF_BODY + AUTH_NONCE_LEN == AUTH_MSG_LEN, "HELLO size");
_Static_assert(OFF_BODY + AUTH_MAC_LEN == AUTH_MSG_LEN, "PROOF size");

static enum auth_role peer_role(const struct auth_state *st)
{
    return st->role == AUTH_CLIENT ? AUTH_SERVER : AUTH_CLIENT;
}

static int fail(struct auth_state *st, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct auth_state *st, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->reason, sizeof(st->reason), fmt, ap);
    va_end(ap);
    st->status = AUTH_FAILED;
    st->err = err;
    return err;
}

static void put_header(unsigned char *m, int type, enum auth_role role)
{
    memcpy(m + OFF_MAGIC, auth_magic, sizeof(auth_magic));
    m[OFF_VERSION] = AUTH_VERSION;
    m[OFF_TYPE] = (unsigned char)type;
    m[OFF_ROLE] = (unsigned char)role;
    m[OFF_PAD] = 0;
}

/* HMAC-SHA256(key, label || purpose || client HELLO || server HELLO). */
static int transcript_mac(const struct auth_state *st, int purpose, unsigned char *mac)
{
    unsigned char msg[sizeof(auth_label) + 1 + 2 * AUTH_MSG_LEN];
    unsigned char *p = msg;
    memcpy(p, auth_label, sizeof(auth_label));
    p += sizeof(auth_label);
    *p++ = (unsigned char)purpose;
    memcpy(p, st->hello[0], AUTH_MSG_LEN);
    memcpy(p + AUTH_MSG_LEN, st->hello[1], AUTH_MSG_LEN);

    unsigned int len = 0;
    if (!HMAC(EVP_sha256(), st->key->bytes, AUTH_KEY_LEN, msg, sizeof(msg), mac, &len)
        || len != AUTH_MAC_LEN)
        return -EIO;
    return 0;
}

int auth_init(struct auth_state *st, const struct auth_key *key, enum auth_role role)
{
    memset(st, 0, sizeof(*st));
    if (!key || (role != AUTH_CLIENT && role != AUTH_SERVER))
        return fail(st, -EINVAL, "auth_init: no key or bad role %d", (int)role);
    st->key = key;
    st->role = role;
    st->status = AUTH_RUNNING;

    unsigned char *hello = st->hello[role - 1];
    put_header(hello, MSG_HELLO, role);
    if (RAND_bytes(hello + OFF_BODY, AUTH_NONCE_LEN) != 1)
        return fail(st, -EIO, "no random bytes for the nonce");
    memcpy(st->out, hello, AUTH_MSG_LEN);
    st->out_len = AUTH_MSG_LEN;
    return 0;
}

void auth_output(struct auth_state *st, const void **ptr, size_t *len)
{
    *ptr = st->out + st->out_given;
    *len = st->out_len - st->out_given;
    st->out_given = st->out_len;
}

/* A peer that does not start with the magic is not a dfs node at all:
 * show what it sent, printable, so the operator can tell who it is. */
static int fail_magic(struct auth_state *st)
{
    char shown[9];
    size_t n = st->in_have < 8 ? st->in_have : 8;
    for (size_t i = 0; i < n; i++)
        shown[i] = isprint(st->in[i]) ? (char)st->in[i] : '.';
    shown[n] = '\0';
    return fail(st, -DFS_EMAGIC, "not a dfs handshake: got \"%s\" where \"DFSA\" was expected",
                shown);
}

/* Checks the header bytes received so far, so a wrong peer fails at the
 * first byte that gives it away. */
static int check_header(struct auth_state *st)
{
    const unsigned char *m = st->in;
    size_t have = st->in_have;
    int type = st->peer_msgs == 0 ? MSG_HELLO : MSG_PROOF;

    if (memcmp(m, auth_magic, have < sizeof(auth_magic) ? have : sizeof(auth_magic)) != 0)
        return fail_magic(st);
    if (have > OFF_VERSION && m[OFF_VERSION] != AUTH_VERSION)
        return fail(st, -DFS_EVERSION, "peer speaks auth version %u, we speak %u",
                    m[OFF_VERSION], AUTH_VERSION);
    if (have > OFF_TYPE && m[OFF_TYPE] != type)
        return fail(st, -EPROTO, "expected a %s, got message type %u",
                    type == MSG_HELLO ? "HELLO" : "PROOF", m[OFF_TYPE]);
    if (have > OFF_ROLE && m[OFF_ROLE] != peer_role(st))
        return fail(st, -DFS_EAUTH, "peer claims role %u, ours is %u "
                    "(two %ss, or a reflected message)", m[OFF_ROLE], st->role,
                    st->role == AUTH_CLIENT ? "client" : "server");
    if (have > OFF_PAD && m[OFF_PAD] != 0)
        return fail(st, -EPROTO, "reserved header byte is %u, not 0", m[OFF_PAD]);
    return 0;
}

static void on_peer_hello(struct auth_state *st)
{
    memcpy(st->hello[peer_role(st) - 1], st->in, AUTH_MSG_LEN);
    /* Our own nonce coming back is our HELLO reflected with its role byte
     * rewritten; refuse it outright rather than rely on the MAC alone. */
    if (memcmp(st->hello[0] + OFF_BODY, st->hello[1] + OFF_BODY, AUTH_NONCE_LEN) == 0) {
        fail(st, -DFS_EAUTH, "peer sent our own nonce back (reflected HELLO)");
        return;
    }
    unsigned char *proof = st->out + AUTH_MSG_LEN;
    put_header(proof, MSG_PROOF, st->role);
    if (transcript_mac(st, st->role, proof + OFF_BODY) != 0) {
        fail(st, -EIO, "HMAC-SHA256 failed");
        return;
    }
    st->out_len = 2 * AUTH_MSG_LEN;
}

static void on_peer_proof(struct auth_state *st)
{
    unsigned char want[AUTH_MAC_LEN];
    if (transcript_mac(st, peer_role(st), want) != 0) {
        fail(st, -EIO, "HMAC-SHA256 failed");
        return;
    }
    int bad = CRYPTO_memcmp(want, st->in + OFF_BODY, AUTH_MAC_LEN);
    OPENSSL_cleanse(want, sizeof(want));
    if (bad) {
        fail(st, -DFS_EAUTH, "wrong cluster key (the peer's proof does not verify)");
        return;
    }
    if (transcript_mac(st, PURPOSE_SESSION, st->session) != 0) {
        fail(st, -EIO, "HMAC-SHA256 failed");
        return;
    }
    st->status = AUTH_DONE;
}

size_t auth_input(struct auth_state *st, const void *data, size_t len)
{
    const unsigned char *p = data;
    size_t used = 0;

    while (st->status == AUTH_RUNNING && used < len) {
        size_t take = AUTH_MSG_LEN - st->in_have;
        if (take > len - used)
            take = len - used;
        memcpy(st->in + st->in_have, p + used, take);
        st->in_have += take;
        used += take;
        if (check_header(st) != 0 || st->in_have < AUTH_MSG_LEN)
            continue;
        st->in_have = 0;
        if (st->peer_msgs++ == 0)
            on_peer_hello(st);
        else
            on_peer_proof(st);
    }
    return used;
}

enum auth_status auth_status(const struct auth_state *st)
{
    return st->status;
}

int auth_error(const struct auth_state *st)
{
    return st->status == AUTH_FAILED ? st->err : 0;
}

const char *auth_reason(const struct auth_state *st)
{
    return st->status == AUTH_FAILED ? st->reason : "";
}

const unsigned char *auth_session(const struct auth_state *st)
{
    return st->status == AUTH_DONE ? st->session : NULL;
}

static void log_refused(const char *peer, const char *reason)
{
    log_warn("auth: refused %s: %s", peer, reason);
}

void auth_log_refusal(const struct auth_state *st, const char *peer)
{
    log_refused(peer, auth_reason(st));
}

void auth_release(struct auth_state *st)
{
    if (st)
        OPENSSL_cleanse(st, sizeof(*st));
}

/* ---- blocking driver over a socket -------------------------------------- */

/* "127.0.0.1:5000", "[::1]:5000" or a fallback naming the fd. */
static const char *peer_address(int fd, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char ip[INET6_ADDRSTRLEN];

    if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0) {
        snprintf(buf, len, "fd %d", fd);
        return buf;
    }
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
        snprintf(buf, len, "%s:%u", ip, ntohs(sin->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
        snprintf(buf, len, "[%s]:%u", ip, ntohs(sin6->sin6_port));
    } else {
        snprintf(buf, len, "local socket (fd %d)", fd);
    }
    return buf;
}

/* Reads at most the rest of the message st waits for (invariant 3). */
static int recv_message_part(struct auth_state *st, int fd)
{
    unsigned char buf[AUTH_MSG_LEN];
    ssize_t n = recv(fd, buf, AUTH_MSG_LEN - st->in_have, MSG_DONTWAIT);
    if (n == 0)
        return -ECONNRESET;
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
    auth_input(st, buf, (size_t)n);
    return 0;
}

static int send_part(int fd, const unsigned char **out, size_t *left)
{
    ssize_t n = send(fd, *out, *left, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno == EPIPE)
        return -ECONNRESET;   /* the peer is gone, as when recv sees EOF */
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
    *out += n;
    *left -= (size_t)n;
    return 0;
}

static int drive_fd(struct auth_state *st, int fd, int timeout_ms)
{
    int64_t deadline = (int64_t)ev_clock_ms() + timeout_ms;
    const unsigned char *out = NULL;
    size_t out_left = 0;

    for (;;) {
        if (out_left == 0) {
            const void *p;
            auth_output(st, &p, &out_left);
            out = p;
        }
        if (st->status == AUTH_FAILED) {
            /* Best effort: our queued PROOF tells the peer its key is wrong. */
            if (out_left > 0)
                (void)send_part(fd, &out, &out_left);
            return st->err;
        }
        if (st->status == AUTH_DONE && out_left == 0)
            return 0;

        int wait = -1;
        if (timeout_ms >= 0) {
            int64_t left = deadline - (int64_t)ev_clock_ms();
            if (left <= 0)
                return -ETIMEDOUT;
            wait = (int)left;
        }
        struct pollfd pfd = { .fd = fd, .events = 0 };
        if (out_left > 0)
            pfd.events |= POLLOUT;
        if (st->status == AUTH_RUNNING)
            pfd.events |= POLLIN;
        int n = poll(&pfd, 1, wait);
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n <= 0)
            continue;
        if (pfd.revents & POLLNVAL)
            return -EBADF;

        int rc = 0;
        if (out_left > 0 && (pfd.revents & (POLLOUT | POLLERR | POLLHUP)))
            rc = send_part(fd, &out, &out_left);
        if (rc == 0 && st->status == AUTH_RUNNING
            && (pfd.revents & (POLLIN | POLLERR | POLLHUP)))
            rc = recv_message_part(st, fd);
        if (rc != 0)
            return rc;
    }
}

/* Why drive_fd gave up when the state machine itself did not fail. */
static const char *io_reason(int rc, int timeout_ms, char *buf, size_t len)
{
    if (rc == -ETIMEDOUT)
        snprintf(buf, len, "no complete handshake within %d ms", timeout_ms);
    else if (rc == -ECONNRESET)
        snprintf(buf, len, "connection closed during the handshake");
    else
        snprintf(buf, len, "%s", dfs_strerror(rc));
    return buf;
}

int auth_handshake_fd(int fd, const struct auth_key *key, enum auth_role role,
                      int timeout_ms, const char *peer_name)
{
    char addr[INET6_ADDRSTRLEN + 32];
    char why[64];
    struct auth_state st;

    if (!peer_name)
        peer_name = peer_address(fd, addr, sizeof(addr));
    int rc = auth_init(&st, key, role);
    /* poll(2) silently skips a negative fd: it would only time out. */
    if (rc == 0)
        rc = fd < 0 ? -EBADF : drive_fd(&st, fd, timeout_ms);

    if (rc == 0)
        log_debug("auth: %s authenticated", peer_name);
    else if (st.status == AUTH_FAILED)
        auth_log_refusal(&st, peer_name);
    else
        log_refused(peer_name, io_reason(rc, timeout_ms, why, sizeof(why)));
    auth_release(&st);
    return rc;
}
