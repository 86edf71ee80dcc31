/* stylenet_train.c - training a style network (feed-forward style transfer) with the
 * perceptual loss of the VGG19 (Johnson et al. 2016): the host trainer (style targets,
 * data, checkpoints, previews, nst_train_run) and the CPU's trainer table
 * (stylenet_backend.h); a device's table runs the steps.
 *
 * The CPU's training step, for each photo x of the mini-batch, one at a time (instance
 * norm makes every image independent, so a batch is just gradient accumulation and needs
 * the memory of one image):
 *   P = VGG(x) at the content layers                      (content target)
 *   y = net(x)                                            (the stylised photo, 0..255)
 *   loss = content(VGG(y), P) + style(Gram(VGG(y)), A) + TV(y), A the painting's Grams
 *   backward through the VGG to y, then through net to its parameters
 * then one Adam update of the parameters over the batch's mean gradient. (CUDA's step,
 * cuda/stylenet_train_cuda.h, computes the same on the whole batch at once.) */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "loss/losses.h"
#include "loss/perceptual.h"
#include "net/model_file.h"
#include "net/stylenet.h"
#include "net/vgg19.h"
#include "optim/optim.h"
#include "tensor/ops.h"
#include "transfer/dataset.h"
#include "transfer/stylenet_train.h"
#include "util/util.h"
#include "transfer/stylenet_backend.h"
#include "transfer/universal.h"

/* ---- the trainer ---------------------------------------------------------------------- */

void nst_train_defaults(nst_train_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->steps = 2000;
    cfg->batch = 4;
    cfg->size = 256;
    cfg->style_size = 512;
    cfg->width = 32;
    cfg->n_res = 5;
    cfg->lr = 1e-3f;
    /* the loss of Engstrom's fast-style-transfer (VGG19 with the same Caffe weights and
     * input units as here), a recipe known to train well: content relu4_2 x 7.5, style
     * relu1_1..relu5_1 x 100 (Grams / (C H W)), total variation x 200 */
    static const char *const style[] = {"relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"};
    cfg->n_content_taps = 1;
    cfg->content_taps[0].layer = nst_layer_index("relu4_2");
    cfg->content_taps[0].weight = 1.0f;
    cfg->n_style_taps = 5;
    for (int i = 0; i < 5; i++) {
        cfg->style_taps[i].layer = nst_layer_index(style[i]);
        cfg->style_taps[i].weight = 1.0f;
    }
    cfg->content_weight = 7.5f;
    cfg->style_weight = 100.0f;
    cfg->tv_weight = 200.0f;
    cfg->seed = 1;
    cfg->checkpoint_every = 200;
    cfg->holdout = 4;
}

int nst_train_depth(const nst_train_config *cfg) {
    if (cfg->decoder_level >= 1 && cfg->decoder_level <= 5) {
        char name[16];
        snprintf(name, sizeof name, "relu%d_1", cfg->decoder_level);
        nst_tap feature = {.layer = nst_layer_index(name), .weight = 1.0f};
        return vgg19_taps_depth(&feature, 1, NULL, 0);
    }
    return vgg19_taps_depth(cfg->content_taps, cfg->n_content_taps, cfg->style_taps, cfg->n_style_taps);
}

struct stylenet_trainer {
    const nst_train_config *cfg;
    const nst_vgg19 *vgg;
    stylenet net;
    stylenet_acts acts;
    vgg19_acts vacts;
    int n_styles;             /* the paintings: cfg->style_paths, or cfg->style_path */
    float *styleA[NST_NUM_LAYERS];   /* each style's Grams at the style layers (n_styles,C,C) */
    size_t style_cc[NST_NUM_LAYERS]; /* C*C of each */
    conv3x3_packed *vpacks; /* the run's own VGG19 packs (bf16), or NULL: the network's */
    nst_precision precision; /* the CPU convolutions' (resolved) */
    perceptual_plan plan;    /* the taps, their weights, the last photo's losses */
    perceptual_cpu targets;  /* the painting's Grams; P: the current photo's features */
    adam_state adam;
    nst_dataset *data;
    float *batch;      /* (B,3,S,S) photos, 0..1 */
    float *dy;         /* (3,S,S) d(loss)/d(network output) */
    float *vgrad;      /* (3,S,S) d(loss)/d(VGG input) */
    float *x255;       /* a decoder's: (3,S,S) the photo, 0..255 (the pixel loss's target) */
    int step;          /* steps completed */
    double elapsed_s;  /* training time of all runs up to the last step (seconds) */
    double content_loss, style_loss, tv_loss; /* weighted, mean over the last batch */
    stylenet_train_runner *dev; /* the device's trainer, which runs the steps */
    int host_stale;             /* the device has stepped since net.params and adam were
                                 * refreshed (a table with own_state only) */
};

static int config_styles(const nst_train_config *cfg) {
    return cfg->style_paths && cfg->n_styles > 1 ? cfg->n_styles : 1;
}

static const char *config_style_path(const nst_train_config *cfg, int i) {
    return cfg->style_paths && cfg->n_styles > 1 ? cfg->style_paths[i] : cfg->style_path;
}

/* The style targets of painting k into t->targets' A: its Grams (copied from styleA). */
static void style_use(stylenet_trainer *t, int k) {
    for (int l = 0; l < t->plan.depth; l++)
        if (t->styleA[l]) memcpy(t->targets.layer[l].A, t->styleA[l] + k * t->style_cc[l], t->style_cc[l] * sizeof(float));
}

