/* gatys.c - optimization-based style transfer (Gatys, Ecker & Bethge 2016): the image's
 * pixels are optimized so that its VGG19 features match the content photo's and its Gram
 * matrices match the painting's.
 *
 * One evaluation of the objective = one forward pass up to the deepest tap (the losses'
 * values computed at each tap as soon as the forward pass reaches it), one backward pass
 * to the image (the losses' gradients added at each tap as the backward pass reaches it),
 * plus total variation on the image itself.
 *
 * Geometry. The result has the content's fitted size w x h (its longer side cfg->size,
 * or size x size when squashed), whatever the photo's shape. The network needs each side
 * of its input to be at least vgg19_min_side(depth) (16 up to relu5_1: each pool halves
 * a side). A smaller or thinner photo is optimized on a canvas of max(w, min) x
 * max(h, min), the photo in the middle and the rest its reflection: the content target
 * is taken on the reflected canvas, the image starts as it and the padding is optimized
 * like the rest; only the photo's crop is returned (snapshots too), and TV runs over the
 * whole canvas. A canvas rather than losses weighted to the photo's region: a few pools
 * down, every feature of a 1-pixel-high photo mixes photo and padding, so no region of
 * the deep layers is the photo's alone; on the canvas every loss keeps its meaning, and
 * a size that needs no padding runs exactly as before. Style images too small for the
 * network are reflected the same way, so their Grams are a mean over the padded canvas
 * (reflection keeps the painting's statistics, with some repeated texture).
 *
 * Devices. This file is the algorithm, once: geometry, targets' inputs, the perceptual
 * plan and the step loop. What runs on the image and the network is a device's
 * (gatys_device.h): the CPU's (gatys_cpu.c) or CUDA's (cuda/gatys_cuda.cu). */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "loss/perceptual.h"
#include "net/vgg19.h"
#include "optim/optim.h"
#include "transfer/gatys.h"
#include "transfer/gatys_device.h"
#include "util/util.h"

struct nst_transfer {
    const nst_transfer_config *cfg;
    const nst_vgg19 *net;
    int H, W;                  /* the canvas: the image the network sees */
    int h, w, x0, y0;          /* the photo's size and place on it (the result) */
    perceptual_plan plan;      /* taps, weights and the last evaluation's losses */
    float *x;                  /* (3,H,W) host copy of the image (initial image, snapshots) */
    float *content_input;      /* (3,H,W) the content, preprocessed */
    const nst_image *content;  /* for preserve_colors */
    gatys_device *dev;         /* where the image, the network and the optimizer's state live */
    adam_state adam;           /* the optimizer's own numbers (its vectors are the device's) */
    lbfgs_state lbfgs;
};

/* The registry: the backend of each device. */
static const gatys_backend *gatys_backend_for(nst_device device) {
    return device == NST_DEVICE_CUDA ? &gatys_cuda_backend : &gatys_cpu_backend;
}

/* ---- presets ---------------------------------------------------------------- */

/* A preset: the taps as comma-free lists of layer names, each tap weighing 1. */
typedef struct {
    const char *name;
    int size, squash;
    const char *content_taps[NST_MAX_TAPS], *style_taps[NST_MAX_TAPS];
    nst_gram_norm gram_norm;
    float content_weight, style_weight, tv_weight;
    nst_optimizer optimizer;
    int steps;
    float lr;
    int save_every;
} transfer_preset;

static const transfer_preset presets[] = {
    {
        /* The published recipe: content relu4_2, style relu1_1..relu5_1, L-BFGS, TV. */
        .name = "gatys",
        .size = 512,
        .content_taps = {"relu4_2"},
        .style_taps = {"relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"},
        .gram_norm = NST_GRAM_NORMALIZED,
        .content_weight = 5.0f,
        .style_weight = 100.0f,
        .tv_weight = 1.0f,
        .optimizer = NST_OPT_LBFGS,
        .steps = 500,
        .lr = 1.0f, /* used only if the optimizer is switched to Adam */
    },
    {
        /* The original notebook, exactly (docs/methods.md). */
        .name = "seed",
        .size = 224,
        .squash = 1,
        .content_taps = {"conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"},
        .style_taps = {"conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"},
        .gram_norm = NST_GRAM_RAW,
        .content_weight = 1.0f,
        .style_weight = 0.01f,
        .optimizer = NST_OPT_ADAM,
        .steps = 2000,
        .lr = 0.0003f * 255.0f, /* 0.0003 in 0..1 pixel units */
        .save_every = 200,
    },
};

