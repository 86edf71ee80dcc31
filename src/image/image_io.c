/* image_io.c - reading PNG, JPEG and binary PPM/PGM into float RGB (0..255), and
 * writing PNG and JPEG. Sample values are taken as they are stored (as sRGB): gamma
 * chunks and ICC profiles are not applied, as the networks were trained on such data.
 *
 * libpng and libjpeg report errors by longjmp. To keep that well defined, every
 * decoder keeps what it owns (buffers, the image being filled, libjpeg's state) in a
 * heap-allocated "job": the function that calls setjmp only holds pointers that never
 * change afterwards, and the actual work happens in a separate function. After a
 * longjmp the job's contents are therefore exactly what was last stored, and the
 * cleanup code frees them. */
#include "util/util.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <jpeglib.h>
#include <jerror.h> /* message codes, to tell damaged data from harmless warnings */
#include <png.h>

/* Progressive JPEGs can carry thousands of tiny scans that each cost a full pass over
 * the coefficients: a few kilobytes of input could keep the decoder busy for minutes.
 * Real encoders use at most a dozen or so. */
#define JPEG_MAX_SCANS 1000

/* ------------------------------------------------------------------------- */
/* Shared helpers                                                            */
/* ------------------------------------------------------------------------- */

/* Applies the size limits to dimensions read from a header, before anything the size
 * of the image is allocated. */
static nst_status check_size(const char *path, unsigned long w, unsigned long h,
                             size_t max_pixels, nst_error *err) {
    if (w == 0 || h == 0)
        return nst_fail(err, NST_ERR_FORMAT, "%s: image has a zero dimension (%lux%lu)", path, w, h);
    if (w > NST_MAX_DIMENSION || h > NST_MAX_DIMENSION)
        return nst_fail(err, NST_ERR_LIMIT,
                        "%s: image is %lux%lu pixels, more than the limit of %d per side", path,
                        w, h, NST_MAX_DIMENSION);
    if ((unsigned long long)w * h > (unsigned long long)max_pixels)
        return nst_fail(err, NST_ERR_LIMIT,
                        "%s: image is %lux%lu = %llu pixels, more than the limit of %zu; "
                        "raise it with --max-pixels N or " NST_MAX_PIXELS_ENV "=N",
                        path, w, h, (unsigned long long)w * h, max_pixels);
    return NST_OK;
}

static nst_status alloc_for(nst_image *img, const char *path, int w, int h, nst_error *err) {
    nst_status st = nst_image_alloc(img, w, h, err);
    if (st != NST_OK)
        return nst_fail(err, st, "%s: out of memory for a %dx%d image", path, w, h);
    return NST_OK;
}

/* Float to byte, rounded; NaN becomes 0. */
static unsigned char to_byte(float v) {
    if (!(v > 0.0f)) return 0;
    if (v >= 255.0f) return 255;
    return (unsigned char)(v + 0.5f);
}

/* ------------------------------------------------------------------------- */
/* PNG                                                                       */
/* ------------------------------------------------------------------------- */

typedef struct {
    char msg[200];     /* libpng's error message */
    char warning[200]; /* its last warning, which often says what the error was about */
    unsigned char *raw;
    png_bytep *rows;
    nst_image img;
} png_job;

static void png_on_error(png_structp png, png_const_charp msg) {
    png_job *job = png_get_error_ptr(png);
    snprintf(job->msg, sizeof job->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    png_job *job = png_get_error_ptr(png);
    snprintf(job->warning, sizeof job->warning, "%s", msg);
}

/* One decoded row (1..4 channels: grey, grey+alpha, RGB, RGBA; 1 or 2 bytes per
 * sample, big-endian) to float RGB, alpha composited onto white. */
static void png_row_to_rgb(const unsigned char *raw, int w, int channels, int bytes, float *dst) {
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
        float r, g, b, a = 255.0f;
        if (channels <= 2) {
            r = g = b = s[0];
            if (channels == 2) a = s[1];
        } else {
            r = s[0], g = s[1], b = s[2];
            if (channels == 4) a = s[3];
        }
        if (a < 255.0f) {
            float t = a / 255.0f;
            r = 255.0f + (r - 255.0f) * t;
            g = 255.0f + (g - 255.0f) * t;
            b = 255.0f + (b - 255.0f) * t;
        }
        dst[0] = r, dst[1] = g, dst[2] = b;
        dst += 3;
    }
}

