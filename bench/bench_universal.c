/* bench_universal.c - where one photo's pass of universal style transfer spends its time:
 * per level, the encoder (VGG19 to relu<k>_1), the transform's statistics and
 * eigendecompositions (the photo's covariance; the painting's are computed once per
 * run), applying it, and the decoder; then the whole pass (nst_universal_apply) by WCT and
 * by AdaIN (and by WCT at all five levels where relu5_1's decoder is there). fp32 and bf16 (where the CPU has it) alternate, best of N each, so their
 * ratio is measured back to back.
 * usage: bench_universal PHOTO PAINTING [SIZE (512)] [ITERS (3)] [DECODERS_DIR] [WEIGHTS_DIR] */
#include <float.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "net/model_file.h"
#include "net/vgg19.h"
#include "transfer/universal.h"

enum { ENC, STATS, APPLY, DEC, N_PARTS };
static const char *PART[N_PARTS] = {"encode", "stats+eig", "apply", "decode"};

static double best(double a, double b) { return a < b ? a : b; }

static nst_image load_scaled(const char *path, int size) {
    nst_image raw = {0}, img = {0};
    nst_error err;
    int w, h;
    bench_check("bench_universal", nst_image_load(&raw, path, NULL, &err), &err);
    nst_image_fit_size(raw.width, raw.height, size, &w, &h);
    bench_check("bench_universal", nst_image_resize(&img, &raw, w, h, &err), &err);
    nst_image_free(&raw);
    return img;
}

