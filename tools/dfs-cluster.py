#!/usr/bin/env python3
"""dfs-cluster: start, stop and break a local dfs cluster on 127.0.0.1.

Every process runs from bin/ beside this script, with its state, config and
log under one folder (default ./run/local).  The folder's cluster.json
remembers ports and pids; cluster.env is for shells and tests:

    DFS_MASTERS=127.0.0.1:port,...  DFS_KEY_FILE=...  DFS_HTTP=http://.../

Commands: up, down, status, kill, start, add (see --help of each).
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time

BIN = os.path.dirname(os.path.abspath(__file__))
STATE = "cluster.json"


def die(msg, code=1):
    print("dfs-cluster: " + msg, file=sys.stderr)
    sys.exit(code)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid):
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    # A zombie of ours counts as dead.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def load(d):
    path = os.path.join(d, STATE)
    if not os.path.exists(path):
        die("no cluster in %s (start one with: dfs-cluster up -d %s)" % (d, d))
    with open(path) as f:
        return json.load(f)


def removed(d, m):
    """True once the master said it was removed from the cluster (dfs-master
    leaves a 'removed' file in its data directory and stops)."""
    return os.path.exists(os.path.join(d, "master-%d" % m["id"], "data", "removed"))


def members(d, st):
    """The masters that are (or wait to become) part of the cluster."""
    return [m for m in st["masters"] if not removed(d, m)]


def save(d, st):
    tmp = os.path.join(d, STATE + ".tmp")
    with open(tmp, "w") as f:
        json.dump(st, f, indent=1)
    os.replace(tmp, os.path.join(d, STATE))
    live = members(d, st) or st["masters"]
    masters = ",".join("127.0.0.1:%d" % m["port"] for m in live)
    leader = st.get("leader_http") or "http://127.0.0.1:%d/" % live[0]["http"]
    with open(os.path.join(d, "cluster.env"), "w") as f:
        f.write("DFS_MASTERS=%s\nDFS_KEY_FILE=%s\nDFS_HTTP=%s\n"
                % (masters, st["key"], leader))


def masters_spec(d, st, key):
    return ",".join("%d=127.0.0.1:%d" % (m["id"], m[key]) for m in members(d, st))


def write_master_conf(d, st, m):
    folder = os.path.join(d, "master-%d" % m["id"])
    os.makedirs(folder, exist_ok=True)
    conf = os.path.join(folder, "master.conf")
    with open(conf, "w") as f:
        f.write("# written by dfs-cluster\n"
                "id = %d\nlisten = 127.0.0.1:%d\nhttp = 127.0.0.1:%d\n"
                "data_dir = %s\nmasters = %s\nmasters_http = %s\n"
                "key_file = %s\ncluster_id = %s\nchunk_size = %s\nlog_file = %s\n"
                % (m["id"], m["port"], m["http"], os.path.join(folder, "data"),
                   masters_spec(d, st, "port"), masters_spec(d, st, "http"),
                   st["key"], st["cluster_id"], st.get("chunk_size", "64M"),
                   os.path.join(folder, "master.log")))
        for kv in st.get("master_conf", []):
            f.write("%s = %s\n" % tuple(kv.split("=", 1)))
    return folder, conf


def start_master(d, st, m, init=False, join=False):
    folder, conf = write_master_conf(d, st, m)
    args = [os.path.join(BIN, "dfs-master"), "-c", conf]
    if init:
        args.append("--init")
    if join:
        args.append("--join")
    with open(os.path.join(folder, "stderr.log"), "ab") as err:
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=err,
                             stderr=err, start_new_session=True)
    m["pid"] = p.pid


def cs_data_dirs(folder, c):
    """data, or data1,data2,... with up --data-dirs N."""
    n = c.get("data_dirs", 1)
    if n == 1:
        return os.path.join(folder, "data")
    return ",".join(os.path.join(folder, "data%d" % (i + 1)) for i in range(n))


def write_cs_conf(d, st, c):
    folder = os.path.join(d, "chunkserver-%d" % c["id"])
    os.makedirs(folder, exist_ok=True)
    conf = os.path.join(folder, "chunkserver.conf")
    with open(conf, "w") as f:
        f.write("# written by dfs-cluster\n"
                "listen = 127.0.0.1:%d\ndata_dir = %s\nmasters = %s\n"
                "key_file = %s\nrack = rack%d\nreserved_space = 0\n"
                "scrub_pause = 5s\n"
                "log_file = %s\n"
                % (c["port"], cs_data_dirs(folder, c),
                   ",".join("127.0.0.1:%d" % m["port"] for m in members(d, st)),
                   st["key"], c["id"], os.path.join(folder, "chunkserver.log")))
    return folder, conf


def start_chunkserver(d, st, c):
    folder, conf = write_cs_conf(d, st, c)
    with open(os.path.join(folder, "stderr.log"), "ab") as err:
        p = subprocess.Popen([os.path.join(BIN, "dfs-chunkserver"), "-c", conf],
                             stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                             start_new_session=True)
    c["pid"] = p.pid


def chunkservers_up(st):
    """Addresses of the chunkservers the leader reports up."""
    out = admin(st, "status", "--json", timeout=5)
    try:
        doc = json.loads(out) if out else {}
    except ValueError:
        return set()
    return {c["address"] for c in doc.get("chunkservers", []) if c.get("state") == "up"}


def wait_chunkserver(d, st, c, timeout):
    addr = "127.0.0.1:%d" % c["port"]
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not alive(c.get("pid")):
            die("chunkserver %d exited; see %s" % (c["id"], os.path.join(
                d, "chunkserver-%d" % c["id"], "chunkserver.log")))
        if addr in chunkservers_up(st):
            return
        time.sleep(0.1)
    die("chunkserver %d did not register within %d s" % (c["id"], timeout))


def mounted(mnt):
    mnt = os.path.realpath(mnt)
    try:
        with open("/proc/mounts") as f:
            return any(line.split()[1] == mnt for line in f)
    except OSError:
        return False


def mount(d, st, mnt, timeout):
    mnt = os.path.abspath(mnt)
    os.makedirs(mnt, exist_ok=True)
    if mounted(mnt):
        die("%s is already mounted" % mnt)
    masters = ",".join("127.0.0.1:%d" % m["port"] for m in st["masters"])
    log = os.path.join(d, "mount.log")
    # dfs-mount returns once the mount answers (or fails with a message).
    r = subprocess.run([os.path.join(BIN, "dfs-mount"), mnt, "-M", masters,
                        "-k", st["key"], "-o", "log=" + log],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        die("mount at %s failed: %s" % (mnt, (r.stderr or r.stdout).strip()))
    st["mount"] = mnt


def unmount(st):
    mnt = st.get("mount")
    if not mnt or not mounted(mnt):
        return
    for cmd in (["fusermount3", "-u", mnt], ["umount", mnt], ["umount", "-l", mnt]):
        if subprocess.run(cmd, capture_output=True).returncode == 0:
            break
    st["mount"] = None


def admin(st, *args, masters=None, timeout=10, errors=None):
    env = dict(os.environ)
    env["DFS_MASTERS"] = masters or ",".join(
        "127.0.0.1:%d" % m["port"] for m in st["masters"] if alive(m.get("pid")))
    env["DFS_KEY_FILE"] = st["key"]
    try:
        r = subprocess.run([os.path.join(BIN, "dfsadmin")] + list(args),
                           env=env, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if errors is not None:
        errors.append(r.stderr.strip())
    return r.stdout if r.returncode == 0 else None


def leader_of(st):
    """The id of the master every running master agrees leads, else None."""
    for m in st["masters"]:
        if not alive(m.get("pid")):
            continue
        out = admin(st, "status", "--json",
                    masters="127.0.0.1:%d" % m["port"], timeout=5)
        if not out:
            continue
        try:
            doc = json.loads(out)
        except ValueError:
            continue
        if doc.get("role") == "leader" or doc.get("leader"):
            return doc.get("leader") or None
    return None


def wait_leader(d, st, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        dead = [m["id"] for m in st["masters"] if m.get("pid") and not alive(m["pid"])
                and m.get("expect_running")]
        if dead:
            die("master %s exited; see %s" % (dead[0], os.path.join(
                d, "master-%d" % dead[0], "master.log")))
        lid = leader_of(st)
        if lid:
            lm = [m for m in st["masters"] if m["id"] == lid]
            if lm:
                st["leader_http"] = "http://127.0.0.1:%d/" % lm[0]["http"]
            return lid
        time.sleep(0.1)
    die("no leader elected within %d s; logs are in %s" % (timeout, d))


def cmd_up(a):
    d = os.path.abspath(a.dir)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, STATE)
    if os.path.exists(path):
        st = load(d)
        running = [m for m in st["masters"] if alive(m.get("pid"))]
        if running:
            die("a cluster is already running in %s (dfs-cluster down -d %s stops it)"
                % (d, d), 1)
        fresh = False
    else:
        key = os.path.join(d, "cluster.key")
        if not os.path.exists(key):
            subprocess.run([os.path.join(BIN, "dfs-master"), "--keygen", key],
                           check=True)
        cid = subprocess.run([os.path.join(BIN, "dfs-master"), "--new-cluster-id"],
                             check=True, capture_output=True, text=True).stdout.strip()
        st = {"key": key, "cluster_id": cid, "chunk_size": a.chunk_size, "chunkservers": [],
              "masters": [{"id": i + 1, "port": free_port(), "http": free_port()}
                          for i in range(a.masters)]}
        fresh = True
    for kv in a.master_conf or []:
        if "=" not in kv:
            die("--master-conf wants KEY=VALUE, not %s" % kv, 2)
        key = kv.split("=", 1)[0]
        st["master_conf"] = [o for o in st.get("master_conf", [])
                             if o.split("=", 1)[0] != key] + [kv]
    for m in members(d, st):
        m["expect_running"] = True
        start_master(d, st, m, init=fresh)
    save(d, st)
    lid = wait_leader(d, st, a.timeout)
    if fresh:
        st["chunkservers"] = [{"id": i + 1, "port": free_port(),
                               "data_dirs": a.data_dirs}
                              for i in range(a.chunkservers)]
    # One at a time, so each registers under the number it has here.
    for c in st["chunkservers"]:
        c["expect_running"] = True
        start_chunkserver(d, st, c)
        save(d, st)
        wait_chunkserver(d, st, c, a.timeout)
    if a.mount:
        mount(d, st, a.mount, a.timeout)
    save(d, st)
    print("dfs-cluster: %d masters and %d chunkservers up in %s, master %d leads"
          % (len(st["masters"]), len(st["chunkservers"]), d, lid))
    if a.mount:
        print("  mounted at:  %s" % st["mount"])
    print("  status page: %s" % st["leader_http"])
    print("  environment: . %s" % os.path.join(d, "cluster.env"))
    print("  stop:        dfs-cluster down -d %s" % d)


def stop_pid(pid, sig=signal.SIGTERM, wait=10.0):
    if not alive(pid):
        return
    try:
        os.kill(pid, sig)
    except OSError:
        return
    deadline = time.time() + wait
    while time.time() < deadline and alive(pid):
        time.sleep(0.05)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)


def cmd_down(a):
    d = os.path.abspath(a.dir)
    st = load(d)
    unmount(st)
    for m in st["masters"] + st["chunkservers"]:
        stop_pid(m.get("pid"))
        m["pid"] = None
        m["expect_running"] = False
    save(d, st)
    print("dfs-cluster: stopped the cluster in %s" % d)


def cmd_status(a):
    d = os.path.abspath(a.dir)
    st = load(d)
    lid = leader_of(st)
    for m in st["masters"]:
        print("master %d  127.0.0.1:%d  %s%s" % (
            m["id"], m["port"], "running" if alive(m.get("pid"))
            else "removed" if removed(d, m) else "stopped",
            "  (leader)" if m["id"] == lid else ""))
    for c in st["chunkservers"]:
        print("chunkserver %d  127.0.0.1:%d  %s" % (
            c["id"], c["port"], "running" if alive(c.get("pid")) else "stopped"))
    if not lid:
        print("no leader")


def pick(st, kind, which):
    group = st["masters"] if kind == "master" else st["chunkservers"]
    if kind == "master" and which == "leader":
        lid = leader_of(st)
        if not lid:
            die("no leader to kill")
        which = str(lid)
    try:
        n = int(which)
    except (TypeError, ValueError):
        die("which %s? give its number" % kind, 2)
    for m in group:
        if m["id"] == n:
            return m
    die("no %s %d" % (kind, n), 2)


def cmd_kill(a):
    d = os.path.abspath(a.dir)
    st = load(d)
    m = pick(st, a.kind, a.which)
    if not alive(m.get("pid")):
        die("%s %d is not running" % (a.kind, m["id"]))
    os.kill(m["pid"], signal.SIGKILL)
    deadline = time.time() + 5
    while alive(m["pid"]) and time.time() < deadline:
        time.sleep(0.02)
    m["expect_running"] = False
    save(d, st)
    print("dfs-cluster: killed %s %d (pid %d)" % (a.kind, m["id"], m["pid"]))


def cmd_start(a):
    d = os.path.abspath(a.dir)
    st = load(d)
    if a.kind == "all":
        targets = [("master", m) for m in members(d, st)] + \
                  [("chunkserver", c) for c in st["chunkservers"]]
    else:
        targets = [(a.kind, pick(st, a.kind, a.which))]
    for kind, m in targets:
        if alive(m.get("pid")):
            continue
        m["expect_running"] = True
        if kind == "master":
            start_master(d, st, m)
        else:
            start_chunkserver(d, st, m)
        print("dfs-cluster: started %s %d (pid %d)" % (kind, m["id"], m["pid"]))
    save(d, st)


def wait_answering(d, st, m, timeout):
    """Waits until master m answers (its listener is up)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not alive(m.get("pid")):
            die("master %d exited; see %s" % (m["id"], os.path.join(
                d, "master-%d" % m["id"], "master.log")))
        if admin(st, "masters", "--json", masters="127.0.0.1:%d" % m["port"], timeout=5):
            return
        time.sleep(0.1)
    die("master %d did not start within %d s" % (m["id"], timeout))


