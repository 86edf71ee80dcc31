/* universal.c - universal style transfer: encoding, decoding, WCT level by level (see
 * universal.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transfer/universal.h"
#include "util/util.h"

/* VGG19's layer index of relu<level>_1 */
static int level_layer(int level) {
    char name[16];
    snprintf(name, sizeof name, "relu%d_1", level);
    return nst_layer_index(name);
}

nst_status universal_encode(const nst_vgg19 *vgg, const conv3x3_packed *packs, const nst_image *img, int level,
                            float **F, int *C, int *h, int *w, nst_error *err) {
    *F = NULL;
    int l = level_layer(level), m = 1 << (level - 1);
    if (l < 0 || l >= vgg->depth)
        return nst_fail(err, NST_ERR_ARG, "the loss network was loaded to %d layers; relu%d_1 needs %d", vgg->depth, level,
                        l + 1);
    if (img->width % m || img->height % m || img->width < 2 * m || img->height < 2 * m)
        return nst_fail(err, NST_ERR_ARG, "relu%d_1 of a %dx%d image: sides must be multiples of %d, at least %d", level,
                        img->width, img->height, m, 2 * m);
    vgg19_acts a;
    nst_status s = vgg19_acts_build(&a, l + 1, img->height, img->width, NULL, err);
    if (s) return s;
    vgg19_acts_fuse_relus(&a);
    a.packs = packs;
    vgg19_preprocess(a.input, img);
    for (int k = 0; k <= l; k++) vgg19_forward_layer(vgg, &a, k);
    size_t n = vgg19_layer_size(&a, l);
    if (!(*F = nst_alloc_array(n, sizeof(float)))) {
        s = nst_fail(err, NST_ERR_NOMEM, "out of memory for the features of relu%d_1", level);
    } else {
        memcpy(*F, a.out[l], n * sizeof(float));
        *C = a.C[l], *h = a.Hl[l], *w = a.Wl[l];
    }
    vgg19_acts_free(&a);
    return s;
}

/* features (C,h,w) -> dec -> out ((3,.) planes 0..255 as an image of size W x H, cropped
 * from the decoder's output, clamped) */
static nst_status decode(const stylenet *dec, const float *F, int h, int w, int W, int H, nst_image *out,
                         nst_error *err) {
    stylenet_acts a;
    nst_status s = stylenet_acts_build(&a, dec, h, w, 0, err);
    if (s) return s;
    memcpy(a.input, F, (size_t)a.C_in * h * w * sizeof(float));
    if (!(s = stylenet_forward(dec, &a, 0, err)) && !(s = nst_image_alloc(out, W, H, err))) {
        const float *y = stylenet_output(dec, &a);
        size_t hw = (size_t)a.H_out * a.W_out;
        for (int r = 0; r < H; r++)
            for (int c = 0; c < W; c++)
                for (int k = 0; k < 3; k++) {
                    float v = y[k * hw + (size_t)r * a.W_out + c];
                    out->pixels[((size_t)r * W + c) * 3 + k] = v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v;
                }
    }
    stylenet_acts_free(&a);
    return s;
}

/* img padded to multiples of m (edges clamped), at least 2m a side */
static nst_status pad_to(nst_image *dst, const nst_image *img, int m, nst_error *err) {
    int W = (img->width + m - 1) / m * m, H = (img->height + m - 1) / m * m;
    if (W < 2 * m) W = 2 * m;
    if (H < 2 * m) H = 2 * m;
    nst_status s = nst_image_alloc(dst, W, H, err);
    if (s) return s;
    for (int r = 0; r < H; r++) {
        int sr = r < img->height ? r : img->height - 1;
        for (int c = 0; c < W; c++) {
            int sc = c < img->width ? c : img->width - 1;
            memcpy(dst->pixels + ((size_t)r * W + c) * 3, img->pixels + ((size_t)sr * img->width + sc) * 3,
                   3 * sizeof(float));
        }
    }
    return NST_OK;
}

