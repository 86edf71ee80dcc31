/* stylenet.h - the feed-forward image transformation network of fast style transfer
 * (Johnson, Alahi & Fei-Fei 2016, with the instance normalisation of Ulyanov et al.).
 *
 *   c1   reflect pad 4, conv 9x9      3 -> w,  IN, ReLU        H   x W
 *   c2   reflect pad 1, conv 3x3 /2   w -> 2w, IN, ReLU        H/2 x W/2
 *   c3   reflect pad 1, conv 3x3 /2  2w -> 4w, IN, ReLU        H/4 x W/4
 *   r1a..r5b  residual blocks: (pad 1, conv 3x3, IN, ReLU, pad 1, conv 3x3, IN) + input
 *   u1   nearest 2x, pad 1, conv 3x3  4w -> 2w, IN, ReLU       H/2 x W/2
 *   u2   nearest 2x, pad 1, conv 3x3  2w -> w,  IN, ReLU       H   x W
 *   out  reflect pad 4, conv 9x9      w -> 3, bias, 255*sigmoid
 *
 * The upsampling is nearest-neighbour + conv rather than a transposed conv, which avoids
 * checkerboard artifacts. Convs followed by instance norm have no bias (the norm removes
 * it). Input: RGB planes (3,H,W) in 0..1; output: RGB planes (3,H,W) in 0..255. H and W
 * must be multiples of 4 and at least 8 (nst_style_net_apply pads any image to that).
 *
 * Life cycle, as for the VGG19:
 *   stylenet_build()        parameters (and gradients, for training), one allocation each
 *   stylenet_init_params()  random initialisation (or copy parameters in, then stylenet_pack())
 *   stylenet_acts_build()   activations for one image size
 *   stylenet_forward()      one image
 *   stylenet_backward()     one image, ACCUMULATING into the parameter gradients, so that a
 *                           mini-batch is a loop of forward/backward over its images
 *   stylenet_pack()         after every parameter update (the fast convs use packed weights)
 * The architecture above is stylenet.c's layer tables (head, residual block, tail); the
 * devices that apply and train it are transfer/stylenet_backend.h's tables. */
#ifndef NST_STYLENET_H
#define NST_STYLENET_H

#include <stddef.h>

#include "nst.h"
#include "net/model_file.h"
#include "tensor/conv2d.h"
#include "util/util.h"

#define STYLENET_MAX_LAYERS 32
#define STYLENET_MAX_RES 8
#define STYLENET_MAX_STYLES 256

typedef struct {
    char name[8];      /* c1, c2, c3, r1a, r1b, ..., u1, u2, out */
    int C_in, C_out, K, S;
    int upsample;      /* nearest 2x before the padding */
    int pad;           /* reflection padding, K/2 */
    int norm;          /* instance norm (else: a bias) */
    int relu;          /* ReLU after the norm or the bias */
    int sigmoid;       /* 255 sigmoid after the bias (the transform's output); without norm,
                          relu or sigmoid a layer is linear (a decoder's output) */
    int scale255;      /* a linear layer's output times 255: its parameters in 0..1 units,
                          which Adam's step sizes suit, the image in 0..255 */
    int residual;      /* adds the input of the previous layer (the block's input) */
    float *weight, *bias, *gamma, *beta;     /* (C_out,C_in,K,K), (C_out)...; into params */
    float *dweight, *dbias, *dgamma, *dbeta; /* the same shapes, into grads */
    float *gammas, *betas;   /* a norm's tables (n_styles,C_out): gamma and beta are the */
    float *dgammas, *dbetas; /* selected style's rows (stylenet_select_style) */
    conv2d_packed packed;
} stylenet_layer;

/* The two networks built from these layers: the image transformation network above, and
 * the decoders of universal style transfer (stylenet_build_decoder). */
typedef enum { STYLENET_TRANSFORM = 0, STYLENET_DECODER = 1 } stylenet_kind;

