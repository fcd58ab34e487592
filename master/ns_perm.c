/*
 * ns_perm: owner / group / other permission checks (no ACLs).
 *
 * Owns nothing.  The class is chosen like the kernel's: the owner's bits
 * if c owns the inode, else the group's if c is in its group, else
 * other's, and only that class is consulted.
 */
#include "master/ns_perm.h"

#include <errno.h>
#include <sys/stat.h>

#include "master/ns_inode.h"

bool ns_perm_in_group(const struct ns_cred *c, uint32_t gid)
{
    if (c->gid == gid)
        return true;
    uint32_t n = c->ngroups < NS_GROUPS_MAX ? c->ngroups : NS_GROUPS_MAX;
    for (uint32_t i = 0; i < n; i++) {
        if (c->groups[i] == gid)
            return true;
    }
    return false;
}

int ns_perm_check(const struct ns_inode *in, const struct ns_cred *c, int mask)
{
    if (c->uid == 0) {
        bool x_ok = S_ISDIR(in->mode) || (in->mode & (S_IXUSR | S_IXGRP | S_IXOTH));
        return (mask & NS_PERM_X) && !x_ok ? -EACCES : 0;
    }
    uint32_t bits;
    if (c->uid == in->uid)
        bits = (in->mode >> 6) & 7;
    else if (ns_perm_in_group(c, in->gid))
        bits = (in->mode >> 3) & 7;
    else
        bits = in->mode & 7;
    return ((uint32_t)mask & ~bits) ? -EACCES : 0;
}

bool ns_perm_owner(const struct ns_inode *in, const struct ns_cred *c)
{
    return c->uid == 0 || c->uid == in->uid;
}

int ns_perm_sticky(const struct ns_inode *dir, const struct ns_inode *victim,
                   const struct ns_cred *c)
{
    if (!(dir->mode & S_ISVTX) || c->uid == 0)
        return 0;
    if (c->uid == dir->uid || c->uid == victim->uid)
        return 0;
    return -EPERM;
}
