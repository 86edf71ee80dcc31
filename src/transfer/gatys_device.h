/* gatys_device.h - the seam between the optimisation transfer (gatys.c, written once)
 * and the devices that run it: the CPU (gatys_cpu.c) and CUDA (cuda/gatys_cuda.cu).
 *
 * A device holds everything of a run that is the size of the image or the network: the
 * weights it needs, the activations, the targets, the optimizer's vectors and scalars
 * (optim.h). gatys.c owns the geometry, the configuration, the perceptual plan (weights,
 * taps, values) and the step loop; it reaches the device only through these tables, so
 * that a new device is a new backend here and files of its own.
 *
 * The registry: gatys_backend_for(device) in gatys.c. A backend that this build lacks
 * still has its table (cuda/no_cuda.c), whose build says why it cannot run. */
#ifndef NST_GATYS_DEVICE_H
#define NST_GATYS_DEVICE_H

#include "nst.h"
#include "loss/perceptual.h"
#include "optim/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a device is built from. Everything stays valid while the device lives. */
typedef struct {
    const nst_transfer_config *cfg;
    const nst_vgg19 *net;
    perceptual_plan *plan;       /* taps and weights; the device writes each evaluation's values */
    int W, H;                    /* the canvas: vectors are (3,H,W) */
    const float *content_input;  /* host (3,H,W): the content, preprocessed, on the canvas */
    const nst_image *styles;     /* n_styles paintings, each prepared by gatys_style_input */
    const float *blend;          /* (n_styles) their weights, summing to 1 */
    int n_styles;
    int n_vectors, n_scalars;    /* what the optimizer needs (optim.h): OPTIM_X, OPTIM_G, its own */
    nst_precision precision;     /* cfg's, resolved for the device (nst_precision_resolve) */
} gatys_setup;

typedef struct gatys_device gatys_device;

typedef struct {
    void (*free)(gatys_device *d);
    /* vector v (optim.h's numbers), (3,H,W), from or to the host */
    nst_status (*upload)(gatys_device *d, int v, const float *x, nst_error *err);
    nst_status (*download)(gatys_device *d, int v, float *x, nst_error *err);
    /* nst bench: times the passes and a step of this (seed-preset, Adam) run */
    nst_status (*bench)(gatys_device *d, const nst_bench_config *cfg, nst_bench_result *res, nst_error *err);
} gatys_device_ops;

/* The first member of a device's own struct. */
struct gatys_device {
    const gatys_device_ops *ops;
    optim_device *optim;         /* its optimizer operations; evaluate is the objective */
};

typedef struct {
    const char *name;
    nst_status (*build)(gatys_device **out, const gatys_setup *setup, nst_error *err);
} gatys_backend;

extern const gatys_backend gatys_cpu_backend;  /* transfer/gatys_cpu.c */
extern const gatys_backend gatys_cuda_backend; /* cuda/gatys_cuda.cu, or cuda/no_cuda.c */

#ifdef __cplusplus
}
#endif
#endif
