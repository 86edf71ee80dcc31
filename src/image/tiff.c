/* tiff.c - TIFF through libtiff over memory (TIFFClientOpenExt): the first page; 8 and
 * 16-bit grey, RGB, palette and CMYK, contiguous or planar, strips or tiles, associated
 * or unassociated alpha, read here at full precision; other 8-bit layouts (YCbCr, 1-4
 * bit, Lab, ...) through libtiff's RGBA reader. Writes 8 or 16-bit RGB/RGBA (unassociated
 * alpha), deflate (else LZW) with the horizontal predictor, and the ICC profile.
 *
 * libtiff's messages go to per-file handlers that keep the first error for our message,
 * so the library prints nothing. */
#include "image/image_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tiffio.h>

/* A tile may be larger than the image (a 256x256 tile for a 100x100 image is normal), up
 * to this many pixels; beyond it a tiny file could make us allocate gigabytes. */
#define TIFF_MAX_TILE_PIXELS ((uint64_t)1 << 22)
/* Samples per pixel read natively: colour + alpha + a few unused extras. */
#define TIFF_MAX_SAMPLES 8

/* The memory "file" libtiff reads from or writes to. */
typedef struct {
    const unsigned char *data; /* reading */
    size_t size;
    img_buf *out; /* writing */
    uint64_t pos;
    char msg[300]; /* libtiff's first error */
} tiff_io;

static int on_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
    (void)tif;
    tiff_io *io = user;
    if (io->msg[0]) return 1;
    char text[256];
    vsnprintf(text, sizeof text, fmt, ap);
    snprintf(io->msg, sizeof io->msg, "%s%s%s", module ? module : "", module ? ": " : "", text);
    for (char *p = io->msg; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    return 1; /* handled: libtiff's global handler (stderr) is not called */
}

static int on_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
    (void)tif, (void)user, (void)module, (void)fmt, (void)ap;
    return 1;
}

static size_t io_size_now(const tiff_io *io) { return io->out ? io->out->size : io->size; }

static tmsize_t io_read(thandle_t h, void *buf, tmsize_t n) {
    tiff_io *io = (tiff_io *)h;
    const unsigned char *d = io->out ? io->out->data : io->data;
    size_t size = io_size_now(io);
    if (n <= 0 || io->pos >= size) return 0;
    size_t k = size - (size_t)io->pos < (size_t)n ? size - (size_t)io->pos : (size_t)n;
    memcpy(buf, d + io->pos, k);
    io->pos += k;
    return (tmsize_t)k;
}

static tmsize_t io_write(thandle_t h, void *buf, tmsize_t n) {
    tiff_io *io = (tiff_io *)h;
    if (!io->out || n < 0 || io->pos > SIZE_MAX) return -1;
    if (!img_buf_write_at(io->out, (size_t)io->pos, buf, (size_t)n)) return -1;
    io->pos += (uint64_t)n;
    return n;
}

static toff_t io_seek(thandle_t h, toff_t off, int whence) {
    tiff_io *io = (tiff_io *)h;
    uint64_t to = off;
    if (whence != SEEK_SET) {
        /* SEEK_CUR and SEEK_END may go backwards: off is then a negative number */
        uint64_t base = whence == SEEK_CUR ? io->pos : io_size_now(io);
        int64_t o = (int64_t)off;
        if (o < 0 && (uint64_t)(-(o + 1)) >= base) return (toff_t)-1;
        to = base + (uint64_t)o;
    }
    if (to > (uint64_t)SIZE_MAX / 2) return (toff_t)-1;
    io->pos = to;
    return to;
}

static int io_close(thandle_t h) { (void)h; return 0; }

static toff_t io_size(thandle_t h) { return io_size_now((tiff_io *)h); }

/* Reading maps the data as it is: libtiff then checks every strip against its size and
 * copies nothing. */
static int io_map(thandle_t h, void **base, toff_t *size) {
    tiff_io *io = (tiff_io *)h;
    if (io->out) return 0;
    *base = (void *)io->data;
    *size = io->size;
    return 1;
}

static void io_unmap(thandle_t h, void *base, toff_t size) { (void)h, (void)base, (void)size; }

static TIFF *open_tiff(tiff_io *io, const char *name, const char *mode, size_t max_alloc) {
    TIFFOpenOptions *opts = TIFFOpenOptionsAlloc();
    if (!opts) return NULL;
    TIFFOpenOptionsSetErrorHandlerExtR(opts, on_error, io);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, on_warning, io);
    if (max_alloc) TIFFOpenOptionsSetMaxSingleMemAlloc(opts, (tmsize_t)max_alloc);
    TIFF *tif = TIFFClientOpenExt(name, mode, (thandle_t)io, io_read, io_write, io_seek, io_close, io_size, io_map,
                                  io_unmap, opts);
    TIFFOpenOptionsFree(opts);
    return tif;
}

