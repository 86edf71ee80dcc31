/* png.c - PNG through libpng, from and to memory: 1-16 bit grey, palette, RGB, alpha and
 * tRNS, interlacing; iCCP and eXIf both ways.
 *
 * libpng reports errors by longjmp. To keep that well defined, everything a call owns
 * (buffers, the image being filled) lives in a heap-allocated "job": the function that
 * calls setjmp only holds pointers that never change afterwards, and the work happens in
 * a separate function. After a longjmp the job's contents are exactly what was last
 * stored, and the cleanup code frees them. */
#include "image/image_internal.h"

#include <stdlib.h>
#include <string.h>

#include <png.h>

typedef struct {
    char msg[200];     /* libpng's error message */
    char warning[200]; /* its last warning, which often says what the error was about */
    const img_input *in;
    size_t pos;        /* read position in in->data */
    img_buf *out;      /* when writing */
    unsigned char *raw;
    png_bytep *rows;
    nst_image img;
} png_job;

static void on_error(png_structp png, png_const_charp msg) {
    png_job *job = png_get_error_ptr(png);
    snprintf(job->msg, sizeof job->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) {
    png_job *job = png_get_error_ptr(png);
    snprintf(job->warning, sizeof job->warning, "%s", msg);
}

static void read_data(png_structp png, png_bytep dst, size_t n) {
    png_job *job = png_get_io_ptr(png);
    if (job->in->size - job->pos < n) png_error(png, "unexpected end of data");
    memcpy(dst, job->in->data + job->pos, n);
    job->pos += n;
}

/* One decoded row (1..4 channels: grey, grey+alpha, RGB, RGBA; 1 or 2 bytes per sample,
 * big-endian) to float RGB composited on white, and the alpha where there is some. */
static void row_to_rgb(const unsigned char *raw, int w, int channels, int bytes, float *dst, float *alpha) {
    for (int x = 0; x < w; x++) {
        float s[4] = {0};
        for (int c = 0; c < channels; c++) {
            if (bytes == 1) {
                s[c] = raw[c];
            } else {
                /* Divided in double so that 16-bit 257*k gives exactly k. */
                unsigned v = (unsigned)raw[2 * c] << 8 | raw[2 * c + 1];
                s[c] = (float)(v * 255.0 / 65535.0);
            }
        }
        raw += channels * bytes;
        if (channels <= 2)
            img_put(dst, alpha, s[0], s[0], s[0], channels == 2 ? s[1] : 255.0f);
        else
            img_put(dst, alpha, s[0], s[1], s[2], channels == 4 ? s[3] : 255.0f);
        dst += 3;
        if (alpha) alpha++;
    }
}

static nst_status decode(png_structp png, png_infop info, png_job *job, nst_error *err) {
    const char *name = job->in->name;
    png_set_read_fn(png, job, read_data);
    /* We apply our own, clearer limits right after the header. */
    png_set_user_limits(png, 0x7fffffffL, 0x7fffffffL);
    png_read_info(png, info);

    png_uint_32 w = 0, h = 0;
    int depth = 0, color = 0, interlace = 0;
    png_get_IHDR(png, info, &w, &h, &depth, &color, &interlace, NULL, NULL);
    nst_status st = img_check_size(name, w, h, job->in->max_pixels, err);
    if (st != NST_OK) return st;

    /* Reduce everything to 8 or 16-bit grey, grey+alpha, RGB or RGBA. */
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int channels = png_get_channels(png, info);
    int bytes = png_get_bit_depth(png, info) == 16 ? 2 : 1;
    size_t rowbytes = png_get_rowbytes(png, info);
    if (channels < 1 || channels > 4 || rowbytes != (size_t)w * channels * bytes)
        return nst_fail(err, NST_ERR_FORMAT, "%s: unsupported PNG pixel layout", name);
    int has_alpha = channels == 2 || channels == 4;

    st = img_alloc(&job->img, name, (int)w, (int)h, has_alpha, err);
    if (st != NST_OK) return st;
    job->img.bit_depth = depth == 16 ? 16 : 8;
    float *px = job->img.pixels, *al = job->img.alpha;

    if (passes > 1) {
        /* Interlaced: each pass touches every row, so hold the whole raw image. */
        job->raw = nst_alloc_array(h, rowbytes);
        job->rows = nst_alloc_array(h, sizeof *job->rows);
        if (!job->raw || !job->rows)
            return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory decoding an interlaced PNG", name);
        for (png_uint_32 y = 0; y < h; y++) job->rows[y] = job->raw + (size_t)y * rowbytes;
        png_read_image(png, job->rows);
        for (png_uint_32 y = 0; y < h; y++)
            row_to_rgb(job->rows[y], (int)w, channels, bytes, px + (size_t)y * w * 3, al ? al + (size_t)y * w : NULL);
    } else {
        job->raw = nst_alloc_array(1, rowbytes);
        if (!job->raw) return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", name);
        for (png_uint_32 y = 0; y < h; y++) {
            png_read_row(png, job->raw, NULL);
            row_to_rgb(job->raw, (int)w, channels, bytes, px + (size_t)y * w * 3, al ? al + (size_t)y * w : NULL);
        }
    }
    /* Reads up to IEND, so a file cut after the pixel data is still reported; an eXIf
     * after the pixels lands in info too. */
    png_read_end(png, info);

    png_charp icc_name = NULL;
    int compression = 0;
    png_bytep icc = NULL, exif = NULL;
    png_uint_32 icc_len = 0, exif_len = 0;
    int ok = 1;
    if (png_get_iCCP(png, info, &icc_name, &compression, &icc, &icc_len) && icc)
        ok = img_set_icc(&job->img, icc, icc_len);
    if (ok && png_get_eXIf_1(png, info, &exif_len, &exif) && exif) ok = img_set_exif(&job->img, exif, exif_len);
    if (!ok) return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", name);
    img_drop_opaque_alpha(&job->img);
    if (exif) return img_orient(&job->img, img_exif_orientation(exif, exif_len), name, err);
    return NST_OK;
}

nst_status img_decode_png(const img_input *in, nst_image *out, nst_error *err) {
    png_job *job = calloc(1, sizeof *job);
    if (!job) return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", in->name);
    job->in = in;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, job, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        free(job);
        return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", in->name);
    }

    nst_status st;
    if (setjmp(png_jmpbuf(png))) {
        if (job->warning[0])
            st = nst_fail(err, NST_ERR_FORMAT, "%s: truncated or corrupt PNG (%s: %s)", in->name, job->msg,
                          job->warning);
        else
            st = nst_fail(err, NST_ERR_FORMAT, "%s: truncated or corrupt PNG (%s)", in->name, job->msg);
    } else {
        st = decode(png, info, job, err);
    }

    png_destroy_read_struct(&png, &info, NULL);
    free(job->raw);
    free(job->rows);
    if (st == NST_OK)
        *out = job->img;
    else
        nst_image_free(&job->img);
    free(job);
    return st;
}

