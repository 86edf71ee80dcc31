/* bench_phases.c - where a seed-preset step spends its time, per layer and per loss, with
 * 1 and 2 threads alternating (best of N each): shows which parts scale badly. A row
 * "loss fwd" follows the layer it reads; a backward row "X" is the time from the
 * previous row down to tap X (the layers above X), "loss bwd" the losses added there.
 * usage: bench_phases [SIZE] [ITERS] [WEIGHTS_DIR]   (run it with nice -n -20 on a
 * shared machine: other processes on the cores wreck the 2-thread column) */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loss/losses.h"
#include "net/vgg19.h"
#include "util/util.h"

#define MAXP 64
typedef struct {
    double t[MAXP];
    const char *name[MAXP];
    int n;
    double last;
} phases;

static void mark(phases *p, const char *name) {
    double now = nst_now();
    p->t[p->n] = now - p->last;
    p->name[p->n] = name;
    p->n++;
    p->last = now;
}

typedef struct {
    phases *ph;
    float *dG, *A;
    float *P[NST_NUM_LAYERS], *G[NST_NUM_LAYERS]; /* per tap: content target, the image's Gram */
    const unsigned char *style_tap;
    cpu_tier tier; /* the network's */
} ctx_t;

static void tap_fn(void *vctx, const vgg19_acts *a, int l, float *g) {
    ctx_t *c = vctx;
    mark(c->ph, nst_layer_name(l));          /* backward of the layers above l */
    if (!c->style_tap[l]) return;
    int C = a->C[l], N = a->Hl[l] * a->Wl[l];
    content_loss_backward(g, a->out[l], c->P[l], (size_t)C * N, 1.0f);
    style_loss_backward(g, c->dG, c->G[l], c->A, a->out[l], C, N, 1.0f, 0.01f, c->tier);
    mark(c->ph, "loss bwd");
}

int main(int argc, char **argv) {
    int S = argc > 1 ? atoi(argv[1]) : 224, iters = argc > 2 ? atoi(argv[2]) : 10;
    const char *wdir = argc > 3 ? argv[3] : NULL;
    nst_error err;
    nst_vgg19 *net;
    nst_tuning tuning; /* $NST_KERNEL and the rest, as nst bench */
    nst_tuning_from_env(&tuning, &err);
    if (nst_vgg19_load_tuned(&net, wdir, 0, &tuning, &err) != NST_OK) { fprintf(stderr, "%s\n", err.msg); return 1; }
    static const char *taps[] = {"conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"};
    unsigned char tap[NST_NUM_LAYERS] = {0}, style_tap[NST_NUM_LAYERS] = {0}, keep[NST_NUM_LAYERS] = {0};
    int depth = 0;
    for (int i = 0; i < 5; i++) {
        int l = nst_layer_index(taps[i]);
        style_tap[l] = keep[l] = 1;
        if (l + 1 > depth) depth = l + 1;
    }
    for (int l = 0; l < depth; l++) tap[l] = vgg19_layer_kind(l) == VGG_CONV || style_tap[l];
    vgg19_acts a;
    if (vgg19_acts_build(&a, depth, S, S, keep, &err) != NST_OK) { fprintf(stderr, "%s\n", err.msg); return 1; }
    vgg19_acts_fuse_relus(&a);
    nst_rng r;
    nst_rng_seed(&r, 1);
    for (size_t i = 0; i < (size_t)3 * S * S; i++) a.input[i] = (float)(nst_rng_uniform(&r) * 255 - 128);
    float *dinput = malloc(sizeof(float) * 3 * S * S);
    float *dG = malloc(sizeof(float) * 512 * 512), *A = calloc(512 * 512, sizeof(float));
    ctx_t c = {0};
    c.dG = dG; c.A = A; c.style_tap = style_tap; c.tier = net->tier;
    for (int l = 0; l < depth; l++)
        if (style_tap[l]) {
            c.P[l] = calloc(vgg19_layer_size(&a, l), sizeof(float));
            c.G[l] = calloc((size_t)a.C[l] * a.C[l], sizeof(float));
        }
    phases best[2];
    memset(best, 0, sizeof best);
    for (int it = 0; it < iters + 1; it++) {
        for (int th = 1; th <= 2; th++) {
            omp_set_num_threads(th);
            phases p = {0};
            c.ph = &p;
            p.last = nst_now();
            for (int l = 0; l < depth; l++) {
                vgg19_forward_layer(net, &a, l);
                mark(&p, nst_layer_name(l));
                if (style_tap[l]) {
                    int C = a.C[l], N = a.Hl[l] * a.Wl[l];
                    content_loss_forward(a.out[l], c.P[l], (size_t)C * N);
                    style_loss_forward(c.G[l], a.out[l], A, C, N, 1.0f, net->tier);
                    mark(&p, "loss fwd");
                }
            }
            vgg19_backward(net, &a, tap, tap_fn, &c, dinput, 0);
            mark(&p, "conv1_1 bwd");
            phases *b = &best[th - 1];
            if (it == 0) continue; /* warm-up */
            if (b->n == 0) *b = p;
            else for (int i = 0; i < p.n; i++) if (p.t[i] < b->t[i]) b->t[i] = p.t[i];
        }
    }
    double s1 = 0, s2 = 0;
    printf("%-4s %-12s %9s %9s %7s\n", "#", "phase", "1t ms", "2t ms", "scale");
    for (int i = 0; i < best[0].n; i++) {
        s1 += best[0].t[i];
        s2 += best[1].t[i];
        printf("%-4d %-12s %9.3f %9.3f %7.2f %s\n", i, best[0].name[i], best[0].t[i] * 1e3, best[1].t[i] * 1e3,
               best[0].t[i] / best[1].t[i], i >= depth + 5 ? "(bwd)" : "");
    }
    printf("sum of best phases: 1 thread %.2f ms, 2 threads %.2f ms, scaling %.3f; lost to imperfect scaling: %.2f ms\n",
           s1 * 1e3, s2 * 1e3, s1 / s2, (s2 - s1 / 2) * 1e3);
    return 0;
}
