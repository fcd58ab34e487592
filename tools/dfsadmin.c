/*
 * dfsadmin: cluster state and namespace administration from the shell.
 *
 *   dfsadmin [-M masters] [-k keyfile] [--json] COMMAND ARGS
 *
 * Each command is one function below; they share the session opened by
 * main() and return a tool exit code.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/dfs_error.h"
#include "tools/toolkit.h"

struct admin {
    struct dfs *d;
    bool json;
    bool recursive;
    bool parents;
    bool no_follow;
    bool verify;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: dfsadmin [-M host:port,...] [-k keyfile] [--json] COMMAND\n"
            "\n"
            "Commands:\n"
            "  status            leader, term, commit index and every master's view\n"
            "  ls PATH           list a directory\n"
            "  stat PATH         attributes of one file or directory\n"
            "  mkdir [-p] PATH   make a directory (-p: with its parents, no error if present)\n"
            "  rm [-r] PATH      remove a file, or a directory tree with -r\n"
            "  mv SRC DST        rename (DST may be an existing directory to move into)\n"
            "  fsck [--verify] [PATH]\n"
            "                    every chunk under PATH against its replication goal;\n"
            "                    exits 1 while any is under-replicated, missing or corrupt;\n"
            "                    one whose replicas await a truncate's trim shows as\n"
            "                    \"awaiting trim\" and counts under-replicated\n"
            "                    --verify: every chunkserver first re-reads its replicas\n"
            "                    of them (bad ones count corrupt and are replaced)\n"
            "  masters           the masters: id, addresses, voter or learner, the leader\n"
            "  masters add ADDR  add the master started with dfs-master --join that\n"
            "                    listens at ADDR (host:port); returns once it votes\n"
            "  masters remove ID remove master ID (the leader too: another takes over)\n"
            "  masters transfer-leader ID\n"
            "                    make master ID the leader (exits 1 if it did not)\n"
            "  chunkservers      the chunkservers: address, rack, state, space, chunks\n"
            "  chunkservers decommission N\n"
            "                    drain chunkserver N: its chunks are copied elsewhere and\n"
            "                    no new chunk goes there; `chunkservers` shows it\n"
            "                    \"decommissioned\" once it may be removed\n"
            "\n"
            "Options:\n"
            "  -M host:port,...  masters (default: $DFS_MASTERS)\n"
            "  -k FILE           cluster key file (default: $DFS_KEY_FILE)\n"
            "  --json            machine-readable output\n"
            "  --verify          fsck: have the chunkservers re-read the replicas\n"
            "  --no-follow       status: the answering master's own view, even when\n"
            "                    it is not the leader (with -M naming one master)\n"
            "\n"
            "Exit codes: 0 success, 1 the operation failed, 2 usage error.\n");
}

static int fail(const char *what, const char *path, int err)
{
    fprintf(stderr, "dfsadmin: %s %s: %s\n", what, path, dfs_strerror(err));
    return TOOL_FAILED;
}

/* ---- status ------------------------------------------------------------- */

/* Copies the value of "key": in a flat part of our own JSON into buf. */
static const char *json_field(const char *json, const char *key, char *buf,
                              size_t size)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = strstr(json, pat);
    if (!p)
        return "?";
    p += strlen(pat);
    if (*p == '"')
        p++;
    size_t n = strcspn(p, "\",}");
    if (n >= size)
        n = size - 1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    return buf;
}

/*
 * The leader's document: the answering master's own, or, when it is not
 * the leader, the one its masters list names as leader.
 */
static int leader_status(struct admin *a, char **json)
{
    int rc = dfs_admin_status(a->d, json);
    char role[32], addr[128], *doc;
    if (rc < 0 || a->no_follow || !strcmp(json_field(*json, "role", role, 32), "leader"))
        return rc;
    json_field(*json, "leader_address", addr, sizeof(addr));
    /* No leader known: this master's view is the news. */
    if (addr[0] && dfs_admin_status_of(a->d, addr, &doc) == 0) {
        free(*json);
        *json = doc;
    }
    return 0;
}

