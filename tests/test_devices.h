/* test_devices.h - the devices a test runs on: the CPU always, CUDA where this build has
 * it and the machine a GPU (ggml's test-backend-ops is the model: one test, every
 * backend). Each has its tolerances against the PyTorch oracle and for finite
 * differences; a device that cannot run is said once and skipped. */
#ifndef NST_TEST_DEVICES_H
#define NST_TEST_DEVICES_H

#include <stdio.h>
#include "nst.h"

typedef struct {
    nst_device device;
    const char *name;
    double loss_tol;     /* losses, Grams, gradients and Adam's steps against the oracle */
    double grad_tie_tol; /* the image gradients at the oracle's gen input (see below) */
    double content_step_tol, content_step_abs; /* the content loss after Adam's first
                                                  moves: relative to max(1, it), absolute */
    double fd_tol;       /* a directional derivative against central differences */
} test_device;

/* CUDA fp32: cuDNN picks its algorithms (Winograd and FFT included) against PyTorch's CPU
 * convolutions, so looser than the CPU. At the gen input, conv1_2's rounding flips one
 * max-pool argmax near-tie, moving that window's gradient to its neighbour: a discrete
 * 3.6e-3 on an H100, not a wrong term (those are O(1)). After Adam's first lr-sized
 * moves, pixels with a near-zero gradient may move the other way (content 1e-2). Central
 * differences in float at 32 px are noisy: the GPU's measured 0.2-5.3%. */
static const test_device test_device_table[] = {
    {NST_DEVICE_CPU, "cpu", 1e-4, 1e-4, 1e-4, 1e-3, 2e-2},
    {NST_DEVICE_CUDA, "cuda", 1e-3, 5e-3, 1e-2, 0.0, 6e-2},
};

/* The devices that can run here into out (at most 2); returns their number. */
static inline int test_devices(test_device *out) {
    int n = 0;
    for (size_t i = 0; i < sizeof test_device_table / sizeof test_device_table[0]; i++) {
        nst_device d;
        nst_error err;
        if (nst_device_resolve(test_device_table[i].device, &d, &err) == NST_OK) out[n++] = test_device_table[i];
        else printf("device %s: skipped (%s)\n", test_device_table[i].name, err.msg);
    }
    return n;
}

#endif