static nst_status png_decode(png_structp png, png_infop info, png_job *job, FILE *f,
                             const char *path, size_t max_pixels, nst_error *err) {
    png_init_io(png, f);
    /* We apply our own, clearer limits right after the header. */
    png_set_user_limits(png, 0x7fffffffL, 0x7fffffffL);
    png_read_info(png, info);

    png_uint_32 w = 0, h = 0;
    int depth = 0, color = 0, interlace = 0;
    png_get_IHDR(png, info, &w, &h, &depth, &color, &interlace, NULL, NULL);
    nst_status st = check_size(path, w, h, max_pixels, err);
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
        return nst_fail(err, NST_ERR_FORMAT, "%s: unsupported PNG pixel layout", path);

    st = alloc_for(&job->img, path, (int)w, (int)h, err);
    if (st != NST_OK) return st;
    float *px = job->img.pixels;

    if (passes > 1) {
        /* Interlaced: each pass touches every row, so hold the whole raw image. */
        job->raw = nst_alloc_array(h, rowbytes);
        job->rows = nst_alloc_array(h, sizeof *job->rows);
        if (!job->raw || !job->rows)
            return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory decoding an interlaced PNG", path);
        for (png_uint_32 y = 0; y < h; y++) job->rows[y] = job->raw + (size_t)y * rowbytes;
        png_read_image(png, job->rows);
        for (png_uint_32 y = 0; y < h; y++)
            png_row_to_rgb(job->rows[y], (int)w, channels, bytes, px + (size_t)y * w * 3);
    } else {
        job->raw = nst_alloc_array(1, rowbytes);
        if (!job->raw) return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", path);
        for (png_uint_32 y = 0; y < h; y++) {
            png_read_row(png, job->raw, NULL);
            png_row_to_rgb(job->raw, (int)w, channels, bytes, px + (size_t)y * w * 3);
        }
    }
    /* Reads up to IEND, so a file cut after the pixel data is still reported. */
    png_read_end(png, NULL);
    return NST_OK;
}

static nst_status load_png(nst_image *out, FILE *f, const char *path, size_t max_pixels,
                           nst_error *err) {
    png_job *job = calloc(1, sizeof *job);
    if (!job) return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", path);
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, job, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        free(job);
        return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", path);
    }

    nst_status st;
    if (setjmp(png_jmpbuf(png))) {
        if (job->warning[0])
            st = nst_fail(err, NST_ERR_FORMAT, "%s: truncated or corrupt PNG (%s: %s)", path,
                          job->msg, job->warning);
        else
            st = nst_fail(err, NST_ERR_FORMAT, "%s: truncated or corrupt PNG (%s)", path, job->msg);
    } else {
        st = png_decode(png, info, job, f, path, max_pixels, err);
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

static nst_status png_encode(png_structp png, png_infop info, png_job *job, const nst_image *img,
                             FILE *f) {
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, 8,
                 PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    size_t n = (size_t)img->width * 3;
    for (int y = 0; y < img->height; y++) {
        const float *src = img->pixels + (size_t)y * n;
        for (size_t i = 0; i < n; i++) job->raw[i] = to_byte(src[i]);
        png_write_row(png, job->raw);
    }
    png_write_end(png, NULL);
    return NST_OK;
}

static nst_status save_png(const nst_image *img, FILE *f, const char *path, nst_error *err) {
    png_job *job = calloc(1, sizeof *job);
    if (job) job->raw = nst_alloc_array((size_t)img->width, 3);
    if (!job || !job->raw) {
        free(job);
        return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", path);
    }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, job, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        free(job->raw);
        free(job);
        return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", path);
    }

    nst_status st;
    if (setjmp(png_jmpbuf(png)))
        st = nst_fail(err, NST_ERR_IO, "%s: cannot write PNG: %s", path, job->msg);
    else
        st = png_encode(png, info, job, img, f);

    png_destroy_write_struct(&png, &info);
    free(job->raw);
    free(job);
    return st;
}

