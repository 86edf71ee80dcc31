/* test_conv.c - the 3x3 convolution: the reference gradients against central finite
 * differences, the fast paths (the dispatched kernel, the AVX2 one, the portable one and
 * Winograd F(2x2,3x3)) against the reference on many shapes, determinism, and the
 * NST_KERNEL / NST_CONV overrides. */
#include <omp.h>
#include <stdint.h>

#include "tensor/ops.h"
#include "test_util.h"
#include "wino_bf16_model.h"

/* Exposed by conv.c for the tests only: the portable path whatever the CPU. */
void conv3x3_forward_portable(float *out, const float *inp, const conv3x3_packed *w,
                              const float *bias, int H, int W);
void conv3x3_backward_input_portable(float *dinp, const float *dout, const conv3x3_packed *w,
                                     int H, int W);
/* ... and the AVX2 path: returns -1 (and does nothing) if the CPU has no AVX2+FMA. */
int conv3x3_forward_avx2(float *out, const float *inp, const conv3x3_packed *w,
                         const float *bias, int H, int W);
int conv3x3_backward_input_avx2(float *dinp, const float *dout, const conv3x3_packed *w,
                                int H, int W);

/* ... and the Winograd F(2x2,3x3) path: returns -1 (and does nothing) where it does not
 * exist (no AVX-512, or a channel count < 64). mask: NULL, or as for _relu. */
int conv3x3_forward_winograd(float *out, const float *inp, const conv3x3_packed *w,
                             const float *bias, int H, int W);
int conv3x3_backward_input_winograd(float *dinp, const float *dout, const conv3x3_packed *w,
                                    const float *mask, int H, int W);

static int have_avx2; /* set in main: whether the AVX2 path runs here */
static int have_winograd; /* set in main: whether the Winograd path runs here */
static nst_tuning env_tuning; /* set in main: the tuning of NST_KERNEL / NST_CONV, for the default packs */
static double wino_worst; /* the worst Winograd relative L2 error seen */
#define WINO_TOL 2e-6

static float *rand_array(size_t n, unsigned long long *st) {
    float *a = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) a[i] = test_rand(st);
    return a;
}

/* L = sum(conv(inp, weight, bias) * R) in double; inp is (C_in,H,W), R is (C_out,H,W) */
static double conv_loss(const double *inp, const double *weight, const double *bias, const float *R,
                        int C_in, int C_out, int H, int W) {
    double L = 0.0;
    for (int co = 0; co < C_out; co++)
        for (int h = 0; h < H; h++)
            for (int w = 0; w < W; w++) {
                double s = bias[co];
                for (int ci = 0; ci < C_in; ci++)
                    for (int kh = 0; kh < 3; kh++)
                        for (int kw = 0; kw < 3; kw++) {
                            int y = h + kh - 1, x = w + kw - 1;
                            if (y < 0 || y >= H || x < 0 || x >= W) continue;
                            s += inp[((size_t)ci * H + y) * W + x] * weight[((size_t)co * C_in + ci) * 9 + kh * 3 + kw];
                        }
                L += s * R[((size_t)co * H + h) * W + w];
            }
    return L;
}

/* Central differences of conv_loss for every element of v (one of inp/weight/bias,
 * held in double), against the analytic gradient g; returns the max abs error
 * relative to max |g|. */
static double fd_check(double *v, size_t n, const float *g, const double *inp, const double *weight,
                       const double *bias, const float *R, int C_in, int C_out, int H, int W) {
    const double eps = 1e-3;
    double maxerr = 0.0, maxg = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double keep = v[i];
        v[i] = keep + eps;
        double lp = conv_loss(inp, weight, bias, R, C_in, C_out, H, W);
        v[i] = keep - eps;
        double lm = conv_loss(inp, weight, bias, R, C_in, C_out, H, W);
        v[i] = keep;
        double fd = (lp - lm) / (2 * eps);
        if (fabs(fd - g[i]) > maxerr) maxerr = fabs(fd - g[i]);
        if (fabs(g[i]) > maxg) maxg = fabs(g[i]);
    }
    return maxerr / maxg;
}

static void test_reference_gradients(int C_in, int C_out, int H, int W) {
    unsigned long long st = 1234 + C_in * 7 + H;
    size_t ni = (size_t)C_in * H * W, no = (size_t)C_out * H * W, nw = (size_t)C_out * C_in * 9;
    float *inp = rand_array(ni, &st), *weight = rand_array(nw, &st), *bias = rand_array(C_out, &st);
    float *R = rand_array(no, &st);
    double *dinp = malloc(ni * sizeof(double)), *dw = malloc(nw * sizeof(double)), *db = malloc(C_out * sizeof(double));
    for (size_t i = 0; i < ni; i++) dinp[i] = inp[i];
    for (size_t i = 0; i < nw; i++) dw[i] = weight[i];
    for (int i = 0; i < C_out; i++) db[i] = bias[i];

    float *gi = malloc(ni * sizeof(float)), *gw = calloc(nw, sizeof(float)), *gb = calloc(C_out, sizeof(float));
    conv3x3_backward_input_ref(gi, R, weight, C_in, C_out, H, W);
    conv3x3_backward_weight_ref(gw, gb, R, inp, C_in, C_out, H, W);
    double e;
    e = fd_check(dinp, ni, gi, dinp, dw, db, R, C_in, C_out, H, W);
    CHECK(e < 1e-5, "dinp vs finite differences %d,%d,%d,%d: %g", C_in, C_out, H, W, e);
    e = fd_check(dw, nw, gw, dinp, dw, db, R, C_in, C_out, H, W);
    CHECK(e < 1e-5, "dweight vs finite differences %d,%d,%d,%d: %g", C_in, C_out, H, W, e);
    e = fd_check(db, C_out, gb, dinp, dw, db, R, C_in, C_out, H, W);
    CHECK(e < 1e-5, "dbias vs finite differences %d,%d,%d,%d: %g", C_in, C_out, H, W, e);

    /* "accumulates": a second call adds the same amount again */
    float *gw2 = malloc(nw * sizeof(float));
    memcpy(gw2, gw, nw * sizeof(float));
    conv3x3_backward_weight_ref(gw2, NULL, R, inp, C_in, C_out, H, W);
    for (size_t i = 0; i < nw; i++) gw[i] *= 2.0f;
    CHECK(rel_l2(gw2, gw, nw) < 1e-6, "backward_weight accumulates");

    /* the forward reference against the double loss: sum(out * R) */
    float *out = malloc(no * sizeof(float));
    conv3x3_forward_ref(out, inp, weight, bias, C_in, C_out, H, W);
    double L = 0.0;
    for (size_t i = 0; i < no; i++) L += (double)out[i] * R[i];
    double Ld = conv_loss(dinp, dw, db, R, C_in, C_out, H, W);
    CHECK(fabs(L - Ld) <= 1e-5 * (fabs(Ld) + 1.0), "forward_ref vs double: %g vs %g", L, Ld);

    free(inp); free(weight); free(bias); free(R); free(dinp); free(dw); free(db);
    free(gi); free(gw); free(gb); free(gw2); free(out);
}

