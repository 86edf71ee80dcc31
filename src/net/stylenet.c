/* stylenet.c - the fast-style transformation network: build, forward, backward (see stylenet.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/stylenet.h"
#include "tensor/layers.h"

/* ---- building ------------------------------------------------------------------ */

/* One row of the architecture: channels are multiples of the width w (RGB: the image's 3). */
enum { RGB = 0 };
typedef struct {
    const char *name; /* in a residual block: the suffix after "r<block>" */
    int c_in, c_out;  /* x w, or RGB */
    int k, stride;
    int upsample, norm, relu, sigmoid, scale255, residual; /* as in stylenet_layer */
} layer_spec;

/* the layers before the residual blocks, one block (repeated n_res times), the layers after */
static const layer_spec head[] = {
    {.name = "c1", .c_in = RGB, .c_out = 1, .k = 9, .stride = 1, .norm = 1, .relu = 1},
    {.name = "c2", .c_in = 1, .c_out = 2, .k = 3, .stride = 2, .norm = 1, .relu = 1},
    {.name = "c3", .c_in = 2, .c_out = 4, .k = 3, .stride = 2, .norm = 1, .relu = 1},
};
static const layer_spec block[] = {
    {.name = "a", .c_in = 4, .c_out = 4, .k = 3, .stride = 1, .norm = 1, .relu = 1},
    {.name = "b", .c_in = 4, .c_out = 4, .k = 3, .stride = 1, .norm = 1, .residual = 1},
};
static const layer_spec tail[] = {
    {.name = "u1", .c_in = 4, .c_out = 2, .k = 3, .stride = 1, .upsample = 1, .norm = 1, .relu = 1},
    {.name = "u2", .c_in = 2, .c_out = 1, .k = 3, .stride = 1, .upsample = 1, .norm = 1, .relu = 1},
    {.name = "out", .c_in = 1, .c_out = RGB, .k = 9, .stride = 1, .sigmoid = 1},
};

/* The decoders (stylenet.h): the full one, a level's entered at its d<level>_1 row */
static const layer_spec decoder[] = {
    {.name = "d5_1", .c_in = 8, .c_out = 8, .k = 3, .stride = 1, .relu = 1},
    {.name = "d4_4", .c_in = 8, .c_out = 8, .k = 3, .stride = 1, .upsample = 1, .relu = 1},
    {.name = "d4_3", .c_in = 8, .c_out = 8, .k = 3, .stride = 1, .relu = 1},
    {.name = "d4_2", .c_in = 8, .c_out = 8, .k = 3, .stride = 1, .relu = 1},
    {.name = "d4_1", .c_in = 8, .c_out = 4, .k = 3, .stride = 1, .relu = 1},
    {.name = "d3_4", .c_in = 4, .c_out = 4, .k = 3, .stride = 1, .upsample = 1, .relu = 1},
    {.name = "d3_3", .c_in = 4, .c_out = 4, .k = 3, .stride = 1, .relu = 1},
    {.name = "d3_2", .c_in = 4, .c_out = 4, .k = 3, .stride = 1, .relu = 1},
    {.name = "d3_1", .c_in = 4, .c_out = 2, .k = 3, .stride = 1, .relu = 1},
    {.name = "d2_2", .c_in = 2, .c_out = 2, .k = 3, .stride = 1, .upsample = 1, .relu = 1},
    {.name = "d2_1", .c_in = 2, .c_out = 1, .k = 3, .stride = 1, .relu = 1},
    {.name = "d1_2", .c_in = 1, .c_out = 1, .k = 3, .stride = 1, .upsample = 1, .relu = 1},
    {.name = "d1_1", .c_in = 1, .c_out = RGB, .k = 3, .stride = 1, .scale255 = 1},
};
static const int decoder_entry[6] = {0, 12, 10, 8, 4, 0};       /* level -> its first row */
static const int vgg_channels[6] = {0, 64, 128, 256, 512, 512}; /* relu<level>_1's */

static int channels(int mult, int w) { return mult == RGB ? 3 : mult * w; }

