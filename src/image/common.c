/* common.c - helpers shared by the image decoders and encoders (image_internal.h):
 * limits, allocation, sample conversion, orientation, EXIF and ICC blobs, the output
 * buffer. */
#include "image/image_internal.h"

#include <stdlib.h>
#include <string.h>

nst_status img_check_size(const char *name, unsigned long long w, unsigned long long h,
                          size_t max_pixels, nst_error *err) {
    if (w == 0 || h == 0)
        return nst_fail(err, NST_ERR_FORMAT, "%s: image has a zero dimension (%llux%llu)", name, w, h);
    if (w > NST_MAX_DIMENSION || h > NST_MAX_DIMENSION)
        return nst_fail(err, NST_ERR_LIMIT, "%s: image is %llux%llu pixels, more than the limit of %d per side",
                        name, w, h, NST_MAX_DIMENSION);
    if (w * h > (unsigned long long)max_pixels)
        return nst_fail(err, NST_ERR_LIMIT,
                        "%s: image is %llux%llu = %llu pixels, more than the limit of %zu; "
                        "raise it with --max-pixels N or " NST_MAX_PIXELS_ENV "=N",
                        name, w, h, w * h, max_pixels);
    return NST_OK;
}

nst_status img_alloc(nst_image *img, const char *name, int w, int h, int with_alpha, nst_error *err) {
    nst_status st = nst_image_alloc(img, w, h, err);
    if (st != NST_OK) return nst_fail(err, st, "%s: out of memory for a %dx%d image", name, w, h);
    if (with_alpha) {
        img->alpha = nst_alloc_array((size_t)w * (size_t)h, sizeof(float));
        if (!img->alpha) {
            nst_image_free(img);
            return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory for a %dx%d image", name, w, h);
        }
    }
    return NST_OK;
}

void img_drop_opaque_alpha(nst_image *img) {
    if (!img->alpha) return;
    size_t n = (size_t)img->width * (size_t)img->height;
    for (size_t i = 0; i < n; i++)
        if (img->alpha[i] != 255.0f) return;
    free(img->alpha);
    img->alpha = NULL;
}

unsigned char img_to_u8(float v) {
    if (!(v > 0.0f)) return 0;
    if (v >= 255.0f) return 255;
    return (unsigned char)(v + 0.5f);
}

uint16_t img_to_u16(float v) {
    if (!(v > 0.0f)) return 0;
    if (v >= 255.0f) return 65535;
    return (uint16_t)((double)v * (65535.0 / 255.0) + 0.5);
}

/* ---- orientation ---------------------------------------------------------------------- */

void img_orient_row(int o, int w, int h, int y, ptrdiff_t *d0, ptrdiff_t *step) {
    ptrdiff_t ow = o >= 5 && o <= 8 ? h : w;
    switch (o) {
    default: *d0 = (ptrdiff_t)y * ow, *step = 1; break;
    case 2: *d0 = (ptrdiff_t)y * ow + (w - 1), *step = -1; break;
    case 3: *d0 = (ptrdiff_t)(h - 1 - y) * ow + (w - 1), *step = -1; break;
    case 4: *d0 = (ptrdiff_t)(h - 1 - y) * ow, *step = 1; break;
    case 5: *d0 = y, *step = ow; break;
    case 6: *d0 = h - 1 - y, *step = ow; break;
    case 7: *d0 = (ptrdiff_t)(w - 1) * ow + (h - 1 - y), *step = -ow; break;
    case 8: *d0 = (ptrdiff_t)(w - 1) * ow + y, *step = -ow; break;
    }
}

nst_status img_orient(nst_image *img, int o, const char *name, nst_error *err) {
    if (o < 2 || o > 8) return NST_OK;
    int w = img->width, h = img->height;
    size_t n = (size_t)w * (size_t)h;
    float *px = nst_alloc_array(n, 3 * sizeof(float));
    float *al = img->alpha ? nst_alloc_array(n, sizeof(float)) : NULL;
    if (!px || (img->alpha && !al)) {
        free(px);
        free(al);
        return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory turning a %dx%d image upright", name, w, h);
    }
    for (int y = 0; y < h; y++) {
        ptrdiff_t d0, step;
        img_orient_row(o, w, h, y, &d0, &step);
        const float *s = img->pixels + (size_t)y * w * 3;
        for (int x = 0; x < w; x++) {
            ptrdiff_t d = d0 + step * x;
            memcpy(px + 3 * d, s + 3 * x, 3 * sizeof(float));
            if (al) al[d] = img->alpha[(size_t)y * w + x];
        }
    }
    free(img->pixels);
    free(img->alpha);
    img->pixels = px;
    img->alpha = al;
    if (o >= 5) img->width = h, img->height = w;
    return NST_OK;
}