/* ---- reading --------------------------------------------------------------------------- */

typedef struct {
    uint16_t photometric, bytes, spp;
    int ncol;    /* colour samples: 1 (grey, palette), 3 (RGB), 4 (CMYK) */
    int alpha;   /* index of the alpha sample, or -1 */
    int assoc;   /* the alpha is associated (colour premultiplied) */
    float *lut;  /* palette: 3 * entries, 0..255 */
    double scale; /* sample to 0..255 */
    unsigned maxv;
} layout;

static unsigned sample(const unsigned char *p, int bytes) {
    if (bytes == 1) return *p;
    uint16_t v;
    memcpy(&v, p, 2); /* libtiff gives 16-bit samples in host order */
    return v;
}

/* n pixels whose sample c is at base[c] + i * stride (bytes) into rgb and alpha. */
static void convert(const layout *L, const unsigned char *const *base, size_t stride, int n, float *rgb,
                    float *alpha) {
    for (int i = 0; i < n; i++, rgb += 3) {
        unsigned v[5];
        for (int c = 0; c < L->ncol; c++) v[c] = sample(base[c] + (size_t)i * stride, L->bytes);
        float r, g, b;
        switch (L->photometric) {
        case PHOTOMETRIC_MINISWHITE: r = g = b = (float)((L->maxv - v[0]) * L->scale); break;
        case PHOTOMETRIC_PALETTE:
            r = L->lut[3 * v[0]], g = L->lut[3 * v[0] + 1], b = L->lut[3 * v[0] + 2];
            break;
        case PHOTOMETRIC_RGB:
            r = (float)(v[0] * L->scale), g = (float)(v[1] * L->scale), b = (float)(v[2] * L->scale);
            break;
        case PHOTOMETRIC_SEPARATED: {
            double k = (L->maxv - v[3]) * L->scale / 255.0;
            r = (float)((L->maxv - v[0]) * L->scale * k);
            g = (float)((L->maxv - v[1]) * L->scale * k);
            b = (float)((L->maxv - v[2]) * L->scale * k);
            break;
        }
        default: r = g = b = (float)(v[0] * L->scale); break;
        }
        if (L->alpha < 0) {
            rgb[0] = r, rgb[1] = g, rgb[2] = b;
            continue;
        }
        float a = (float)(sample(base[L->alpha] + (size_t)i * stride, L->bytes) * L->scale);
        if (L->assoc && L->ncol != 4) {
            /* Premultiplied: colour on white is c*a + 255*(1-a) = stored + 255 - alpha. */
            float add = 255.0f - a;
            rgb[0] = fminf(r + add, 255.0f), rgb[1] = fminf(g + add, 255.0f), rgb[2] = fminf(b + add, 255.0f);
            *alpha = a;
        } else {
            img_put(rgb, alpha, r, g, b, a);
        }
        alpha++;
    }
}

typedef struct {
    tiff_io io;
    TIFF *tif;
    unsigned char *buf[TIFF_MAX_SAMPLES];
    uint32_t *raster;
    float *lut;
    nst_image img;
} tiff_job;

static nst_status read_fail(tiff_job *job, const char *name, nst_error *err) {
    return nst_fail(err, NST_ERR_FORMAT, "%s: truncated or corrupt TIFF (%s)", name,
                    job->io.msg[0] ? job->io.msg : "unreadable data");
}