static int cmd_status(struct admin *a)
{
    char *json;
    int rc = leader_status(a, &json);
    if (rc < 0)
        return fail("status", "", rc);
    if (a->json) {
        printf("%s\n", json);
        free(json);
        return TOOL_OK;
    }
    char b[5][64];
    printf("cluster %s  leader master %s  term %s  commit %s\n",
           json_field(json, "cluster", b[0], 64), json_field(json, "leader", b[1], 64),
           json_field(json, "term", b[2], 64), json_field(json, "commit_index", b[3], 64));
    printf("files %s  directories %s  chunk size %s bytes\n\n",
           json_field(json, "files", b[0], 64), json_field(json, "directories", b[1], 64),
           json_field(json, "chunk_size", b[2], 64));
    printf("%-4s %-22s %-12s %-6s %-10s %-10s\n", "id", "address", "role", "term",
           "commit", "applied");
    /* Each master answers for itself; only the masters array is read. */
    const char *masters = strstr(json, "\"masters\":[");
    const char *end = masters ? strchr(masters, ']') : NULL;
    for (const char *m = masters ? strstr(masters, "\"address\":\"") : NULL;
         m && m < end; m = strstr(m + 1, "\"address\":\"")) {
        char addr[128], id[32];
        json_field(m, "address", addr, sizeof(addr));
        const char *start = m;
        while (start > json && *start != '{')
            start--;
        json_field(start, "id", id, sizeof(id));
        char *own;
        if (dfs_admin_status_of(a->d, addr, &own) < 0) {
            printf("%-4s %-22s %-12s\n", id, addr, "unreachable");
            continue;
        }
        printf("%-4s %-22s %-12s %-6s %-10s %-10s\n", id, addr,
               json_field(own, "role", b[0], 64), json_field(own, "term", b[1], 64),
               json_field(own, "commit_index", b[2], 64),
               json_field(own, "applied_index", b[3], 64));
        free(own);
    }
    free(json);
    return TOOL_OK;
}

/* ---- ls and stat ---------------------------------------------------------- */

struct ls_state {
    bool json;
    bool first;
};

static void print_attr_json(const char *name, const struct dfs_attr *at)
{
    printf("{\"name\":");
    toolkit_json_string(stdout, name);
    printf(",\"type\":\"%s\",\"size\":%" PRIu64 ",\"inode\":%" PRIu64
           ",\"mode\":\"%04o\",\"nlink\":%u,\"uid\":%u,\"gid\":%u,\"mtime_ns\":%" PRId64
           ",\"goal\":%u}",
           toolkit_type_name(at->mode), at->size, at->ino, at->mode & 07777,
           at->nlink, at->uid, at->gid, at->mtime, at->goal);
}

static void print_attr_line(const char *name, const struct dfs_attr *at)
{
    char mode[11], when[32];
    toolkit_mode_string(at->mode, mode);
    time_t t = (time_t)(at->mtime / 1000000000);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm);
    printf("%s %3u %5u %5u %12" PRIu64 " %s %s\n", mode, at->nlink, at->uid,
           at->gid, at->size, when, name);
}

static int ls_entry(const struct dfs_dirent *e, void *arg)
{
    struct ls_state *st = arg;
    if (!strcmp(e->name, ".") || !strcmp(e->name, ".."))
        return 0;
    if (st->json) {
        printf("%s\n  ", st->first ? "" : ",");
        print_attr_json(e->name, e->attr);
    } else {
        print_attr_line(e->name, e->attr);
    }
    st->first = false;
    return 0;
}

static int cmd_ls(struct admin *a, const char *path)
{
    struct dfs_attr at;
    int rc = dfs_resolve(a->d, path, &at);
    if (rc < 0)
        return fail("ls", path, rc);
    struct ls_state st = { .json = a->json, .first = true };
    if (!S_ISDIR(at.mode)) {
        const char *base = strrchr(path, '/');
        struct dfs_dirent e = { .ino = at.ino, .mode = at.mode,
                                .name = base ? base + 1 : path, .attr = &at };
        if (a->json)
            printf("[");
        ls_entry(&e, &st);
        printf(a->json ? "\n]\n" : "");
        return TOOL_OK;
    }
    if (a->json)
        printf("[");
    rc = dfs_readdir(a->d, at.ino, 0, DFS_READDIR_PLUS, ls_entry, &st);
    if (a->json)
        printf("\n]\n");
    return rc < 0 ? fail("ls", path, rc) : TOOL_OK;
}