static void set_taps(nst_tap *taps, int *n, const char *const *names) {
    for (*n = 0; *n < NST_MAX_TAPS && names[*n]; (*n)++) {
        taps[*n].layer = nst_layer_index(names[*n]);
        taps[*n].weight = 1.0f;
    }
}

nst_status nst_transfer_preset(nst_transfer_config *cfg, const char *name, nst_error *err) {
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        const transfer_preset *p = &presets[i];
        if (strcmp(name, p->name) != 0) continue;
        cfg->style_scale = 1.0f;
        cfg->lbfgs_history = 10;
        cfg->init = NST_INIT_CONTENT;
        cfg->seed = 1;
        cfg->size = p->size;
        cfg->squash = p->squash;
        set_taps(cfg->content_taps, &cfg->n_content_taps, p->content_taps);
        set_taps(cfg->style_taps, &cfg->n_style_taps, p->style_taps);
        cfg->gram_norm = p->gram_norm;
        cfg->content_weight = p->content_weight;
        cfg->style_weight = p->style_weight;
        cfg->tv_weight = p->tv_weight;
        cfg->optimizer = p->optimizer;
        cfg->steps = p->steps;
        cfg->lr = p->lr;
        cfg->save_every = p->save_every;
        return NST_OK;
    }
    return nst_fail(err, NST_ERR_ARG, "unknown preset '%s' (known: gatys, seed)", name);
}

/* ---- building ------------------------------------------------------------------ */

static nst_status check_config(const nst_transfer_config *cfg, const nst_vgg19 *net, int n_styles, nst_error *err) {
    if (cfg->size < 1 || cfg->size > NST_MAX_DIMENSION)
        return nst_fail(err, NST_ERR_ARG, "size %d is out of range (1..%d)", cfg->size, NST_MAX_DIMENSION);
    if (cfg->steps < 0) return nst_fail(err, NST_ERR_ARG, "steps must be >= 0");
    if (n_styles < 1 || n_styles > NST_MAX_STYLES)
        return nst_fail(err, NST_ERR_ARG, "need 1..%d style images, got %d", NST_MAX_STYLES, n_styles);
    nst_status s = perceptual_check(cfg->content_taps, cfg->n_content_taps, cfg->style_taps, cfg->n_style_taps,
                                    net->depth, err);
    if (s) return s;
    if (!(cfg->lr > 0.0f) && cfg->optimizer == NST_OPT_ADAM)
        return nst_fail(err, NST_ERR_ARG, "learning rate must be > 0");
    if (!(cfg->style_scale > 0.0f)) return nst_fail(err, NST_ERR_ARG, "style scale must be > 0");
    double style_side = (double)cfg->size * cfg->style_scale;
    if (!cfg->squash && !(style_side <= NST_MAX_DIMENSION))
        return nst_fail(err, NST_ERR_LIMIT,
                        "the style images would be %.0f px on their longer side (size %d x style scale %g), more "
                        "than %d; lower --style-scale",
                        style_side, cfg->size, cfg->style_scale, NST_MAX_DIMENSION);
    return NST_OK;
}

/* Resizes img to w x h (a copy if already that size) and preprocesses it into x (3,h,w). */
static nst_status prepare_input(float *x, const nst_image *img, int w, int h, nst_error *err) {
    nst_image r = {0};
    if (img->width == w && img->height == h) {
        vgg19_preprocess(x, img);
        return NST_OK;
    }
    nst_status s = nst_image_resize(&r, img, w, h, err);
    if (s) return s;
    vgg19_preprocess(x, &r);
    nst_image_free(&r);
    return NST_OK;
}

