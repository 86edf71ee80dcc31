/* image_io.c - the image API's entry points: formats by name, extension and content,
 * loading and decoding (dispatched on the magic bytes, never on the name), encoding and
 * atomic saving, and the extras (alpha, ICC, EXIF, bit depth) carried from one image to
 * another. The formats themselves live in png.c, jpeg.c, webp.c, tiff.c, bmp.c, gif.c
 * and ppm.c.
 *
 * Sample values are taken as they are stored (as sRGB): gamma chunks and ICC profiles
 * are not applied, as the networks were trained on such data; the profile is kept so
 * that a result can be saved with it. */
#include "image/image_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- formats --------------------------------------------------------------------------- */

static const struct {
    const char *name;
    nst_format format;
} format_names[] = {
    {"png", NST_FORMAT_PNG},   {"jpg", NST_FORMAT_JPEG}, {"jpeg", NST_FORMAT_JPEG}, {"jpe", NST_FORMAT_JPEG},
    {"webp", NST_FORMAT_WEBP}, {"tif", NST_FORMAT_TIFF}, {"tiff", NST_FORMAT_TIFF}, {"bmp", NST_FORMAT_BMP},
    {"dib", NST_FORMAT_BMP},   {"gif", NST_FORMAT_GIF},  {"ppm", NST_FORMAT_PPM},   {"pgm", NST_FORMAT_PPM},
    {"pnm", NST_FORMAT_PPM},
};

#define WRITABLE_EXTENSIONS ".png, .jpg, .jpeg, .webp, .tif, .tiff"

const char *nst_format_name(nst_format f) {
    switch (f) {
    case NST_FORMAT_AUTO: return "auto";
    case NST_FORMAT_PNG: return "png";
    case NST_FORMAT_JPEG: return "jpeg";
    case NST_FORMAT_WEBP: return "webp";
    case NST_FORMAT_TIFF: return "tiff";
    case NST_FORMAT_BMP: return "bmp";
    case NST_FORMAT_GIF: return "gif";
    case NST_FORMAT_PPM: return "ppm";
    }
    return "unknown";
}

/* The format a name or extension (without the dot) stands for, or AUTO. */
static nst_format format_of(const char *s) {
    for (size_t i = 0; i < sizeof format_names / sizeof format_names[0]; i++)
        if (strcasecmp(s, format_names[i].name) == 0) return format_names[i].format;
    return NST_FORMAT_AUTO;
}

nst_status nst_format_parse(const char *name, nst_format *f, nst_error *err) {
    const char *s = name ? name : "";
    if (s[0] == '.') s++;
    nst_format r = strcasecmp(s, "auto") == 0 ? NST_FORMAT_AUTO : format_of(s);
    if (r == NST_FORMAT_AUTO && strcasecmp(s, "auto") != 0)
        return nst_fail(err, NST_ERR_ARG,
                        "'%s' is not an image format (known: png, jpeg or jpg, webp, tiff or tif, bmp, gif, "
                        "ppm or pgm)",
                        name ? name : "");
    *f = r;
    return NST_OK;
}

nst_status nst_format_for_path(const char *path, nst_format *f, nst_error *err) {
    if (!path) return nst_fail(err, NST_ERR_ARG, "no output path given");
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    const char *ext = dot && (!slash || dot > slash) ? dot + 1 : "";
    nst_format r = ext[0] ? format_of(ext) : NST_FORMAT_AUTO;
    if (r == NST_FORMAT_AUTO)
        return nst_fail(err, NST_ERR_ARG, "%s: unknown image file extension (supported: " WRITABLE_EXTENSIONS ")",
                        path);
    if (!nst_format_writable(r))
        return nst_fail(err, NST_ERR_ARG,
                        "%s: unknown image file extension (supported: " WRITABLE_EXTENSIONS
                        "; nst reads %s but does not write it)",
                        path, r == NST_FORMAT_BMP ? "BMP" : r == NST_FORMAT_GIF ? "GIF" : "PPM");
    *f = r;
    return NST_OK;
}

int nst_format_writable(nst_format f) {
    return f == NST_FORMAT_PNG || f == NST_FORMAT_JPEG || f == NST_FORMAT_WEBP || f == NST_FORMAT_TIFF;
}

static int is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