/* Style targets: painting k's normalised Grams at the style layers, into styleA. */
static nst_status style_targets(stylenet_trainer *t, int k, nst_error *err) {
    const nst_train_config *cfg = t->cfg;
    nst_image style = {0}, resized = {0};
    nst_status s = nst_image_load(&style, config_style_path(cfg, k), &cfg->limits, err);
    if (s) return s;
    int w, h;
    nst_image_fit_size(style.width, style.height, cfg->style_size, &w, &h);
    if (w < 16) w = 16;
    if (h < 16) h = 16;
    s = nst_image_resize(&resized, &style, w, h, err);
    nst_image_free(&style);
    if (s) return s;
    vgg19_acts sa;
    s = vgg19_acts_build(&sa, t->plan.depth, h, w, NULL, err);
    if (s) { nst_image_free(&resized); return s; }
    vgg19_preprocess(sa.input, &resized);
    nst_image_free(&resized);
    sa.packs = t->vpacks;
    for (int l = 0; l < t->plan.depth && !s; l++) {
        vgg19_forward_layer(t->vgg, &sa, l);
        if (!t->plan.layer[l].style) continue;
        size_t cc = (size_t)sa.C[l] * sa.C[l];
        if (t->targets.layer[l].A) memset(t->targets.layer[l].A, 0, cc * sizeof(float));
        if ((s = perceptual_cpu_style_add(&t->targets, &t->plan, &sa, l, 1.0f, err))) break;
        if (!t->styleA[l] && !(t->styleA[l] = nst_alloc_array((size_t)t->n_styles * cc, sizeof(float))))
            s = nst_fail(err, NST_ERR_NOMEM, "out of memory for the style targets");
        else memcpy(t->styleA[l] + k * cc, t->targets.layer[l].A, cc * sizeof(float));
        t->style_cc[l] = cc;
    }
    vgg19_acts_free(&sa);
    return s;
}

void stylenet_trainer_free(stylenet_trainer *t) {
    if (!t) return;
    if (t->dev) t->dev->ops->free(t->dev);
    stylenet_free(&t->net);
    stylenet_acts_free(&t->acts);
    vgg19_acts_free(&t->vacts);
    vgg19_packs_free(t->vpacks);
    perceptual_cpu_free(&t->targets);
    for (int l = 0; l < NST_NUM_LAYERS; l++) free(t->styleA[l]);
    adam_free(&t->adam);
    if (t->data) dataset_free(t->data);
    free(t->batch);
    free(t->dy);
    free(t->vgrad);
    free(t->x255);
    free(t);
}

static nst_status check_train_config(const nst_train_config *cfg, const nst_vgg19 *vgg, nst_error *err) {
    if (cfg->steps < 0) return nst_fail(err, NST_ERR_ARG, "steps must be >= 0");
    if (cfg->batch < 1 || cfg->batch > 256) return nst_fail(err, NST_ERR_ARG, "batch %d is out of range (1..256)", cfg->batch);
    if (cfg->size < 32 || cfg->size > 2048 || cfg->size % 4)
        return nst_fail(err, NST_ERR_ARG, "training size %d must be a multiple of 4 in 32..2048", cfg->size);
    if (cfg->photo_size && (cfg->photo_size < cfg->size || cfg->photo_size > 8192))
        return nst_fail(err, NST_ERR_ARG, "photo size %d is out of range (the training size %d..8192)", cfg->photo_size, cfg->size);
    if (cfg->style_size < 16 || cfg->style_size > 8192)
        return nst_fail(err, NST_ERR_ARG, "style size %d is out of range (16..8192)", cfg->style_size);
    if (!(cfg->lr > 0.0f) || !isfinite(cfg->lr)) return nst_fail(err, NST_ERR_ARG, "learning rate must be > 0");
    if (cfg->decoder_level) {
        if (cfg->decoder_level < 1 || cfg->decoder_level > 5)
            return nst_fail(err, NST_ERR_ARG, "decoder level %d is out of range (1..5)", cfg->decoder_level);
        if (cfg->size % (1 << (cfg->decoder_level - 1)) || cfg->size < 4 << cfg->decoder_level)
            return nst_fail(err, NST_ERR_ARG, "the decoder of relu%d_1 trains on sizes that are multiples of %d, at least %d",
                            cfg->decoder_level, 1 << (cfg->decoder_level - 1), 4 << cfg->decoder_level);
        if (!(cfg->pixel_weight >= 0.0f) || !(cfg->content_weight >= 0.0f) || !(cfg->pixel_weight + cfg->content_weight > 0.0f))
            return nst_fail(err, NST_ERR_ARG, "the decoder's pixel and feature weights must be >= 0, not both 0");
        return NST_OK;
    }
    if (cfg->style_paths && (cfg->n_styles < 1 || cfg->n_styles > STYLENET_MAX_STYLES))
        return nst_fail(err, NST_ERR_ARG, "%d styles is out of range (1..%d)", cfg->n_styles, STYLENET_MAX_STYLES);
    for (int k = 0; k < config_styles(cfg); k++)
        if (!config_style_path(cfg, k)) return nst_fail(err, NST_ERR_ARG, "style %d has no painting", k + 1);
    return perceptual_check(cfg->content_taps, cfg->n_content_taps, cfg->style_taps, cfg->n_style_taps, vgg->depth,
                            err);
}

/* The device's trainer takes over the steps (on CUDA: cuda/stylenet_train_cuda.h); the
 * host keeps the style targets, the data and a copy of the state for checkpoints. */
