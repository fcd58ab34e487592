/*
 * fsio_priv: what the fsio backends share, for fsio.c (the public calls,
 * the real backend and the simulator) and fsio_cut.c (the power-cut
 * backend).  Not for use outside common/fsio*.c.
 *
 * The public calls in fsio.c validate arguments, take fs->lock when it is
 * set and dispatch through fs->be; a backend implements struct
 * fsio_backend and embeds struct fsio first in its own handle.
 */
#ifndef DFS_FSIO_PRIV_H
#define DFS_FSIO_PRIV_H

#include <pthread.h>
#include <stddef.h>

#include "fsio.h"

/* A growable list of names, sorted before it is handed to fsio_list_fn. */
struct fsio_names {
    char **v;
    size_t n, cap;
};

/* Appends a copy of name.  Returns 0 or -ENOMEM. */
int fsio_names_add(struct fsio_names *l, const char *name);

/* Sorts l by strcmp, the order fsio_list_dir promises. */
void fsio_names_sort(struct fsio_names *l);

/*
 * Allocation for the test backends (the simulator, the power-cut mode):
 * they abort on out of memory rather than thread -ENOMEM through every
 * model structure.
 */
void *fsio_test_alloc(size_t size);     /* zeroed */
void *fsio_test_realloc(void *p, size_t size);
char *fsio_test_strdup(const char *s);

/* A modelled directory's entries: sorted by name, each naming a node of
 * the backend that owns the table.  Names are owned (fsio_test_strdup). */
struct fsio_entry {
    char *name;
    void *node;
};

struct fsio_entries {
    struct fsio_entry *v;
    size_t n, cap;
};

void *fsio_ents_get(const struct fsio_entries *e, const char *name);
/* Points name at node (NULL removes it); returns the previous target. */
void *fsio_ents_put(struct fsio_entries *e, const char *name, void *node);
/* Frees the names; the table stays usable (fsio_ents_release frees it). */
void fsio_ents_clear(struct fsio_entries *e);
void fsio_ents_release(struct fsio_entries *e);

struct fsio_backend {
    int (*open)(struct fsio *fs, const char *path, int flags, mode_t mode);
    int (*close)(struct fsio *fs, int fd);
    ssize_t (*pwrite)(struct fsio *fs, int fd, const void *buf, size_t len,
                      uint64_t off);
    ssize_t (*pread)(struct fsio *fs, int fd, void *buf, size_t len,
                     uint64_t off);
    int (*sync)(struct fsio *fs, int fd, bool data_only);
    int (*truncate)(struct fsio *fs, int fd, uint64_t size);
    int (*size)(struct fsio *fs, int fd, uint64_t *size);
    int (*rename)(struct fsio *fs, const char *from, const char *to);
    int (*unlink)(struct fsio *fs, const char *path);
    int (*mkdir)(struct fsio *fs, const char *path, mode_t mode);
    int (*rmdir)(struct fsio *fs, const char *path);
    int (*sync_dir)(struct fsio *fs, const char *path);
    int (*stat)(struct fsio *fs, const char *path, struct fsio_stat *st);
    int (*list)(struct fsio *fs, const char *path, struct fsio_names *out);
    int (*space)(struct fsio *fs, const char *path, uint64_t *total,
                 uint64_t *avail);
    void (*free)(struct fsio *fs);
};

struct fsio {
    const struct fsio_backend *be;
    pthread_mutex_t *lock;  /* NULL for the real backend */
    bool is_sim;
};

#endif
