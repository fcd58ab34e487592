/*
 * Allocation failure inside ns_apply (STYLE §16): for each kind of op, the
 * 1st, 2nd, ... allocation it makes fails in turn.  Each time the op must
 * either fail with -ENOMEM and leave the state exactly as it was (same
 * digest, invariants intact), or succeed with the same state as without
 * the fault (an effect list may then lack an entry); and nothing leaks
 * (run under ASan/LSan).  Allocations are counted by replacing malloc,
 * calloc, realloc and free in this program; they forward to the next
 * definition (libc's, or the sanitizer's).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>

#include "test_ns.h"

/* ---- the failing allocator ------------------------------------------------- */

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static long fail_in = -1;       /* allocations before the one that fails; -1 off */
static long fail_every;         /* or: every fail_every-th allocation fails */
static long counted;
static long injected;

/* dlsym may allocate while the real functions are being looked up. */
static _Alignas(16) char boot[16384];
static size_t boot_used;
static int resolving;

static void *boot_alloc(size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (boot_used + n > sizeof(boot))
        return NULL;
    void *p = boot + boot_used;
    boot_used += n;
    return p;
}

static bool booting(void)
{
    if (real_free)
        return false;
    if (resolving)
        return true;
    resolving = 1;
    real_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    real_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
    real_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
    real_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
    resolving = 0;
    return false;
}

static bool inject(void)
{
    if (fail_every > 0 && ++counted % fail_every == 0) {
        injected++;
        return true;
    }
    if (fail_in < 0)
        return false;
    if (fail_in-- > 0)
        return false;
    injected++;
    return true;
}

void *malloc(size_t n)
{
    if (booting())
        return boot_alloc(n);
    return inject() ? NULL : real_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    if (booting())
        return boot_alloc(n * size);   /* static: already zero */
    return inject() ? NULL : real_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    if (booting())
        return NULL;
    return inject() ? NULL : real_realloc(p, n);
}

void free(void *p)
{
    if ((char *)p >= boot && (char *)p < boot + sizeof(boot))
        return;
    if (!booting() && p)
        real_free(p);
}

/* ---- the ops ---------------------------------------------------------------- */

static uint64_t F, G, D, BIG;    /* inodes of the base namespace */

/* A namespace with a bit of everything; the session of client 3 holds
 * "f" open for writing with a lease on chunk 0 and a lock. */
static struct ns *base(struct tctx *t)
{
    t_init(t);
    assert_int_equal(t_mkdir(t, &T_ROOT, NS_ROOT_INO, "d", 0777, &D), 0);
    assert_int_equal(t_mkdir(t, &T_ROOT, NS_ROOT_INO, "big", 0777, &BIG), 0);
    char name[16];
    for (int i = 0; i < 8; i++) {           /* one more makes it indexed */
        snprintf(name, sizeof(name), "e%d", i);
        assert_int_equal(t_create(t, &T_ROOT, BIG, name, 0644, NULL), 0);
    }
    assert_int_equal(t_create(t, &T_ROOT, D, "f", 0666, &F), 0);
    assert_int_equal(t_create(t, &T_ROOT, D, "g", 0666, &G), 0);
    struct ns_op op = t_op(t, NS_OP_SETXATTR, &T_ROOT);
    op.u.xattr = (struct ns_op_xattr){ .ino = G, .name = t_str("user.a"), .value = t_str("1") };
    assert_int_equal(t_apply(t, &op), 0);
    t_session(t, 3, 30, 1000);
    assert_int_equal(t_open(t, &T_ROOT, F, NS_OPEN_WRITE), 0);
    assert_int_equal(t_open(t, &T_ROOT, G, NS_OPEN_READ), 0);
    assert_int_equal(t_write_begin(t, F, 0), 0);
    assert_int_equal(t_write_end(t, F, 0, 100, NS_WRITE_KEEP_LEASE), 0);
    assert_int_equal(t_lock(t, F, 1, NS_LOCK_POSIX, NS_LOCK_WR, 0, 99), 0);
    assert_int_equal(t_unlink(t, &T_ROOT, D, "g"), 0);     /* an orphan */
    return t->ns;
}