/* The fast paths against the reference on one shape, with and without bias. */
static void test_fast_vs_ref(int C_in, int C_out, int H, int W) {
    unsigned long long st = 99 + (unsigned long long)C_in * 131 + C_out * 17 + H * 5 + W;
    size_t ni = (size_t)C_in * H * W, no = (size_t)C_out * H * W, nw = (size_t)C_out * C_in * 9;
    float *inp = rand_array(ni, &st), *weight = rand_array(nw, &st), *bias = rand_array(C_out, &st);
    float *dout = rand_array(no, &st);
    float *ref = malloc(no * sizeof(float)), *got = malloc(no * sizeof(float));
    float *dref = malloc(ni * sizeof(float)), *dgot = malloc(ni * sizeof(float));
    conv3x3_packed p;
    CHECK(conv3x3_pack(&p, weight, C_in, C_out, &env_tuning, NST_PRECISION_FP32) == 0, "pack");
    /* the dispatched path is Winograd here (unless NST_CONV=direct): its own tolerance */
    const double tol = have_winograd && C_in >= 64 && C_out >= 64 && p.tier == CPU_AVX512 && p.winograd ? WINO_TOL : 1e-6;

    for (int with_bias = 0; with_bias < 2; with_bias++) {
        const float *b = with_bias ? bias : NULL;
        conv3x3_forward_ref(ref, inp, weight, b, C_in, C_out, H, W);
        for (size_t i = 0; i < no; i++) got[i] = NAN; /* every output must be written */
        conv3x3_forward(got, inp, &p, b, H, W, NULL);
        double e = rel_l2(got, ref, no);
        CHECK(e < tol, "forward %s %d->%d %dx%d bias=%d: %g", conv3x3_kernel_name(&p), C_in, C_out, H, W, with_bias, e);
        for (size_t i = 0; i < no; i++) got[i] = NAN;
        conv3x3_forward_portable(got, inp, &p, b, H, W);
        e = rel_l2(got, ref, no);
        CHECK(e < 1e-6, "forward portable %d->%d %dx%d bias=%d: %g", C_in, C_out, H, W, with_bias, e);
        if (have_avx2) {
            for (size_t i = 0; i < no; i++) got[i] = NAN;
            conv3x3_forward_avx2(got, inp, &p, b, H, W);
            e = rel_l2(got, ref, no);
            CHECK(e < 1e-6, "forward avx2 %d->%d %dx%d bias=%d: %g", C_in, C_out, H, W, with_bias, e);
        }
    }
    conv3x3_backward_input_ref(dref, dout, weight, C_in, C_out, H, W);
    for (size_t i = 0; i < ni; i++) dgot[i] = NAN;
    conv3x3_backward_input(dgot, dout, &p, H, W, NULL);
    double e = rel_l2(dgot, dref, ni);
    CHECK(e < tol, "backward_input %s %d->%d %dx%d: %g", conv3x3_kernel_name(&p), C_in, C_out, H, W, e);
    for (size_t i = 0; i < ni; i++) dgot[i] = NAN;
    conv3x3_backward_input_portable(dgot, dout, &p, H, W);
    e = rel_l2(dgot, dref, ni);
    CHECK(e < 1e-6, "backward_input portable %d->%d %dx%d: %g", C_in, C_out, H, W, e);
    if (have_avx2) {
        for (size_t i = 0; i < ni; i++) dgot[i] = NAN;
        conv3x3_backward_input_avx2(dgot, dout, &p, H, W);
        e = rel_l2(dgot, dref, ni);
        CHECK(e < 1e-6, "backward_input avx2 %d->%d %dx%d: %g", C_in, C_out, H, W, e);
    }

    conv3x3_packed_free(&p);
    free(inp); free(weight); free(bias); free(dout); free(ref); free(got); free(dref); free(dgot);
}

/* The Winograd path against the reference on one shape: forward with and without bias,
 * backward to the input with and without the fused ReLU mask. */
