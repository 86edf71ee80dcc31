/* jpeg.c - JPEG through libjpeg(-turbo), from and to memory: grey, YCbCr/RGB, CMYK and
 * YCCK (Adobe inverted or plain), progressive with a cap on the scans; EXIF orientation
 * applied while decoding; ICC (APP2) and EXIF (APP1) both ways.
 *
 * libjpeg reports errors by longjmp; as in png.c, everything a call owns lives in a
 * heap-allocated job, and the function that calls setjmp holds nothing else. */
#include "image/image_internal.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h> /* message codes, to tell damaged data from harmless warnings */

/* Progressive JPEGs can carry thousands of tiny scans that each cost a full pass over
 * the coefficients: a few kilobytes of input could keep the decoder busy for minutes.
 * Real encoders use at most a dozen or so. */
#define JPEG_MAX_SCANS 1000

/* An APP1 marker holds at most 65533 bytes of payload, of which "Exif\0\0" takes 6. */
#define JPEG_MAX_EXIF (65533 - 6)

/* Where libjpeg's error handler jumps to; the first member of both job structs, so that
 * client_data can point at either. */
typedef struct {
    jmp_buf jmp;
    char msg[JMSG_LENGTH_MAX];
    int code; /* libjpeg's message code, or -1 for our own checks */
} jpeg_trap;

static void on_error(j_common_ptr cinfo) {
    jpeg_trap *trap = cinfo->client_data;
    trap->code = cinfo->err->msg_code;
    (*cinfo->err->format_message)(cinfo, trap->msg);
    longjmp(trap->jmp, 1);
}

/* Warnings (level -1) that mean the entropy-coded data is damaged or missing: libjpeg
 * would fill the rest of the image with grey and carry on, we fail instead. The other
 * warnings (unknown JFIF revision, extraneous bytes before a marker, a bad ICC chunk,
 * ...) are harmless and common in real files. Traces (level >= 0) are ignored. */
static void on_message(j_common_ptr cinfo, int level) {
    if (level >= 0) return;
    cinfo->err->num_warnings++;
    switch (cinfo->err->msg_code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_ARITH_BAD_CODE:
    case JWRN_MUST_RESYNC: on_error(cinfo); break;
    default: break;
    }
}

static void silent(j_common_ptr cinfo) { (void)cinfo; }

static void on_progress(j_common_ptr cinfo) {
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
    JOCTET *icc; /* from jpeg_read_icc_profile (malloc'd) */
    nst_image img;
} load_job;

/* The first APP1 "Exif\0\0" marker's TIFF structure, or NULL. */
static const unsigned char *find_exif(j_decompress_ptr cinfo, size_t *n) {
    for (jpeg_saved_marker_ptr m = cinfo->marker_list; m; m = m->next) {
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 + 8 && memcmp(m->data, "Exif\0\0", 6) == 0) {
            *n = m->data_length - 6;
            return m->data + 6;
        }
    }
    return NULL;
}

