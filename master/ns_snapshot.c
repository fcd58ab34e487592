/*
 * ns_snapshot: canonical serialisation of struct ns.
 *
 * Owns nothing beyond one call.  The body is produced in pieces of about
 * PIECE bytes into a small wire_writer and handed to a sink: zlib's
 * deflate for a snapshot, SHA-256 for a digest, so neither needs the whole
 * uncompressed body in memory.  Loading inflates the body at once (its
 * length is in the header), decodes it, rebuilds what is derived (open
 * counts, lease map, sessions' lock lists, counters), runs ns_check(), and
 * finally re-hashes the loaded state against the body's own hash (encoded
 * again in the format it was read in), so an input that is valid but not
 * canonical is refused too.
 *
 * Formats: 5 writes the chunk size; 4 (written before the cluster had
 * one: the default), 3 (before chunks had a trim_from) and 2 (before locks
 * had a pid) are still read, with chunk size 0 (not fixed), trim_from 0
 * and pid 0 where their layout has none, so that a master upgraded in
 * place restarts from its own snapshot.  Each is written on request only
 * for a state it can hold.
 *
 * File layout:
 *   "DFSNSNAP"  u32 format (5)  u64 body length  deflate(body)  u32 crc32c
 * Body layout (wire encoding, all counts before their items):
 *   u32 cfg flags, squash uid, squash gid; u64 chunk size (not in formats
 *   2 to 4); u64 max chunk id; u64 max
 *   session id; u32 inode generation counter
 *   u64 ninodes, then per inode ascending: u32 ino, mode, uid, gid, nlink,
 *     gen; u8 goal; u64 size; i64 atime, mtime, ctime; then by type:
 *     dir: u32 parent, u64 next entry id, u32 n, n x (u64 id, u32 ino, str)
 *     symlink: str target;  device: u32 rdev
 *     file: u32 nslots, per slot u64 id (0 hole) [u32 version,
 *           u32 committed, u32 length, u32 trim_from (not in formats 2, 3)]
 *     then u32 nxattrs x (str name, str value), u32 nlocks x (u64 sess,
 *     owner, start, end, u32 kind, type, pid (not in format 2))
 *   u64 nsessions, per session ascending: u64 id, client, first seq;
 *     i64 expiry;
 *     u32 n x (u64 ino, u32 opens, u32 writers); u32 n x u64 leased chunk;
 *     u32 n x (u64 seq, reply)
 */
#include "master/ns_snapshot.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "common/crc32c.h"
#include "common/dfs_error.h"
#include "common/log.h"
#include "common/wire.h"
#include "master/ns_priv.h"

#define SNAP_MAGIC "DFSNSNAP"
#define SNAP_FORMAT 5u               /* 5: the chunk size */
#define SNAP_FORMAT_NO_SIZE 4u       /* still read: chunks carry their trim_from */
#define SNAP_FORMAT_NO_TRIM 3u       /* still read: locks carry their pid */
#define SNAP_FORMAT_NO_PID 2u        /* still read */
#define SNAP_HDR_SIZE 20u
#define SNAP_BODY_MAX (UINT64_C(1) << 40)
#define PIECE (64u << 10)

/* ---- writing the body ------------------------------------------------- */

struct body {
    struct wire_writer w;           /* the pending piece */
    int (*sink)(void *ctx, const uint8_t *p, size_t n, bool last);
    void *ctx;
    uint64_t total;                 /* bytes handed to the sink */
    int err;
    uint32_t format;                /* SNAP_FORMAT or an older one still read */
};

static void body_flush(struct body *b, bool last)
{
    if (b->err == 0 && b->w.err)
        b->err = b->w.err;
    if (b->err == 0)
        b->err = b->sink(b->ctx, b->w.buf, b->w.len, last);
    b->total += b->w.len;
    b->w.len = 0;
}

static void body_piece(struct body *b)
{
    if (b->w.len >= PIECE)
        body_flush(b, false);
}

static void put_dir(struct body *b, const struct ns_inode *in)
{
    const struct ns_dir *d = in->u.dir;
    struct wire_writer *w = &b->w;
    wire_put_u32(w, in->aux);
    wire_put_u64(w, d->next_id);
    wire_put_u32(w, ns_dir_count(d));
    struct ns_dir_item it;
    for (uint64_t after = 0; ns_dir_next(d, after, &it) == 0; after = it.id) {
        wire_put_u64(w, it.id);
        wire_put_u32(w, it.ino);
        wire_put_bytes(w, it.name, it.len);
        body_piece(b);
    }
}

