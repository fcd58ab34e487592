/* Tests of the namespace tree: make, lookup, link, unlink, rmdir, rename,
 * setattr, xattrs, readdir, and every error case they promise. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>

#include "test_ns.h"

static const struct ns_cred ALICE = { .uid = 1000, .gid = 100 };
static const struct ns_cred BOB = { .uid = 1001, .gid = 100, .ngroups = 1, .groups = { 200 } };
static const struct ns_cred EVE = { .uid = 1002, .gid = 300 };

static void test_root_and_mkdir(void **state)
{
    (void)state;
    struct tctx t;
    t_init(&t);
    struct ns_attr a = t_attr(&t, NS_ROOT_INO);
    assert_true(S_ISDIR(a.mode));
    assert_int_equal(a.mode & 07777, 0755);
    assert_int_equal(a.nlink, 2);

    uint64_t d;
    assert_int_equal(t_mkdir(&t, &T_ROOT, NS_ROOT_INO, "d", 0750, &d), 0);
    a = t_attr(&t, d);
    assert_true(S_ISDIR(a.mode));
    assert_int_equal(a.mode & 07777, 0750);
    assert_int_equal(a.nlink, 2);
    assert_int_equal(a.goal, NS_GOAL_DEFAULT);
    assert_int_equal(a.ctime, t.now);
    assert_int_equal(t_attr(&t, NS_ROOT_INO).nlink, 3);
    assert_int_equal(t_attr(&t, NS_ROOT_INO).mtime, t.now);
    assert_int_equal(t_ino(&t, NS_ROOT_INO, "d"), d);
    assert_int_equal(t_ino(&t, d, ".."), NS_ROOT_INO);
    assert_int_equal(t_ino(&t, d, "."), d);

    assert_int_equal(t_mkdir(&t, &T_ROOT, NS_ROOT_INO, "d", 0755, NULL), -EEXIST);
    assert_int_equal(t_mkdir(&t, &T_ROOT, 999, "x", 0755, NULL), -ENOENT);
    uint64_t f;
    assert_int_equal(t_create(&t, &T_ROOT, d, "f", 0644, &f), 0);
    assert_int_equal(t_mkdir(&t, &T_ROOT, f, "x", 0755, NULL), -ENOTDIR);
    t_fini(&t);
}

static void test_name_rules(void **state)
{
    (void)state;
    struct tctx t;
    t_init(&t);
    char long_name[300];
    memset(long_name, 'n', 256);
    long_name[256] = '\0';
    assert_int_equal(t_create(&t, &T_ROOT, NS_ROOT_INO, long_name, 0644, NULL), -ENAMETOOLONG);
    long_name[255] = '\0';
    assert_int_equal(t_create(&t, &T_ROOT, NS_ROOT_INO, long_name, 0644, NULL), 0);
    assert_int_equal(t_create(&t, &T_ROOT, NS_ROOT_INO, "", 0644, NULL), -ENOENT);
    assert_int_equal(t_create(&t, &T_ROOT, NS_ROOT_INO, "a/b", 0644, NULL), -EINVAL);
    assert_int_equal(t_create(&t, &T_ROOT, NS_ROOT_INO, ".", 0644, NULL), -EINVAL);
    assert_int_equal(t_mkdir(&t, &T_ROOT, NS_ROOT_INO, "..", 0755, NULL), -EINVAL);
    struct ns_attr a;
    memset(long_name, 'n', 256);
    long_name[256] = '\0';
    assert_int_equal(ns_lookup(t.ns, &T_ROOT, NS_ROOT_INO, t_str(long_name), &a), -ENAMETOOLONG);
    assert_int_equal(ns_lookup(t.ns, &T_ROOT, NS_ROOT_INO, t_str("nope"), &a), -ENOENT);
    t_fini(&t);
}

static void test_create_excl_and_ids(void **state)
{
    (void)state;
    struct tctx t;
    t_init(&t);
    uint64_t f;
    assert_int_equal(t_create(&t, &T_ROOT, NS_ROOT_INO, "f", 0640, &f), 0);
    struct ns_attr a = t_attr(&t, f);
    assert_true(S_ISREG(a.mode));
    assert_int_equal(a.nlink, 1);
    assert_int_equal(a.size, 0);

    /* without O_EXCL an existing file is answered, with it -EEXIST */
    struct ns_op op = t_op(&t, NS_OP_CREATE, &T_ROOT);
    op.u.make.parent = NS_ROOT_INO;
    op.u.make.name = t_str("f");
    op.u.make.ino = ns_next_free_ino(t.ns, 0);
    assert_int_equal(t_apply(&t, &op), 0);
    assert_int_equal(t.res.reply.attr.ino, f);
    op.u.make.flags = NS_CREATE_EXCL;
    assert_int_equal(t_apply(&t, &op), -EEXIST);
    /* opening needs a session, for a new or an existing file */
    op.u.make.flags = NS_OPEN_WRITE;
    assert_int_equal(t_apply(&t, &op), -DFS_ESESSION);
    op.u.make.name = t_str("g");
    assert_int_equal(t_apply(&t, &op), -DFS_ESESSION);
    op.u.make.flags = 1u << 9;
    assert_int_equal(t_apply(&t, &op), -EINVAL);

    /* leader-chosen inode numbers must be free and valid */
    op.u.make.flags = 0;
    op.u.make.ino = f;
    assert_int_equal(t_apply(&t, &op), -DFS_EIDINUSE);
    op.u.make.ino = 0;
    assert_int_equal(t_apply(&t, &op), -EINVAL);
    op.u.make.ino = UINT64_C(0xffffffff);
    assert_int_equal(t_apply(&t, &op), -EINVAL);
    op.u.make.ino = 5000;
    assert_int_equal(t_apply(&t, &op), 0);
    assert_int_equal(t_ino(&t, NS_ROOT_INO, "g"), 5000);
    assert_int_equal(ns_next_free_ino(t.ns, 4999), 5001);
    t_fini(&t);
}

