/* bmp.c - BMP (Windows and OS/2 bitmaps), decoded here: the core (12-byte), OS/2 2.x,
 * info (40) and V2-V5 headers; 1, 2, 4, 8-bit palettes, 16 and 32-bit bit fields (with
 * alpha where a mask says so), 24-bit BGR, RLE8 and RLE4; bottom-up and top-down rows.
 * Every offset and size is checked against the data before it is used. */
#include "image/image_internal.h"

#include <stdlib.h>
#include <string.h>

enum { BI_RGB = 0, BI_RLE8 = 1, BI_RLE4 = 2, BI_BITFIELDS = 3, BI_JPEG = 4, BI_PNG = 5, BI_ALPHABITFIELDS = 6 };

static uint32_t le16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A bit-field mask: value = (pixel & mask) >> shift, out of max. */
typedef struct {
    uint32_t mask;
    int shift;
    double scale; /* to 0..255 */
    int bits;
} field;

static field make_field(uint32_t m) {
    field f = {m, 0, 0.0, 0};
    if (!m) return f;
    while (!(m >> f.shift & 1)) f.shift++;
    uint32_t v = m >> f.shift;
    while (f.bits < 32 && (v >> f.bits)) f.bits++;
    f.scale = 255.0 / (double)(((uint64_t)1 << f.bits) - 1);
    return f;
}

static float field_value(const field *f, uint32_t px) {
    return f->mask ? (float)(((px & f->mask) >> f->shift) * f->scale) : 0.0f;
}

typedef struct {
    int w, h, topdown, entries;
    unsigned char pal[256][3]; /* RGB */
    nst_image img;
} bmp_ctx;

static void put_index(bmp_ctx *c, int x, int y, unsigned idx) {
    if (x < 0 || x >= c->w || y < 0 || y >= c->h) return;
    size_t at = (size_t)(c->topdown ? y : c->h - 1 - y) * c->w + x;
    const unsigned char *p = (int)idx < c->entries ? c->pal[idx] : (const unsigned char *)"\0\0\0";
    float *d = c->img.pixels + 3 * at;
    d[0] = p[0], d[1] = p[1], d[2] = p[2];
    if (c->img.alpha) c->img.alpha[at] = 255.0f;
}

/* RLE8 / RLE4: pixels that the runs skip (end of line, delta, end of bitmap) stay
 * transparent, as browsers show them. */
static nst_status decode_rle(bmp_ctx *c, const unsigned char *b, size_t n, size_t pos, int bpp, const char *name,
                             nst_error *err) {
    int x = 0, y = 0;
    while (y < c->h) {
        if (n - pos < 2) return nst_fail(err, NST_ERR_FORMAT, "%s: truncated BMP (RLE data ends early)", name);
        unsigned c0 = b[pos], c1 = b[pos + 1];
        pos += 2;
        if (c0 > 0) { /* a run of c0 pixels of one (RLE8) or two alternating (RLE4) indices */
            for (unsigned i = 0; i < c0 && x < c->w; i++, x++)
                put_index(c, x, y, bpp == 8 ? c1 : (i & 1 ? c1 & 15 : c1 >> 4));
            continue;
        }
        if (c1 == 0) { /* end of line */
            x = 0, y++;
        } else if (c1 == 1) { /* end of bitmap */
            break;
        } else if (c1 == 2) { /* delta */
            if (n - pos < 2) return nst_fail(err, NST_ERR_FORMAT, "%s: truncated BMP (RLE data ends early)", name);
            x += b[pos], y += b[pos + 1];
            pos += 2;
        } else { /* c1 literal indices, padded to an even number of bytes */
            size_t bytes = bpp == 8 ? c1 : (c1 + 1) / 2;
            size_t padded = (bytes + 1) & ~(size_t)1;
            if (n - pos < padded) return nst_fail(err, NST_ERR_FORMAT, "%s: truncated BMP (RLE data ends early)", name);
            for (unsigned i = 0; i < c1 && x < c->w; i++, x++) {
                unsigned v = bpp == 8 ? b[pos + i] : (i & 1 ? b[pos + i / 2] & 15 : b[pos + i / 2] >> 4);
                put_index(c, x, y, v);
            }
            pos += padded;
        }
    }
    return NST_OK;
}