nst_status universal_reconstruct(const nst_vgg19 *vgg, const conv3x3_packed *packs, const stylenet *dec,
                                 const nst_image *img, nst_image *out, nst_error *err) {
    memset(out, 0, sizeof *out);
    nst_image padded = {0};
    float *F = NULL;
    int C, h, w;
    nst_status s = pad_to(&padded, img, 1 << (dec->level - 1), err);
    if (!s) s = universal_encode(vgg, packs, &padded, dec->level, &F, &C, &h, &w, err);
    if (!s) s = decode(dec, F, h, w, img->width, img->height, out, err);
    free(F);
    nst_image_free(&padded);
    return s;
}

nst_status universal_style_compute(universal_style *st, const nst_vgg19 *vgg, const conv3x3_packed *packs,
                                   const stylenet *const dec[6], const nst_image *painting, nst_error *err) {
    memset(st, 0, sizeof *st);
    nst_status s = NST_OK;
    for (int k = 1; k <= 5 && !s; k++) {
        if (!dec[k]) continue;
        nst_image padded = {0};
        float *F = NULL;
        int C, h, w;
        s = pad_to(&padded, painting, 1 << (k - 1), err);
        if (!s) s = universal_encode(vgg, packs, &padded, k, &F, &C, &h, &w, err);
        if (!s) s = wct_stats_compute(&st->level[k], F, C, (size_t)h * w, err);
        free(F);
        nst_image_free(&padded);
    }
    if (s) universal_style_free(st);
    return s;
}

void universal_style_free(universal_style *st) {
    for (int k = 0; k < 6; k++) wct_stats_free(&st->level[k]);
}

nst_status universal_stylize(const nst_vgg19 *vgg, const conv3x3_packed *packs, const stylenet *const dec[6],
                             const universal_style *const *styles, const float *w, int n, float alpha,
                             const nst_image *img, nst_image *out, nst_error *err) {
    memset(out, 0, sizeof *out);
    nst_image cur = {0};
    nst_status s = nst_image_alloc(&cur, img->width, img->height, err);
    if (s) return s;
    memcpy(cur.pixels, img->pixels, (size_t)3 * img->width * img->height * sizeof(float));
    for (int k = 5; k >= 1 && !s; k--) {
        if (!dec[k]) continue;
        nst_image padded = {0}, next = {0};
        float *F = NULL, *G = NULL, *T = NULL, *shift = NULL;
        int C, h, wd;
        wct_stats content = {0};
        const wct_stats *ss[16];
        s = n < 1 || n > 16 ? nst_fail(err, NST_ERR_ARG, "%d paintings to blend (1..16)", n) : NST_OK;
        for (int i = 0; i < n && !s; i++) ss[i] = &styles[i]->level[k];
        if (!s) s = pad_to(&padded, &cur, 1 << (k - 1), err);
        if (!s) s = universal_encode(vgg, packs, &padded, k, &F, &C, &h, &wd, err);
        if (!s) s = wct_stats_compute(&content, F, C, (size_t)h * wd, err);
        if (!s) {
            T = nst_alloc_array((size_t)C * C, sizeof *T);
            shift = nst_alloc_array((size_t)C, sizeof *shift);
            G = nst_alloc_array((size_t)C * h * wd, sizeof *G);
            if (!T || !shift || !G) s = nst_fail(err, NST_ERR_NOMEM, "out of memory for relu%d_1's transform", k);
        }
        if (!s) s = wct_transform_build(T, shift, &content, ss, w, n, err);
        if (!s) {
            wct_transform_apply(G, F, T, shift, C, (size_t)h * wd, alpha);
            s = decode(dec[k], G, h, wd, img->width, img->height, &next, err);
        }
        if (!s) {
            nst_image_free(&cur);
            cur = next;
        }
        wct_stats_free(&content);
        free(F), free(G), free(T), free(shift);
        nst_image_free(&padded);
    }
    if (s) nst_image_free(&cur);
    else *out = cur;
    return s;
}
