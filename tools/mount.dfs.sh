#!/bin/sh
# mount.dfs: the helper mount(8) runs for `mount -t dfs MASTERS MNT -o OPTS`
# and for /etc/fstab lines such as
#   127.0.0.1:9000,127.0.0.1:9001  /mnt/dfs  dfs  keyfile=/etc/dfs/key,_netdev  0 0
# It drops the options that only mount(8) and fstab understand and execs
# dfs-mount (found beside this script, else on PATH).  See docs/MOUNT.md.
set -eu

usage() {
    echo "usage: mount.dfs MASTERS MNT [-sfnv] [-o OPT[,OPT...]]" >&2
    exit 2
}

[ $# -ge 2 ] || usage
masters=$1
mnt=$2
shift 2

opts=""
while [ $# -gt 0 ]; do
    case $1 in
    -o) [ $# -ge 2 ] || usage; opts="${opts:+$opts,}$2"; shift 2 ;;
    -o*) opts="${opts:+$opts,}${1#-o}"; shift ;;
    # sloppy, fake, no-mtab, verbose: nothing for dfs-mount to do.
    -s|-f|-n|-v) shift ;;
    *) usage ;;
    esac
done

keep=""
old_ifs=$IFS
IFS=,
for o in $opts; do
    case $o in
    ''|defaults|auto|noauto|nofail|_netdev|user|users|nouser|owner|group) ;;
    comment=*|x-*) ;;
    *) keep="${keep:+$keep,}$o" ;;
    esac
done
IFS=$old_ifs

here=$(dirname "$0")
prog=dfs-mount
[ -x "$here/dfs-mount" ] && prog=$here/dfs-mount

if [ -n "$keep" ]; then
    exec "$prog" "$mnt" -M "$masters" -o "$keep"
fi
exec "$prog" "$mnt" -M "$masters"
