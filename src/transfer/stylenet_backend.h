/* stylenet_backend.h - the devices that apply and train a style network (net/stylenet.h):
 * one table of operations per device, on the model of ggml's ggml_backend_i and SQLite's
 * sqlite3_io_methods. transfer/ calls the tables only and never asks which device it has.
 *
 *   table                          CPU                          CUDA
 *   stylenet_backend (apply)       transfer/stylenet_apply.c    cuda/stylenet_cuda.cu
 *   stylenet_trainer_backend       transfer/stylenet_train.c    cuda/stylenet_train_cuda.cu
 *
 * In a build without CUDA, cuda/no_cuda.c defines the CUDA tables as stand-ins whose
 * create/build fail with the reason; it is the only file that knows CUDA may be missing.
 * stylenet_backend.c is the registry (a device's tables). Another implementation (a bf16
 * CPU path, another GPU) is its own files, a table and a line in the registry.
 *
 * Each table's objects are its own state, beginning with the common part (the table), as
 * SQLite's files begin with sqlite3_file: callers hold typed pointers to the common part. */
#ifndef NST_STYLENET_BACKEND_H
#define NST_STYLENET_BACKEND_H

#include "loss/perceptual.h"
#include "nst.h"

#ifdef __cplusplus
extern "C" {
#endif
#include "net/stylenet.h" /* a C header */

/* ---- applying a network ------------------------------------------------------------- */

typedef struct stylenet_backend stylenet_backend;

/* A network made ready for one device: what create returns, the state of its backend. */
typedef struct {
    const stylenet_backend *ops;
} stylenet_runner;

struct stylenet_backend {
    const char *name;  /* "cpu", "cuda" */
    nst_device device; /* what nst_style_net_device reports */
    /* Prepares net for this device. net is borrowed (it must outlive the runner); the
     * CPU reads its packed weights at each apply, CUDA uploads them here, once. precision:
     * nst_precision (the CPU computes in fp32 whatever it is). */
    nst_status (*create)(stylenet_runner **r, const stylenet *net, nst_precision precision, nst_error *err);
    /* img (H,W,3) 0..255 -> out (allocated here, H x W), the network run at Hp x Wp
     * (multiples of 4, >= 8; the border past W, H clamped to the edge, then cropped off).
     * Keeps scratch memory for the last size. */
    nst_status (*apply)(stylenet_runner *r, const nst_image *img, int Hp, int Wp, nst_image *out, nst_error *err);
    void (*free)(stylenet_runner *r);
};

extern const stylenet_backend stylenet_cpu_backend;
extern const stylenet_backend stylenet_cuda_backend;

/* The registry: the table for a resolved device (nst_device_resolve), the CPU's for any other. */
const stylenet_backend *stylenet_backend_get(nst_device device);

/* img -> out with r at the padded size the network runs at (stylenet_apply.c's rule). */
nst_status stylenet_apply_image(stylenet_runner *r, const nst_image *img, nst_image *out, nst_error *err);

/* ---- training a network --------------------------------------------------------------- */

typedef struct stylenet_trainer stylenet_trainer; /* the host trainer (stylenet_train.h) */
typedef struct stylenet_trainer_backend stylenet_trainer_backend;

/* A device's training state: what build returns. */
typedef struct {
    const stylenet_trainer_backend *ops;
} stylenet_train_runner;

/* What a trainer backend is built from (the host trainer's, borrowed for the build). */
typedef struct {
    const nst_train_config *cfg;
    const nst_vgg19 *vgg;
    const stylenet *net;              /* the shape and the initial parameters */
    const perceptual_plan *plan;      /* the perceptual loss's taps and weights */
    const float *const *style_A;      /* (NST_NUM_LAYERS) the painting's Grams (C,C), NULL
                                       * where not a style layer */
    float *batch;                     /* the host's (batch,3,size,size) buffer the steps read */
    stylenet_trainer *host;           /* the host trainer (the CPU's steps run on its state) */
} stylenet_train_setup;

struct stylenet_trainer_backend {
    const char *name;
    /* 1: the parameters and Adam's state live with the backend and the host's copy goes
     * stale at each step (get_state refreshes it); 0: they are the host trainer's own. */
    int own_state;
    /* Adam starts at zero, the parameters at setup->net's. */
    nst_status (*build)(stylenet_train_runner **r, const stylenet_train_setup *setup, nst_error *err);
    /* One Adam step on batch ((batch,3,size,size) RGB planes 0..1, host). adam_t: Adam's
     * step count including this step (1 for the first). losses: the weighted losses,
     * mean over the batch (content, style, tv). */
    nst_status (*step)(stylenet_train_runner *r, const float *batch, int adam_t, double losses[3], nst_error *err);
    /* Copies of the parameters (stylenet.params layout) and Adam's m, v (n_params each). */
    nst_status (*get_state)(stylenet_train_runner *r, float *params, float *m, float *v, nst_error *err);
    nst_status (*set_state)(stylenet_train_runner *r, const float *params, const float *m, const float *v,
                            nst_error *err);
    /* The gradient of the last step (n_params floats). */
    nst_status (*get_grads)(stylenet_train_runner *r, float *grads, nst_error *err);
    void (*free)(stylenet_train_runner *r);
};

extern const stylenet_trainer_backend stylenet_trainer_cpu_backend;
extern const stylenet_trainer_backend stylenet_trainer_cuda_backend;

/* The registry: the trainer table for a resolved device, the CPU's for any other. */
const stylenet_trainer_backend *stylenet_trainer_backend_get(nst_device device);

#ifdef __cplusplus
}
#endif
#endif
