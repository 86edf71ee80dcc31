/* model_file.c - reading and writing nstm model files (model_file.h; the byte layout is
 * in docs/model-format.md). Every integer and float is encoded byte by byte,
 * little-endian, so nothing depends on the host's byte order or struct layout.
 *
 * Loading checks, in this order: magic, version (a newer one may have another layout,
 * so nothing after it is trusted), the file size the header declares, the checksum,
 * then every record. Each check that guards an allocation runs before it. */
#include "net/model_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"

_Static_assert(sizeof(float) == 4, "nstm stores IEEE-754 binary32 floats");

/* ------------------------------------------------------------------------- */
/* CRC-32 and little-endian encoding                                         */
/* ------------------------------------------------------------------------- */

/* The reflected polynomial 0xEDB88320 applied to each 4-bit value: a table of 16
 * instead of 256 keeps the code small at a speed (~0.5 GB/s) far beyond what a model
 * needs. */
static const uint32_t CRC_NIBBLE[16] = {
    0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac, 0x76dc4190, 0x6b6b51f4, 0x4db26158, 0x5005713c,
    0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c, 0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c,
};

uint32_t nstm_crc32(uint32_t crc, const void *data, size_t n) {
    const unsigned char *p = data;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ CRC_NIBBLE[crc & 15];
        crc = (crc >> 4) ^ CRC_NIBBLE[crc & 15];
    }
    return ~crc;
}

static uint32_t get_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const unsigned char *p) {
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static void put_u32_at(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static void put_u64_at(unsigned char *p, uint64_t v) {
    put_u32_at(p, (uint32_t)v);
    put_u32_at(p + 4, (uint32_t)(v >> 32));
}

/* Floats travel as their bit patterns, so -0.0, denormals and every payload survive
 * unchanged, and the finiteness test below needs no floating-point arithmetic. */
static int bits_finite(uint32_t u) { return (u & 0x7f800000u) != 0x7f800000u; }

/* ------------------------------------------------------------------------- */
/* Checks shared by the loader, the builders and the writer                  */
/* ------------------------------------------------------------------------- */

static int good_name(const unsigned char *s, size_t len) {
    if (len < 1 || len > NSTM_MAX_NAME) return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] < 0x21 || s[i] > 0x7e) return 0;
    return 1;
}

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
 * NUL is refused too: values are handed out as C strings. */
static int good_utf8(const unsigned char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c == 0) return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t more;
        unsigned lo = 0x80, hi = 0xbf; /* allowed range of the first continuation byte */
        if (c >= 0xc2 && c <= 0xdf) {
            more = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            more = 2;
            if (c == 0xe0) lo = 0xa0; /* overlong */
            if (c == 0xed) hi = 0x9f; /* surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
            more = 3;
            if (c == 0xf0) lo = 0x90; /* overlong */
            if (c == 0xf4) hi = 0x8f; /* above U+10FFFF */
        } else {
            return 0;
        }
        if (len - i - 1 < more || s[i + 1] < lo || s[i + 1] > hi) return 0;
        for (size_t k = 2; k <= more; k++)
            if ((s[i + k] & 0xc0) != 0x80) return 0;
        i += more + 1;
    }
    return 1;
}

/* A caller's string made fit for a one-line message: control characters become '?'
 * and a long one is cut. */
static const char *printable(const char *s, char *buf, size_t len) {
    size_t i = 0;
    if (!s) s = "(null)";
    for (; s[i] && i + 1 < len; i++) buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    buf[i] = '\0';
    return buf;
}

/* "3x3x32x64" */
static const char *shape_text(int ndim, const int64_t *dims, char *buf, size_t len) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < ndim && used < len; i++) {
        int n = snprintf(buf + used, len - used, "%s%lld", i ? "x" : "", (long long)dims[i]);
        if (n < 0) break;
        used += (size_t)n;
    }
    return buf;
}

/* Checks a shape and gives its element count. bad: the status for a malformed shape
 * (NST_ERR_FORMAT in a file, NST_ERR_ARG from a caller). The product cannot overflow:
 * before each multiplication the count is at most NSTM_MAX_ELEMENTS (2^26) and a
 * dimension below 2^32, so it stays below 2^58. */
