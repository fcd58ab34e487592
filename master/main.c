/*
 * dfs-master: command line, logging, then mserver_run().
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "common/auth.h"
#include "common/conf.h"
#include "common/dfs_error.h"
#include "common/log.h"
#include "common/version.h"
#include "master/mserver.h"

#define MAX_OVERRIDES 64

static void usage(FILE *out)
{
    fprintf(out,
            "usage: dfs-master -c FILE [--init | --join] [-o key=value]... [--key=value]...\n"
            "       dfs-master --keygen FILE | --new-cluster-id | --help | --version\n"
            "\n"
            "The dfs metadata service: one of three (or five) masters that keep the\n"
            "namespace identical through Raft.\n"
            "\n"
            "  -c FILE            configuration file (key = value lines)\n"
            "  --init             create a new cluster: every first master starts once\n"
            "                     with --init and the same masters and cluster_id\n"
            "  --join             first start of a master added to a running cluster:\n"
            "                     masters names one or more of its masters (host:port\n"
            "                     is enough); it learns the cluster from them and waits\n"
            "                     for `dfsadmin masters add` (its listen address)\n"
            "  -o key=value       override one configuration key (also --key=value)\n"
            "  --keygen FILE      write a new cluster key to FILE (mode 0600) and exit\n"
            "  --new-cluster-id   print a fresh cluster_id and exit\n"
            "\n"
            "Configuration keys:\n");
    conf_print_help(mserver_conf_keys, out);
}

static int new_cluster_id(void)
{
    unsigned char b[8];
    if (RAND_bytes(b, sizeof(b)) != 1) {
        fprintf(stderr, "dfs-master: no random bytes for a cluster id\n");
        return 1;
    }
    for (size_t i = 0; i < sizeof(b); i++)
        printf("%02x", b[i]);
    printf("\n");
    return 0;
}

static int keygen(const char *path)
{
    int rc = auth_keygen(path);
    if (rc < 0) {
        fprintf(stderr, "dfs-master: cannot write a key to %s: %s\n", path,
                dfs_strerror(rc));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *conf_path = NULL;
    const char *overrides[MAX_OVERRIDES];
    size_t n = 0;
    struct mserver_opts opts = { 0 };

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--version")) {
            printf("dfs-master %s\n", DFS_VERSION);
            return 0;
        }
        if (!strcmp(a, "--new-cluster-id"))
            return new_cluster_id();
        if (!strcmp(a, "--keygen") && i + 1 < argc)
            return keygen(argv[i + 1]);
        if (!strcmp(a, "--init")) {
            opts.init = true;
        } else if (!strcmp(a, "--join")) {
            opts.join = true;
        } else if (!strcmp(a, "-c") && i + 1 < argc) {
            conf_path = argv[++i];
        } else if (!strcmp(a, "-o") && i + 1 < argc && n < MAX_OVERRIDES) {
            overrides[n++] = argv[++i];
        } else if (!strncmp(a, "--", 2) && strchr(a, '=') && n < MAX_OVERRIDES) {
            overrides[n++] = a + 2;
        } else {
            fprintf(stderr, "dfs-master: unknown argument \"%s\" (see --help)\n", a);
            return 2;
        }
    }

    if (opts.init && opts.join) {
        fprintf(stderr, "dfs-master: --init and --join exclude each other\n");
        return 2;
    }
    struct mserver_conf conf;
    char err[512];
    if (mserver_conf_load(&conf, conf_path, overrides, n, err, sizeof(err)) < 0) {
        fprintf(stderr, "dfs-master: %s\n", err);
        mserver_conf_release(&conf);
        return 2;
    }
    enum log_level level = LOG_INFO;
    if (log_parse_level(conf.log_level, &level) < 0) {
        fprintf(stderr, "dfs-master: log_level: unknown level \"%s\"\n", conf.log_level);
        mserver_conf_release(&conf);
        return 2;
    }
    int rc = log_init("dfs-master", level, conf.log_file[0] ? conf.log_file : NULL);
    if (rc < 0) {
        fprintf(stderr, "dfs-master: log_file %s: %s\n", conf.log_file, dfs_strerror(rc));
        mserver_conf_release(&conf);
        return 1;
    }
    rc = mserver_run(&conf, &opts);
    mserver_conf_release(&conf);
    return rc < 0 ? 1 : 0;
}
