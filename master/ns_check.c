/*
 * ns_check: verifies the namespace's invariants (listed in ns.c) by
 * walking everything once.
 *
 * Owns only its scratch counters for one call.  Used by tests after every
 * op of a randomized run and by ns_snapshot_load() before it accepts a
 * snapshot; O(state) time and 4 bytes per inode slot.
 */
#include "master/ns.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/dfs_error.h"
#include "common/log.h"
#include "master/ns_fs.h"
#include "master/ns_priv.h"

struct tally {
    uint32_t *links;            /* by inode number: entries naming it */
    uint64_t chunks;            /* chunk slots holding a chunk */
    uint64_t files, dirs, symlinks, specials, orphans;
};

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int bad(const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_error("ns_check: %s", msg);
    return -DFS_ECORRUPT;
}

static int check_entry(const struct ns *ns, uint64_t dir,
                       const struct ns_dir_item *it, struct tally *t,
                       uint32_t *subdirs)
{
    struct ns_str name = { it->name, it->len };
    if (ns_fs_check_name(name) < 0)
        return bad("dir %llu: bad entry name", (unsigned long long)dir);
    const struct ns_inode *in = ns_inode_get(&ns->inodes, it->ino);
    if (!in || it->ino == NS_ROOT_INO)
        return bad("dir %llu: entry to %u which is not a live inode",
                   (unsigned long long)dir, it->ino);
    if (S_ISDIR(in->mode)) {
        if (in->aux != dir)
            return bad("dir %u: parent %u but found in %llu", it->ino, in->aux,
                       (unsigned long long)dir);
        (*subdirs)++;
    }
    t->links[it->ino]++;
    return 0;
}

static int check_dir(const struct ns *ns, uint64_t ino, const struct ns_inode *in,
                     struct tally *t)
{
    uint32_t subdirs = 0, n = 0;
    struct ns_dir_item it;
    if (!in->u.dir)
        return bad("dir %llu without a table", (unsigned long long)ino);
    for (uint64_t after = 0; ns_dir_next(in->u.dir, after, &it) == 0; after = it.id) {
        struct ns_dir_item again;
        if (ns_dir_lookup(in->u.dir, it.name, it.len, &again) < 0 || again.id != it.id)
            return bad("dir %llu: entry not found by name", (unsigned long long)ino);
        int rc = check_entry(ns, ino, &it, t, &subdirs);
        if (rc < 0)
            return rc;
        n++;
    }
    if (n != ns_dir_count(in->u.dir))
        return bad("dir %llu: count %u, walked %u", (unsigned long long)ino,
                   ns_dir_count(in->u.dir), n);
    if (in->nlink != 2 + subdirs)
        return bad("dir %llu: nlink %u, subdirectories %u", (unsigned long long)ino,
                   in->nlink, subdirs);
    /* the parent chain must reach the root without a cycle */
    uint64_t p = ino;
    for (uint64_t steps = 0; p != NS_ROOT_INO; steps++) {
        const struct ns_inode *pin = ns_inode_get(&ns->inodes, p);
        if (!pin || !S_ISDIR(pin->mode) || steps > ns->inodes.used)
            return bad("dir %llu: not connected to the root", (unsigned long long)ino);
        p = pin->aux;
    }
    return 0;
}

static int check_file(const struct ns *ns, uint64_t ino, const struct ns_inode *in,
                      struct tally *t)
{
    for (uint32_t i = 0; i < in->aux; i++) {
        uint32_t h = ns_inode_chunk(in, i);
        if (h == 0)
            continue;
        const struct ns_chunk *c = ns_chunk_get(&ns->chunks, h);
        if (c->id == 0 || c->ino != ino || c->index != i ||
            ns_chunk_find(&ns->chunks, c->id) != h)
            return bad("file %llu: chunk slot %u does not point back",
                       (unsigned long long)ino, i);
        if (c->committed > c->version || (c->trim_from && c->trim_from >= c->committed))
            return bad("chunk %llu: trim_from %u, committed %u, version %u out of order",
                       (unsigned long long)c->id, c->trim_from, c->committed,
                       c->version);
        t->chunks++;
    }
    return 0;
}

static int check_inode(const struct ns *ns, uint64_t ino, struct tally *t)
{
    const struct ns_inode *in = ns_inode_get(&ns->inodes, ino);
    switch (in->mode & S_IFMT) {
    case S_IFDIR:
        t->dirs++;
        return check_dir(ns, ino, in, t);
    case S_IFREG:
        t->files++;
        return check_file(ns, ino, in, t);
    case S_IFLNK:
        t->symlinks++;
        if (!in->u.target || strlen(in->u.target) != in->size)
            return bad("symlink %llu: bad target", (unsigned long long)ino);
        return 0;
    case S_IFIFO: case S_IFSOCK: case S_IFCHR: case S_IFBLK:
        t->specials++;
        return 0;
    default:
        return bad("inode %llu: bad mode %o", (unsigned long long)ino, in->mode);
    }
}

/* nlink of non-directories against the entries counted; orphans open. */
static int check_links(const struct ns *ns, struct tally *t)
{
    for (uint64_t ino = ns_inode_next(&ns->inodes, 0); ino != 0;
         ino = ns_inode_next(&ns->inodes, ino)) {
        const struct ns_inode *in = ns_inode_get(&ns->inodes, ino);
        uint64_t n = t->links[ino];
        if (S_ISDIR(in->mode)) {
            if (n != (ino == NS_ROOT_INO ? 0u : 1u))
                return bad("dir %llu named by %llu entries", (unsigned long long)ino,
                           (unsigned long long)n);
            continue;
        }
        if (n != in->nlink)
            return bad("inode %llu: nlink %u, entries %llu", (unsigned long long)ino,
                       in->nlink, (unsigned long long)n);
        if (n == 0 && !ns_is_open(ns, ino))
            return bad("inode %llu: unlinked and not open", (unsigned long long)ino);
        t->orphans += n == 0;
    }
    return 0;
}