/* Prints every chunk of a regular file, as JSON objects or lines. */
static int print_chunks(struct admin *a, const struct dfs_attr *at)
{
    struct dfs_chunk c[64];
    size_t n;
    bool first = true;
    uint64_t cs;
    int rc = dfs_chunk_size(a->d, &cs);
    if (rc < 0)
        return rc;
    uint64_t nchunks = (at->size + cs - 1) / cs;
    for (uint64_t from = 0; from < nchunks; from += 64) {
        rc = dfs_chunks(a->d, at->ino, (uint32_t)from, c, 64, &n);
        if (rc < 0)
            return rc;
        for (size_t i = 0; i < n; i++) {
            if (a->json) {
                printf("%s{\"index\":%u,\"id\":\"%016" PRIx64 "\",\"version\":%u,"
                       "\"length\":%u,\"replicas\":[", first ? "" : ",", c[i].index,
                       c[i].id, c[i].version, c[i].length);
                for (uint32_t k = 0; k < c[i].nreplicas; k++)
                    printf("%s%u", k ? "," : "", c[i].replicas[k]);
                printf("]}");
            } else {
                printf(" chunk: %u id %016" PRIx64 " v%u %u bytes on", c[i].index,
                       c[i].id, c[i].version, c[i].length);
                for (uint32_t k = 0; k < c[i].nreplicas; k++)
                    printf(" cs%u", c[i].replicas[k]);
                printf("%s\n", c[i].nreplicas ? "" : " no chunkserver");
            }
            first = false;
        }
    }
    return 0;
}

static int cmd_stat(struct admin *a, const char *path)
{
    struct dfs_attr at;
    int rc = dfs_resolve(a->d, path, &at);
    if (rc < 0)
        return fail("stat", path, rc);
    if (a->json) {
        printf("{\"path\":");
        toolkit_json_string(stdout, path);
        printf(",\"inode\":%" PRIu64 ",\"type\":\"%s\",\"size\":%" PRIu64
               ",\"goal\":%u,\"mode\":\"%04o\",\"nlink\":%u,\"uid\":%u,\"gid\":%u"
               ",\"mtime_ns\":%" PRId64 ",\"ctime_ns\":%" PRId64 ",\"chunks\":[",
               at.ino, toolkit_type_name(at.mode), at.size, at.goal, at.mode & 07777,
               at.nlink, at.uid, at.gid, at.mtime, at.ctime);
    } else {
        printf("  path: %s\n inode: %" PRIu64 "\n  type: %s\n  size: %" PRIu64
               "\n  mode: %04o\n links: %u\n owner: %u:%u\n  goal: %u\n",
               path, at.ino, toolkit_type_name(at.mode), at.size, at.mode & 07777,
               at.nlink, at.uid, at.gid, at.goal);
    }
    rc = S_ISREG(at.mode) ? print_chunks(a, &at) : 0;
    if (a->json)
        printf("]}\n");
    return rc < 0 ? fail("stat", path, rc) : TOOL_OK;
}

/* ---- changes ------------------------------------------------------------- */

static int mkdir_one(struct admin *a, const char *path)
{
    struct dfs_attr parent, made;
    char name[256];
    int rc = toolkit_parent(a->d, path, &parent, name, sizeof(name));
    if (rc == 0)
        rc = dfs_mkdir(a->d, parent.ino, name, 0755, &made);
    return rc;
}

static int cmd_mkdir(struct admin *a, const char *path)
{
    if (!a->parents) {
        int rc = mkdir_one(a, path);
        return rc < 0 ? fail("mkdir", path, rc) : TOOL_OK;
    }
    char *p = strdup(path);
    if (!p)
        return fail("mkdir", path, -ENOMEM);
    int rc = 0;
    for (char *s = p + 1; rc == 0; s++) {
        bool end = *s == '\0';
        if (*s != '/' && !end)
            continue;
        *s = '\0';
        rc = mkdir_one(a, p);
        if (rc == -EEXIST)
            rc = 0;
        if (end)
            break;
        *s = '/';
    }
    free(p);
    return rc < 0 ? fail("mkdir", path, rc) : TOOL_OK;
}