enum { NOPS = 19 };

/* The i-th op under test, as client 3 (or the master). */
static struct ns_op op_number(struct tctx *t, int i)
{
    struct ns_op op = t_op(t, NS_OP_MKDIR, &T_ROOT);
    uint64_t ino = ns_next_free_ino(t->ns, 0);
    switch (i) {
    case 0:
        op.u.make = (struct ns_op_make){ .parent = D, .name = t_str("nd"), .mode = 0755, .ino = ino };
        break;
    case 1:
        op.type = NS_OP_CREATE;
        op.u.make = (struct ns_op_make){ .parent = D, .name = t_str("nf"), .mode = 0644,
                                         .ino = ino, .flags = NS_OPEN_WRITE };
        break;
    case 2:
        op.type = NS_OP_CREATE;
        op.u.make = (struct ns_op_make){ .parent = BIG, .name = t_str("e8"), .mode = 0644, .ino = ino };
        break;
    case 3:
        op.type = NS_OP_SYMLINK;
        op.u.make = (struct ns_op_make){ .parent = D, .name = t_str("s"), .ino = ino,
                                         .target = t_str("somewhere") };
        break;
    case 4:
        op.type = NS_OP_LINK;
        op.u.link = (struct ns_op_link){ F, NS_ROOT_INO, t_str("lnk") };
        break;
    case 5:
        op.type = NS_OP_RENAME;
        op.u.rename = (struct ns_op_rename){ D, NS_ROOT_INO, t_str("f"), t_str("moved"), 0 };
        break;
    case 6:
        op.type = NS_OP_RENAME;
        op.u.rename = (struct ns_op_rename){ BIG, BIG, t_str("e1"), t_str("e2"), 0 };
        break;
    case 7:
        op.type = NS_OP_UNLINK;
        op.u.remove = (struct ns_op_remove){ D, t_str("f") };
        break;
    case 8:
        op.type = NS_OP_SETXATTR;
        op.u.xattr = (struct ns_op_xattr){ .ino = F, .name = t_str("user.n"), .value = t_str("v") };
        break;
    case 9:
        op.type = NS_OP_SETXATTR;
        op.u.xattr = (struct ns_op_xattr){ .ino = G, .name = t_str("user.b"), .value = t_str("v") };
        break;
    case 10:
        op.type = NS_OP_OPEN;
        op.u.open = (struct ns_op_open){ .ino = F, .flags = NS_OPEN_READ };
        break;
    case 11:
        op.type = NS_OP_WRITE_BEGIN;
        op.u.write = (struct ns_op_write){ .ino = F, .index = 5, .chunk_id = 0x9999 };
        break;
    case 12:
        op.type = NS_OP_LOCK;
        op.u.lock = (struct ns_op_lock){ .ino = F, .owner = 1, .kind = NS_LOCK_POSIX,
                                         .type = NS_LOCK_RD, .start = 10, .end = 20 };
        break;
    case 13:
        op.type = NS_OP_RELEASE;
        op.u.open = (struct ns_op_open){ .ino = G, .flags = NS_OPEN_READ };
        break;
    case 14:
        op.type = NS_OP_SESSION_OPEN;
        op.client = 4;
        op.u.session = (struct ns_op_session){ .session = 40, .expiry = 5 };
        break;
    case 15:
        op.type = NS_OP_SESSION_OPEN;
        op.u.session = (struct ns_op_session){ .session = 31, .expiry = 5 };
        break;
    case 16:
        op.type = NS_OP_SESSION_CLOSE;
        break;
    case 17:
        op.type = NS_OP_SETATTR;
        op.u.setattr = (struct ns_op_setattr){ .ino = F, .valid = NS_SET_SIZE, .size = 10 };
        break;
    default:
        op.type = NS_OP_WRITE_END;
        op.u.write = (struct ns_op_write){ .ino = F, .index = 0, .length = 500, .mtime = 7 };
        break;
    }
    return op;
}