static void test_winograd_vs_ref(int C_in, int C_out, int H, int W) {
    unsigned long long st = 5 + (unsigned long long)C_in * 31 + C_out * 7 + H * 3 + W;
    size_t ni = (size_t)C_in * H * W, no = (size_t)C_out * H * W, nw = (size_t)C_out * C_in * 9;
    float *inp = rand_array(ni, &st), *weight = rand_array(nw, &st), *bias = rand_array(C_out, &st);
    float *dout = rand_array(no, &st), *mask = rand_array(ni, &st);
    for (size_t i = 0; i < ni; i += 5) mask[i] = 0.0f; /* exact zeros count as "not > 0" */
    float *ref = malloc(no * sizeof(float)), *got = malloc(no * sizeof(float));
    float *dref = malloc(ni * sizeof(float)), *dgot = malloc(ni * sizeof(float));
    conv3x3_packed p;
    CHECK(conv3x3_pack(&p, weight, C_in, C_out, &env_tuning, NST_PRECISION_FP32) == 0, "pack");
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        const float *b = with_bias ? bias : NULL;
        conv3x3_forward_ref(ref, inp, weight, b, C_in, C_out, H, W);
        for (size_t i = 0; i < no; i++) got[i] = NAN; /* every output must be written */
        CHECK(conv3x3_forward_winograd(got, inp, &p, b, H, W) == 0, "winograd forward runs");
        double e = rel_l2(got, ref, no);
        if (!(e <= wino_worst)) wino_worst = e;
        CHECK(e < WINO_TOL, "forward winograd %d->%d %dx%d bias=%d: %g", C_in, C_out, H, W, with_bias, e);
    }
    conv3x3_backward_input_ref(dref, dout, weight, C_in, C_out, H, W);
    for (int with_mask = 0; with_mask < 2; with_mask++) {
        if (with_mask) relu_backward(dref, dref, mask, ni);
        for (size_t i = 0; i < ni; i++) dgot[i] = NAN;
        CHECK(conv3x3_backward_input_winograd(dgot, dout, &p, with_mask ? mask : NULL, H, W) == 0,
              "winograd backward runs");
        double e = rel_l2(dgot, dref, ni);
        if (!(e <= wino_worst)) wino_worst = e;
        CHECK(e < WINO_TOL, "backward_input winograd %d->%d %dx%d mask=%d: %g", C_in, C_out, H, W, with_mask, e);
    }
    conv3x3_packed_free(&p);
    free(inp); free(weight); free(bias); free(dout); free(mask); free(ref); free(got); free(dref); free(dgot);
}

/* The Winograd path: bit-identical run to run and for 1 vs 2 threads (work is split over
 * tile blocks and output channels, never over a sum), mask included. */
static void test_winograd_determinism(int C_in, int C_out, int H, int W) {
    unsigned long long st = 11;
    size_t ni = (size_t)C_in * H * W, no = (size_t)C_out * H * W, nw = (size_t)C_out * C_in * 9;
    float *inp = rand_array(ni, &st), *weight = rand_array(nw, &st), *bias = rand_array(C_out, &st);
    float *mask = rand_array(ni, &st);
    float *o1 = malloc(no * sizeof(float)), *o2 = malloc(no * sizeof(float)), *o3 = malloc(no * sizeof(float));
    float *d1 = malloc(ni * sizeof(float)), *d2 = malloc(ni * sizeof(float)), *d3 = malloc(ni * sizeof(float));
    conv3x3_packed p;
    CHECK(conv3x3_pack(&p, weight, C_in, C_out, &env_tuning, NST_PRECISION_FP32) == 0, "pack");
    int nt = omp_get_max_threads();
    omp_set_num_threads(2);
    conv3x3_forward_winograd(o1, inp, &p, bias, H, W);
    conv3x3_forward_winograd(o2, inp, &p, bias, H, W);
    conv3x3_backward_input_winograd(d1, o1, &p, mask, H, W);
    conv3x3_backward_input_winograd(d2, o1, &p, mask, H, W);
    omp_set_num_threads(1);
    conv3x3_forward_winograd(o3, inp, &p, bias, H, W);
    conv3x3_backward_input_winograd(d3, o1, &p, mask, H, W);
    omp_set_num_threads(nt);
    CHECK(memcmp(o1, o2, no * sizeof(float)) == 0, "forward winograd run to run %d->%d %dx%d", C_in, C_out, H, W);
    CHECK(memcmp(d1, d2, ni * sizeof(float)) == 0, "backward winograd run to run %d->%d %dx%d", C_in, C_out, H, W);
    CHECK(memcmp(o1, o3, no * sizeof(float)) == 0, "forward winograd 1 vs 2 threads %d->%d %dx%d", C_in, C_out, H, W);
    CHECK(memcmp(d1, d3, ni * sizeof(float)) == 0, "backward winograd 1 vs 2 threads %d->%d %dx%d", C_in, C_out, H, W);
    conv3x3_packed_free(&p);
    free(inp); free(weight); free(bias); free(mask); free(o1); free(o2); free(o3); free(d1); free(d2); free(d3);
}

/* The tuning's conv_direct: by default the dispatched paths are Winograd where it exists
 * (bit for bit), except the forward pass of 64 -> 64; conv_direct (NST_CONV=direct) gives
 * the direct kernel. */
static void test_winograd_dispatch(int C_in, int C_out, int H, int W) {
    unsigned long long st = 17;
    size_t ni = (size_t)C_in * H * W, no = (size_t)C_out * H * W, nw = (size_t)C_out * C_in * 9;
    float *inp = rand_array(ni, &st), *weight = rand_array(nw, &st), *bias = rand_array(C_out, &st);
    float *fw = malloc(no * sizeof(float)), *fd = malloc(no * sizeof(float)), *fx = malloc(no * sizeof(float));
    float *bw = malloc(ni * sizeof(float)), *bd = malloc(ni * sizeof(float)), *bx = malloc(ni * sizeof(float));
    conv3x3_packed p, pd;
    nst_tuning direct = {0};
    direct.conv_direct = 1;
    CHECK(conv3x3_pack(&p, weight, C_in, C_out, NULL, NST_PRECISION_FP32) == 0, "pack");
    CHECK(conv3x3_pack(&pd, weight, C_in, C_out, &direct, NST_PRECISION_FP32) == 0, "pack direct");
    CHECK(p.winograd && !pd.winograd && pd.tier == CPU_AVX512, "conv_direct packs the direct AVX-512 kernel");
    conv3x3_forward_winograd(fw, inp, &p, bias, H, W);
    conv3x3_backward_input_winograd(bw, fw, &p, NULL, H, W);
    conv3x3_forward(fd, inp, &pd, bias, H, W, NULL);
    conv3x3_backward_input(bd, fw, &pd, H, W, NULL);
    conv3x3_forward(fx, inp, &p, bias, H, W, NULL);
    conv3x3_backward_input(bx, fw, &p, H, W, NULL);
    int fwd_wino = C_in > 64 || C_out > 64;
    CHECK(memcmp(fx, fwd_wino ? fw : fd, no * sizeof(float)) == 0, "default forward %d->%d is %s", C_in, C_out,
          fwd_wino ? "winograd" : "direct");
    CHECK(memcmp(bx, bw, ni * sizeof(float)) == 0, "default backward %d->%d is winograd", C_in, C_out);
    CHECK(memcmp(fd, fw, no * sizeof(float)) != 0, "NST_CONV=direct forward %d->%d is not winograd", C_in, C_out);
    CHECK(memcmp(bd, bw, ni * sizeof(float)) != 0, "NST_CONV=direct backward %d->%d is not winograd", C_in, C_out);
    conv3x3_packed_free(&p);
    conv3x3_packed_free(&pd);
    free(inp); free(weight); free(bias); free(fw); free(fd); free(fx); free(bw); free(bd); free(bx);
}