struct rm_walk {
    struct admin *a;
    uint64_t dir;
    int err;
    char names[64][256];   /* a batch of children to remove after listing */
    int n;
    bool more;
};

static int rm_tree(struct admin *a, uint64_t parent, const char *name);

static int rm_collect(const struct dfs_dirent *e, void *arg)
{
    struct rm_walk *w = arg;
    if (!strcmp(e->name, ".") || !strcmp(e->name, ".."))
        return 0;
    if (w->n == 64) {
        w->more = true;
        return 1;   /* remove this batch, then list again */
    }
    snprintf(w->names[w->n++], sizeof(w->names[0]), "%s", e->name);
    return 0;
}

/* Removes every child of dir, a batch at a time. */
static int rm_children(struct admin *a, uint64_t dir)
{
    struct rm_walk *w = malloc(sizeof(*w));
    if (!w)
        return -ENOMEM;
    int rc = 0;
    do {
        w->n = 0;
        w->more = false;
        rc = dfs_readdir(a->d, dir, 0, 0, rm_collect, w);
        if (rc == 1)
            rc = 0;
        for (int i = 0; rc == 0 && i < w->n; i++)
            rc = rm_tree(a, dir, w->names[i]);
    } while (rc == 0 && w->more);
    free(w);
    return rc;
}

static int rm_tree(struct admin *a, uint64_t parent, const char *name)
{
    struct dfs_attr at;
    int rc = dfs_lookup(a->d, parent, name, &at);
    if (rc < 0)
        return rc;
    if (!S_ISDIR(at.mode))
        return dfs_unlink(a->d, parent, name);
    rc = rm_children(a, at.ino);
    return rc < 0 ? rc : dfs_rmdir(a->d, parent, name);
}

static int cmd_rm(struct admin *a, const char *path)
{
    struct dfs_attr parent, at;
    char name[256];
    int rc = toolkit_parent(a->d, path, &parent, name, sizeof(name));
    if (rc == 0)
        rc = dfs_lookup(a->d, parent.ino, name, &at);
    if (rc == 0 && S_ISDIR(at.mode) && !a->recursive)
        rc = -EISDIR;
    if (rc == 0)
        rc = a->recursive ? rm_tree(a, parent.ino, name)
                          : dfs_unlink(a->d, parent.ino, name);
    return rc < 0 ? fail("rm", path, rc) : TOOL_OK;
}

static int cmd_mv(struct admin *a, const char *src, const char *dst)
{
    struct dfs_attr sp, dp, target;
    char sname[256], dname[256];
    int rc = toolkit_parent(a->d, src, &sp, sname, sizeof(sname));
    if (rc < 0)
        return fail("mv", src, rc);
    /* Into an existing directory, like mv(1). */
    if (dfs_resolve(a->d, dst, &target) == 0 && S_ISDIR(target.mode)) {
        dp = target;
        snprintf(dname, sizeof(dname), "%s", sname);
    } else {
        rc = toolkit_parent(a->d, dst, &dp, dname, sizeof(dname));
        if (rc < 0)
            return fail("mv", dst, rc);
    }
    rc = dfs_rename(a->d, sp.ino, sname, dp.ino, dname, 0);
    return rc < 0 ? fail("mv", src, rc) : TOOL_OK;
}

/* ---- fsck ---------------------------------------------------------------- */

/* On a terminal, what --verify is about to wait for: the chunks (a plain
 * count first, which is quick) and the chunkservers up. */
static void verify_progress(struct admin *a, uint64_t ino)
{
    struct dfs_fsck f;
    if (!isatty(STDERR_FILENO) || dfs_fsck(a->d, ino, &f) < 0)
        return;
    unsigned up = 0;
    char *json;
    if (leader_status(a, &json) == 0) {
        const char *list = strstr(json, "\"chunkservers\":[");
        const char *end = list ? strchr(list, ']') : NULL;
        for (const char *p = list; end && (p = strstr(p, "\"state\":\"up\"")) && p < end; p++)
            up++;
        free(json);
    }
    fprintf(stderr, "verifying %" PRIu64 " chunks on %u chunkservers\u2026\n", f.chunks, up);
    dfs_fsck_release(&f);
}