/* Appends the layer of row r (block: the residual block's number, else 0). */
static void add_layer(stylenet *net, const layer_spec *r, int w, int block_no) {
    stylenet_layer *L = &net->layer[net->n_layers++];
    memset(L, 0, sizeof *L);
    char name[32];
    if (block_no) snprintf(name, sizeof name, "r%d%s", block_no, r->name);
    else snprintf(name, sizeof name, "%s", r->name);
    snprintf(L->name, sizeof L->name, "%.7s", name);
    L->C_in = channels(r->c_in, w);
    L->C_out = channels(r->c_out, w);
    L->K = r->k;
    L->S = r->stride;
    L->pad = r->k / 2;
    L->upsample = r->upsample;
    L->norm = r->norm;
    L->relu = r->relu;
    L->sigmoid = r->sigmoid;
    L->scale255 = r->scale255;
    L->residual = r->residual;
}

#define COUNT(a) (int)(sizeof(a) / sizeof((a)[0]))

/* Number of floats of layer L's parameters: weight, then the gammas and betas of S styles
 * or the bias. */
static size_t layer_params(const stylenet_layer *L, int S) {
    return (size_t)L->C_out * L->C_in * L->K * L->K + (size_t)L->C_out * (L->norm ? 2 * S : 1);
}

/* Points the layer's parameter (and gradient) pointers at base (and gbase). */
static void layer_bind(stylenet_layer *L, float *base, float *gbase, int S) {
    size_t nw = (size_t)L->C_out * L->C_in * L->K * L->K, tab = (size_t)S * L->C_out;
    L->weight = base;
    L->dweight = gbase;
    if (L->norm) {
        L->gammas = base + nw;
        L->betas = base + nw + tab;
        L->dgammas = gbase ? gbase + nw : NULL;
        L->dbetas = gbase ? gbase + nw + tab : NULL;
    } else {
        L->bias = base + nw;
        L->dbias = gbase ? gbase + nw : NULL;
    }
}

void stylenet_select_style(stylenet *net, int s) {
    if (s < 0 || s >= net->n_styles) s = 0;
    for (int l = 0; l < net->n_layers; l++) {
        stylenet_layer *L = &net->layer[l];
        if (!L->norm) continue;
        size_t off = (size_t)s * L->C_out;
        L->gamma = L->gammas + off;
        L->beta = L->betas + off;
        L->dgamma = L->dgammas ? L->dgammas + off : NULL;
        L->dbeta = L->dbetas ? L->dbetas + off : NULL;
    }
}

nst_status stylenet_build(stylenet *net, int width, int n_res, int train, nst_error *err) {
    return stylenet_build_styles(net, width, n_res, 1, train, err);
}

/* The parameters of the layers added: one allocation each (and style 0 selected). */
static nst_status allocate_params(stylenet *net, int train, nst_error *err) {
    for (int l = 0; l < net->n_layers; l++) net->n_params += layer_params(&net->layer[l], net->n_styles);
    net->params = nst_calloc_array(net->n_params, sizeof(float));
    if (train) net->grads = nst_calloc_array(net->n_params, sizeof(float));
    if (!net->params || (train && !net->grads)) {
        stylenet_free(net);
        return nst_fail(err, NST_ERR_NOMEM, "out of memory for the network's parameters");
    }
    size_t off = 0;
    for (int l = 0; l < net->n_layers; l++) {
        stylenet_layer *L = &net->layer[l];
        layer_bind(L, net->params + off, net->grads ? net->grads + off : NULL, net->n_styles);
        if (L->norm)
            for (size_t c = 0; c < (size_t)net->n_styles * L->C_out; c++) L->gammas[c] = 1.0f;
        off += layer_params(L, net->n_styles);
    }
    stylenet_select_style(net, 0);
    return NST_OK;
}

nst_status stylenet_build_decoder(stylenet *net, int level, int width, int train, nst_error *err) {
    memset(net, 0, sizeof *net);
    if (level < 1 || level > 5) return nst_fail(err, NST_ERR_ARG, "decoder level %d is out of range (1..5)", level);
    if (width < 1 || width > 64) return nst_fail(err, NST_ERR_ARG, "decoder width %d is out of range (1..64)", width);
    net->kind = STYLENET_DECODER;
    net->level = level;
    net->in_scale = 1.0f / 255.0f;
    net->width = width;
    net->n_styles = 1;
    for (int i = decoder_entry[level]; i < COUNT(decoder); i++) add_layer(net, &decoder[i], width, 0);
    net->layer[0].C_in = vgg_channels[level]; /* the features it inverts */
    return allocate_params(net, train, err);
}

