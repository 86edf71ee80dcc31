/* resize.c - image allocation and separable Lanczos-3 resampling.
 *
 * Each axis gets a table of weights: output sample o takes source samples
 * start[o] .. start[o]+count[o]-1 with the given weights. When shrinking by a factor s
 * the kernel is stretched by s, so every output sample averages all the source samples
 * it covers (like an area filter) instead of skipping some and aliasing. Taps that
 * fall outside the image are folded onto the edge sample (clamping), and the weights
 * of each output sample are normalised to sum to one, so flat areas stay flat. */
#include "image/image_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

nst_status nst_image_alloc(nst_image *img, int width, int height, nst_error *err) {
    memset(img, 0, sizeof *img);
    if (width < 1 || height < 1 || width > NST_MAX_DIMENSION || height > NST_MAX_DIMENSION)
        return nst_fail(err, NST_ERR_ARG, "image size %dx%d is out of range (1..%d per side)",
                        width, height, NST_MAX_DIMENSION);
    float *p = nst_calloc_array((size_t)width * (size_t)height, 3 * sizeof(float));
    if (!p) return nst_fail(err, NST_ERR_NOMEM, "out of memory for a %dx%d image", width, height);
    img->width = width;
    img->height = height;
    img->pixels = p;
    return NST_OK;
}

void nst_image_free(nst_image *img) {
    if (!img) return;
    free(img->pixels);
    free(img->alpha);
    free(img->icc);
    free(img->exif);
    memset(img, 0, sizeof *img);
}

typedef struct {
    int *start, *count;
    float *weight; /* output o's weights start at weight + o * stride */
    int stride;
} axis_weights;

static double lanczos3(double x) {
    x = fabs(x);
    if (x < 1e-8) return 1.0;
    if (x >= 3.0) return 0.0;
    double px = 3.14159265358979323846 * x;
    return 3.0 * sin(px) * sin(px / 3.0) / (px * px);
}

static void axis_free(axis_weights *a) {
    free(a->start);
    free(a->count);
    free(a->weight);
}

static int axis_build(axis_weights *a, int in, int out) {
    double scale = (double)in / out;
    double widen = scale > 1.0 ? scale : 1.0;
    double support = 3.0 * widen;
    /* Taps lie strictly within +-support of the centre: at most 2*support + 1 of them. */
    int taps = (int)(2.0 * support) + 2;
    a->stride = taps < in ? taps : in;
    a->start = nst_alloc_array((size_t)out, sizeof(int));
    a->count = nst_alloc_array((size_t)out, sizeof(int));
    a->weight = nst_alloc_array((size_t)out * (size_t)a->stride, sizeof(float));
    double *acc = nst_alloc_array((size_t)a->stride, sizeof(double));
    if (!a->start || !a->count || !a->weight || !acc) {
        axis_free(a);
        free(acc);
        return 0;
    }
    for (int o = 0; o < out; o++) {
        /* Pixel centres: output o sits at source coordinate (o + 0.5) * scale - 0.5. */
        double center = (o + 0.5) * scale - 0.5;
        int i0 = (int)ceil(center - support), i1 = (int)floor(center + support);
        int lo = i0 < 0 ? 0 : i0, hi = i1 > in - 1 ? in - 1 : i1;
        if (lo > hi) lo = hi = center < 0 ? 0 : in - 1; /* cannot happen, but stay safe */
        int n = hi - lo + 1;
        memset(acc, 0, (size_t)n * sizeof *acc);
        double sum = 0.0;
        for (int i = i0; i <= i1; i++) {
            double w = lanczos3((i - center) / widen);
            int j = i < lo ? lo : i > hi ? hi : i;
            acc[j - lo] += w;
            sum += w;
        }
        float *wt = a->weight + (size_t)o * a->stride;
        if (fabs(sum) < 1e-12) { /* degenerate: fall back to the nearest sample */
            int j = (int)floor(center + 0.5);
            j = j < lo ? lo : j > hi ? hi : j;
            memset(wt, 0, (size_t)n * sizeof *wt);
            wt[j - lo] = 1.0f;
        } else {
            for (int k = 0; k < n; k++) wt[k] = (float)(acc[k] / sum);
        }
        /* Drop zero taps at both ends (the kernel's zeros, far outside the support). */
        while (n > 1 && wt[0] == 0.0f) {
            memmove(wt, wt + 1, (size_t)(n - 1) * sizeof *wt);
            lo++, n--;
        }
        while (n > 1 && wt[n - 1] == 0.0f) n--;
        a->start[o] = lo;
        a->count[o] = n;
    }
    free(acc);
    return 1;
}

