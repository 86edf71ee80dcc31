/* universal.c - universal style transfer: encoding, decoding, WCT level by level (see
 * universal.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/model_file.h"

#include "transfer/universal.h"
#include "util/util.h"

/* VGG19's layer index of relu<level>_1 */
static int level_layer(int level) {
    char name[24];
    snprintf(name, sizeof name, "relu%d_1", level);
    return nst_layer_index(name);
}

/* A tap: relu<level>_1's features F (C,h,w), valid during the call. */
typedef nst_status (*encode_tap)(void *ctx, int level, float *F, int C, int h, int w, int *take, nst_error *err);

typedef struct {
    encode_tap tap;
    void *ctx;
} tap_relay;

static nst_status relay(void *ctx, int l, float *out, int C, int h, int w, int *take, nst_error *err) {
    tap_relay *r = ctx;
    int level = 1;
    while (level < 5 && level_layer(level) != l) level++;
    return r->tap(r->ctx, level, out, C, h, w, take, err);
}

/* img (sides multiples of 2^(deepest-1), at least 2^deepest) through VGG19 once, to the
 * deepest level in want (a mask of 1 << k), calling tap at each of them; the deepest's
 * tap may take its features (vgg19_forward_taps). */
static nst_status encode_taps(const nst_vgg19 *vgg, const conv3x3_packed *packs, const nst_image *img, int want,
                              encode_tap tap, void *ctx, nst_error *err) {
    int deepest = 0;
    unsigned char at[NST_NUM_LAYERS] = {0};
    for (int k = 1; k <= 5; k++)
        if (want & 1 << k) deepest = k, at[level_layer(k)] = 1;
    if (!deepest) return nst_fail(err, NST_ERR_ARG, "no level to encode");
    int l = level_layer(deepest), m = 1 << (deepest - 1);
    if (l < 0 || l >= vgg->depth)
        return nst_fail(err, NST_ERR_ARG, "the loss network was loaded to %d layers; relu%d_1 needs %d", vgg->depth,
                        deepest, l + 1);
    if (img->width % m || img->height % m || img->width < 2 * m || img->height < 2 * m)
        return nst_fail(err, NST_ERR_ARG, "relu%d_1 of a %dx%d image: sides must be multiples of %d, at least %d",
                        deepest, img->width, img->height, m, 2 * m);
    tap_relay r = {tap, ctx};
    return vgg19_forward_taps(vgg, packs, img, l + 1, at, relay, &r, err);
}

typedef struct {
    float *F;
    int C, h, w;
} features_out;

static nst_status take_tap(void *ctx, int level, float *F, int C, int h, int w, int *take, nst_error *err) {
    (void)level, (void)err;
    features_out *fo = ctx;
    fo->F = F, fo->C = C, fo->h = h, fo->w = w;
    *take = 1;
    return NST_OK;
}

nst_status universal_encode(const nst_vgg19 *vgg, const conv3x3_packed *packs, const nst_image *img, int level,
                            float **F, int *C, int *h, int *w, nst_error *err) {
    *F = NULL;
    if (level < 1 || level > 5) return nst_fail(err, NST_ERR_ARG, "level %d is out of range (1..5)", level);
    features_out fo = {0};
    nst_status s = encode_taps(vgg, packs, img, 1 << level, take_tap, &fo, err);
    if (s) return s;
    *F = fo.F, *C = fo.C, *h = fo.h, *w = fo.w;
    return NST_OK;
}

/* features (C,h,w) -> dec -> out ((3,.) planes 0..255 as an image of size W x H, cropped
 * from the decoder's output, clamped) */