static void write_data(png_structp png, png_bytep p, size_t n) {
    png_job *job = png_get_io_ptr(png);
    if (!img_buf_write(job->out, p, n)) png_error(png, "out of memory");
}

static void flush_data(png_structp png) { (void)png; }

static void put16(unsigned char *p, uint16_t v) { p[0] = (unsigned char)(v >> 8), p[1] = (unsigned char)v; }

static nst_status encode(png_structp png, png_infop info, png_job *job, const nst_image *img, const img_enc *o) {
    png_set_write_fn(png, job, write_data, flush_data);
    int ch = img->alpha ? 4 : 3, bytes = o->bit_depth == 16 ? 2 : 1;
    png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, o->bit_depth,
                 img->alpha ? PNG_COLOR_TYPE_RGB_ALPHA : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    /* libpng checks the profile; one it finds unfit is left out with a warning rather
     * than failing the whole image (its "app errors" become warnings). */
    png_set_benign_errors(png, 1);
    if (o->icc && o->icc_size <= 0x7fffffff)
        png_set_iCCP(png, info, "ICC profile", PNG_COMPRESSION_TYPE_BASE, o->icc, (png_uint_32)o->icc_size);
    if (o->exif && o->exif_size <= 0x7fffffff) png_set_eXIf_1(png, info, (png_uint_32)o->exif_size, (png_bytep)o->exif);
    png_write_info(png, info);
    for (int y = 0; y < img->height; y++) {
        const float *src = img->pixels + (size_t)y * img->width * 3;
        const float *al = img->alpha ? img->alpha + (size_t)y * img->width : NULL;
        unsigned char *d = job->raw;
        for (int x = 0; x < img->width; x++, d += ch * bytes) {
            float a = al ? al[x] : 255.0f;
            for (int c = 0; c < ch; c++) {
                float v = c < 3 ? (al ? img_uncomposite(src[3 * x + c], a) : src[3 * x + c]) : a;
                if (bytes == 1) d[c] = img_to_u8(v);
                else put16(d + 2 * c, img_to_u16(v));
            }
        }
        png_write_row(png, job->raw);
    }
    png_write_end(png, NULL);
    return NST_OK;
}

nst_status img_encode_png(const nst_image *img, const img_enc *o, img_buf *out, const char *name, nst_error *err) {
    png_job *job = calloc(1, sizeof *job);
    if (job) job->raw = nst_alloc_array((size_t)img->width, 8);
    if (!job || !job->raw) {
        free(job);
        return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", name);
    }
    job->out = out;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, job, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        free(job->raw);
        free(job);
        return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", name);
    }

    nst_status st;
    if (setjmp(png_jmpbuf(png)))
        st = nst_fail(err, out->failed ? NST_ERR_NOMEM : NST_ERR_IO, "%s: cannot write PNG: %s", name, job->msg);
    else
        st = encode(png, info, job, img, o);

    png_destroy_write_struct(&png, &info);
    free(job->raw);
    free(job);
    return st;
}
