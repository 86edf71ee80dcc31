/* ppm.c - binary PPM (P6) and PGM (P5), 8 or 16 bit (maxval 1..65535), from memory. */
#include "image/image_internal.h"

#include <string.h>

static int is_space(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* Reads a header number at *pos, skipping whitespace and # comments; leaves *pos at the
 * character after it. Returns 0 if there is no number or it is absurdly large. */
static int ppm_number(const img_input *in, size_t *pos, unsigned long *out) {
    const unsigned char *b = in->data;
    size_t i = *pos, n = in->size;
    for (;;) {
        if (i < n && b[i] == '#') {
            while (i < n && b[i] != '\n' && b[i] != '\r') i++;
        } else if (i < n && is_space(b[i])) {
            i++;
        } else {
            break;
        }
    }
    if (i >= n || b[i] < '0' || b[i] > '9') return 0;
    unsigned long v = 0;
    while (i < n && b[i] >= '0' && b[i] <= '9') {
        v = v * 10 + (unsigned long)(b[i] - '0');
        if (v > 1000000000UL) return 0;
        i++;
    }
    *pos = i;
    *out = v;
    return 1;
}

nst_status img_decode_ppm(const img_input *in, nst_image *out, nst_error *err) {
    const char *name = in->name;
    int channels = in->data[1] == '6' ? 3 : 1; /* "P6" or "P5", checked by the caller */
    size_t pos = 2;
    unsigned long w, h, maxval;
    if (!ppm_number(in, &pos, &w) || !ppm_number(in, &pos, &h) || !ppm_number(in, &pos, &maxval) || maxval < 1 ||
        maxval > 65535)
        return nst_fail(err, NST_ERR_FORMAT, "%s: corrupt PPM header", name);
    /* exactly one whitespace character before the pixels */
    if (pos >= in->size || !is_space(in->data[pos]))
        return nst_fail(err, NST_ERR_FORMAT, "%s: corrupt PPM header", name);
    pos++;
    nst_status st = img_check_size(name, w, h, in->max_pixels, err);
    if (st != NST_OK) return st;

    size_t bytes = maxval > 255 ? 2 : 1, n = (size_t)w * channels;
    if ((in->size - pos) / (n * bytes) < h) return nst_fail(err, NST_ERR_FORMAT, "%s: truncated PPM", name);
    nst_image img = {0};
    st = img_alloc(&img, name, (int)w, (int)h, 0, err);
    if (st != NST_OK) return st;
    img.bit_depth = bytes == 2 ? 16 : 8;
    double scale = 255.0 / (double)maxval;
    const unsigned char *row = in->data + pos;
    for (unsigned long y = 0; y < h; y++, row += n * bytes) {
        float *d = img.pixels + (size_t)y * w * 3;
        for (size_t i = 0; i < n; i++) {
            unsigned v = bytes == 1 ? row[i] : (unsigned)row[2 * i] << 8 | row[2 * i + 1];
            float s = v >= maxval ? 255.0f : (float)(v * scale);
            if (channels == 3) d[i] = s;
            else d[3 * i] = d[3 * i + 1] = d[3 * i + 2] = s;
        }
    }
    *out = img;
    return NST_OK;
}