nst_status img_decode_bmp(const img_input *in, nst_image *out, nst_error *err) {
    const char *name = in->name;
    const unsigned char *b = in->data;
    size_t n = in->size;
    if (n < 18) return nst_fail(err, NST_ERR_FORMAT, "%s: truncated BMP (the header ends early)", name);
    uint32_t data_off = le32(b + 10), hs = le32(b + 14);
    int os2 = hs == 12 || (hs >= 16 && hs <= 64 && hs != 40 && hs != 52 && hs != 56);
    if (!(hs == 12 || (hs >= 16 && hs <= 64) || hs == 108 || hs == 124))
        return nst_fail(err, NST_ERR_FORMAT, "%s: unsupported BMP header (%u bytes)", name, hs);
    if (n - 14 < hs) return nst_fail(err, NST_ERR_FORMAT, "%s: truncated BMP (the header ends early)", name);
    const unsigned char *hd = b + 14;

    long long w, h;
    uint32_t bpp, compression = BI_RGB, used = 0;
    if (hs == 12) {
        w = le16(hd + 4), h = le16(hd + 6), bpp = le16(hd + 10);
    } else {
        w = (int32_t)le32(hd + 4), h = (int32_t)le32(hd + 8), bpp = le16(hd + 14);
        if (hs >= 20) compression = le32(hd + 16);
        if (hs >= 36) used = le32(hd + 32);
    }
    int topdown = h < 0;
    if (topdown) h = -h;
    if (w < 0) return nst_fail(err, NST_ERR_FORMAT, "%s: corrupt BMP (negative width %lld)", name, w);
    nst_status st = img_check_size(name, (unsigned long long)w, (unsigned long long)h, in->max_pixels, err);
    if (st != NST_OK) return st;

    /* OS/2 numbers its compressions differently: 3 is Huffman, 4 RLE24. */
    if (os2 && (compression == 3 || compression == 4))
        return nst_fail(err, NST_ERR_FORMAT, "%s: OS/2 BMP with %s compression is not supported", name,
                        compression == 3 ? "Huffman" : "RLE24");
    if (compression == BI_JPEG || compression == BI_PNG)
        return nst_fail(err, NST_ERR_FORMAT, "%s: BMP holding a %s image is not supported", name,
                        compression == BI_JPEG ? "JPEG" : "PNG");
    int rle = compression == BI_RLE8 || compression == BI_RLE4;
    int fields = compression == BI_BITFIELDS || compression == BI_ALPHABITFIELDS;
    if (!(bpp == 1 || bpp == 2 || bpp == 4 || bpp == 8 || bpp == 16 || bpp == 24 || bpp == 32) ||
        (rle && bpp != (compression == BI_RLE8 ? 8u : 4u)) || (fields && bpp != 16 && bpp != 32) ||
        compression > BI_ALPHABITFIELDS)
        return nst_fail(err, NST_ERR_FORMAT, "%s: unsupported BMP (%u bits per pixel, compression %u)", name, bpp,
                        compression);

    /* Bit-field masks: in the header from V2 on, else right after a 40-byte header. */
    size_t pal_at = 14 + (size_t)hs;
    uint32_t mask[4] = {0, 0, 0, 0};
    if (fields) {
        int count = compression == BI_ALPHABITFIELDS || hs >= 56 ? 4 : 3;
        const unsigned char *m = hd + 40;
        if (hs >= 52) {
            if (40 + 4 * (uint32_t)count > hs) count = 3;
        } else {
            if (n - pal_at < (size_t)count * 4)
                return nst_fail(err, NST_ERR_FORMAT, "%s: truncated BMP (the bit masks are missing)", name);
            m = b + pal_at;
            pal_at += (size_t)count * 4;
        }
        for (int i = 0; i < count; i++) mask[i] = le32(m + 4 * i);
    } else if (bpp == 16) {
        mask[0] = 0x7C00, mask[1] = 0x03E0, mask[2] = 0x001F; /* 5-5-5 */
    } else if (bpp == 32) {
        mask[0] = 0xFF0000, mask[1] = 0xFF00, mask[2] = 0xFF; /* the fourth byte is unused */
    }
    field f[4];
    for (int i = 0; i < 4; i++) f[i] = make_field(mask[i]);

    bmp_ctx *c = calloc(1, sizeof *c);
    if (!c) return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", name);
    c->w = (int)w, c->h = (int)h, c->topdown = topdown;
    if (bpp <= 8) {
        size_t full = (size_t)1 << bpp, esize = hs == 12 ? 3 : 4;
        size_t entries = used && used < full ? used : full;
        /* A palette cut short by the pixel data or the end of the file keeps what is there. */
        size_t end = data_off >= pal_at && data_off <= n ? data_off : n;
        size_t room = end > pal_at ? (end - pal_at) / esize : 0;
        if (room < entries) entries = room;
        if (entries == 0) {
            free(c);
            return nst_fail(err, NST_ERR_FORMAT, "%s: corrupt BMP (no colour table)", name);
        }
        for (size_t i = 0; i < entries; i++) {
            const unsigned char *p = b + pal_at + i * esize;
            c->pal[i][0] = p[2], c->pal[i][1] = p[1], c->pal[i][2] = p[0];
        }
        c->entries = (int)entries;
    }
    if (data_off < 14 + hs || data_off >= n) {
        free(c);
        return nst_fail(err, NST_ERR_FORMAT, "%s: %s BMP (the pixel data's offset %u is outside the file)", name,
                        data_off >= n ? "truncated" : "corrupt", data_off);
    }

    size_t row_bytes = ((size_t)w * bpp + 31) / 32 * 4, used_bytes = ((size_t)w * bpp + 7) / 8;
    if (!rle && (n - data_off < used_bytes || (n - data_off - used_bytes) / row_bytes < (size_t)h - 1)) {
        free(c);
        return nst_fail(err, NST_ERR_FORMAT, "%s: truncated BMP (%zu bytes of pixel data, %zu needed)", name,
                        n - data_off, row_bytes * ((size_t)h - 1) + used_bytes);
    }

    int has_alpha = rle || (fields && mask[3] != 0);
    st = img_alloc(&c->img, name, c->w, c->h, has_alpha, err);
    if (st != NST_OK) {
        free(c);
        return st;
    }
    c->img.bit_depth = f[0].bits > 8 || f[1].bits > 8 || f[2].bits > 8 ? 16 : 8;
    if (rle) {
        size_t np = (size_t)c->w * c->h;
        for (size_t i = 0; i < np; i++) {
            c->img.pixels[3 * i] = c->img.pixels[3 * i + 1] = c->img.pixels[3 * i + 2] = 255.0f;
            c->img.alpha[i] = 0.0f;
        }
        st = decode_rle(c, b, n, data_off, (int)bpp, name, err);
    } else {
        for (int y = 0; y < c->h; y++) {
            const unsigned char *row = b + data_off + (size_t)y * row_bytes;
            size_t at = (size_t)(topdown ? y : c->h - 1 - y) * c->w;
            float *d = c->img.pixels + 3 * at, *a = c->img.alpha ? c->img.alpha + at : NULL;
            for (int x = 0; x < c->w; x++, d += 3) {
                if (bpp <= 8) {
                    size_t bit = (size_t)x * bpp;
                    unsigned idx = row[bit / 8] >> (8 - bpp - bit % 8) & ((1u << bpp) - 1);
                    const unsigned char *p = (int)idx < c->entries ? c->pal[idx] : (const unsigned char *)"\0\0\0";
                    d[0] = p[0], d[1] = p[1], d[2] = p[2];
                } else if (bpp == 24) {
                    const unsigned char *p = row + 3 * (size_t)x;
                    d[0] = p[2], d[1] = p[1], d[2] = p[0];
                } else {
                    uint32_t v = bpp == 16 ? le16(row + 2 * (size_t)x) : le32(row + 4 * (size_t)x);
                    img_put(d, a ? a + x : NULL, field_value(&f[0], v), field_value(&f[1], v), field_value(&f[2], v),
                            a ? field_value(&f[3], v) : 255.0f);
                }
            }
        }
    }
    if (st == NST_OK) {
        img_drop_opaque_alpha(&c->img);
        *out = c->img;
    } else {
        nst_image_free(&c->img);
    }
    free(c);
    return st;
}
