/* bench.c - timing of the VGG19 passes and of a whole seed-preset transfer step, on
 * synthetic images, for `nst bench` and the benchmark scripts. Each measurement is the
 * best of cfg->iters runs (the machine is shared and noisy; the minimum is the most
 * repeatable estimate of what the code costs). */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "net/vgg19.h"
#include "transfer/gatys.h"
#include "util/util.h"

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

static nst_status bench_run(const nst_bench_config *cfg, const nst_vgg19 *net, nst_bench_result *res,
                         nst_error *err);

/* cfg->threads for this call only (nst.h) */
nst_status nst_bench_run(const nst_bench_config *cfg, const nst_vgg19 *net, nst_bench_result *res,
                         nst_error *err) {
    int saved = nst_threads_begin(cfg->threads);
    nst_status s = bench_run(cfg, net, res, err);
    nst_threads_end(saved);
    return s;
}

static nst_status bench_run(const nst_bench_config *cfg, const nst_vgg19 *net, nst_bench_result *res,
                         nst_error *err) {
    memset(res, 0, sizeof *res);
    if (cfg->size < 32 || cfg->iters < 1 || cfg->n_taps < 1)
        return nst_fail(err, NST_ERR_ARG, "bench needs size >= 32, iters >= 1 and at least one layer");
    nst_device dev;
    nst_status sd = nst_device_resolve(cfg->device, &dev, err);
    if (sd) return sd;
    res->device = dev;
    nst_transfer_config tc;
    nst_transfer_preset(&tc, "seed", err);
    tc.device = dev;
    tc.precision = cfg->precision;
    tc.tuning = cfg->tuning;
    tc.size = cfg->size;
    tc.n_content_taps = tc.n_style_taps = cfg->n_taps;
    memcpy(tc.content_taps, cfg->taps, sizeof cfg->taps);
    memcpy(tc.style_taps, cfg->taps, sizeof cfg->taps);

    nst_image content = {0}, style = {0};
    nst_transfer *t = NULL;
    nst_status s = synthetic_image(&content, cfg->size, 1, err);
    if (!s) s = synthetic_image(&style, cfg->size, 2, err);
    if (!s) s = gatys_build(&t, &tc, net, &content, &style, NULL, 1, err);
    if (!s) s = gatys_bench(t, cfg, res, err); /* on the run's device, timed as it can best */
    gatys_free(t);
    nst_image_free(&content);
    nst_image_free(&style);
    return s;
}