/* One level's parts on img (its sides multiples of 2^(k-1)), timed into t. */
static void level_parts(const nst_vgg19 *vgg, const conv3x3_packed *packs, const stylenet *dec,
                        const universal_style *st, const nst_image *img, double t[N_PARTS]) {
    nst_error err;
    float *F, *G, *T, *shift;
    int C, h, w, k = dec->level;
    double t0 = nst_now();
    bench_check("bench_universal", universal_encode(vgg, packs, img, k, &F, &C, &h, &w, &err), &err);
    double t1 = nst_now();
    wct_stats content = {0};
    const wct_stats *ss = &st->level[k];
    float one = 1.0f;
    T = malloc((size_t)C * C * sizeof *T), shift = malloc((size_t)C * sizeof *shift);
    G = malloc((size_t)C * h * w * sizeof *G);
    if (!T || !shift || !G) exit(1);
    bench_check("bench_universal", wct_stats_compute(&content, F, C, (size_t)h * w, vgg->tier, &err), &err);
    bench_check("bench_universal", wct_transform_build(T, shift, &content, &ss, &one, 1, &err), &err);
    double t2 = nst_now();
    wct_transform_apply(G, F, T, shift, C, (size_t)h * w, 1.0f, vgg->tier);
    double t3 = nst_now();
    stylenet_acts a;
    bench_check("bench_universal", stylenet_acts_build_on(&a, dec, h, w, G, &err), &err);
    bench_check("bench_universal", stylenet_forward(dec, &a, 0, &err), &err);
    double t4 = nst_now();
    stylenet_acts_free(&a);
    t[ENC] = best(t[ENC], t1 - t0), t[STATS] = best(t[STATS], t2 - t1);
    t[APPLY] = best(t[APPLY], t3 - t2), t[DEC] = best(t[DEC], t4 - t3);
    wct_stats_free(&content);
    free(F), free(G), free(T), free(shift);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_universal PHOTO PAINTING [SIZE] [ITERS] [DECODERS_DIR] [WEIGHTS_DIR]\n");
        return 2;
    }
    int size = argc > 3 ? atoi(argv[3]) : 512, iters = argc > 4 ? atoi(argv[4]) : 3;
    const char *dir = argc > 5 ? argv[5] : NULL, *wdir = argc > 6 ? argv[6] : NULL;
    nst_error err;
    nst_tuning tuning;
    nst_tuning_from_env(&tuning, &err);
    nst_vgg19 *vgg;
    bench_check("bench_universal", nst_vgg19_load_tuned(&vgg, wdir, nst_layer_index("relu5_1") + 1, &tuning, &err),
                &err);
    nst_image photo = load_scaled(argv[1], size), painting = load_scaled(argv[2], 512);
    nst_precision precs[2] = {NST_PRECISION_FP32, NST_PRECISION_BF16};
    nst_precision resolved;
    int n_prec = nst_precision_resolve_cpu(NST_PRECISION_BF16, &tuning, &resolved, &err) == NST_OK ? 2 : 1;
    nst_universal *u[2];
    for (int p = 0; p < n_prec; p++) {
        bench_check("bench_universal", nst_universal_load(&u[p], vgg, dir, NULL, &err), &err);
        bench_check("bench_universal", nst_universal_set_precision(u[p], precs[p], &tuning, &err), &err);
    }
    /* internal access for the per-level rows: a second set of decoders and packs */
    conv3x3_packed *packs[2] = {NULL, NULL};
    stylenet dec[2][6];
    memset(dec, 0, sizeof dec);
    int have = nst_universal_levels(u[0]);
    for (int p = 0; p < n_prec; p++) {
        bench_check("bench_universal", vgg19_packs_build(&packs[p], vgg, vgg->depth, &tuning, precs[p], &err), &err);
        for (int k = 1; k <= 5; k++) {
            if (!(have & 1 << k)) continue;
            char path[4200];
            snprintf(path, sizeof path, "%s/relu%d_1.nstm", nst_universal_dir(u[0]), k);
            nstm_model m = {0};
            bench_check("bench_universal", nstm_load(&m, path, NULL, &err), &err);
            bench_check("bench_universal", stylenet_decoder_read(&dec[p][k], &m, path, 0, &err), &err);
            nstm_free(&m);
            dec[p][k].tuning = tuning;
            dec[p][k].precision = precs[p];
            bench_check("bench_universal", stylenet_pack(&dec[p][k], &err), &err);
        }
    }
    double t_level[2][6][N_PARTS], t_style[2], t_wct[2], t_wct5[2], t_adain[2];
    for (int p = 0; p < 2; p++) {
        t_style[p] = t_wct[p] = t_wct5[p] = t_adain[p] = DBL_MAX;
        for (int k = 0; k < 6; k++)
            for (int q = 0; q < N_PARTS; q++) t_level[p][k][q] = DBL_MAX;
    }
    const nst_image *pp = &painting;
    float one = 1.0f;
    for (int it = 0; it < iters; it++)
        for (int p = 0; p < n_prec; p++) {
            double t0 = nst_now();
            bench_check("bench_universal", nst_universal_set_styles(u[p], &pp, &one, 1, NST_UNIVERSAL_WCT, &err), &err);
            t_style[p] = best(t_style[p], nst_now() - t0);
            nst_image out = {0};
            t0 = nst_now();
            bench_check("bench_universal", nst_universal_apply(u[p], &photo, 1.0f, &out, &err), &err);
            t_wct[p] = best(t_wct[p], nst_now() - t0);
            nst_image_free(&out);
            if (have & 1 << 5) { /* all five levels (the default stops at relu4_1) */
                bench_check("bench_universal", nst_universal_set_levels(u[p], 5, &err), &err);
                bench_check("bench_universal", nst_universal_set_styles(u[p], &pp, &one, 1, NST_UNIVERSAL_WCT, &err),
                            &err);
                t0 = nst_now();
                bench_check("bench_universal", nst_universal_apply(u[p], &photo, 1.0f, &out, &err), &err);
                t_wct5[p] = best(t_wct5[p], nst_now() - t0);
                nst_image_free(&out);
                bench_check("bench_universal", nst_universal_set_levels(u[p], NST_UNIVERSAL_LEVELS, &err), &err);
            }
            if (have & 1 << 4) {
                bench_check("bench_universal", nst_universal_set_styles(u[p], &pp, &one, 1, NST_UNIVERSAL_ADAIN, &err),
                            &err);
                t0 = nst_now();
                bench_check("bench_universal", nst_universal_apply(u[p], &photo, 1.0f, &out, &err), &err);
                t_adain[p] = best(t_adain[p], nst_now() - t0);
                nst_image_free(&out);
            }
            /* the per-level parts, on the photo padded as the pass pads it */
            universal_style st;
            const stylenet *dp[6] = {0};
            for (int k = 1; k <= 5; k++) dp[k] = have & 1 << k ? &dec[p][k] : NULL;
            bench_check("bench_universal", universal_style_compute(&st, vgg, packs[p], dp, &painting, &err), &err);
            for (int k = 5; k >= 1; k--) {
                if (!dp[k]) continue;
                int m = 1 << (k - 1), W = (photo.width + m - 1) / m * m, H = (photo.height + m - 1) / m * m;
                nst_image padded = {0};
                bench_check("bench_universal", nst_image_resize(&padded, &photo, W, H, &err), &err);
                level_parts(vgg, packs[p], dp[k], &st, &padded, t_level[p][k]);
                nst_image_free(&padded);
            }
            universal_style_free(&st);
        }
    printf("universal style transfer, photo %dx%d, painting %dx%d, %d threads, best of %d\n", photo.width,
           photo.height, painting.width, painting.height, omp_get_max_threads(), iters);
    printf("%-10s %-10s %10s%s\n", "level", "part", "fp32 s", n_prec > 1 ? "    bf16 s  fp32/bf16" : "");
    for (int k = 5; k >= 1; k--) {
        if (!(have & 1 << k)) continue;
        for (int q = 0; q < N_PARTS; q++) {
            printf("relu%d_1    %-10s %10.3f", k, PART[q], t_level[0][k][q]);
            if (n_prec > 1) printf("%10.3f %10.2f", t_level[1][k][q], t_level[0][k][q] / t_level[1][k][q]);
            printf("\n");
        }
    }
    const char *rows[4] = {"painting (once, default levels)", "WCT pass, default levels", "WCT pass, five levels",
                           "AdaIN pass"};
    double *vals[4] = {t_style, t_wct, t_wct5, t_adain};
    for (int r = 0; r < 4; r++) {
        if ((r == 3 && !(have & 1 << 4)) || (r == 2 && !(have & 1 << 5))) continue;
        printf("%-32s %10.3f", rows[r], vals[r][0]);
        if (n_prec > 1) printf("%10.3f %10.2f", vals[r][1], vals[r][0] / vals[r][1]);
        printf("\n");
    }
    for (int p = 0; p < n_prec; p++) {
        nst_universal_free(u[p]);
        vgg19_packs_free(packs[p]);
        for (int k = 0; k < 6; k++) stylenet_free(&dec[p][k]);
    }
    nst_image_free(&photo);
    nst_image_free(&painting);
    nst_vgg19_free(vgg);
    return 0;
}