static nst_status trainer_use_device(stylenet_trainer *t, nst_error *err) {
    nst_device dev;
    nst_status s = nst_device_resolve(t->cfg->device, &dev, err);
    if (s) return s;
    if (t->n_styles > 1 && dev != NST_DEVICE_CPU)
        return nst_fail(err, NST_ERR_ARG, "a network of %d styles trains on the CPU only (--device cpu)", t->n_styles);
    if (t->cfg->decoder_level && dev != NST_DEVICE_CPU)
        return nst_fail(err, NST_ERR_ARG, "decoders train on the CPU only (--device cpu)");
    const float *A[NST_NUM_LAYERS];
    for (int l = 0; l < NST_NUM_LAYERS; l++) A[l] = t->targets.layer[l].A;
    stylenet_train_setup setup = {.cfg = t->cfg,
                                  .vgg = t->vgg,
                                  .net = &t->net,
                                  .plan = &t->plan,
                                  .style_A = A,
                                  .batch = t->batch,
                                  .host = t};
    return stylenet_trainer_backend_get(dev)->build(&t->dev, &setup, err);
}

/* Refreshes the host's parameters (packed) and Adam state from the device, if it stepped. */
static nst_status trainer_sync(stylenet_trainer *t, nst_error *err) {
    if (!t->host_stale) return NST_OK;
    nst_status s = t->dev->ops->get_state(t->dev, t->net.params, t->adam.m, t->adam.v, err);
    if (s) return s;
    t->host_stale = 0;
    return stylenet_pack(&t->net, err);
}