/* conv3x3_forward / _backward_input, or with avx2 set the AVX2 path */
static void run_fwd(int avx2, float *out, const float *inp, const conv3x3_packed *p,
                    const float *bias, int H, int W) {
    if (avx2) conv3x3_forward_avx2(out, inp, p, bias, H, W);
    else conv3x3_forward(out, inp, p, bias, H, W, NULL);
}
static void run_bwd(int avx2, float *dinp, const float *dout, const conv3x3_packed *p, int H, int W) {
    if (avx2) conv3x3_backward_input_avx2(dinp, dout, p, H, W);
    else conv3x3_backward_input(dinp, dout, p, H, W, NULL);
}

/* Two runs, and 1 vs 2 threads, give bit-identical outputs (work is split over output
 * channels and rows only, so the thread count does not change any sum). avx2: test
 * the AVX2 path instead of the dispatched one. */
static void test_determinism(int C_in, int C_out, int H, int W, int avx2) {
    const char *name = avx2 ? "avx2" : cpu_tier_name(cpu_kernel_tier(env_tuning.kernel));
    unsigned long long st = 7;
    size_t ni = (size_t)C_in * H * W, no = (size_t)C_out * H * W, nw = (size_t)C_out * C_in * 9;
    float *inp = rand_array(ni, &st), *weight = rand_array(nw, &st), *bias = rand_array(C_out, &st);
    float *o1 = malloc(no * sizeof(float)), *o2 = malloc(no * sizeof(float)), *o3 = malloc(no * sizeof(float));
    float *d1 = malloc(ni * sizeof(float)), *d2 = malloc(ni * sizeof(float)), *d3 = malloc(ni * sizeof(float));
    conv3x3_packed p;
    CHECK(conv3x3_pack(&p, weight, C_in, C_out, &env_tuning, NST_PRECISION_FP32) == 0, "pack");
    int nt = omp_get_max_threads();
    omp_set_num_threads(2);
    run_fwd(avx2, o1, inp, &p, bias, H, W);
    run_fwd(avx2, o2, inp, &p, bias, H, W);
    run_bwd(avx2, d1, o1, &p, H, W);
    run_bwd(avx2, d2, o1, &p, H, W);
    omp_set_num_threads(1);
    run_fwd(avx2, o3, inp, &p, bias, H, W);
    run_bwd(avx2, d3, o1, &p, H, W);
    omp_set_num_threads(nt);
    CHECK(memcmp(o1, o2, no * sizeof(float)) == 0, "forward %s run to run %d->%d", name, C_in, C_out);
    CHECK(memcmp(d1, d2, ni * sizeof(float)) == 0, "backward %s run to run %d->%d", name, C_in, C_out);
    CHECK(memcmp(o1, o3, no * sizeof(float)) == 0, "forward %s 1 vs 2 threads %d->%d", name, C_in, C_out);
    CHECK(memcmp(d1, d3, ni * sizeof(float)) == 0, "backward %s 1 vs 2 threads %d->%d", name, C_in, C_out);
    conv3x3_packed_free(&p);
    free(inp); free(weight); free(bias); free(o1); free(o2); free(o3); free(d1); free(d2); free(d3);
}

/* The tuning's kernel caps the dispatch of the weights packed with it: portable always
 * works, avx2 where the CPU has it, BEST is the best; the forward pass then equals that
 * path's. (nst_tuning_from_env's parsing of NST_KERNEL: test_tuning.c.) */
static void test_kernel_override(void) {
    const char *best = cpu_tier_name(cpu_best_tier());
    unsigned long long st = 3;
    const int C_in = 5, C_out = 6, H = 7, W = 19;
    size_t ni = (size_t)C_in * H * W, no = (size_t)C_out * H * W;
    float *inp = rand_array(ni, &st), *weight = rand_array((size_t)C_out * C_in * 9, &st);
    float *o1 = malloc(no * sizeof(float)), *o2 = malloc(no * sizeof(float));
    conv3x3_packed p;
    nst_tuning t = {0};

    t.kernel = NST_KERNEL_PORTABLE;
    CHECK(conv3x3_pack(&p, weight, C_in, C_out, &t, NST_PRECISION_FP32) == 0, "pack");
    CHECK(strcmp(conv3x3_kernel_name(&p), "portable") == 0, "kernel portable: %s", conv3x3_kernel_name(&p));
    conv3x3_forward(o1, inp, &p, NULL, H, W, NULL);
    conv3x3_forward_portable(o2, inp, &p, NULL, H, W);
    CHECK(memcmp(o1, o2, no * sizeof(float)) == 0, "kernel portable runs the portable path");
    conv3x3_packed_free(&p);

    t.kernel = NST_KERNEL_AVX2;
    CHECK(conv3x3_pack(&p, weight, C_in, C_out, &t, NST_PRECISION_FP32) == 0, "pack");
    CHECK(strcmp(conv3x3_kernel_name(&p), have_avx2 ? "avx2" : "portable") == 0, "kernel avx2: %s",
          conv3x3_kernel_name(&p));
    if (have_avx2) {
        conv3x3_forward(o1, inp, &p, NULL, H, W, NULL);
        conv3x3_forward_avx2(o2, inp, &p, NULL, H, W);
        CHECK(memcmp(o1, o2, no * sizeof(float)) == 0, "kernel avx2 runs the avx2 path");
    }
    conv3x3_packed_free(&p);

    t.kernel = NST_KERNEL_BEST;
    CHECK(conv3x3_pack(&p, weight, C_in, C_out, &t, NST_PRECISION_FP32) == 0, "pack");
    CHECK(strcmp(conv3x3_kernel_name(&p), best) == 0, "kernel best: %s", conv3x3_kernel_name(&p));
    conv3x3_packed_free(&p);
    CHECK(conv3x3_pack(&p, weight, C_in, C_out, NULL, NST_PRECISION_FP32) == 0, "pack");
    CHECK(strcmp(conv3x3_kernel_name(&p), best) == 0, "no tuning: %s", conv3x3_kernel_name(&p));
    conv3x3_packed_free(&p);
    free(inp); free(weight); free(o1); free(o2);
}