static void test_mknod_symlink(void **state)
{
    (void)state;
    struct tctx t;
    t_init(&t);
    uint64_t p, c, s;
    assert_int_equal(t_make(&t, NS_OP_MKNOD, &T_ROOT, NS_ROOT_INO, "p", S_IFIFO | 0600, &p), 0);
    assert_true(S_ISFIFO(t_attr(&t, p).mode));
    struct ns_op op = t_op(&t, NS_OP_MKNOD, &T_ROOT);
    op.u.make = (struct ns_op_make){ .parent = NS_ROOT_INO, .name = t_str("c"),
                                     .mode = S_IFCHR | 0600, .rdev = 0x0501,
                                     .ino = ns_next_free_ino(t.ns, 100) };
    assert_int_equal(t_apply(&t, &op), 0);
    c = t.res.reply.attr.ino;
    assert_int_equal(t_attr(&t, c).rdev, 0x0501);
    assert_int_equal(t_make(&t, NS_OP_MKNOD, &T_ROOT, NS_ROOT_INO, "d", S_IFDIR | 0755, NULL),
                     -EINVAL);

    assert_int_equal(t_symlink(&t, &T_ROOT, NS_ROOT_INO, "s", "some/where", &s), 0);
    const char *target;
    uint32_t len;
    assert_int_equal(ns_readlink(t.ns, s, &target, &len), 0);
    assert_int_equal(len, 10);
    assert_memory_equal(target, "some/where", 10);
    assert_int_equal(t_attr(&t, s).size, 10);
    assert_int_equal(ns_readlink(t.ns, p, &target, &len), -EINVAL);
    assert_int_equal(ns_readlink(t.ns, 4242, &target, &len), -ENOENT);
    assert_int_equal(t_symlink(&t, &T_ROOT, NS_ROOT_INO, "e", "", NULL), -ENOENT);
    char big[NS_SYMLINK_MAX + 2];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(t_symlink(&t, &T_ROOT, NS_ROOT_INO, "e", big, NULL), -ENAMETOOLONG);
    t_fini(&t);
}

static void test_unlink_rmdir(void **state)
{
    (void)state;
    struct tctx t;
    t_init(&t);
    uint64_t d, f;
    assert_int_equal(t_mkdir(&t, &T_ROOT, NS_ROOT_INO, "d", 0755, &d), 0);
    assert_int_equal(t_create(&t, &T_ROOT, d, "f", 0644, &f), 0);
    assert_int_equal(t_rmdir(&t, &T_ROOT, NS_ROOT_INO, "d"), -ENOTEMPTY);
    assert_int_equal(t_unlink(&t, &T_ROOT, NS_ROOT_INO, "d"), -EISDIR);
    assert_int_equal(t_rmdir(&t, &T_ROOT, d, "f"), -ENOTDIR);
    assert_int_equal(t_unlink(&t, &T_ROOT, d, "nope"), -ENOENT);
    assert_int_equal(t_unlink(&t, &T_ROOT, f, "x"), -ENOTDIR);
    assert_int_equal(t_unlink(&t, &T_ROOT, d, "f"), 0);
    struct ns_attr a;
    assert_int_equal(ns_getattr(t.ns, f, &a), -ENOENT);
    assert_int_equal(t_rmdir(&t, &T_ROOT, NS_ROOT_INO, "d"), 0);
    assert_int_equal(ns_getattr(t.ns, d, &a), -ENOENT);
    assert_int_equal(t_attr(&t, NS_ROOT_INO).nlink, 2);
    struct ns_statfs st;
    ns_statfs(t.ns, &st);
    assert_int_equal(st.inodes, 1);
    assert_int_equal(st.dirs, 1);
    assert_int_equal(st.files, 0);
    t_fini(&t);
}

static void test_hard_links(void **state)
{
    (void)state;
    struct tctx t;
    t_init(&t);
    uint64_t d, f;
    assert_int_equal(t_mkdir(&t, &T_ROOT, NS_ROOT_INO, "d", 0755, &d), 0);
    assert_int_equal(t_create(&t, &T_ROOT, NS_ROOT_INO, "f", 0644, &f), 0);
    assert_int_equal(t_link(&t, &T_ROOT, f, d, "g"), 0);
    assert_int_equal(t_attr(&t, f).nlink, 2);
    assert_int_equal(t_ino(&t, d, "g"), f);
    assert_int_equal(t_link(&t, &T_ROOT, d, NS_ROOT_INO, "dd"), -EPERM);
    assert_int_equal(t_link(&t, &T_ROOT, f, d, "g"), -EEXIST);
    assert_int_equal(t_link(&t, &T_ROOT, 777, d, "h"), -ENOENT);
    assert_int_equal(t_link(&t, &T_ROOT, f, f, "h"), -ENOTDIR);
    assert_int_equal(t_unlink(&t, &T_ROOT, NS_ROOT_INO, "f"), 0);
    assert_int_equal(t_attr(&t, f).nlink, 1);
    assert_int_equal(t_unlink(&t, &T_ROOT, d, "g"), 0);
    struct ns_attr a;
    assert_int_equal(ns_getattr(t.ns, f, &a), -ENOENT);
    t_fini(&t);
}