nst_status stylenet_trainer_build(stylenet_trainer **out, const nst_train_config *cfg, const nst_vgg19 *vgg,
                              nst_error *err) {
    *out = NULL;
    nst_status s = check_train_config(cfg, vgg, err);
    if (s) return s;
    stylenet_trainer *t = calloc(1, sizeof *t);
    if (!t) return nst_fail(err, NST_ERR_NOMEM, "out of memory");
    t->cfg = cfg;
    t->vgg = vgg;
    int level = cfg->decoder_level;
    if (level) { /* the feature loss: the content term at relu<level>_1 */
        char name[16];
        snprintf(name, sizeof name, "relu%d_1", level);
        nst_tap feature = {.layer = nst_layer_index(name), .weight = 1.0f};
        perceptual_plan_init(&t->plan, &feature, 1, cfg->content_weight, NULL, 0, 0.0f, NST_GRAM_NORMALIZED,
                             cfg->tv_weight);
        if (t->plan.depth > vgg->depth) {
            s = nst_fail(err, NST_ERR_ARG, "the loss network has %d layers; the decoder of %s needs %d", vgg->depth, name,
                         t->plan.depth);
            free(t);
            return s;
        }
    } else {
        perceptual_plan_init(&t->plan, cfg->content_taps, cfg->n_content_taps, cfg->content_weight, cfg->style_taps,
                             cfg->n_style_taps, cfg->style_weight, NST_GRAM_NORMALIZED, cfg->tv_weight);
    }
    t->targets.tier = vgg->tier; /* the network's kernels, for the Grams too */

    int S = cfg->size;
    size_t n = (size_t)3 * S * S;
    nst_device dev;
    if ((s = nst_device_resolve(cfg->device, &dev, err))) goto fail;
    if ((s = nst_precision_resolve(dev, cfg->precision, &cfg->tuning, &t->precision, err))) goto fail;
    /* bf16: the loss network's packs for this run (the network is loaded once, in fp32) */
    if ((s = vgg19_packs_build(&t->vpacks, vgg, t->plan.depth, &cfg->tuning, dev == NST_DEVICE_CPU ? t->precision : NST_PRECISION_FP32, err)))
        goto fail;
    t->n_styles = level ? 1 : config_styles(cfg);
    for (int k = 0; k < t->n_styles && !level && !s; k++) s = style_targets(t, k, err);
    if (s) goto fail;
    style_use(t, 0);
    unsigned char keep[NST_NUM_LAYERS] = {0};
    for (int l = 0; l < t->plan.depth; l++) keep[l] = t->plan.tap[l] && vgg19_layer_kind(l) == VGG_CONV;
    if ((s = vgg19_acts_build(&t->vacts, t->plan.depth, S, S, keep, err))) goto fail;
    vgg19_acts_fuse_relus(&t->vacts); /* the losses read kept convs only */
    t->vacts.packs = t->vpacks;
    if ((s = perceptual_cpu_content_alloc(&t->targets, &t->plan, &t->vacts, err))) goto fail;
    if (level) s = stylenet_build_decoder(&t->net, level, cfg->width, 1, err);
    else s = stylenet_build_styles(&t->net, cfg->width, cfg->n_res, t->n_styles, 1, err);
    if (s) goto fail;
    t->net.tuning = cfg->tuning; /* the CPU kernels of its packs */
    t->net.precision = dev == NST_DEVICE_CPU ? t->precision : NST_PRECISION_FP32;
    nst_rng rng;
    nst_rng_seed(&rng, cfg->seed);
    if ((s = stylenet_init_params(&t->net, &rng, err))) goto fail;
    int fs = level ? S >> (level - 1) : S; /* a decoder's input: the features' size */
    if ((s = stylenet_acts_build(&t->acts, &t->net, fs, fs, 1, err))) goto fail;
    if ((s = adam_build(&t->adam, t->net.n_params, cfg->lr, err))) goto fail;
    t->batch = nst_alloc_array((size_t)cfg->batch * n, sizeof(float));
    t->dy = nst_alloc_array(n, sizeof(float));
    t->vgrad = nst_alloc_array(n, sizeof(float));
    if (level) t->x255 = nst_alloc_array(n, sizeof(float));
    if (!t->batch || !t->dy || !t->vgrad || (level && !t->x255)) {
        s = nst_fail(err, NST_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if ((s = trainer_use_device(t, err))) goto fail;
    *out = t;
    return NST_OK;
fail:
    stylenet_trainer_free(t);
    return s;
}

stylenet *stylenet_trainer_net(stylenet_trainer *t) {
    nst_error ignored; /* a failed download leaves the last copy */
    trainer_sync(t, &ignored);
    return &t->net;
}

nst_status stylenet_trainer_gradients(stylenet_trainer *t, float *grads, nst_error *err) {
    return t->dev->ops->get_grads(t->dev, grads, err);
}

/* The losses' gradient at VGG layer l, added into g during the backward pass. */
static void tap_backward(void *ctx, const vgg19_acts *a, int l, float *g) {
    stylenet_trainer *t = ctx;
    float inv_b = 1.0f / (float)t->cfg->batch; /* the loss is the batch's mean */
    perceptual_cpu_backward(&t->targets, &t->plan, a, l, g, inv_b);
}

/* A decoder's loss on one photo x: F = VGG(x) at relu<level>_1 (the decoder's input and
 * the feature target), y = decoder(F), loss = pixel_weight mean((y - 255 x)^2) +
 * content_weight mean((VGG(y) - F)^2) at that layer (+ TV). Reported as content: the
 * feature term, style: the pixel term. */
static nst_status decoder_image_loss(stylenet_trainer *t, const float *photo, int backward, nst_error *err) {
    const nst_train_config *cfg = t->cfg;
    int S = cfg->size;
    size_t hw = (size_t)S * S, n = 3 * hw;
    vgg19_acts *va = &t->vacts;
    perceptual_plan *p = &t->plan;
    for (size_t i = 0; i < n; i++) t->x255[i] = photo[i] * 255.0f;
    vgg19_preprocess_planes(va->input, t->x255, hw);
    const float *F = NULL;
    for (int l = 0; l < p->content_depth; l++) {
        vgg19_forward_layer(t->vgg, va, l);
        if (p->layer[l].content) {
            perceptual_cpu_content_set(&t->targets, va, l);
            F = t->targets.layer[l].P;
        }
    }
    memcpy(t->acts.input, F, (size_t)t->acts.C_in * t->acts.H * t->acts.W * sizeof(float));
    nst_status s = stylenet_forward(&t->net, &t->acts, 0, err);
    if (s) return s;
    const float *y = stylenet_output(&t->net, &t->acts);
    vgg19_preprocess_planes(va->input, y, hw);
    for (int l = 0; l < p->depth; l++) {
        vgg19_forward_layer(t->vgg, va, l);
        if (p->tap[l]) perceptual_cpu_forward(&t->targets, p, va, l);
    }
    p->tv_value = cfg->tv_weight > 0.0f ? tv_loss_forward(y, 3, S, S) : 0.0;
    perceptual_finish(p);
    double pixel = cfg->pixel_weight * content_loss_forward(y, t->x255, n);
    t->content_loss += p->content_loss / cfg->batch;
    t->style_loss += pixel / cfg->batch;
    t->tv_loss += p->tv_loss / cfg->batch;
    if (!backward) return NST_OK;
    vgg19_backward(t->vgg, va, p->tap, tap_backward, t, t->vgrad, 0);
    for (int c = 0; c < 3; c++) memcpy(t->dy + (2 - c) * hw, t->vgrad + c * hw, hw * sizeof(float));
    content_loss_backward(t->dy, y, t->x255, n, cfg->pixel_weight / cfg->batch);
    if (cfg->tv_weight > 0.0f) tv_loss_backward(t->dy, y, 3, S, S, cfg->tv_weight / cfg->batch);
    return stylenet_backward(&t->net, &t->acts, t->dy, NULL, 0, err);
}

nst_status stylenet_trainer_image_loss(stylenet_trainer *t, const float *photo, int backward, nst_error *err) {
    nst_status s0 = trainer_sync(t, err); /* (evaluation after GPU steps runs on the CPU) */
    if (s0) return s0;
    if (t->cfg->decoder_level) return decoder_image_loss(t, photo, backward, err);
    const nst_train_config *cfg = t->cfg;
    int S = cfg->size;
    size_t hw = (size_t)S * S, n = 3 * hw;
    vgg19_acts *va = &t->vacts;
    /* content target: the photo's features */
    float *y255 = t->dy; /* scratch until the backward pass */
    for (size_t i = 0; i < n; i++) y255[i] = photo[i] * 255.0f;
    vgg19_preprocess_planes(va->input, y255, hw);
    for (int l = 0; l < t->plan.content_depth; l++) {
        vgg19_forward_layer(t->vgg, va, l);
        if (t->plan.layer[l].content) perceptual_cpu_content_set(&t->targets, va, l);
    }
    /* the stylised photo and its losses */
    memcpy(t->acts.input, photo, n * sizeof(float));
    nst_status s = stylenet_forward(&t->net, &t->acts, 0, err);
    if (s) return s;
    const float *y = stylenet_output(&t->net, &t->acts);
    vgg19_preprocess_planes(va->input, y, hw);
    perceptual_plan *p = &t->plan;
    for (int l = 0; l < p->depth; l++) {
        vgg19_forward_layer(t->vgg, va, l);
        if (p->tap[l]) perceptual_cpu_forward(&t->targets, p, va, l);
    }
    p->tv_value = cfg->tv_weight > 0.0f ? tv_loss_forward(y, 3, S, S) : 0.0;
    perceptual_finish(p);
    t->content_loss += p->content_loss / cfg->batch;
    t->style_loss += p->style_loss / cfg->batch;
    t->tv_loss += p->tv_loss / cfg->batch;
    if (!backward) return NST_OK;
    vgg19_backward(t->vgg, va, p->tap, tap_backward, t, t->vgrad, 0);
    /* VGG input (BGR) -> network output (RGB): the channel order reversed */
    for (int c = 0; c < 3; c++) memcpy(t->dy + (2 - c) * hw, t->vgrad + c * hw, hw * sizeof(float));
    if (cfg->tv_weight > 0.0f) tv_loss_backward(t->dy, y, 3, S, S, cfg->tv_weight / cfg->batch);
    return stylenet_backward(&t->net, &t->acts, t->dy, NULL, 0, err);
}

/* ---- the CPU's trainer table: the steps run on the host trainer's own state ------------ */

typedef struct {
    stylenet_train_runner base;
    stylenet_trainer *t;
} cpu_train_runner;

static stylenet_trainer *host_of(stylenet_train_runner *r) { return ((cpu_train_runner *)r)->t; }

static nst_status cpu_build(stylenet_train_runner **out, const stylenet_train_setup *setup, nst_error *err) {
    *out = NULL;
    cpu_train_runner *r = calloc(1, sizeof *r);
    if (!r) return nst_fail(err, NST_ERR_NOMEM, "out of memory");
    r->base.ops = &stylenet_trainer_cpu_backend;
    r->t = setup->host;
    *out = &r->base;
    return NST_OK;
}

/* Each photo's loss and gradient in turn (accumulated), then Adam (which counts adam_t). */
static nst_status cpu_step(stylenet_train_runner *r, const float *batch, int adam_t, double losses[3],
                           nst_error *err) {
    (void)adam_t;
    stylenet_trainer *t = host_of(r);
    const nst_train_config *cfg = t->cfg;
    size_t n = (size_t)3 * cfg->size * cfg->size;
    memset(t->net.grads, 0, t->net.n_params * sizeof(float));
    t->content_loss = t->style_loss = t->tv_loss = 0.0;
    for (int b = 0; b < cfg->batch; b++) {
        if (t->n_styles > 1) { /* round robin over the paintings, photo by photo */
            int k = (int)(((int64_t)t->step * cfg->batch + b) % t->n_styles);
            stylenet_select_style(&t->net, k);
            style_use(t, k);
        }
        nst_status s = stylenet_trainer_image_loss(t, batch + b * n, 1, err);
        if (s) return s;
    }
    adam_update(&t->adam, t->net.params, t->net.grads);
    losses[0] = t->content_loss, losses[1] = t->style_loss, losses[2] = t->tv_loss;
    return stylenet_pack(&t->net, err);
}

/* The state is the host's: copies only where the caller's buffers are others. */
static void copy_floats(float *dst, const float *src, size_t n) {
    if (dst && src && dst != src) memcpy(dst, src, n * sizeof(float));
}

static nst_status cpu_get_state(stylenet_train_runner *r, float *params, float *m, float *v, nst_error *err) {
    (void)err;
    stylenet_trainer *t = host_of(r);
    size_t n = t->net.n_params;
    copy_floats(params, t->net.params, n);
    copy_floats(m, t->adam.m, n);
    copy_floats(v, t->adam.v, n);
    return NST_OK;
}

static nst_status cpu_set_state(stylenet_train_runner *r, const float *params, const float *m, const float *v,
                                nst_error *err) {
    stylenet_trainer *t = host_of(r);
    size_t n = t->net.n_params;
    int moved = params && params != t->net.params;
    copy_floats(t->net.params, params, n);
    copy_floats(t->adam.m, m, n);
    copy_floats(t->adam.v, v, n);
    return moved ? stylenet_pack(&t->net, err) : NST_OK;
}

static nst_status cpu_get_grads(stylenet_train_runner *r, float *grads, nst_error *err) {
    (void)err;
    stylenet_trainer *t = host_of(r);
    memcpy(grads, t->net.grads, t->net.n_params * sizeof(float));
    return NST_OK;
}

static void cpu_free(stylenet_train_runner *r) { free(r); }

const stylenet_trainer_backend stylenet_trainer_cpu_backend = {
    .name = "cpu",
    .own_state = 0,
    .build = cpu_build,
    .step = cpu_step,
    .get_state = cpu_get_state,
    .set_state = cpu_set_state,
    .get_grads = cpu_get_grads,
    .free = cpu_free,
};

/* ---- steps and losses -------------------------------------------------------------------- */

/* One optimizer step over the mini-batch in t->batch, on the trainer's device. */
nst_status stylenet_trainer_step(stylenet_trainer *t, nst_error *err) {
    double l[3];
    int adam_t = t->adam.t + 1;
    nst_status s = t->dev->ops->step(t->dev, t->batch, adam_t, l, err);
    if (s) return s;
    t->adam.t = adam_t;
    t->content_loss = l[0], t->style_loss = l[1], t->tv_loss = l[2];
    t->step++;
    if (t->dev->ops->own_state) t->host_stale = 1;
    return NST_OK;
}

double stylenet_trainer_losses(const stylenet_trainer *t, double *content, double *style, double *tv) {
    if (content) *content = t->content_loss;
    if (style) *style = t->style_loss;
    if (tv) *tv = t->tv_loss;
    return t->content_loss + t->style_loss + t->tv_loss;
}

float *stylenet_trainer_batch(stylenet_trainer *t) { return t->batch; }

/* ---- the training run: data, checkpoints, previews, resumption ---------------------- */

/* out.nstm -> out_step000200.jpg */
static void preview_path(char *buf, size_t len, const char *output, int step) {
    const char *dot = strrchr(output, '.'), *slash = strrchr(output, '/');
    int stem = dot && (!slash || dot > slash) ? (int)(dot - output) : (int)strlen(output);
    snprintf(buf, len, "%.*s_step%06d.jpg", stem, output, step);
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static void taps_string(char *buf, size_t len, const nst_tap *taps, int n) {
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        size_t used = strlen(buf);
        snprintf(buf + used, len - used, "%s%s:%g", i ? "," : "", nst_layer_name(taps[i].layer), taps[i].weight);
    }
}

/* The command, the steps done and the training time. */
static nst_status add_run_record(const stylenet_trainer *t, nstm_model *m, nst_error *err) {
    char buf[64];
    nst_status s = t->cfg->command ? nstm_add_string(m, "command", t->cfg->command, err) : NST_OK;
    snprintf(buf, sizeof buf, "%d", t->step);
    if (!s) s = nstm_add_string(m, "steps", buf, err);
    /* rounded up to the millisecond, so that a resumed run's clock never goes back */
    snprintf(buf, sizeof buf, "%.3f", ceil(t->elapsed_s * 1000.0) / 1000.0);
    if (!s) s = nstm_add_string(m, "train_seconds", buf, err);
    return s;
}

/* The network and the record of what made it. */
static nst_status model_add_record(const stylenet_trainer *t, nstm_model *m, nst_error *err) {
    const nst_train_config *cfg = t->cfg;
    char buf[1024];
    nst_status s = stylenet_model_add(m, &t->net, err);
    if (cfg->decoder_level) {
        if (!s) s = add_run_record(t, m, err);
        snprintf(buf, sizeof buf, "relu%d_1", cfg->decoder_level);
        if (!s) s = nstm_add_string(m, "decodes", buf, err);
        snprintf(buf, sizeof buf, "batch %d, size %d, lr %g, pixel weight %g, feature weight %g, tv weight %g, seed %llu",
                 cfg->batch, cfg->size, cfg->lr, cfg->pixel_weight, cfg->content_weight, cfg->tv_weight,
                 (unsigned long long)cfg->seed);
        if (!s) s = nstm_add_string(m, "training", buf, err);
        return s;
    }
    if (t->n_styles > 1) { /* "styles": the paintings' names, in the order of the norms' rows */
        char names[4096] = "", files[4096] = "";
        for (int k = 0; k < t->n_styles; k++) {
            const char *b = base_name(config_style_path(cfg, k)), *dot = strrchr(b, '.');
            size_t u = strlen(names), v = strlen(files);
            snprintf(names + u, sizeof names - u, "%s%.*s", k ? "," : "", dot ? (int)(dot - b) : (int)strlen(b), b);
            snprintf(files + v, sizeof files - v, "%s%s", k ? "," : "", b);
        }
        if (!s) s = nstm_add_string(m, "styles", names, err);
        if (!s) s = nstm_add_string(m, "style", files, err);
    } else if (!s) {
        s = nstm_add_string(m, "style", base_name(cfg->style_path), err);
    }
    if (!s) s = add_run_record(t, m, err);
    char photo[48] = "";
    if (cfg->photo_size > cfg->size) snprintf(photo, sizeof photo, " (windows of photos at %d)", cfg->photo_size);
    snprintf(buf, sizeof buf, "batch %d, size %d%s, style size %d, lr %g, content weight %g, style weight %g, tv weight %g, seed %llu",
             cfg->batch, cfg->size, photo, cfg->style_size, cfg->lr, cfg->content_weight, cfg->style_weight, cfg->tv_weight,
             (unsigned long long)cfg->seed);
    if (!s) s = nstm_add_string(m, "training", buf, err);
    taps_string(buf, sizeof buf, cfg->content_taps, cfg->n_content_taps);
    if (!s) s = nstm_add_string(m, "content_layers", buf, err);
    taps_string(buf, sizeof buf, cfg->style_taps, cfg->n_style_taps);
    if (!s) s = nstm_add_string(m, "style_layers", buf, err);
    return s;
}

/* The model file. */
static nst_status save_model(const stylenet_trainer *t, const char *path, nst_error *err) {
    nstm_model m = {0};
    nst_status s = model_add_record(t, &m, err);
    if (!s) s = nstm_save(&m, path, err);
    nstm_free(&m);
    return s;
}

nst_status stylenet_trainer_save_model(stylenet_trainer *t, const char *path, nst_error *err) {
    nst_status s = trainer_sync(t, err);
    return s ? s : save_model(t, path, err);
}

/* The checkpoint: the model plus the optimizer's and the sampler's state. */
static nst_status save_checkpoint(const stylenet_trainer *t, const nst_dataset *data, const char *path, nst_error *err) {
    nstm_model m = {0};
    dataset_position pos;
    dataset_get_position(data, &pos);
    int n = (int)t->net.n_params;
    nst_status s = model_add_record(t, &m, err);
    if (!s) s = nstm_add_string(&m, "kind", "checkpoint", err);
    if (!s) s = nstm_add_int(&m, "step", t->step, err);
    if (!s) s = nstm_add_int(&m, "adam_t", t->adam.t, err);
    if (!s) s = nstm_add_tensor(&m, "adam.m", 1, &n, t->adam.m, err);
    if (!s) s = nstm_add_tensor(&m, "adam.v", 1, &n, t->adam.v, err);
    if (!s) s = nstm_add_int(&m, "data.seed_lo", (int32_t)(uint32_t)pos.seed, err);
    if (!s) s = nstm_add_int(&m, "data.seed_hi", (int32_t)(uint32_t)(pos.seed >> 32), err);
    if (!s) s = nstm_add_int(&m, "data.epoch", (int32_t)pos.epoch, err);
    if (!s) s = nstm_add_int(&m, "data.index", (int32_t)pos.index, err);
    if (!s) s = nstm_add_int(&m, "data.n_train", (int32_t)pos.n_train, err);
    if (!s) s = nstm_add_int(&m, "data.failures", (int32_t)pos.failures, err);
    if (!s) s = nstm_save(&m, path, err);
    nstm_free(&m);
    return s;
}

static nst_status load_checkpoint(stylenet_trainer *t, nst_dataset *data, const char *path, nst_error *err) {
    nstm_model m = {0};
    stylenet saved = {0};
    nst_status s = nstm_load(&m, path, &t->cfg->limits, err);
    if (s) return s;
    const char *kind = nstm_get_string(&m, "kind");
    if (!kind || strcmp(kind, "checkpoint") != 0) {
        s = nst_fail(err, NST_ERR_FORMAT, "%s: a model file, not a training checkpoint (use the .ckpt file)", path);
        goto done;
    }
    if ((s = t->net.kind == STYLENET_DECODER ? stylenet_decoder_read(&saved, &m, path, 0, err)
                                             : stylenet_model_read(&saved, &m, path, 0, err)))
        goto done;
    if (t->net.kind == STYLENET_DECODER && (saved.level != t->net.level || saved.width != t->net.width)) {
        s = nst_fail(err, NST_ERR_ARG, "%s: the checkpoint is of a width %d decoder of relu%d_1, not width %d of relu%d_1",
                     path, saved.width, saved.level, t->net.width, t->net.level);
        goto done;
    }
    if (saved.width != t->net.width || saved.n_res != t->net.n_res) {
        s = nst_fail(err, NST_ERR_ARG, "%s: the checkpoint is of a width %d network with %d residual blocks, not %d and %d",
                     path, saved.width, saved.n_res, t->net.width, t->net.n_res);
        goto done;
    }
    if (saved.n_styles != t->net.n_styles) {
        s = nst_fail(err, NST_ERR_ARG, "%s: the checkpoint is of a network of %d style%s, not %d", path, saved.n_styles,
                     saved.n_styles == 1 ? "" : "s", t->net.n_styles);
        goto done;
    }
    memcpy(t->net.params, saved.params, t->net.n_params * sizeof(float));
    int n = (int)t->net.n_params;
    const float *am, *av;
    int32_t step, adam_t, v[6];
    static const char *const names[6] = {"data.seed_lo", "data.seed_hi", "data.epoch", "data.index", "data.n_train", "data.failures"};
    if ((s = nstm_expect_tensor(&m, path, "adam.m", 1, &n, &am, err))) goto done;
    if ((s = nstm_expect_tensor(&m, path, "adam.v", 1, &n, &av, err))) goto done;
    if ((s = nstm_expect_int(&m, path, "step", 0, INT32_MAX, &step, err))) goto done;
    if ((s = nstm_expect_int(&m, path, "adam_t", 0, INT32_MAX, &adam_t, err))) goto done;
    for (int i = 0; i < 6; i++)
        if ((s = nstm_expect_int(&m, path, names[i], i < 2 ? INT32_MIN : 0, INT32_MAX, &v[i], err))) goto done;
    /* the training time so far; older checkpoints have none: they start the clock at 0 */
    double elapsed = 0.0;
    const char *secs = nstm_get_string(&m, "train_seconds");
    if (secs) {
        char *end;
        elapsed = strtod(secs, &end);
        if (end == secs || *end || !isfinite(elapsed) || elapsed < 0.0) {
            s = nst_fail(err, NST_ERR_FORMAT, "%s: train_seconds '%.40s' is not a number of seconds", path, secs);
            goto done;
        }
    }
    memcpy(t->adam.m, am, (size_t)n * sizeof(float));
    memcpy(t->adam.v, av, (size_t)n * sizeof(float));
    t->adam.t = adam_t;
    t->step = step;
    t->elapsed_s = elapsed;
    dataset_position pos = {(uint64_t)(uint32_t)v[0] | (uint64_t)(uint32_t)v[1] << 32, v[2], v[3], v[4], v[5]};
    if ((s = dataset_set_position(data, &pos, err))) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        s = nst_fail(err, s, "%s: does not fit the data folder: %s", path, msg);
        goto done;
    }
    s = stylenet_pack(&t->net, err);
    if (!s) s = t->dev->ops->set_state(t->dev, t->net.params, t->adam.m, t->adam.v, err);
done:
    stylenet_free(&saved);
    nstm_free(&m);
    return s;
}

/* The network applied to the first held-out photo (or the first photo), saved as a JPEG. */
static nst_status save_preview(stylenet_trainer *t, const nst_dataset *data, const char *path, nst_error *err) {
    int count = dataset_count(data), first = dataset_train_count(data) < count ? dataset_train_count(data) : 0;
    nst_image img = {0}, small = {0}, out = {0};
    nst_status s = nst_image_load(&img, dataset_path(data, first), &t->cfg->limits, err);
    if (s) return s;
    int side = t->cfg->size * 2, w = img.width, h = img.height;
    if (w > side || h > side) { /* previews stay small and quick */
        nst_image_fit_size(img.width, img.height, side, &w, &h);
        if ((s = nst_image_resize(&small, &img, w, h, err))) goto done;
        nst_image_free(&img);
        img = small;
    }
    /* on the CPU whatever the device (the host's packed weights are current); of several
     * styles, the first; a decoder: the photo reconstructed */
    stylenet_select_style(&t->net, 0);
    stylenet_runner *r = NULL;
    if (t->net.kind == STYLENET_DECODER) {
        s = universal_reconstruct(t->vgg, t->vpacks, &t->net, &img, &out, err);
    } else {
        s = stylenet_cpu_backend.create(&r, &t->net, NST_PRECISION_FP32, err);
        if (!s) s = stylenet_apply_image(r, &img, &out, err);
        if (r) r->ops->free(r);
    }
    if (!s) s = nst_image_save(&out, path, err);
done:
    nst_image_free(&img);
    nst_image_free(&out);
    return s;
}

/* Writes the checkpoint and the model. If that fails (a full disk, a folder gone or made
 * read-only), the run's state is not lost: the checkpoint, which is also a model file
 * and can be resumed from, goes to the tuning's tmp_dir ($TMPDIR; or /tmp) instead, and the message says where. */
static nst_status save_state(const stylenet_trainer *t, const nst_dataset *data, const char *ckpt, nst_error *err) {
    nst_status s = save_checkpoint(t, data, ckpt, err);
    if (!s) s = save_model(t, t->cfg->output_path, err);
    if (!s) return NST_OK;
    char rescue[512];
    const char *tmp = t->cfg->tuning.tmp_dir;
    snprintf(rescue, sizeof rescue, "%.400s/nst-rescue-%ld.ckpt", tmp[0] ? tmp : "/tmp", (long)getpid());
    nst_error rescue_err;
    if (save_checkpoint(t, data, rescue, &rescue_err) == NST_OK) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        nst_fail(err, s, "%.500s; the training state (step %d) was saved to %s instead (resume from it, or apply it as a model)",
                 msg, t->step, rescue);
    }
    return s;
}