/* Grey, RGB, palette or CMYK at 8 or 16 bits. */
static nst_status read_native(tiff_job *job, const layout *L, uint32_t w, uint32_t h, uint16_t planar,
                              const char *name, nst_error *err) {
    TIFF *tif = job->tif;
    int planes = planar == PLANARCONFIG_SEPARATE ? L->spp : 1;
    size_t px_bytes = (size_t)L->bytes * (planes == 1 ? L->spp : 1); /* bytes per pixel in one buffer */
    size_t stride = planes == 1 ? (size_t)L->bytes * L->spp : L->bytes;
    const unsigned char *base[TIFF_MAX_SAMPLES];
    float *px = job->img.pixels, *al = job->img.alpha;

    if (TIFFIsTiled(tif)) {
        uint32_t tw = 0, th = 0;
        TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw);
        TIFFGetField(tif, TIFFTAG_TILELENGTH, &th);
        uint64_t area = (uint64_t)tw * th;
        if (tw == 0 || th == 0 || (area > (uint64_t)w * h && area > TIFF_MAX_TILE_PIXELS))
            return nst_fail(err, NST_ERR_FORMAT, "%s: corrupt TIFF (tiles of %ux%u for a %ux%u image)", name, tw, th,
                            w, h);
        tmsize_t tsize = TIFFTileSize(tif);
        if (tsize <= 0 || (uint64_t)tsize < area * px_bytes) return read_fail(job, name, err);
        for (int p = 0; p < planes; p++)
            if (!(job->buf[p] = malloc((size_t)tsize)))
                return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", name);
        for (uint32_t ty = 0; ty < h; ty += th) {
            for (uint32_t tx = 0; tx < w; tx += tw) {
                for (int p = 0; p < planes; p++)
                    if (TIFFReadTile(tif, job->buf[p], tx, ty, 0, (uint16_t)p) < 0) return read_fail(job, name, err);
                uint32_t rows = h - ty < th ? h - ty : th, cols = w - tx < tw ? w - tx : tw;
                for (uint32_t r = 0; r < rows; r++) {
                    size_t off = (size_t)r * tw * px_bytes;
                    for (int c = 0; c < L->spp && c < TIFF_MAX_SAMPLES; c++)
                        base[c] = planes == 1 ? job->buf[0] + off + (size_t)c * L->bytes : job->buf[c] + off;
                    size_t at = (size_t)(ty + r) * w + tx;
                    convert(L, base, stride, (int)cols, px + 3 * at, al ? al + at : NULL);
                }
            }
        }
        return NST_OK;
    }

    uint32_t rps = 0;
    TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rps);
    if (rps == 0 || rps > h) rps = h;
    size_t row_bytes = (size_t)w * px_bytes;
    tmsize_t ssize = TIFFVStripSize(tif, rps);
    if (ssize <= 0 || (uint64_t)ssize < (uint64_t)rps * row_bytes) return read_fail(job, name, err);
    for (int p = 0; p < planes; p++)
        if (!(job->buf[p] = malloc((size_t)ssize))) return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", name);
    uint32_t strips = (h + rps - 1) / rps;
    for (uint32_t s = 0; s < strips; s++) {
        uint32_t y0 = s * rps, rows = h - y0 < rps ? h - y0 : rps;
        tmsize_t need = (tmsize_t)((size_t)rows * row_bytes);
        for (int p = 0; p < planes; p++)
            if (TIFFReadEncodedStrip(tif, (uint32_t)p * strips + s, job->buf[p], need) < need)
                return read_fail(job, name, err);
        for (uint32_t r = 0; r < rows; r++) {
            size_t off = (size_t)r * row_bytes;
            for (int c = 0; c < L->spp && c < TIFF_MAX_SAMPLES; c++)
                base[c] = planes == 1 ? job->buf[0] + off + (size_t)c * L->bytes : job->buf[c] + off;
            size_t at = (size_t)(y0 + r) * w;
            convert(L, base, stride, (int)w, px + 3 * at, al ? al + at : NULL);
        }
    }
    return NST_OK;
}