static void test_rename_basics(void **state)
{
    (void)state;
    struct tctx t;
    t_init(&t);
    uint64_t a, b, f, g;
    assert_int_equal(t_mkdir(&t, &T_ROOT, NS_ROOT_INO, "a", 0755, &a), 0);
    assert_int_equal(t_mkdir(&t, &T_ROOT, NS_ROOT_INO, "b", 0755, &b), 0);
    assert_int_equal(t_create(&t, &T_ROOT, a, "f", 0644, &f), 0);
    assert_int_equal(t_create(&t, &T_ROOT, b, "g", 0644, &g), 0);

    /* across directories */
    assert_int_equal(t_rename(&t, &T_ROOT, a, "f", b, "f2", 0), 0);
    assert_int_equal(t_ino(&t, b, "f2"), f);
    assert_int_equal(t_ino(&t, a, "f"), 0);
    /* replacing a file frees it */
    assert_int_equal(t_rename(&t, &T_ROOT, b, "f2", b, "g", 0), 0);
    assert_int_equal(t_ino(&t, b, "g"), f);
    struct ns_attr at;
    assert_int_equal(ns_getattr(t.ns, g, &at), -ENOENT);
    /* same inode: a no-op */
    assert_int_equal(t_link(&t, &T_ROOT, f, a, "h"), 0);
    assert_int_equal(t_rename(&t, &T_ROOT, a, "h", b, "g", 0), 0);
    assert_int_equal(t_ino(&t, a, "h"), f);
    assert_int_equal(t_attr(&t, f).nlink, 2);
    /* missing source, bad flags */
    assert_int_equal(t_rename(&t, &T_ROOT, a, "zz", b, "x", 0), -ENOENT);
    assert_int_equal(t_rename(&t, &T_ROOT, a, "h", b, "x", 3), -EINVAL);
    assert_int_equal(t_rename(&t, &T_ROOT, a, "h", b, "x", 8), -EINVAL);
    assert_int_equal(t_rename(&t, &T_ROOT, a, "h", 999, "x", 0), -ENOENT);
    assert_int_equal(t_rename(&t, &T_ROOT, a, "h", f, "x", 0), -ENOTDIR);
    t_fini(&t);
}

static void test_rename_directories(void **state)
{
    (void)state;
    struct tctx t;
    t_init(&t);
    uint64_t a, b, c, e, f;
    assert_int_equal(t_mkdir(&t, &T_ROOT, NS_ROOT_INO, "a", 0755, &a), 0);
    assert_int_equal(t_mkdir(&t, &T_ROOT, a, "b", 0755, &b), 0);
    assert_int_equal(t_mkdir(&t, &T_ROOT, b, "c", 0755, &c), 0);
    assert_int_equal(t_mkdir(&t, &T_ROOT, NS_ROOT_INO, "e", 0755, &e), 0);
    assert_int_equal(t_create(&t, &T_ROOT, NS_ROOT_INO, "f", 0644, &f), 0);

    /* into its own subtree */
    assert_int_equal(t_rename(&t, &T_ROOT, NS_ROOT_INO, "a", c, "x", 0), -EINVAL);
    assert_int_equal(t_rename(&t, &T_ROOT, NS_ROOT_INO, "a", a, "x", 0), -EINVAL);
    /* dir over non-dir, non-dir over dir, over a non-empty dir */
    assert_int_equal(t_rename(&t, &T_ROOT, NS_ROOT_INO, "e", NS_ROOT_INO, "f", 0), -ENOTDIR);
    assert_int_equal(t_rename(&t, &T_ROOT, NS_ROOT_INO, "f", NS_ROOT_INO, "e", 0), -EISDIR);
    assert_int_equal(t_rename(&t, &T_ROOT, NS_ROOT_INO, "e", NS_ROOT_INO, "a", 0), -ENOTEMPTY);
    /* over an empty dir: replaced; parents' link counts follow */
    assert_int_equal(t_rename(&t, &T_ROOT, b, "c", NS_ROOT_INO, "e", 0), 0);
    assert_int_equal(t_ino(&t, NS_ROOT_INO, "e"), c);
    struct ns_attr at;
    assert_int_equal(ns_getattr(t.ns, e, &at), -ENOENT);
    assert_int_equal(t_attr(&t, b).nlink, 2);
    assert_int_equal(t_attr(&t, NS_ROOT_INO).nlink, 4);
    assert_int_equal(t_ino(&t, c, ".."), NS_ROOT_INO);
    /* a dir moved down and back */
    assert_int_equal(t_rename(&t, &T_ROOT, NS_ROOT_INO, "e", b, "c", 0), 0);
    assert_int_equal(t_attr(&t, b).nlink, 3);
    assert_int_equal(t_ino(&t, c, ".."), b);
    t_fini(&t);
}

