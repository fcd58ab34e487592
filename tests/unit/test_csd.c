/*
 * Tests of the chunkserver data path: real chunkservers (csd) on their own
 * loops and threads on 127.0.0.1, data directories under a temporary
 * folder, 1 MiB chunks, driven by the blocking rpc client as a dfs client
 * would drive them.  Randomized tests print their seed; set CSD_SEED to
 * replay one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chunkserver/chunkfile.h"
#include "chunkserver/csd.h"
#include "chunkserver/vols.h"
#include "common/auth.h"
#include "common/dfs_error.h"
#include "common/libdfs/dfs_priv.h"
#include "common/log.h"
#include "common/net.h"
#include "common/protocol.h"
#include "common/rpc.h"
#include "common/wire.h"

#define CHUNK (1u << 20)
#define IO_MS 10000

static char g_dir[64];
static char g_keyfile[128];
static struct auth_key g_key;
static int g_nodes_made;

/* ---- in-process chunkservers ------------------------------------------- */

struct node {
    struct csd_conf conf;
    struct csd *d;
    pthread_t th;
    bool running;
    char host[NET_HOST_MAX];
    uint16_t port;
};

static void *node_main(void *arg)
{
    struct node *n = arg;
    csd_run(n->d);
    return NULL;
}

static void node_set(struct node *n, const char *key, const char *value)
{
    char err[256];
    int rc = conf_set(csd_conf_keys, key, value, &n->conf, err, sizeof(err));
    if (rc < 0)
        fail_msg("%s", err);
}

/* A node with a fresh data directory making chunks of chunk_size bytes
 * (what a master would give at registration); extra: "key=value"
 * settings. */
static void node_open(struct node *n, uint64_t chunk_size, const char *const *extra)
{
    char err[256], dir[128];
    memset(n, 0, sizeof(*n));
    assert_int_equal(conf_apply_defaults(csd_conf_keys, &n->conf, err,
                                         sizeof(err)), 0);
    snprintf(dir, sizeof(dir), "%s/cs%d", g_dir, ++g_nodes_made);
    node_set(n, "listen", "127.0.0.1:0");
    node_set(n, "data_dir", dir);
    node_set(n, "key_file", g_keyfile);
    node_set(n, "reserved_space", "0");
    node_set(n, "scrub_rate", "0");
    node_set(n, "write_timeout", "5s");
    node_set(n, "disk_threads", "2");
    for (; extra && *extra; extra++)
        assert_int_equal(conf_set_option(csd_conf_keys, *extra, &n->conf, err,
                                         sizeof(err)), 0);
    int rc = csd_open(&n->conf, &n->d, err, sizeof(err));
    if (rc < 0)
        fail_msg("csd_open: %s", err);
    assert_int_equal(vols_set_chunk_size(n->d->vols, chunk_size), 0);
    assert_int_equal(net_parse_addr(n->d->self_addr, n->host, sizeof(n->host),
                                    &n->port), 0);
    assert_int_equal(pthread_create(&n->th, NULL, node_main, n), 0);
    n->running = true;
}

static void node_stop(struct node *n)
{
    if (!n->running)
        return;
    csd_stop(n->d);
    pthread_join(n->th, NULL);
    n->running = false;
}

static void node_close(struct node *n)
{
    node_stop(n);
    csd_close(n->d);
    conf_release(csd_conf_keys, &n->conf);
}

static int node_dial(const struct node *n)
{
    int fd = rpc_dial(n->host, n->port, &g_key, IO_MS);
    assert_true(fd >= 0);
    return fd;
}

/* ---- the client side --------------------------------------------------- */

struct chain_node {
    uint32_t cs;
    const struct node *n;
};

struct write_req {
    uint64_t chunk;
    uint32_t version, prev_version;
    uint8_t flags;
    const struct chain_node *chain;   /* after the receiver */
    size_t nchain;
    uint64_t offset;
    const void *data;
    size_t len;
    bool corrupt;                     /* flip a data byte after the CRCs */
};

static void put_write(struct wire_writer *w, const struct write_req *q)
{
    wire_put_u64(w, q->chunk);
    wire_put_u32(w, q->version);
    wire_put_u32(w, q->prev_version);
    wire_put_u8(w, q->flags);
    wire_put_u32(w, (uint32_t)q->nchain);
    for (size_t i = 0; i < q->nchain; i++) {
        wire_put_u32(w, q->chain[i].cs);
        wire_put_str(w, q->chain[i].n->d->self_addr);
    }
    size_t at = w->len;
    wire_put_blocks(w, q->offset, q->data, q->len);
    if (q->corrupt && q->len) {
        uint32_t nb = store_nblocks(q->offset, q->len);
        w->buf[at + 16 + 4 * nb + q->len / 2] ^= 0x40;
    }
    assert_int_equal(w->err, 0);
}

/* The failed node a CS_WRITE error reply names. */
struct failure {
    uint32_t cs;
    char addr[PROTO_ADDR_MAX + 1];
};

static void parse_failure(const struct rpc_reply *r, struct failure *f)
{
    memset(f, 0, sizeof(*f));
    struct wire_reader rd;
    wire_reader_init(&rd, r->payload, r->len);
    f->cs = wire_get_u32(&rd);
    char *addr = wire_get_str(&rd, PROTO_ADDR_MAX);
    assert_int_equal(wire_reader_finish(&rd), 0);
    snprintf(f->addr, sizeof(f->addr), "%s", addr);
    free(addr);
}

