/*
 * mmember: the master address book and the decommission set, and their
 * encodings.
 *
 * Invariants:
 *  1. m[] is sorted by id, ids distinct and never 0; every addr is
 *     non-empty.  decom[] is sorted and distinct.
 *  2. Applying an entry or loading a section either succeeds whole or
 *     leaves the state unchanged, so masters that see the same bytes stay
 *     identical even when the bytes are bad.
 *  3. Entry encoding round-trips: mmember_apply of
 *     mmember_encode_masters(mm) reproduces mm's masters exactly.
 */
#include "master/mmember.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wire.h"

#define MMEMBER_MAGIC UINT64_C(0x31424d454d534644)   /* "DFSMEMB1" */

void mmember_init(struct mmember *mm)
{
    memset(mm, 0, sizeof(*mm));
}

static size_t master_slot(const struct mmember *mm, uint64_t id)
{
    size_t i = 0;
    while (i < mm->n && mm->m[i].id < id)
        i++;
    return i;
}

int mmember_set(struct mmember *mm, uint64_t id, const char *addr,
                const char *http)
{
    if (!http)
        http = "";
    if (id == 0 || !addr || !addr[0] || strlen(addr) >= MMEMBER_ADDR_MAX ||
        strlen(http) >= MMEMBER_ADDR_MAX)
        return -EINVAL;
    size_t at = master_slot(mm, id);
    if (at == mm->n || mm->m[at].id != id) {
        if (mm->n == MMEMBER_MAX)
            return -ENOSPC;
        memmove(&mm->m[at + 1], &mm->m[at], (mm->n - at) * sizeof(mm->m[0]));
        mm->n++;
    }
    struct mmember_master *m = &mm->m[at];
    memset(m, 0, sizeof(*m));   /* byte-identical books on every master */
    m->id = id;
    snprintf(m->addr, sizeof(m->addr), "%s", addr);
    snprintf(m->http, sizeof(m->http), "%s", http);
    return 0;
}

int mmember_drop(struct mmember *mm, uint64_t id)
{
    size_t at = master_slot(mm, id);
    if (at == mm->n || mm->m[at].id != id)
        return -ENOENT;
    memmove(&mm->m[at], &mm->m[at + 1], (mm->n - at - 1) * sizeof(mm->m[0]));
    mm->n--;
    return 0;
}

const struct mmember_master *mmember_find(const struct mmember *mm, uint64_t id)
{
    size_t at = master_slot(mm, id);
    return at < mm->n && mm->m[at].id == id ? &mm->m[at] : NULL;
}

const struct mmember_master *mmember_find_addr(const struct mmember *mm,
                                               const char *addr)
{
    for (size_t i = 0; i < mm->n; i++) {
        if (!strcmp(mm->m[i].addr, addr))
            return &mm->m[i];
    }
    return NULL;
}

static size_t decom_slot(const struct mmember *mm, uint32_t cs)
{
    size_t lo = 0, hi = mm->ndecom;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (mm->decom[mid] < cs)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int mmember_decommission(struct mmember *mm, uint32_t cs)
{
    size_t at = decom_slot(mm, cs);
    if (at < mm->ndecom && mm->decom[at] == cs)
        return 0;
    if (cs == 0)
        return -EINVAL;
    if (mm->ndecom == MMEMBER_DECOM_MAX)
        return -ENOSPC;
    memmove(&mm->decom[at + 1], &mm->decom[at], (mm->ndecom - at) * sizeof(mm->decom[0]));
    mm->decom[at] = cs;
    mm->ndecom++;
    return 0;
}

bool mmember_is_decommissioned(const struct mmember *mm, uint32_t cs)
{
    size_t at = decom_slot(mm, cs);
    return at < mm->ndecom && mm->decom[at] == cs;
}

/* ---- encodings ------------------------------------------------------------ */

static void put_masters(const struct mmember *mm, struct wire_writer *w)
{
    wire_put_u32(w, (uint32_t)mm->n);
    for (size_t i = 0; i < mm->n; i++) {
        wire_put_u64(w, mm->m[i].id);
        wire_put_str(w, mm->m[i].addr);
        wire_put_str(w, mm->m[i].http);
    }
}

/* Reads a master list into out (masters only); 0 or a negative error. */
static int get_masters(struct wire_reader *r, struct mmember *out)
{
    uint32_t n = wire_get_u32(r);
    if (r->err)
        return r->err;
    if (n > MMEMBER_MAX)
        return -EBADMSG;
    out->n = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t id = wire_get_u64(r);
        char *addr = wire_get_str(r, MMEMBER_ADDR_MAX - 1);
        char *http = wire_get_str(r, MMEMBER_ADDR_MAX - 1);
        int rc = r->err ? r->err : mmember_find(out, id) ? -EBADMSG
               : mmember_set(out, id, addr, http) < 0 ? -EBADMSG : 0;
        free(addr);
        free(http);
        if (rc < 0)
            return rc;
    }
    return 0;
}