static void test_rename_flags(void **state)
{
    (void)state;
    struct tctx t;
    t_init(&t);
    uint64_t a, d, f, g;
    assert_int_equal(t_mkdir(&t, &T_ROOT, NS_ROOT_INO, "a", 0755, &a), 0);
    assert_int_equal(t_mkdir(&t, &T_ROOT, a, "d", 0755, &d), 0);
    assert_int_equal(t_create(&t, &T_ROOT, NS_ROOT_INO, "f", 0644, &f), 0);
    assert_int_equal(t_create(&t, &T_ROOT, NS_ROOT_INO, "g", 0644, &g), 0);
    assert_int_equal(t_rename(&t, &T_ROOT, NS_ROOT_INO, "f", NS_ROOT_INO, "g",
                              NS_RENAME_NOREPLACE), -EEXIST);
    assert_int_equal(t_rename(&t, &T_ROOT, NS_ROOT_INO, "f", NS_ROOT_INO, "h",
                              NS_RENAME_EXCHANGE), -ENOENT);
    assert_int_equal(t_rename(&t, &T_ROOT, NS_ROOT_INO, "f", NS_ROOT_INO, "g",
                              NS_RENAME_EXCHANGE), 0);
    assert_int_equal(t_ino(&t, NS_ROOT_INO, "f"), g);
    assert_int_equal(t_ino(&t, NS_ROOT_INO, "g"), f);
    /* exchange a file with a directory in another parent */
    assert_int_equal(t_rename(&t, &T_ROOT, NS_ROOT_INO, "f", a, "d", NS_RENAME_EXCHANGE), 0);
    assert_int_equal(t_ino(&t, NS_ROOT_INO, "f"), d);
    assert_int_equal(t_ino(&t, a, "d"), g);
    assert_int_equal(t_ino(&t, d, ".."), NS_ROOT_INO);
    assert_int_equal(t_attr(&t, a).nlink, 2);
    assert_int_equal(t_attr(&t, NS_ROOT_INO).nlink, 4);
    /* exchanging a directory with its own ancestor */
    uint64_t x;
    assert_int_equal(t_mkdir(&t, &T_ROOT, d, "x", 0755, &x), 0);
    assert_int_equal(t_rename(&t, &T_ROOT, d, "x", NS_ROOT_INO, "f", NS_RENAME_EXCHANGE),
                     -EINVAL);
    assert_int_equal(t_rename(&t, &T_ROOT, NS_ROOT_INO, "f", d, "x", NS_RENAME_EXCHANGE),
                     -EINVAL);
    t_fini(&t);
}

static void test_permissions(void **state)
{
    (void)state;
    struct tctx t;
    t_init(&t);
    uint64_t home, priv, f;
    assert_int_equal(t_mkdir(&t, &T_ROOT, NS_ROOT_INO, "home", 0755, &home), 0);
    /* only root may write the root directory */
    assert_int_equal(t_create(&t, &ALICE, NS_ROOT_INO, "x", 0644, NULL), -EACCES);
    struct ns_op op = t_op(&t, NS_OP_SETATTR, &T_ROOT);
    op.u.setattr = (struct ns_op_setattr){ .ino = home, .valid = NS_SET_UID | NS_SET_GID,
                                           .uid = 1000, .gid = 100 };
    assert_int_equal(t_apply(&t, &op), 0);
    assert_int_equal(t_create(&t, &ALICE, home, "f", 0640, &f), 0);
    assert_int_equal(t_attr(&t, f).uid, 1000);
    assert_int_equal(t_attr(&t, f).gid, 100);
    /* group may not write a 0755 directory; other may not search a 0700 one */
    assert_int_equal(t_create(&t, &BOB, home, "g", 0644, NULL), -EACCES);
    assert_int_equal(t_mkdir(&t, &ALICE, home, "priv", 0700, &priv), 0);
    struct ns_attr a;
    assert_int_equal(ns_lookup(t.ns, &BOB, priv, t_str("x"), &a), -EACCES);
    assert_int_equal(ns_lookup(t.ns, &T_ROOT, priv, t_str("x"), &a), -ENOENT);
    /* existing name wins over missing write permission */
    assert_int_equal(t_create(&t, &BOB, home, "f", 0644, NULL), 0);
    op.u.make = (struct ns_op_make){ 0 };
    assert_int_equal(t_make(&t, NS_OP_MKDIR, &BOB, home, "f", 0755, NULL), -EEXIST);
    /* readdir needs read permission */
    struct ns_dirent ents[4];
    size_t n;
    assert_int_equal(ns_readdir(t.ns, &BOB, priv, 0, ents, 4, &n), -EACCES);
    assert_int_equal(ns_readdir(t.ns, &ALICE, priv, 0, ents, 4, &n), 0);
    assert_int_equal(n, 2);
    /* only the owner (or root) may chmod */
    assert_int_equal(t_chmod(&t, &BOB, f, 0777), -EPERM);
    assert_int_equal(t_chmod(&t, &ALICE, f, 0600), 0);
    assert_int_equal(t_chmod(&t, &T_ROOT, f, 0604), 0);
    /* chown: only root gives files away; the owner may pick its groups */
    op = t_op(&t, NS_OP_SETATTR, &ALICE);
    op.u.setattr = (struct ns_op_setattr){ .ino = f, .valid = NS_SET_UID, .uid = 1001 };
    assert_int_equal(t_apply(&t, &op), -EPERM);
    op.u.setattr = (struct ns_op_setattr){ .ino = f, .valid = NS_SET_GID, .gid = 300 };
    assert_int_equal(t_apply(&t, &op), -EPERM);
    op.cred = BOB;
    op.u.setattr.gid = 200;
    assert_int_equal(t_apply(&t, &op), -EPERM);
    t_fini(&t);
}