static struct ns *load(const struct wire_writer *snap)
{
    struct ns *ns;
    assert_int_equal(ns_snapshot_load(snap->buf, snap->len, &ns), 0);
    return ns;
}

/* Applies op to a fresh copy with the n-th allocation failing. */
static int apply_failing(const struct wire_writer *snap, const struct ns_op *op,
                         long n, struct ns **out)
{
    struct ns *ns = load(snap);
    struct ns_result r;
    ns_result_init(&r);
    injected = 0;
    fail_in = n;
    int rc = ns_apply(ns, op, &r);
    fail_in = -1;
    ns_result_release(&r);
    *out = ns;
    return rc;
}

static void test_every_allocation_failure_unwinds(void **state)
{
    (void)state;
    struct tctx t;
    struct ns *ns = base(&t);
    struct wire_writer snap;
    wire_writer_init(&snap);
    assert_int_equal(ns_snapshot_write(ns, &snap), 0);
    uint64_t before = ns_digest(ns);
    long total_faults = 0;
    for (int i = 0; i < NOPS; i++) {
        struct ns_op op = op_number(&t, i);
        struct ns *ref;
        int want = apply_failing(&snap, &op, -1, &ref);
        assert_int_equal(want, 0);
        uint64_t after = ns_digest(ref);
        ns_free(ref);
        for (long n = 0;; n++) {
            struct ns *got;
            int rc = apply_failing(&snap, &op, n, &got);
            long hit = injected;
            assert_int_equal(ns_check(got), 0);
            if (rc == -ENOMEM) {
                assert_int_equal(ns_digest(got), before);
            } else {
                assert_int_equal(rc, want);
                assert_int_equal(ns_digest(got), after);
            }
            ns_free(got);
            if (hit == 0)
                break;          /* the op made fewer than n + 1 allocations */
            total_faults++;
        }
    }
    printf("  %ld injected allocation failures over %d ops\n", total_faults, NOPS);
    assert_true(total_faults > NOPS);
    wire_writer_release(&snap);
    t_fini(&t);
}

/* ---- a random workload with periodic failures ---------------------------- */