static bool known_format(uint32_t format)
{
    return format >= SNAP_FORMAT_NO_PID && format <= SNAP_FORMAT;
}

static void put_chunks(struct body *b, const struct ns *ns,
                       const struct ns_inode *in)
{
    struct wire_writer *w = &b->w;
    wire_put_u32(w, in->aux);
    for (uint32_t i = 0; i < in->aux; i++) {
        uint32_t h = ns_inode_chunk(in, i);
        if (h == 0) {
            wire_put_u64(w, 0);
            continue;
        }
        const struct ns_chunk *c = ns_chunk_get(&ns->chunks, h);
        wire_put_u64(w, c->id);
        wire_put_u32(w, c->version);
        wire_put_u32(w, c->committed);
        wire_put_u32(w, c->length);
        if (b->format > SNAP_FORMAT_NO_TRIM)
            wire_put_u32(w, c->trim_from);
        else if (c->trim_from)
            b->err = -DFS_EVERSION;   /* formats 2 and 3 cannot hold it */
        body_piece(b);
    }
}

static void put_xattrs_locks(struct body *b, const struct ns *ns, uint64_t ino)
{
    struct wire_writer *w = &b->w;
    const char *name;
    const void *val;
    uint32_t nlen, vlen, n = 0;
    while (ns_xattr_at(&ns->xattrs, ino, n, &name, &nlen, &val, &vlen) == 0)
        n++;
    wire_put_u32(w, n);
    for (uint32_t i = 0; i < n; i++) {
        ns_xattr_at(&ns->xattrs, ino, i, &name, &nlen, &val, &vlen);
        wire_put_bytes(w, name, nlen);
        wire_put_bytes(w, val, vlen);
    }
    size_t nl;
    const struct ns_lock *l = ns_lock_list(&ns->locks, ino, &nl);
    wire_put_u32(w, (uint32_t)nl);
    for (size_t i = 0; i < nl; i++) {
        wire_put_u64(w, l[i].sess);
        wire_put_u64(w, l[i].owner);
        wire_put_u64(w, l[i].start);
        wire_put_u64(w, l[i].end);
        wire_put_u32(w, l[i].kind);
        wire_put_u32(w, l[i].type);
        if (b->format != SNAP_FORMAT_NO_PID)
            wire_put_u32(w, l[i].pid);
        else if (l[i].pid)
            b->err = -DFS_EVERSION;   /* format 2 cannot hold it */
    }
}

static void put_inode(struct body *b, const struct ns *ns, uint64_t ino)
{
    const struct ns_inode *in = ns_inode_get(&ns->inodes, ino);
    struct wire_writer *w = &b->w;
    wire_put_u32(w, (uint32_t)ino);
    wire_put_u32(w, in->mode);
    wire_put_u32(w, in->uid);
    wire_put_u32(w, in->gid);
    wire_put_u32(w, in->nlink);
    wire_put_u32(w, in->gen);
    wire_put_u8(w, in->goal);
    wire_put_u64(w, in->size);
    wire_put_i64(w, in->atime);
    wire_put_i64(w, in->mtime);
    wire_put_i64(w, in->ctime);
    if (S_ISDIR(in->mode))
        put_dir(b, in);
    else if (S_ISLNK(in->mode))
        wire_put_bytes(w, in->u.target, in->size);
    else if (S_ISCHR(in->mode) || S_ISBLK(in->mode))
        wire_put_u32(w, in->aux);
    else if (S_ISREG(in->mode))
        put_chunks(b, ns, in);
    put_xattrs_locks(b, ns, ino);
    body_piece(b);
}

/* Writes the sorted keys of m, or fails the body for memory. */
static int sorted(struct body *b, const struct ns_map *m, uint64_t **keys)
{
    int rc = ns_map_sorted_keys(m, keys);
    if (rc < 0 && b->err == 0)
        b->err = rc;
    return rc;
}

