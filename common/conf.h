/*
 * conf: "key = value" configuration files and command-line overrides.
 *
 * A module describes its settings once, in a table of struct conf_key, and
 * keeps their values in its own config struct; conf fills that struct from
 * defaults, a file and overrides, and prints --help from the same table.
 *
 *     struct master_conf { char *data_dir; uint64_t election_ms; };
 *     static const struct conf_key master_keys[] = {
 *         { "data_dir", CONF_STRING, offsetof(struct master_conf, data_dir),
 *           "/var/lib/dfs", NULL, NULL, "where the Raft log lives" },
 *         { "election_timeout", CONF_DURATION,
 *           offsetof(struct master_conf, election_ms), "1s", "50ms", "60s",
 *           "Raft election timeout" },
 *         { NULL },
 *     };
 *
 * File syntax, one setting per line:
 *     # a comment            blank lines are ignored
 *     key = value            whitespace around key and value is trimmed
 *     key = "a # b"          quotes ("..." or '...') keep spaces and '#';
 *                            inside "...", \" and \\ are escapes
 *     key = value  # note    an unquoted value ends at whitespace + '#'
 * A key may appear once per file.  In keys, '-' and '_' are the same.
 *
 * Errors return -DFS_ECONF (or a negative errno for a file that cannot be
 * read) and write one line to errbuf (may be NULL) naming the file, the
 * line and the key: `master.conf:12: unknown key "electon_timeout"`.
 * Command-line errors start with "command line:".  After an error the
 * struct holds a mix of old and new values; still call conf_release.
 *
 * Not thread-safe by itself: a config struct is filled before threads start.
 */
#ifndef DFS_CONF_H
#define DFS_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum conf_type {
    CONF_STRING,    /* char *: owned by the struct, freed by conf_release */
    CONF_INT,       /* int: decimal, optional sign */
    CONF_UINT64,    /* uint64_t: decimal */
    CONF_BOOL,      /* bool: true/false, yes/no, on/off, 1/0 */
    CONF_SIZE,      /* uint64_t bytes: 4096, 4K, 64M, 2G, 1T (powers of 1024,
                     * a trailing "B" or "iB" allowed) */
    CONF_DURATION,  /* uint64_t milliseconds: 150ms, 2s, 5m, 1h; a unit is
                     * required except for 0 */
};

struct conf_key {
    const char *name;       /* NULL ends the table */
    enum conf_type type;
    size_t offset;          /* offsetof() the field in the config struct */
    const char *def;        /* default, written as in a file; NULL: a NULL
                             * string, 0, false (which must then be within
                             * the bounds) */
    const char *min, *max;  /* inclusive bounds, same syntax; NULL: none.
                             * Numeric types only. */
    const char *help;       /* one line for --help */
};

/* Every key to its default.  Call first, on a zeroed struct.  An error
 * here is a bad table (default or bound that does not parse). */
int conf_apply_defaults(const struct conf_key *table, void *conf,
                        char *errbuf, size_t errlen);

/* Applies every setting of the file at path over the current values. */
int conf_load_file(const struct conf_key *table, const char *path, void *conf,
                   char *errbuf, size_t errlen);

/* One override, as --key=value or -o key=value give it. */
int conf_set(const struct conf_key *table, const char *key, const char *value,
             void *conf, char *errbuf, size_t errlen);

/* One override written "key=value"; a bare "key" sets a bool key to true. */
int conf_set_option(const struct conf_key *table, const char *option,
                    void *conf, char *errbuf, size_t errlen);

/*
 * What a main() wants, in the order that makes overrides win: defaults,
 * then the file at path (NULL: none), then each "key=value" of overrides
 * (n of them, borrowed).
 */
int conf_load(const struct conf_key *table, const char *path,
              const char *const *overrides, size_t n, void *conf,
              char *errbuf, size_t errlen);

/* One line per key for --help: name, type, default, bounds, help text. */
void conf_print_help(const struct conf_key *table, FILE *out);

/* Frees the strings the table's keys own in conf and sets them to NULL. */
void conf_release(const struct conf_key *table, void *conf);

#endif