static void test_sticky_and_setgid(void **state)
{
    (void)state;
    struct tctx t;
    t_init(&t);
    uint64_t tmp, f, shared, sub, g;
    assert_int_equal(t_mkdir(&t, &T_ROOT, NS_ROOT_INO, "tmp", 01777, &tmp), 0);
    assert_int_equal(t_create(&t, &ALICE, tmp, "f", 0666, &f), 0);
    assert_int_equal(t_unlink(&t, &BOB, tmp, "f"), -EPERM);
    assert_int_equal(t_rename(&t, &BOB, tmp, "f", tmp, "g", 0), -EPERM);
    assert_int_equal(t_create(&t, &BOB, tmp, "b", 0666, NULL), 0);
    assert_int_equal(t_rename(&t, &BOB, tmp, "b", tmp, "f", 0), -EPERM);   /* victim */
    assert_int_equal(t_unlink(&t, &ALICE, tmp, "f"), 0);
    assert_int_equal(t_unlink(&t, &T_ROOT, tmp, "b"), 0);

    assert_int_equal(t_mkdir(&t, &T_ROOT, NS_ROOT_INO, "shared", 02777, &shared), 0);
    assert_int_equal(t_attr(&t, shared).mode & 07777, 0777);   /* mkdir drops setgid */
    assert_int_equal(t_chmod(&t, &T_ROOT, shared, 02777), 0);
    struct ns_op op = t_op(&t, NS_OP_SETATTR, &T_ROOT);
    op.u.setattr = (struct ns_op_setattr){ .ino = shared, .valid = NS_SET_GID, .gid = 500 };
    assert_int_equal(t_apply(&t, &op), 0);
    assert_int_equal(t_attr(&t, shared).mode & 07777, 02777);   /* dirs keep setgid */
    assert_int_equal(t_mkdir(&t, &ALICE, shared, "sub", 0755, &sub), 0);
    assert_int_equal(t_attr(&t, sub).gid, 500);
    assert_int_equal(t_attr(&t, sub).mode & 07777, 02755);
    /* a non-member's setgid-executable file loses setgid */
    assert_int_equal(t_create(&t, &ALICE, shared, "g", 02755, &g), 0);
    assert_int_equal(t_attr(&t, g).gid, 500);
    assert_int_equal(t_attr(&t, g).mode & 07777, 0755);
    /* chown drops setuid/setgid on files, chmod by a non-member drops setgid */
    assert_int_equal(t_chmod(&t, &T_ROOT, g, 06755), 0);
    op = t_op(&t, NS_OP_SETATTR, &T_ROOT);
    op.u.setattr = (struct ns_op_setattr){ .ino = g, .valid = NS_SET_UID, .uid = 1000 };
    assert_int_equal(t_apply(&t, &op), 0);
    assert_int_equal(t_attr(&t, g).mode & 07777, 0755);
    assert_int_equal(t_chmod(&t, &ALICE, g, 02755), 0);
    assert_int_equal(t_attr(&t, g).mode & 07777, 0755);
    t_fini(&t);
}

static void test_rename_dir_needs_write_on_it(void **state)
{
    (void)state;
    struct tctx t;
    t_init(&t);
    uint64_t a, b, d;
    assert_int_equal(t_mkdir(&t, &T_ROOT, NS_ROOT_INO, "a", 0777, &a), 0);
    assert_int_equal(t_mkdir(&t, &T_ROOT, NS_ROOT_INO, "b", 0777, &b), 0);
    assert_int_equal(t_mkdir(&t, &T_ROOT, a, "d", 0555, &d), 0);
    /* same parent: fine; another parent rewrites "..": needs write on d */
    assert_int_equal(t_rename(&t, &ALICE, a, "d", a, "e", 0), 0);
    assert_int_equal(t_rename(&t, &ALICE, a, "e", b, "e", 0), -EACCES);
    assert_int_equal(t_rename(&t, &T_ROOT, a, "e", b, "e", 0), 0);
    t_fini(&t);
}

static void test_root_squash(void **state)
{
    (void)state;
    struct tctx t;
    t_init(&t);
    uint64_t d;
    assert_int_equal(t_mkdir(&t, &T_ROOT, NS_ROOT_INO, "d", 0777, &d), 0);
    struct ns_op op = t_op(&t, NS_OP_CONFIG, &T_ROOT);
    op.u.config = (struct ns_op_config){ .flags = NS_CONFIG_ROOT_SQUASH,
                                         .squash_uid = 65534, .squash_gid = 65534 };
    assert_int_equal(t_apply(&t, &op), 0);
    uint64_t f;
    assert_int_equal(t_create(&t, &T_ROOT, d, "f", 0644, &f), 0);
    assert_int_equal(t_attr(&t, f).uid, 65534);
    assert_int_equal(t_create(&t, &T_ROOT, NS_ROOT_INO, "x", 0644, NULL), -EACCES);
    op.u.config.flags = 0x80;
    assert_int_equal(t_apply(&t, &op), -EINVAL);
    /* only the master itself (client 0) may reconfigure */
    t_session(&t, 77, 1, 1 << 30);
    op = t_op(&t, NS_OP_CONFIG, &T_ROOT);
    assert_int_equal(t_apply(&t, &op), -EPERM);
    t_fini(&t);
}

/* The chunk size is a cluster setting: fixed once, before the first chunk,
 * and then what writes and truncation count in. */
