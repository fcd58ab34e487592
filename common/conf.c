/*
 * conf: fills a module's config struct from its key table, a "key = value"
 * file and command-line overrides (conf.h gives the syntax).
 *
 * Owns nothing between calls: the table is the caller's (static), the
 * strings stored in the struct belong to the struct (conf_release).
 *
 * Invariants:
 *  1. Every value reaches the struct through conf_assign, which parses,
 *     checks the bounds and only then writes the field; so a key's field
 *     holds either its old value or a valid new one.
 *  2. Every error message is one line "WHERE[:LINE]: text" naming the key
 *     when there is one, and every error returns -DFS_ECONF, except a file
 *     that cannot be read (its negative errno) and out of memory.
 */
#include "conf.h"

#include "dfs_error.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Where a value comes from, for error messages. */
struct conf_src {
    const char *where;      /* a file path, "command line" or "conf table" */
    unsigned line;          /* 0: no line number */
    char *errbuf;
    size_t errlen;
};

union conf_value {
    int64_t i;      /* CONF_INT */
    uint64_t u;     /* CONF_UINT64, CONF_SIZE, CONF_DURATION */
    bool b;         /* CONF_BOOL */
};

static int conf_fail(const struct conf_src *src, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int conf_fail(const struct conf_src *src, const char *fmt, ...)
{
    if (!src->errbuf || src->errlen == 0)
        return -DFS_ECONF;
    int n = src->line
        ? snprintf(src->errbuf, src->errlen, "%s:%u: ", src->where, src->line)
        : snprintf(src->errbuf, src->errlen, "%s: ", src->where);
    if (n >= 0 && (size_t)n < src->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(src->errbuf + n, src->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -DFS_ECONF;
}

/* ---- keys --------------------------------------------------------------- */

static bool conf_key_char_eq(char a, char b)
{
    return (a == '-' ? '_' : a) == (b == '-' ? '_' : b);
}

static const struct conf_key *conf_find(const struct conf_key *table,
                                        const char *name)
{
    for (const struct conf_key *k = table; k->name; k++) {
        size_t i = 0;
        while (k->name[i] && conf_key_char_eq(k->name[i], name[i]))
            i++;
        if (!k->name[i] && !name[i])
            return k;
    }
    return NULL;
}

static size_t conf_count(const struct conf_key *table)
{
    size_t n = 0;
    while (table[n].name)
        n++;
    return n;
}

/* ---- values ------------------------------------------------------------- */

/* Leading decimal digits of s into *out; *end after them.  -EINVAL when
 * there are none, -ERANGE past UINT64_MAX. */
static int conf_digits(const char *s, uint64_t *out, const char **end)
{
    uint64_t v = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    if (p == s)
        return -EINVAL;
    *out = v;
    *end = p;
    return 0;
}

static int conf_parse_int(const char *s, int64_t *out)
{
    bool neg = *s == '-';
    uint64_t mag;
    const char *end;
    if (*s == '-' || *s == '+')
        s++;
    int rc = conf_digits(s, &mag, &end);
    if (rc < 0)
        return rc;
    if (*end)
        return -EINVAL;
    if (mag > (neg ? (uint64_t)INT_MAX + 1 : (uint64_t)INT_MAX))
        return -ERANGE;
    *out = neg ? -(int64_t)mag : (int64_t)mag;
    return 0;
}

static int conf_parse_uint(const char *s, uint64_t *out)
{
    const char *end;
    int rc = conf_digits(s, out, &end);
    return rc < 0 ? rc : *end ? -EINVAL : 0;
}

static int conf_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = { "true", "yes", "on", "1" };
    static const char *const no[] = { "false", "no", "off", "0" };
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
            *out = strcasecmp(s, yes[i]) == 0;
            return 0;
        }
    }
    return -EINVAL;
}

/* n * mult into *out, or -ERANGE. */
static int conf_scale(uint64_t n, uint64_t mult, uint64_t *out)
{
    if (n > UINT64_MAX / mult)
        return -ERANGE;
    *out = n * mult;
    return 0;
}