/* The fused backward-with-ReLU-mask equals the backward followed by relu_backward,
 * bit for bit, on every path (AVX-512 fuses in registers; the others mask afterwards). */
static void test_backward_relu_fused(int C_in, int C_out, int H, int W) {
    unsigned long long st = 99;
    size_t ni = (size_t)C_in * H * W, no = (size_t)C_out * H * W;
    float *wt = rand_array((size_t)C_out * C_in * 9, &st), *dout = rand_array(no, &st);
    float *mask = rand_array(ni, &st), *a = malloc(ni * 4), *b = malloc(ni * 4);
    for (size_t i = 0; i < ni; i += 7) mask[i] = 0.0f; /* exact zeros count as "not > 0" */
    conv3x3_packed p;
    CHECK(conv3x3_pack(&p, wt, C_in, C_out, &env_tuning, NST_PRECISION_FP32) == 0, "pack");
    conv3x3_backward_input(a, dout, &p, H, W, NULL);
    relu_backward(a, a, mask, ni);
    conv3x3_backward_input_relu(b, dout, &p, mask, H, W, NULL);
    CHECK(memcmp(a, b, ni * 4) == 0, "fused relu backward differs (%d,%d,%d,%d)", C_in, C_out, H, W);
    conv3x3_packed_free(&p);
    free(wt); free(dout); free(mask); free(a); free(b);
}

/* The forward pass with the ReLU fused in equals the forward pass followed by
 * relu_forward, bit for bit: direct and Winograd kernels (AVX-512 fuse it into their
 * stores), and the portable path (a second pass). */
static void test_forward_relu_fused(int C_in, int C_out, int H, int W, const char *kernel) {
    unsigned long long st = 7;
    size_t ni = (size_t)C_in * H * W, no = (size_t)C_out * H * W;
    float *wt = rand_array((size_t)C_out * C_in * 9, &st), *bias = rand_array(C_out, &st);
    float *inp = rand_array(ni, &st), *a = malloc(no * 4), *b = malloc(no * 4);
    nst_tuning t = env_tuning;
    if (kernel) t.kernel = NST_KERNEL_PORTABLE; /* the one kernel asked for below */
    conv3x3_packed p;
    CHECK(conv3x3_pack(&p, wt, C_in, C_out, &t, NST_PRECISION_FP32) == 0, "pack");
    conv3x3_forward(a, inp, &p, bias, H, W, NULL);
    size_t neg = 0;
    for (size_t i = 0; i < no; i++) neg += a[i] < 0.0f;
    relu_forward(a, a, no);
    conv3x3_forward_relu(b, inp, &p, bias, H, W, NULL);
    CHECK(neg > no / 4 && neg < no - no / 4, "forward relu test needs both signs (%zu of %zu negative)", neg, no);
    CHECK(memcmp(a, b, no * 4) == 0, "fused relu forward differs (%d,%d,%d,%d, %s)", C_in, C_out, H, W,
          conv3x3_kernel_name(&p));
    conv3x3_packed_free(&p);
    free(wt); free(bias); free(inp); free(a); free(b);
}

/* A lean pack (no direct packs where Winograd runs) gives the same bits as a full one;
 * when a direct pass is needed anyway (the pack's tier lowered by hand here, as no
 * tuning can after packing), it falls back to the reference convolution, bit for bit. */
static void test_lean_pack(int C_in, int C_out, int H, int W) {
    unsigned long long st = 5;
    size_t ni = (size_t)C_in * H * W, no = (size_t)C_out * H * W;
    float *wt = rand_array((size_t)C_out * C_in * 9, &st), *bias = rand_array(C_out, &st);
    float *inp = rand_array(ni, &st), *dout = rand_array(no, &st), *mask = rand_array(ni, &st);
    float *a = malloc(no * 4), *b = malloc(no * 4), *da = malloc(ni * 4), *db = malloc(ni * 4);
    conv3x3_packed full, lean;
    CHECK(conv3x3_pack(&full, wt, C_in, C_out, &env_tuning, NST_PRECISION_FP32) == 0 && conv3x3_pack_lean(&lean, wt, C_in, C_out, &env_tuning, NST_PRECISION_FP32) == 0, "pack");
    if (have_winograd && lean.tier == CPU_AVX512 && lean.winograd && C_in >= 64 && C_out >= 64)
        CHECK(lean.bwd == NULL, "lean pack (%d,%d) keeps no backward direct pack", C_in, C_out);
    conv3x3_forward_relu(a, inp, &full, bias, H, W, NULL);
    conv3x3_forward_relu(b, inp, &lean, bias, H, W, NULL);
    CHECK(memcmp(a, b, no * 4) == 0, "lean forward differs (%d,%d,%d,%d)", C_in, C_out, H, W);
    conv3x3_backward_input_relu(da, dout, &full, mask, H, W, NULL);
    conv3x3_backward_input_relu(db, dout, &lean, mask, H, W, NULL);
    CHECK(memcmp(da, db, ni * 4) == 0, "lean backward differs (%d,%d,%d,%d)", C_in, C_out, H, W);
    lean.tier = CPU_PORTABLE;
    conv3x3_forward(b, inp, &lean, bias, H, W, NULL);
    conv3x3_forward_ref(a, inp, wt, bias, C_in, C_out, H, W);
    if (lean.fwd == NULL) CHECK(memcmp(a, b, no * 4) == 0, "lean forward fallback is not the reference");
    else CHECK(rel_l2(b, a, no) < 1e-5, "lean forward with its direct pack");
    conv3x3_backward_input(db, dout, &lean, H, W, NULL);
    conv3x3_backward_input_ref(da, dout, wt, C_in, C_out, H, W);
    if (lean.bwd == NULL) CHECK(memcmp(da, db, ni * 4) == 0, "lean backward fallback is not the reference");
    conv3x3_packed_free(&full);
    conv3x3_packed_free(&lean);
    free(wt); free(bias); free(inp); free(dout); free(mask); free(a); free(b); free(da); free(db);
}