/* Vertical pass: rows of (width * channels) floats; each output row is a weighted sum of whole
 * source rows, which vectorises well. */
static void resample_rows(const float *src, float *dst, size_t row_len, int out_rows,
                          const axis_weights *a) {
    for (int y = 0; y < out_rows; y++) {
        float *d = dst + (size_t)y * row_len;
        const float *wt = a->weight + (size_t)y * a->stride;
        memset(d, 0, row_len * sizeof *d);
        for (int k = 0; k < a->count[y]; k++) {
            const float *s = src + (size_t)(a->start[y] + k) * row_len;
            float w = wt[k];
            for (size_t i = 0; i < row_len; i++) d[i] += w * s[i];
        }
    }
}

/* Horizontal pass over `rows` rows of pixels of ch (1 or 3) channels, in_w wide to out_w
 * wide. */
static void resample_cols(const float *src, float *dst, int in_w, int out_w, int rows, int ch,
                          const axis_weights *a) {
    for (int y = 0; y < rows; y++) {
        const float *s = src + (size_t)y * in_w * ch;
        float *d = dst + (size_t)y * out_w * ch;
        if (ch == 1) {
            for (int x = 0; x < out_w; x++) {
                const float *wt = a->weight + (size_t)x * a->stride;
                const float *p = s + a->start[x];
                float v = 0.0f;
                for (int k = 0; k < a->count[x]; k++) v += wt[k] * p[k];
                d[x] = v;
            }
            continue;
        }
        for (int x = 0; x < out_w; x++) {
            const float *wt = a->weight + (size_t)x * a->stride;
            const float *p = s + (size_t)a->start[x] * 3;
            float r = 0.0f, g = 0.0f, b = 0.0f;
            for (int k = 0; k < a->count[x]; k++, p += 3) {
                r += wt[k] * p[0];
                g += wt[k] * p[1];
                b += wt[k] * p[2];
            }
            d[3 * x] = r, d[3 * x + 1] = g, d[3 * x + 2] = b;
        }
    }
}

int img_resample(const float *src, int sw, int sh, float *dst, int width, int height, int ch) {
    axis_weights ax = {0}, ay = {0};
    float *tmp = NULL;
    int ok = 1;
    if (width != sw) ok = ok && axis_build(&ax, sw, width);
    if (height != sh) ok = ok && axis_build(&ay, sh, height);

    if (ok && width == sw && height == sh) {
        memcpy(dst, src, (size_t)sw * sh * ch * sizeof(float));
    } else if (ok && width == sw) {
        resample_rows(src, dst, (size_t)sw * ch, height, &ay);
    } else if (ok && height == sh) {
        resample_cols(src, dst, sw, width, sh, ch, &ax);
    } else if (ok) {
        /* Both axes: run the pass that shrinks the data the most first. The cost of
         * each order, in multiply-adds per channel: */
        double tx = 0, ty = 0;
        for (int x = 0; x < width; x++) tx += ax.count[x];
        for (int y = 0; y < height; y++) ty += ay.count[y];
        double rows_first = ty * sw + tx * height;  /* vertical, then horizontal */
        double cols_first = tx * sh + ty * width;   /* horizontal, then vertical */
        if (rows_first <= cols_first) {
            tmp = nst_alloc_array((size_t)sw * height, ch * sizeof(float));
            if (tmp) {
                resample_rows(src, tmp, (size_t)sw * ch, height, &ay);
                resample_cols(tmp, dst, sw, width, height, ch, &ax);
            }
        } else {
            tmp = nst_alloc_array((size_t)width * sh, ch * sizeof(float));
            if (tmp) {
                resample_cols(src, tmp, sw, width, sh, ch, &ax);
                resample_rows(tmp, dst, (size_t)width * ch, height, &ay);
            }
        }
        ok = tmp != NULL;
    }
    free(tmp);
    axis_free(&ax);
    axis_free(&ay);
    if (!ok) return 0;

    /* Lanczos lobes overshoot near edges; keep the result a valid image. */
    size_t n = (size_t)width * height * ch;
    for (size_t i = 0; i < n; i++) {
        float v = dst[i];
        dst[i] = v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v;
    }
    return 1;
}