int gatys_reflect_index(int i, int n) {
    if (n <= 1) return 0; /* nothing to reflect: the one pixel is repeated */
    int period = 2 * (n - 1);
    i %= period;
    if (i < 0) i += period;
    return i < n ? i : period - i;
}

void gatys_pad_planes(float *dst, int W, int H, const float *src, int w, int h, int x0, int y0) {
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < H; i++) {
            const float *row = src + ((size_t)c * h + gatys_reflect_index(i - y0, h)) * w;
            float *d = dst + ((size_t)c * H + i) * W;
            for (int j = 0; j < W; j++) d[j] = row[gatys_reflect_index(j - x0, w)];
        }
}

/* The canvas for a w x h image: each side at least what the network's pools need, the
 * image centred on it. */
static void canvas_size(int depth, int w, int h, int *W, int *H, int *x0, int *y0) {
    int m = vgg19_min_side(depth);
    *W = w > m ? w : m;
    *H = h > m ? h : m;
    *x0 = (*W - w) / 2;
    *y0 = (*H - h) / 2;
}

/* img resized to w x h, preprocessed and reflected onto the canvas x (3,H,W) at x0, y0. */
static nst_status prepare_canvas(float *x, const nst_image *img, int w, int h, int W, int H, int x0, int y0,
                                 nst_error *err) {
    if (W == w && H == h) return prepare_input(x, img, w, h, err);
    float *tmp = nst_alloc_array((size_t)3 * w * h, sizeof(float));
    if (!tmp) return nst_fail(err, NST_ERR_NOMEM, "out of memory for a %dx%d image", w, h);
    nst_status s = prepare_input(tmp, img, w, h, err);
    if (!s) gatys_pad_planes(x, W, H, tmp, w, h, x0, y0);
    free(tmp);
    return s;
}

nst_status gatys_blame(nst_error *err, nst_status s, const nst_transfer_config *cfg, int style, int W, int H) {
    if (!err || s == NST_OK) return s;
    char msg[sizeof err->msg];
    snprintf(msg, sizeof msg, "%s", err->msg);
    const char *hint = "";
    if (s == NST_ERR_NOMEM || s == NST_ERR_LIMIT)
        hint = style < 0 || cfg->squash ? "; try a smaller --size" : "; try a smaller --style-scale";
    if (style < 0) return nst_fail(err, s, "content photo at %dx%d: %.900s%s", W, H, msg, hint);
    return nst_fail(err, s, "style image %d at %dx%d: %.900s%s", style + 1, W, H, msg, hint);
}

int nst_transfer_depth(const nst_transfer_config *cfg) {
    return vgg19_taps_depth(cfg->content_taps, cfg->n_content_taps, cfg->style_taps, cfg->n_style_taps);
}

/* The size a style image is resized to. */
static void style_size(const nst_transfer_config *cfg, const nst_image *style, int *w, int *h) {
    if (cfg->squash) {
        *w = *h = cfg->size;
    } else {
        int side = (int)lround(cfg->size * (double)cfg->style_scale);
        nst_image_fit_size(style->width, style->height, side < 16 ? 16 : side, w, h);
    }
}

/* The canvas a style image's Grams are taken on: W x H, the image (w x h) at x0, y0. */
typedef struct {
    int w, h, W, H, x0, y0;
} style_canvas;

static style_canvas style_geometry(const nst_transfer_config *cfg, const nst_image *style) {
    style_canvas c;
    style_size(cfg, style, &c.w, &c.h);
    canvas_size(nst_transfer_depth(cfg), c.w, c.h, &c.W, &c.H, &c.x0, &c.y0);
    return c;
}

nst_status gatys_style_input(const nst_transfer_config *cfg, const nst_image *style, int index, float **x, int *W,
                             int *H, nst_error *err) {
    style_canvas c = style_geometry(cfg, style);
    *W = c.W;
    *H = c.H;
    *x = nst_alloc_array((size_t)3 * c.W * c.H, sizeof(float));
    if (!*x) return gatys_blame(err, nst_fail(err, NST_ERR_NOMEM, "out of memory"), cfg, index, c.W, c.H);
    nst_status s = prepare_canvas(*x, style, c.w, c.h, c.W, c.H, c.x0, c.y0, err);
    if (s) {
        free(*x);
        *x = NULL;
    }
    return gatys_blame(err, s, cfg, index, c.W, c.H);
}