static int conf_parse_size(const char *s, uint64_t *out)
{
    static const char units[] = "KMGT";
    uint64_t n, mult = 1;
    const char *end;
    int rc = conf_digits(s, &n, &end);
    if (rc < 0)
        return rc;
    const char *u = *end ? strchr(units, toupper((unsigned char)*end)) : NULL;
    if (u) {
        for (const char *p = units; p <= u; p++)
            mult *= 1024;
        end++;
        if (*end == 'i')
            end++;
    }
    if (*end == 'B' || (*end == 'b' && u))
        end++;
    if (*end)
        return -EINVAL;
    return conf_scale(n, mult, out);
}

static int conf_parse_duration(const char *s, uint64_t *out)
{
    static const struct {
        const char *name;
        uint64_t ms;
    } units[] = { { "ms", 1 }, { "s", 1000 }, { "m", 60000 },
                  { "h", 3600000 } };
    uint64_t n;
    const char *end;
    int rc = conf_digits(s, &n, &end);
    if (rc < 0)
        return rc;
    if (!*end && n == 0) {
        *out = 0;
        return 0;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(end, units[i].name) == 0)
            return conf_scale(n, units[i].ms, out);
    return -EINVAL;
}

/* Parses text as k's type: 0, -EINVAL (syntax) or -ERANGE (too big for
 * the type). */
static int conf_parse(const struct conf_key *k, const char *text,
                      union conf_value *v)
{
    switch (k->type) {
    case CONF_INT:
        return conf_parse_int(text, &v->i);
    case CONF_UINT64:
        return conf_parse_uint(text, &v->u);
    case CONF_BOOL:
        return conf_parse_bool(text, &v->b);
    case CONF_SIZE:
        return conf_parse_size(text, &v->u);
    case CONF_DURATION:
        return conf_parse_duration(text, &v->u);
    default:
        return 0;   /* CONF_STRING: any text */
    }
}

static const char *conf_expected(enum conf_type t)
{
    switch (t) {
    case CONF_INT:
        return "an integer";
    case CONF_UINT64:
        return "a non-negative integer";
    case CONF_BOOL:
        return "true or false";
    case CONF_SIZE:
        return "a size (e.g. 4096, 64K, 1G)";
    case CONF_DURATION:
        return "a duration (e.g. 150ms, 2s, 5m)";
    default:
        return "text";
    }
}

static bool conf_numeric(enum conf_type t)
{
    return t != CONF_STRING && t != CONF_BOOL;
}

/* <0, 0, >0 as a is below, equal to or above b. */
static int conf_cmp(enum conf_type t, const union conf_value *a,
                    const union conf_value *b)
{
    if (t == CONF_INT)
        return (a->i > b->i) - (a->i < b->i);
    return (a->u > b->u) - (a->u < b->u);
}

/* Checks v, written text, against k's bounds. */
static int conf_check_bounds(const struct conf_key *k, const char *text,
                             const union conf_value *v,
                             const struct conf_src *src)
{
    union conf_value lo, hi;
    struct conf_src table_src = { "conf table", 0, src->errbuf, src->errlen };
    if (!conf_numeric(k->type))
        return 0;
    if ((k->min && conf_parse(k, k->min, &lo) < 0) ||
        (k->max && conf_parse(k, k->max, &hi) < 0))
        return conf_fail(&table_src, "bad bound for %s", k->name);
    bool low = k->min && conf_cmp(k->type, v, &lo) < 0;
    bool high = k->max && conf_cmp(k->type, v, &hi) > 0;
    if (!low && !high)
        return 0;
    if (k->min && k->max)
        return conf_fail(src, "%s = %s is out of range (%s..%s)", k->name,
                         text, k->min, k->max);
    return conf_fail(src, "%s = %s is out of range (at %s %s)", k->name, text,
                     low ? "least" : "most", low ? k->min : k->max);
}