/* One session's records against the namespace; adds its opens to sum. */
static int check_session(const struct ns *ns, const struct ns_sess *s,
                         struct ns_map *sum)
{
    uint32_t pos = 0;
    uint64_t key, val;
    while (ns_map_next(&s->opens, &pos, &key, &val)) {
        uint64_t total = 0;
        if (!ns_inode_get(&ns->inodes, key) || (uint32_t)val < (val >> 32))
            return bad("session %llu: bad open of %llu", (unsigned long long)s->id,
                       (unsigned long long)key);
        ns_map_get(sum, key, &total);
        if (ns_map_put(sum, key, total + (uint32_t)val) < 0)
            return -ENOMEM;
    }
    for (pos = 0; ns_map_next(&s->leases, &pos, &key, &val);) {
        uint32_t h = ns_chunk_find(&ns->chunks, key), opens, writers;
        ns_sess_open_counts(s, val, &opens, &writers);
        if (h == 0 || ns_chunk_get(&ns->chunks, h)->ino != val ||
            ns_lease_holder(ns, key) != s->id || writers == 0)
            return bad("session %llu: bad lease on chunk %llu",
                       (unsigned long long)s->id, (unsigned long long)key);
    }
    for (pos = 0; ns_map_next(&s->lock_inos, &pos, &key, NULL);) {
        if (!ns_lock_held(&ns->locks, key, s->id))
            return bad("session %llu: no lock on %llu", (unsigned long long)s->id,
                       (unsigned long long)key);
    }
    if (ns_sess_by_client(&ns->sessions, s->client) != s)
        return bad("session %llu: client index", (unsigned long long)s->id);
    return 0;
}

static int check_sessions(const struct ns *ns)
{
    struct ns_map sum;
    ns_map_init(&sum);
    uint32_t pos = 0;
    uint64_t id, ptr, key, val;
    int rc = 0;
    while (rc == 0 && ns_map_next(&ns->sessions.by_id, &pos, &id, &ptr))
        rc = check_session(ns, (const struct ns_sess *)(uintptr_t)ptr, &sum);
    for (pos = 0; rc == 0 && ns_map_next(&ns->opens, &pos, &key, &val);) {
        uint64_t s = 0;
        if (!ns_map_get(&sum, key, &s) || s != val)
            rc = bad("open count of %llu", (unsigned long long)key);
    }
    if (rc == 0 && sum.count != ns->opens.count)
        rc = bad("open counts: %u inodes in sessions, %u in total", sum.count,
                 ns->opens.count);
    for (pos = 0; rc == 0 && ns_map_next(&ns->leases, &pos, &key, &val);) {
        const struct ns_sess *s = ns_sess_get(&ns->sessions, val);
        if (!s || !ns_map_get(&s->leases, key, NULL))
            rc = bad("lease on chunk %llu without its session", (unsigned long long)key);
    }
    ns_map_release(&sum);
    return rc;
}

static int check_locks(const struct ns *ns)
{
    uint32_t pos = 0;
    uint64_t ino, ptr;
    while (ns_map_next(&ns->locks.by_ino, &pos, &ino, &ptr)) {
        size_t n;
        const struct ns_lock *l = ns_lock_list(&ns->locks, ino, &n);
        if (!ns_inode_get(&ns->inodes, ino))
            return bad("locks on a free inode %llu", (unsigned long long)ino);
        for (size_t i = 0; i < n; i++) {
            const struct ns_sess *s = ns_sess_get(&ns->sessions, l[i].sess);
            if (!s || !ns_map_get(&s->lock_inos, ino, NULL))
                return bad("lock on %llu of an unknown session", (unsigned long long)ino);
        }
    }
    return 0;
}

static int check_counts(const struct ns *ns, const struct tally *t)
{
    if (t->files != ns->nfiles || t->dirs != ns->ndirs ||
        t->symlinks != ns->nsymlinks || t->specials != ns->nspecials ||
        t->orphans != ns->norphans)
        return bad("type counters differ from the inodes");
    if (t->chunks != ns->chunks.count)
        return bad("chunk table has %llu chunks, files hold %llu",
                   (unsigned long long)ns->chunks.count, (unsigned long long)t->chunks);
    return 0;
}

int ns_check(const struct ns *ns)
{
    const struct ns_inode *root = ns_inode_get(&ns->inodes, NS_ROOT_INO);
    if (!root || !S_ISDIR(root->mode) || root->aux != NS_ROOT_INO)
        return bad("no root directory");
    struct tally t = { 0 };
    /* inode numbers are dense: one counter per slot of the table */
    t.links = calloc((size_t)ns->inodes.npages * NS_INODE_PAGE, sizeof(*t.links));
    if (!t.links)
        return -ENOMEM;
    int rc = 0;
    for (uint64_t ino = ns_inode_next(&ns->inodes, 0); ino != 0 && rc == 0;
         ino = ns_inode_next(&ns->inodes, ino))
        rc = check_inode(ns, ino, &t);
    if (rc == 0)
        rc = check_links(ns, &t);
    if (rc == 0)
        rc = check_counts(ns, &t);
    if (rc == 0)
        rc = check_sessions(ns);
    if (rc == 0)
        rc = check_locks(ns);
    free(t.links);
    return rc;
}
