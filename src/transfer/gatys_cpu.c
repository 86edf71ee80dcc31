/* gatys_cpu.c - the optimisation transfer's CPU device (gatys_device.h): the VGG19
 * activations, the perceptual loss's targets, and the objective, one forward pass with
 * the losses' values at each tap as soon as it is reached, one backward pass with their
 * gradients added at each tap, and total variation on the image. The optimizer's vectors
 * are host arrays (optim_host). */
#include <stdlib.h>
#include <string.h>

#include "loss/losses.h"
#include "net/vgg19.h"
#include "transfer/gatys.h"
#include "transfer/gatys_device.h"
#include "util/util.h"

typedef struct {
    gatys_device base;
    optim_host host;       /* the optimizer's vectors; its evaluate calls objective() */
    gatys_setup setup;
    size_t n;              /* 3*H*W */
    vgg19_acts acts;
    perceptual_cpu targets;
    conv3x3_packed *packs; /* the run's own VGG19 packs (bf16), or NULL: the network's */
} gatys_cpu;

static gatys_cpu *cpu_of(gatys_device *d) { return (gatys_cpu *)d; }

/* The losses' gradient at layer l, added into g during the backward pass. */
static void tap_backward(void *ctx, const vgg19_acts *a, int l, float *g) {
    gatys_cpu *c = ctx;
    perceptual_cpu_backward(&c->targets, c->setup.plan, a, l, g, 1.0f);
}

static nst_status objective(void *ctx, const float *x, float *grad, double *f, nst_error *err) {
    gatys_cpu *c = ctx;
    perceptual_plan *p = c->setup.plan;
    vgg19_acts *a = &c->acts;
    memcpy(a->input, x, c->n * sizeof(float));
    for (int l = 0; l < a->depth; l++) {
        vgg19_forward_layer(c->setup.net, a, l);
        if (p->tap[l]) perceptual_cpu_forward(&c->targets, p, a, l);
    }
    vgg19_backward(c->setup.net, a, p->tap, tap_backward, c, grad, 0);
    p->tv_value = 0.0;
    if (p->tv_weight > 0.0f) {
        p->tv_value = tv_loss_forward(x, 3, c->setup.H, c->setup.W);
        tv_loss_backward(grad, x, 3, c->setup.H, c->setup.W, p->tv_weight);
    }
    *f = perceptual_finish(p);
    return NST_OK;
}

/* The style targets: the blend-weighted Grams of the paintings, each on activations of
 * its own size, freed before the next (and before the content's exist: lower peak). */
static nst_status style_targets(gatys_cpu *c, nst_error *err) {
    const gatys_setup *su = &c->setup;
    const perceptual_plan *p = su->plan;
    for (int i = 0; i < su->n_styles; i++) {
        float *xs;
        int W, H;
        nst_status s = gatys_style_input(su->cfg, &su->styles[i], i, &xs, &W, &H, err);
        if (s) return s;
        vgg19_acts sa;
        s = vgg19_acts_build(&sa, p->depth, H, W, NULL, err);
        if (s) {
            free(xs);
            return gatys_blame(err, s, su->cfg, i, W, H);
        }
        memcpy(sa.input, xs, (size_t)3 * W * H * sizeof(float));
        free(xs);
        sa.packs = c->packs;
        for (int l = 0; l < p->depth && !s; l++) {
            vgg19_forward_layer(su->net, &sa, l);
            if (p->layer[l].style) s = perceptual_cpu_style_add(&c->targets, p, &sa, l, su->blend[i], err);
        }
        vgg19_acts_free(&sa);
        if (s) return s;
    }
    return NST_OK;
}

static void cpu_free(gatys_device *d) {
    gatys_cpu *c = cpu_of(d);
    if (!c) return;
    vgg19_acts_free(&c->acts);
    vgg19_packs_free(c->packs);
    perceptual_cpu_free(&c->targets);
    optim_host_free(&c->host);
    free(c);
}

static nst_status cpu_upload(gatys_device *d, int v, const float *x, nst_error *err) {
    gatys_cpu *c = cpu_of(d);
    memcpy(c->host.vec[v], x, c->n * sizeof(float));
    return NST_OK;
}

static nst_status cpu_download(gatys_device *d, int v, float *x, nst_error *err) {
    gatys_cpu *c = cpu_of(d);
    memcpy(x, c->host.vec[v], c->n * sizeof(float));
    return NST_OK;
}

/* Forward alone, forward + backward alone (the losses' gradients at the taps from the
 * Grams of the last evaluation), and a whole Adam step. */
