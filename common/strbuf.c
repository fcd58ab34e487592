/*
 * strbuf: growable string with a sticky error.
 *
 * Owns: buf (heap, NULL until the first successful growth).
 *
 * Invariants:
 *  1. buf == NULL implies len == 0 and cap == 0; otherwise len < cap and
 *     buf[len] == '\0'.
 *  2. max == 0 or len <= max.
 *  3. Once err != 0 nothing is appended until strbuf_reset.
 */
#include "strbuf.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dfs_error.h"

#define STRBUF_MIN_CAP 256

void strbuf_init(struct strbuf *sb, size_t max)
{
    memset(sb, 0, sizeof(*sb));
    sb->max = max;
}

void strbuf_release(struct strbuf *sb)
{
    free(sb->buf);
    strbuf_init(sb, sb->max);
}

void strbuf_reset(struct strbuf *sb)
{
    sb->len = 0;
    sb->err = 0;
    if (sb->buf)
        sb->buf[0] = '\0';
}

/* Makes room for `extra` more bytes plus the NUL; 0 or the sticky error. */
static int strbuf_grow(struct strbuf *sb, size_t extra)
{
    if (sb->err)
        return sb->err;
    if (extra > SIZE_MAX / 2 - sb->len - 1 ||
        (sb->max && sb->len + extra > sb->max))
        return sb->err = -DFS_ETOOBIG;
    size_t need = sb->len + extra + 1;
    if (need <= sb->cap)
        return 0;
    size_t cap = sb->cap ? sb->cap : STRBUF_MIN_CAP;
    while (cap < need)
        cap *= 2;
    char *p = realloc(sb->buf, cap);
    if (!p)
        return sb->err = -ENOMEM;
    sb->buf = p;
    sb->cap = cap;
    return 0;
}

void strbuf_add(struct strbuf *sb, const void *data, size_t n)
{
    if (strbuf_grow(sb, n))
        return;
    memcpy(sb->buf + sb->len, data, n);
    sb->len += n;
    sb->buf[sb->len] = '\0';
}

void strbuf_adds(struct strbuf *sb, const char *s)
{
    strbuf_add(sb, s, strlen(s));
}

void strbuf_addc(struct strbuf *sb, char c)
{
    strbuf_add(sb, &c, 1);
}

void strbuf_vaddf(struct strbuf *sb, const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    if (n < 0) {
        if (!sb->err)
            sb->err = -EINVAL;
        goto out_again;
    }
    if (strbuf_grow(sb, (size_t)n))
        goto out_again;
    vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, again);
    sb->len += (size_t)n;
out_again:
    va_end(again);
}

void strbuf_addf(struct strbuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    strbuf_vaddf(sb, fmt, ap);
    va_end(ap);
}

int strbuf_error(const struct strbuf *sb)
{
    return sb->err;
}

const char *strbuf_str(const struct strbuf *sb)
{
    return sb->buf ? sb->buf : "";
}

char *strbuf_detach(struct strbuf *sb, size_t *len_out)
{
    if (sb->err)
        return NULL;
    char *s = sb->buf ? sb->buf : strdup("");
    if (!s)
        return NULL;
    if (len_out)
        *len_out = sb->len;
    strbuf_init(sb, sb->max);
    return s;
}
