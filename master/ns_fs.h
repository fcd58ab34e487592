/*
 * ns_fs: the namespace mutations (make, link, unlink, rmdir, rename,
 * setattr, xattrs), each an op handler called by ns_apply().
 *
 * A handler validates everything before it changes anything and returns 0
 * or the op's error; on success it may fill c->res->reply.attr.
 */
#ifndef DFS_NS_FS_H
#define DFS_NS_FS_H

#include "master/ns_priv.h"

int ns_fs_make(struct ns *ns, struct ns_call *c);      /* MKDIR CREATE MKNOD SYMLINK */
int ns_fs_link(struct ns *ns, struct ns_call *c);
int ns_fs_unlink(struct ns *ns, struct ns_call *c);
int ns_fs_rmdir(struct ns *ns, struct ns_call *c);
int ns_fs_rename(struct ns *ns, struct ns_call *c);
int ns_fs_setattr(struct ns *ns, struct ns_call *c);
int ns_fs_setxattr(struct ns *ns, struct ns_call *c);
int ns_fs_removexattr(struct ns *ns, struct ns_call *c);

/*
 * Whether cred may use xattr name on in with mask (NS_PERM_R to read,
 * NS_PERM_W to change): the namespace rules (user., trusted., security.;
 * others -EOPNOTSUPP) and the name's length (-ERANGE).
 */
int ns_fs_xattr_access(const struct ns_inode *in, const struct ns_cred *cred,
                       struct ns_str name, int mask);

/* -ENAMETOOLONG, -EINVAL ("/", NUL, ".", ".."), -ENOENT (empty) or 0. */
int ns_fs_check_name(struct ns_str name);

#endif