static void test_chunk_size_setting(void **state)
{
    (void)state;
    struct tctx t;
    t_init(&t);
    assert_false(ns_chunk_size_fixed(t.ns));
    assert_int_equal(ns_chunk_size(t.ns), NS_CHUNK_SIZE_DEFAULT);
    struct ns_op op = t_op(&t, NS_OP_CONFIG, &T_ROOT);
    op.u.config.chunk_size = 1000;                  /* not a block multiple */
    assert_int_equal(t_apply(&t, &op), -EINVAL);
    op.u.config.chunk_size = NS_CHUNK_SIZE_MAX + NS_CHUNK_SIZE_MIN;
    assert_int_equal(t_apply(&t, &op), -EINVAL);
    assert_false(ns_chunk_size_fixed(t.ns));
    op.u.config.chunk_size = 1u << 20;
    assert_int_equal(t_apply(&t, &op), 0);
    assert_true(ns_chunk_size_fixed(t.ns));
    assert_int_equal(ns_chunk_size(t.ns), 1u << 20);
    /* the same size again changes nothing; another is refused */
    assert_int_equal(t_apply(&t, &op), 0);
    op.u.config.chunk_size = 2u << 20;
    assert_int_equal(t_apply(&t, &op), -EBUSY);
    assert_int_equal(ns_chunk_size(t.ns), 1u << 20);
    /* other options change without touching it */
    op.u.config = (struct ns_op_config){ .squash_uid = 7, .squash_gid = 7 };
    assert_int_equal(t_apply(&t, &op), 0);
    assert_int_equal(ns_chunk_size(t.ns), 1u << 20);

    /* Writes and cuts count in 1 MiB chunks. */
    t_session(&t, 5, 1, INT64_MAX);
    uint64_t f;
    assert_int_equal(t_create(&t, &T_ROOT, NS_ROOT_INO, "f", 0644, &f), 0);
    assert_int_equal(t_open(&t, &T_ROOT, f, NS_OPEN_WRITE), 0);
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(t_write_begin(&t, f, i), 0);
        assert_int_equal(t_write_end(&t, f, i, i < 2 ? 1u << 20 : 5, 0), 0);
    }
    assert_int_equal(t_attr(&t, f).size, (2u << 20) + 5);
    assert_int_equal(t_write_end(&t, f, 2, (1u << 20) + 1, 0), -EINVAL);
    assert_int_equal(t_truncate(&t, &T_ROOT, f, (1u << 20) + 7), 0);
    struct ns_chunk_info ci[4];
    size_t n;
    assert_int_equal(ns_chunk_range(t.ns, f, 0, ci, 4, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ci[1].length, 7);
    assert_int_equal(t_truncate(&t, &T_ROOT, f, (uint64_t)NS_CHUNKS_MAX << 20), 0);
    assert_int_equal(t_truncate(&t, &T_ROOT, f, ((uint64_t)NS_CHUNKS_MAX << 20) + 1),
                     -EFBIG);

    /* A namespace with chunks keeps the default it has been counting in. */
    struct tctx u;
    t_init(&u);
    t_session(&u, 5, 1, INT64_MAX);
    assert_int_equal(t_create(&u, &T_ROOT, NS_ROOT_INO, "g", 0644, &f), 0);
    assert_int_equal(t_open(&u, &T_ROOT, f, NS_OPEN_WRITE), 0);
    assert_false(ns_chunk_size_fixed(u.ns));
    assert_int_equal(t_write_begin(&u, f, 0), 0);
    assert_true(ns_chunk_size_fixed(u.ns));
    u.client = 0;
    op = t_op(&u, NS_OP_CONFIG, &T_ROOT);
    op.u.config.chunk_size = 1u << 20;
    assert_int_equal(t_apply(&u, &op), -EBUSY);
    op.u.config.chunk_size = NS_CHUNK_SIZE_DEFAULT;
    assert_int_equal(t_apply(&u, &op), 0);
    assert_true(ns_chunk_size_fixed(u.ns));
    t_fini(&u);
    t_fini(&t);
}

static void test_setattr_times_goal_errors(void **state)
{
    (void)state;
    struct tctx t;
    t_init(&t);
    uint64_t d, f;
    assert_int_equal(t_mkdir(&t, &T_ROOT, NS_ROOT_INO, "d", 0777, &d), 0);
    assert_int_equal(t_create(&t, &ALICE, d, "f", 0666, &f), 0);
    struct ns_op op = t_op(&t, NS_OP_SETATTR, &BOB);
    op.u.setattr = (struct ns_op_setattr){ .ino = f, .valid = NS_SET_ATIME | NS_SET_MTIME,
                                           .atime = 5, .mtime = 6 };
    assert_int_equal(t_apply(&t, &op), -EPERM);          /* explicit: owner only */
    op.u.setattr.valid = NS_SET_ATIME_NOW | NS_SET_MTIME_NOW;
    assert_int_equal(t_apply(&t, &op), 0);               /* now: write access */
    assert_int_equal(t_attr(&t, f).mtime, op.now);
    op.cred = EVE;
    assert_int_equal(t_chmod(&t, &ALICE, f, 0644), 0);
    assert_int_equal(t_apply(&t, &op), -EACCES);
    op.cred = ALICE;
    op.u.setattr.valid = NS_SET_ATIME | NS_SET_MTIME;
    assert_int_equal(t_apply(&t, &op), 0);
    assert_int_equal(t_attr(&t, f).atime, 5);
    assert_int_equal(t_attr(&t, f).mtime, 6);
    assert_int_equal(t_attr(&t, f).ctime, op.now);

    op.u.setattr = (struct ns_op_setattr){ .ino = f, .valid = NS_SET_GOAL, .goal = 5 };
    assert_int_equal(t_apply(&t, &op), 0);
    assert_int_equal(t_attr(&t, f).goal, 5);
    op.u.setattr.goal = 0;
    assert_int_equal(t_apply(&t, &op), -EINVAL);
    op.cred = BOB;
    op.u.setattr.goal = 2;
    assert_int_equal(t_apply(&t, &op), -EPERM);
    /* goal inherited at create */
    op.cred = T_ROOT;
    op.u.setattr.ino = d;
    assert_int_equal(t_apply(&t, &op), 0);
    uint64_t g;
    assert_int_equal(t_create(&t, &T_ROOT, d, "g", 0644, &g), 0);
    assert_int_equal(t_attr(&t, g).goal, 2);

    op.u.setattr = (struct ns_op_setattr){ .ino = f, .valid = 1u << 20 };
    assert_int_equal(t_apply(&t, &op), -EINVAL);
    op.u.setattr = (struct ns_op_setattr){ .ino = 9999, .valid = NS_SET_MODE };
    assert_int_equal(t_apply(&t, &op), -ENOENT);
    /* size: directories -EISDIR, others -EINVAL, write permission, limit */
    assert_int_equal(t_truncate(&t, &T_ROOT, d, 0), -EISDIR);
    uint64_t s;
    assert_int_equal(t_symlink(&t, &T_ROOT, d, "s", "x", &s), 0);
    assert_int_equal(t_truncate(&t, &T_ROOT, s, 0), -EINVAL);
    assert_int_equal(t_truncate(&t, &BOB, f, 10), -EACCES);
    assert_int_equal(t_truncate(&t, &ALICE, f, (uint64_t)NS_CHUNKS_MAX * NS_CHUNK_SIZE_DEFAULT + 1),
                     -EFBIG);
    assert_int_equal(t_truncate(&t, &ALICE, f, 12345), 0);
    assert_int_equal(t_attr(&t, f).size, 12345);
    t_fini(&t);
}

