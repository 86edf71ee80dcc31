/* perceptual.h - the perceptual loss of style transfer, for the optimisation transfer and
 * the trainer alike: which VGG19 layers it reads (taps), their weights, the targets
 * (content features P, style Grams A), the forward sum and the gradient at each tap.
 *
 * The plan (perceptual_plan) is the device-independent part: weights, which layers are
 * taps, the values of the last evaluation and their weighted sum, in one fixed order.
 * perceptual_cpu holds the targets on the CPU and computes the losses on vgg19_acts; a
 * GPU keeps its own targets (cuda/gatys_cuda.cu) and reports its values into the plan.
 *
 * Life cycle: perceptual_check (the config's taps) -> perceptual_plan_init ->
 * perceptual_cpu_style_add / _content_set (targets) -> per evaluation, perceptual_cpu_forward
 * at every tap in the forward pass, perceptual_finish, perceptual_cpu_backward at every tap
 * in the backward pass -> perceptual_cpu_free. */
#ifndef NST_PERCEPTUAL_H
#define NST_PERCEPTUAL_H

#include "nst.h"
#include "net/vgg19.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    float content_w, style_w;  /* config weight * tap weight (summed if named twice) */
    unsigned char content, style; /* a content tap, a style tap (named, with a weight != 0) */
    double content_value, style_value; /* unweighted, at the last evaluation */
} perceptual_layer;

typedef struct {
    int depth;                 /* layers up to the deepest tap */
    int content_depth;         /* layers up to the deepest content tap named */
    nst_gram_norm gram_norm;
    unsigned char tap[NST_NUM_LAYERS]; /* a content or style tap: where gradients enter */
    perceptual_layer layer[NST_NUM_LAYERS];
    float tv_weight;           /* the total variation term on the image itself */
    double tv_value;           /* unweighted, at the last evaluation */
    double content_loss, style_loss, tv_loss; /* weighted, at the last evaluation */
} perceptual_plan;

/* The taps of a configuration: 1..NST_MAX_TAPS of each kind in all, every layer a VGG19
 * layer, none deeper than max_depth layers (the network as loaded; 0: no bound). */
nst_status perceptual_check(const nst_tap *content, int n_content, const nst_tap *style, int n_style, int max_depth,
                            nst_error *err);
void perceptual_plan_init(perceptual_plan *p, const nst_tap *content, int n_content, float content_weight,
                          const nst_tap *style, int n_style, float style_weight, nst_gram_norm norm, float tv_weight);
/* The scale of the Gram of a (C,N) feature map under the plan's normalisation. */
float perceptual_gram_scale(nst_gram_norm norm, int C, int N);
/* The weighted losses from the values (in layer order: the same bits on every device);
 * returns their total. */
double perceptual_finish(perceptual_plan *p);

/* ---- the CPU's targets and losses, on vgg19_acts ---- */
typedef struct {
    float *P;          /* (C,H,W) content target */
    float *A, *G, *dG; /* (C,C) style target, the image's Gram (forward to backward), its gradient */
} perceptual_cpu_layer;

typedef struct {
    perceptual_cpu_layer layer[NST_NUM_LAYERS];
    cpu_tier tier; /* the Grams' kernels: the network's (nst_vgg19.tier), set by the owner */
} perceptual_cpu;

/* A += blend * Gram(a's layer l), allocating A, G, dG at the first call. */
nst_status perceptual_cpu_style_add(perceptual_cpu *c, const perceptual_plan *p, const vgg19_acts *a, int l,
                                    float blend, nst_error *err);
/* Allocates P for every content tap, sized by a. */
nst_status perceptual_cpu_content_alloc(perceptual_cpu *c, const perceptual_plan *p, const vgg19_acts *a,
                                        nst_error *err);
/* P = a's layer l, where l is a content tap. */
void perceptual_cpu_content_set(perceptual_cpu *c, const vgg19_acts *a, int l);
/* The losses' values at tap l into the plan (keeps the Gram for the backward pass). */
void perceptual_cpu_forward(perceptual_cpu *c, perceptual_plan *p, const vgg19_acts *a, int l);
/* g += scale * d(weighted losses at l)/d(layer l's output). */
void perceptual_cpu_backward(perceptual_cpu *c, const perceptual_plan *p, const vgg19_acts *a, int l, float *g,
                             float scale);
void perceptual_cpu_free(perceptual_cpu *c);

#ifdef __cplusplus
}
#endif
#endif