static void put_session(struct body *b, const struct ns_sess *s)
{
    struct wire_writer *w = &b->w;
    uint64_t *keys;
    wire_put_u64(w, s->id);
    wire_put_u64(w, s->client);
    wire_put_u64(w, s->first_seq);
    wire_put_i64(w, s->expiry);
    if (sorted(b, &s->opens, &keys) < 0)
        return;
    wire_put_u32(w, s->opens.count);
    for (uint32_t i = 0; i < s->opens.count; i++) {
        uint32_t opens, writers;
        ns_sess_open_counts(s, keys[i], &opens, &writers);
        wire_put_u64(w, keys[i]);
        wire_put_u32(w, opens);
        wire_put_u32(w, writers);
        body_piece(b);
    }
    free(keys);
    if (sorted(b, &s->leases, &keys) < 0)
        return;
    wire_put_u32(w, s->leases.count);
    for (uint32_t i = 0; i < s->leases.count; i++)
        wire_put_u64(w, keys[i]);
    free(keys);
    wire_put_u32(w, s->ndedup);
    for (uint32_t i = 0; i < s->ndedup; i++) {
        wire_put_u64(w, s->dedup[i].seq);
        ns_op_reply_encode(&s->dedup[i].reply, w);
    }
    body_piece(b);
}

static void put_body(struct body *b, const struct ns *ns)
{
    struct wire_writer *w = &b->w;
    wire_put_u32(w, ns->cfg.flags);
    wire_put_u32(w, ns->cfg.squash_uid);
    wire_put_u32(w, ns->cfg.squash_gid);
    if (b->format > SNAP_FORMAT_NO_SIZE)
        wire_put_u64(w, ns->cfg.chunk_size);
    else if (ns->cfg.chunk_size)
        b->err = -DFS_EVERSION;   /* formats 2 to 4 cannot hold it */
    wire_put_u64(w, ns->chunks.max_id);
    wire_put_u64(w, ns->sessions.max_id);
    wire_put_u32(w, ns->inodes.gen);
    wire_put_u64(w, ns->inodes.used);
    for (uint64_t ino = ns_inode_next(&ns->inodes, 0); ino != 0 && b->err == 0;
         ino = ns_inode_next(&ns->inodes, ino))
        put_inode(b, ns, ino);
    uint64_t *ids;
    if (sorted(b, &ns->sessions.by_id, &ids) < 0)
        return;
    wire_put_u64(w, ns->sessions.by_id.count);
    for (uint32_t i = 0; i < ns->sessions.by_id.count && b->err == 0; i++)
        put_session(b, ns_sess_get(&ns->sessions, ids[i]));
    free(ids);
}

static int write_body(const struct ns *ns, struct body *b)
{
    wire_writer_init(&b->w);
    b->total = 0;
    b->err = 0;
    put_body(b, ns);
    body_flush(b, true);
    wire_writer_release(&b->w);
    return b->err;
}

/* ---- sinks ------------------------------------------------------------ */

struct deflater {
    z_stream z;
    struct wire_writer *out;
};

static int deflate_sink(void *ctx, const uint8_t *p, size_t n, bool last)
{
    struct deflater *d = ctx;
    d->z.next_in = (Bytef *)p;
    d->z.avail_in = (uInt)n;
    int zrc;
    do {
        uint8_t *dst = wire_writer_reserve(d->out, PIECE);
        if (!dst)
            return d->out->err;
        d->z.next_out = dst;
        d->z.avail_out = PIECE;
        zrc = deflate(&d->z, last ? Z_FINISH : Z_NO_FLUSH);
        d->out->len -= d->z.avail_out;
        if (zrc == Z_STREAM_ERROR)
            return -ENOMEM;
    } while (d->z.avail_out == 0 || (last && zrc != Z_STREAM_END));
    return 0;
}

static int sha_sink(void *ctx, const uint8_t *p, size_t n, bool last)
{
    (void)last;
    return EVP_DigestUpdate(ctx, p, n) == 1 ? 0 : -ENOMEM;
}

static int hash_format(const struct ns *ns, uint32_t format, uint8_t md[32])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return -ENOMEM;
    int rc = -ENOMEM;
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        goto out_ctx;
    struct body b = { .sink = sha_sink, .ctx = ctx, .format = format };
    rc = write_body(ns, &b);
    if (rc == 0 && EVP_DigestFinal_ex(ctx, md, NULL) != 1)
        rc = -ENOMEM;