static nst_status decode(tiff_job *job, const img_input *in, nst_error *err) {
    const char *name = in->name;
    /* Nothing libtiff allocates for one image needs more than the image at 16 bytes a
     * pixel: a bound on what a corrupt header can make it allocate. */
    size_t max_alloc = in->max_pixels < ((size_t)1 << 40) ? in->max_pixels * 16 + ((size_t)16 << 20) : 0;
    job->tif = open_tiff(&job->io, name, "r", max_alloc);
    if (!job->tif) return read_fail(job, name, err);
    TIFF *tif = job->tif;

    uint32_t w = 0, h = 0;
    TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w);
    TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h);
    nst_status st = img_check_size(name, w, h, in->max_pixels, err);
    if (st != NST_OK) return st;

    uint16_t bps = 1, spp = 1, planar = PLANARCONFIG_CONTIG, format = SAMPLEFORMAT_UINT, orientation = 1;
    uint16_t photometric = 0, inkset = INKSET_CMYK, n_extra = 0, *extra = NULL;
    TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bps);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
    TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &planar);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &format);
    TIFFGetFieldDefaulted(tif, TIFFTAG_ORIENTATION, &orientation);
    TIFFGetFieldDefaulted(tif, TIFFTAG_INKSET, &inkset);
    TIFFGetFieldDefaulted(tif, TIFFTAG_EXTRASAMPLES, &n_extra, &extra);
    if (!TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &photometric))
        photometric = spp >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK; /* as libtiff's reader guesses */
    if (format != SAMPLEFORMAT_UINT && format != SAMPLEFORMAT_VOID)
        return nst_fail(err, NST_ERR_FORMAT, "%s: TIFF with %s samples is not supported (only unsigned integers)",
                        name, format == SAMPLEFORMAT_IEEEFP ? "floating-point" : "signed");

    layout L = {0};
    L.photometric = photometric, L.spp = spp, L.alpha = -1;
    switch (photometric) {
    case PHOTOMETRIC_MINISBLACK:
    case PHOTOMETRIC_MINISWHITE:
    case PHOTOMETRIC_PALETTE: L.ncol = 1; break;
    case PHOTOMETRIC_RGB: L.ncol = 3; break;
    case PHOTOMETRIC_SEPARATED: L.ncol = inkset == INKSET_CMYK && spp - n_extra == 4 ? 4 : 0; break;
    default: L.ncol = 0; break;
    }
    uint16_t *cmap[3] = {NULL, NULL, NULL};
    if (photometric == PHOTOMETRIC_PALETTE && !TIFFGetField(tif, TIFFTAG_COLORMAP, &cmap[0], &cmap[1], &cmap[2]))
        return nst_fail(err, NST_ERR_FORMAT, "%s: corrupt TIFF (a palette image without a colour map)", name);
    int native = (bps == 8 || bps == 16) && L.ncol > 0 && spp >= L.ncol && spp <= TIFF_MAX_SAMPLES;

    uint32_t icc_n = 0;
    void *icc = NULL;
    if (TIFFGetField(tif, TIFFTAG_ICCPROFILE, &icc_n, &icc) && !img_set_icc(&job->img, icc, icc_n))
        return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", name);
    nst_image meta = job->img; /* img_alloc starts from a zeroed image */
    memset(&job->img, 0, sizeof job->img);

    if (native) {
        L.bytes = bps / 8;
        L.maxv = bps == 16 ? 65535 : 255;
        L.scale = 255.0 / L.maxv;
        if (spp > L.ncol && n_extra >= 1 && extra &&
            (extra[0] == EXTRASAMPLE_ASSOCALPHA || extra[0] == EXTRASAMPLE_UNASSALPHA)) {
            L.alpha = L.ncol;
            L.assoc = extra[0] == EXTRASAMPLE_ASSOCALPHA;
        }
        if (photometric == PHOTOMETRIC_PALETTE) {
            size_t n = (size_t)1 << bps;
            /* Some writers store 8-bit values in the 16-bit colour map. */
            int eight = 1;
            for (size_t i = 0; i < n && eight; i++) eight = cmap[0][i] < 256 && cmap[1][i] < 256 && cmap[2][i] < 256;
            if (!(job->lut = nst_alloc_array(n, 3 * sizeof(float))))
                st = nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", name);
            for (size_t i = 0; job->lut && i < n; i++)
                for (int c = 0; c < 3; c++)
                    job->lut[3 * i + c] = eight ? (float)cmap[c][i] : (float)(cmap[c][i] * 255.0 / 65535.0);
            L.lut = job->lut;
        }
        if (st == NST_OK) st = img_alloc(&job->img, name, (int)w, (int)h, L.alpha >= 0, err);
        job->img.icc = meta.icc, job->img.icc_size = meta.icc_size;
        if (st != NST_OK) return st;
        job->img.bit_depth = bps;
        st = read_native(job, &L, w, h, planar, name, err);
        if (st != NST_OK) return st;
        img_drop_opaque_alpha(&job->img);
        return img_orient(&job->img, orientation, name, err);
    }

    /* Other layouts at 8 bits or less: libtiff's RGBA reader, which also turns the image
     * upright and premultiplies any alpha. */
    job->img = meta;
    char emsg[1024] = "";
    if (bps > 8 || !TIFFRGBAImageOK(tif, emsg))
        return nst_fail(err, NST_ERR_FORMAT, "%s: unsupported TIFF layout (%u-bit, photometric %u, %u samples%s%s)",
                        name, bps, photometric, spp, emsg[0] ? ": " : "", emsg);
    memset(&job->img, 0, sizeof job->img);
    st = img_alloc(&job->img, name, (int)w, (int)h, 1, err);
    job->img.icc = meta.icc, job->img.icc_size = meta.icc_size;
    if (st != NST_OK) return st;
    job->img.bit_depth = 8;
    if (!(job->raster = nst_alloc_array((size_t)w * h, sizeof(uint32_t))))
        return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", name);
    if (!TIFFReadRGBAImageOriented(tif, w, h, job->raster, ORIENTATION_TOPLEFT, 1)) return read_fail(job, name, err);
    for (size_t i = 0, n = (size_t)w * h; i < n; i++) {
        uint32_t p = job->raster[i];
        float a = (float)TIFFGetA(p), add = 255.0f - a;
        float *d = job->img.pixels + 3 * i;
        d[0] = fminf((float)TIFFGetR(p) + add, 255.0f);
        d[1] = fminf((float)TIFFGetG(p) + add, 255.0f);
        d[2] = fminf((float)TIFFGetB(p) + add, 255.0f);
        job->img.alpha[i] = a;
    }
    img_drop_opaque_alpha(&job->img);
    return NST_OK;
}