nst_status stylenet_build_styles(stylenet *net, int width, int n_res, int n_styles, int train, nst_error *err) {
    memset(net, 0, sizeof *net);
    if (n_styles < 1 || n_styles > STYLENET_MAX_STYLES)
        return nst_fail(err, NST_ERR_ARG, "%d styles is out of range (1..%d)", n_styles, STYLENET_MAX_STYLES);
    if (width < 1 || width > 256) return nst_fail(err, NST_ERR_ARG, "network width %d is out of range (1..256)", width);
    if (n_res < 0 || n_res > STYLENET_MAX_RES) return nst_fail(err, NST_ERR_ARG, "residual blocks %d out of range (0..%d)", n_res, STYLENET_MAX_RES);
    int w = width;
    net->width = width;
    net->n_res = n_res;
    net->n_styles = n_styles;
    net->in_scale = 1.0f;
    for (int i = 0; i < COUNT(head); i++) add_layer(net, &head[i], w, 0);
    for (int r = 1; r <= n_res; r++)
        for (int i = 0; i < COUNT(block); i++) add_layer(net, &block[i], w, r);
    for (int i = 0; i < COUNT(tail); i++) add_layer(net, &tail[i], w, 0);
    return allocate_params(net, train, err);
}

nst_status stylenet_mix_styles(stylenet *dst, const stylenet *src, const float *w, nst_error *err) {
    double sum = 0.0;
    for (int s = 0; s < src->n_styles; s++) {
        if (!(w[s] >= 0.0f) || !isfinite(w[s]))
            return nst_fail(err, NST_ERR_ARG, "style weight %d is %g: the weights must be >= 0", s, w[s]);
        sum += w[s];
    }
    if (!(sum > 0.0)) return nst_fail(err, NST_ERR_ARG, "the style weights sum to 0");
    nst_status st = stylenet_build(dst, src->width, src->n_res, 0, err);
    if (st) return st;
    dst->tuning = src->tuning;
    dst->precision = src->precision;
    for (int l = 0; l < src->n_layers; l++) {
        const stylenet_layer *S = &src->layer[l];
        stylenet_layer *D = &dst->layer[l];
        memcpy(D->weight, S->weight, (size_t)S->C_out * S->C_in * S->K * S->K * sizeof(float));
        if (!S->norm) {
            memcpy(D->bias, S->bias, (size_t)S->C_out * sizeof(float));
            continue;
        }
        for (int c = 0; c < S->C_out; c++) {
            double g = 0.0, b = 0.0;
            for (int s = 0; s < src->n_styles; s++) {
                g += w[s] / sum * S->gammas[(size_t)s * S->C_out + c];
                b += w[s] / sum * S->betas[(size_t)s * S->C_out + c];
            }
            D->gamma[c] = (float)g;
            D->beta[c] = (float)b;
        }
    }
    if ((st = stylenet_pack(dst, err))) stylenet_free(dst);
    return st;
}

void stylenet_free(stylenet *net) {
    for (int l = 0; l < net->n_layers; l++) conv2d_packed_free(&net->layer[l].packed);
    free(net->params);
    free(net->grads);
    memset(net, 0, sizeof *net);
}

nst_status stylenet_init_params(stylenet *net, nst_rng *rng, nst_error *err) {
    for (int l = 0; l < net->n_layers; l++) {
        stylenet_layer *L = &net->layer[l];
        size_t nw = (size_t)L->C_out * L->C_in * L->K * L->K;
        double bound = 1.0 / sqrt((double)L->C_in * L->K * L->K);
        for (size_t i = 0; i < nw; i++) L->weight[i] = (float)((2.0 * nst_rng_uniform(rng) - 1.0) * bound);
        for (size_t c = 0; c < (size_t)L->C_out * (L->norm ? net->n_styles : 1); c++) {
            if (L->norm) {
                L->gammas[c] = 1.0f;
                L->betas[c] = 0.0f;
            } else {
                L->bias[c] = (float)((2.0 * nst_rng_uniform(rng) - 1.0) * bound);
            }
        }
    }
    return stylenet_pack(net, err);
}