nst_format nst_format_detect(const void *head, size_t n) {
    const unsigned char *b = head;
    if (!b) return NST_FORMAT_AUTO;
    if (n >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0) return NST_FORMAT_PNG;
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return NST_FORMAT_JPEG;
    if (n >= 12 && memcmp(b, "RIFF", 4) == 0 && memcmp(b + 8, "WEBP", 4) == 0) return NST_FORMAT_WEBP;
    /* Classic TIFF (42) and BigTIFF (43), both byte orders. */
    if (n >= 4 && ((b[0] == 'I' && b[1] == 'I' && (b[2] == 42 || b[2] == 43) && b[3] == 0) ||
                   (b[0] == 'M' && b[1] == 'M' && b[2] == 0 && (b[3] == 42 || b[3] == 43))))
        return NST_FORMAT_TIFF;
    if (n >= 6 && (memcmp(b, "GIF87a", 6) == 0 || memcmp(b, "GIF89a", 6) == 0)) return NST_FORMAT_GIF;
    if (n >= 3 && b[0] == 'P' && (b[1] == '5' || b[1] == '6') && (is_space(b[2]) || b[2] == '#'))
        return NST_FORMAT_PPM;
    /* "BM" alone is weak (text can start with it): where the bytes are there, the size
     * of the header that follows must be one that a BMP has. */
    if (n >= 2 && b[0] == 'B' && b[1] == 'M') {
        if (n < 18) return NST_FORMAT_BMP;
        unsigned long hs = (unsigned long)b[14] | (unsigned long)b[15] << 8 | (unsigned long)b[16] << 16 |
                           (unsigned long)b[17] << 24;
        if (hs == 12 || hs == 16 || hs == 40 || hs == 52 || hs == 56 || hs == 64 || hs == 108 || hs == 124)
            return NST_FORMAT_BMP;
    }
    return NST_FORMAT_AUTO;
}

/* ---- reading --------------------------------------------------------------------------- */

nst_status nst_image_decode(nst_image *img, const void *data, size_t size, const char *name,
                            const nst_limits *limits, nst_error *err) {
    if (!name) name = "<memory>";
    if (!img || (!data && size)) return nst_fail(err, NST_ERR_ARG, "%s: nst_image_decode: NULL argument", name);
    memset(img, 0, sizeof *img);
    nst_status st = nst_check_file_size(name, (unsigned long long)size, limits, err);
    if (st != NST_OK) return st;
    if (size == 0) return nst_fail(err, NST_ERR_FORMAT, "%s: empty file, not an image", name);
    img_input in = {data, size, name, nst_limit_pixels(limits)};
    switch (nst_format_detect(data, size)) {
    case NST_FORMAT_PNG: st = img_decode_png(&in, img, err); break;
    case NST_FORMAT_JPEG: st = img_decode_jpeg(&in, img, err); break;
    case NST_FORMAT_WEBP: st = img_decode_webp(&in, img, err); break;
    case NST_FORMAT_TIFF: st = img_decode_tiff(&in, img, err); break;
    case NST_FORMAT_BMP: st = img_decode_bmp(&in, img, err); break;
    case NST_FORMAT_GIF: st = img_decode_gif(&in, img, err); break;
    case NST_FORMAT_PPM: st = img_decode_ppm(&in, img, err); break;
    default:
        st = nst_fail(err, NST_ERR_FORMAT, "%s: not an image nst can read (PNG, JPEG, WebP, TIFF, BMP, GIF, PPM)",
                      name);
        break;
    }
    if (st != NST_OK) nst_image_free(img);
    return st;
}

nst_status nst_image_load(nst_image *img, const char *path, const nst_limits *limits, nst_error *err) {
    if (!img || !path) return nst_fail(err, NST_ERR_ARG, "nst_image_load: NULL argument");
    memset(img, 0, sizeof *img);
    unsigned char *data = NULL;
    size_t size = 0;
    nst_status st = nst_read_input_file(path, nst_limit_file_bytes(limits), limits, &data, &size, err);
    if (st != NST_OK) return st;
    st = nst_image_decode(img, data, size, path, limits, err);
    free(data);
    return st;
}

/* ---- writing --------------------------------------------------------------------------- */

static nst_status encode(const nst_image *img, const nst_save_options *opt, nst_format format, img_buf *out,
                         const char *name, nst_error *err) {
    if (!img || !img->pixels || img->width < 1 || img->height < 1 || img->width > NST_MAX_DIMENSION ||
        img->height > NST_MAX_DIMENSION)
        return nst_fail(err, NST_ERR_ARG, "%s: cannot save an empty or invalid image", name);
    if (!nst_format_writable(format))
        return nst_fail(err, NST_ERR_ARG, "%s: nst cannot write %s images (it writes png, jpeg, webp and tiff)",
                        name, nst_format_name(format));
    nst_save_options none = {0};
    if (!opt) opt = &none;
    img_enc o = {0};
    int lossy = format == NST_FORMAT_JPEG || format == NST_FORMAT_WEBP;
    if (opt->quality < 0 || opt->quality > 100)
        return nst_fail(err, NST_ERR_ARG, "%s: quality %d is out of range (1..100)", name, opt->quality);
    o.quality = opt->quality ? opt->quality : format == NST_FORMAT_WEBP ? 90 : 95;
    if (opt->bit_depth != 0 && opt->bit_depth != 8 && opt->bit_depth != 16)
        return nst_fail(err, NST_ERR_ARG, "%s: bit depth %d is not 8 or 16", name, opt->bit_depth);
    o.bit_depth = opt->bit_depth ? opt->bit_depth : 8;
    if (o.bit_depth == 16 && lossy)
        return nst_fail(err, NST_ERR_ARG, "%s: %s holds 8-bit samples only (16 bits: write .png or .tif)", name,
                        format == NST_FORMAT_JPEG ? "JPEG" : "WebP");
    if (!opt->strip) {
        o.icc = img->icc_size ? img->icc : NULL;
        o.icc_size = o.icc ? img->icc_size : 0;
        o.exif = img->exif_size ? img->exif : NULL;
        o.exif_size = o.exif ? img->exif_size : 0;
    }
    switch (format) {
    case NST_FORMAT_PNG: return img_encode_png(img, &o, out, name, err);
    case NST_FORMAT_JPEG: return img_encode_jpeg(img, &o, out, name, err);
    case NST_FORMAT_WEBP: return img_encode_webp(img, &o, out, name, err);
    default: return img_encode_tiff(img, &o, out, name, err);
    }
}

