/*
 * strbuf: a growable, NUL-terminated byte string for building text
 * (status pages, JSON, metrics).
 *
 * Errors are sticky: an append that cannot grow the buffer (out of memory,
 * or past the bound given to strbuf_init) records the error and makes every
 * later append a no-op, so a renderer appends freely and checks
 * strbuf_error() once at the end.  After an error the contents are a
 * truncated prefix and must not be used.
 *
 * A strbuf is used by one thread at a time.
 */
#ifndef DFS_STRBUF_H
#define DFS_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

struct strbuf {
    char *buf;      /* owned; NULL until the first append; NUL-terminated */
    size_t len;     /* bytes before the NUL */
    size_t cap;     /* bytes allocated */
    size_t max;     /* bound on len; 0 = unbounded */
    int err;        /* 0, -ENOMEM, or -DFS_ETOOBIG past max */
};

/* An empty buffer that will refuse to grow past max bytes (0: no bound). */
void strbuf_init(struct strbuf *sb, size_t max);

/* Frees the contents; sb may be initialised again afterwards. */
void strbuf_release(struct strbuf *sb);

/* Empties the buffer and clears a sticky error; keeps the allocation. */
void strbuf_reset(struct strbuf *sb);

void strbuf_add(struct strbuf *sb, const void *data, size_t n);
void strbuf_adds(struct strbuf *sb, const char *s);
void strbuf_addc(struct strbuf *sb, char c);
void strbuf_addf(struct strbuf *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void strbuf_vaddf(struct strbuf *sb, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* 0, or the first error an append met. */
int strbuf_error(const struct strbuf *sb);

/*
 * The contents: always a valid string ("" when empty), borrowed, valid
 * until the next call that changes sb.
 */
const char *strbuf_str(const struct strbuf *sb);

/*
 * Hands the contents to the caller (free() them; never NULL: an empty
 * buffer yields a fresh "") and leaves sb empty, as after strbuf_init with
 * the same bound.  *len_out, when not NULL, gets the length.  Returns NULL
 * (and keeps the contents) when the buffer has a sticky error or "" cannot
 * be allocated.
 */
char *strbuf_detach(struct strbuf *sb, size_t *len_out);

#endif