static nst_status decode(const stylenet *dec, float *F, int h, int w, int W, int H, nst_image *out,
                         nst_error *err) {
    stylenet_acts a;
    nst_status s = stylenet_acts_build_on(&a, dec, h, w, F, err);
    if (s) return s;
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

typedef struct {
    universal_style *st;
    cpu_tier tier;
} style_ctx;

static nst_status style_tap(void *ctx, int level, float *F, int C, int h, int w, int *take, nst_error *err) {
    (void)take;
    universal_style *st = ((style_ctx *)ctx)->st;
    size_t n = (size_t)h * w;
    nst_status s = wct_stats_compute(&st->level[level], F, C, n, ((style_ctx *)ctx)->tier, err);
    if (s) return s;
    double *mean = malloc((size_t)C * sizeof *mean);
    st->std[level] = malloc((size_t)C * sizeof(double));
    if (!mean || !st->std[level]) s = nst_fail(err, NST_ERR_NOMEM, "out of memory for the painting's statistics");
    else channel_stats(mean, st->std[level], F, C, n);
    free(mean);
    return s;
}

nst_status universal_style_compute(universal_style *st, const nst_vgg19 *vgg, const conv3x3_packed *packs,
                                   const stylenet *const dec[6], const nst_image *painting, nst_error *err) {
    memset(st, 0, sizeof *st);
    int want = 0, deepest = 0;
    for (int k = 1; k <= 5; k++)
        if (dec[k]) want |= 1 << k, deepest = k;
    if (!want) return NST_OK;
    /* one pass for every level: the painting padded for the deepest */
    nst_image padded = {0};
    nst_status s = pad_to(&padded, painting, 1 << (deepest - 1), err);
    style_ctx sc = {st, vgg->tier};
    if (!s) s = encode_taps(vgg, packs, &padded, want, style_tap, &sc, err);
    nst_image_free(&padded);
    if (s) universal_style_free(st);
    return s;
}

void universal_style_free(universal_style *st) {
    for (int k = 0; k < 6; k++) {
        wct_stats_free(&st->level[k]);
        free(st->std[k]);
        st->std[k] = NULL;
    }
}

nst_status universal_adain(const nst_vgg19 *vgg, const conv3x3_packed *packs, const stylenet *dec4,
                           const universal_style *const *styles, const float *w, int n, float alpha,
                           const nst_image *img, nst_image *out, nst_error *err) {
    memset(out, 0, sizeof *out);
    if (n < 1 || n > 16) return nst_fail(err, NST_ERR_ARG, "%d paintings to blend (1..16)", n);
    nst_image padded = {0};
    float *F = NULL;
    int C, h, wd;
    double mean[16 * 512], sd[16 * 512];
    nst_status s = pad_to(&padded, img, 8, err);
    if (!s) s = universal_encode(vgg, packs, &padded, 4, &F, &C, &h, &wd, err);
    if (!s && C > 512) s = nst_fail(err, NST_ERR_ARG, "relu4_1 of %d channels", C);
    for (int i = 0; i < n && !s; i++) {
        if (styles[i]->level[4].C != C || !styles[i]->std[4])
            s = nst_fail(err, NST_ERR_ARG, "painting %d has no relu4_1 statistics", i + 1);
        else {
            memcpy(mean + (size_t)i * C, styles[i]->level[4].mean, (size_t)C * sizeof(double));
            memcpy(sd + (size_t)i * C, styles[i]->std[4], (size_t)C * sizeof(double));
        }
    }
    if (!s) {
        adain_forward(F, F, C, (size_t)h * wd, mean, sd, w, n, alpha); /* in place */
        s = decode(dec4, F, h, wd, img->width, img->height, out, err);
    }
    free(F);
    nst_image_free(&padded);
    return s;
}

nst_status universal_stylize(const nst_vgg19 *vgg, const conv3x3_packed *packs, const stylenet *const dec[6],
                             const wct_colouring col[6], float alpha, const nst_image *img, nst_image *out,
                             nst_error *err) {
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
        s = col[k].C ? NST_OK : nst_fail(err, NST_ERR_ARG, "no colouring for relu%d_1", k);
        if (!s) s = pad_to(&padded, &cur, 1 << (k - 1), err);
        if (!s) s = universal_encode(vgg, packs, &padded, k, &F, &C, &h, &wd, err);
        if (!s) s = wct_stats_compute(&content, F, C, (size_t)h * wd, vgg->tier, err);
        if (!s) {
            T = nst_alloc_array((size_t)C * C, sizeof *T);
            shift = nst_alloc_array((size_t)C, sizeof *shift);
            G = nst_alloc_array((size_t)C * h * wd, sizeof *G);
            if (!T || !shift || !G) s = nst_fail(err, NST_ERR_NOMEM, "out of memory for relu%d_1's transform", k);
        }
        if (!s) s = wct_transform_colour(T, shift, &content, &col[k], err);
        if (!s) {
            wct_transform_apply(G, F, T, shift, C, (size_t)h * wd, alpha, vgg->tier);
            free(F); /* before the decoder's buffers: at most two feature maps at a time */
            F = NULL;
            nst_image_free(&padded);
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

/* ---- the public interface (nst.h) ---------------------------------------------------- */

struct nst_universal {
    const nst_vgg19 *vgg;
    stylenet dec[6];          /* [k]: relu<k>_1's decoder, where have & 1 << k */
    int have;
    char dir[NST_PATH_MAX];
    universal_style style[16];
    float w[16];
    wct_colouring colour[6]; /* [k]: the mix's at relu<k>_1 (WCT) */
    int n_styles;
    nst_universal_method method;
    char note[256]; /* nst_universal_note */
    int max_level;           /* WCT runs relu<max_level>_1 .. relu1_1 of those it has */
    nst_precision precision; /* resolved: FP32 or BF16 */
    conv3x3_packed *packs;   /* the VGG19's convs in bf16 (vgg19_packs_build), or NULL: its own */
};

/* The decoders in dir; 0 with none there (or an error, in err: the status). */
static nst_status load_dir(nst_universal *u, const char *dir, const nst_limits *limits, nst_error *err) {
    for (int k = 1; k <= 5; k++) {
        char path[NST_PATH_MAX + 32];
        snprintf(path, sizeof path, "%.4000s/relu%d_1.nstm", dir, k);
        if (access(path, F_OK) != 0) continue;
        nstm_model m = {0};
        nst_status s = nstm_load(&m, path, limits, err);
        if (!s) s = stylenet_decoder_read(&u->dec[k], &m, path, 0, err);
        nstm_free(&m);
        if (s) return s;
        if (u->dec[k].level != k)
            return nst_fail(err, NST_ERR_FORMAT, "%s: a decoder of relu%d_1 under the name of relu%d_1", path,
                            u->dec[k].level, k);
        u->have |= 1 << k;
    }
    snprintf(u->dir, sizeof u->dir, "%s", dir);
    return NST_OK;
}

nst_status nst_universal_load(nst_universal **out, const nst_vgg19 *vgg, const char *dir, const nst_limits *limits,
                              nst_error *err) {
    *out = NULL;
    nst_universal *u = calloc(1, sizeof *u);
    if (!u) return nst_fail(err, NST_ERR_NOMEM, "out of memory");
    u->vgg = vgg;
    u->max_level = NST_UNIVERSAL_LEVELS;
    nst_status s = NST_OK;
    if (dir) {
        s = load_dir(u, dir, limits, err);
        if (!s && !u->have)
            s = nst_fail(err, NST_ERR_IO, "%s: no decoders in it (relu1_1.nstm .. relu5_1.nstm; nst train --decoder)", dir);
    } else {
        char dirs[4][NST_PATH_MAX];
        int nd = nst_style_dirs(dirs, 4);
        for (int i = 0; i < nd && !s && !u->have; i++) {
            char d[NST_PATH_MAX + 16];
            snprintf(d, sizeof d, "%.4000s/" NST_DECODERS_DIR, dirs[i]);
            s = load_dir(u, d, limits, err);
        }
        if (!s && !u->have)
            s = nst_fail(err, NST_ERR_IO, "no decoders for universal style transfer found (models/" NST_DECODERS_DIR
                         "/relu<k>_1.nstm; train them with nst train --decoder, or give --decoders DIR)");
    }
    for (int k = 1; k <= 5 && !s; k++)
        if (u->have & 1 << k) {
            char name[16];
            snprintf(name, sizeof name, "relu%d_1", k);
            if (nst_layer_index(name) >= vgg->depth)
                s = nst_fail(err, NST_ERR_ARG, "the VGG19 was loaded to %d layers; the decoder of %s needs %d", vgg->depth,
                             name, nst_layer_index(name) + 1);
        }
    if (s) {
        nst_universal_free(u);
        return s;
    }
    *out = u;
    return NST_OK;
}

nst_status nst_universal_set_precision(nst_universal *u, nst_precision precision, const nst_tuning *tuning,
                                       nst_error *err) {
    nst_precision p;
    nst_status s = nst_precision_resolve_cpu(precision, tuning, &p, err);
    if (s) return s;
    if (p != NST_PRECISION_BF16) p = NST_PRECISION_FP32;
    if (p == u->precision) return NST_OK;
    int depth = 0;
    for (int k = 1; k <= 5; k++)
        if (u->have & 1 << k) depth = level_layer(k) + 1;
    conv3x3_packed *packs = NULL;
    if ((s = vgg19_packs_build(&packs, u->vgg, depth, tuning, p, err))) return s;
    nst_tuning none = {0};
    for (int k = 1; k <= 5 && !s; k++)
        if (u->have & 1 << k) {
            u->dec[k].tuning = tuning ? *tuning : none;
            u->dec[k].precision = p;
            s = stylenet_pack(&u->dec[k], err);
        }
    if (s) {
        vgg19_packs_free(packs);
        return s;
    }
    vgg19_packs_free(u->packs);
    u->packs = packs;
    u->precision = p;
    return NST_OK;
}

nst_precision nst_universal_precision(const nst_universal *u) { return u->precision; }

void nst_universal_free(nst_universal *u) {
    if (!u) return;
    vgg19_packs_free(u->packs);
    for (int k = 0; k < 6; k++) stylenet_free(&u->dec[k]);
    for (int i = 0; i < 16; i++) universal_style_free(&u->style[i]);
    for (int k = 0; k < 6; k++) wct_colouring_free(&u->colour[k]);
    free(u);
}

const char *nst_universal_dir(const nst_universal *u) { return u->dir; }
const char *nst_universal_note(const nst_universal *u) { return u->note[0] ? u->note : NULL; }
int nst_universal_levels(const nst_universal *u) { return u->have; }

nst_status nst_decoder_info_load(nst_decoder_info *info, const char *path, const nst_limits *limits, nst_error *err) {
    memset(info, 0, sizeof *info);
    nstm_model *m = calloc(1, sizeof *m);
    if (!m) return nst_fail(err, NST_ERR_NOMEM, "out of memory");
    stylenet net;
    nst_status s = nstm_load(m, path, limits, err);
    if (!s) s = stylenet_decoder_read(&net, m, path, 0, err);
    if (s) {
        nstm_free(m);
        free(m);
        return s;
    }
    info->level = net.level, info->width = net.width, info->n_params = net.n_params;
    stylenet_free(&net);
    info->keys = calloc((size_t)m->n_strings + 1, sizeof *info->keys);
    info->values = calloc((size_t)m->n_strings + 1, sizeof *info->values);
    if (!info->keys || !info->values) {
        free(info->keys), free(info->values);
        nstm_free(m);
        free(m);
        memset(info, 0, sizeof *info);
        return nst_fail(err, NST_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < m->n_strings; i++) info->keys[i] = m->strings[i].name, info->values[i] = m->strings[i].value;
    info->n_meta = m->n_strings;
    info->model = m;
    return NST_OK;
}

void nst_decoder_info_free(nst_decoder_info *info) {
    if (info->model) nstm_free(info->model);
    free(info->model);
    free(info->keys), free(info->values);
    memset(info, 0, sizeof *info);
}

/* the decoders a method runs: all (WCT), relu4_1's (AdaIN) */
static void method_decoders(const nst_universal *u, nst_universal_method method, const stylenet *dec[6]) {
    for (int k = 0; k < 6; k++)
        dec[k] = u->have & 1 << k && (method == NST_UNIVERSAL_WCT ? k <= u->max_level : k == 4) ? &u->dec[k] : NULL;
}

nst_status nst_universal_set_levels(nst_universal *u, int deepest, nst_error *err) {
    if (deepest < 1 || deepest > 5) return nst_fail(err, NST_ERR_ARG, "levels %d: 1..5 (relu1_1 .. relu5_1)", deepest);
    if (!(u->have & ((2 << deepest) - 1))) {
        int k = deepest + 1;
        while (k < 5 && !(u->have & 1 << k)) k++;
        return nst_fail(err, NST_ERR_ARG, "%s: no decoder of relu1_1 .. relu%d_1 (its shallowest is relu%d_1: %d levels)",
                        u->dir, deepest, k, k);
    }
    u->max_level = deepest;
    return NST_OK;
}

nst_status nst_universal_set_styles(nst_universal *u, const nst_image *const *paintings, const float *weights, int n,
                                    nst_universal_method method, nst_error *err) {
    if (n < 1 || n > 16) return nst_fail(err, NST_ERR_ARG, "%d paintings (1..16)", n);
    if (method == NST_UNIVERSAL_ADAIN && !(u->have & 1 << 4))
        return nst_fail(err, NST_ERR_ARG, "%s: AdaIN needs the decoder of relu4_1 (relu4_1.nstm)", u->dir);
    if (method == NST_UNIVERSAL_WCT && !(u->have & ((2 << u->max_level) - 1)))
        return nst_fail(err, NST_ERR_ARG, "%s: no decoder of relu1_1 .. relu%d_1 (a deeper one needs more levels)", u->dir,
                        u->max_level);
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        if (!(weights[i] >= 0.0f) || !isfinite(weights[i]))
            return nst_fail(err, NST_ERR_ARG, "blend weight %d is %g: the weights must be >= 0", i + 1, weights[i]);
        sum += weights[i];
    }
    if (!(sum > 0.0)) return nst_fail(err, NST_ERR_ARG, "the blend weights sum to 0");
    for (int i = 0; i < 16; i++) universal_style_free(&u->style[i]);
    for (int k = 0; k < 6; k++) wct_colouring_free(&u->colour[k]);
    u->n_styles = 0;
    const stylenet *dec[6];
    method_decoders(u, method, dec);
    for (int i = 0; i < n; i++) {
        nst_status s = universal_style_compute(&u->style[i], u->vgg, u->packs, dec, paintings[i], err);
        if (s) {
            for (int j = 0; j < i; j++) universal_style_free(&u->style[j]);
            return s;
        }
        u->w[i] = (float)(weights[i] / sum);
    }
    /* the mix's colouring at each level, once for every photo */
    for (int k = 1; k <= 5 && method == NST_UNIVERSAL_WCT; k++) {
        if (!dec[k]) continue;
        const wct_stats *ss[16];
        for (int i = 0; i < n; i++) ss[i] = &u->style[i].level[k];
        nst_status s = wct_colouring_build(&u->colour[k], ss, u->w, n, err);
        if (s) {
            for (int i = 0; i < n; i++) universal_style_free(&u->style[i]);
            for (int j = 0; j < 6; j++) wct_colouring_free(&u->colour[j]);
            return s;
        }
    }
    /* a painting with fewer positions than channels at a level colours in fewer directions */
    u->note[0] = '\0';
    for (int i = 0; i < n && !u->note[0]; i++)
        for (int k = 5; k >= 1; k--) {
            const wct_stats *st = &u->style[i].level[k];
            if (st->C && st->n <= (size_t)st->C) {
                snprintf(u->note, sizeof u->note,
                         "painting %d is small for relu%d_1: %zu positions for %d channels (its colouring keeps "
                         "rank %d; a larger --style-size gives more)",
                         i + 1, k, st->n, st->C, st->rank);
                break;
            }
        }
    u->n_styles = n;
    u->method = method;
    return NST_OK;
}

nst_status nst_universal_apply(nst_universal *u, const nst_image *photo, float strength, nst_image *out,
                               nst_error *err) {
    memset(out, 0, sizeof *out);
    if (!u->n_styles) return nst_fail(err, NST_ERR_ARG, "no painting given (nst_universal_set_styles)");
    if (!(strength >= 0.0f && strength <= 1.0f)) return nst_fail(err, NST_ERR_ARG, "strength %g is not in 0..1", strength);
    if (photo->width < 1 || photo->height < 1) return nst_fail(err, NST_ERR_ARG, "an empty photo");
    const universal_style *st[16];
    for (int i = 0; i < u->n_styles; i++) st[i] = &u->style[i];
    const stylenet *dec[6];
    method_decoders(u, u->method, dec);
    if (u->method == NST_UNIVERSAL_ADAIN)
        return universal_adain(u->vgg, u->packs, dec[4], st, u->w, u->n_styles, strength, photo, out, err);
    return universal_stylize(u->vgg, u->packs, dec, u->colour, strength, photo, out, err);
}