out_ctx:
    EVP_MD_CTX_free(ctx);
    return rc;
}

int ns_snapshot_hash(const struct ns *ns, uint8_t md[32])
{
    return hash_format(ns, SNAP_FORMAT, md);
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

int ns_snapshot_write(const struct ns *ns, struct wire_writer *w)
{
    return ns_snapshot_write_format(ns, SNAP_FORMAT, w);
}

int ns_snapshot_write_format(const struct ns *ns, uint32_t format,
                             struct wire_writer *w)
{
    if (!known_format(format))
        return -DFS_EVERSION;
    size_t start = w->len;
    wire_put_raw(w, SNAP_MAGIC, 8);
    wire_put_u32(w, format);
    wire_put_u64(w, 0);                 /* body length, patched below */
    if (w->err)
        return w->err;
    struct deflater d = { .out = w };
    if (deflateInit(&d.z, Z_BEST_SPEED) != Z_OK)
        return -ENOMEM;
    struct body b = { .sink = deflate_sink, .ctx = &d, .format = format };
    int rc = write_body(ns, &b);
    deflateEnd(&d.z);
    if (rc < 0)
        return rc;
    put_le64(w->buf + start + 12, b.total);
    wire_put_u32(w, crc32c(0, w->buf + start, w->len - start));
    return w->err;
}

/* ---- loading ---------------------------------------------------------- */

/* A decoding step failed: the snapshot passed its CRC, so this is a bug
 * on the writing side or a tampered file. */
static int corrupt(const char *what)
{
    log_error("snapshot: %s", what);
    return -DFS_ECORRUPT;
}

static int get_dir(struct wire_reader *r, struct ns_inode *in)
{
    in->aux = wire_get_u32(r);
    uint64_t next_id = wire_get_u64(r);
    uint32_t n = wire_get_u32(r);
    if (r->err || n > r->left || next_id < NS_DIR_FIRST_ID || next_id > NS_DIR_ID_MAX + 1)
        return corrupt("bad directory header");
    in->u.dir = ns_dir_new();
    if (!in->u.dir)
        return -ENOMEM;
    in->u.dir->next_id = next_id;
    if (ns_dir_reserve(in->u.dir, n) < 0)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t id = wire_get_u64(r);
        uint32_t ino = wire_get_u32(r);
        const uint8_t *name;
        size_t len = wire_get_bytes(r, &name, NS_NAME_MAX);
        if (r->err || len == 0 || ino == 0)
            return corrupt("bad directory entry");
        int rc = ns_dir_add_id(in->u.dir, (const char *)name, (uint32_t)len, ino, id);
        if (rc < 0)
            return rc == -ENOMEM ? rc : corrupt("directory entry out of order");
    }
    return 0;
}

static int get_symlink(struct wire_reader *r, struct ns_inode *in)
{
    const uint8_t *t;
    size_t len = wire_get_bytes(r, &t, NS_SYMLINK_MAX);
    if (r->err || len == 0 || len != in->size)
        return corrupt("bad symlink");
    in->u.target = malloc(len + 1);
    if (!in->u.target)
        return -ENOMEM;
    memcpy(in->u.target, t, len);
    in->u.target[len] = '\0';
    return 0;
}

static int get_chunks(struct wire_reader *r, struct ns *ns, uint64_t ino,
                      struct ns_inode *in, uint32_t format)
{
    uint32_t n = wire_get_u32(r);
    if (r->err || n > NS_CHUNKS_MAX || n > r->left)
        return corrupt("bad chunk count");
    for (uint32_t i = 0; i < n; i++) {
        uint64_t id = wire_get_u64(r);
        if (id == 0)
            continue;
        struct ns_chunk c = { .id = id, .ino = (uint32_t)ino, .index = i };
        c.version = wire_get_u32(r);
        c.committed = wire_get_u32(r);
        c.length = wire_get_u32(r);
        c.trim_from = format > SNAP_FORMAT_NO_TRIM ? wire_get_u32(r) : 0;
        if (r->err || c.length > ns_chunk_size(ns) || c.committed > c.version)
            return corrupt("bad chunk");
        uint32_t h;
        int rc = ns_chunk_add(&ns->chunks, &c, &h);
        if (rc < 0)
            return rc == -ENOMEM ? rc : corrupt("duplicate chunk id");
        rc = ns_inode_set_chunk(in, i, h);
        if (rc < 0)
            return rc;
    }
    /* a truncate can leave trailing holes: they are part of the state */
    return n > in->aux ? ns_inode_set_chunk(in, n - 1, 0) : 0;
}