/* The style images' blend weights, normalised to sum to 1, into b (n_styles). */
static nst_status blend_weights(const float *blend, int n_styles, float *b, nst_error *err) {
    double total_blend = 0.0;
    for (int i = 0; i < n_styles; i++) total_blend += blend ? blend[i] : 1.0;
    if (!(total_blend > 0.0)) return nst_fail(err, NST_ERR_ARG, "style blend weights must sum to > 0");
    for (int i = 0; i < n_styles; i++) b[i] = (float)((blend ? blend[i] : 1.0) / total_blend);
    return NST_OK;
}

void gatys_free(nst_transfer *t) {
    if (!t) return;
    if (t->dev) t->dev->ops->free(t->dev);
    free(t->x);
    free(t->content_input);
    free(t);
}

const float *gatys_content_input(const nst_transfer *t) { return t->content_input; }

/* img (the content or an initial image) as the transfer's canvas, preprocessed, into x. */
static nst_status content_canvas(const nst_transfer *t, float *x, const nst_image *img, nst_error *err) {
    return prepare_canvas(x, img, t->w, t->h, t->W, t->H, t->x0, t->y0, err);
}

static nst_status init_image(nst_transfer *t, nst_error *err);

static nst_status transfer_build(nst_transfer *t, const nst_transfer_config *cfg, const nst_vgg19 *net,
                                 const nst_image *content, const nst_image *styles, const float *blend,
                                 int n_styles, nst_error *err) {
    t->cfg = cfg;
    t->net = net;
    t->content = content;
    if (cfg->squash) t->w = t->h = cfg->size;
    else nst_image_fit_size(content->width, content->height, cfg->size, &t->w, &t->h);
    canvas_size(nst_transfer_depth(cfg), t->w, t->h, &t->W, &t->H, &t->x0, &t->y0);
    perceptual_plan_init(&t->plan, cfg->content_taps, cfg->n_content_taps, cfg->content_weight, cfg->style_taps,
                         cfg->n_style_taps, cfg->style_weight, cfg->gram_norm, cfg->tv_weight);
    float bw[NST_MAX_STYLES];
    nst_status s = blend_weights(blend, n_styles, bw, err);
    if (s) return s;
    nst_device device;
    nst_precision precision;
    if ((s = nst_device_resolve(cfg->device, &device, err))) return s;
    if ((s = nst_precision_resolve(device, cfg->precision, &cfg->tuning, &precision, err))) return s;

    size_t n = (size_t)3 * t->H * t->W;
    t->x = nst_alloc_array(n, sizeof(float));
    t->content_input = nst_alloc_array(n, sizeof(float));
    if (!t->x || !t->content_input)
        return gatys_blame(err, nst_fail(err, NST_ERR_NOMEM, "out of memory"), cfg, -1, t->W, t->H);
    if ((s = content_canvas(t, t->content_input, content, err))) return gatys_blame(err, s, cfg, -1, t->W, t->H);
    memcpy(t->x, t->content_input, n * sizeof(float)); /* the default initial image */
    if ((s = init_image(t, err))) return s;

    gatys_setup setup = {cfg, net, &t->plan, t->W, t->H, t->content_input, styles, bw, n_styles, 0, 0, precision};
    if (cfg->optimizer == NST_OPT_ADAM) {
        t->adam.lr = cfg->lr;
        setup.n_vectors = ADAM_VECTORS;
        setup.n_scalars = ADAM_SCALARS;
    } else {
        lbfgs_init(&t->lbfgs, cfg->lbfgs_history);
        setup.n_vectors = LBFGS_VECTORS(t->lbfgs.history);
        setup.n_scalars = LBFGS_SCALARS(t->lbfgs.history);
    }
    if ((s = gatys_backend_for(device)->build(&t->dev, &setup, err))) return s;
    return t->dev->ops->upload(t->dev, OPTIM_X, t->x, err);
}