def cmd_add(a):
    d = os.path.abspath(a.dir)
    st = load(d)
    if a.kind == "chunkserver":
        c = {"id": max([c["id"] for c in st["chunkservers"]] or [0]) + 1,
             "port": free_port(), "expect_running": True}
        st["chunkservers"].append(c)
        start_chunkserver(d, st, c)
        save(d, st)
        wait_chunkserver(d, st, c, a.timeout)
        print("dfs-cluster: chunkserver %d up at 127.0.0.1:%d" % (c["id"], c["port"]))
        return
    m = {"id": max(m["id"] for m in st["masters"]) + 1, "port": free_port(),
         "http": free_port(), "expect_running": True}
    st["masters"].append(m)
    # Its configuration names the running masters: it joins through them.
    start_master(d, st, m, join=True)
    save(d, st)
    wait_answering(d, st, m, a.timeout)
    errs = []
    out = admin(st, "masters", "add", "127.0.0.1:%d" % m["port"],
                masters=",".join("127.0.0.1:%d" % x["port"] for x in st["masters"]
                                 if x is not m and alive(x.get("pid"))),
                timeout=a.timeout, errors=errs)
    if out is None:
        die("master %d started but could not be added: %s (log: %s)" % (
            m["id"], errs[0] if errs else "timed out",
            os.path.join(d, "master-%d" % m["id"], "master.log")))
    save(d, st)
    print("dfs-cluster: master %d joined at 127.0.0.1:%d (status page "
          "http://127.0.0.1:%d/)" % (m["id"], m["port"], m["http"]))