static nst_status cpu_bench(gatys_device *d, const nst_bench_config *cfg, nst_bench_result *res, nst_error *err) {
    gatys_cpu *c = cpu_of(d);
    vgg19_acts *a = &c->acts;
    size_t n = c->n;
    float *x = c->host.vec[OPTIM_X], *grad = c->host.vec[OPTIM_G];
    adam_state adam = {0};
    nst_status s = adam_build(&adam, n, c->setup.cfg->lr, err);
    if (s) return s;
    double f;
    memcpy(x, c->setup.content_input, n * sizeof(float));
    objective(c, x, grad, &f, err); /* fills the Grams that the backward timing reuses */
    res->activation_bytes = a->bytes;
    res->kernel = vgg19_kernel_name(c->setup.net, c->packs);
    for (int l = 0; l < a->depth; l++)
        if (vgg19_layer_kind(l) == VGG_CONV) {
            int hi = l == 0 ? a->H : a->Hl[l - 1], wi = l == 0 ? a->W : a->Wl[l - 1];
            res->conv_gflop += 2e-9 * hi * wi * (l == 0 ? 3 : a->C[l - 1]) * a->C[l] * 9;
        }
    double best[3] = {1e30, 1e30, 1e30};
    for (int it = 0; it < cfg->warmup + cfg->iters; it++) {
        double t0 = nst_now();
        memcpy(a->input, x, n * sizeof(float));
        vgg19_forward(c->setup.net, a);
        double t1 = nst_now();
        vgg19_backward(c->setup.net, a, c->setup.plan->tap, tap_backward, c, grad, 0);
        double t2 = nst_now();
        objective(c, x, grad, &f, err);
        adam_update(&adam, x, grad);
        double t3 = nst_now();
        if (it < cfg->warmup) continue;
        if (t1 - t0 < best[0]) best[0] = t1 - t0;
        if (t2 - t0 < best[1]) best[1] = t2 - t0;
        if (t3 - t2 < best[2]) best[2] = t3 - t2;
    }
    res->forward_ms = 1e3 * best[0];
    res->forward_backward_ms = 1e3 * best[1];
    res->step_ms = 1e3 * best[2];
    adam_free(&adam);
    return NST_OK;
}

static const gatys_device_ops cpu_ops = {
    .free = cpu_free,
    .upload = cpu_upload,
    .download = cpu_download,
    .bench = cpu_bench,
};

static nst_status cpu_build(gatys_device **out, const gatys_setup *su, nst_error *err) {
    *out = NULL;
    gatys_cpu *c = calloc(1, sizeof *c);
    if (!c) return nst_fail(err, NST_ERR_NOMEM, "out of memory");
    c->base.ops = &cpu_ops;
    c->base.optim = &c->host.base;
    c->setup = *su;
    c->n = (size_t)3 * su->H * su->W;
    const perceptual_plan *p = su->plan;
    const nst_transfer_config *cfg = su->cfg;
    c->targets.tier = su->net->tier; /* the network's kernels, for the Grams too */
    /* bf16 (a run's choice; the network is loaded once): this run's own packs */
    nst_status s = vgg19_packs_build(&c->packs, su->net, p->depth, &cfg->tuning, su->precision, err);
    if (!s) s = style_targets(c, err);
    if (!s) {
        /* a conv whose output a loss reads keeps it: the ReLU after it gets its own buffer */
        unsigned char keep[NST_NUM_LAYERS] = {0};
        for (int l = 0; l < p->depth; l++) keep[l] = p->tap[l] && vgg19_layer_kind(l) == VGG_CONV;
        s = gatys_blame(err, vgg19_acts_build(&c->acts, p->depth, su->H, su->W, keep, err), cfg, -1, su->W, su->H);
        c->acts.packs = c->packs;
    }
    if (!s) {
        vgg19_acts_fuse_relus(&c->acts); /* the losses read kept convs only */
        s = optim_host_build(&c->host, c->n, su->n_vectors, su->n_scalars, NULL, NULL, objective, c, err);
        if (!s) s = perceptual_cpu_content_alloc(&c->targets, p, &c->acts, err);
        s = gatys_blame(err, s, cfg, -1, su->W, su->H);
    }
    if (!s) { /* the content targets P */
        memcpy(c->acts.input, su->content_input, c->n * sizeof(float));
        for (int l = 0; l < p->depth; l++) {
            vgg19_forward_layer(su->net, &c->acts, l);
            if (p->layer[l].content) perceptual_cpu_content_set(&c->targets, &c->acts, l);
        }
    }
    if (s) {
        cpu_free(&c->base);
        return s;
    }
    *out = &c->base;
    return NST_OK;
}

const gatys_backend gatys_cpu_backend = {"cpu", cpu_build};