nst_status gatys_build(nst_transfer **out, const nst_transfer_config *cfg, const nst_vgg19 *net,
                       const nst_image *content, const nst_image *styles, const float *blend,
                       int n_styles, nst_error *err) {
    *out = NULL;
    nst_status s = check_config(cfg, net, n_styles, err);
    if (s) return s;
    nst_transfer *t = calloc(1, sizeof *t);
    if (!t) return nst_fail(err, NST_ERR_NOMEM, "out of memory");
    s = transfer_build(t, cfg, net, content, styles, blend, n_styles, err);
    if (s) {
        gatys_free(t);
        return s;
    }
    *out = t;
    return NST_OK;
}

/* ---- the objective, for tests -------------------------------------------------- */

nst_status gatys_eval(nst_transfer *t, const float *x, float *grad, double *f, nst_error *err) {
    optim_device *o = t->dev->optim;
    nst_status s = t->dev->ops->upload(t->dev, OPTIM_X, x, err);
    if (!s) s = o->ops->evaluate(o, OPTIM_X, OPTIM_G, err);
    if (!s) s = o->ops->read(o, f, NULL, NULL, 0, err);
    if (!s) s = t->dev->ops->download(t->dev, OPTIM_G, grad, err);
    return s;
}

void gatys_layer_losses(const nst_transfer *t, int l, double *content, double *style) {
    *content = t->plan.layer[l].content_value;
    *style = t->plan.layer[l].style_value;
}

void gatys_losses(const nst_transfer *t, double *content, double *style, double *tv) {
    *content = t->plan.content_loss;
    *style = t->plan.style_loss;
    *tv = t->plan.tv_loss;
}

nst_status gatys_bench(nst_transfer *t, const nst_bench_config *cfg, nst_bench_result *res, nst_error *err) {
    return t->dev->ops->bench(t->dev, cfg, res, err);
}

void gatys_size(const nst_transfer *t, int *W, int *H) {
    *W = t->W;
    *H = t->H;
}

void gatys_crop(const nst_transfer *t, int *x0, int *y0, int *w, int *h) {
    *x0 = t->x0;
    *y0 = t->y0;
    *w = t->w;
    *h = t->h;
}

/* ---- running ------------------------------------------------------------------ */

nst_status nst_transfer_snapshot(const nst_transfer *t, nst_image *img, nst_error *err) {
    nst_status s = t->dev->ops->download(t->dev, OPTIM_X, t->x, err); /* the image lives on the device */
    if (s) return s;
    s = nst_image_alloc(img, t->w, t->h, err);
    if (s) return s;
    if (t->w == t->W && t->h == t->H) {
        vgg19_deprocess(img, t->x);
    } else { /* the photo's crop of the canvas */
        float *crop = nst_alloc_array((size_t)3 * t->w * t->h, sizeof(float));
        if (!crop) {
            nst_image_free(img);
            return nst_fail(err, NST_ERR_NOMEM, "out of memory for the %dx%d result", t->w, t->h);
        }
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < t->h; i++)
                memcpy(crop + ((size_t)c * t->h + i) * t->w, t->x + ((size_t)c * t->H + t->y0 + i) * t->W + t->x0,
                       (size_t)t->w * sizeof(float));
        vgg19_deprocess(img, crop);
        free(crop);
    }
    if (t->cfg->preserve_colors) {
        s = nst_image_preserve_colors(img, t->content, err);
        if (s) nst_image_free(img);
    }
    return s;
}