static void test_xattrs(void **state)
{
    (void)state;
    struct tctx t;
    t_init(&t);
    uint64_t f, s;
    assert_int_equal(t_create(&t, &T_ROOT, NS_ROOT_INO, "f", 0644, &f), 0);
    assert_int_equal(t_symlink(&t, &T_ROOT, NS_ROOT_INO, "s", "f", &s), 0);
    struct ns_op op = t_op(&t, NS_OP_SETXATTR, &T_ROOT);
    op.u.xattr = (struct ns_op_xattr){ .ino = f, .name = t_str("user.a"),
                                       .value = t_str("1"), .flags = NS_XATTR_REPLACE };
    assert_int_equal(t_apply(&t, &op), -ENODATA);
    op.u.xattr.flags = NS_XATTR_CREATE;
    assert_int_equal(t_apply(&t, &op), 0);
    assert_int_equal(t_apply(&t, &op), -EEXIST);
    op.u.xattr.flags = NS_XATTR_REPLACE;
    op.u.xattr.value = t_str("22");
    assert_int_equal(t_apply(&t, &op), 0);
    op.u.xattr.flags = 0;
    op.u.xattr.name = t_str("trusted.b");
    op.u.xattr.value = t_str("");
    assert_int_equal(t_apply(&t, &op), 0);
    op.u.xattr.flags = 3;
    assert_int_equal(t_apply(&t, &op), -EINVAL);

    const void *val;
    uint32_t vlen;
    assert_int_equal(ns_getxattr(t.ns, &ALICE, f, t_str("user.a"), &val, &vlen), 0);
    assert_int_equal(vlen, 2);
    assert_memory_equal(val, "22", 2);
    assert_int_equal(ns_getxattr(t.ns, &ALICE, f, t_str("trusted.b"), &val, &vlen), -ENODATA);
    assert_int_equal(ns_getxattr(t.ns, &T_ROOT, f, t_str("trusted.b"), &val, &vlen), 0);
    assert_int_equal(vlen, 0);
    assert_int_equal(ns_getxattr(t.ns, &T_ROOT, f, t_str("user.zz"), &val, &vlen), -ENODATA);
    assert_int_equal(ns_getxattr(t.ns, &T_ROOT, f, t_str("system.posix_acl_access"), &val,
                                 &vlen), -EOPNOTSUPP);
    assert_int_equal(ns_getxattr(t.ns, &T_ROOT, f, t_str(""), &val, &vlen), -ERANGE);
    char list[64];
    size_t need;
    assert_int_equal(ns_listxattr(t.ns, &T_ROOT, f, list, 0, &need), 0);
    assert_int_equal(need, sizeof("trusted.b") + sizeof("user.a"));
    assert_int_equal(ns_listxattr(t.ns, &T_ROOT, f, list, 3, &need), -ERANGE);
    assert_int_equal(ns_listxattr(t.ns, &T_ROOT, f, list, sizeof(list), &need), 0);
    assert_memory_equal(list, "trusted.b\0user.a", need);

    /* who may: user.* needs write access and a file or directory */
    op = t_op(&t, NS_OP_SETXATTR, &ALICE);
    op.u.xattr = (struct ns_op_xattr){ .ino = f, .name = t_str("user.c"), .value = t_str("x") };
    assert_int_equal(t_apply(&t, &op), -EACCES);
    op.u.xattr.name = t_str("trusted.c");
    assert_int_equal(t_apply(&t, &op), -EPERM);
    op.u.xattr.name = t_str("security.c");
    assert_int_equal(t_apply(&t, &op), -EPERM);
    op.u.xattr.name = t_str("other.c");
    assert_int_equal(t_apply(&t, &op), -EOPNOTSUPP);
    op.cred = T_ROOT;
    op.u.xattr.ino = s;
    op.u.xattr.name = t_str("user.c");
    assert_int_equal(t_apply(&t, &op), -EPERM);
    op.u.xattr.ino = f;
    char big[NS_XATTR_SIZE_MAX + 1];
    memset(big, 'v', sizeof(big));
    op.u.xattr.value = (struct ns_str){ big, sizeof(big) };
    assert_int_equal(t_apply(&t, &op), -E2BIG);
    /* the per-inode total */
    op.u.xattr.value = (struct ns_str){ big, NS_XATTR_SIZE_MAX };
    int rc = 0;
    char name[32];
    for (int i = 0; i < 8 && rc == 0; i++) {
        snprintf(name, sizeof(name), "user.big%d", i);
        op.u.xattr.name = t_str(name);
        rc = t_apply(&t, &op);
    }
    assert_int_equal(rc, -ENOSPC);

    op = t_op(&t, NS_OP_REMOVEXATTR, &T_ROOT);
    op.u.xattr = (struct ns_op_xattr){ .ino = f, .name = t_str("user.a") };
    assert_int_equal(t_apply(&t, &op), 0);
    assert_int_equal(t_apply(&t, &op), -ENODATA);
    op.u.xattr.ino = 4444;
    assert_int_equal(t_apply(&t, &op), -ENOENT);
    /* xattrs go with the inode */
    assert_int_equal(t_unlink(&t, &T_ROOT, NS_ROOT_INO, "f"), 0);
    assert_int_equal(t_create(&t, &T_ROOT, NS_ROOT_INO, "f2", 0644, NULL), 0);
    assert_int_equal(ns_listxattr(t.ns, &T_ROOT, t_ino(&t, NS_ROOT_INO, "f2"), list, 0, &need), 0);
    assert_int_equal(need, 0);
    t_fini(&t);
}