/* ------------------------------------------------------------------------- */
/* JPEG                                                                      */
/* ------------------------------------------------------------------------- */

/* Where libjpeg's error handler jumps to; the first member of both job structs, so
 * that client_data can point at either. */
typedef struct {
    jmp_buf jmp;
    char msg[JMSG_LENGTH_MAX];
    int code; /* libjpeg's message code, or -1 for our own checks */
} jpeg_trap;

static void jpeg_on_error(j_common_ptr cinfo) {
    jpeg_trap *trap = cinfo->client_data;
    trap->code = cinfo->err->msg_code;
    (*cinfo->err->format_message)(cinfo, trap->msg);
    longjmp(trap->jmp, 1);
}

/* Warnings (level -1) that mean the entropy-coded data is damaged or missing: libjpeg
 * would fill the rest of the image with grey and carry on, we fail instead. The other
 * warnings (unknown JFIF revision, extraneous bytes before a marker, ...) are harmless
 * and common in real files. Traces (level >= 0) are ignored. */
static void jpeg_on_message(j_common_ptr cinfo, int level) {
    if (level >= 0) return;
    cinfo->err->num_warnings++;
    switch (cinfo->err->msg_code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_ARITH_BAD_CODE:
    case JWRN_MUST_RESYNC: jpeg_on_error(cinfo); break;
    default: break;
    }
}

static void jpeg_silent(j_common_ptr cinfo) { (void)cinfo; }

static void jpeg_on_progress(j_common_ptr cinfo) {
    if (!cinfo->is_decompressor) return;
    if (((j_decompress_ptr)cinfo)->input_scan_number > JPEG_MAX_SCANS) {
        jpeg_trap *trap = cinfo->client_data;
        trap->code = -1;
        snprintf(trap->msg, sizeof trap->msg, "more than %d progressive scans", JPEG_MAX_SCANS);
        longjmp(trap->jmp, 1);
    }
}

typedef struct {
    jpeg_trap trap; /* first */
    struct jpeg_decompress_struct cinfo;
    struct jpeg_error_mgr jerr;
    struct jpeg_progress_mgr progress;
    unsigned char *row;
    nst_image img;
} jpeg_load_job;

static unsigned exif_u16(const unsigned char *p, int le) {
    return le ? (unsigned)p[0] | (unsigned)p[1] << 8 : (unsigned)p[0] << 8 | (unsigned)p[1];
}

static unsigned long exif_u32(const unsigned char *p, int le) {
    return le ? (unsigned long)p[0] | (unsigned long)p[1] << 8 | (unsigned long)p[2] << 16 |
                    (unsigned long)p[3] << 24
              : (unsigned long)p[0] << 24 | (unsigned long)p[1] << 16 | (unsigned long)p[2] << 8 |
                    (unsigned long)p[3];
}

/* The EXIF Orientation tag (0x0112) of IFD0 in an APP1 "Exif\0\0" marker: 1..8, or 1
 * when absent or unreadable. Every offset is checked against the marker's length;
 * anything malformed is ignored. */