static nst_status init_image(nst_transfer *t, nst_error *err) {
    const nst_transfer_config *cfg = t->cfg;
    size_t n = (size_t)3 * t->H * t->W;
    if (cfg->init == NST_INIT_NOISE) {
        nst_rng rng;
        nst_rng_seed(&rng, cfg->seed);
        for (size_t i = 0; i < n; i++) t->x[i] = (float)(16.0 * nst_rng_normal(&rng));
    } else if (cfg->init == NST_INIT_FILE) {
        /* resized to the result's size and reflected onto the canvas like the content,
         * so that it lines up with the content where the result is cropped */
        nst_image img = {0};
        nst_status s = nst_image_load(&img, cfg->init_file, &cfg->limits, err);
        if (s) return s;
        s = content_canvas(t, t->x, &img, err);
        nst_image_free(&img);
        if (s) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            return nst_fail(err, s, "init image %.500s: %.500s", cfg->init_file, msg);
        }
        return NST_OK;
    } else if (cfg->init == NST_INIT_IMAGE) {
        if (!cfg->init_image || !cfg->init_image->pixels)
            return nst_fail(err, NST_ERR_ARG, "NST_INIT_IMAGE without an init_image");
        nst_status s = content_canvas(t, t->x, cfg->init_image, err);
        if (s) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            return nst_fail(err, s, "the init image: %.500s", msg);
        }
        return NST_OK;
    } /* NST_INIT_CONTENT: t->x already holds the content */
    return NST_OK;
}

static nst_status transfer_run(const nst_transfer_config *cfg_in, const nst_vgg19 *net,
                            const nst_image *content, const nst_image *styles, const float *blend,
                            int n_styles, nst_progress_fn progress, void *user, nst_image *result,
                            nst_error *err);

/* cfg->threads for this call only (nst.h) */
nst_status nst_transfer_run(const nst_transfer_config *cfg_in, const nst_vgg19 *net,
                            const nst_image *content, const nst_image *styles, const float *blend,
                            int n_styles, nst_progress_fn progress, void *user, nst_image *result,
                            nst_error *err) {
    int saved = nst_threads_begin(cfg_in->threads);
    nst_status s = transfer_run(cfg_in, net, content, styles, blend, n_styles, progress, user, result, err);
    nst_threads_end(saved);
    return s;
}

static nst_status transfer_run(const nst_transfer_config *cfg_in, const nst_vgg19 *net,
                            const nst_image *content, const nst_image *styles, const float *blend,
                            int n_styles, nst_progress_fn progress, void *user, nst_image *result,
                            nst_error *err) {
    memset(result, 0, sizeof *result);
    /* AUTO becomes CUDA or the CPU here; the transfer keeps this resolved copy */
    nst_transfer_config rcfg = *cfg_in;
    const nst_transfer_config *cfg = &rcfg;
    nst_status s = nst_device_resolve(cfg_in->device, &rcfg.device, err);
    if (s) return s;
    double t0 = nst_now();
    nst_transfer *t;
    s = gatys_build(&t, cfg, net, content, styles, blend, n_styles, err);
    if (s) return s;
    optim_device *o = t->dev->optim;
    const perceptual_plan *p = &t->plan;

    nst_status status = NST_OK;
    double f = 0.0;
    if (cfg->optimizer == NST_OPT_LBFGS && cfg->steps > 0) status = lbfgs_start(&t->lbfgs, o, &f, err);
    for (int step = 1; step <= cfg->steps && status == NST_OK; step++) {
        int moved = 1;
        if (cfg->optimizer == NST_OPT_ADAM) status = adam_step(&t->adam, o, &f, err); /* f: before the update */
        else status = lbfgs_step(&t->lbfgs, o, &f, &moved, err);
        if (status) break;
        if (!moved) {
            /* converged or stuck: no step lowers the loss any more */
            nst_progress pr = {step - 1, cfg->steps, nst_now() - t0, p->content_loss, p->style_loss, p->tv_loss, f};
            if (progress) progress(t, &pr, user);
            break;
        }
        if (!isfinite(f)) {
            status = nst_fail(err, NST_ERR_ARG, "the loss became %g at step %d; lower the learning rate or weights", f, step);
            break;
        }
        nst_progress pr = {step, cfg->steps, nst_now() - t0, p->content_loss, p->style_loss, p->tv_loss, f};
        if (progress && progress(t, &pr, user)) {
            status = nst_fail(err, NST_ERR_INTERRUPTED, "stopped after step %d of %d", step, cfg->steps);
            break;
        }
    }
    nst_status s2 = nst_transfer_snapshot(t, result, err);
    if (s2) status = s2;
    gatys_free(t);
    return status;
}