def main():
    p = argparse.ArgumentParser(prog="dfs-cluster", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp):
        sp.add_argument("-d", "--dir", default="run/local",
                        help="cluster folder (default run/local)")

    up = sub.add_parser("up", help="start a cluster; returns once a leader is elected")
    common(up)
    up.add_argument("-m", "--masters", type=int, default=3, choices=[1, 3, 5])
    up.add_argument("-c", "--chunkservers", type=int, default=3)
    up.add_argument("--data-dirs", type=int, default=1, metavar="N",
                    help="data directories per chunkserver (data1..dataN; default 1: data)")
    up.add_argument("--chunk-size", default="64M", metavar="SIZE",
                    help="bytes per chunk of a new cluster (64K..2G, a multiple of 64K; "
                         "default 64M), e.g. 1M for tests whose files span chunks")
    up.add_argument("--master-conf", action="append", metavar="KEY=VALUE",
                    help="one more line of every master's config (repeatable; kept for "
                         "later starts), e.g. root_squash=true")
    up.add_argument("--timeout", type=int, default=30, help="seconds to wait for a leader")
    up.add_argument("--mount", metavar="MNT", help="also mount the cluster at MNT")
    up.set_defaults(fn=cmd_up)

    down = sub.add_parser("down", help="stop every process of the cluster")
    common(down)
    down.set_defaults(fn=cmd_down)

    status = sub.add_parser("status", help="which processes run and who leads")
    common(status)
    status.set_defaults(fn=cmd_status)

    kill = sub.add_parser("kill", help="kill -9 one process")
    common(kill)
    kill.add_argument("kind", choices=["master", "chunkserver"])
    kill.add_argument("which", help="its number, or 'leader' for a master")
    kill.set_defaults(fn=cmd_kill)

    start = sub.add_parser("start", help="restart one process, or every stopped one")
    common(start)
    start.add_argument("kind", choices=["master", "chunkserver", "all"])
    start.add_argument("which", nargs="?")
    start.set_defaults(fn=cmd_start)

    add = sub.add_parser("add", help="start one more master (joined through dfsadmin "
                         "masters add; returns once it votes) or chunkserver")
    common(add)
    add.add_argument("kind", choices=["master", "chunkserver"])
    add.add_argument("--timeout", type=int, default=120,
                     help="seconds to wait for it to join")
    add.set_defaults(fn=cmd_add)

    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