static int get_xattrs_locks(struct wire_reader *r, struct ns *ns, uint64_t ino,
                            uint32_t format)
{
    uint32_t n = wire_get_u32(r);
    for (uint32_t i = 0; i < n && r->err == 0; i++) {
        const uint8_t *name, *val;
        size_t nlen = wire_get_bytes(r, &name, NS_XATTR_NAME_MAX);
        size_t vlen = wire_get_bytes(r, &val, NS_XATTR_SIZE_MAX);
        if (r->err || nlen == 0)
            return corrupt("bad xattr");
        int rc = ns_xattr_set(&ns->xattrs, ino, (const char *)name, (uint32_t)nlen,
                              val, (uint32_t)vlen, NS_XATTR_CREATE);
        if (rc < 0)
            return rc == -ENOMEM ? rc : corrupt("xattr repeated or over the limit");
    }
    n = wire_get_u32(r);
    for (uint32_t i = 0; i < n && r->err == 0; i++) {
        struct ns_lock l;
        l.sess = wire_get_u64(r);
        l.owner = wire_get_u64(r);
        l.start = wire_get_u64(r);
        l.end = wire_get_u64(r);
        uint32_t kind = wire_get_u32(r);
        uint32_t type = wire_get_u32(r);
        l.pid = format == SNAP_FORMAT_NO_PID ? 0 : wire_get_u32(r);
        if (r->err || type == NS_LOCK_UN || kind > UINT16_MAX || type > UINT16_MAX)
            return corrupt("bad lock");
        l.kind = (uint16_t)kind;
        l.type = (uint16_t)type;
        int rc = ns_lock_set(&ns->locks, ino, &l, NULL);
        if (rc < 0)
            return rc == -ENOMEM ? rc : corrupt("conflicting or invalid lock");
    }
    return r->err ? corrupt("short inode") : 0;
}

static int get_payload(struct wire_reader *r, struct ns *ns, uint64_t ino,
                       struct ns_inode *in, uint32_t format)
{
    switch (in->mode & S_IFMT) {
    case S_IFDIR:
        return get_dir(r, in);
    case S_IFLNK:
        return get_symlink(r, in);
    case S_IFCHR: case S_IFBLK:
        in->aux = wire_get_u32(r);
        return 0;
    case S_IFREG:
        return get_chunks(r, ns, ino, in, format);
    case S_IFIFO: case S_IFSOCK:
        return 0;
    default:
        return corrupt("unknown inode type");
    }
}

static int get_inode(struct wire_reader *r, struct ns *ns, uint64_t *last,
                     uint32_t format)
{
    uint64_t ino = wire_get_u32(r);
    uint32_t mode = wire_get_u32(r);
    if (r->err || ino <= *last || mode == 0)
        return corrupt("inode out of order");
    *last = ino;
    struct ns_inode *in;
    int rc = ns_inode_alloc(&ns->inodes, ino, mode, &in);
    if (rc < 0)
        return rc == -ENOMEM ? rc : corrupt("bad inode number");
    in->uid = wire_get_u32(r);
    in->gid = wire_get_u32(r);
    in->nlink = wire_get_u32(r);
    in->gen = wire_get_u32(r);
    in->goal = wire_get_u8(r);
    in->size = wire_get_u64(r);
    in->atime = wire_get_i64(r);
    in->mtime = wire_get_i64(r);
    in->ctime = wire_get_i64(r);
    if (r->err)
        return corrupt("short inode");
    ns_count(ns, mode, 1);
    rc = get_payload(r, ns, ino, in, format);
    if (rc < 0)
        return rc;
    return get_xattrs_locks(r, ns, ino, format);
}

