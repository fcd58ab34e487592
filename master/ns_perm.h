/*
 * ns_perm: POSIX permission rules over an inode and a caller.
 *
 * Pure functions; the caller has already applied root squash to the
 * credentials.  Root (uid 0) passes read and write checks always, and
 * execute checks when any execute bit is set or the inode is a directory.
 */
#ifndef DFS_NS_PERM_H
#define DFS_NS_PERM_H

#include <stdbool.h>
#include <stdint.h>

#include "master/ns_op.h"

struct ns_inode;

enum { NS_PERM_X = 1, NS_PERM_W = 2, NS_PERM_R = 4 };

/* 0 when c may access in with every bit of mask (NS_PERM_*), else -EACCES. */
int ns_perm_check(const struct ns_inode *in, const struct ns_cred *c, int mask);

/* True when c is root or owns in (chmod, chown, utimes, sticky rules). */
bool ns_perm_owner(const struct ns_inode *in, const struct ns_cred *c);

/* True when gid is c's primary or one of its supplementary groups. */
bool ns_perm_in_group(const struct ns_cred *c, uint32_t gid);

/*
 * The sticky-directory rule for removing or renaming victim out of dir:
 * 0, or -EPERM when dir is sticky and c owns neither (and is not root).
 */
int ns_perm_sticky(const struct ns_inode *dir, const struct ns_inode *victim,
                   const struct ns_cred *c);

#endif