/* ---- bf16 ------------------------------------------------------------------------- */

static cpu_bf16_tier bf16_tier; /* set in main: the bf16 kernels that run here (BF16_NONE: none) */
static double bf16_worst;       /* the worst relative L2 error of a bf16 pass against fp32 */

/* The bf16 pack's passes against the model of their rounding (to fp32 summation error:
 * they compute exactly what they claim) and against the fp32 reference (the error bf16
 * costs, kept in bf16_worst and bounded by BF16_TOL), every fusion included. */
#define BF16_MODEL_TOL 1e-5
#define BF16_TOL 1.5e-2
static void test_bf16_vs_model(int C_in, int C_out, int H, int W) {
    unsigned long long st = 77 + (unsigned long long)C_in * 13 + C_out * 5 + H * 3 + W;
    size_t ni = (size_t)C_in * H * W, no = (size_t)C_out * H * W, nw = (size_t)C_out * C_in * 9;
    float *inp = rand_array(ni, &st), *weight = rand_array(nw, &st), *bias = rand_array(C_out, &st);
    float *dout = rand_array(no, &st), *mask = rand_array(ni, &st);
    for (size_t i = 0; i < ni; i += 5) mask[i] = 0.0f;
    float *ref = malloc(no * sizeof(float)), *got = malloc(no * sizeof(float));
    float *dref = malloc(ni * sizeof(float)), *dgot = malloc(ni * sizeof(float));
    double *model = malloc(no * sizeof(double)), *dmodel = malloc(ni * sizeof(double));
    conv3x3_packed p;
    nst_tuning t = env_tuning;
    t.conv_direct = 0;
    CHECK(conv3x3_pack_lean(&p, weight, C_in, C_out, &t, NST_PRECISION_BF16) == 0, "pack bf16");
    CHECK(p.bf16 == bf16_tier && p.wino16_fwd && p.wino16_bwd && !p.fwd && !p.bwd && !p.wino_fwd,
          "bf16 lean pack %d->%d: bf16 transforms only (%s)", C_in, C_out, conv3x3_kernel_name(&p));
    wino_bf16_model(model, inp, weight, C_in, C_in, C_out, H, W, 0);
    conv3x3_forward_ref(ref, inp, weight, NULL, C_in, C_out, H, W);
    for (int relu = 0; relu < 2; relu++) {
        for (size_t i = 0; i < no; i++) got[i] = NAN;
        if (relu) conv3x3_forward_relu(got, inp, &p, bias, H, W, NULL);
        else conv3x3_forward(got, inp, &p, NULL, H, W, NULL);
        double em = 0, er = 0;
        if (!relu) {
            em = rel_l2_d(got, model, no);
            er = rel_l2(got, ref, no);
        } else { /* the model and the reference with the bias and the ReLU */
            double *mb = malloc(no * sizeof(double));
            float *rb = malloc(no * sizeof(float));
            for (int o = 0; o < C_out; o++)
                for (size_t k = 0; k < (size_t)H * W; k++) {
                    size_t i = (size_t)o * H * W + k;
                    double v = model[i] + bias[o];
                    float r = ref[i] + bias[o];
                    mb[i] = v > 0 ? v : 0;
                    rb[i] = r > 0 ? r : 0;
                }
            em = rel_l2_d(got, mb, no);
            er = rel_l2(got, rb, no);
            free(mb);
            free(rb);
        }
        if (!(er <= bf16_worst)) bf16_worst = er;
        CHECK(em < BF16_MODEL_TOL, "bf16 forward %d->%d %dx%d relu=%d against its model: %g", C_in, C_out, H, W, relu, em);
        CHECK(er < BF16_TOL, "bf16 forward %d->%d %dx%d relu=%d against fp32: %g", C_in, C_out, H, W, relu, er);
    }
    wino_bf16_model(dmodel, dout, weight, C_in, C_out, C_in, H, W, 1);
    conv3x3_backward_input_ref(dref, dout, weight, C_in, C_out, H, W);
    for (int with_mask = 0; with_mask < 2; with_mask++) {
        if (with_mask) {
            relu_backward(dref, dref, mask, ni);
            for (size_t i = 0; i < ni; i++)
                if (!(mask[i] > 0)) dmodel[i] = 0;
        }
        for (size_t i = 0; i < ni; i++) dgot[i] = NAN;
        if (with_mask) conv3x3_backward_input_relu(dgot, dout, &p, mask, H, W, NULL);
        else conv3x3_backward_input(dgot, dout, &p, H, W, NULL);
        double em = rel_l2_d(dgot, dmodel, ni), er = rel_l2(dgot, dref, ni);
        if (!(er <= bf16_worst)) bf16_worst = er;
        CHECK(em < BF16_MODEL_TOL, "bf16 backward %d->%d %dx%d mask=%d against its model: %g", C_in, C_out, H, W, with_mask, em);
        CHECK(er < BF16_TOL, "bf16 backward %d->%d %dx%d mask=%d against fp32: %g", C_in, C_out, H, W, with_mask, er);
    }
    /* bit-identical for 1 and 2 threads */
    int nth = omp_get_max_threads();
    conv3x3_forward(got, inp, &p, bias, H, W, NULL);
    omp_set_num_threads(1);
    conv3x3_forward(ref, inp, &p, bias, H, W, NULL);
    omp_set_num_threads(nth);
    CHECK(memcmp(got, ref, no * sizeof(float)) == 0, "bf16 forward %d->%d %dx%d: same bits on 1 and %d threads", C_in,
          C_out, H, W, nth);
    conv3x3_packed_free(&p);
    free(inp); free(weight); free(bias); free(dout); free(mask); free(ref); free(got); free(dref); free(dgot);
    free(model); free(dmodel);
}