/* A random op of client 3 (or of the master) over small pools of names. */
static struct ns_op random_op(struct tctx *t, uint64_t *seed, char *n1, char *n2)
{
    uint64_t dirs[] = { NS_ROOT_INO, D, BIG };
    uint64_t dir = dirs[t_rand(seed) % 3], dir2 = dirs[t_rand(seed) % 3];
    snprintf(n1, 16, "n%llu", (unsigned long long)(t_rand(seed) % 30));
    snprintf(n2, 16, "n%llu", (unsigned long long)(t_rand(seed) % 30));
    struct ns_attr a;
    uint64_t ino = ns_lookup(t->ns, &T_ROOT, dir, t_str(n1), &a) == 0 ? a.ino : F;
    struct ns_op op = t_op(t, NS_OP_MKDIR, &T_ROOT);
    uint64_t r = t_rand(seed) % 16;
    op.type = (enum ns_op_type[]){ NS_OP_MKDIR, NS_OP_CREATE, NS_OP_CREATE, NS_OP_UNLINK,
                                   NS_OP_RMDIR, NS_OP_RENAME, NS_OP_LINK, NS_OP_SETXATTR,
                                   NS_OP_OPEN, NS_OP_RELEASE, NS_OP_WRITE_BEGIN,
                                   NS_OP_WRITE_END, NS_OP_LOCK, NS_OP_SETATTR,
                                   NS_OP_SESSION_OPEN, NS_OP_SYMLINK }[r];
    switch (op.type) {
    case NS_OP_MKDIR: case NS_OP_CREATE: case NS_OP_SYMLINK:
        op.u.make = (struct ns_op_make){ .parent = dir, .name = t_str(n1), .mode = 0777,
                                         .ino = ns_next_free_ino(t->ns, 0),
                                         .flags = (uint32_t)(t_rand(seed) % 4),
                                         .target = t_str(n2) };
        break;
    case NS_OP_UNLINK: case NS_OP_RMDIR:
        op.u.remove = (struct ns_op_remove){ dir, t_str(n1) };
        break;
    case NS_OP_RENAME:
        op.u.rename = (struct ns_op_rename){ dir, dir2, t_str(n1), t_str(n2),
                                             (uint32_t)(t_rand(seed) % 3) };
        break;
    case NS_OP_LINK:
        op.u.link = (struct ns_op_link){ ino, dir2, t_str(n2) };
        break;
    case NS_OP_SETXATTR:
        op.u.xattr = (struct ns_op_xattr){ .ino = ino, .name = t_str(n2), .value = t_str(n1) };
        memcpy(n2, "user.", 5);
        break;
    case NS_OP_OPEN: case NS_OP_RELEASE:
        op.u.open = (struct ns_op_open){ .ino = ino, .flags = 1 + (uint32_t)(t_rand(seed) % 3) };
        break;
    case NS_OP_WRITE_BEGIN: case NS_OP_WRITE_END:
        op.u.write = (struct ns_op_write){ .ino = ino, .index = (uint32_t)(t_rand(seed) % 9),
                                           .chunk_id = ns_max_chunk_id(t->ns) + 1,
                                           .length = 1000 };
        break;
    case NS_OP_LOCK: {
        uint64_t s = t_rand(seed) % 100;
        op.u.lock = (struct ns_op_lock){ .ino = ino, .owner = 1 + t_rand(seed) % 2,
                                         .kind = NS_LOCK_POSIX, .type = (uint32_t)(t_rand(seed) % 3),
                                         .start = s, .end = s + t_rand(seed) % 50 };
        break;
    }
    case NS_OP_SETATTR:
        op.u.setattr = (struct ns_op_setattr){ .ino = ino, .valid = NS_SET_SIZE,
                                               .size = t_rand(seed) % (3 * NS_CHUNK_SIZE_DEFAULT) };
        break;
    default:
        op.u.session = (struct ns_op_session){ .session = 100 + t->seq, .expiry = 9 };
    }
    return op;
}

static void run_periodic(uint64_t seed, long every)
{
    struct tctx t;
    base(&t);
    struct ns *ref;
    struct wire_writer snap;
    wire_writer_init(&snap);
    assert_int_equal(ns_snapshot_write(t.ns, &snap), 0);
    ref = load(&snap);
    wire_writer_release(&snap);
    long nomem = 0;
    char n1[16], n2[16];
    for (int step = 0; step < 1500; step++) {
        struct ns_op op = random_op(&t, &seed, n1, n2);
        struct ns_result r;
        ns_result_init(&r);
        fail_every = every;     /* counted across ops: any op may be hit */
        int rc = ns_apply(t.ns, &op, &r);
        fail_every = 0;
        ns_result_release(&r);
        if (rc == -ENOMEM) {
            /* nothing changed: the same op again, without faults */
            nomem++;
            assert_int_equal(ns_digest(t.ns), ns_digest(ref));
            ns_result_init(&r);
            rc = ns_apply(t.ns, &op, &r);
            ns_result_release(&r);
        }
        ns_result_init(&r);
        assert_int_equal(ns_apply(ref, &op, &r), rc);
        ns_result_release(&r);
    }
    assert_int_equal(ns_check(t.ns), 0);
    assert_int_equal(ns_digest(t.ns), ns_digest(ref));
    printf("  every %ld-th allocation failing: %ld ops refused for memory\n", every, nomem);
    assert_true(nomem > 0);
    ns_free(ref);
    t_fini(&t);
}

static void test_random_ops_with_periodic_failures(void **state)
{
    (void)state;
    uint64_t seed = t_seed("ns oom", 31);
    const long every[] = { 2, 3, 5, 7, 13 };
    for (int i = 0; i < 5; i++)
        run_periodic(seed + (uint64_t)i, every[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_allocation_failure_unwinds),
        cmocka_unit_test(test_random_ops_with_periodic_failures),
    };
    return cmocka_run_group_tests_name("ns_oom", tests, NULL, NULL);
}