nst_status stylenet_pack(stylenet *net, nst_error *err) {
    for (int l = 0; l < net->n_layers; l++) {
        stylenet_layer *L = &net->layer[l];
        if (conv2d_pack(&L->packed, L->weight, L->C_in, L->C_out, L->K, L->S, &net->tuning, net->precision))
            return nst_fail(err, NST_ERR_NOMEM, "out of memory packing the style network's weights");
    }
    return NST_OK;
}

int stylenet_n_tensors(const stylenet *net) {
    int n = 0;
    for (int l = 0; l < net->n_layers; l++) n += net->layer[l].norm ? 3 : 2;
    return n;
}

float *stylenet_tensor(const stylenet *net, int i, char name[64], int *ndim, int dims[4]) {
    for (int l = 0; l < net->n_layers; l++) {
        const stylenet_layer *L = &net->layer[l];
        int k = L->norm ? 3 : 2;
        if (i >= k) {
            i -= k;
            continue;
        }
        if (i == 0) {
            snprintf(name, 64, "%s.weight", L->name);
            *ndim = 4;
            dims[0] = L->C_out, dims[1] = L->C_in, dims[2] = L->K, dims[3] = L->K;
            return L->weight;
        }
        snprintf(name, 64, "%s.%s", L->name, !L->norm ? "bias" : i == 1 ? "gamma" : "beta");
        if (L->norm && net->n_styles > 1) { /* the tables, (n_styles,C) */
            *ndim = 2;
            dims[0] = net->n_styles, dims[1] = L->C_out;
            return i == 1 ? L->gammas : L->betas;
        }
        *ndim = 1;
        dims[0] = L->C_out;
        return !L->norm ? L->bias : i == 1 ? L->gamma : L->beta;
    }
    return NULL;
}

/* ---- activations ---------------------------------------------------------------- */