typedef struct {
    stylenet_kind kind;
    int width, n_res;  /* a decoder: width as below, no residual blocks */
    int level;         /* a decoder: the VGG19 level it inverts, 1..5 (relu1_1..relu5_1) */
    float in_scale;    /* the input times this, after its padding: a decoder's 1/255 (the
                          features of a 0..1 image, the units its initialisation and Adam's
                          steps suit); the transform's 1 */
    int n_styles;      /* styles the norms hold (conditional instance norm, Dumoulin et al.
                          2017: the convolutions shared, a gamma and beta per style); 1 */
    int n_layers;
    stylenet_layer layer[STYLENET_MAX_LAYERS];
    float *params;     /* every parameter, one allocation (the optimizer's vector) */
    float *grads;      /* the same layout; NULL unless built for training */
    size_t n_params;
    nst_tuning tuning; /* its CPU kernels, chosen at stylenet_pack (zero: the best) */
    nst_precision precision; /* of its CPU convolutions: FP32 (zero) or BF16 (resolved) */
} stylenet;

/* width: channels of c1 (32 is the standard network, 16 a slim one); n_res: residual
 * blocks (5). train: also allocate gradients. */
nst_status stylenet_build(stylenet *net, int width, int n_res, int train, nst_error *err);
/* A decoder of universal style transfer (Li et al. 2017): VGG19 mirrored back from
 * relu<level>_1 to an RGB image, 0..255 (linear; callers clamp), each layer reflection pad
 * 1, conv 3x3, bias, ReLU, nearest 2x upsampling where VGG19 pools:
 *   d5_1 C5->8w | up d4_4 d4_3 d4_2 8w->8w, d4_1 8w->4w | up d3_4 d3_3 d3_2 4w->4w,
 *   d3_1 4w->2w | up d2_2 2w->2w, d2_1 2w->w | up d1_2 w->w, d1_1 w->3 (linear)
 * entered at d<level>_1, whose input is the level's VGG19 channels (64, 128, 256, 512,
 * 512). width 64 is Li et al.'s decoder (VGG19's channels); less is a slimmer one. It
 * works in the units of a 0..1 image: the features in times 1/255 (in_scale), d1_1's
 * output 255 x (conv + bias), the image in 0..255. The
 * input is (C,h,w) features, h and w >= 2; the output (3, 2^(level-1) h, 2^(level-1) w). */
nst_status stylenet_build_decoder(stylenet *net, int level, int width, int train, nst_error *err);
/* The same with n_styles (1..STYLENET_MAX_STYLES) rows in every norm's tables: the
 * parameters are each layer's weight, then its gammas (n_styles,C) and betas (n_styles,C)
 * (so that one style is the layout of stylenet_build); style 0 selected. */
nst_status stylenet_build_styles(stylenet *net, int width, int n_res, int n_styles, int train, nst_error *err);
/* Points every norm's gamma, beta (and their gradients) at style s's rows: forward and
 * backward then run that style (its gradients go to its rows only). */
void stylenet_select_style(stylenet *net, int s);
/* dst = a one-style network with src's convolutions and, in each norm, the mix
 * sum_s w[s] gamma_s and sum_s w[s] beta_s (w: src->n_styles weights, summing to 1 after
 * they are divided by their sum; none negative) - Dumoulin et al.'s blend of styles. Packed,
 * in src's tuning and precision; for applying (no gradients). */
nst_status stylenet_mix_styles(stylenet *dst, const stylenet *src, const float *w, nst_error *err);
void stylenet_free(stylenet *net);
/* PyTorch's default initialisation (uniform +-1/sqrt(fan_in)); norms start at gamma 1, beta 0. */
nst_status stylenet_init_params(stylenet *net, nst_rng *rng, nst_error *err);
/* Re-packs the conv weights for the fast kernels. Call after changing params. */
nst_status stylenet_pack(stylenet *net, nst_error *err);
/* Model files (stylenet_file.c): adds the network's architecture and parameters to m;
 * builds net from a loaded model file (path for messages; train: with gradients): a
 * transformation network (stylenet_model_read) or a decoder (stylenet_decoder_read), each
 * refusing the other kind with a message that says what the file is. */