bool mmember_is_entry(const void *data, size_t len)
{
    return len >= 1 && *(const uint8_t *)data == MMEMBER_ENTRY_FORMAT;
}

void mmember_encode_masters(const struct mmember *mm, struct wire_writer *w)
{
    wire_put_u8(w, MMEMBER_ENTRY_FORMAT);
    wire_put_u8(w, MMEMBER_MASTERS);
    put_masters(mm, w);
}

void mmember_encode_decommission(uint32_t cs, struct wire_writer *w)
{
    wire_put_u8(w, MMEMBER_ENTRY_FORMAT);
    wire_put_u8(w, MMEMBER_DECOMMISSION);
    wire_put_u32(w, cs);
}

int mmember_apply(struct mmember *mm, const void *data, size_t len,
                  struct mmember_change *ch)
{
    struct wire_reader r;
    wire_reader_init(&r, data, len);
    if (wire_get_u8(&r) != MMEMBER_ENTRY_FORMAT)
        return -EBADMSG;
    uint8_t kind = wire_get_u8(&r);
    memset(ch, 0, sizeof(*ch));
    if (kind == MMEMBER_MASTERS) {
        struct mmember tmp;
        tmp.n = 0;
        int rc = get_masters(&r, &tmp);
        if (rc == 0)
            rc = wire_reader_finish(&r);
        if (rc < 0)
            return rc;
        mm->n = tmp.n;
        memcpy(mm->m, tmp.m, tmp.n * sizeof(tmp.m[0]));
        ch->kind = MMEMBER_MASTERS;
        return 0;
    }
    if (kind == MMEMBER_DECOMMISSION) {
        uint32_t cs = wire_get_u32(&r);
        int rc = wire_reader_finish(&r);
        if (rc == 0)
            rc = mmember_decommission(mm, cs);
        if (rc < 0)
            return rc;
        ch->kind = MMEMBER_DECOMMISSION;
        ch->cs = cs;
        return 0;
    }
    return r.err ? r.err : -EBADMSG;
}

void mmember_snapshot_write(const struct mmember *mm, struct wire_writer *w)
{
    struct wire_writer sec;
    wire_writer_init(&sec);
    put_masters(mm, &sec);
    wire_put_u32(&sec, (uint32_t)mm->ndecom);
    for (size_t i = 0; i < mm->ndecom; i++)
        wire_put_u32(&sec, mm->decom[i]);
    wire_put_u64(w, MMEMBER_MAGIC);
    if (sec.err)
        w->err = sec.err;
    wire_put_bytes(w, sec.buf, sec.len);
    wire_writer_release(&sec);
}