/* ---- EXIF ------------------------------------------------------------------------------ */

static unsigned get16(const unsigned char *p, int le) {
    return le ? (unsigned)p[0] | (unsigned)p[1] << 8 : (unsigned)p[0] << 8 | (unsigned)p[1];
}

static unsigned long get32(const unsigned char *p, int le) {
    return le ? (unsigned long)p[0] | (unsigned long)p[1] << 8 | (unsigned long)p[2] << 16 |
                    (unsigned long)p[3] << 24
              : (unsigned long)p[0] << 24 | (unsigned long)p[1] << 16 | (unsigned long)p[2] << 8 |
                    (unsigned long)p[3];
}

/* The IFD0 entry of the Orientation tag (0x0112): its offset in t, or 0 if there is none;
 * *le gets the byte order. */
static size_t exif_orientation_entry(const unsigned char *t, size_t n, int *le) {
    if (n < 8) return 0;
    if (t[0] == 'I' && t[1] == 'I') *le = 1;
    else if (t[0] == 'M' && t[1] == 'M') *le = 0;
    else return 0;
    if (get16(t + 2, *le) != 42) return 0;
    unsigned long ifd = get32(t + 4, *le);
    if (ifd > n || n - ifd < 2) return 0;
    unsigned count = get16(t + ifd, *le);
    for (unsigned i = 0; i < count; i++) {
        size_t e = (size_t)ifd + 2 + (size_t)i * 12;
        if (e > n || n - e < 12) break;
        if (get16(t + e, *le) == 0x0112) return e;
    }
    return 0;
}

int img_exif_orientation(const unsigned char *t, size_t n) {
    int le = 0;
    size_t e = t ? exif_orientation_entry(t, n, &le) : 0;
    if (!e) return 1;
    unsigned type = get16(t + e + 2, le);
    unsigned long v = 0;
    if (type == 3) v = get16(t + e + 8, le);       /* SHORT, as the standard says */
    else if (type == 4) v = get32(t + e + 8, le);  /* LONG, seen from some writers */
    return v >= 1 && v <= 8 ? (int)v : 1;
}

unsigned char *img_dup(const unsigned char *p, size_t n) {
    if (!p || n == 0) return NULL;
    unsigned char *d = malloc(n);
    if (d) memcpy(d, p, n);
    return d;
}

int img_set_exif(nst_image *img, const unsigned char *t, size_t n) {
    int le = 0;
    if (!t || n < 8 || n > IMG_MAX_EXIF || img->exif) return 1;
    if (!((t[0] == 'I' && t[1] == 'I') || (t[0] == 'M' && t[1] == 'M')) || get16(t + 2, t[0] == 'I') != 42)
        return 1;
    unsigned char *c = img_dup(t, n);
    if (!c) return 0;
    size_t e = exif_orientation_entry(c, n, &le);
    if (e) {
        unsigned type = get16(c + e + 2, le);
        unsigned char *v = c + e + 8;
        size_t len = type == 3 ? 2 : type == 4 ? 4 : 0; /* SHORT or LONG */
        if (len) {
            memset(v, 0, len);
            v[le ? 0 : len - 1] = 1;
        }
    }
    img->exif = c;
    img->exif_size = n;
    return 1;
}

int img_set_icc(nst_image *img, const unsigned char *p, size_t n) {
    /* The ICC header is 128 bytes and a tag count; 'acsp' marks a profile, bytes 16..19
     * name the colour space of the data it describes. */
    if (!p || n < 132 || n > IMG_MAX_ICC || img->icc) return 1;
    if (memcmp(p + 36, "acsp", 4) != 0 || memcmp(p + 16, "RGB ", 4) != 0) return 1;
    unsigned char *c = img_dup(p, n);
    if (!c) return 0;
    img->icc = c;
    img->icc_size = n;
    return 1;
}

/* ---- output buffer --------------------------------------------------------------------- */

static int buf_reserve(img_buf *b, size_t need) {
    if (b->failed) return 0;
    if (need <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 65536;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    unsigned char *d = realloc(b->data, cap);
    if (!d) {
        b->failed = 1;
        return 0;
    }
    b->data = d;
    b->cap = cap;
    return 1;
}

int img_buf_write_at(img_buf *b, size_t at, const void *p, size_t n) {
    if (at > SIZE_MAX - n) {
        b->failed = 1;
        return 0;
    }
    if (!buf_reserve(b, at + n)) return 0;
    if (at > b->size) memset(b->data + b->size, 0, at - b->size);
    if (n) memcpy(b->data + at, p, n);
    if (at + n > b->size) b->size = at + n;
    return 1;
}

int img_buf_write(img_buf *b, const void *p, size_t n) { return img_buf_write_at(b, b->size, p, n); }

void img_buf_free(img_buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}