static void test_readdir_batches(void **state)
{
    (void)state;
    struct tctx t;
    t_init(&t);
    uint64_t d;
    assert_int_equal(t_mkdir(&t, &T_ROOT, NS_ROOT_INO, "d", 0755, &d), 0);
    char name[32];
    for (int i = 0; i < 30; i++) {
        snprintf(name, sizeof(name), "e%02d", i);
        assert_int_equal(t_create(&t, &T_ROOT, d, name, 0644, NULL), 0);
    }
    struct ns_dirent ents[7];
    size_t n;
    uint64_t cookie = 0;
    int seen = 0;
    assert_int_equal(ns_readdir(t.ns, &T_ROOT, d, 0, ents, 7, &n), 0);
    assert_int_equal(n, 7);
    assert_int_equal(ents[0].len, 1);
    assert_int_equal(ents[0].ino, d);
    assert_int_equal(ents[1].ino, NS_ROOT_INO);
    assert_int_equal(ents[1].mode, S_IFDIR);
    assert_int_equal(ents[2].mode, S_IFREG);
    assert_memory_equal(ents[2].name, "e00", 3);
    do {
        assert_int_equal(ns_readdir(t.ns, &T_ROOT, d, cookie, ents, 7, &n), 0);
        for (size_t i = 0; i < n; i++) {
            cookie = ents[i].cookie;
            seen++;
        }
    } while (n > 0);
    assert_int_equal(seen, 32);
    assert_int_equal(ns_readdir(t.ns, &T_ROOT, t_ino(&t, d, "e00"), 0, ents, 7, &n), -ENOTDIR);
    assert_int_equal(ns_readdir(t.ns, &T_ROOT, 9999, 0, ents, 7, &n), -ENOENT);
    t_fini(&t);
}

static void test_bad_ops(void **state)
{
    (void)state;
    struct tctx t;
    t_init(&t);
    struct ns_result r;
    ns_result_init(&r);
    struct ns_op op;
    memset(&op, 0, sizeof(op));
    op.type = NS_OP_TYPE_END;
    assert_int_equal(ns_apply(t.ns, &op, &r), -EINVAL);
    op.type = 0;
    assert_int_equal(ns_apply(t.ns, &op, &r), -EINVAL);
    /* session ops without a session */
    op.type = NS_OP_OPEN;
    assert_int_equal(ns_apply(t.ns, &op, &r), -DFS_ESESSION);
    op.type = NS_OP_SESSION_OPEN;
    assert_int_equal(ns_apply(t.ns, &op, &r), -EINVAL);
    op.client = 5;
    op.type = NS_OP_MKDIR;
    assert_int_equal(ns_apply(t.ns, &op, &r), -DFS_ESESSION);
    ns_result_release(&r);
    assert_string_equal(ns_op_name(NS_OP_RENAME), "rename");
    assert_string_equal(ns_op_name(NS_OP_TYPE_END), "?");
    t_fini(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_root_and_mkdir),
        cmocka_unit_test(test_name_rules),
        cmocka_unit_test(test_create_excl_and_ids),
        cmocka_unit_test(test_mknod_symlink),
        cmocka_unit_test(test_unlink_rmdir),
        cmocka_unit_test(test_hard_links),
        cmocka_unit_test(test_rename_basics),
        cmocka_unit_test(test_rename_directories),
        cmocka_unit_test(test_rename_flags),
        cmocka_unit_test(test_permissions),
        cmocka_unit_test(test_sticky_and_setgid),
        cmocka_unit_test(test_rename_dir_needs_write_on_it),
        cmocka_unit_test(test_root_squash),
        cmocka_unit_test(test_chunk_size_setting),
        cmocka_unit_test(test_setattr_times_goal_errors),
        cmocka_unit_test(test_xattrs),
        cmocka_unit_test(test_readdir_batches),
        cmocka_unit_test(test_bad_ops),
    };
    return cmocka_run_group_tests_name("ns", tests, NULL, NULL);
}