nst_status nst_image_resize(nst_image *dst, const nst_image *src, int width, int height,
                            nst_error *err) {
    if (!dst || !src || !src->pixels || src->width < 1 || src->height < 1)
        return nst_fail(err, NST_ERR_ARG, "resize: the source image is empty");
    if (width < 1 || height < 1 || width > NST_MAX_DIMENSION || height > NST_MAX_DIMENSION)
        return nst_fail(err, NST_ERR_ARG, "resize: target size %dx%d is out of range (1..%d per side)",
                        width, height, NST_MAX_DIMENSION);
    int sw = src->width, sh = src->height;
    nst_image out = {0};
    nst_status st = nst_image_alloc(&out, width, height, err);
    if (st != NST_OK) return st;
    /* The alpha is resampled with the colour, the metadata copied: the same picture at
     * another size. */
    if (!img_resample(src->pixels, sw, sh, out.pixels, width, height, 3) ||
        nst_image_copy_extras(&out, src, err) != NST_OK) {
        nst_image_free(&out);
        return nst_fail(err, NST_ERR_NOMEM, "resize: out of memory resizing %dx%d to %dx%d", sw, sh,
                        width, height);
    }
    /* dst may be src itself: it is replaced only now that src is no longer needed. */
    if (dst == src) nst_image_free(dst);
    *dst = out;
    return NST_OK;
}

/* Colour preservation (Gatys et al. 2016, "Preserving color in neural artistic style
 * transfer"): luminance from the stylized image, chroma (I, Q of YIQ) from the original. */
nst_status nst_image_preserve_colors(nst_image *stylized, const nst_image *original, nst_error *err) {
    nst_image c = {0};
    nst_status s = nst_image_resize(&c, original, stylized->width, stylized->height, err);
    if (s) return s;
    size_t hw = (size_t)stylized->width * stylized->height;
    for (size_t i = 0; i < hw; i++) {
        float *p = stylized->pixels + 3 * i, *q = c.pixels + 3 * i;
        float y = 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2];
        float ci = 0.596f * q[0] - 0.274f * q[1] - 0.322f * q[2];
        float cq = 0.211f * q[0] - 0.523f * q[1] + 0.312f * q[2];
        float rgb[3] = {y + 0.956f * ci + 0.621f * cq, y - 0.272f * ci - 0.647f * cq, y - 1.106f * ci + 1.703f * cq};
        for (int k = 0; k < 3; k++) p[k] = rgb[k] < 0.0f ? 0.0f : rgb[k] > 255.0f ? 255.0f : rgb[k];
    }
    nst_image_free(&c);
    return NST_OK;
}

nst_status nst_image_mix(nst_image *stylized, const nst_image *original, float strength, nst_error *err) {
    if (!(strength >= 0.0f && strength <= 1.0f))
        return nst_fail(err, NST_ERR_ARG, "strength %g is out of range (0..1)", strength);
    if (strength == 1.0f) return NST_OK;
    nst_image c = {0};
    const nst_image *o = original;
    if (original->width != stylized->width || original->height != stylized->height) {
        nst_status s = nst_image_resize(&c, original, stylized->width, stylized->height, err);
        if (s) return s;
        o = &c;
    }
    size_t n = (size_t)3 * stylized->width * stylized->height;
    for (size_t i = 0; i < n; i++)
        stylized->pixels[i] = strength * stylized->pixels[i] + (1.0f - strength) * o->pixels[i];
    nst_image_free(&c);
    return NST_OK;
}

void nst_image_fit_size(int w, int h, int side, int *out_w, int *out_h) {
    if (w >= h) {
        *out_w = side;
        *out_h = (int)lround((double)h * side / w);
    } else {
        *out_h = side;
        *out_w = (int)lround((double)w * side / h);
    }
    if (*out_w < 1) *out_w = 1;
    if (*out_h < 1) *out_h = 1;
}