/* Parses text, checks it, and only then stores it in k's field. */
static int conf_assign(const struct conf_key *k, const char *text, void *conf,
                       const struct conf_src *src)
{
    union conf_value v;
    int rc = conf_parse(k, text, &v);
    if (rc == -ERANGE)
        return conf_fail(src, "bad value \"%s\" for %s: out of range", text,
                         k->name);
    if (rc < 0)
        return conf_fail(src, "bad value \"%s\" for %s: expected %s", text,
                         k->name, conf_expected(k->type));
    rc = conf_check_bounds(k, text, &v, src);
    if (rc < 0)
        return rc;

    char *field = (char *)conf + k->offset;
    switch (k->type) {
    case CONF_STRING: {
        char *dup = strdup(text);
        if (!dup)
            return -ENOMEM;
        free(*(char **)field);
        *(char **)field = dup;
        break;
    }
    case CONF_INT:
        *(int *)field = (int)v.i;
        break;
    case CONF_BOOL:
        *(bool *)field = v.b;
        break;
    default:
        *(uint64_t *)field = v.u;
        break;
    }
    return 0;
}

/* ---- defaults and overrides --------------------------------------------- */

/* The default of k as text; NULL only for a string without one. */
static const char *conf_default(const struct conf_key *k)
{
    if (k->def || k->type == CONF_STRING)
        return k->def;
    return k->type == CONF_BOOL ? "false" : "0";
}

int conf_apply_defaults(const struct conf_key *table, void *conf,
                        char *errbuf, size_t errlen)
{
    struct conf_src src = { "conf table", 0, errbuf, errlen };
    for (const struct conf_key *k = table; k->name; k++) {
        const char *def = conf_default(k);
        if (def) {
            int rc = conf_assign(k, def, conf, &src);
            if (rc < 0)
                return rc;
        } else {
            char **field = (char **)((char *)conf + k->offset);
            free(*field);
            *field = NULL;
        }
    }
    return 0;
}

int conf_set(const struct conf_key *table, const char *key, const char *value,
             void *conf, char *errbuf, size_t errlen)
{
    struct conf_src src = { "command line", 0, errbuf, errlen };
    const struct conf_key *k = conf_find(table, key);
    if (!k)
        return conf_fail(&src, "unknown key \"%s\"", key);
    return conf_assign(k, value, conf, &src);
}

int conf_set_option(const struct conf_key *table, const char *option,
                    void *conf, char *errbuf, size_t errlen)
{
    struct conf_src src = { "command line", 0, errbuf, errlen };
    const char *eq = strchr(option, '=');
    if (!eq) {
        const struct conf_key *k = conf_find(table, option);
        if (k && k->type == CONF_BOOL)
            return conf_assign(k, "true", conf, &src);
        if (k)
            return conf_fail(&src, "%s needs a value (%s=...)", k->name,
                             k->name);
        return conf_fail(&src, "unknown key \"%s\"", option);
    }
    char *key = strndup(option, (size_t)(eq - option));
    if (!key)
        return -ENOMEM;
    int rc = conf_set(table, key, eq + 1, conf, errbuf, errlen);
    free(key);
    return rc;
}

/* ---- files -------------------------------------------------------------- */

static char *conf_skip_space(char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* A quoted value: cut in place, escapes resolved, nothing but a comment
 * after the closing quote. */
static int conf_quoted(char *p, char **out, const char *key,
                       const struct conf_src *src)
{
    char quote = *p++;
    char *w = p;
    *out = p;
    for (; *p && *p != quote; p++) {
        if (quote == '"' && *p == '\\' && (p[1] == '"' || p[1] == '\\'))
            p++;
        *w++ = *p;
    }
    if (*p != quote)
        return conf_fail(src, "unterminated quote in the value of %s", key);
    char *rest = conf_skip_space(p + 1);
    *w = '\0';
    if (*rest && *rest != '#')
        return conf_fail(src, "text after the closing quote of %s", key);
    return 0;
}

/* The value after '=', cut out of the line in place. */
static int conf_value(char *p, char **out, const char *key,
                      const struct conf_src *src)
{
    p = conf_skip_space(p);
    if (*p == '"' || *p == '\'')
        return conf_quoted(p, out, key, src);
    char *end = p;
    while (*end && !(*end == '#' && (end == p || end[-1] == ' ' ||
                                     end[-1] == '\t')))
        end++;
    while (end > p && isspace((unsigned char)end[-1]))
        end--;
    *end = '\0';
    *out = p;
    return 0;
}

static bool conf_is_key_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '.';
}

