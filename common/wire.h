/*
 * wire: the dfs frame format and the bounds-checked codec every message
 * goes through (DESIGN §3.1, STYLE §12).  Message ids and payload layouts
 * live in common/protocol.h; docs/PROTOCOL.md describes both.
 *
 * Encoding: integers are fixed-width little-endian; "bytes" and "str" are
 * a u32 length then that many bytes (str: no NUL on the wire).
 *
 * A frame is a WIRE_HDR_SIZE-byte header then payload_len payload bytes:
 *
 *   off size field
 *     0   4  magic        WIRE_MAGIC, the bytes "DFSW"
 *     4   1  version      PROTO_VERSION
 *     5   1  flags        WIRE_F_*; unknown bits are sent 0, ignored
 *     6   2  type         message id (protocol.h)
 *     8   8  req_id       chosen by the requester, echoed by the reply
 *    16   4  payload_len  bytes after the header
 *    20   4  status       i32: 0, or a negative dfs error on a reply
 *    24   4  hdr_crc      crc32c of bytes 0..23
 *
 * Errors use the dfs error space (common/dfs_error.h).  Reader and writer
 * errors are sticky: after the first failure every later call is a no-op
 * returning zero / NULL, so a decoder checks the error once at the end.
 */
#ifndef DFS_WIRE_H
#define DFS_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define WIRE_MAGIC        0x57534644u   /* "DFSW" little-endian */
#define WIRE_HDR_SIZE     28
#define WIRE_MAX_PAYLOAD  (16u << 20)
#define WIRE_MAX_FRAME    (WIRE_HDR_SIZE + WIRE_MAX_PAYLOAD)

#define WIRE_F_REPLY      0x01          /* answers the request req_id */

/* ---- reading ---------------------------------------------------------- */

/*
 * A cursor over a borrowed buffer (the caller keeps it alive and unchanged
 * while the reader and any pointer it returned are in use).
 * err: 0, or the first failure (negative), sticky.
 */
struct wire_reader {
    const uint8_t *p;
    size_t left;
    int err;
};

void wire_reader_init(struct wire_reader *r, const void *buf, size_t len);

/* Each getter consumes its bytes; when fewer remain it sets -DFS_ETRUNC,
 * consumes nothing and returns 0.  Little-endian. */
uint8_t  wire_get_u8(struct wire_reader *r);
uint16_t wire_get_u16(struct wire_reader *r);
uint32_t wire_get_u32(struct wire_reader *r);
uint64_t wire_get_u64(struct wire_reader *r);
int32_t  wire_get_i32(struct wire_reader *r);
int64_t  wire_get_i64(struct wire_reader *r);

/* Exactly n bytes into dst; on error dst is zero-filled. */
void wire_get_raw(struct wire_reader *r, void *dst, size_t n);

/*
 * A u32 length then that many bytes.  *out borrows from the reader's
 * buffer (valid as long as that buffer).  A length over max sets
 * -DFS_ETOOBIG, a length past the end -DFS_ETRUNC.  Returns the length;
 * on error 0 with *out = NULL.  On success with length 0, *out points
 * into the buffer (never dereference it).
 */
size_t wire_get_bytes(struct wire_reader *r, const uint8_t **out, size_t max);

/*
 * The same, copied into a NUL-terminated malloc'ed string the caller
 * frees.  An embedded NUL is -EINVAL, no memory -ENOMEM; on any error
 * returns NULL.
 */
char *wire_get_str(struct wire_reader *r, size_t max);

/*
 * The verdict on a whole message: r->err if set, -EBADMSG if bytes are
 * left over (a message is exactly its fields), else 0.
 */
int wire_reader_finish(const struct wire_reader *r);

/* ---- writing ---------------------------------------------------------- */

/*
 * A growable buffer.  buf is owned by the writer (NULL until the first
 * byte); len bytes are valid, cap allocated.  err: 0, -ENOMEM, or
 * -DFS_ETOOBIG for a byte string over UINT32_MAX; sticky.  After an error
 * the contents are unspecified and only release / detach are useful.
 */
struct wire_writer {
    uint8_t *buf;
    size_t len, cap;
    int err;
};

void wire_writer_init(struct wire_writer *w);
void wire_put_u8(struct wire_writer *w, uint8_t v);
void wire_put_u16(struct wire_writer *w, uint16_t v);
void wire_put_u32(struct wire_writer *w, uint32_t v);
void wire_put_u64(struct wire_writer *w, uint64_t v);
void wire_put_i32(struct wire_writer *w, int32_t v);
void wire_put_i64(struct wire_writer *w, int64_t v);
void wire_put_raw(struct wire_writer *w, const void *p, size_t n);

/* u32 length + bytes.  n over UINT32_MAX sets -DFS_ETOOBIG. */
void wire_put_bytes(struct wire_writer *w, const void *p, size_t n);
/* s (not NULL) as bytes, without its NUL. */
void wire_put_str(struct wire_writer *w, const char *s);

/*
 * Appends n bytes for the caller to fill in place and returns them; NULL
 * on error.  The pointer is valid until the next call on w.
 */