static void fsck_print_verify(const struct admin *a, const struct dfs_fsck *f)
{
    if (a->json)
        printf(",\"verify\":{\"verified\":%" PRIu64 ",\"bad\":%" PRIu64
               ",\"unverified\":%" PRIu64 ",\"chunkservers\":%u}",
               f->verified, f->bad, f->unverified, f->servers);
    else
        printf("verify: %" PRIu64 " replicas re-read on %u chunkservers: %" PRIu64
               " good, %" PRIu64 " bad, %" PRIu64 " not verified\n", f->verified + f->bad,
               f->servers, f->verified, f->bad, f->unverified);
}

static int cmd_fsck(struct admin *a, const char *path)
{
    static const char *const states[] = { "healthy", "under-replicated",
                                          "missing", "corrupt", "awaiting trim" };
    struct dfs_attr at;
    struct dfs_fsck f;
    int rc = dfs_resolve(a->d, path, &at);
    if (rc == 0 && a->verify)
        verify_progress(a, at.ino);
    if (rc == 0)
        rc = a->verify ? dfs_fsck_verify(a->d, at.ino, &f) : dfs_fsck(a->d, at.ino, &f);
    if (rc < 0)
        return fail("fsck", path, rc);
    if (a->json) {
        printf("{\"path\":");
        toolkit_json_string(stdout, path);
        printf(",\"chunks\":%" PRIu64 ",\"healthy\":%" PRIu64 ",\"under_replicated\":%"
               PRIu64 ",\"missing\":%" PRIu64 ",\"corrupt\":%" PRIu64,
               f.chunks, f.healthy, f.under_replicated, f.missing, f.corrupt);
        if (a->verify)
            fsck_print_verify(a, &f);
        printf(",\"problems\":[");
    } else {
        printf("%s: %" PRIu64 " chunks: %" PRIu64 " healthy, %" PRIu64
               " under-replicated, %" PRIu64 " missing, %" PRIu64 " corrupt\n", path,
               f.chunks, f.healthy, f.under_replicated, f.missing, f.corrupt);
        if (a->verify)
            fsck_print_verify(a, &f);
    }
    for (size_t i = 0; i < f.nproblems; i++) {
        const struct dfs_fsck_problem *p = &f.problems[i];
        const char *st = p->state < sizeof(states) / sizeof(states[0]) ? states[p->state] : "?";
        if (a->json)
            printf("%s{\"inode\":%" PRIu64 ",\"index\":%u,\"id\":\"%016" PRIx64
                   "\",\"version\":%u,\"replicas\":%u,\"goal\":%u,\"state\":\"%s\"}",
                   i ? "," : "", p->inode, p->index, p->chunk, p->version,
                   p->replicas, p->goal, st);
        else
            printf("  inode %" PRIu64 " chunk %u (%016" PRIx64 " v%u): %s, %u of %u replicas\n",
                   p->inode, p->index, p->chunk, p->version, st, p->replicas, p->goal);
    }
    if (a->json)
        printf("]}\n");
    /* A replica found bad is counted corrupt above; one not re-read is
     * not known bad. */
    bool clean = f.healthy == f.chunks && f.bad == 0;
    dfs_fsck_release(&f);
    return clean ? TOOL_OK : TOOL_FAILED;
}

/* ---- membership ------------------------------------------------------------ */

static const char *role_name(uint8_t role)
{
    return role == DFS_MEMBER_VOTER ? "voter" : role == DFS_MEMBER_LEARNER ? "learner"
                                                                            : "none";
}

