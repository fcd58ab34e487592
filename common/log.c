/*
 * log: the process-wide logger.
 *
 * Invariants:
 *  1. The configuration is written only by log_init(), before threads.
 *  2. Each line is formatted into a local buffer and written with a single
 *     write(2) on an O_APPEND descriptor, so concurrent lines never mix.
 *  3. Logging never fails its caller: an error writing a line is ignored.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* The logger is the one piece of process-wide state outside a server's
 * struct: every module logs, and threading a handle through all of them
 * would buy nothing. */
static struct {
    const char *name;
    enum log_level min;
    int fd;
} logger = { "dfs", LOG_INFO, STDERR_FILENO };

static const char *const level_names[] = { "debug", "info", "warn", "error" };

int log_init(const char *name, enum log_level min, const char *path)
{
    int fd = STDERR_FILENO;
    if (path) {
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            return -errno;
    }
    if (logger.fd != STDERR_FILENO)
        close(logger.fd);
    logger.name = name;
    logger.min = min;
    logger.fd = fd;
    return 0;
}

int log_parse_level(const char *s, enum log_level *out)
{
    for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (level < logger.min)
        return;

    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d] %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, logger.name,
                     (int)getpid(), level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t w = write(logger.fd, line, (size_t)n);
    (void)w;
}