nst_status nst_image_encode(const nst_image *img, const nst_save_options *opt, unsigned char **data,
                            size_t *size, nst_error *err) {
    const char *name = "<memory>";
    if (!data || !size) return nst_fail(err, NST_ERR_ARG, "nst_image_encode: NULL argument");
    *data = NULL;
    *size = 0;
    if (!opt || opt->format == NST_FORMAT_AUTO)
        return nst_fail(err, NST_ERR_ARG, "nst_image_encode: no format given (png, jpeg, webp or tiff)");
    img_buf b = {0};
    nst_status st = encode(img, opt, opt->format, &b, name, err);
    if (st != NST_OK) {
        img_buf_free(&b);
        return st;
    }
    *data = b.data;
    *size = b.size;
    return NST_OK;
}

nst_status nst_image_save_as(const nst_image *img, const char *path, const nst_save_options *opt,
                             nst_error *err) {
    if (!path) return nst_fail(err, NST_ERR_ARG, "nst_image_save: NULL path");
    nst_format format = opt ? opt->format : NST_FORMAT_AUTO;
    nst_status st = NST_OK;
    if (format == NST_FORMAT_AUTO && (st = nst_format_for_path(path, &format, err)) != NST_OK) return st;
    /* Encoded first, so that a refused image or option leaves no file behind. */
    img_buf b = {0};
    st = encode(img, opt, format, &b, path, err);
    if (st == NST_OK) {
        nst_atomic_file af;
        st = nst_atomic_open(&af, path, err);
        if (st == NST_OK) {
            if (fwrite(b.data, 1, b.size, af.fp) != b.size) {
                int e = errno;
                nst_atomic_abort(&af);
                st = nst_fail(err, NST_ERR_IO, "%s: write failed: %s", path, strerror(e));
            } else {
                st = nst_atomic_commit(&af, err);
            }
        }
    }
    img_buf_free(&b);
    return st;
}

nst_status nst_image_save(const nst_image *img, const char *path, nst_error *err) {
    return nst_image_save_as(img, path, NULL, err);
}

/* ---- extras ---------------------------------------------------------------------------- */

nst_status nst_image_copy_extras(nst_image *dst, const nst_image *src, nst_error *err) {
    if (!dst || !src) return nst_fail(err, NST_ERR_ARG, "nst_image_copy_extras: NULL argument");
    if (dst == src) return NST_OK;
    if (src->alpha && (!dst->pixels || dst->width < 1 || dst->height < 1))
        return nst_fail(err, NST_ERR_ARG, "nst_image_copy_extras: the target image is empty");
    float *alpha = NULL;
    unsigned char *icc = NULL, *exif = NULL;
    int ok = 1;
    if (src->alpha) {
        size_t n = (size_t)dst->width * (size_t)dst->height;
        alpha = nst_alloc_array(n, sizeof(float));
        if (!alpha) ok = 0;
        else if (dst->width == src->width && dst->height == src->height) memcpy(alpha, src->alpha, n * sizeof(float));
        else ok = img_resample(src->alpha, src->width, src->height, alpha, dst->width, dst->height, 1);
    }
    if (ok && src->icc_size) ok = (icc = img_dup(src->icc, src->icc_size)) != NULL;
    if (ok && src->exif_size) ok = (exif = img_dup(src->exif, src->exif_size)) != NULL;
    if (!ok) {
        free(alpha);
        free(icc);
        free(exif);
        return nst_fail(err, NST_ERR_NOMEM, "out of memory copying an image's alpha and metadata");
    }
    free(dst->alpha);
    free(dst->icc);
    free(dst->exif);
    dst->alpha = alpha;
    dst->icc = icc;
    dst->icc_size = icc ? src->icc_size : 0;
    dst->exif = exif;
    dst->exif_size = exif ? src->exif_size : 0;
    dst->bit_depth = src->bit_depth;
    return NST_OK;
}