/*
 * One line of a file.  set_on[i] is the line that set table[i] (0: not
 * yet), so a key given twice is caught.
 */
static int conf_line(const struct conf_key *table, char *line, void *conf,
                     const struct conf_src *src, unsigned *set_on)
{
    line[strcspn(line, "\r\n")] = '\0';
    char *key = conf_skip_space(line);
    if (*key == '\0' || *key == '#')
        return 0;
    char *key_end = key;
    while (conf_is_key_char(*key_end))
        key_end++;
    char *eq = conf_skip_space(key_end);
    if (key_end == key || *eq != '=')
        return conf_fail(src, "expected \"key = value\"");
    *key_end = '\0';

    const struct conf_key *k = conf_find(table, key);
    if (!k)
        return conf_fail(src, "unknown key \"%s\"", key);
    size_t i = (size_t)(k - table);
    if (set_on[i])
        return conf_fail(src, "%s is already set on line %u", k->name,
                         set_on[i]);
    set_on[i] = src->line;
    char *value;
    int rc = conf_value(eq + 1, &value, k->name, src);
    return rc < 0 ? rc : conf_assign(k, value, conf, src);
}

int conf_load_file(const struct conf_key *table, const char *path, void *conf,
                   char *errbuf, size_t errlen)
{
    struct conf_src src = { path, 0, errbuf, errlen };
    FILE *f = fopen(path, "re");
    if (!f) {
        int err = errno;
        conf_fail(&src, "%s", strerror(err));
        return -err;
    }
    int rc = 0;
    char *line = NULL;
    size_t cap = 0;
    unsigned *set_on = calloc(conf_count(table) + 1, sizeof(*set_on));
    if (!set_on) {
        rc = -ENOMEM;
        goto out_close;
    }
    while (rc == 0 && getline(&line, &cap, f) >= 0) {
        src.line++;
        rc = conf_line(table, line, conf, &src, set_on);
    }
    if (rc == 0 && ferror(f)) {
        src.line = 0;
        conf_fail(&src, "read error");
        rc = -EIO;
    }
    free(line);
    free(set_on);
out_close:
    fclose(f);
    return rc;
}

int conf_load(const struct conf_key *table, const char *path,
              const char *const *overrides, size_t n, void *conf,
              char *errbuf, size_t errlen)
{
    int rc = conf_apply_defaults(table, conf, errbuf, errlen);
    if (rc == 0 && path)
        rc = conf_load_file(table, path, conf, errbuf, errlen);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = conf_set_option(table, overrides[i], conf, errbuf, errlen);
    return rc;
}

/* ---- help and release --------------------------------------------------- */

static const char *conf_type_name(enum conf_type t)
{
    static const char *const names[] = {
        [CONF_STRING] = "TEXT", [CONF_INT] = "INT", [CONF_UINT64] = "N",
        [CONF_BOOL] = "BOOL", [CONF_SIZE] = "SIZE",
        [CONF_DURATION] = "DURATION",
    };
    return names[t];
}

void conf_print_help(const struct conf_key *table, FILE *out)
{
    int width = 0;
    for (const struct conf_key *k = table; k->name; k++) {
        int w = (int)(strlen(k->name) + 1 + strlen(conf_type_name(k->type)));
        width = w > width ? w : width;
    }
    for (const struct conf_key *k = table; k->name; k++) {
        char head[256];
        snprintf(head, sizeof(head), "%s=%s", k->name,
                 conf_type_name(k->type));
        const char *def = conf_default(k);
        fprintf(out, "  %-*s  %s (%s%s", width, head, k->help ? k->help : "",
                def ? "default " : "no default", def ? def : "");
        if (k->min && k->max)
            fprintf(out, "; %s..%s", k->min, k->max);
        else if (k->min || k->max)
            fprintf(out, "; at %s %s", k->min ? "least" : "most",
                    k->min ? k->min : k->max);
        fprintf(out, ")\n");
    }
}

void conf_release(const struct conf_key *table, void *conf)
{
    for (const struct conf_key *k = table; k->name; k++) {
        if (k->type != CONF_STRING)
            continue;
        char **field = (char **)((char *)conf + k->offset);
        free(*field);
        *field = NULL;
    }
}