nst_status stylenet_model_add(nstm_model *m, const stylenet *net, nst_error *err);
nst_status stylenet_model_read(stylenet *net, const nstm_model *m, const char *path, int train, nst_error *err);
nst_status stylenet_decoder_read(stylenet *net, const nstm_model *m, const char *path, int train, nst_error *err);
/* The parameter tensors by name, for saving and loading: fills name, ndim and dims
 * for tensor i (0 <= i < stylenet_n_tensors) and returns its data inside net->params. */
int stylenet_n_tensors(const stylenet *net);
float *stylenet_tensor(const stylenet *net, int i, char name[64], int *ndim, int dims[4]);

typedef struct {
    int H, W, train;   /* the input's size (the transform: the image's) */
    int C_in;          /* the input's channels (the transform: 3) */
    int H_out, W_out;  /* the output image's size */
    int Hi[STYLENET_MAX_LAYERS], Wi[STYLENET_MAX_LAYERS]; /* each layer's input size (before upsampling) */
    int Hp[STYLENET_MAX_LAYERS], Wp[STYLENET_MAX_LAYERS]; /* its padded conv input */
    int Ho[STYLENET_MAX_LAYERS], Wo[STYLENET_MAX_LAYERS]; /* its output */
    float *input;                    /* (C_in,H,W): the transform's 0..1 RGB, a decoder's features */
    float *pad[STYLENET_MAX_LAYERS];       /* conv inputs, padded (C_in,Hp,Wp) */
    float *z[STYLENET_MAX_LAYERS];         /* conv outputs (C_out,Ho,Wo) */
    float *y[STYLENET_MAX_LAYERS];         /* layer outputs (C_out,Ho,Wo); the last is the image */
    float *mean[STYLENET_MAX_LAYERS], *rstd[STYLENET_MAX_LAYERS]; /* the norms' statistics (C_out) */
    float *g_a, *g_b, *g_skip, *g_z, *g_pad; /* gradients (training only) */
    float *memory;
    size_t bytes;
    conv2d_workspace ws;
} stylenet_acts;

/* Activations for an H x W input (the transform: an image, sides multiples of 4, >= 8; a
 * decoder: features, sides >= 2). train = 0 keeps only what the forward pass needs
 * (buffers shared between layers), train = 1 keeps every layer's for the backward pass. */
nst_status stylenet_acts_build(stylenet_acts *a, const stylenet *net, int H, int W, int train,
                              nst_error *err);
/* Forward-only activations that read the caller's input (C_in,H,W) in place of their
 * own copy: it must outlive them, and the forward pass leaves it intact. */
nst_status stylenet_acts_build_on(stylenet_acts *a, const stylenet *net, int H, int W, float *input,
                                 nst_error *err);
void stylenet_acts_free(stylenet_acts *a);
/* The output image (3,H_out,W_out), 0..255, after stylenet_forward. */
static inline float *stylenet_output(const stylenet *net, const stylenet_acts *a) {
    return a->y[net->n_layers - 1];
}

/* a->input (C_in,H,W) -> stylenet_output. use_ref: the reference convolutions (tests).
 * Returns NST_ERR_NOMEM if a fast conv could not get scratch memory. */
nst_status stylenet_forward(const stylenet *net, stylenet_acts *a, int use_ref, nst_error *err);
/* dout is d(loss)/d(output) (3,H_out,W_out). Adds d(loss)/d(params) into net->grads;
 * writes d(loss)/d(input) into dinput (C_in,H,W) unless it is NULL. Needs a train-mode forward. */
nst_status stylenet_backward(stylenet *net, stylenet_acts *a, const float *dout, float *dinput,
                            int use_ref, nst_error *err);

#endif
