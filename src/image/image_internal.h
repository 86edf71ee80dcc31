/* image_internal.h - what the decoders and encoders of src/image share: the input they
 * decode from, the limits check, pixel and alpha helpers, EXIF orientation and the
 * metadata blobs, a growable output buffer, and each format's entry points.
 *
 * Every decoder works from memory and, on success, fills a complete nst_image (pixels
 * composited on white, alpha or NULL, ICC, EXIF, bit depth); on failure it leaves the
 * image zeroed, frees everything it allocated and writes one line naming in->name. */
#ifndef NST_IMAGE_INTERNAL_H
#define NST_IMAGE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

/* Metadata larger than this is dropped (it is not needed to show the image): the ICC
 * cap is what a JPEG can carry at most (255 APP2 markers), EXIF's is far above what
 * cameras write (a JPEG holds at most 64 KB of it). */
#define IMG_MAX_ICC ((size_t)16 << 20)
#define IMG_MAX_EXIF ((size_t)1 << 20)

typedef struct {
    const unsigned char *data;
    size_t size;
    const char *name;  /* for messages */
    size_t max_pixels; /* the limit in effect */
} img_input;

/* The limits on dimensions read from a header, applied before anything the size of the
 * image is allocated. */
nst_status img_check_size(const char *name, unsigned long long w, unsigned long long h,
                          size_t max_pixels, nst_error *err);
/* nst_image_alloc with a message naming the file; with_alpha also allocates the alpha
 * plane (left uninitialised: the decoder writes every value). */
nst_status img_alloc(nst_image *img, const char *name, int w, int h, int with_alpha, nst_error *err);
/* Frees img->alpha if every value is 255, so opaque images carry none. */
void img_drop_opaque_alpha(nst_image *img);

/* Writes one pixel: colour (0..255) composited on white by a (0..255), and a into the
 * alpha plane when there is one. */
static inline void img_put(float *rgb, float *alpha, float r, float g, float b, float a) {
    if (a < 255.0f) {
        float t = a / 255.0f;
        r = 255.0f + (r - 255.0f) * t;
        g = 255.0f + (g - 255.0f) * t;
        b = 255.0f + (b - 255.0f) * t;
    }
    rgb[0] = r, rgb[1] = g, rgb[2] = b;
    if (alpha) *alpha = a;
}

/* The colour to store beside alpha a so that a viewer compositing it on white shows p:
 * the inverse of img_put (where a is 0 the colour is invisible; p is kept). */
static inline float img_uncomposite(float p, float a) {
    if (!(a > 0.0f) || a >= 255.0f) return p;
    float v = 255.0f - (255.0f - p) * (255.0f / a);
    return v < 0.0f ? 0.0f : v;
}

/* Float 0..255 to a byte or to 16 bits (round(v * 65535 / 255)), clamped; NaN is 0. */
unsigned char img_to_u8(float v);
uint16_t img_to_u16(float v);

/* Orientation (EXIF/TIFF 1..8): where the stored pixel (x, y) of a w x h image goes in
 * the upright one (out_w = h for 5..8): output index d0 + x * step for row y. */
void img_orient_row(int orientation, int w, int h, int y, ptrdiff_t *d0, ptrdiff_t *step);
/* Turns img (pixels and alpha) upright; 1 or an unknown value leaves it as it is. */
nst_status img_orient(nst_image *img, int orientation, const char *name, nst_error *err);

/* The Orientation (1..8) in IFD0 of an EXIF TIFF structure; 1 when absent or unreadable.
 * Every offset is checked against n. */
int img_exif_orientation(const unsigned char *tiff, size_t n);
/* Stores a copy of an EXIF TIFF structure in img->exif with its Orientation set to 1
 * (the caller applies the orientation to the pixels). Returns 0 only when out of memory;
 * a blob that is not a TIFF structure or is over the cap is skipped. */
int img_set_exif(nst_image *img, const unsigned char *tiff, size_t n);
/* Stores a copy of an ICC profile in img->icc if it is an RGB profile within the cap (a
 * grey or CMYK one does not describe nst's RGB pixels). Returns 0 only when out of memory. */
int img_set_icc(nst_image *img, const unsigned char *icc, size_t n);
/* A copy of n bytes (NULL if n is 0 or out of memory). */
unsigned char *img_dup(const unsigned char *p, size_t n);

/* Resamples a (h, w, channels) float plane to (oh, ow, channels) with the Lanczos-3
 * filter of nst_image_resize, clamped to 0..255. Returns 0 when out of memory. */
int img_resample(const float *src, int w, int h, float *dst, int ow, int oh, int channels);

/* A growable output buffer; failed is set once an allocation failed. */
typedef struct {
    unsigned char *data;
    size_t size, cap;
    int failed;
} img_buf;
int img_buf_write(img_buf *b, const void *p, size_t n);
/* Writes n bytes at offset at, zero-filling any gap (for libtiff's seeks). */
int img_buf_write_at(img_buf *b, size_t at, const void *p, size_t n);
void img_buf_free(img_buf *b);

/* Encoding options after the defaults are applied: quality 1..100, bit_depth 8 or 16;
 * icc/exif are NULL where they are not to be written. */
typedef struct {
    int quality, bit_depth;
    const unsigned char *icc, *exif;
    size_t icc_size, exif_size;
} img_enc;

nst_status img_decode_png(const img_input *in, nst_image *out, nst_error *err);
nst_status img_decode_jpeg(const img_input *in, nst_image *out, nst_error *err);
nst_status img_decode_webp(const img_input *in, nst_image *out, nst_error *err);
nst_status img_decode_tiff(const img_input *in, nst_image *out, nst_error *err);
nst_status img_decode_bmp(const img_input *in, nst_image *out, nst_error *err);
nst_status img_decode_gif(const img_input *in, nst_image *out, nst_error *err);
nst_status img_decode_ppm(const img_input *in, nst_image *out, nst_error *err);

/* Encoders append the file to out; name is for messages. */
nst_status img_encode_png(const nst_image *img, const img_enc *o, img_buf *out, const char *name, nst_error *err);
nst_status img_encode_jpeg(const nst_image *img, const img_enc *o, img_buf *out, const char *name, nst_error *err);
nst_status img_encode_webp(const nst_image *img, const img_enc *o, img_buf *out, const char *name, nst_error *err);
nst_status img_encode_tiff(const nst_image *img, const img_enc *o, img_buf *out, const char *name, nst_error *err);

#endif