static int get_opens(struct wire_reader *r, struct ns *ns, struct ns_sess *s)
{
    uint32_t n = wire_get_u32(r);
    for (uint32_t i = 0; i < n && r->err == 0; i++) {
        uint64_t ino = wire_get_u64(r);
        uint32_t opens = wire_get_u32(r), writers = wire_get_u32(r);
        uint64_t total = 0;
        if (r->err || opens == 0 || writers > opens || ns_map_get(&s->opens, ino, NULL))
            return corrupt("bad open count");
        ns_map_get(&ns->opens, ino, &total);
        if (ns_sess_set_open_counts(s, ino, opens, writers) < 0 ||
            ns_map_put(&ns->opens, ino, total + opens) < 0)
            return -ENOMEM;
    }
    return 0;
}

static int get_leases(struct wire_reader *r, struct ns *ns, struct ns_sess *s)
{
    uint32_t n = wire_get_u32(r);
    for (uint32_t i = 0; i < n && r->err == 0; i++) {
        uint64_t id = wire_get_u64(r);
        uint32_t h = ns_chunk_find(&ns->chunks, id);
        if (r->err || h == 0 || ns_map_get(&ns->leases, id, NULL))
            return corrupt("bad lease");
        if (ns_map_put(&ns->leases, id, s->id) < 0 ||
            ns_map_put(&s->leases, id, ns_chunk_get(&ns->chunks, h)->ino) < 0)
            return -ENOMEM;
    }
    return 0;
}

static int get_dedup(struct wire_reader *r, struct ns_sess *s)
{
    uint32_t n = wire_get_u32(r);
    if (n > NS_DEDUP_WINDOW)
        return corrupt("dedup window too long");
    for (uint32_t i = 0; i < n && r->err == 0; i++) {
        s->dedup[i].seq = wire_get_u64(r);
        ns_op_reply_decode(r, &s->dedup[i].reply);
        if (s->dedup[i].seq <= s->first_seq ||
            (i > 0 && s->dedup[i].seq <= s->dedup[i - 1].seq))
            return corrupt("dedup window out of order");
    }
    s->ndedup = n;
    return 0;
}

static int get_session(struct wire_reader *r, struct ns *ns, uint64_t *last)
{
    uint64_t id = wire_get_u64(r), client = wire_get_u64(r);
    uint64_t first_seq = wire_get_u64(r);
    int64_t expiry = wire_get_i64(r);
    struct ns_sess *s;
    if (r->err || id <= *last || ns_sess_by_client(&ns->sessions, client))
        return corrupt("session out of order or client repeated");
    *last = id;
    int rc = ns_sess_add(&ns->sessions, id, client, first_seq, expiry, &s);
    if (rc < 0)
        return rc == -ENOMEM ? rc : corrupt("bad session");
    rc = get_opens(r, ns, s);
    if (rc == 0)
        rc = get_leases(r, ns, s);
    if (rc == 0)
        rc = get_dedup(r, s);
    if (rc == 0 && r->err)
        rc = corrupt("short session");
    return rc;
}

/* What the body does not carry: sessions' lock lists and orphans. */
static int derive(struct ns *ns)
{
    uint32_t pos = 0;
    uint64_t ino, ptr;
    while (ns_map_next(&ns->locks.by_ino, &pos, &ino, &ptr)) {
        size_t n;
        const struct ns_lock *l = ns_lock_list(&ns->locks, ino, &n);
        for (size_t i = 0; i < n; i++) {
            struct ns_sess *s = ns_sess_get(&ns->sessions, l[i].sess);
            if (!s)
                return corrupt("lock of an unknown session");
            if (ns_map_put(&s->lock_inos, ino, 1) < 0)
                return -ENOMEM;
        }
    }
    for (ino = ns_inode_next(&ns->inodes, 0); ino != 0;
         ino = ns_inode_next(&ns->inodes, ino)) {
        const struct ns_inode *in = ns_inode_get(&ns->inodes, ino);
        if (!S_ISDIR(in->mode) && in->nlink == 0)
            ns->norphans++;
    }
    return 0;
}

