/*
 * toolkit: what every dfs command-line tool shares — the common options
 * (-M masters, -k key file, their environment defaults), opening a
 * session with a clear message, and small output helpers.
 *
 * Used by tools/dfsput.c, dfsget.c and dfsadmin.c only.
 */
#ifndef DFS_TOOLKIT_H
#define DFS_TOOLKIT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/libdfs/dfs.h"

/* Exit codes of every tool (DESIGN §4). */
enum { TOOL_OK = 0, TOOL_FAILED = 1, TOOL_USAGE = 2 };

struct toolkit_opts {
    const char *masters;     /* -M, else $DFS_MASTERS */
    const char *key_file;    /* -k, else $DFS_KEY_FILE */
};

/*
 * If argv[*i] is -M or -k (or --masters=, --key=), consumes it (and its
 * value) into o and returns true.  Returns false for anything else.
 */
bool toolkit_common_option(int argc, char **argv, int *i,
                           struct toolkit_opts *o);

/*
 * The options every tool takes: --help (usage to stdout), --version, -M
 * and -k.  Returns true when argv[*i] was one of them (consumed, with its
 * value); *exit_code is then TOOL_OK when the tool should stop at once
 * (--help, --version), else -1.
 */
bool toolkit_standard_option(const char *prog, void (*usage)(FILE *out),
                             int argc, char **argv, int *i,
                             struct toolkit_opts *o, int *exit_code);

/*
 * Opens a session (defaults from the environment); on failure prints
 * "prog: cannot reach the cluster: reason" and returns NULL.
 */
struct dfs *toolkit_open(const char *prog, struct toolkit_opts *o);

/* Writes s as a JSON string literal, quotes included. */
void toolkit_json_string(FILE *out, const char *s);

/* "file", "directory", "symlink", "fifo", "socket", "char", "block". */
const char *toolkit_type_name(unsigned mode);

/* ls-style "drwxr-xr-x" into buf (11 bytes). */
void toolkit_mode_string(unsigned mode, char buf[11]);

/*
 * Splits an absolute dfs path into its parent's attributes and the last
 * name (copied into name, NAME_MAX + 1 bytes).  -EINVAL for "/" or a
 * relative path.
 */
int toolkit_parent(struct dfs *d, const char *path, struct dfs_attr *parent,
                   char *name, size_t name_size);

/*
 * A progress bar on stderr, drawn only when stderr is a terminal: bytes,
 * rate and time left for one file.  total 0: unknown (a pipe).
 */
struct toolkit_progress {
    bool on;
    const char *name;
    uint64_t total, done;
    double start, last_draw;
};
void toolkit_progress_start(struct toolkit_progress *p, const char *name,
                            uint64_t total);
void toolkit_progress_add(struct toolkit_progress *p, uint64_t n);
void toolkit_progress_end(struct toolkit_progress *p);

#endif
