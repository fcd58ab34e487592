/*
 * dfsput: copies local files into dfs.
 *
 * Placeholder entry point: it parses --help and --version and says plainly
 * that the program is not built yet.  Its issue replaces this file.
 */
#include "common/log.h"
#include "common/version.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: dfsput [--help] [--version]\ncopies local files into dfs.\n");
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("dfsput %s\n", DFS_VERSION);
            return 0;
        }
    }
    log_init("dfsput", LOG_INFO, NULL);
    log_error("dfsput is not built yet in this version of dfs");
    return 2;
}