/* Layers that bf16 does not cover stay fp32; fp32 and unsupported CPUs pack no bf16. */
static void test_bf16_pack_choice(void) {
    float *w = calloc(64 * 64 * 9, sizeof(float));
    conv3x3_packed p;
    CHECK(conv3x3_pack_lean(&p, w, 3, 64, NULL, NST_PRECISION_BF16) == 0 && p.bf16 == BF16_NONE && !p.wino16_fwd,
          "3 -> 64 stays fp32 in a bf16 run");
    conv3x3_packed_free(&p);
    CHECK(conv3x3_pack_lean(&p, w, 64, 64, NULL, NST_PRECISION_FP32) == 0 && p.bf16 == BF16_NONE && !p.wino16_fwd,
          "fp32 packs no bf16");
    conv3x3_packed_free(&p);
    nst_tuning t = {0};
    t.kernel = NST_KERNEL_AVX512;
    CHECK(conv3x3_pack_lean(&p, w, 64, 64, &t, NST_PRECISION_BF16) == 0 && p.bf16 == BF16_NONE && !p.wino16_fwd,
          "NST_KERNEL=avx512 rules bf16 out");
    conv3x3_packed_free(&p);
    t.kernel = NST_KERNEL_AVX512_BF16;
    CHECK(conv3x3_pack_lean(&p, w, 64, 64, &t, NST_PRECISION_BF16) == 0 &&
              p.bf16 == (bf16_tier ? BF16_AVX512 : BF16_NONE),
          "NST_KERNEL=avx512bf16: AVX512-BF16 (%s)", cpu_bf16_name(p.bf16));
    conv3x3_packed_free(&p);
    nst_precision r = NST_PRECISION_FP32;
    nst_error err;
    CHECK(nst_precision_resolve_cpu(NST_PRECISION_AUTO, NULL, &r, &err) == NST_OK &&
              r == (bf16_tier ? NST_PRECISION_BF16 : NST_PRECISION_FP32),
          "auto: bf16 exactly where the CPU has it");
    CHECK((nst_precision_resolve_cpu(NST_PRECISION_BF16, NULL, &r, &err) == NST_OK) == (bf16_tier != BF16_NONE),
          "bf16 refused exactly where the CPU lacks it");
    CHECK(nst_precision_resolve_cpu(NST_PRECISION_BF16, &t, &r, &err) == (bf16_tier ? NST_OK : NST_ERR_ARG), "bf16 with avx512bf16");
    t.kernel = NST_KERNEL_AVX512;
    CHECK(nst_precision_resolve_cpu(NST_PRECISION_BF16, &t, &r, &err) == NST_ERR_ARG && strstr(err.msg, "bf16"),
          "bf16 with NST_KERNEL=avx512 refused: %s", err.msg);
    CHECK(nst_precision_resolve_cpu(NST_PRECISION_AUTO, &t, &r, &err) == NST_OK && r == NST_PRECISION_FP32,
          "auto with NST_KERNEL=avx512: fp32");
    CHECK(nst_precision_resolve_cpu(NST_PRECISION_TF32, NULL, &r, &err) == NST_OK && r == NST_PRECISION_FP32,
          "tf32 is CUDA's: fp32 on the CPU");
    free(w);
}