static nst_status check_shape(const char *where, const char *name, int ndim, const int64_t *dims, size_t *count,
                              nst_status bad, nst_error *err) {
    char shape[128];
    if (ndim < 1 || ndim > NSTM_MAX_DIMS)
        return nst_fail(err, bad, "%s: tensor '%s' has %d dimensions (1 to %d allowed)", where, name, ndim,
                        NSTM_MAX_DIMS);
    uint64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 1 || dims[i] > (int64_t)UINT32_MAX)
            return nst_fail(err, bad, "%s: tensor '%s' has the shape %s (each dimension must be at least 1)",
                            where, name, shape_text(ndim, dims, shape, sizeof shape));
        n *= (uint64_t)dims[i];
        if (n > NSTM_MAX_ELEMENTS)
            return nst_fail(err, NST_ERR_LIMIT, "%s: tensor '%s' of shape %s has more than the limit of %zu elements",
                            where, name, shape_text(ndim, dims, shape, sizeof shape), NSTM_MAX_ELEMENTS);
    }
    *count = (size_t)n;
    return NST_OK;
}

/* Index of the entry called name among the first n, or -1. */
static int int_index(const nstm_model *m, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(m->ints[i].name, name) == 0) return i;
    return -1;
}

static int string_index(const nstm_model *m, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(m->strings[i].name, name) == 0) return i;
    return -1;
}

static int tensor_index(const nstm_model *m, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return i;
    return -1;
}

/* ------------------------------------------------------------------------- */
/* Loading                                                                   */
/* ------------------------------------------------------------------------- */

/* The records between the header and the trailer, read front to back. */
typedef struct {
    const unsigned char *p;
    size_t pos, end;
    const char *file;
} reader;

static int has(const reader *r, size_t n) { return r->end - r->pos >= n; }

static nst_status overrun(const reader *r, const char *kind, int index, nst_error *err) {
    return nst_fail(err, NST_ERR_FORMAT, "%s: %s #%d runs past the end of the records at byte %zu (file corrupt)",
                    r->file, kind, index + 1, r->pos);
}

/* A name: one length byte, then the bytes. */
static nst_status read_name(reader *r, const char *kind, int index, char out[64], nst_error *err) {
    if (!has(r, 1)) return overrun(r, kind, index, err);
    size_t len = r->p[r->pos];
    if (!has(r, 1 + len)) return overrun(r, kind, index, err);
    if (!good_name(r->p + r->pos + 1, len))
        return nst_fail(err, NST_ERR_FORMAT,
                        "%s: %s #%d has a bad name (1 to %d printable ASCII characters without spaces)", r->file,
                        kind, index + 1, NSTM_MAX_NAME);
    memcpy(out, r->p + r->pos + 1, len);
    out[len] = '\0';
    r->pos += 1 + len;
    return NST_OK;
}