static int cmd_masters_list(struct admin *a)
{
    struct dfs_members *v = malloc(sizeof(*v));
    int rc = v ? dfs_admin_masters(a->d, v) : -ENOMEM;
    if (rc < 0) {
        free(v);
        return fail("masters", "", rc);
    }
    if (a->json) {
        printf("{\"cluster\":\"%016" PRIx64 "\",\"answered_by\":%" PRIu64
               ",\"leader\":%" PRIu64 ",\"term\":%" PRIu64 ",\"commit_index\":%" PRIu64
               ",\"masters\":[", v->cluster_id, v->self_id, v->leader_id, v->term, v->commit);
        for (size_t i = 0; i < v->n; i++) {
            printf("%s{\"id\":%" PRIu64 ",\"address\":", i ? "," : "", v->m[i].id);
            toolkit_json_string(stdout, v->m[i].addr);
            printf(",\"http\":");
            toolkit_json_string(stdout, v->m[i].http);
            printf(",\"role\":\"%s\",\"leader\":%s}", role_name(v->m[i].role),
                   v->m[i].id == v->leader_id ? "true" : "false");
        }
        printf("]}\n");
    } else {
        printf("cluster %016" PRIx64 "  leader master %" PRIu64 "  term %" PRIu64
               "  (as master %" PRIu64 " sees it)\n", v->cluster_id, v->leader_id, v->term,
               v->self_id);
        printf("%-4s %-22s %-22s %s\n", "id", "address", "status page", "role");
        for (size_t i = 0; i < v->n; i++)
            printf("%-4" PRIu64 " %-22s %-22s %s%s\n", v->m[i].id, v->m[i].addr,
                   v->m[i].http[0] ? v->m[i].http : "-", role_name(v->m[i].role),
                   v->m[i].id == v->leader_id ? ", leader" : "");
    }
    free(v);
    return TOOL_OK;
}

/* A master id from the command line; 0 when it is not one. */
static uint64_t parse_id(const char *text)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    return errno || *end || end == text ? 0 : (uint64_t)v;
}

static int cmd_masters(struct admin *a, int argc, char **argv)
{
    if (argc == 1)
        return cmd_masters_list(a);
    const char *sub = argv[1];
    uint64_t id = 0;
    int rc;
    if (!strcmp(sub, "add")) {
        rc = dfs_admin_master_add(a->d, argv[2], 0, &id);
        if (rc < 0)
            return fail("masters add", argv[2], rc);
        if (a->json) {
            printf("{\"id\":%" PRIu64 ",\"address\":", id);
            toolkit_json_string(stdout, argv[2]);
            printf(",\"role\":\"voter\"}\n");
        } else {
            printf("master %" PRIu64 " (%s) added; it votes\n", id, argv[2]);
        }
        return TOOL_OK;
    }
    id = parse_id(argv[2]);
    if (!id) {
        fprintf(stderr, "dfsadmin: masters %s: \"%s\" is not a master id\n", sub, argv[2]);
        return TOOL_USAGE;
    }
    bool remove = !strcmp(sub, "remove");
    rc = remove ? dfs_admin_master_remove(a->d, id) : dfs_admin_leader_transfer(a->d, id);
    if (rc < 0)
        return fail(remove ? "masters remove" : "masters transfer-leader", argv[2], rc);
    if (a->json)
        printf("{\"id\":%" PRIu64 ",\"%s\":true}\n", id, remove ? "removed" : "leader");
    else
        printf(remove ? "master %" PRIu64 " removed\n" : "master %" PRIu64 " leads\n", id);
    return TOOL_OK;
}

/* Prints the leader's chunkserver list (from its status document). */
static int cmd_chunkservers_list(struct admin *a)
{
    char *json;
    int rc = leader_status(a, &json);
    if (rc < 0)
        return fail("chunkservers", "", rc);
    const char *list = strstr(json, "\"chunkservers\":[");
    const char *end = list ? strchr(list, ']') : NULL;
    if (!end) {
        free(json);
        return fail("chunkservers", "", -EBADMSG);
    }
    list += strlen("\"chunkservers\":");
    if (a->json) {
        printf("%.*s\n", (int)(end - list + 1), list);
        free(json);
        return TOOL_OK;
    }
    printf("%-4s %-22s %-10s %-16s %12s %12s %8s\n", "id", "address", "rack", "state",
           "used", "total", "chunks");
    char b[7][128];
    for (const char *o = strstr(list, "{"); o && o < end; o = strstr(o + 1, "{")) {
        printf("%-4s %-22s %-10s %-16s %12s %12s %8s\n", json_field(o, "id", b[0], 128),
               json_field(o, "address", b[1], 128), json_field(o, "rack", b[2], 128),
               json_field(o, "state", b[3], 128), json_field(o, "bytes_used", b[4], 128),
               json_field(o, "bytes_total", b[5], 128), json_field(o, "chunks", b[6], 128));
    }
    free(json);
    return TOOL_OK;
}