static nst_status decode(load_job *job, const img_input *in, nst_error *err) {
    j_decompress_ptr cinfo = &job->cinfo;
    jpeg_create_decompress(cinfo);
    cinfo->progress = &job->progress;
    jpeg_mem_src(cinfo, in->data, (unsigned long)in->size);
    jpeg_save_markers(cinfo, JPEG_APP0 + 1, 0xFFFF);
    jpeg_save_markers(cinfo, JPEG_APP0 + 2, 0xFFFF);
    jpeg_read_header(cinfo, TRUE);

    nst_status st = img_check_size(in->name, cinfo->image_width, cinfo->image_height, in->max_pixels, err);
    if (st != NST_OK) return st;
    size_t exif_len = 0;
    const unsigned char *exif = find_exif(cinfo, &exif_len);
    int orientation = img_exif_orientation(exif, exif_len);
    unsigned int icc_len = 0;
    int cmyk = cinfo->jpeg_color_space == JCS_CMYK || cinfo->jpeg_color_space == JCS_YCCK;
    /* A CMYK profile does not describe the RGB that comes out; img_set_icc drops it. */
    if (jpeg_read_icc_profile(cinfo, &job->icc, &icc_len) && !img_set_icc(&job->img, job->icc, icc_len))
        return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", in->name);
    if (exif && !img_set_exif(&job->img, exif, exif_len))
        return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", in->name);

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
    if (w < 1 || h < 1 || !(nc == 1 || nc == 3 || nc == 4) || (nc == 4) != cmyk)
        return nst_fail(err, NST_ERR_FORMAT, "%s: unsupported JPEG layout", in->name);
    /* Photoshop writes CMYK inverted (255 = no ink) and says so with an Adobe marker,
     * which is nearly every CMYK JPEG there is; without the marker assume plain CMYK. */
    int inverted = cinfo->saw_Adobe_marker;

    /* Orientations 5..8 swap the axes; each source row is stored straight to where the
     * upright image has it. The metadata is kept in job->img across the allocation. */
    int ow = orientation >= 5 ? h : w, oh = orientation >= 5 ? w : h;
    nst_image meta = job->img;
    memset(&job->img, 0, sizeof job->img);
    st = img_alloc(&job->img, in->name, ow, oh, 0, err);
    job->img.icc = meta.icc, job->img.icc_size = meta.icc_size;
    job->img.exif = meta.exif, job->img.exif_size = meta.exif_size;
    if (st != NST_OK) return st;
    job->img.bit_depth = 8;
    job->row = nst_alloc_array((size_t)w, (size_t)nc);
    if (!job->row) return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", in->name);

    while (cinfo->output_scanline < cinfo->output_height) {
        ptrdiff_t d0, step;
        img_orient_row(orientation, w, h, (int)cinfo->output_scanline, &d0, &step);
        JSAMPROW rowp = job->row;
        if (jpeg_read_scanlines(cinfo, &rowp, 1) != 1)
            return nst_fail(err, NST_ERR_FORMAT, "%s: truncated JPEG", in->name);
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

nst_status img_decode_jpeg(const img_input *in, nst_image *out, nst_error *err) {
    load_job *job = calloc(1, sizeof *job);
    if (!job) return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", in->name);
    job->cinfo.err = jpeg_std_error(&job->jerr);
    job->jerr.error_exit = on_error;
    job->jerr.emit_message = on_message;
    job->jerr.output_message = silent;
    job->progress.progress_monitor = on_progress;
    job->cinfo.client_data = &job->trap;

    nst_status st;
    if (setjmp(job->trap.jmp)) {
        j_decompress_ptr c = &job->cinfo;
        if (job->trap.code == JERR_IMAGE_TOO_BIG) /* libjpeg's own limit of 65500 per side */
            st = nst_fail(err, NST_ERR_LIMIT, "%s: image is %ux%u pixels, more than the limit of %d per side",
                          in->name, (unsigned)c->image_width, (unsigned)c->image_height, (int)JPEG_MAX_DIMENSION);
        else if (job->trap.code == JWRN_JPEG_EOF || job->trap.code == JERR_INPUT_EOF)
            st = nst_fail(err, NST_ERR_FORMAT, "%s: truncated JPEG (%s)", in->name, job->trap.msg);
        else
            st = nst_fail(err, NST_ERR_FORMAT, "%s: corrupt JPEG (%s)", in->name, job->trap.msg);
    } else {
        st = decode(job, in, err);
    }

    jpeg_destroy_decompress(&job->cinfo);
    free(job->row);
    free(job->icc);
    if (st == NST_OK)
        *out = job->img;
    else
        nst_image_free(&job->img);
    free(job);
    return st;
}

/* ---- writing --------------------------------------------------------------------------- */

typedef struct {
    jpeg_trap trap; /* first */
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr jerr;
    struct jpeg_destination_mgr dest;
    img_buf *out;
    unsigned char *row;
    unsigned char *app1; /* "Exif\0\0" + the TIFF structure */
    unsigned char chunk[65536];
} save_job;

/* A destination that appends to the job's buffer through a fixed chunk. */
static void dest_init(j_compress_ptr cinfo) {
    save_job *job = (save_job *)cinfo->client_data;
    job->dest.next_output_byte = job->chunk;
    job->dest.free_in_buffer = sizeof job->chunk;
}

static boolean dest_empty(j_compress_ptr cinfo) {
    save_job *job = (save_job *)cinfo->client_data;
    if (!img_buf_write(job->out, job->chunk, sizeof job->chunk)) ERREXIT(cinfo, JERR_OUT_OF_MEMORY);
    dest_init(cinfo);
    return TRUE;
}

static void dest_term(j_compress_ptr cinfo) {
    save_job *job = (save_job *)cinfo->client_data;
    if (!img_buf_write(job->out, job->chunk, sizeof job->chunk - job->dest.free_in_buffer))
        ERREXIT(cinfo, JERR_OUT_OF_MEMORY);
}

static nst_status encode(save_job *job, const nst_image *img, const img_enc *o) {
    j_compress_ptr cinfo = &job->cinfo;
    jpeg_create_compress(cinfo);
    job->dest.init_destination = dest_init;
    job->dest.empty_output_buffer = dest_empty;
    job->dest.term_destination = dest_term;
    cinfo->dest = &job->dest;
    cinfo->image_width = (JDIMENSION)img->width;
    cinfo->image_height = (JDIMENSION)img->height;
    cinfo->input_components = 3;
    cinfo->in_color_space = JCS_RGB;
    jpeg_set_defaults(cinfo);
    jpeg_set_quality(cinfo, o->quality, TRUE);
    /* 4:4:4: no chroma subsampling, which would smear the fine colour detail that style
     * transfer produces. */
    for (int c = 0; c < cinfo->num_components; c++)
        cinfo->comp_info[c].h_samp_factor = cinfo->comp_info[c].v_samp_factor = 1;
    cinfo->optimize_coding = TRUE;
    cinfo->dct_method = JDCT_ISLOW;
    jpeg_start_compress(cinfo, TRUE);
    if (job->app1) jpeg_write_marker(cinfo, JPEG_APP0 + 1, job->app1, (unsigned)(6 + o->exif_size));
    if (o->icc && o->icc_size <= 0xffffffffu) jpeg_write_icc_profile(cinfo, o->icc, (unsigned)o->icc_size);
    size_t n = (size_t)img->width * 3;
    while (cinfo->next_scanline < cinfo->image_height) {
        const float *src = img->pixels + (size_t)cinfo->next_scanline * n;
        for (size_t i = 0; i < n; i++) job->row[i] = img_to_u8(src[i]);
        JSAMPROW rowp = job->row;
        jpeg_write_scanlines(cinfo, &rowp, 1);
    }
    jpeg_finish_compress(cinfo);
    return NST_OK;
}

nst_status img_encode_jpeg(const nst_image *img, const img_enc *o, img_buf *out, const char *name, nst_error *err) {
    if (img->width > JPEG_MAX_DIMENSION || img->height > JPEG_MAX_DIMENSION)
        return nst_fail(err, NST_ERR_ARG, "%s: a JPEG holds at most %dx%d pixels, the image is %dx%d", name,
                        (int)JPEG_MAX_DIMENSION, (int)JPEG_MAX_DIMENSION, img->width, img->height);
    save_job *job = calloc(1, sizeof *job);
    if (job) job->row = nst_alloc_array((size_t)img->width, 3);
    /* EXIF too large for one APP1 marker is left out (JPEG has no way to split it). */
    if (job && o->exif && o->exif_size <= JPEG_MAX_EXIF && (job->app1 = malloc(6 + o->exif_size))) {
        memcpy(job->app1, "Exif\0\0", 6);
        memcpy(job->app1 + 6, o->exif, o->exif_size);
    }
    if (!job || !job->row || (o->exif && o->exif_size <= JPEG_MAX_EXIF && !job->app1)) {
        if (job) free(job->row);
        free(job);
        return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", name);
    }
    job->out = out;
    job->cinfo.err = jpeg_std_error(&job->jerr);
    job->jerr.error_exit = on_error;
    job->jerr.output_message = silent;
    job->cinfo.client_data = &job->trap;

    nst_status st;
    if (setjmp(job->trap.jmp))
        st = nst_fail(err, job->trap.code == JERR_OUT_OF_MEMORY ? NST_ERR_NOMEM : NST_ERR_IO,
                      "%s: cannot write JPEG: %s", name, job->trap.msg);
    else
        st = encode(job, img, o);

    jpeg_destroy_compress(&job->cinfo);
    free(job->row);
    free(job->app1);
    free(job);
    return st;
}