uint8_t *wire_writer_reserve(struct wire_writer *w, size_t n);

/* Frees buf; w is left as after wire_writer_init(). */
void wire_writer_release(struct wire_writer *w);

/*
 * Hands buf to the caller (who frees it; NULL if nothing was written) and
 * resets w to empty.  *len gets the byte count.  After an error returns
 * NULL with *len = 0, having freed the buffer.
 */
uint8_t *wire_writer_detach(struct wire_writer *w, size_t *len);

/* ---- frames ----------------------------------------------------------- */

/* The variable fields of a frame header (magic, version and CRC are the
 * codec's business). */
struct wire_hdr {
    uint8_t flags;
    uint16_t type;
    uint64_t req_id;
    uint32_t payload_len;
    int32_t status;
};

void wire_hdr_encode(const struct wire_hdr *h, uint8_t out[WIRE_HDR_SIZE]);

/*
 * Decodes the header at in[0..len), checking in this order: enough bytes
 * (-DFS_ETRUNC: wait for more), magic (-DFS_EMAGIC), version
 * (-DFS_EVERSION), header CRC (-DFS_EHDRCRC), payload_len over max_payload
 * (-DFS_ETOOBIG), status (-EBADMSG when positive).  A negative status that
 * names no known error arrives as -EPROTO.  Returns 0 and fills *out.
 */
int wire_hdr_decode(const uint8_t *in, size_t len, uint32_t max_payload,
                    struct wire_hdr *out);

/*
 * Building a frame in a writer, possibly after other frames:
 *     size_t at = wire_frame_begin(w);
 *     wire_put_...(w, ...);            the payload
 *     rc = wire_frame_end(w, at, &h);
 * begin reserves the header and returns its offset; end sets
 * h->payload_len to the bytes appended since, then writes the header in
 * place.  end returns 0, w->err, or -DFS_ETOOBIG when the payload is over
 * WIRE_MAX_PAYLOAD, in which case the frame is dropped (w->len = at) and w
 * stays usable.
 */
size_t wire_frame_begin(struct wire_writer *w);
int wire_frame_end(struct wire_writer *w, size_t at, struct wire_hdr *h);

/* One frame found at the start of a receive buffer. */
struct wire_frame {
    struct wire_hdr hdr;
    const uint8_t *payload;   /* borrows from the buffer given */
    size_t span;              /* bytes the frame occupies: header + payload */
};

/*
 * The streaming splitter for a connection's receive buffer buf[0..len).
 * Returns 1 when a whole frame is there (f filled; consume f->span bytes),
 * 0 when more bytes are needed (f->span is then the size of the whole
 * frame once its header has arrived, else WIRE_HDR_SIZE: read at least up
 * to it), or a negative error from wire_hdr_decode (the stream is broken:
 * close the connection).  A partial header whose first bytes already
 * differ from the magic is -DFS_EMAGIC at once, so a peer speaking
 * something else is not waited for.
 */
int wire_frame_split(const uint8_t *buf, size_t len, uint32_t max_payload,
                     struct wire_frame *f);

/* ---- data blocks ------------------------------------------------------ */

/*
 * The data section of bulk frames (protocol.h, PROTO_BLOCK_SIZE):
 *     offset u64, length u32, nblocks u32, crc u32[nblocks], data[length]
 * Blocks follow the chunk's grid of PROTO_BLOCK_SIZE bytes: block i covers
 * the part of data inside grid cell (offset / B + i), so the first and last
 * may be partial; nblocks is exactly the number of cells data touches.
 * crcs and data borrow from the reader's buffer.
 */
struct wire_blocks {
    uint64_t offset;
    uint32_t length;
    uint32_t nblocks;
    const uint8_t *crcs;      /* nblocks little-endian u32 */
    const uint8_t *data;
};

/* Appends a data section for data[0..len) at chunk offset, computing the
 * block CRCs.  len over UINT32_MAX sets -DFS_ETOOBIG. */
void wire_put_blocks(struct wire_writer *w, uint64_t offset, const void *data,
                     size_t len);
/* The same section without its data: data[0..len) must follow it on the
 * wire (sent from where it lies instead of copied in). */
void wire_put_blocks_head(struct wire_writer *w, uint64_t offset, const void *data,
                          size_t len);

/*
 * Reads a data section.  A length over max_len is -DFS_ETOOBIG, an nblocks
 * that does not match offset and length -EBADMSG, offset + length past
 * 2^64 -EBADMSG.  Returns 0 or the error (also left in r->err).  CRCs are
 * not checked here: see wire_verify_blocks().
 */
int wire_get_blocks(struct wire_reader *r, struct wire_blocks *b,
                    uint32_t max_len);

/* The CRC of block i < b->nblocks as sent. */
uint32_t wire_blocks_crc(const struct wire_blocks *b, uint32_t i);

/* 0 when every block matches its CRC, else -DFS_ECORRUPT with the first
 * bad block's index in *bad (bad may be NULL). */
int wire_verify_blocks(const struct wire_blocks *b, uint32_t *bad);

#endif