static int cmd_chunkservers(struct admin *a, int argc, char **argv)
{
    if (argc == 1)
        return cmd_chunkservers_list(a);
    uint64_t cs = parse_id(argv[2]);
    if (!cs || cs > UINT32_MAX) {
        fprintf(stderr, "dfsadmin: chunkservers decommission: \"%s\" is not a "
                        "chunkserver number\n", argv[2]);
        return TOOL_USAGE;
    }
    int rc = dfs_admin_cs_decommission(a->d, (uint32_t)cs);
    if (rc < 0)
        return fail("chunkservers decommission", argv[2], rc);
    if (a->json)
        printf("{\"id\":%" PRIu64 ",\"state\":\"decommissioning\"}\n", cs);
    else
        printf("chunkserver %" PRIu64 " is decommissioning: its chunks move elsewhere; "
               "`dfsadmin chunkservers` shows \"decommissioned\" once it may go\n", cs);
    return TOOL_OK;
}

/* ---- main --------------------------------------------------------------- */

static int run(struct admin *a, int argc, char **argv)
{
    const char *cmd = argv[0];
    if (!strcmp(cmd, "status") && argc == 1)
        return cmd_status(a);
    if (!strcmp(cmd, "ls") && argc <= 2)
        return cmd_ls(a, argc == 2 ? argv[1] : "/");
    if (!strcmp(cmd, "stat") && argc == 2)
        return cmd_stat(a, argv[1]);
    if (!strcmp(cmd, "mkdir") && argc == 2)
        return cmd_mkdir(a, argv[1]);
    if (!strcmp(cmd, "rm") && argc == 2)
        return cmd_rm(a, argv[1]);
    if (!strcmp(cmd, "mv") && argc == 3)
        return cmd_mv(a, argv[1], argv[2]);
    if (!strcmp(cmd, "fsck") && argc <= 2)
        return cmd_fsck(a, argc == 2 ? argv[1] : "/");
    if (!strcmp(cmd, "masters") && (argc == 1 || (argc == 3 && (!strcmp(argv[1], "add") ||
        !strcmp(argv[1], "remove") || !strcmp(argv[1], "transfer-leader")))))
        return cmd_masters(a, argc, argv);
    if (!strcmp(cmd, "chunkservers") &&
        (argc == 1 || (argc == 3 && !strcmp(argv[1], "decommission"))))
        return cmd_chunkservers(a, argc, argv);
    fprintf(stderr, "dfsadmin: bad command or arguments (see --help)\n");
    return TOOL_USAGE;
}

int main(int argc, char **argv)
{
    struct toolkit_opts o = { 0 };
    struct admin a = { 0 };
    char *rest[8];
    int n = 0;
    for (int i = 1; i < argc; i++) {
        int code;
        if (toolkit_standard_option("dfsadmin", usage, argc, argv, &i, &o, &code)) {
            if (code >= 0)
                return code;
            continue;
        }
        if (!strcmp(argv[i], "--json"))
            a.json = true;
        else if (!strcmp(argv[i], "-r"))
            a.recursive = true;
        else if (!strcmp(argv[i], "-p"))
            a.parents = true;
        else if (!strcmp(argv[i], "--no-follow"))
            a.no_follow = true;
        else if (!strcmp(argv[i], "--verify"))
            a.verify = true;
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "dfsadmin: unknown option %s (see --help)\n", argv[i]);
            return TOOL_USAGE;
        } else if (n < 8) {
            rest[n++] = argv[i];
        }
    }
    if (n == 0) {
        usage(stderr);
        return TOOL_USAGE;
    }
    a.d = toolkit_open("dfsadmin", &o);
    if (!a.d)
        return TOOL_FAILED;
    int rc = run(&a, n, rest);
    dfs_close(a.d);
    return rc;
}