static nst_status parse_records(nstm_model *m, reader *r, nst_error *err) {
    nst_status s;
    for (int i = 0; i < m->n_ints; i++) {
        nstm_int *e = &m->ints[i];
        if ((s = read_name(r, "int", i, e->name, err)) != NST_OK) return s;
        if (int_index(m, i, e->name) >= 0)
            return nst_fail(err, NST_ERR_FORMAT, "%s: duplicate int name '%s'", r->file, e->name);
        if (!has(r, 4)) return overrun(r, "int", i, err);
        uint32_t u = get_u32(r->p + r->pos);
        /* two's complement by arithmetic: casting a value above INT32_MAX is implementation-defined */
        e->value = u <= INT32_MAX ? (int32_t)u : (int32_t)(u - 0x80000000u) - INT32_MAX - 1;
        r->pos += 4;
    }
    for (int i = 0; i < m->n_strings; i++) {
        nstm_string *e = &m->strings[i];
        if ((s = read_name(r, "string", i, e->name, err)) != NST_OK) return s;
        if (string_index(m, i, e->name) >= 0)
            return nst_fail(err, NST_ERR_FORMAT, "%s: duplicate string name '%s'", r->file, e->name);
        if (!has(r, 4)) return overrun(r, "string", i, err);
        uint32_t len = get_u32(r->p + r->pos);
        r->pos += 4;
        if (len > NSTM_MAX_STRING)
            return nst_fail(err, NST_ERR_LIMIT, "%s: string '%s' is %lu bytes, more than the limit of %d", r->file,
                            e->name, (unsigned long)len, NSTM_MAX_STRING);
        if (!has(r, len)) return overrun(r, "string", i, err);
        if (!good_utf8(r->p + r->pos, len))
            return nst_fail(err, NST_ERR_FORMAT, "%s: string '%s' is not valid UTF-8 (or holds a NUL byte)", r->file,
                            e->name);
        e->value = malloc((size_t)len + 1);
        if (!e->value) return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", r->file);
        memcpy(e->value, r->p + r->pos, len);
        e->value[len] = '\0';
        r->pos += len;
    }
    size_t total = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        nstm_tensor *t = &m->tensors[i];
        if ((s = read_name(r, "tensor", i, t->name, err)) != NST_OK) return s;
        if (tensor_index(m, i, t->name) >= 0)
            return nst_fail(err, NST_ERR_FORMAT, "%s: duplicate tensor name '%s'", r->file, t->name);
        if (!has(r, 1)) return overrun(r, "tensor", i, err);
        int ndim = r->p[r->pos++];
        int64_t dims[NSTM_MAX_DIMS];
        if (ndim >= 1 && ndim <= NSTM_MAX_DIMS) {
            if (!has(r, 4 * (size_t)ndim)) return overrun(r, "tensor", i, err);
            for (int d = 0; d < ndim; d++) dims[d] = get_u32(r->p + r->pos + 4 * (size_t)d);
            r->pos += 4 * (size_t)ndim;
        }
        size_t count;
        if ((s = check_shape(r->file, t->name, ndim, dims, &count, NST_ERR_FORMAT, err)) != NST_OK) return s;
        if (count > NSTM_MAX_ELEMENTS - total)
            return nst_fail(err, NST_ERR_LIMIT, "%s: the tensors hold more than the limit of %zu floats in all",
                            r->file, NSTM_MAX_ELEMENTS);
        total += count;
        /* the data must be in the file before anything is allocated for it */
        if (!has(r, 4 * count)) return overrun(r, "tensor", i, err);
        t->data = nst_alloc_array(count, sizeof(float));
        if (!t->data) return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory for tensor '%s'", r->file, t->name);
        t->ndim = ndim;
        for (int d = 0; d < ndim; d++) t->dims[d] = (int)dims[d];
        t->count = count;
        const unsigned char *q = r->p + r->pos;
        for (size_t k = 0; k < count; k++) {
            uint32_t u = get_u32(q + 4 * k);
            if (!bits_finite(u))
                return nst_fail(err, NST_ERR_FORMAT, "%s: tensor '%s' holds a non-finite value (element %zu)",
                                r->file, t->name, k);
            memcpy(&t->data[k], &u, 4);
        }
        r->pos += 4 * count;
    }
    if (r->pos != r->end)
        return nst_fail(err, NST_ERR_FORMAT, "%s: the records end at byte %zu, the checksum is at byte %zu (file corrupt)",
                        r->file, r->pos, r->end);
    return NST_OK;
}