nst_status img_decode_tiff(const img_input *in, nst_image *out, nst_error *err) {
    tiff_job *job = calloc(1, sizeof *job);
    if (!job) return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", in->name);
    job->io.data = in->data;
    job->io.size = in->size;
    nst_status st = decode(job, in, err);
    if (job->tif) TIFFClose(job->tif);
    for (int p = 0; p < TIFF_MAX_SAMPLES; p++) free(job->buf[p]);
    free(job->raster);
    free(job->lut);
    if (st == NST_OK) *out = job->img;
    else nst_image_free(&job->img);
    free(job);
    return st;
}

/* ---- writing --------------------------------------------------------------------------- */

nst_status img_encode_tiff(const nst_image *img, const img_enc *o, img_buf *out, const char *name, nst_error *err) {
    tiff_io io = {0};
    io.out = out;
    int w = img->width, h = img->height, ch = img->alpha ? 4 : 3, bytes = o->bit_depth == 16 ? 2 : 1;
    unsigned char *row = nst_alloc_array((size_t)w, (size_t)ch * bytes);
    if (!row) return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", name);
    TIFF *tif = open_tiff(&io, name, "w", 0);
    if (!tif) {
        free(row);
        return nst_fail(err, out->failed ? NST_ERR_NOMEM : NST_ERR_IO, "%s: cannot write TIFF: %s", name,
                        io.msg[0] ? io.msg : "libtiff failed");
    }
    uint16_t compression = TIFFIsCODECConfigured(COMPRESSION_ADOBE_DEFLATE) ? COMPRESSION_ADOBE_DEFLATE
                                                                            : COMPRESSION_LZW;
    int ok = TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, (uint32_t)w) && TIFFSetField(tif, TIFFTAG_IMAGELENGTH, (uint32_t)h) &&
             TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, (uint16_t)o->bit_depth) &&
             TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, (uint16_t)ch) &&
             TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_RGB) &&
             TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG) &&
             TIFFSetField(tif, TIFFTAG_ORIENTATION, ORIENTATION_TOPLEFT) &&
             TIFFSetField(tif, TIFFTAG_COMPRESSION, compression) &&
             TIFFSetField(tif, TIFFTAG_PREDICTOR, PREDICTOR_HORIZONTAL) &&
             TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, TIFFDefaultStripSize(tif, 0));
    if (ok && img->alpha) {
        uint16_t extra[1] = {EXTRASAMPLE_UNASSALPHA};
        ok = TIFFSetField(tif, TIFFTAG_EXTRASAMPLES, 1, extra);
    }
    if (ok && o->icc && o->icc_size <= 0xffffffffu) ok = TIFFSetField(tif, TIFFTAG_ICCPROFILE, (uint32_t)o->icc_size, o->icc);
    for (int y = 0; ok && y < h; y++) {
        const float *s = img->pixels + (size_t)y * w * 3;
        const float *al = img->alpha ? img->alpha + (size_t)y * w : NULL;
        for (int x = 0; x < w; x++) {
            float a = al ? al[x] : 255.0f;
            for (int c = 0; c < ch; c++) {
                float v = c < 3 ? (al ? img_uncomposite(s[3 * x + c], a) : s[3 * x + c]) : a;
                size_t i = (size_t)x * ch + c;
                if (bytes == 1) {
                    row[i] = img_to_u8(v);
                } else {
                    uint16_t u = img_to_u16(v); /* host order: libtiff swaps if it must */
                    memcpy(row + 2 * i, &u, 2);
                }
            }
        }
        ok = TIFFWriteScanline(tif, row, (uint32_t)y, 0) >= 0;
    }
    if (ok) ok = TIFFWriteDirectory(tif);
    TIFFClose(tif);
    free(row);
    if (!ok || out->failed)
        return nst_fail(err, out->failed ? NST_ERR_NOMEM : NST_ERR_IO, "%s: cannot write TIFF: %s", name,
                        out->failed ? "out of memory" : io.msg[0] ? io.msg : "libtiff failed");
    return NST_OK;
}