static int cs_write(int fd, const struct write_req *q, struct failure *f)
{
    struct wire_writer w;
    wire_writer_init(&w);
    put_write(&w, q);
    struct rpc_reply r;
    int rc = rpc_call_fd(fd, PROTO_CS_WRITE, w.buf, w.len, 0, IO_MS, &r);
    wire_writer_release(&w);
    assert_int_equal(rc, 0);
    rc = r.hdr.status;
    if (rc < 0 && f)
        parse_failure(&r, f);
    if (rc == 0)
        assert_int_equal(r.len, 0);
    rpc_reply_release(&r);
    return rc;
}

/* Reads [off, off+len) of a chunk: the status; *got bytes into buf, CRCs
 * checked as a client does. */
static int cs_read(int fd, uint64_t chunk, uint32_t version, uint64_t off,
                   uint32_t len, uint8_t *buf, uint32_t *got,
                   uint32_t *chunk_len)
{
    struct wire_writer w;
    wire_writer_init(&w);
    wire_put_u64(&w, chunk);
    wire_put_u32(&w, version);
    wire_put_u64(&w, off);
    wire_put_u32(&w, len);
    struct rpc_reply r;
    int rc = rpc_call_fd(fd, PROTO_CS_READ, w.buf, w.len, 0, IO_MS, &r);
    wire_writer_release(&w);
    assert_int_equal(rc, 0);
    rc = r.hdr.status;
    if (rc == 0) {
        struct wire_reader rd;
        struct wire_blocks b;
        wire_reader_init(&rd, r.payload, r.len);
        uint32_t clen = wire_get_u32(&rd);
        wire_get_blocks(&rd, &b, PROTO_DATA_MAX);
        assert_int_equal(wire_reader_finish(&rd), 0);
        assert_int_equal(wire_verify_blocks(&b, NULL), 0);
        assert_true(b.offset == off);
        memcpy(buf, b.data, b.length);
        *got = b.length;
        if (chunk_len)
            *chunk_len = clen;
    }
    rpc_reply_release(&r);
    return rc;
}

