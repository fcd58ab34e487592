/*
 * ns_inode: the inode table, a paged array indexed by inode number.
 *
 * Inode numbers are dense keys chosen by the leader (ns_inode_next_free
 * tells it which are free); a slot is free when its mode is 0.  The table
 * owns its pages; what an inode's union points to (chunk handles, the
 * directory, the symlink target) is owned by the namespace (ns.c), which
 * frees it before freeing the inode.  Not thread-safe.
 */
#ifndef DFS_NS_INODE_H
#define DFS_NS_INODE_H

#include <stddef.h>
#include <stdint.h>

struct ns_dir;

#define NS_INO_MAX UINT32_C(0xfffffffe)
#define NS_INODE_PAGE 1024u

enum {
    NS_INODE_F_MANY = 1,   /* file chunks in u.many (else u.one when aux == 1) */
};

/* 72 bytes: docs/NAMESPACE.md counts them. */
struct ns_inode {
    uint64_t size;
    int64_t atime, mtime, ctime;    /* ns since the epoch */
    uint32_t mode;                  /* S_IFMT | permissions; 0 = free slot */
    uint32_t uid, gid;
    uint32_t nlink;
    uint32_t gen;                   /* (ino, gen) is never reused */
    uint8_t goal;                   /* replication goal */
    uint8_t flags;                  /* NS_INODE_F_* */
    uint16_t spare;
    uint32_t aux;                   /* file: chunk slots; dir: parent; dev: rdev */
    union {
        uint32_t one;               /* file, aux <= 1, !F_MANY: chunk handle */
        uint32_t *many;             /* file, F_MANY: aux chunk handles (0 = hole) */
        struct ns_dir *dir;         /* directory */
        char *target;              /* symlink, NUL-terminated, size bytes */
    } u;
};

struct ns_inode_table {
    struct ns_inode **pages;   /* owned; npages pointers, NULL = all free */
    uint16_t *page_used;       /* live inodes per page */
    uint32_t npages;
    uint32_t used;             /* live inodes */
    uint32_t gen;              /* last generation handed out */
};

void ns_inode_table_init(struct ns_inode_table *t);
/* Frees the pages only (payloads are the namespace's). */
void ns_inode_table_release(struct ns_inode_table *t);

/* The live inode ino, or NULL. */
struct ns_inode *ns_inode_get(const struct ns_inode_table *t, uint64_t ino);

/*
 * Takes the free slot ino, zeroed but for a fresh generation and the given
 * mode (!= 0).  0 and *out, -EINVAL (ino 0 or > NS_INO_MAX), -DFS_EIDINUSE
 * or -ENOMEM.
 */
int ns_inode_alloc(struct ns_inode_table *t, uint64_t ino, uint32_t mode,
                   struct ns_inode **out);

/* Frees a live slot (its payload already freed); may free its page. */
void ns_inode_free(struct ns_inode_table *t, uint64_t ino);

/* Takes back the latest ns_inode_alloc(), generation counter included, so
 * an op that fails after allocating leaves no trace. */
void ns_inode_unalloc(struct ns_inode_table *t, uint64_t ino);

/* The smallest free inode number > after, or 0 when none is left. */
uint64_t ns_inode_next_free(const struct ns_inode_table *t, uint64_t after);

/* The smallest live inode number > after, or 0 at the end. */
uint64_t ns_inode_next(const struct ns_inode_table *t, uint64_t after);

/*
 * A regular file's chunk list: aux slots of chunk handles (0 = hole), held
 * inline for one chunk.  ns_inode_chunk() is 0 past the end.
 */
uint32_t ns_inode_chunk(const struct ns_inode *in, uint32_t index);
/* Sets slot index, growing the list with holes.  0 or -ENOMEM. */
int ns_inode_set_chunk(struct ns_inode *in, uint32_t index, uint32_t h);
/* Shortens the list to n slots (the caller freed the handles beyond). */
void ns_inode_cut_chunks(struct ns_inode *in, uint32_t n);

size_t ns_inode_table_bytes(const struct ns_inode_table *t);

#endif