int main(void) {
    nst_error terr;
    nst_tuning_from_env(&env_tuning, &terr); /* NST_KERNEL=portable ./test_conv tests that path */
    printf("conv3x3 kernel: %s\n", cpu_tier_name(cpu_kernel_tier(env_tuning.kernel)));
    {
        /* probe: does the AVX2 path run on this CPU? */
        conv3x3_packed p;
        float wt[9] = {0}, x = 1.0f, y;
        CHECK(conv3x3_pack(&p, wt, 1, 1, &env_tuning, NST_PRECISION_FP32) == 0, "pack 1x1");
        have_avx2 = conv3x3_forward_avx2(&y, &x, &p, NULL, 1, 1) == 0;
        conv3x3_packed_free(&p);
        if (!have_avx2) printf("note: no AVX2+FMA on this CPU (or not x86-64): AVX2 path not tested\n");
    }

    {
        /* probe: does the Winograd path run here (AVX-512; channels >= 64)? */
        conv3x3_packed p;
        float *wt = calloc(64 * 64 * 9, sizeof(float)), *x = calloc(64, sizeof(float)), *y = calloc(64, sizeof(float));
        CHECK(conv3x3_pack(&p, wt, 64, 64, &env_tuning, NST_PRECISION_FP32) == 0, "pack 64x64");
        have_winograd = conv3x3_forward_winograd(y, x, &p, NULL, 1, 1) == 0;
        conv3x3_packed_free(&p);
        free(wt); free(x); free(y);
        if (!have_winograd) printf("note: no AVX-512 on this CPU: Winograd path not tested\n");
    }

    test_reference_gradients(3, 5, 5, 4);
    test_reference_gradients(2, 3, 1, 6);
    test_reference_gradients(4, 2, 7, 1);

    static const int shapes[][4] = {
        /* C_in, C_out, H, W */
        {1, 1, 1, 1},     {3, 3, 1, 1},     {3, 5, 1, 7},     {5, 3, 5, 3},     {17, 5, 13, 17},
        {3, 64, 13, 17},  {64, 3, 13, 17},  {3, 64, 32, 32},  {64, 3, 64, 64},  {64, 17, 5, 3},
        {17, 64, 7, 1},   {16, 20, 2, 33},  {33, 40, 6, 47},  {64, 64, 32, 32}, {64, 64, 64, 64},
        {128, 128, 13, 17}, {64, 128, 7, 33}, {128, 64, 16, 16}, {130, 6, 9, 15},
        {256, 256, 14, 14}, {512, 512, 5, 3}, {300, 260, 3, 30},
    };
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
        test_fast_vs_ref(shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3]);

    for (int avx2 = 0; avx2 <= have_avx2; avx2++) {
        test_determinism(64, 64, 29, 37, avx2);
        test_determinism(3, 64, 20, 20, avx2);
        test_determinism(64, 3, 20, 20, avx2);
        test_determinism(200, 20, 11, 30, avx2); /* two channel blocks (CONV_CB = 128) */
    }
    if (have_winograd) {
        static const int wshapes[][4] = {
            /* C_in, C_out, H, W: odd and even sizes, one tile, partial tile rows/columns,
             * tile rows shorter than a 16-tile vector, channel counts not multiples of 8 */
            {64, 64, 1, 1},    {64, 64, 1, 2},    {64, 64, 2, 1},     {64, 64, 3, 3},
            {64, 64, 2, 2},    {64, 64, 5, 64},   {64, 64, 64, 5},    {64, 64, 7, 9},
            {64, 64, 32, 32},  {64, 64, 33, 31},  {64, 64, 64, 64},   {64, 128, 7, 33},
            {128, 64, 16, 16}, {128, 128, 13, 17}, {128, 256, 28, 28}, {256, 128, 14, 15},
            {256, 256, 14, 14}, {256, 512, 9, 11}, {512, 256, 8, 8},  {512, 512, 5, 3},
            {512, 512, 14, 14}, {300, 260, 3, 30}, {65, 71, 19, 23},  {72, 200, 37, 1},
            {96, 64, 1, 45},   {64, 64, 63, 61},
        };
        for (size_t s = 0; s < sizeof(wshapes) / sizeof(wshapes[0]); s++)
            test_winograd_vs_ref(wshapes[s][0], wshapes[s][1], wshapes[s][2], wshapes[s][3]);
        printf("winograd: worst relative L2 error vs reference %.3g (tolerance %g)\n", wino_worst, WINO_TOL);
        test_winograd_determinism(64, 64, 29, 37);
        test_winograd_determinism(128, 72, 64, 64);
        test_winograd_determinism(512, 512, 7, 7);
        test_winograd_determinism(200, 136, 3, 50);
        if (cpu_best_tier() == CPU_AVX512) {
            test_winograd_dispatch(64, 64, 20, 21);
            test_winograd_dispatch(128, 64, 20, 21);
        }
    }
    test_kernel_override();
    test_lean_pack(64, 64, 13, 11);   /* conv1_2's shape: forward stays direct */
    test_lean_pack(64, 128, 9, 14);   /* Winograd both ways */
    test_lean_pack(3, 64, 7, 9);      /* no Winograd: a full pack */
    test_lean_pack(72, 66, 5, 6);     /* C_in a multiple of 8, C_out not */
    test_backward_relu_fused(64, 64, 29, 37);
    test_backward_relu_fused(3, 64, 13, 17);   /* the conv1_1 shape: mask of 3 channels */
    test_backward_relu_fused(130, 200, 6, 47); /* two channel blocks, remainders */
    static const int rshapes[][4] = {
        /* direct (3->64, 64->64), Winograd (64->128, 256->256), two channel blocks */
        {3, 64, 13, 17}, {64, 64, 29, 37}, {64, 128, 14, 15}, {256, 256, 7, 9}, {200, 130, 6, 47},
    };
    for (size_t s = 0; s < sizeof(rshapes) / sizeof(rshapes[0]); s++) {
        test_forward_relu_fused(rshapes[s][0], rshapes[s][1], rshapes[s][2], rshapes[s][3], NULL);
        test_forward_relu_fused(rshapes[s][0], rshapes[s][1], rshapes[s][2], rshapes[s][3], "portable");
    }

    bf16_tier = cpu_bf16_kernel(env_tuning.kernel);
    test_bf16_pack_choice();
    if (bf16_tier) {
        printf("bf16 kernels: %s\n", cpu_bf16_name(bf16_tier));
        static const int bshapes[][4] = {
            /* C_in, C_out, H, W: the VGG19 shapes scaled down, odd sizes, partial tiles and
             * vectors, channel counts not multiples of 8 and odd (a missing pair half) */
            {64, 64, 1, 1},   {64, 64, 3, 3},    {64, 64, 33, 31},  {64, 128, 7, 33}, {128, 64, 16, 16},
            {65, 67, 9, 13},  {128, 256, 28, 28}, {256, 256, 14, 14}, {512, 512, 5, 3}, {77, 130, 6, 47},
        };
        for (size_t s = 0; s < sizeof(bshapes) / sizeof(bshapes[0]); s++)
            test_bf16_vs_model(bshapes[s][0], bshapes[s][1], bshapes[s][2], bshapes[s][3]);
        printf("bf16: worst relative L2 error vs the fp32 reference %.3g (tolerance %g)\n", bf16_worst, BF16_TOL);
    } else {
        printf("note: no AVX512-BF16 or AMX-BF16 here (or NST_KERNEL rules them out): bf16 kernels not tested\n");
    }

    /* empty pack / free round trip is safe twice */
    conv3x3_packed p;
    float wt[9] = {0};
    CHECK(conv3x3_pack(&p, wt, 1, 1, &env_tuning, NST_PRECISION_FP32) == 0, "pack 1x1");
    conv3x3_packed_free(&p);
    conv3x3_packed_free(&p);
    CHECK(p.fwd == NULL && p.bwd == NULL, "free clears");
    TEST_DONE();
}