nst_status nstm_load_memory(nstm_model *m, const void *data, size_t size, const char *file, nst_error *err) {
    memset(m, 0, sizeof *m);
    const unsigned char *p = data;
    const size_t min_size = NSTM_HEADER_BYTES + NSTM_TRAILER_BYTES;
    if (!file) file = "(model)";
    if (size == 0) return nst_fail(err, NST_ERR_FORMAT, "%s: empty file (not an nst model)", file);
    if (size > NSTM_MAX_FILE_BYTES)
        return nst_fail(err, NST_ERR_LIMIT, "%s: file is %zu bytes, more than a model can be (%zu)", file, size,
                        (size_t)NSTM_MAX_FILE_BYTES);
    /* a file cut inside the magic is still recognised, and called truncated */
    if (memcmp(p, NSTM_MAGIC, size < 8 ? size : 8) != 0)
        return nst_fail(err, NST_ERR_FORMAT, "%s: not an nst model file (bad magic)", file);
    if (size < 12)
        return nst_fail(err, NST_ERR_FORMAT, "%s: truncated (file is %zu bytes, a model has at least %zu)", file,
                        size, min_size);
    uint32_t version = get_u32(p + 8);
    if (version == 0)
        return nst_fail(err, NST_ERR_FORMAT, "%s: format version 0 does not exist (file corrupt)", file);
    if (version > NSTM_FORMAT_VERSION)
        return nst_fail(err, NST_ERR_FORMAT, "%s: format version %lu is newer than this nst supports (%u)", file,
                        (unsigned long)version, NSTM_FORMAT_VERSION);
    if (size < min_size)
        return nst_fail(err, NST_ERR_FORMAT, "%s: truncated (file is %zu bytes, a model has at least %zu)", file,
                        size, min_size);
    uint64_t declared = get_u64(p + 12);
    if (declared > size)
        return nst_fail(err, NST_ERR_FORMAT, "%s: truncated (file is %zu bytes, header says %llu)", file, size,
                        (unsigned long long)declared);
    if (declared < size)
        return nst_fail(err, NST_ERR_FORMAT, "%s: trailing garbage (file is %zu bytes, header says %llu)", file,
                        size, (unsigned long long)declared);
    if (nstm_crc32(0, p, size - NSTM_TRAILER_BYTES) != get_u32(p + size - NSTM_TRAILER_BYTES))
        return nst_fail(err, NST_ERR_FORMAT, "%s: checksum mismatch (file corrupt)", file);

    static const char *const KIND[3] = {"ints", "strings", "tensors"};
    uint32_t n[3];
    for (int k = 0; k < 3; k++) {
        n[k] = get_u32(p + 20 + 4 * k);
        if (n[k] > NSTM_MAX_ENTRIES)
            return nst_fail(err, NST_ERR_LIMIT, "%s: %lu %s, more than the limit of %d", file, (unsigned long)n[k],
                            KIND[k], NSTM_MAX_ENTRIES);
    }
    m->ints = nst_calloc_array(n[0], sizeof *m->ints);
    m->strings = nst_calloc_array(n[1], sizeof *m->strings);
    m->tensors = nst_calloc_array(n[2], sizeof *m->tensors);
    if (!m->ints || !m->strings || !m->tensors) {
        nstm_free(m);
        return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", file);
    }
    /* the counts are set first so that nstm_free() releases a half-parsed model */
    m->n_ints = (int)n[0];
    m->n_strings = (int)n[1];
    m->n_tensors = (int)n[2];
    m->version = version;
    reader r = {p, NSTM_HEADER_BYTES, size - NSTM_TRAILER_BYTES, file};
    nst_status s = parse_records(m, &r, err);
    if (s != NST_OK) nstm_free(m);
    return s;
}

nst_status nstm_load(nstm_model *m, const char *path, const nst_limits *lim, nst_error *err) {
    memset(m, 0, sizeof *m);
    unsigned char *buf = NULL;
    size_t size = 0;
    nst_status s = nst_read_input_file(path, NSTM_MAX_FILE_BYTES, lim, &buf, &size, err);
    if (s != NST_OK) return s;
    s = nstm_load_memory(m, buf, size, path, err);
    free(buf);
    return s;
}