static int exif_orientation(j_decompress_ptr cinfo) {
    for (jpeg_saved_marker_ptr m = cinfo->marker_list; m; m = m->next) {
        if (m->marker != JPEG_APP0 + 1 || m->data_length < 6 + 8 ||
            memcmp(m->data, "Exif\0\0", 6) != 0)
            continue;
        const unsigned char *t = m->data + 6; /* the TIFF header; offsets count from here */
        size_t n = m->data_length - 6;
        int le;
        if (t[0] == 'I' && t[1] == 'I') le = 1;
        else if (t[0] == 'M' && t[1] == 'M') le = 0;
        else continue;
        if (exif_u16(t + 2, le) != 42) continue;
        unsigned long ifd = exif_u32(t + 4, le);
        if (ifd > n || n - ifd < 2) continue;
        unsigned count = exif_u16(t + ifd, le);
        for (unsigned i = 0; i < count; i++) {
            size_t e = (size_t)ifd + 2 + (size_t)i * 12;
            if (e > n || n - e < 12) break;
            if (exif_u16(t + e, le) != 0x0112) continue;
            unsigned type = exif_u16(t + e + 2, le);
            unsigned long v = 0;
            if (type == 3) v = exif_u16(t + e + 8, le); /* SHORT, as the standard says */
            else if (type == 4) v = exif_u32(t + e + 8, le); /* LONG, seen from some writers */
            return v >= 1 && v <= 8 ? (int)v : 1;
        }
    }
    return 1;
}