static uint64_t test_seed(void)
{
    const char *s = getenv("CSD_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL);
    printf("# test_csd seed %" PRIu64 " (replay: CSD_SEED=%" PRIu64 ")\n",
           seed, seed);
    return seed;
}

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Every replica holds exactly model[0..len). */
static void check_replica(const struct node *n, uint64_t chunk,
                          uint32_t version, const uint8_t *model, uint32_t len)
{
    uint8_t *buf = malloc(PROTO_DATA_MAX);
    int fd = node_dial(n);
    uint32_t off = 0;
    do {
        uint32_t got = 0, clen = 0;
        assert_int_equal(cs_read(fd, chunk, version, off, PROTO_DATA_MAX, buf,
                                 &got, &clen), 0);
        assert_int_equal(clen, len);
        assert_int_equal(got, len - off < PROTO_DATA_MAX ? len - off
                                                         : PROTO_DATA_MAX);
        assert_memory_equal(buf, model + off, got);
        off += got;
    } while (off < len);
    close(fd);
    free(buf);
}

/* ---- fixtures ---------------------------------------------------------- */

struct trio {
    struct node n[3];
    struct chain_node tail[2];   /* the chain after the head */
};

static int trio_setup(void **state)
{
    struct trio *t = calloc(1, sizeof(*t));
    for (int i = 0; i < 3; i++)
        node_open(&t->n[i], 1u << 20, NULL);
    t->tail[0] = (struct chain_node){ 2, &t->n[1] };
    t->tail[1] = (struct chain_node){ 3, &t->n[2] };
    *state = t;
    return 0;
}

static int trio_teardown(void **state)
{
    struct trio *t = *state;
    for (int i = 0; i < 3; i++)
        node_close(&t->n[i]);
    free(t);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    log_init("test_csd", LOG_ERROR, NULL);
    /* tmpfs when there is one: data directories fsync a lot. */
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(g_dir, sizeof(g_dir), "%s/test_csd.XXXXXX", base);
    assert_non_null(mkdtemp(g_dir));
    snprintf(g_keyfile, sizeof(g_keyfile), "%s/cluster.key", g_dir);
    assert_int_equal(auth_keygen(g_keyfile), 0);
    char err[128];
    assert_int_equal(auth_key_load(g_keyfile, &g_key, err, sizeof(err)), 0);
    return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int group_teardown(void **state)
{
    (void)state;
    auth_key_release(&g_key);
    return nftw(g_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- tests ------------------------------------------------------------- */

static void test_chain_random_writes_reach_every_replica(void **state)
{
    struct trio *t = *state;
    uint64_t seed = test_seed(), s = seed | 1;
    uint8_t *model = calloc(1, CHUNK), *data = malloc(CHUNK);
    uint32_t len = 0;
    uint64_t chunk = 0x1000 + (seed & 0xfff);
    int fd = node_dial(&t->n[0]);
    for (int i = 0; i < 40; i++) {
        uint64_t off = rnd(&s) % CHUNK;
        uint32_t n = (uint32_t)(rnd(&s) % (CHUNK - off) + 1);
        if (i % 4 == 0)
            n = n % 3000 + 1;   /* small writes inside one block too */
        for (uint32_t k = 0; k < n; k++)
            data[k] = (uint8_t)rnd(&s);
        struct write_req q = { .chunk = chunk, .version = 1,
                               .prev_version = 0, .chain = t->tail,
                               .nchain = 2, .offset = off, .data = data,
                               .len = n };
        assert_int_equal(cs_write(fd, &q, NULL), 0);
        memcpy(model + off, data, n);
        if (off + n > len)
            len = (uint32_t)(off + n);
    }
    close(fd);
    for (int i = 0; i < 3; i++)
        check_replica(&t->n[i], chunk, 1, model, len);
    free(model);
    free(data);
}

/* Frames sent back to back before any answer: applied in order. */
static void test_pipelined_writes_apply_in_order(void **state)
{
    struct trio *t = *state;
    enum { K = 12 };
    uint8_t *model = calloc(1, CHUNK);
    uint8_t piece[100000];
    struct wire_writer w;
    wire_writer_init(&w);
    for (int i = 0; i < K; i++) {
        memset(piece, 'a' + i, sizeof(piece));
        uint64_t off = (uint64_t)i * 50000;   /* each overlaps the last */
        struct write_req q = { .chunk = 77, .version = 1, .chain = t->tail,
                               .nchain = 2, .offset = off, .data = piece,
                               .len = sizeof(piece) };
        size_t at = wire_frame_begin(&w);
        put_write(&w, &q);
        struct wire_hdr h = { .type = PROTO_CS_WRITE, .req_id = 100 + i };
        assert_int_equal(wire_frame_end(&w, at, &h), 0);
        memcpy(model + off, piece, sizeof(piece));
    }
    int fd = node_dial(&t->n[0]);
    assert_int_equal(net_write_all(fd, w.buf, w.len, IO_MS), 0);
    wire_writer_release(&w);
    bool seen[K] = { false };
    for (int i = 0; i < K; i++) {
        uint8_t hdr[WIRE_HDR_SIZE];
        struct wire_hdr h;
        assert_int_equal(net_read_full(fd, hdr, sizeof(hdr), IO_MS), 0);
        assert_int_equal(wire_hdr_decode(hdr, sizeof(hdr), 1024, &h), 0);
        assert_int_equal(h.status, 0);
        assert_int_equal(h.payload_len, 0);
        assert_true(h.req_id >= 100 && h.req_id < 100 + K);
        assert_false(seen[h.req_id - 100]);
        seen[h.req_id - 100] = true;
    }
    close(fd);
    uint32_t len = (K - 1) * 50000 + sizeof(piece);
    for (int i = 0; i < 3; i++)
        check_replica(&t->n[i], 77, 1, model, len);
    free(model);
}

static void test_corrupt_request_is_refused_and_written_nowhere(void **state)
{
    struct trio *t = *state;
    uint8_t data[200000];
    memset(data, 0x5a, sizeof(data));
    struct write_req q = { .chunk = 0xbad, .version = 1, .chain = t->tail,
                           .nchain = 2, .offset = 1000, .data = data,
                           .len = sizeof(data), .corrupt = true };
    struct failure f;
    int fd = node_dial(&t->n[0]);
    assert_int_equal(cs_write(fd, &q, &f), -DFS_ECORRUPT);
    assert_string_equal(f.addr, t->n[0].d->self_addr);
    /* The same connection still serves. */
    uint8_t buf[16];
    uint32_t got;
    assert_int_equal(cs_read(fd, 0xbad, 1, 0, 16, buf, &got, NULL), -ENOENT);
    close(fd);
    for (int i = 0; i < 3; i++) {
        uint32_t v;
        uint64_t l;
        assert_int_equal(vols_stat(t->n[i].d->vols, 0xbad, &v, &l), -ENOENT);
    }
}

/* Flips one data byte of the chunk file of node n. */
static void corrupt_on_disk(const struct node *n, uint64_t chunk,
                            uint64_t offset)
{
    char name[CHUNKFILE_NAME_MAX], path[256];
    chunkfile_name(chunk, name);
    snprintf(path, sizeof(path), "%s/%s", n->conf.data_dir, name);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    off_t at = (off_t)(chunkfile_data_off(CHUNK) + offset);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, at), 1);
    b ^= 0x01;
    assert_int_equal(pwrite(fd, &b, 1, at), 1);
    close(fd);
}

static void test_replica_corrupt_on_disk_refuses_reads(void **state)
{
    struct trio *t = *state;
    uint8_t *data = malloc(300000);
    memset(data, 0x33, 300000);
    struct write_req q = { .chunk = 0xc0, .version = 1, .chain = t->tail,
                           .nchain = 2, .data = data, .len = 300000,
                           .flags = PROTO_WRITE_SYNC };
    int fd = node_dial(&t->n[0]);
    assert_int_equal(cs_write(fd, &q, NULL), 0);
    close(fd);
    corrupt_on_disk(&t->n[1], 0xc0, 70000);

    uint8_t *buf = malloc(CHUNK);
    uint32_t got;
    fd = node_dial(&t->n[1]);
    assert_int_equal(cs_read(fd, 0xc0, 1, 0, 300000, buf, &got, NULL),
                     -DFS_ECORRUPT);
    /* Blocks away from the bad one still read. */
    assert_int_equal(cs_read(fd, 0xc0, 1, 200000, 1000, buf, &got, NULL), 0);
    assert_int_equal(got, 1000);
    close(fd);
    check_replica(&t->n[0], 0xc0, 1, data, 300000);
    check_replica(&t->n[2], 0xc0, 1, data, 300000);
    free(buf);
    free(data);
}

/* What PROTO_CS_LOCAL answers. */
struct local_info {
    char name[PROTO_LOCAL_NAME_MAX];
    uint8_t token[PROTO_LOCAL_TOKEN];
    uint32_t pid, uid;
};

/* PROTO_CS_LOCAL on n: 0 with *li filled, or the server's error. */
static int cs_local(const struct node *n, struct local_info *li)
{
    int fd = node_dial(n);
    struct rpc_reply r;
    assert_int_equal(rpc_call_fd(fd, PROTO_CS_LOCAL, NULL, 0, 0, IO_MS, &r), 0);
    close(fd);
    int rc = r.hdr.status;
    if (rc == 0) {
        struct wire_reader rd;
        wire_reader_init(&rd, r.payload, r.len);
        char *s = wire_get_str(&rd, PROTO_LOCAL_NAME_MAX - 1);
        wire_get_raw(&rd, li->token, PROTO_LOCAL_TOKEN);
        li->pid = wire_get_u32(&rd);
        li->uid = wire_get_u32(&rd);
        assert_int_equal(wire_reader_finish(&rd), 0);
        snprintf(li->name, sizeof(li->name), "%s", s);
        free(s);
    }
    rpc_reply_release(&r);
    return rc;
}

/* Reads [off, off + len) through c and compares with the replica's bytes
 * (want, of want_len) followed by zeros. */
static void check_local(const struct dfs_local_chunk *c, const uint8_t *want,
                        size_t want_len, uint64_t off, size_t len)
{
    uint8_t *buf = malloc(len);
    memset(buf, 0xee, len);
    assert_int_equal(dfs_local_read(c, off, buf, len), 0);
    for (size_t i = 0; i < len; i++)
        if (buf[i] != (off + i < want_len ? want[off + i] : 0))
            fail_msg("local read at %" PRIu64 ": byte %zu differs", off, i);
    free(buf);
}

/* Local reads: a client on this host gets a chunk file's descriptor for
 * the token, reads it, and sees every block verified. */
static void test_local_reads(void **state)
{
    struct trio *t = *state;
    enum { LEN = 300000 };
    uint64_t seed = test_seed();
    uint8_t *data = malloc(LEN + 1000);
    for (size_t i = 0; i < LEN + 1000; i++)
        data[i] = (uint8_t)rnd(&seed);
    struct write_req q = { .chunk = 0xd0, .version = 1, .chain = t->tail,
                           .nchain = 2, .data = data, .len = LEN,
                           .flags = PROTO_WRITE_SYNC };
    int fd = node_dial(&t->n[0]);
    assert_int_equal(cs_write(fd, &q, NULL), 0);

    struct local_info li;
    assert_int_equal(cs_local(&t->n[1], &li), 0);
    uint8_t *token = li.token;
    /* The socket's owner is checked before the token goes out. */
    assert_int_equal(li.pid, (uint32_t)getpid());
    assert_int_equal(dfs_local_connect(li.name, li.pid + 1, li.uid), -EPERM);
    assert_int_equal(dfs_local_connect(li.name, li.pid, li.uid + 1), -EPERM);
    int conn = dfs_local_connect(li.name, li.pid, li.uid);
    assert_true(conn >= 0);
    struct dfs_local_chunk *c;
    bool ok;
    assert_int_equal(dfs_local_request(conn, token, 0xd0, 1, &c, &ok), 0);
    assert_true(ok);
    assert_int_equal(c->version, 1);
    assert_int_equal(c->length, LEN);
    /* Whole blocks, block edges, the partial tail, past the length. */
    const uint64_t ranges[][2] = { { 0, LEN }, { 1000, 70000 }, { 65536, 65536 },
                                   { 65535, 2 }, { LEN - 5000, 20000 },
                                   { LEN, 100 }, { 7, 1 } };
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++)
        check_local(c, data, LEN, ranges[i][0], (size_t)ranges[i][1]);
    for (int i = 0; i < 200; i++) {
        uint64_t off = rnd(&seed) % (LEN + 1000);
        check_local(c, data, LEN, off, (size_t)(1 + rnd(&seed) % 140000));
    }

    /* The chunk grows: the open descriptor keeps its length (bytes past
     * it read as zeros), a new one sees the growth. */
    struct write_req more = q;
    more.offset = LEN;
    more.data = data + LEN;
    more.len = 1000;
    assert_int_equal(cs_write(fd, &more, NULL), 0);
    check_local(c, data, LEN, LEN - 100, 1100);
    dfs_local_unref(c);
    assert_int_equal(dfs_local_request(conn, token, 0xd0, 1, &c, &ok), 0);
    assert_int_equal(c->length, LEN + 1000);
    check_local(c, data, LEN + 1000, LEN - 100, 1100);

    /* The tail rewritten in place: the old tail CRC fails, which sends
     * the client to its TCP read rather than to wrong bytes. */
    struct dfs_local_chunk *fresh;
    memset(data + LEN + 500, 0x5a, 100);
    more.offset = LEN + 500;
    more.data = data + LEN + 500;
    more.len = 100;
    assert_int_equal(cs_write(fd, &more, NULL), 0);
    uint8_t tail[600];
    assert_int_equal(dfs_local_read(c, LEN + 400, tail, sizeof(tail)), -DFS_ECORRUPT);
    assert_int_equal(dfs_local_request(conn, token, 0xd0, 1, &fresh, &ok), 0);
    check_local(fresh, data, LEN + 1000, LEN + 400, 600);
    dfs_local_unref(fresh);
    close(fd);

    /* Rot on disk: the block fails, the others still read. */
    corrupt_on_disk(&t->n[1], 0xd0, 70000);
    uint8_t buf[1000];
    assert_int_equal(dfs_local_read(c, 69000, buf, sizeof(buf)), -DFS_ECORRUPT);
    check_local(c, data, LEN + 1000, 140000, 1000);
    dfs_local_unref(c);

    /* A newer version than the replica's, a chunk it lacks. */
    assert_int_equal(dfs_local_request(conn, token, 0xd0, 2, &c, &ok), -DFS_ESTALE_VER);
    assert_true(ok);
    assert_int_equal(dfs_local_request(conn, token, 0xd1, 1, &c, &ok), -ENOENT);
    assert_true(ok);
    /* A wrong token is refused, and the connection closed. */
    token[0] ^= 1;
    assert_int_equal(dfs_local_request(conn, token, 0xd0, 1, &c, &ok), -EACCES);
    token[0] ^= 1;
    assert_true(dfs_local_request(conn, token, 0xd0, 1, &c, &ok) < 0);
    assert_false(ok);
    close(conn);
    /* Another server's token opens nothing here. */
    struct local_info other;
    assert_int_equal(cs_local(&t->n[2], &other), 0);
    assert_string_not_equal(other.name, li.name);
    conn = dfs_local_connect(li.name, li.pid, li.uid);
    assert_int_equal(dfs_local_request(conn, other.token, 0xd0, 1, &c, &ok), -EACCES);
    close(conn);
    /* A malformed packet costs the sender its connection, nothing else. */
    conn = dfs_local_connect(li.name, li.pid, li.uid);
    assert_int_equal(send(conn, "junk", 4, 0), 4);
    assert_int_equal(recv(conn, buf, sizeof(buf), 0), 0);
    close(conn);
    /* Connections that never ask anything cannot keep a reader out: a
     * full table drops the one idle the longest. */
    int idle[70];
    for (int i = 0; i < 70; i++)
        assert_true((idle[i] = dfs_local_connect(li.name, li.pid, li.uid)) >= 0);
    conn = dfs_local_connect(li.name, li.pid, li.uid);
    assert_int_equal(dfs_local_request(conn, token, 0xd0, 1, &c, &ok), 0);
    dfs_local_unref(c);
    assert_int_equal(recv(idle[0], buf, sizeof(buf), 0), 0);
    for (int i = 0; i < 70; i++)
        close(idle[i]);
    close(conn);
    conn = dfs_local_connect(li.name, li.pid, li.uid);
    assert_int_equal(dfs_local_request(conn, token, 0xd0, 1, &c, &ok), 0);
    dfs_local_unref(c);
    close(conn);
    /* Once the server itself has found the replica bad, it hands it to
     * no local reader. */
    uint8_t *big = malloc(CHUNK);
    uint32_t got;
    int rfd = node_dial(&t->n[1]);
    assert_int_equal(cs_read(rfd, 0xd0, 1, 65536, 65536, big, &got, NULL), -DFS_ECORRUPT);
    close(rfd);
    free(big);
    conn = dfs_local_connect(li.name, li.pid, li.uid);
    assert_int_equal(dfs_local_request(conn, token, 0xd0, 1, &c, &ok), -DFS_ECORRUPT);
    assert_true(ok);
    close(conn);
    free(data);
}

static void test_local_reads_off(void **state)
{
    (void)state;
    struct node n;
    const char *const extra[] = { "local_reads=false", NULL };
    node_open(&n, CHUNK, extra);
    struct local_info li;
    assert_int_equal(cs_local(&n, &li), -ENOSYS);
    node_close(&n);
}

static void test_dead_middle_fails_write_naming_it(void **state)
{
    struct trio *t = *state;
    uint8_t data[5000];
    memset(data, 7, sizeof(data));
    struct write_req q = { .chunk = 0xd1, .version = 1, .chain = t->tail,
                           .nchain = 2, .data = data, .len = sizeof(data) };
    int fd = node_dial(&t->n[0]);
    assert_int_equal(cs_write(fd, &q, NULL), 0);   /* the head knows cs2 */

    char middle[PROTO_ADDR_MAX + 1];
    snprintf(middle, sizeof(middle), "%s", t->n[1].d->self_addr);
    node_stop(&t->n[1]);
    struct failure f;
    for (int i = 0; i < 3; i++) {
        q.offset = 5000 * (uint64_t)(i + 1);
        int rc = cs_write(fd, &q, &f);
        assert_true(rc == -EIO || rc == -ECONNREFUSED);
        assert_int_equal(f.cs, 2);
        assert_string_equal(f.addr, middle);
    }
    /* The head and the client are fine: a chain without cs2 works. */
    q.chain = &t->tail[1];
    q.nchain = 1;
    q.offset = 20000;
    assert_int_equal(cs_write(fd, &q, NULL), 0);
    uint8_t buf[64];
    uint32_t got;
    assert_int_equal(cs_read(fd, 0xd1, 1, 20000, 64, buf, &got, NULL), 0);
    assert_memory_equal(buf, data, 64);
    close(fd);
}

static void test_versions_stale_and_bumped(void **state)
{
    struct trio *t = *state;
    uint8_t data[1000], buf[1000];
    uint32_t got;
    memset(data, 1, sizeof(data));
    struct write_req q = { .chunk = 0xe0, .version = 1, .chain = t->tail,
                           .nchain = 2, .data = data, .len = sizeof(data) };
    int fd = node_dial(&t->n[0]);
    assert_int_equal(cs_write(fd, &q, NULL), 0);
    assert_int_equal(cs_read(fd, 0xe0, 2, 0, 10, buf, &got, NULL),
                     -DFS_ESTALE_VER);
    /* A writer that expects version 5 finds 1: stale. */
    q.version = 6;
    q.prev_version = 5;
    struct failure f;
    assert_int_equal(cs_write(fd, &q, &f), -DFS_ESTALE_VER);
    assert_string_equal(f.addr, t->n[0].d->self_addr);
    /* The master's bump 1 -> 2 moves every replica. */
    q.version = 2;
    q.prev_version = 1;
    memset(data, 2, sizeof(data));
    assert_int_equal(cs_write(fd, &q, NULL), 0);
    /* A read names the lowest version it accepts (the committed one). */
    assert_int_equal(cs_read(fd, 0xe0, 3, 0, 10, buf, &got, NULL),
                     -DFS_ESTALE_VER);
    assert_int_equal(cs_read(fd, 0xe0, 1, 0, 10, buf, &got, NULL), 0);
    assert_int_equal(buf[0], 2);
    close(fd);
    for (int i = 0; i < 3; i++)
        check_replica(&t->n[i], 0xe0, 2, data, sizeof(data));
}

static void test_sync_write_and_flush(void **state)
{
    struct trio *t = *state;
    uint8_t data[70000];
    memset(data, 9, sizeof(data));
    struct write_req q = { .chunk = 0xf0, .version = 1, .chain = t->tail,
                           .nchain = 2, .data = data, .len = sizeof(data),
                           .flags = PROTO_WRITE_SYNC };
    int fd = node_dial(&t->n[0]);
    assert_int_equal(cs_write(fd, &q, NULL), 0);
    q.flags = 0;
    q.offset = 70000;
    assert_int_equal(cs_write(fd, &q, NULL), 0);
    /* An empty SYNC write flushes the chain. */
    q.flags = PROTO_WRITE_SYNC;
    q.len = 0;
    assert_int_equal(cs_write(fd, &q, NULL), 0);
    /* TRUNCATE sets the length to the end of the data. */
    q.flags = PROTO_WRITE_TRUNCATE | PROTO_WRITE_SYNC;
    q.offset = 100;
    q.len = 10;
    assert_int_equal(cs_write(fd, &q, NULL), 0);
    close(fd);
    for (int i = 0; i < 3; i++)
        check_replica(&t->n[i], 0xf0, 1, data, 110);
}

static void test_wrong_key_and_bad_requests(void **state)
{
    struct trio *t = *state;
    struct auth_key other;
    memset(other.bytes, 0x42, sizeof(other.bytes));
    int fd = rpc_dial(t->n[0].host, t->n[0].port, &other, IO_MS);
    assert_true(fd < 0);

    fd = node_dial(&t->n[0]);
    struct rpc_reply r;
    /* Unknown type: -ENOSYS, connection stays. */
    assert_int_equal(rpc_call_fd(fd, 0x05ff, "x", 1, 0, IO_MS, &r), 0);
    assert_int_equal(r.hdr.status, -ENOSYS);
    rpc_reply_release(&r);
    /* A read over PROTO_DATA_MAX is refused. */
    uint8_t buf[4];
    uint32_t got;
    assert_int_equal(cs_read(fd, 1, 1, 0, PROTO_DATA_MAX + 1, buf, &got,
                             NULL), -DFS_ETOOBIG);
    /* A malformed CS_WRITE closes the connection. */
    assert_int_equal(rpc_call_fd(fd, PROTO_CS_WRITE, "abc", 3, 0, IO_MS, &r),
                     -DFS_ETRUNC);
    close(fd);
    /* And the server serves the next one. */
    fd = node_dial(&t->n[0]);
    assert_int_equal(cs_read(fd, 1, 1, 0, 4, buf, &got, NULL), -ENOENT);
    close(fd);
}


/* ---- a fake master: blocking, in the test thread ----------------------- */

static int fm_listen(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET,
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

static void fm_read(int fd, struct rpc_reply *f)
{
    uint8_t hdr[WIRE_HDR_SIZE];
    assert_int_equal(net_read_full(fd, hdr, sizeof(hdr), IO_MS), 0);
    assert_int_equal(wire_hdr_decode(hdr, sizeof(hdr), WIRE_MAX_PAYLOAD,
                                     &f->hdr), 0);
    f->len = f->hdr.payload_len;
    f->payload = malloc(f->len + 1);
    assert_int_equal(net_read_full(fd, f->payload, f->len, IO_MS), 0);
}

static void fm_send(int fd, uint16_t type, uint64_t req_id, uint8_t flags,
                    int32_t status, const struct wire_writer *p)
{
    struct wire_writer w;
    wire_writer_init(&w);
    size_t at = wire_frame_begin(&w);
    if (p && p->len)
        wire_put_raw(&w, p->buf, p->len);
    struct wire_hdr h = { .flags = flags, .type = type, .req_id = req_id,
                          .status = status };
    assert_int_equal(wire_frame_end(&w, at, &h), 0);
    assert_int_equal(net_write_all(fd, w.buf, w.len, IO_MS), 0);
    wire_writer_release(&w);
}

/* Answers heartbeats and reports until the reply to order req_id comes;
 * returns it in *f (caller releases). */
static void fm_wait_reply(int fd, uint64_t req_id, int *heartbeats,
                          struct rpc_reply *f)
{
    for (;;) {
        fm_read(fd, f);
        if ((f->hdr.flags & WIRE_F_REPLY) && f->hdr.req_id == req_id)
            return;
        assert_false(f->hdr.flags & WIRE_F_REPLY);
        if (f->hdr.type == PROTO_CS_HEARTBEAT)
            (*heartbeats)++;
        fm_send(fd, f->hdr.type, f->hdr.req_id, WIRE_F_REPLY, 0, NULL);
        rpc_reply_release(f);
    }
}

/* An order over a list of { chunk, version }; checks the statuses. */
static void fm_list_order(int fd, uint16_t type, uint64_t req_id,
                          const uint64_t *ids, const int32_t *want, int n,
                          int *heartbeats)
{
    struct wire_writer w;
    wire_writer_init(&w);
    wire_put_u32(&w, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        wire_put_u64(&w, ids[i]);
        wire_put_u32(&w, type == PROTO_CS_ORDER_DELETE ? 0 : 1);
    }
    fm_send(fd, type, req_id, 0, 0, &w);
    wire_writer_release(&w);
    struct rpc_reply f;
    fm_wait_reply(fd, req_id, heartbeats, &f);
    assert_int_equal(f.hdr.status, 0);
    struct wire_reader r;
    wire_reader_init(&r, f.payload, f.len);
    assert_int_equal(wire_get_u32(&r), (uint32_t)n);
    for (int i = 0; i < n; i++)
        assert_int_equal(wire_get_i32(&r), want[i]);
    assert_int_equal(wire_reader_finish(&r), 0);
    rpc_reply_release(&f);
}

static void fm_register(int fd, const struct node *t)
{
    struct rpc_reply f;
    fm_read(fd, &f);
    assert_int_equal(f.hdr.type, PROTO_CS_REGISTER);
    struct wire_reader r;
    wire_reader_init(&r, f.payload, f.len);
    assert_true(wire_get_u64(&r) == 0);          /* fresh directory */
    assert_int_equal(wire_get_u32(&r), 0);
    char *addr = wire_get_str(&r, PROTO_ADDR_MAX);
    assert_string_equal(addr, t->d->self_addr);
    free(addr);
    free(wire_get_str(&r, PROTO_ADDR_MAX));      /* rack */
    wire_get_u64(&r);
    wire_get_u64(&r);
    assert_int_equal(wire_get_u8(&r), 0);        /* no more */
    assert_int_equal(wire_get_u32(&r), 0);       /* no replica yet */
    assert_int_equal(wire_reader_finish(&r), 0);
    struct wire_writer w;
    wire_writer_init(&w);
    wire_put_u32(&w, 7);
    wire_put_u64(&w, 0xabcdef);
    wire_put_u32(&w, 20);
    wire_put_u64(&w, 4u << 20);                  /* the cluster's chunk size */
    fm_send(fd, PROTO_CS_REGISTER, f.hdr.req_id, WIRE_F_REPLY, 0, &w);
    wire_writer_release(&w);
    rpc_reply_release(&f);
}

static void test_master_link_register_heartbeat_orders(void **state)
{
    (void)state;
    uint16_t port;
    int lfd = fm_listen(&port);
    struct node src, t;
    node_open(&src, 4u << 20, NULL);
    char opt[64];
    snprintf(opt, sizeof(opt), "masters=127.0.0.1:%u", port);
    const char *extra[] = { opt, "replicate_rate=64M", NULL };
    node_open(&t, 1u << 20, extra);

    /* A chunk of 2.5 pieces on the source. */
    uint32_t len = 2 * PROTO_DATA_MAX / 2 + 300000;
    uint8_t *data = malloc(len);
    uint64_t s = 12345;
    for (uint32_t i = 0; i < len; i++)
        data[i] = (uint8_t)rnd(&s);
    int cfd = node_dial(&src);
    struct write_req q = { .chunk = 0x42, .version = 1, .data = data,
                           .len = PROTO_DATA_MAX };
    assert_int_equal(cs_write(cfd, &q, NULL), 0);
    q.offset = PROTO_DATA_MAX;
    q.data = data + PROTO_DATA_MAX;
    q.len = len - PROTO_DATA_MAX;
    assert_int_equal(cs_write(cfd, &q, NULL), 0);
    close(cfd);

    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(auth_handshake_fd(fd, &g_key, AUTH_SERVER, IO_MS, NULL),
                     0);
    fm_register(fd, &t);
    int heartbeats = 0;

    /* REPLICATE from a dead source, then the real one. */
    char dead[64];
    snprintf(dead, sizeof(dead), "127.0.0.1:%u", port == 1 ? 2 : 1);
    struct wire_writer w;
    wire_writer_init(&w);
    wire_put_u64(&w, 0x42);
    wire_put_u32(&w, 1);
    wire_put_u32(&w, len);
    wire_put_u32(&w, 2);
    wire_put_u32(&w, 9);
    wire_put_str(&w, dead);
    wire_put_u32(&w, 1);
    wire_put_str(&w, src.d->self_addr);
    fm_send(fd, PROTO_CS_ORDER_REPLICATE, 1, 0, 0, &w);
    wire_writer_release(&w);
    struct rpc_reply f;
    fm_wait_reply(fd, 1, &heartbeats, &f);
    assert_int_equal(f.hdr.status, 0);
    assert_int_equal(f.len, 4);
    uint32_t got_len;
    memcpy(&got_len, f.payload, 4);
    assert_int_equal(le32toh(got_len), len);
    rpc_reply_release(&f);
    check_replica(&t, 0x42, 1, data, len);
    assert_int_equal(vols_server_id(t.d->vols), 7);
    assert_true(vols_cluster_id(t.d->vols) == 0xabcdef);

    /* VERIFY: good, absent; then a corrupted one. */
    uint64_t ids[2] = { 0x42, 0x43 };
    int32_t want[2] = { 0, -ENOENT };
    fm_list_order(fd, PROTO_CS_ORDER_VERIFY, 2, ids, want, 2, &heartbeats);
    corrupt_on_disk(&t, 0x42, 5);
    want[0] = -DFS_ECORRUPT;
    fm_list_order(fd, PROTO_CS_ORDER_VERIFY, 3, ids, want, 2, &heartbeats);
    /* The corrupt chunk is reported with the next heartbeat. */
    bool reported = false;
    while (!reported) {
        fm_read(fd, &f);
        if (f.hdr.type == PROTO_CS_CHUNK_REPORT) {
            struct wire_reader r;
            wire_reader_init(&r, f.payload, f.len);
            assert_int_equal(wire_get_u32(&r), 7);
            assert_int_equal(wire_get_u8(&r), PROTO_REPORT_CHANGED);
            assert_int_equal(wire_get_u8(&r), 0);
            assert_int_equal(wire_get_u32(&r), 1);
            assert_true(wire_get_u64(&r) == 0x42);
            wire_get_u32(&r);
            wire_get_u32(&r);
            assert_int_equal(wire_get_u8(&r), PROTO_REPLICA_CORRUPT);
            reported = true;
        }
        if (f.hdr.type == PROTO_CS_HEARTBEAT)
            heartbeats++;
        fm_send(fd, f.hdr.type, f.hdr.req_id, WIRE_F_REPLY, 0, NULL);
        rpc_reply_release(&f);
    }
    /* DELETE (any version). */
    want[0] = 0;
    fm_list_order(fd, PROTO_CS_ORDER_DELETE, 4, ids, want, 2, &heartbeats);
    uint32_t v;
    uint64_t l;
    assert_int_equal(vols_stat(t.d->vols, 0x42, &v, &l), -ENOENT);
    assert_true(heartbeats > 0);
    assert_true(atomic_load(&t.d->stats.registered) == 1);

    close(fd);
    node_close(&t);
    node_close(&src);
    close(lfd);
    free(data);
}

/* The scrubber finds a chunk corrupted behind the store's back. */
static void test_scrubber_finds_corrupt_chunk(void **state)
{
    (void)state;
    struct node n;
    const char *extra[] = { "scrub_rate=1G", "scrub_pause=10ms", NULL };
    node_open(&n, 1u << 20, extra);
    uint8_t data[100000];
    memset(data, 0x11, sizeof(data));
    int fd = node_dial(&n);
    for (uint64_t id = 1; id <= 3; id++) {
        struct write_req q = { .chunk = id, .version = 1, .data = data,
                               .len = sizeof(data),
                               .flags = PROTO_WRITE_SYNC };
        assert_int_equal(cs_write(fd, &q, NULL), 0);
    }
    close(fd);
    corrupt_on_disk(&n, 2, 99999);
    /* Waits for the outcome, not for a time: the scrubber runs passes
     * every few ms; the bound only keeps a broken scrubber from hanging. */
    for (int i = 0; i < 3000 && atomic_load(&n.d->stats.scrub_bad) == 0; i++)
        usleep(10000);
    assert_true(atomic_load(&n.d->stats.scrub_bad) >= 1);
    uint64_t *ids;
    size_t nbad;
    vols_take_bad(n.d->vols, &ids, &nbad);
    assert_int_equal(nbad, 1);
    assert_true(ids[0] == 2);
    free(ids);
    node_close(&n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_chain_random_writes_reach_every_replica, trio_setup,
            trio_teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_writes_apply_in_order,
                                        trio_setup, trio_teardown),
        cmocka_unit_test_setup_teardown(
            test_corrupt_request_is_refused_and_written_nowhere, trio_setup,
            trio_teardown),
        cmocka_unit_test_setup_teardown(
            test_replica_corrupt_on_disk_refuses_reads, trio_setup,
            trio_teardown),
        cmocka_unit_test_setup_teardown(test_dead_middle_fails_write_naming_it,
                                        trio_setup, trio_teardown),
        cmocka_unit_test_setup_teardown(test_versions_stale_and_bumped,
                                        trio_setup, trio_teardown),
        cmocka_unit_test_setup_teardown(test_sync_write_and_flush, trio_setup,
                                        trio_teardown),
        cmocka_unit_test_setup_teardown(test_wrong_key_and_bad_requests,
                                        trio_setup, trio_teardown),
        cmocka_unit_test_setup_teardown(test_local_reads, trio_setup,
                                        trio_teardown),
        cmocka_unit_test(test_local_reads_off),
        cmocka_unit_test(test_master_link_register_heartbeat_orders),
        cmocka_unit_test(test_scrubber_finds_corrupt_chunk),
    };
    return cmocka_run_group_tests_name("csd", tests, group_setup,
                                       group_teardown);
}
