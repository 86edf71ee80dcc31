/* perceptual.c - the perceptual loss's plan and its CPU targets and losses. */
#include <stdlib.h>
#include <string.h>

#include "loss/losses.h"
#include "loss/perceptual.h"
#include "tensor/ops.h"
#include "util/util.h"

nst_status perceptual_check(const nst_tap *content, int n_content, const nst_tap *style, int n_style, int max_depth,
                            nst_error *err) {
    if (n_content + n_style == 0) return nst_fail(err, NST_ERR_ARG, "no content or style layers");
    if (n_content < 0 || n_style < 0 || n_content > NST_MAX_TAPS || n_style > NST_MAX_TAPS)
        return nst_fail(err, NST_ERR_ARG, "too many layers (at most %d)", NST_MAX_TAPS);
    for (int i = 0; i < n_content + n_style; i++) {
        int l = i < n_content ? content[i].layer : style[i - n_content].layer;
        if (l < 0 || l >= NST_NUM_LAYERS) return nst_fail(err, NST_ERR_ARG, "bad layer index %d", l);
    }
    int depth = vgg19_taps_depth(content, n_content, style, n_style);
    if (max_depth > 0 && depth > max_depth)
        return nst_fail(err, NST_ERR_ARG, "layer %s is deeper than the network was loaded for (%s)",
                        nst_layer_name(depth - 1), nst_layer_name(max_depth - 1));
    return NST_OK;
}

void perceptual_plan_init(perceptual_plan *p, const nst_tap *content, int n_content, float content_weight,
                          const nst_tap *style, int n_style, float style_weight, nst_gram_norm norm, float tv_weight) {
    memset(p, 0, sizeof *p);
    p->gram_norm = norm;
    p->tv_weight = tv_weight;
    p->depth = vgg19_taps_depth(content, n_content, style, n_style);
    for (int i = 0; i < n_content; i++) {
        perceptual_layer *L = &p->layer[content[i].layer];
        L->content_w += content_weight * content[i].weight;
        L->content = 1;
        if (content[i].layer + 1 > p->content_depth) p->content_depth = content[i].layer + 1;
    }
    for (int i = 0; i < n_style; i++) {
        perceptual_layer *L = &p->layer[style[i].layer];
        L->style_w += style_weight * style[i].weight;
        L->style = 1;
    }
    for (int l = 0; l < NST_NUM_LAYERS; l++) {
        perceptual_layer *L = &p->layer[l];
        L->content = L->content && L->content_w != 0.0f; /* a weight of 0: nothing to compute */
        L->style = L->style && L->style_w != 0.0f;
        p->tap[l] = L->content || L->style;
    }
}

float perceptual_gram_scale(nst_gram_norm norm, int C, int N) {
    return norm == NST_GRAM_NORMALIZED ? (float)(1.0 / ((double)C * N)) : 1.0f;
}

double perceptual_finish(perceptual_plan *p) {
    double content = 0.0, style = 0.0;
    for (int l = 0; l < p->depth; l++) {
        const perceptual_layer *L = &p->layer[l];
        if (L->content) content += L->content_w * L->content_value;
        if (L->style) style += L->style_w * L->style_value;
    }
    p->content_loss = content;
    p->style_loss = style;
    p->tv_loss = p->tv_weight > 0.0f ? p->tv_weight * p->tv_value : 0.0;
    return content + style + p->tv_loss;
}

nst_status perceptual_cpu_style_add(perceptual_cpu *c, const perceptual_plan *p, const vgg19_acts *a, int l,
                                    float blend, nst_error *err) {
    perceptual_cpu_layer *L = &c->layer[l];
    int C = a->C[l], N = a->Hl[l] * a->Wl[l];
    size_t cc = (size_t)C * C;
    if (!L->A) {
        L->A = nst_calloc_array(cc, sizeof(float));
        L->G = nst_alloc_array(cc, sizeof(float));
        L->dG = nst_alloc_array(cc, sizeof(float));
        if (!L->A || !L->G || !L->dG) return nst_fail(err, NST_ERR_NOMEM, "out of memory for the style targets");
    }
    gram_forward(L->G, a->out[l], C, N, perceptual_gram_scale(p->gram_norm, C, N), c->tier);
    for (size_t k = 0; k < cc; k++) L->A[k] += blend * L->G[k];
    return NST_OK;
}

nst_status perceptual_cpu_content_alloc(perceptual_cpu *c, const perceptual_plan *p, const vgg19_acts *a,
                                        nst_error *err) {
    for (int l = 0; l < p->depth; l++) {
        if (!p->layer[l].content || c->layer[l].P) continue;
        c->layer[l].P = nst_alloc_array(vgg19_layer_size(a, l), sizeof(float));
        if (!c->layer[l].P) return nst_fail(err, NST_ERR_NOMEM, "out of memory for the content targets");
    }
    return NST_OK;
}

void perceptual_cpu_content_set(perceptual_cpu *c, const vgg19_acts *a, int l) {
    if (c->layer[l].P) memcpy(c->layer[l].P, a->out[l], vgg19_layer_size(a, l) * sizeof(float));
}

void perceptual_cpu_forward(perceptual_cpu *c, perceptual_plan *p, const vgg19_acts *a, int l) {
    perceptual_cpu_layer *T = &c->layer[l];
    perceptual_layer *L = &p->layer[l];
    if (L->content) L->content_value = content_loss_forward(a->out[l], T->P, vgg19_layer_size(a, l));
    if (L->style) {
        int C = a->C[l], N = a->Hl[l] * a->Wl[l];
        L->style_value = style_loss_forward(T->G, a->out[l], T->A, C, N, perceptual_gram_scale(p->gram_norm, C, N), c->tier);
    }
}

void perceptual_cpu_backward(perceptual_cpu *c, const perceptual_plan *p, const vgg19_acts *a, int l, float *g,
                             float scale) {
    perceptual_cpu_layer *T = &c->layer[l];
    const perceptual_layer *L = &p->layer[l];
    if (L->content) content_loss_backward(g, a->out[l], T->P, vgg19_layer_size(a, l), L->content_w * scale);
    if (L->style) {
        int C = a->C[l], N = a->Hl[l] * a->Wl[l];
        style_loss_backward(g, T->dG, T->G, T->A, a->out[l], C, N, perceptual_gram_scale(p->gram_norm, C, N),
                            L->style_w * scale, c->tier);
    }
}

void perceptual_cpu_free(perceptual_cpu *c) {
    for (int l = 0; l < NST_NUM_LAYERS; l++) {
        free(c->layer[l].P);
        free(c->layer[l].A);
        free(c->layer[l].G);
        free(c->layer[l].dG);
    }
    memset(c, 0, sizeof *c);
}