void nstm_free(nstm_model *m) {
    if (!m) return;
    for (int i = 0; m->strings && i < m->n_strings; i++) free(m->strings[i].value);
    for (int i = 0; m->tensors && i < m->n_tensors; i++) free(m->tensors[i].data);
    free(m->ints);
    free(m->strings);
    free(m->tensors);
    memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------------------- */
/* Saving                                                                    */
/* ------------------------------------------------------------------------- */

/* Checks that m holds only what a file can (what the loader would accept) and gives the
 * file's size. Models filled by hand, not by the builders, are checked here too. */
static nst_status check_model(const nstm_model *m, const char *where, size_t *size, nst_error *err) {
    nst_status s;
    if (m->n_ints < 0 || m->n_strings < 0 || m->n_tensors < 0 || m->n_ints > NSTM_MAX_ENTRIES ||
        m->n_strings > NSTM_MAX_ENTRIES || m->n_tensors > NSTM_MAX_ENTRIES)
        return nst_fail(err, NST_ERR_LIMIT, "%s: %d ints, %d strings and %d tensors (each 0 to %d allowed)", where,
                        m->n_ints, m->n_strings, m->n_tensors, NSTM_MAX_ENTRIES);
    if ((m->n_ints && !m->ints) || (m->n_strings && !m->strings) || (m->n_tensors && !m->tensors))
        return nst_fail(err, NST_ERR_ARG, "%s: model without its entries", where);
    size_t total = NSTM_HEADER_BYTES + NSTM_TRAILER_BYTES, floats = 0;
    for (int i = 0; i < m->n_ints; i++) {
        const char *name = m->ints[i].name;
        size_t len = strnlen(name, sizeof m->ints[i].name);
        if (len == sizeof m->ints[i].name || !good_name((const unsigned char *)name, len))
            return nst_fail(err, NST_ERR_ARG, "%s: int #%d has a bad name", where, i + 1);
        if (int_index(m, i, name) >= 0)
            return nst_fail(err, NST_ERR_ARG, "%s: duplicate int name '%s'", where, name);
        total += 1 + len + 4;
    }
    for (int i = 0; i < m->n_strings; i++) {
        const char *name = m->strings[i].name, *v = m->strings[i].value;
        size_t len = strnlen(name, sizeof m->strings[i].name);
        if (len == sizeof m->strings[i].name || !good_name((const unsigned char *)name, len))
            return nst_fail(err, NST_ERR_ARG, "%s: string #%d has a bad name", where, i + 1);
        if (string_index(m, i, name) >= 0)
            return nst_fail(err, NST_ERR_ARG, "%s: duplicate string name '%s'", where, name);
        if (!v) return nst_fail(err, NST_ERR_ARG, "%s: string '%s' has no value", where, name);
        size_t vlen = strnlen(v, (size_t)NSTM_MAX_STRING + 1);
        if (vlen > NSTM_MAX_STRING)
            return nst_fail(err, NST_ERR_LIMIT, "%s: string '%s' is longer than the limit of %d bytes", where, name,
                            NSTM_MAX_STRING);
        if (!good_utf8((const unsigned char *)v, vlen))
            return nst_fail(err, NST_ERR_ARG, "%s: string '%s' is not valid UTF-8", where, name);
        total += 1 + len + 4 + vlen;
    }
    for (int i = 0; i < m->n_tensors; i++) {
        const nstm_tensor *t = &m->tensors[i];
        size_t len = strnlen(t->name, sizeof t->name);
        if (len == sizeof t->name || !good_name((const unsigned char *)t->name, len))
            return nst_fail(err, NST_ERR_ARG, "%s: tensor #%d has a bad name", where, i + 1);
        if (tensor_index(m, i, t->name) >= 0)
            return nst_fail(err, NST_ERR_ARG, "%s: duplicate tensor name '%s'", where, t->name);
        int64_t dims[NSTM_MAX_DIMS] = {0};
        for (int d = 0; d < NSTM_MAX_DIMS && d < t->ndim; d++) dims[d] = t->dims[d];
        size_t count;
        if ((s = check_shape(where, t->name, t->ndim, dims, &count, NST_ERR_ARG, err)) != NST_OK) return s;
        if (count != t->count)
            return nst_fail(err, NST_ERR_ARG, "%s: tensor '%s' has count %zu, its shape says %zu", where, t->name,
                            t->count, count);
        if (!t->data) return nst_fail(err, NST_ERR_ARG, "%s: tensor '%s' has no data", where, t->name);
        if (count > NSTM_MAX_ELEMENTS - floats)
            return nst_fail(err, NST_ERR_LIMIT, "%s: the tensors hold more than the limit of %zu floats in all",
                            where, NSTM_MAX_ELEMENTS);
        floats += count;
        for (size_t k = 0; k < count; k++) {
            uint32_t u;
            memcpy(&u, &t->data[k], 4);
            if (!bits_finite(u))
                return nst_fail(err, NST_ERR_ARG, "%s: tensor '%s' holds a non-finite value (element %zu)", where,
                                t->name, k);
        }
        total += 1 + len + 1 + 4 * (size_t)t->ndim + 4 * count;
    }
    *size = total;
    return NST_OK;
}

/* The encoder writes either into a buffer of the exact size or to a file; both keep
 * the running checksum. */
typedef struct {
    unsigned char *buf;
    FILE *fp;
    size_t pos;
    uint32_t crc;
    int failed; /* a write to fp failed (errno tells why) */
} writer;

static void put(writer *w, const void *data, size_t n) {
    w->crc = nstm_crc32(w->crc, data, n);
    if (w->buf)
        memcpy(w->buf + w->pos, data, n);
    else if (!w->failed && fwrite(data, 1, n, w->fp) != n)
        w->failed = 1;
    w->pos += n;
}

static void put_u32(writer *w, uint32_t v) {
    unsigned char b[4];
    put_u32_at(b, v);
    put(w, b, 4);
}

static void put_name(writer *w, const char *name) {
    unsigned char len = (unsigned char)strlen(name);
    put(w, &len, 1);
    put(w, name, len);
}

static void write_model(const nstm_model *m, size_t size, writer *w) {
    unsigned char head[NSTM_HEADER_BYTES];
    memcpy(head, NSTM_MAGIC, 8);
    put_u32_at(head + 8, NSTM_FORMAT_VERSION);
    put_u64_at(head + 12, size);
    put_u32_at(head + 20, (uint32_t)m->n_ints);
    put_u32_at(head + 24, (uint32_t)m->n_strings);
    put_u32_at(head + 28, (uint32_t)m->n_tensors);
    put(w, head, sizeof head);
    for (int i = 0; i < m->n_ints; i++) {
        put_name(w, m->ints[i].name);
        put_u32(w, (uint32_t)m->ints[i].value);
    }
    for (int i = 0; i < m->n_strings; i++) {
        size_t len = strlen(m->strings[i].value);
        put_name(w, m->strings[i].name);
        put_u32(w, (uint32_t)len);
        put(w, m->strings[i].value, len);
    }
    for (int i = 0; i < m->n_tensors; i++) {
        const nstm_tensor *t = &m->tensors[i];
        unsigned char ndim = (unsigned char)t->ndim;
        put_name(w, t->name);
        put(w, &ndim, 1);
        for (int d = 0; d < t->ndim; d++) put_u32(w, (uint32_t)t->dims[d]);
        unsigned char chunk[4096];
        for (size_t k = 0; k < t->count;) {
            size_t n = t->count - k < sizeof chunk / 4 ? t->count - k : sizeof chunk / 4;
            for (size_t j = 0; j < n; j++) {
                uint32_t u;
                memcpy(&u, &t->data[k + j], 4);
                put_u32_at(chunk + 4 * j, u);
            }
            put(w, chunk, 4 * n);
            k += n;
        }
    }
    unsigned char crc[4];
    put_u32_at(crc, w->crc);
    put(w, crc, 4);
}

nst_status nstm_save_memory(const nstm_model *m, unsigned char **data, size_t *size, nst_error *err) {
    *data = NULL;
    *size = 0;
    size_t n;
    nst_status s = check_model(m, "model", &n, err);
    if (s != NST_OK) return s;
    writer w = {0};
    w.buf = malloc(n);
    if (!w.buf) return nst_fail(err, NST_ERR_NOMEM, "model: out of memory for %zu bytes", n);
    write_model(m, n, &w);
    *data = w.buf;
    *size = n;
    return NST_OK;
}

nst_status nstm_save(const nstm_model *m, const char *path, nst_error *err) {
    size_t n;
    nst_status s = check_model(m, path, &n, err);
    if (s != NST_OK) return s;
    nst_atomic_file af;
    if ((s = nst_atomic_open(&af, path, err)) != NST_OK) return s;
    writer w = {0};
    w.fp = af.fp;
    write_model(m, n, &w);
    if (w.failed) {
        int e = errno;
        nst_atomic_abort(&af);
        return nst_fail(err, NST_ERR_IO, "%s: write failed: %s", path, strerror(e));
    }
    return nst_atomic_commit(&af, err); /* flushes, fsyncs and renames; removes the temporary on failure */
}

/* ------------------------------------------------------------------------- */
/* Builders                                                                  */
/* ------------------------------------------------------------------------- */

/* Checks a new entry's name (status ARG) and the room for one more (LIMIT). */
static nst_status check_new(const char *kind, const char *name, int n, int taken, nst_error *err) {
    char buf[80];
    if (!name || !good_name((const unsigned char *)name, strlen(name)))
        return nst_fail(err, NST_ERR_ARG, "model: bad %s name '%s' (1 to %d printable ASCII characters without spaces)",
                        kind, printable(name, buf, sizeof buf), NSTM_MAX_NAME);
    if (taken) return nst_fail(err, NST_ERR_ARG, "model: duplicate %s name '%s'", kind, name);
    if (n >= NSTM_MAX_ENTRIES)
        return nst_fail(err, NST_ERR_LIMIT, "model: more than %d %ss", NSTM_MAX_ENTRIES, kind);
    return NST_OK;
}

nst_status nstm_add_int(nstm_model *m, const char *name, int32_t v, nst_error *err) {
    nst_status s = check_new("int", name, m->n_ints, name && int_index(m, m->n_ints, name) >= 0, err);
    if (s != NST_OK) return s;
    nstm_int *a = realloc(m->ints, ((size_t)m->n_ints + 1) * sizeof *a);
    if (!a) return nst_fail(err, NST_ERR_NOMEM, "model: out of memory");
    m->ints = a;
    memset(&a[m->n_ints], 0, sizeof *a);
    strcpy(a[m->n_ints].name, name);
    a[m->n_ints++].value = v;
    return NST_OK;
}

nst_status nstm_add_string(nstm_model *m, const char *name, const char *v, nst_error *err) {
    nst_status s = check_new("string", name, m->n_strings, name && string_index(m, m->n_strings, name) >= 0, err);
    if (s != NST_OK) return s;
    if (!v) return nst_fail(err, NST_ERR_ARG, "model: string '%s' has no value", name);
    size_t len = strlen(v);
    if (len > NSTM_MAX_STRING)
        return nst_fail(err, NST_ERR_LIMIT, "model: string '%s' is %zu bytes, more than the limit of %d", name, len,
                        NSTM_MAX_STRING);
    if (!good_utf8((const unsigned char *)v, len))
        return nst_fail(err, NST_ERR_ARG, "model: string '%s' is not valid UTF-8", name);
    char *copy = malloc(len + 1);
    nstm_string *a = copy ? realloc(m->strings, ((size_t)m->n_strings + 1) * sizeof *a) : NULL;
    if (!a) {
        free(copy);
        return nst_fail(err, NST_ERR_NOMEM, "model: out of memory");
    }
    m->strings = a;
    memcpy(copy, v, len + 1);
    memset(&a[m->n_strings], 0, sizeof *a);
    strcpy(a[m->n_strings].name, name);
    a[m->n_strings++].value = copy;
    return NST_OK;
}

nst_status nstm_add_tensor(nstm_model *m, const char *name, int ndim, const int *dims, const float *data,
                           nst_error *err) {
    nst_status s = check_new("tensor", name, m->n_tensors, name && tensor_index(m, m->n_tensors, name) >= 0, err);
    if (s != NST_OK) return s;
    if (!dims) return nst_fail(err, NST_ERR_ARG, "model: tensor '%s' without dimensions", name);
    int64_t d64[NSTM_MAX_DIMS] = {0};
    for (int d = 0; d < ndim && d < NSTM_MAX_DIMS; d++) d64[d] = dims[d];
    size_t count, floats = 0;
    if ((s = check_shape("model", name, ndim, d64, &count, NST_ERR_ARG, err)) != NST_OK) return s;
    for (int i = 0; i < m->n_tensors; i++) floats += m->tensors[i].count;
    if (floats > NSTM_MAX_ELEMENTS || count > NSTM_MAX_ELEMENTS - floats)
        return nst_fail(err, NST_ERR_LIMIT, "model: the tensors would hold more than the limit of %zu floats in all",
                        NSTM_MAX_ELEMENTS);
    for (size_t k = 0; data && k < count; k++) {
        uint32_t u;
        memcpy(&u, &data[k], 4);
        if (!bits_finite(u))
            return nst_fail(err, NST_ERR_ARG, "model: tensor '%s' holds a non-finite value (element %zu)", name, k);
    }
    float *copy = data ? nst_alloc_array(count, sizeof(float)) : nst_calloc_array(count, sizeof(float));
    nstm_tensor *a = copy ? realloc(m->tensors, ((size_t)m->n_tensors + 1) * sizeof *a) : NULL;
    if (!a) {
        free(copy);
        return nst_fail(err, NST_ERR_NOMEM, "model: out of memory for tensor '%s'", name);
    }
    m->tensors = a;
    if (data) memcpy(copy, data, count * sizeof(float));
    nstm_tensor *t = &a[m->n_tensors++];
    memset(t, 0, sizeof *t);
    strcpy(t->name, name);
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) t->dims[d] = dims[d];
    t->count = count;
    t->data = copy;
    return NST_OK;
}