static nst_status train_run(const nst_train_config *cfg, const nst_vgg19 *vgg, nst_train_progress_fn progress,
                         void *user, nst_error *err);

/* cfg->threads for this call only (nst.h) */
nst_status nst_train_run(const nst_train_config *cfg, const nst_vgg19 *vgg, nst_train_progress_fn progress,
                         void *user, nst_error *err) {
    int saved = nst_threads_begin(cfg->threads);
    nst_status s = train_run(cfg, vgg, progress, user, err);
    nst_threads_end(saved);
    return s;
}

static nst_status train_run(const nst_train_config *cfg, const nst_vgg19 *vgg, nst_train_progress_fn progress,
                         void *user, nst_error *err) {
    if ((!cfg->style_path && !cfg->decoder_level) || !cfg->data_dir || !cfg->output_path)
        return nst_fail(err, NST_ERR_ARG, "training needs a style image, a data folder and an output file");
    char ckpt[4096], preview[4200];
    if (snprintf(ckpt, sizeof ckpt, "%s", cfg->checkpoint_path ? cfg->checkpoint_path : cfg->output_path) >= (int)sizeof ckpt - 6)
        return nst_fail(err, NST_ERR_ARG, "%s: path too long", cfg->output_path);
    if (!cfg->checkpoint_path) strcat(ckpt, ".ckpt");

    nst_dataset *data = NULL;
    stylenet_trainer *t = NULL;
    nst_status s = dataset_open(&data, cfg->data_dir, err);
    if (s) return s;
    dataset_set_limits(data, &cfg->limits);
    dataset_set_seed(data, cfg->seed);
    dataset_set_holdout(data, cfg->holdout);
    dataset_set_photo_size(data, cfg->photo_size);
    if (dataset_train_count(data) < 1) {
        s = nst_fail(err, NST_ERR_ARG, "%s: %d photos, all held out (--holdout %d)", cfg->data_dir,
                     dataset_count(data), cfg->holdout);
        goto done;
    }
    if ((s = stylenet_trainer_build(&t, cfg, vgg, err))) goto done;
    if (cfg->resume_path && (s = load_checkpoint(t, data, cfg->resume_path, err))) goto done;

    double t0 = nst_now(), start_elapsed = t->elapsed_s;
    int start = t->step;
    while (t->step < cfg->steps) {
        if ((s = dataset_next_batch(data, t->batch, cfg->batch, cfg->size, err))) break;
        if ((s = stylenet_trainer_step(t, err))) break;
        t->elapsed_s = start_elapsed + (nst_now() - t0);
        double c, st, tv, total = stylenet_trainer_losses(t, &c, &st, &tv);
        if (!isfinite(total)) {
            s = nst_fail(err, NST_ERR_ARG, "the loss became %g at step %d; lower the learning rate", total, t->step);
            break;
        }
        int checkpoint = t->step == cfg->steps || (cfg->checkpoint_every > 0 && t->step % cfg->checkpoint_every == 0);
        nst_train_progress p = {.step = t->step,
                                .steps = cfg->steps,
                                .elapsed_s = t->elapsed_s,
                                .start_step = start,
                                .start_elapsed_s = start_elapsed,
                                .content_loss = c,
                                .style_loss = st,
                                .tv_loss = tv,
                                .total_loss = total};
        nst_error preview_err;
        if (checkpoint) {
            preview_path(preview, sizeof preview, cfg->output_path, t->step);
            if ((s = trainer_sync(t, err)) || (s = save_state(t, data, ckpt, err))) break;
            /* a preview is a convenience: failing to write one does not stop the training */
            if (save_preview(t, data, preview, &preview_err) == NST_OK) p.checkpoint = preview;
            else p.warning = preview_err.msg;
        }
        if (progress && progress(&p, user)) {
            if (!checkpoint && ((s = trainer_sync(t, err)) || (s = save_state(t, data, ckpt, err)))) break;
            s = nst_fail(err, NST_ERR_INTERRUPTED, "stopped after step %d of %d; resume with --resume %s", t->step,
                         cfg->steps, ckpt);
            break;
        }
    }
    if (!s && t->step >= cfg->steps && cfg->steps == start) {
        /* nothing to do (already trained that far): still write the model */
        s = save_model(t, cfg->output_path, err);
    }
done:
    stylenet_trainer_free(t);
    dataset_free(data);
    return s;
}
