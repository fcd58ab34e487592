/*
 * log: levelled, timestamped log lines to stderr or a file.
 *
 * The one process-wide logger; log_init() is called once by main() before
 * threads start, log_msg() is safe from any thread (one write(2) per line,
 * so lines never interleave).  Every module may call it.
 */
#ifndef DFS_LOG_H
#define DFS_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/*
 * name: the program's name, printed on every line (borrowed: must outlive
 * the logger, a string literal or argv[0] is fine).  path: NULL for stderr,
 * else a file opened for append.  A file from an earlier call is closed.
 * On error the logger is left as it was.  Returns 0 or a negative errno.
 */
int log_init(const char *name, enum log_level min, const char *path);

/* Parses "debug", "info", "warn", "error"; returns 0 or -EINVAL. */
int log_parse_level(const char *s, enum log_level *out);

void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
