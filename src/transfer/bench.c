/* bench.c - timing of the VGG19 passes and of a whole seed-preset transfer step, on
 * synthetic images, for `nst bench` and the benchmark scripts. Each measurement is the
 * best of cfg->iters runs (the machine is shared and noisy; the minimum is the most
 * repeatable estimate of what the code costs). */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "net/vgg19.h"
#include "optim/optim.h"
#include "transfer/gatys.h"
#include "util/util.h"
#ifdef NST_HAVE_CUDA
#include "cuda/gatys_cuda.h"
#endif

void nst_bench_defaults(nst_bench_config *cfg) {
    static const char *const taps[] = {"conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"};
    memset(cfg, 0, sizeof *cfg);
    cfg->size = 224;
    cfg->iters = 10;
    cfg->warmup = 2;
    cfg->device = NST_DEVICE_CPU;
    cfg->n_taps = 5;
    for (int i = 0; i < 5; i++) {
        cfg->taps[i].layer = nst_layer_index(taps[i]);
        cfg->taps[i].weight = 1.0f;
    }
}

/* A smooth synthetic picture with some texture, so that ReLUs and pools see real data. */
static nst_status synthetic_image(nst_image *img, int size, uint64_t seed, nst_error *err) {
    nst_status s = nst_image_alloc(img, size, size, err);
    if (s) return s;
    nst_rng rng;
    nst_rng_seed(&rng, seed);
    for (int i = 0; i < size; i++)
        for (int j = 0; j < size; j++)
            for (int c = 0; c < 3; c++) {
                double v = 128.0 + 60.0 * ((i * (c + 1) + j * (3 - c)) % 97) / 97.0 + 30.0 * nst_rng_normal(&rng);
                img->pixels[((size_t)i * size + j) * 3 + c] = (float)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    return NST_OK;
}

nst_status nst_bench_run(const nst_bench_config *cfg, const nst_vgg19 *net, nst_bench_result *res,
                         nst_error *err) {
    memset(res, 0, sizeof *res);
    if (cfg->size < 32 || cfg->iters < 1 || cfg->n_taps < 1)
        return nst_fail(err, NST_ERR_ARG, "bench needs size >= 32, iters >= 1 and at least one layer");
    nst_device dev;
    nst_status sd = nst_device_resolve(cfg->device, &dev, err);
    if (sd) return sd;
    res->device = dev;
    if (cfg->threads > 0) omp_set_num_threads(cfg->threads);
    nst_transfer_config tc;
    nst_transfer_preset(&tc, "seed", err);
    tc.device = dev;
    tc.precision = cfg->precision;
    tc.size = cfg->size;
    tc.n_content_taps = tc.n_style_taps = cfg->n_taps;
    memcpy(tc.content_taps, cfg->taps, sizeof cfg->taps);
    memcpy(tc.style_taps, cfg->taps, sizeof cfg->taps);

    nst_image content = {0}, style = {0};
    nst_transfer *t = NULL;
    adam_state adam = {0};
    float *x = NULL, *grad = NULL;
    nst_status s = synthetic_image(&content, cfg->size, 1, err);
    if (!s) s = synthetic_image(&style, cfg->size, 2, err);
    if (!s) s = gatys_build(&t, &tc, net, &content, &style, NULL, 1, err);
#ifdef NST_HAVE_CUDA
    if (!s && dev == NST_DEVICE_CUDA) { /* the same measurements on the GPU, timed with CUDA events */
        s = gatys_cuda_bench(gatys_gpu(t), cfg, res, err);
        goto done;
    }
#endif
    size_t n = (size_t)3 * cfg->size * cfg->size;
    if (!s) s = adam_build(&adam, n, tc.lr, err);
    if (!s) {
        x = nst_alloc_array(n, sizeof(float));
        grad = nst_alloc_array(n, sizeof(float));
        if (!x || !grad) s = nst_fail(err, NST_ERR_NOMEM, "out of memory");
    }
    if (s) goto done;
    memcpy(x, gatys_content_input(t), n * sizeof(float));
    gatys_eval(t, x, grad); /* fills the Grams that the backward timing reuses */
    vgg19_acts *a = gatys_acts(t);
    res->activation_bytes = a->bytes;
    res->kernel = conv3x3_kernel_name();
    for (int l = 0; l < a->depth; l++)
        if (vgg19_layer_kind(l) == VGG_CONV) {
            int hi = l == 0 ? a->H : a->Hl[l - 1], wi = l == 0 ? a->W : a->Wl[l - 1];
            res->conv_gflop += 2e-9 * hi * wi * (l == 0 ? 3 : a->C[l - 1]) * a->C[l] * 9;
        }

    double best[3] = {1e30, 1e30, 1e30};
    for (int it = 0; it < cfg->warmup + cfg->iters; it++) {
        double t0 = nst_now();
        memcpy(a->input, x, n * sizeof(float));
        vgg19_forward(net, a);
        double t1 = nst_now();
        gatys_backward(t, grad);
        double t2 = nst_now();
        double t3 = nst_now();
        gatys_eval(t, x, grad);
        adam_update(&adam, x, grad);
        double t4 = nst_now();
        if (it < cfg->warmup) continue;
        if (t1 - t0 < best[0]) best[0] = t1 - t0;
        if (t2 - t0 < best[1]) best[1] = t2 - t0;
        if (t4 - t3 < best[2]) best[2] = t4 - t3;
    }
    res->forward_ms = 1e3 * best[0];
    res->forward_backward_ms = 1e3 * best[1];
    res->step_ms = 1e3 * best[2];
done:
    free(x);
    free(grad);
    adam_free(&adam);
    gatys_free(t);
    nst_image_free(&content);
    nst_image_free(&style);
    return s;
}