/* input: NULL (allocated with the rest), or the caller's (forward only) */
static nst_status acts_build(stylenet_acts *a, const stylenet *net, int H, int W, int train, float *input,
                             nst_error *err) {
    memset(a, 0, sizeof *a);
    if (net->kind == STYLENET_DECODER && (H < 2 || W < 2))
        return nst_fail(err, NST_ERR_ARG, "decoder input %dx%d: sides must be at least 2", W, H);
    if (net->kind == STYLENET_TRANSFORM && (H < 8 || W < 8 || H % 4 || W % 4))
        return nst_fail(err, NST_ERR_ARG, "style network input %dx%d: sides must be multiples of 4, at least 8", W, H);
    a->H = H;
    a->W = W;
    a->C_in = net->layer[0].C_in;
    a->train = train;
    /* shapes, and the largest buffer of each kind */
    size_t n_in = (size_t)a->C_in * H * W, max_pad = 0, max_z = 0, max_up = 0, max_g = n_in;
    size_t total = input ? 0 : n_in;
    int residual = 0;
    int h = H, w = W;
    for (int l = 0; l < net->n_layers; l++) {
        const stylenet_layer *L = &net->layer[l];
        a->Hi[l] = h;
        a->Wi[l] = w;
        if (L->upsample) {
            h *= 2;
            w *= 2;
            size_t nu = (size_t)L->C_in * h * w;
            if (nu > max_up) max_up = nu;
        }
        a->Hp[l] = h + 2 * L->pad;
        a->Wp[l] = w + 2 * L->pad;
        a->Ho[l] = (a->Hp[l] - L->K) / L->S + 1;
        a->Wo[l] = (a->Wp[l] - L->K) / L->S + 1;
        size_t np = (size_t)L->C_in * a->Hp[l] * a->Wp[l], nz = (size_t)L->C_out * a->Ho[l] * a->Wo[l];
        if (np > max_pad) max_pad = np;
        if (nz > max_z) max_z = nz;
        if (nz > max_g) max_g = nz;
        if (L->residual) residual = 1;
        if (train) total += np + 2 * nz + 2 * (size_t)L->C_out;
        h = a->Ho[l];
        w = a->Wo[l];
    }
    a->H_out = h;
    a->W_out = w;
    if (max_up > max_g) max_g = max_up;
    if (train) total += 3 * max_g + max_z + max_pad;
    else {
        total += max_pad + (residual ? 4 : 1) * max_z;
        for (int l = 0; l < net->n_layers; l++) total += 2 * (size_t)net->layer[l].C_out;
    }
    a->memory = nst_alloc_array(total, sizeof(float));
    if (!a->memory)
        return nst_fail(err, NST_ERR_NOMEM, "out of memory for the style network at %dx%d (%.0f MB)", W, H,
                        total * 4.0 / 1e6);
    a->bytes = total * sizeof(float);
    float *p = a->memory;
    if (input) a->input = input;
    else a->input = p, p += n_in;
    if (train) {
        for (int l = 0; l < net->n_layers; l++) {
            const stylenet_layer *L = &net->layer[l];
            size_t nz = (size_t)L->C_out * a->Ho[l] * a->Wo[l];
            a->pad[l] = p, p += (size_t)L->C_in * a->Hp[l] * a->Wp[l];
            a->z[l] = p, p += nz;
            a->y[l] = p, p += nz;
            a->mean[l] = p, p += L->C_out;
            a->rstd[l] = p, p += L->C_out;
        }
        a->g_a = p, p += max_g;
        a->g_b = p, p += max_g;
        a->g_skip = p, p += max_g;
        a->g_z = p, p += max_z;
        a->g_pad = p, p += max_pad;
    } else {
        /* forward only: one padded input and one conv output shared by every layer, and
         * three rotating outputs (a residual block reads its input two layers later);
         * without residual blocks (a decoder) a layer's input is spent once padded, so
         * its conv output and activation overwrite it in place */
        float *pad = p, *z = (p += max_pad), *ys[3];
        p += max_z;
        for (int k = 0; k < 3; k++) ys[k] = residual ? p : z, p += residual ? max_z : 0;
        for (int l = 0; l < net->n_layers; l++) {
            a->pad[l] = pad;
            a->z[l] = z;
            a->y[l] = ys[l % 3];
            a->mean[l] = p, p += net->layer[l].C_out;
            a->rstd[l] = p, p += net->layer[l].C_out;
        }
    }
    return NST_OK;
}

nst_status stylenet_acts_build(stylenet_acts *a, const stylenet *net, int H, int W, int train,
                              nst_error *err) {
    return acts_build(a, net, H, W, train, NULL, err);
}

nst_status stylenet_acts_build_on(stylenet_acts *a, const stylenet *net, int H, int W, float *input,
                                 nst_error *err) {
    return acts_build(a, net, H, W, 0, input, err);
}

void stylenet_acts_free(stylenet_acts *a) {
    free(a->memory);
    conv2d_workspace_free(&a->ws);
    memset(a, 0, sizeof *a);
}

/* ---- forward / backward -------------------------------------------------------- */

nst_status stylenet_forward(const stylenet *net, stylenet_acts *a, int use_ref, nst_error *err) {
    for (int l = 0; l < net->n_layers; l++) {
        const stylenet_layer *L = &net->layer[l];
        const float *src = l == 0 ? a->input : a->y[l - 1];
        int h = a->Hi[l], w = a->Wi[l];
        if (L->upsample) upsample2x_reflect_pad_forward(a->pad[l], src, L->C_in, h, w, L->pad);
        else reflect_pad_forward(a->pad[l], src, L->C_in, h, w, L->pad);
        if (l == 0 && net->in_scale != 0.0f && net->in_scale != 1.0f) { /* (0: a zeroed net's 1) */
            size_t np = (size_t)L->C_in * a->Hp[l] * a->Wp[l];
            for (size_t i = 0; i < np; i++) a->pad[l][i] *= net->in_scale;
        }
        if (use_ref) {
            conv2d_forward_ref(a->z[l], a->pad[l], L->weight, L->bias, L->C_in, L->C_out, a->Hp[l], a->Wp[l], L->K, L->S);
        } else if (conv2d_forward(a->z[l], a->pad[l], &L->packed, L->bias, a->Hp[l], a->Wp[l], &a->ws)) {
            return nst_fail(err, NST_ERR_NOMEM, "out of memory in the style network's layer %s", L->name);
        }
        size_t N = (size_t)a->Ho[l] * a->Wo[l];
        if (L->norm) {
            instance_norm_forward(a->y[l], a->mean[l], a->rstd[l], a->z[l], L->gamma, L->beta, L->C_out, (int)N, L->relu);
            if (L->residual) add_forward(a->y[l], a->y[l], a->y[l - 2], L->C_out * N);
        } else if (L->sigmoid) {
            sigmoid255_forward(a->y[l], a->z[l], L->C_out * N);
        } else if (L->relu) {
            relu_forward(a->y[l], a->z[l], L->C_out * N);
        } else {
            float k = L->scale255 ? 255.0f : 1.0f;
            for (size_t i = 0; i < L->C_out * N; i++) a->y[l][i] = k * a->z[l][i];
        }
    }
    return NST_OK;
}