static nst_status jpeg_decode(jpeg_load_job *job, FILE *f, const char *path, size_t max_pixels,
                              nst_error *err) {
    j_decompress_ptr cinfo = &job->cinfo;
    jpeg_create_decompress(cinfo);
    cinfo->progress = &job->progress;
    jpeg_stdio_src(cinfo, f);
    jpeg_save_markers(cinfo, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(cinfo, TRUE);

    nst_status st = check_size(path, cinfo->image_width, cinfo->image_height, max_pixels, err);
    if (st != NST_OK) return st;
    int orientation = exif_orientation(cinfo);

    switch (cinfo->jpeg_color_space) {
    case JCS_GRAYSCALE: cinfo->out_color_space = JCS_GRAYSCALE; break;
    case JCS_CMYK:
    case JCS_YCCK: cinfo->out_color_space = JCS_CMYK; break; /* libjpeg turns YCCK into CMYK */
    default: cinfo->out_color_space = JCS_RGB; break;
    }
    cinfo->dct_method = JDCT_ISLOW; /* the accurate one */
    jpeg_start_decompress(cinfo);

    int w = (int)cinfo->output_width, h = (int)cinfo->output_height;
    int nc = cinfo->output_components;
    if (w < 1 || h < 1 || !(nc == 1 || nc == 3 || nc == 4))
        return nst_fail(err, NST_ERR_FORMAT, "%s: unsupported JPEG layout", path);
    /* Photoshop writes CMYK inverted (255 = no ink) and says so with an Adobe marker,
     * which is nearly every CMYK JPEG there is; without the marker assume plain CMYK. */
    int inverted = cinfo->saw_Adobe_marker;

    /* Orientations 5..8 swap the axes. The source pixel (x, y) of each row goes to
     * output pixel d0 + x * step. */
    int ow = orientation >= 5 ? h : w, oh = orientation >= 5 ? w : h;
    st = alloc_for(&job->img, path, ow, oh, err);
    if (st != NST_OK) return st;
    job->row = nst_alloc_array((size_t)w, (size_t)nc);
    if (!job->row) return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", path);

    while (cinfo->output_scanline < cinfo->output_height) {
        ptrdiff_t y = cinfo->output_scanline, d0, step;
        JSAMPROW rowp = job->row;
        if (jpeg_read_scanlines(cinfo, &rowp, 1) != 1)
            return nst_fail(err, NST_ERR_FORMAT, "%s: truncated JPEG", path);
        switch (orientation) {
        default: d0 = y * ow, step = 1; break;
        case 2: d0 = y * ow + (w - 1), step = -1; break;
        case 3: d0 = (h - 1 - y) * ow + (w - 1), step = -1; break;
        case 4: d0 = (h - 1 - y) * ow, step = 1; break;
        case 5: d0 = y, step = ow; break;
        case 6: d0 = h - 1 - y, step = ow; break;
        case 7: d0 = (ptrdiff_t)(w - 1) * ow + (h - 1 - y), step = -ow; break;
        case 8: d0 = (ptrdiff_t)(w - 1) * ow + y, step = -ow; break;
        }
        const unsigned char *s = job->row;
        for (int x = 0; x < w; x++, s += nc) {
            float *d = job->img.pixels + 3 * (d0 + step * x);
            if (nc == 1) {
                d[0] = d[1] = d[2] = s[0];
            } else if (nc == 3) {
                d[0] = s[0], d[1] = s[1], d[2] = s[2];
            } else {
                float c = s[0], m = s[1], yy = s[2], k = s[3];
                if (!inverted) c = 255 - c, m = 255 - m, yy = 255 - yy, k = 255 - k;
                d[0] = c * k / 255.0f, d[1] = m * k / 255.0f, d[2] = yy * k / 255.0f;
            }
        }
    }
    /* No jpeg_finish_decompress: every pixel is in, and anything after the last scan
     * (trailing markers, garbage) does not change the image. */
    return NST_OK;
}

static nst_status load_jpeg(nst_image *out, FILE *f, const char *path, size_t max_pixels,
                            nst_error *err) {
    jpeg_load_job *job = calloc(1, sizeof *job);
    if (!job) return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", path);
    job->cinfo.err = jpeg_std_error(&job->jerr);
    job->jerr.error_exit = jpeg_on_error;
    job->jerr.emit_message = jpeg_on_message;
    job->jerr.output_message = jpeg_silent;
    job->progress.progress_monitor = jpeg_on_progress;
    job->cinfo.client_data = &job->trap;

    nst_status st;
    if (setjmp(job->trap.jmp)) {
        j_decompress_ptr c = &job->cinfo;
        if (job->trap.code == JERR_IMAGE_TOO_BIG) /* libjpeg's own limit of 65500 per side */
            st = nst_fail(err, NST_ERR_LIMIT, "%s: image is %ux%u pixels, more than the limit of %d per side",
                          path, (unsigned)c->image_width, (unsigned)c->image_height, (int)JPEG_MAX_DIMENSION);
        else if (job->trap.code == JWRN_JPEG_EOF)
            st = nst_fail(err, NST_ERR_FORMAT, "%s: truncated JPEG (%s)", path, job->trap.msg);
        else
            st = nst_fail(err, NST_ERR_FORMAT, "%s: corrupt JPEG (%s)", path, job->trap.msg);
    } else {
        st = jpeg_decode(job, f, path, max_pixels, err);
    }

    jpeg_destroy_decompress(&job->cinfo);
    free(job->row);
    if (st == NST_OK)
        *out = job->img;
    else
        nst_image_free(&job->img);
    free(job);
    return st;
}

typedef struct {
    jpeg_trap trap; /* first */
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr jerr;
    unsigned char *row;
} jpeg_save_job;

static nst_status jpeg_encode(jpeg_save_job *job, const nst_image *img, FILE *f) {
    j_compress_ptr cinfo = &job->cinfo;
    jpeg_create_compress(cinfo);
    jpeg_stdio_dest(cinfo, f);
    cinfo->image_width = (JDIMENSION)img->width;
    cinfo->image_height = (JDIMENSION)img->height;
    cinfo->input_components = 3;
    cinfo->in_color_space = JCS_RGB;
    jpeg_set_defaults(cinfo);
    jpeg_set_quality(cinfo, 95, TRUE);
    /* 4:4:4: no chroma subsampling, which would smear the fine colour detail that
     * style transfer produces. */
    for (int c = 0; c < cinfo->num_components; c++)
        cinfo->comp_info[c].h_samp_factor = cinfo->comp_info[c].v_samp_factor = 1;
    cinfo->optimize_coding = TRUE;
    cinfo->dct_method = JDCT_ISLOW;
    jpeg_start_compress(cinfo, TRUE);
    size_t n = (size_t)img->width * 3;
    while (cinfo->next_scanline < cinfo->image_height) {
        const float *src = img->pixels + (size_t)cinfo->next_scanline * n;
        for (size_t i = 0; i < n; i++) job->row[i] = to_byte(src[i]);
        JSAMPROW rowp = job->row;
        jpeg_write_scanlines(cinfo, &rowp, 1);
    }
    jpeg_finish_compress(cinfo);
    return NST_OK;
}

static nst_status save_jpeg(const nst_image *img, FILE *f, const char *path, nst_error *err) {
    jpeg_save_job *job = calloc(1, sizeof *job);
    if (job) job->row = nst_alloc_array((size_t)img->width, 3);
    if (!job || !job->row) {
        free(job);
        return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", path);
    }
    job->cinfo.err = jpeg_std_error(&job->jerr);
    job->jerr.error_exit = jpeg_on_error;
    job->jerr.output_message = jpeg_silent;
    job->cinfo.client_data = &job->trap;

    nst_status st;
    if (setjmp(job->trap.jmp))
        st = nst_fail(err, NST_ERR_IO, "%s: cannot write JPEG: %s", path, job->trap.msg);
    else
        st = jpeg_encode(job, img, f);

    jpeg_destroy_compress(&job->cinfo);
    free(job->row);
    free(job);
    return st;
}

/* ------------------------------------------------------------------------- */
/* PPM / PGM (binary P6 / P5)                                                */
/* ------------------------------------------------------------------------- */

/* Reads a header number, skipping whitespace and # comments; leaves the character after
 * it unread. Returns 0 if there is no number or it is absurdly large. */
static int ppm_number(FILE *f, unsigned long *out) {
    int c = getc(f);
    for (;;) {
        if (c == '#') {
            while (c != '\n' && c != '\r' && c != EOF) c = getc(f);
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') {
            c = getc(f);
        } else {
            break;
        }
    }
    if (c < '0' || c > '9') return 0;
    unsigned long v = 0;
    while (c >= '0' && c <= '9') {
        v = v * 10 + (unsigned long)(c - '0');
        if (v > 1000000000UL) return 0;
        c = getc(f);
    }
    if (c != EOF) ungetc(c, f);
    *out = v;
    return 1;
}

static nst_status load_ppm(nst_image *out, FILE *f, const char *path, size_t max_pixels,
                           nst_error *err) {
    getc(f); /* 'P' */
    int channels = getc(f) == '6' ? 3 : 1; /* "P6" or "P5", checked by the caller */
    unsigned long w, h, maxval;
    if (!ppm_number(f, &w) || !ppm_number(f, &h) || !ppm_number(f, &maxval) || maxval < 1 ||
        maxval > 65535)
        return nst_fail(err, NST_ERR_FORMAT, "%s: corrupt PPM header", path);
    int c = getc(f); /* exactly one whitespace character before the pixels */
    if (!(c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'))
        return nst_fail(err, NST_ERR_FORMAT, "%s: corrupt PPM header", path);
    nst_status st = check_size(path, w, h, max_pixels, err);
    if (st != NST_OK) return st;

    nst_image img = {0};
    st = alloc_for(&img, path, (int)w, (int)h, err);
    if (st != NST_OK) return st;
    size_t bytes = maxval > 255 ? 2 : 1, n = (size_t)w * channels;
    unsigned char *row = nst_alloc_array(n, bytes);
    if (!row) {
        nst_image_free(&img);
        return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", path);
    }
    double scale = 255.0 / (double)maxval;
    for (unsigned long y = 0; y < h; y++) {
        if (fread(row, bytes, n, f) != n) {
            free(row);
            nst_image_free(&img);
            return nst_fail(err, NST_ERR_FORMAT, "%s: truncated PPM", path);
        }
        float *d = img.pixels + (size_t)y * w * 3;
        for (size_t i = 0; i < n; i++) {
            unsigned v = bytes == 1 ? row[i] : (unsigned)row[2 * i] << 8 | row[2 * i + 1];
            float s = v >= maxval ? 255.0f : (float)(v * scale);
            if (channels == 3) d[i] = s;
            else d[3 * i] = d[3 * i + 1] = d[3 * i + 2] = s;
        }
    }
    free(row);
    *out = img;
    return NST_OK;
}

/* ------------------------------------------------------------------------- */
/* Public entry points                                                       */
/* ------------------------------------------------------------------------- */

nst_status nst_image_load(nst_image *img, const char *path, const nst_limits *limits, nst_error *err) {
    if (!img || !path) return nst_fail(err, NST_ERR_ARG, "nst_image_load: NULL argument");
    memset(img, 0, sizeof *img);
    FILE *f = fopen(path, "rb");
    if (!f) return nst_fail(err, NST_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t max_pixels = nst_limit_pixels(limits);
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode)) {
        nst_status st = nst_check_file_size(path, (unsigned long long)sb.st_size, limits, err);
        if (st != NST_OK) {
            fclose(f);
            return st;
        }
    }

    unsigned char magic[8];
    size_t n = fread(magic, 1, sizeof magic, f);
    nst_status st;
    if (ferror(f)) { /* e.g. a directory */
        st = nst_fail(err, NST_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    } else if (n == 0) {
        st = nst_fail(err, NST_ERR_FORMAT, "%s: empty file, not an image", path);
    } else if (fseek(f, 0, SEEK_SET) != 0) {
        st = nst_fail(err, NST_ERR_IO, "%s: cannot seek: %s", path, strerror(errno));
    } else if (n == 8 && memcmp(magic, "\x89PNG\r\n\x1a\n", 8) == 0) {
        st = load_png(img, f, path, max_pixels, err);
    } else if (n >= 3 && magic[0] == 0xFF && magic[1] == 0xD8 && magic[2] == 0xFF) {
        st = load_jpeg(img, f, path, max_pixels, err);
    } else if (n >= 3 && magic[0] == 'P' && (magic[1] == '6' || magic[1] == '5') &&
               magic[2] != 0 && strchr(" \t\n\r\v\f#", magic[2])) {
        st = load_ppm(img, f, path, max_pixels, err);
    } else {
        st = nst_fail(err, NST_ERR_FORMAT, "%s: not a PNG or JPEG image", path);
    }
    fclose(f);
    return st;
}

nst_status nst_image_save(const nst_image *img, const char *path, nst_error *err) {
    if (!path) return nst_fail(err, NST_ERR_ARG, "nst_image_save: NULL path");
    if (!img || !img->pixels || img->width < 1 || img->height < 1 ||
        img->width > NST_MAX_DIMENSION || img->height > NST_MAX_DIMENSION)
        return nst_fail(err, NST_ERR_ARG, "%s: cannot save an empty or invalid image", path);

    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    const char *ext = dot && (!slash || dot > slash) ? dot + 1 : "";
    int is_png = strcasecmp(ext, "png") == 0;
    int is_jpeg = strcasecmp(ext, "jpg") == 0 || strcasecmp(ext, "jpeg") == 0;
    if (!is_png && !is_jpeg)
        return nst_fail(err, NST_ERR_ARG,
                        "%s: unknown image file extension (supported: .png, .jpg, .jpeg)", path);

    nst_atomic_file af;
    nst_status st = nst_atomic_open(&af, path, err);
    if (st != NST_OK) return st;
    st = is_png ? save_png(img, af.fp, path, err) : save_jpeg(img, af.fp, path, err);
    if (st != NST_OK) {
        nst_atomic_abort(&af);
        return st;
    }
    return nst_atomic_commit(&af, err);
}