/* ------------------------------------------------------------------------- */
/* Lookups                                                                   */
/* ------------------------------------------------------------------------- */

const nstm_tensor *nstm_find_tensor(const nstm_model *m, const char *name) {
    int i = name ? tensor_index(m, m->n_tensors, name) : -1;
    return i >= 0 ? &m->tensors[i] : NULL;
}

int nstm_get_int(const nstm_model *m, const char *name, int32_t *out) {
    int i = name ? int_index(m, m->n_ints, name) : -1;
    if (i < 0) return 0;
    if (out) *out = m->ints[i].value;
    return 1;
}

const char *nstm_get_string(const nstm_model *m, const char *name) {
    int i = name ? string_index(m, m->n_strings, name) : -1;
    return i >= 0 ? m->strings[i].value : NULL;
}

nst_status nstm_expect_tensor(const nstm_model *m, const char *path, const char *name, int ndim, const int *dims,
                              const float **data, nst_error *err) {
    char nbuf[80], have[128], want[128];
    if (data) *data = NULL;
    const nstm_tensor *t = nstm_find_tensor(m, name);
    if (!t)
        return nst_fail(err, NST_ERR_FORMAT, "%s: no tensor '%s' in the model", path,
                        printable(name, nbuf, sizeof nbuf));
    int same = t->ndim == ndim && ndim >= 1 && ndim <= NSTM_MAX_DIMS;
    for (int d = 0; same && d < ndim; d++) same = t->dims[d] == dims[d];
    if (!same) {
        int64_t h[NSTM_MAX_DIMS], w[NSTM_MAX_DIMS];
        int wn = ndim < 0 ? 0 : ndim > NSTM_MAX_DIMS ? NSTM_MAX_DIMS : ndim;
        for (int d = 0; d < t->ndim; d++) h[d] = t->dims[d];
        for (int d = 0; d < wn; d++) w[d] = dims[d];
        return nst_fail(err, NST_ERR_FORMAT, "%s: tensor '%s' is %s, expected %s", path, t->name,
                        shape_text(t->ndim, h, have, sizeof have), shape_text(wn, w, want, sizeof want));
    }
    if (data) *data = t->data;
    return NST_OK;
}

nst_status nstm_expect_int(const nstm_model *m, const char *path, const char *name, int32_t min, int32_t max,
                           int32_t *out, nst_error *err) {
    char nbuf[80];
    int32_t v;
    if (!nstm_get_int(m, name, &v))
        return nst_fail(err, NST_ERR_FORMAT, "%s: no int '%s' in the model", path, printable(name, nbuf, sizeof nbuf));
    if (v < min || v > max)
        return nst_fail(err, NST_ERR_FORMAT, "%s: '%s' is %ld, expected %ld to %ld", path,
                        printable(name, nbuf, sizeof nbuf), (long)v, (long)min, (long)max);
    if (out) *out = v;
    return NST_OK;
}