static int get_body(struct wire_reader *r, struct ns *ns, uint32_t format)
{
    ns->cfg.flags = wire_get_u32(r);
    ns->cfg.squash_uid = wire_get_u32(r);
    ns->cfg.squash_gid = wire_get_u32(r);
    ns->cfg.chunk_size = format > SNAP_FORMAT_NO_SIZE ? wire_get_u64(r) : 0;
    if (ns->cfg.chunk_size % NS_CHUNK_SIZE_MIN || ns->cfg.chunk_size > NS_CHUNK_SIZE_MAX)
        return corrupt("bad chunk size");
    uint64_t max_chunk = wire_get_u64(r), max_sess = wire_get_u64(r);
    uint32_t gen = wire_get_u32(r);
    uint64_t n = wire_get_u64(r), last = 0;
    if (r->err || n > r->left)
        return corrupt("bad body header");
    for (uint64_t i = 0; i < n; i++) {
        int rc = get_inode(r, ns, &last, format);
        if (rc < 0)
            return rc;
    }
    n = wire_get_u64(r);
    last = 0;
    if (r->err || n > r->left)
        return corrupt("bad session count");
    for (uint64_t i = 0; i < n; i++) {
        int rc = get_session(r, ns, &last);
        if (rc < 0)
            return rc;
    }
    if (wire_reader_finish(r) != 0)
        return corrupt("trailing bytes");
    if (max_chunk < ns->chunks.max_id || max_sess < ns->sessions.max_id)
        return corrupt("id high-water marks below ids in use");
    ns->chunks.max_id = max_chunk;
    ns->sessions.max_id = max_sess;
    ns->inodes.gen = gen;
    return derive(ns);
}

/* Inflates the body; 0 and *body (malloc'ed, *blen bytes) or an error. */
static int inflate_body(const uint8_t *buf, size_t len, uint8_t **body,
                        uint64_t *blen, uint32_t *format_out)
{
    if (len < SNAP_HDR_SIZE + 4)
        return -DFS_ETRUNC;
    if (memcmp(buf, SNAP_MAGIC, 8) != 0)
        return corrupt("bad magic");
    struct wire_reader r;
    wire_reader_init(&r, buf + len - 4, 4);
    if (crc32c(0, buf, len - 4) != wire_get_u32(&r))
        return corrupt("checksum mismatch");
    wire_reader_init(&r, buf + 8, 12);
    uint32_t format = wire_get_u32(&r);
    *blen = wire_get_u64(&r);
    if (!known_format(format))
        return -DFS_EVERSION;
    *format_out = format;
    if (*blen > SNAP_BODY_MAX || (size_t)*blen != *blen)
        return -DFS_ETOOBIG;
    /* deflate expands at most ~1032:1: a larger claim is a lie */
    if (*blen / 1032 > len)
        return corrupt("body length out of proportion");
    *body = malloc(*blen ? *blen : 1);
    if (!*body)
        return -ENOMEM;
    uLongf dlen = *blen;
    uLong slen = len - SNAP_HDR_SIZE - 4;
    int zrc = uncompress2(*body, &dlen, buf + SNAP_HDR_SIZE, &slen);
    if (zrc != Z_OK || dlen != *blen || slen != len - SNAP_HDR_SIZE - 4) {
        free(*body);
        return zrc == Z_MEM_ERROR ? -ENOMEM : corrupt("bad compressed body");
    }
    return 0;
}

static int same_hash(const struct ns *ns, const uint8_t *body, uint64_t blen,
                     uint32_t format)
{
    uint8_t want[32], got[32];
    if (EVP_Digest(body, blen, want, NULL, EVP_sha256(), NULL) != 1)
        return -ENOMEM;
    int rc = hash_format(ns, format, got);
    if (rc < 0)
        return rc;
    return memcmp(want, got, 32) == 0 ? 0 : corrupt("body is not canonical");
}

int ns_snapshot_load(const void *buf, size_t len, struct ns **out)
{
    uint8_t *body = NULL;
    uint64_t blen = 0;
    uint32_t format = 0;
    int rc = inflate_body(buf, len, &body, &blen, &format);
    if (rc < 0)
        return rc;
    struct ns *ns = ns_new_empty();
    if (!ns) {
        rc = -ENOMEM;
        goto out_body;
    }
    struct wire_reader r;
    wire_reader_init(&r, body, blen);
    rc = get_body(&r, ns, format);
    if (rc == 0)
        rc = ns_check(ns);
    if (rc == 0)
        rc = same_hash(ns, body, blen, format);
    if (rc < 0) {
        ns_free(ns);
        goto out_body;
    }
    *out = ns;
out_body:
    free(body);
    return rc;
}