nst_status stylenet_backward(stylenet *net, stylenet_acts *a, const float *dout, float *dinput,
                            int use_ref, nst_error *err) {
    if (!a->train || !net->grads)
        return nst_fail(err, NST_ERR_ARG, "style network backward needs training buffers");
    float *g = a->g_a; /* d(loss)/d(output of layer l), then of its input */
    memcpy(g, dout, (size_t)3 * a->H_out * a->W_out * sizeof(float));
    for (int l = net->n_layers - 1; l >= 0; l--) {
        stylenet_layer *L = &net->layer[l];
        size_t N = (size_t)a->Ho[l] * a->Wo[l];
        if (L->norm) {
            /* a block's output gradient also flows straight to the block's input */
            if (L->residual) memcpy(a->g_skip, g, L->C_out * N * sizeof(float));
            instance_norm_backward(a->g_z, L->dgamma, L->dbeta, g, a->y[l], a->z[l], a->mean[l], a->rstd[l],
                                   L->gamma, L->C_out, (int)N, L->relu);
        } else if (L->sigmoid) {
            sigmoid255_backward(a->g_z, g, a->y[l], L->C_out * N);
        } else if (L->relu) {
            relu_backward(a->g_z, g, a->y[l], L->C_out * N);
        } else {
            float k = L->scale255 ? 255.0f : 1.0f;
            for (size_t i = 0; i < L->C_out * N; i++) a->g_z[i] = k * g[i];
        }
        if (use_ref) {
            conv2d_backward_weight_ref(L->dweight, L->dbias, a->g_z, a->pad[l], L->C_in, L->C_out, a->Hp[l], a->Wp[l], L->K, L->S);
        } else if (conv2d_backward_weight(L->dweight, L->dbias, a->g_z, a->pad[l], &L->packed, a->Hp[l],
                                          a->Wp[l], &a->ws)) {
            return nst_fail(err, NST_ERR_NOMEM, "out of memory in the style network's layer %s", L->name);
        }
        if (l == 0 && !dinput) break; /* nobody needs the gradient of the photo */
        if (use_ref) {
            conv2d_backward_input_ref(a->g_pad, a->g_z, L->weight, L->C_in, L->C_out, a->Hp[l], a->Wp[l], L->K, L->S);
        } else if (conv2d_backward_input(a->g_pad, a->g_z, &L->packed, a->Hp[l], a->Wp[l], &a->ws)) {
            return nst_fail(err, NST_ERR_NOMEM, "out of memory in the style network's layer %s", L->name);
        }
        int h = a->Hi[l], w = a->Wi[l];
        if (L->upsample) {
            reflect_pad_backward(a->g_b, a->g_pad, L->C_in, 2 * h, 2 * w, L->pad);
            upsample2x_backward(g, a->g_b, L->C_in, h, w);
        } else {
            reflect_pad_backward(g, a->g_pad, L->C_in, h, w, L->pad);
        }
        if (l + 1 < net->n_layers && net->layer[l + 1].residual)
            add_forward(g, g, a->g_skip, (size_t)L->C_in * h * w); /* the block's skip path */
    }
    if (dinput)
        for (size_t i = 0; i < (size_t)a->C_in * a->H * a->W; i++) dinput[i] = (net->in_scale ? net->in_scale : 1.0f) * g[i];
    return NST_OK;
}