static int get_section(const uint8_t *p, size_t n, struct mmember *out)
{
    struct wire_reader r;
    wire_reader_init(&r, p, n);
    int rc = get_masters(&r, out);
    uint32_t nd = wire_get_u32(&r);
    if (rc == 0 && !r.err && nd > MMEMBER_DECOM_MAX)
        rc = -EBADMSG;
    out->ndecom = 0;
    for (uint32_t i = 0; rc == 0 && i < nd && !r.err; i++) {
        uint32_t cs = wire_get_u32(&r);
        /* Sorted and distinct, as written. */
        if (!r.err && (cs == 0 || (i && cs <= out->decom[i - 1])))
            rc = -EBADMSG;
        else
            out->decom[out->ndecom++] = cs;
    }
    if (rc == 0)
        rc = wire_reader_finish(&r);
    return rc;
}

int mmember_snapshot_split(const void *buf, size_t len, struct mmember *mm,
                           const void **rest, size_t *rest_len)
{
    struct wire_reader r;
    wire_reader_init(&r, buf, len);
    if (len < 8 || wire_get_u64(&r) != MMEMBER_MAGIC) {
        *rest = buf;
        *rest_len = len;
        return 0;
    }
    const uint8_t *sec;
    size_t n = wire_get_bytes(&r, &sec, len);
    if (r.err)
        return -EBADMSG;
    struct mmember *tmp = malloc(sizeof(*tmp));
    if (!tmp)
        return -ENOMEM;
    mmember_init(tmp);
    int rc = get_section(sec, n, tmp);
    if (rc == 0) {
        *mm = *tmp;
        *rest = (const uint8_t *)buf + (len - r.left);
        *rest_len = r.left;
    }
    free(tmp);
    return rc < 0 ? -EBADMSG : 1;
}

/* ---- removal ------------------------------------------------------------- */

bool mmember_removed(const struct mmember_answer *a, uint64_t our_term)
{
    return a->leader != 0 && a->leader == a->from && a->term >= our_term &&
           a->config_index != 0 && a->config_index <= a->commit && !a->lists_us;
}

/* ---- cache file ------------------------------------------------------------ */

int mmember_format_masters(const struct mmember *mm, char *buf, size_t cap)
{
    size_t off = 0;
    if (cap == 0)
        return -ENOSPC;
    buf[0] = '\0';
    for (size_t i = 0; i < mm->n; i++) {
        const struct mmember_master *m = &mm->m[i];
        int k = snprintf(buf + off, cap - off, "%" PRIu64 " %s %s\n", m->id, m->addr,
                         m->http[0] ? m->http : "-");
        if (k < 0 || (size_t)k >= cap - off)
            return -ENOSPC;
        off += (size_t)k;
    }
    return (int)off;
}

/* One "id addr http" line into out; -EINVAL when malformed. */
static int parse_line(const char *line, struct mmember *out)
{
    char addr[MMEMBER_ADDR_MAX], http[MMEMBER_ADDR_MAX], extra[2];
    uint64_t id;
    /* %255s matches MMEMBER_ADDR_MAX - 1. */
    int k = sscanf(line, "%" SCNu64 " %255s %255s %1s", &id, addr, http, extra);
    if (k != 3 || mmember_find(out, id))
        return -EINVAL;
    return mmember_set(out, id, addr, strcmp(http, "-") ? http : "") < 0 ? -EINVAL : 0;
}

int mmember_parse_masters(struct mmember *mm, const char *text)
{
    struct mmember *tmp = malloc(sizeof(*tmp));
    if (!tmp)
        return -ENOMEM;
    tmp->n = 0;
    int rc = 0;
    for (const char *p = text; *p && rc == 0;) {
        size_t n = strcspn(p, "\n");
        char line[3 * MMEMBER_ADDR_MAX];
        if (n >= sizeof(line)) {
            rc = -EINVAL;
            break;
        }
        memcpy(line, p, n);
        line[n] = '\0';
        if (line[strspn(line, " \t\r")] != '\0' && line[0] != '#')
            rc = parse_line(line, tmp);
        p += n + (p[n] == '\n');
    }
    if (rc == 0) {
        mm->n = tmp->n;
        memcpy(mm->m, tmp->m, tmp->n * sizeof(tmp->m[0]));
    }
    free(tmp);
    return rc;
}
