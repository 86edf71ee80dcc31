/* test_cuda_johnson.c - the fast-style network on CUDA against the CPU:
 *   - each GPU layer (reflection pad, fused upsample + pad, instance norm +ReLU +skip,
 *     inference's norm fused with the next padding (bit-identical to the two), sigmoid,
 *     bias, the cuDNN convolutions of every K/stride the network uses, Adam), forward
 *     and backward, against the CPU's definitions (tensor/layers.c, conv2d_*_ref,
 *     optim/adam.c) on batches of 2, odd sizes and awkward data (the output layer's
 *     geometry, 9x9/1 to at most 4 channels, runs on own kernels: forward, backward-data
 *     and the weight gradient, at 1e-5 like cuDNN's); the fp16 inference kernels (NHWC,
 *     padded channels; the fused 9x9 output layer + sigmoid) against the same expressions
 *     on the host;
 *   - each GPU layer's backward against central finite differences of its GPU forward;
 *   - the whole network, forward and backward on a batch, against the CPU's per-image
 *     loop, at three widths and sizes, with the ReLUs on and off; twice on the GPU gives
 *     the same bits;
 *   - nst_style_net_apply on CUDA against the CPU on odd sizes (1x1 included), fp32,
 *     TF32 and fp16 (inference in fp16 NHWC, also checked on every network above), and
 *     bit-identical when repeated;
 *   - training: the first step's losses and gradients on CUDA against the CPU's; steps
 *     replayed from a CUDA graph against steps run call by call (the same bits); a short
 *     CUDA run whose loss must fall below 60% of its start; a CUDA run stopped and resumed
 *     ending with the same parameters, bit for bit, as a straight one.
 * Tolerances (fp32): layers 1e-5 relative L2 (1e-6 where only the order of a few additions
 * differs); the network's output 1e-4. Its gradients: 1e-3 with every ReLU off (a smooth
 * network: float rounding through 16 layers in a different order), 1e-2 with the ReLUs
 * on. There, a pre-activation within rounding of 0 takes the other side of the kink on
 * the GPU (millions of ReLU units, a few flip), and with a random (zero-mean) output
 * gradient a parameter's gradient is a heavily cancelling sum over ~N*H*W pixels, so one
 * flipped pixel moves it by ~1/sqrt(N*H*W) relative: measured 1.6e-3 (w16, 132x100) and
 * 3e-3 (w32, 256x256) on an H100, while every layer alone agrees to 2.5e-7. The test
 * prints the CPU's own sensitivity (its gradients' change for a 1e-6 relative change of
 * the input) beside it. TF32: outputs 2e-2 to 3e-2, gradients 5e-2 smooth and 0.1 with
 * the ReLUs (~1e-3 rounding per convolution: many more flips; measured 0.06).
 * Without CUDA in the build, or without a GPU, it prints "SKIP: <reason>" and exits 77. */
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "nst.h"

#ifndef NST_HAVE_CUDA
int main(void) {
    printf("SKIP: this nst was built without CUDA\n");
    return 77;
}
#else

#include "test_util.h"

#include "cuda/cuda_common.h"
#include "cuda/stylenet_cuda.h"
#include "cuda/layers_cuda.h"
#include "net/stylenet.h"
#include "optim/optim.h"
#include "tensor/conv2d.h"
#include "tensor/layers.h"
#include "transfer/stylenet_train.h"

static nst_cuda *ctx;
static nst_error err;
static unsigned long long rng = 11;

static void fill(float *a, size_t n, float scale, float offset) {
    for (size_t i = 0; i < n; i++) a[i] = offset + scale * test_rand(&rng);
}

static float *host(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) { fprintf(stderr, "out of memory\n"); exit(1); }
    return p;
}

static void ok(nst_status s, const char *what) {
    if (s == NST_OK) return;
    fprintf(stderr, "FAIL %s: %s\n", what, err.msg);
    exit(1);
}

static float *dev(size_t n) {
    float *p = NULL;
    ok(cu_buffer(ctx, &p, n ? n : 1, &err), "cu_buffer");
    return p;
}
static void up(float *d, const float *h, size_t n) { ok(cu_upload(ctx, d, h, n, &err), "upload"); }
static void down(float *h, const float *d, size_t n) { ok(cu_download(ctx, h, d, n, &err), "download"); }
static float *dev_from(const float *h, size_t n) {
    float *d = dev(n);
    up(d, h, n);
    return d;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* GPU result g against the CPU's c */
static void compare(const char *what, const float *g, const float *c, size_t n, double tol) {
    double e = rel_l2(g, c, n);
    CHECK(e <= tol, "%s: GPU vs CPU rel L2 %.3g > %.3g", what, e, tol);
    printf("  %-52s rel L2 %.2e  max |diff| %.2e\n", what, e, max_abs_diff(g, c, n));
}

static double dotd(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* ---- layers against the CPU --------------------------------------------------------- */

static void test_pad(void) {
    static const int cfg[][4] = {{5, 7, 2, 0}, {6, 9, 4, 0}, {3, 4, 1, 1}, {3, 5, 4, 1}, {1, 1, 0, 1}};
    int N = 2, C = 3, NC = N * C;
    for (int k = 0; k < 5; k++) {
        int H = cfg[k][0], W = cfg[k][1], p = cfg[k][2], u = cfg[k][3];
        int Hs = H << u, Ws = W << u, Ho = Hs + 2 * p, Wo = Ws + 2 * p;
        size_t ni = (size_t)NC * H * W, no = (size_t)NC * Ho * Wo, nu = (size_t)NC * Hs * Ws;
        float *x = host(ni), *g = host(no), *y = host(no), *yc = host(no), *dx = host(ni), *dxc = host(ni), *tmp = host(nu);
        fill(x, ni, 1, 0);
        fill(g, no, 1, 0);
        if (u) {
            upsample2x_reflect_pad_forward(yc, x, NC, H, W, p);
            reflect_pad_backward(tmp, g, NC, Hs, Ws, p);
            upsample2x_backward(dxc, tmp, NC, H, W);
        } else {
            reflect_pad_forward(yc, x, NC, H, W, p);
            reflect_pad_backward(dxc, g, NC, H, W, p);
        }
        float *dX = dev_from(x, ni), *dG = dev_from(g, no), *dY = dev(no), *dDX = dev(ni);
        if (u) {
            ok(cu_upsample2x_reflect_pad_forward(ctx, dY, dX, NC, H, W, p, &err), "up+pad");
            ok(cu_upsample2x_reflect_pad_backward(ctx, dDX, dG, NC, H, W, p, &err), "up+pad backward");
        } else {
            ok(cu_reflect_pad_forward(ctx, dY, dX, NC, H, W, p, &err), "pad");
            ok(cu_reflect_pad_backward(ctx, dDX, dG, NC, H, W, p, &err), "pad backward");
        }
        down(y, dY, no);
        down(dx, dDX, ni);
        char what[96];
        snprintf(what, sizeof what, "%s %dx%d p%d: forward (exact)", u ? "upsample+pad" : "reflect pad", W, H, p);
        CHECK(memcmp(y, yc, no * sizeof(float)) == 0, "%s", what);
        snprintf(what, sizeof what, "%s %dx%d p%d: backward", u ? "upsample+pad" : "reflect pad", W, H, p);
        compare(what, dx, dxc, ni, 1e-6);
        cu_buffer_free(dX); cu_buffer_free(dG); cu_buffer_free(dY); cu_buffer_free(dDX);
        free(x); free(g); free(y); free(yc); free(dx); free(dxc); free(tmp);
    }
}

/* instance norm on a batch of N against the CPU's, image by image */
static void norm_case(int N, int C, int HW, int relu, int skip, int awkward) {
    size_t n = (size_t)N * C * HW;
    float *x = host(n), *s = host(n), *g = host(n), *gamma = host(C), *beta = host(C);
    float *y = host(n), *yc = host(n), *m = host(N * C), *mc = host(N * C), *r = host(N * C), *rc = host(N * C);
    float *dx = host(n), *dxc = host(n), *dg = host(C), *dgc = host(C), *db = host(C), *dbc = host(C);
    fill(x, n, 2, 0.5f);
    fill(s, n, 1, 0);
    fill(g, n, 1, 0);
    fill(gamma, C, 0.5f, 1);
    fill(beta, C, 0.3f, 0);
    if (awkward && C >= 3) { /* a large offset, a constant channel, a tiny one */
        for (int i = 0; i < HW; i++) x[i] += 1000.0f, x[HW + i] = 3.25f, x[2 * HW + i] *= 1e-3f;
    }
    for (int c = 0; c < C; c++) dg[c] = dgc[c] = db[c] = dbc[c] = 0.1f * (c + 1); /* accumulation */
    for (int b = 0; b < N; b++) {
        size_t o = (size_t)b * C * HW;
        instance_norm_forward(yc + o, mc + b * C, rc + b * C, x + o, gamma, beta, C, HW, relu);
        instance_norm_backward(dxc + o, dgc, dbc, g + o, yc + o, x + o, mc + b * C, rc + b * C, gamma, C, HW, relu);
        if (skip) add_forward(yc + o, yc + o, s + o, (size_t)C * HW);
    }
    float *dX = dev_from(x, n), *dS = dev_from(s, n), *dGr = dev_from(g, n), *dGa = dev_from(gamma, C), *dBe = dev_from(beta, C);
    float *dY = dev(n), *dM = dev(N * C), *dR = dev(N * C), *dDX = dev(n), *dDG = dev_from(dg, C), *dDB = dev_from(db, C);
    float *scratch = dev(cu_instance_norm_scratch_bytes(N * C, HW) / sizeof(float) + 2);
    ok(cu_instance_norm_forward(ctx, dY, dM, dR, dX, dGa, dBe, skip ? dS : NULL, N, C, HW, relu, scratch, &err), "norm");
    down(y, dY, n);
    down(m, dM, N * C);
    down(r, dR, N * C);
    if (!skip) { /* (in the network, a norm with a skip has no ReLU: its mask is the norm's own output) */
        ok(cu_instance_norm_backward(ctx, dDX, dDG, dDB, dGr, dY, dX, dM, dR, dGa, N, C, HW, relu, scratch, &err), "norm backward");
        down(dx, dDX, n);
        down(dg, dDG, C);
        down(db, dDB, C);
    }
    char what[96];
    snprintf(what, sizeof what, "instance norm N%d C%d HW%d relu%d skip%d%s: out", N, C, HW, relu, skip, awkward ? " awkward" : "");
    compare(what, y, yc, n, 1e-6);
    compare("  mean", m, mc, N * C, 1e-6);
    compare("  rstd", r, rc, N * C, 1e-6);
    if (!skip) {
        compare("  backward: dx", dx, dxc, n, 1e-5);
        compare("  dgamma (summed over the batch)", dg, dgc, C, 1e-5);
        compare("  dbeta", db, dbc, C, 1e-5);
    }
    float *bufs[] = {dX, dS, dGr, dGa, dBe, dY, dM, dR, dDX, dDG, dDB, scratch};
    for (int i = 0; i < 12; i++) cu_buffer_free(bufs[i]);
    float *hb[] = {x, s, g, gamma, beta, y, yc, m, mc, r, rc, dx, dxc, dg, dgc, db, dbc};
    for (int i = 0; i < 17; i++) free(hb[i]);
}

static void test_norm(void) {
    norm_case(2, 3, 37, 0, 0, 0);
    norm_case(2, 3, 37, 1, 0, 0);
    norm_case(2, 4, 33 * 17, 0, 0, 1);
    norm_case(2, 4, 33 * 17, 1, 0, 1);
    norm_case(3, 2, 70001, 1, 0, 0); /* several parts per plane */
    norm_case(2, 3, 61, 0, 1, 0);    /* the residual sum */
}

/* inference's fused norm + padding: the same bits as the norm then the padding */
static void test_norm_pad(void) {
    static const int cfg[][2] = {{4, 0}, {1, 0}, {1, 1}}; /* p, upsample */
    int N = 2, C = 3, H = 5, W = 6, HW = H * W;
    size_t n = (size_t)N * C * HW;
    float *x = host(n), *gamma = host(C), *beta = host(C);
    fill(x, n, 2, 0.5f);
    fill(gamma, C, 0.5f, 1);
    fill(beta, C, 0.3f, 0.1f);
    float *dX = dev_from(x, n), *dGa = dev_from(gamma, C), *dBe = dev_from(beta, C), *dY = dev(n);
    float *dM = dev(N * C), *dR = dev(N * C), *scratch = dev(cu_instance_norm_scratch_bytes(N * C, HW) / sizeof(float) + 2);
    for (int k = 0; k < 3; k++)
        for (int relu = 0; relu < 2; relu++) {
            int p = cfg[k][0], u = cfg[k][1], Hs = H << u, Ws = W << u;
            size_t np = (size_t)N * C * (Hs + 2 * p) * (Ws + 2 * p);
            float *a = host(np), *b = host(np), *yc = host(n), *tmp = host((size_t)N * C * Hs * Ws), *pc = host(np), m[6], r[6];
            float *dA = dev(np), *dB = dev(np);
            ok(cu_instance_norm_stats(ctx, dM, dR, dX, N * C, HW, scratch, &err), "stats");
            ok(cu_instance_norm_pad(ctx, dA, dX, dM, dR, dGa, dBe, N, C, H, W, p, u, relu, &err), "norm + pad");
            ok(cu_instance_norm_forward(ctx, dY, dM, dR, dX, dGa, dBe, NULL, N, C, HW, relu, scratch, &err), "norm");
            if (u) ok(cu_upsample2x_reflect_pad_forward(ctx, dB, dY, N * C, H, W, p, &err), "up+pad");
            else ok(cu_reflect_pad_forward(ctx, dB, dY, N * C, H, W, p, &err), "pad");
            down(a, dA, np);
            down(b, dB, np);
            for (int i = 0; i < N; i++)
                instance_norm_forward(yc + (size_t)i * C * HW, m, r, x + (size_t)i * C * HW, gamma, beta, C, HW, relu);
            if (u) upsample2x_reflect_pad_forward(pc, yc, N * C, H, W, p);
            else reflect_pad_forward(pc, yc, N * C, H, W, p);
            CHECK(memcmp(a, b, np * sizeof(float)) == 0, "norm+pad (p %d, up %d, relu %d) == norm then pad, bit for bit", p, u, relu);
            char what[96];
            snprintf(what, sizeof what, "norm + pad p%d up%d relu%d vs the CPU", p, u, relu);
            compare(what, a, pc, np, 1e-6);
            cu_buffer_free(dA); cu_buffer_free(dB);
            free(a); free(b); free(yc); free(tmp); free(pc);
        }
    cu_buffer_free(dX); cu_buffer_free(dGa); cu_buffer_free(dBe); cu_buffer_free(dY);
    cu_buffer_free(dM); cu_buffer_free(dR); cu_buffer_free(scratch);
    free(x); free(gamma); free(beta);
}

/* ---- the fp16 NHWC inference kernels (NST_PRECISION_FP16) ------------------------------------------ */

/* float -> fp16 bits, round to nearest even (normal and subnormal halves; no overflow here) */
static uint16_t f2h(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, mag = x & 0x7fffffffu;
    if (mag >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* (beyond the test's range) */
    if (mag < 0x38800000u) { /* a subnormal half: round the value times 2^24 */
        float a = fabsf(f) * 16777216.0f;
        return (uint16_t)(sign | (uint32_t)lrintf(a));
    }
    uint32_t r = mag - 0x38000000u; /* rebias the exponent (127 -> 15), 13 mantissa bits to drop */
    uint32_t h = r >> 13, rest = r & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}
static float h2f(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    float f;
    if (e == 0) f = ldexpf((float)m, -24);
    else {
        uint32_t x = ((e + 112u) << 23) | (m << 13);
        memcpy(&f, &x, 4);
    }
    return sign ? -f : f;
}
/* (N,C,HW) planes -> (N,HW,Ce) fp16, zeros in channels >= C; and back (channels < C) */
static void to_nhwc(uint16_t *o, const float *x, int N, int C, int Ce, size_t HW) {
    for (int n = 0; n < N; n++)
        for (size_t i = 0; i < HW; i++)
            for (int c = 0; c < Ce; c++) o[((size_t)n * HW + i) * Ce + c] = c < C ? f2h(x[((size_t)n * C + c) * HW + i]) : 0;
}
static void from_nhwc(float *o, const uint16_t *x, int N, int C, int Ce, size_t HW) {
    for (int n = 0; n < N; n++)
        for (size_t i = 0; i < HW; i++)
            for (int c = 0; c < C; c++) o[((size_t)n * C + c) * HW + i] = h2f(x[((size_t)n * HW + i) * Ce + c]);
}
static uint16_t *halves(size_t n) {
    uint16_t *p = calloc(n + 2, 2);
    if (!p) { fprintf(stderr, "out of memory\n"); exit(1); }
    return p;
}
/* device buffers of fp16 values: n halves as floats (cu_buffer / cu_upload count floats) */
static float *hdev(size_t n) { return dev(n / 2 + 1); }
static void hup(float *d, const uint16_t *h, size_t n) { up(d, (const float *)h, (n + 1) / 2); }
static void hdown(uint16_t *h, const float *d, size_t n) { down((float *)h, d, (n + 1) / 2); }
/* pads (upsampling first if up) every image of planes x (N*C,H,W) into o */
static void pad_planes(float *o, const float *x, int NC, int H, int W, int p, int up) {
    if (up) upsample2x_reflect_pad_forward(o, x, NC, H, W, p);
    else reflect_pad_forward(o, x, NC, H, W, p);
}

static void test_fp16(void) {
    int N = 2, C = 12, Ce = cu_h_channels(C), H = 5, W = 6, HW = H * W;
    CHECK(Ce == 16 && cu_h_channels(3) == 8 && cu_h_channels(32) == 32, "fp16 channels padded to multiples of 8");
    char what[128];
    /* the input: RGB planes -> padded NHWC, 8 channels */
    {
        int p = 4, Hp = H + 2 * p, Wp = W + 2 * p;
        size_t n = (size_t)N * 3 * HW, np = (size_t)N * 8 * Hp * Wp;
        float *x = host(n), *xp = host((size_t)N * 3 * Hp * Wp);
        uint16_t *ref = halves(np), *got = halves(np);
        fill(x, n, 0.5f, 0.5f);
        pad_planes(xp, x, N * 3, H, W, p, 0);
        to_nhwc(ref, xp, N, 3, 8, (size_t)Hp * Wp);
        float *dX = dev_from(x, n), *dO = hdev(np);
        ok(cu_h_input_pad(ctx, dO, dX, N, H, W, p, 8, &err), "fp16 input");
        hdown(got, dO, np);
        CHECK(memcmp(got, ref, np * 2) == 0, "fp16 input + pad 4: the rounded padded planes, bit for bit");
        cu_buffer_free(dX); cu_buffer_free(dO);
        free(x); free(xp); free(ref); free(got);
    }
    /* an activation (channels >= C zero), as the convolution leaves it */
    size_t n = (size_t)N * C * HW, nh = (size_t)N * Ce * HW;
    float *z = host(n), *zr = host(n), *sk = host(n), *skr = host(n), *gamma = host(C), *beta = host(C);
    uint16_t *zh = halves(nh), *skh = halves(nh);
    fill(z, n, 3, 0.7f);
    fill(sk, n, 1, 0);
    fill(gamma, C, 0.5f, 1);
    fill(beta, C, 0.3f, 0.1f);
    to_nhwc(zh, z, N, C, Ce, HW);
    to_nhwc(skh, sk, N, C, Ce, HW);
    from_nhwc(zr, zh, N, C, Ce, HW); /* the values as fp16 holds them */
    from_nhwc(skr, skh, N, C, Ce, HW);
    float *dZ = hdev(nh), *dS = hdev(nh), *dGa = dev_from(gamma, C), *dBe = dev_from(beta, C);
    float *dM = dev(N * C), *dR = dev(N * C), *scratch = dev(cu_h_norm_scratch_bytes(N, Ce, HW) / sizeof(float) + 2);
    hup(dZ, zh, nh);
    hup(dS, skh, nh);
    /* padding (and upsampling): copies, bit for bit */
    static const int pads[][2] = {{1, 0}, {4, 0}, {1, 1}, {0, 1}};
    for (int k = 0; k < 4; k++) {
        int p = pads[k][0], u = pads[k][1], Ho = (H << u) + 2 * p, Wo = (W << u) + 2 * p;
        size_t no = (size_t)N * Ce * Ho * Wo;
        float *pp = host((size_t)N * C * Ho * Wo), *dO = hdev(no);
        uint16_t *ref = halves(no), *got = halves(no);
        pad_planes(pp, zr, N * C, H, W, p, u);
        to_nhwc(ref, pp, N, C, Ce, (size_t)Ho * Wo);
        ok(cu_h_pad(ctx, dO, dZ, N, H, W, Ce, p, u, &err), "fp16 pad");
        hdown(got, dO, no);
        CHECK(memcmp(got, ref, no * 2) == 0, "fp16 pad p%d up%d: bit for bit", p, u);
        cu_buffer_free(dO);
        free(pp); free(ref); free(got);
    }
    /* statistics of the fp16 values, in double */
    float m[24], r[24], mc[24], rc[24];
    ok(cu_h_norm_stats(ctx, dM, dR, dZ, N, C, Ce, HW, scratch, &err), "fp16 stats");
    down(m, dM, N * C);
    down(r, dR, N * C);
    for (int k = 0; k < N * C; k++) {
        double su = 0, sq = 0;
        for (int i = 0; i < HW; i++) su += zr[(size_t)k * HW + i], sq += (double)zr[(size_t)k * HW + i] * zr[(size_t)k * HW + i];
        double mean = su / HW, var = sq / HW - mean * mean;
        mc[k] = (float)mean;
        rc[k] = (float)(1.0 / sqrt(var + 1e-5));
    }
    compare("fp16 instance norm: mean", m, mc, N * C, 1e-6);
    compare("fp16 instance norm: 1/std", r, rc, N * C, 1e-6);
    /* norm (+ReLU, +skip) then pad: against the same float expression on the host */
    for (int k = 0; k < 4; k++)
        for (int v = 0; v < 3; v++) {
            int p = pads[k][0], u = pads[k][1], relu = v == 1, skip = v == 2, Ho = (H << u) + 2 * p, Wo = (W << u) + 2 * p;
            size_t no = (size_t)N * Ce * Ho * Wo, nop = (size_t)N * C * Ho * Wo;
            float *t = host(n), *pp = host(nop), *ref = host(nop), *gotf = host(nop), *dO = hdev(no);
            uint16_t *th = halves(nop), *got = halves(no); /* th holds the padded planes */
            for (int b = 0; b < N; b++)
                for (int c = 0; c < C; c++)
                    for (int i = 0; i < HW; i++) {
                        size_t q = ((size_t)b * C + c) * HW + i;
                        float y = (zr[q] - m[b * C + c]) * (gamma[c] * r[b * C + c]) + beta[c];
                        if (relu) y = y > 0 ? y : 0;
                        if (skip) y += skr[q];
                        t[q] = y;
                    }
            pad_planes(pp, t, N * C, H, W, p, u);
            to_nhwc(th, pp, N, C, C, (size_t)Ho * Wo); /* (rounded like the kernel's output) */
            from_nhwc(ref, th, N, C, C, (size_t)Ho * Wo);
            ok(cu_h_norm_apply(ctx, dO, dZ, dM, dR, dGa, dBe, skip ? dS : NULL, N, C, Ce, H, W, p, u, relu, &err), "fp16 norm");
            hdown(got, dO, no);
            from_nhwc(gotf, got, N, C, Ce, (size_t)Ho * Wo);
            int zero = 1;
            for (size_t q = 0; q < (size_t)N * Ho * Wo; q++)
                for (int c = C; c < Ce; c++) zero &= got[q * Ce + c] == 0;
            CHECK(zero, "fp16 norm p%d up%d relu%d skip%d: the padded channels are 0", p, u, relu, skip);
            /* (the kernel may fuse the multiply-add: a last-bit difference before rounding) */
            snprintf(what, sizeof what, "fp16 norm + pad p%d up%d relu%d skip%d vs the host", p, u, relu, skip);
            compare(what, gotf, ref, nop, 1e-3);
            cu_buffer_free(dO);
            free(t); free(pp); free(ref); free(gotf); free(th); free(got);
        }
    /* the output: 255 sigmoid(z + bias) of the first 3 channels, as planes */
    {
        float bias[3] = {0.1f, -0.2f, 0.3f}, *y = host((size_t)N * 3 * HW), *yc = host((size_t)N * 3 * HW);
        float *dB = dev_from(bias, 3), *dY = dev((size_t)N * 3 * HW);
        ok(cu_h_output(ctx, dY, dZ, dB, N, H, W, Ce, &err), "fp16 output");
        down(y, dY, (size_t)N * 3 * HW);
        for (int b = 0; b < N; b++)
            for (int c = 0; c < 3; c++)
                for (int i = 0; i < HW; i++)
                    yc[((size_t)b * 3 + c) * HW + i] = 255.0f / (1.0f + expf(-(zr[((size_t)b * C + c) * HW + i] + bias[c])));
        compare("fp16 output (sigmoid, planes) vs the host", y, yc, (size_t)N * 3 * HW, 1e-6);
        cu_buffer_free(dB); cu_buffer_free(dY);
        free(y); free(yc);
    }
    /* the last layer, 9x9 -> 3 + bias + sigmoid (own kernel): against the CPU's conv of the
     * fp16 values (products and sums in float on both sides: only the order differs) */
    static const int c9[][2] = {{13, 15}, {45, 50}}; /* padded input Hp, Wp */
    for (int k = 0; k < 2; k++) {
        int Hp = c9[k][0], Wp = c9[k][1], Ho = Hp - 8, Wo = Wp - 8;
        size_t nx = (size_t)N * C * Hp * Wp, nxh = (size_t)N * Ce * Hp * Wp, nw = (size_t)3 * C * 81, ny = (size_t)N * 3 * Ho * Wo;
        size_t nwh = (size_t)8 * 81 * Ce;
        float *x = host(nx), *xr = host(nx), *w = host(nw), *wr = host(nw), *y = host(ny), *yc = host(ny);
        float bias[3] = {0.2f, -0.1f, 0.05f};
        uint16_t *xh = halves(nxh);
        fill(x, nx, 1, 0);
        fill(w, nw, 0.05f, 0);
        to_nhwc(xh, x, N, C, Ce, (size_t)Hp * Wp);
        from_nhwc(xr, xh, N, C, Ce, (size_t)Hp * Wp);
        for (size_t i = 0; i < nw; i++) wr[i] = h2f(f2h(w[i]));
        for (int b = 0; b < N; b++) {
            float *yb = yc + (size_t)b * 3 * Ho * Wo;
            conv2d_forward_ref(yb, xr + (size_t)b * C * Hp * Wp, wr, bias, C, 3, Hp, Wp, 9, 1);
            for (size_t i = 0; i < (size_t)3 * Ho * Wo; i++) yb[i] = 255.0f / (1.0f + expf(-yb[i]));
        }
        float *dX = hdev(nxh), *dW = dev_from(w, nw), *dWh = hdev(nwh), *dB = dev_from(bias, 3), *dY = dev(ny);
        hup(dX, xh, nxh);
        ok(cu_h_weights(ctx, dWh, dW, 3, C, 9, &err), "fp16 weights");
        ok(cu_h_conv9_output(ctx, dY, dX, dWh, dB, N, Hp, Wp, Ce, &err), "fp16 9x9 output layer");
        down(y, dY, ny);
        snprintf(what, sizeof what, "fp16 9x9 -> 3 + sigmoid (own) %dx%d vs the host", Wp, Hp);
        compare(what, y, yc, ny, 1e-5);
        cu_buffer_free(dX); cu_buffer_free(dW); cu_buffer_free(dWh); cu_buffer_free(dB); cu_buffer_free(dY);
        free(x); free(xr); free(w); free(wr); free(y); free(yc); free(xh);
    }
    /* weights: (C_out,C_in,K,K) -> (Co_e,K,K,Ci_e) fp16 */
    {
        int Co = 5, Ci = 3, K = 3, Coe = 8, Cie = 8;
        size_t nw = (size_t)Co * Ci * K * K, nwh = (size_t)Coe * K * K * Cie;
        float *w = host(nw), *dW = dev_from(w, nw), *dH = hdev(nwh);
        fill(w, nw, 1, 0);
        up(dW, w, nw);
        uint16_t *ref = halves(nwh), *got = halves(nwh);
        for (int co = 0; co < Coe; co++)
            for (int ky = 0; ky < K; ky++)
                for (int kx = 0; kx < K; kx++)
                    for (int ci = 0; ci < Cie; ci++)
                        ref[((co * K + ky) * K + kx) * Cie + ci] = co < Co && ci < Ci ? f2h(w[((co * Ci + ci) * K + ky) * K + kx]) : 0;
        ok(cu_h_weights(ctx, dH, dW, Co, Ci, K, &err), "fp16 weights");
        hdown(got, dH, nwh);
        CHECK(memcmp(got, ref, nwh * 2) == 0, "fp16 weights: (C_out,K,K,C_in) padded, bit for bit");
        cu_buffer_free(dW); cu_buffer_free(dH);
        free(w); free(ref); free(got);
    }
    cu_buffer_free(dZ); cu_buffer_free(dS); cu_buffer_free(dGa); cu_buffer_free(dBe);
    cu_buffer_free(dM); cu_buffer_free(dR); cu_buffer_free(scratch);
    free(z); free(zr); free(sk); free(skr); free(gamma); free(beta); free(zh); free(skh);
}

static void test_elementwise(void) {
    int N = 2, C = 3, HW = 1001;
    size_t n = (size_t)N * C * HW;
    float *x = host(n), *g = host(n), *y = host(n), *yc = host(n), *dx = host(n), *dxc = host(n);
    float bias[3] = {0.5f, -1.0f, 2.0f}, db[3] = {1, 2, 3}, dbc[3];
    double dbs[3] = {1, 2, 3};
    fill(x, n, 30, 0); /* saturating values included */
    fill(g, n, 1, 0);
    sigmoid255_forward(yc, x, n);
    sigmoid255_backward(dxc, g, yc, n);
    float *dX = dev_from(x, n), *dG = dev_from(g, n), *dY = dev(n), *dDX = dev(n), *dB = dev_from(bias, 3), *dDB = dev_from(db, 3);
    ok(cu_sigmoid255_forward(ctx, dY, dX, n, &err), "sigmoid");
    ok(cu_sigmoid255_backward(ctx, dDX, dG, dY, n, &err), "sigmoid backward");
    down(y, dY, n);
    down(dx, dDX, n);
    compare("sigmoid255 forward", y, yc, n, 1e-6);
    compare("sigmoid255 backward", dx, dxc, n, 1e-6);
    /* bias and its gradient; the sum */
    for (int b = 0; b < N; b++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < HW; i++) {
                size_t k = ((size_t)b * C + c) * HW + i;
                yc[k] = x[k] + bias[c];
                dbs[c] += g[k];
            }
    for (int c = 0; c < C; c++) dbc[c] = (float)dbs[c];
    ok(cu_add_bias(ctx, dX, dB, N, C, HW, &err), "bias");
    ok(cu_bias_backward(ctx, dDB, dG, N, C, HW, &err), "bias backward");
    down(y, dX, n);
    down(db, dDB, 3);
    compare("bias forward", y, yc, n, 1e-7);
    compare("bias backward (accumulated)", db, dbc, 3, 1e-6);
    for (size_t i = 0; i < n; i++) yc[i] = y[i] + g[i];
    ok(cu_add(ctx, dY, dX, dG, n, &err), "add");
    down(y, dY, n);
    CHECK(memcmp(y, yc, n * sizeof(float)) == 0, "add: exact");
    cu_buffer_free(dX); cu_buffer_free(dG); cu_buffer_free(dY); cu_buffer_free(dDX); cu_buffer_free(dB); cu_buffer_free(dDB);
    free(x); free(g); free(y); free(yc); free(dx); free(dxc);
}

static void test_adam(void) {
    size_t n = 1000;
    adam_state s;
    ok(adam_build(&s, n, 1e-3f, &err), "adam");
    float *x = host(n), *g = host(n), *xg = host(n), *m = host(n), *v = host(n), *zeros = host(n);
    fill(x, n, 1, 0);
    memcpy(xg, x, n * sizeof(float));
    float *dX = dev_from(x, n), *dM = dev_from(zeros, n), *dV = dev_from(zeros, n), *dG = dev(n);
    for (int t = 1; t <= 3; t++) {
        fill(g, n, 1, 0.1f * t);
        adam_update(&s, x, g);
        up(dG, g, n);
        adam_state a = {.lr = s.lr, .t = t - 1};
        ok(cu_adam_update(ctx, dX, dM, dV, dG, n, adam_next(&a), &err), "adam");
    }
    down(xg, dX, n);
    down(m, dM, n);
    down(v, dV, n);
    compare("Adam, 3 steps: parameters", xg, x, n, 1e-6);
    compare("  m", m, s.m, n, 1e-6);
    compare("  v", v, s.v, n, 1e-6);
    adam_free(&s);
    cu_buffer_free(dX); cu_buffer_free(dM); cu_buffer_free(dV); cu_buffer_free(dG);
    free(x); free(g); free(xg); free(m); free(v); free(zeros);
}

static void test_conv(void) {
    /* (9x9/1 with at most 4 output channels runs on the own kernels: odd sizes, one pixel,
     * several tiles both ways, channel counts off the kernels' stages, many filter bands) */
    static const int cfg[][6] = {/* C_in, C_out, K, S, H, W (padded input) */
                                 {3, 4, 9, 1, 14, 12}, {5, 6, 3, 2, 11, 10}, {4, 4, 3, 1, 9, 8},
                                 {6, 3, 3, 2, 10, 10}, {3, 5, 1, 1, 6, 7}, {4, 3, 9, 1, 12, 13},
                                 {32, 3, 9, 1, 21, 19}, {5, 1, 9, 1, 9, 9}, {7, 2, 9, 1, 47, 75},
                                 {9, 4, 9, 1, 30, 41}, {2, 3, 9, 1, 608, 41}, {16, 5, 9, 1, 13, 11}};
    int N = 2, n_cfg = (int)(sizeof cfg / sizeof cfg[0]);
    for (int k = 0; k < n_cfg; k++) {
        int Ci = cfg[k][0], Co = cfg[k][1], K = cfg[k][2], S = cfg[k][3], H = cfg[k][4], W = cfg[k][5];
        int Ho = (H - K) / S + 1, Wo = (W - K) / S + 1;
        size_t ni = (size_t)N * Ci * H * W, no = (size_t)N * Co * Ho * Wo, nw = (size_t)Co * Ci * K * K;
        size_t pi = ni / N, po = no / N;
        float *x = host(ni), *w = host(nw), *g = host(no), *y = host(no), *yc = host(no);
        float *dx = host(ni), *dxc = host(ni), *dw = host(nw), *dwc = host(nw);
        fill(x, ni, 1, 0);
        fill(w, nw, 0.3f, 0);
        fill(g, no, 1, 0);
        for (size_t i = 0; i < nw; i++) dw[i] = dwc[i] = 0.25f; /* the weight gradient accumulates */
        for (int b = 0; b < N; b++) {
            conv2d_forward_ref(yc + b * po, x + b * pi, w, NULL, Ci, Co, H, W, K, S);
            conv2d_backward_input_ref(dxc + b * pi, g + b * po, w, Ci, Co, H, W, K, S);
            conv2d_backward_weight_ref(dwc, NULL, g + b * po, x + b * pi, Ci, Co, H, W, K, S);
        }
        for (int prec = 0; prec < 2; prec++) {
            cu_conv *c = NULL;
            size_t wsb = 0;
            ok(cu_conv_create(&c, ctx, N, Ci, Co, H, W, K, S, prec, 1, k % 2, 1, (size_t)256 << 20, &wsb, &err), "conv create");
            float *dX = dev_from(x, ni), *dW = dev_from(w, nw), *dG = dev_from(g, no), *dY = dev(no), *dDX = dev(ni);
            float *dDW = dev_from(dw, nw), *ws = dev(wsb / sizeof(float) + 1);
            ok(cu_conv_forward(ctx, c, dY, dX, dW, ws, wsb, &err), "conv forward");
            ok(cu_conv_backward_input(ctx, c, dDX, dG, dW, ws, wsb, &err), "conv backward input");
            ok(cu_conv_backward_weight(ctx, c, dDW, dG, dX, ws, wsb, &err), "conv backward weight");
            float *y2 = host(no), *dx2 = host(ni), *dw2 = host(nw);
            down(y2, dY, no);
            down(dx2, dDX, ni);
            down(dw2, dDW, nw);
            double tol = prec ? 1e-2 : 1e-5;
            char what[96];
            snprintf(what, sizeof what, "conv %dx%d/%d %d->%d %dx%d %s: forward", K, K, S, Ci, Co, W, H, prec ? "tf32" : "fp32");
            compare(what, y2, yc, no, tol);
            compare("  backward to the input", dx2, dxc, ni, tol);
            compare("  backward to the weights (accumulated)", dw2, dwc, nw, tol);
            printf("    algorithms: %s\n", cu_conv_describe(c));
            int own = K == 9 && S == 1 && Co <= 4; /* (own = 1 above) */
            CHECK(own == (strstr(cu_conv_describe(c), "own") != NULL), "conv %dx%d/%d %d->%d: own kernels %s", K, K, S, Ci, Co,
                  own ? "expected" : "not expected");
            cu_conv_destroy(c);
            float *bufs[] = {dX, dW, dG, dY, dDX, dDW, ws};
            for (int i = 0; i < 7; i++) cu_buffer_free(bufs[i]);
            free(y2); free(dx2); free(dw2);
        }
        free(x); free(w); free(g); free(y); free(yc); free(dx); free(dxc); free(dw); free(dwc);
    }
}

/* ---- layers against finite differences ---------------------------------------------- */

/* L = sum(R .* out) of a GPU forward; sig: the ReLU pattern of out (where it is > 0) */
typedef double (*gpu_loss)(void *c, uint64_t *sig);

static uint64_t pattern(const float *y, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (y[i] > 0.0f)) * 1099511628211ULL;
    return h;
}

/* central differences in every coordinate of param (as the steps were taken in float);
 * coordinates where a step changes the ReLU pattern are skipped and counted */
static void fd(const char *what, gpu_loss loss, void *c, float *param, const float *grad, int n, float h, double tol,
               double floor) {
    uint64_t s0, s1, s2;
    loss(c, &s0);
    int checked = 0, kinked = 0;
    double worst = 0;
    for (int i = 0; i < n; i++) {
        float save = param[i], xp = save + h, xm = save - h;
        param[i] = xp;
        double lp = loss(c, &s1);
        param[i] = xm;
        double lm = loss(c, &s2);
        param[i] = save;
        if (s1 != s0 || s2 != s0) {
            kinked++;
            continue;
        }
        double num = (lp - lm) / ((double)xp - (double)xm), ana = grad[i];
        double e = fabs(num - ana) / fmax(fmax(fabs(num), fabs(ana)), floor);
        worst = fmax(worst, e);
        CHECK(e < tol, "%s [%d]: analytic %.8g numeric %.8g (rel %.3g)", what, i, ana, num, e);
        checked++;
    }
    CHECK(checked * 2 >= n, "%s: %d of %d checked (too many kinks)", what, checked, n);
    printf("  finite differences: %-34s %4d of %4d, worst rel error %.2e\n", what, checked, n, worst);
}

typedef struct {
    int kind; /* 0 pad, 1 upsample+pad, 2 norm, 3 sigmoid, 4 conv, 5 bias */
    int N, C, Co, H, W, p, K, S, relu;
    size_t nx, ny, np;
    float *x, *p1, *p2, *R, *y;  /* host: input, parameters (weight or gamma; beta or bias), projection, output */
    float *dx, *dp1, *dp2, *dy;  /* device */
    float *dmean, *drstd, *scratch, *ws, *dgrad_x, *dgrad_p1, *dgrad_p2;
    cu_conv *conv;
    size_t wsb;
} fd_case;

static void fd_forward(fd_case *c) {
    up(c->dx, c->x, c->nx);
    if (c->p1) up(c->dp1, c->p1, c->np);
    if (c->p2) up(c->dp2, c->p2, c->kind == 2 ? c->np : (size_t)c->C);
    int NC = c->N * c->C;
    switch (c->kind) {
    case 0: ok(cu_reflect_pad_forward(ctx, c->dy, c->dx, NC, c->H, c->W, c->p, &err), "pad"); break;
    case 1: ok(cu_upsample2x_reflect_pad_forward(ctx, c->dy, c->dx, NC, c->H, c->W, c->p, &err), "up+pad"); break;
    case 2:
        ok(cu_instance_norm_forward(ctx, c->dy, c->dmean, c->drstd, c->dx, c->dp1, c->dp2, NULL, c->N, c->C, c->H * c->W,
                                    c->relu, c->scratch, &err), "norm");
        break;
    case 3: ok(cu_sigmoid255_forward(ctx, c->dy, c->dx, c->nx, &err), "sigmoid"); break;
    case 4: ok(cu_conv_forward(ctx, c->conv, c->dy, c->dx, c->dp1, c->ws, c->wsb, &err), "conv"); break;
    case 5: /* in place on the uploaded input */
        ok(cu_add_bias(ctx, c->dx, c->dp2, c->N, c->C, c->H * c->W, &err), "bias");
        down(c->y, c->dx, c->nx);
        return;
    }
    down(c->y, c->dy, c->ny);
}

static double fd_loss(void *vc, uint64_t *sig) {
    fd_case *c = vc;
    fd_forward(c);
    *sig = c->kind == 2 && c->relu ? pattern(c->y, c->ny) : 0;
    return dotd(c->R, c->y, c->ny);
}

/* the analytic gradients of L = sum(R .* out) from the GPU backward */
static void fd_backward(fd_case *c, float *gx, float *gp1, float *gp2) {
    fd_forward(c);
    float *dR = dev_from(c->R, c->ny);
    int NC = c->N * c->C;
    size_t nb = c->kind == 2 ? c->np : (size_t)c->C;
    float *zeros = host(c->np > nb ? c->np : nb);
    switch (c->kind) {
    case 0: ok(cu_reflect_pad_backward(ctx, c->dgrad_x, dR, NC, c->H, c->W, c->p, &err), "pad backward"); break;
    case 1: ok(cu_upsample2x_reflect_pad_backward(ctx, c->dgrad_x, dR, NC, c->H, c->W, c->p, &err), "up+pad backward"); break;
    case 2:
        up(c->dgrad_p1, zeros, c->np);
        up(c->dgrad_p2, zeros, c->np);
        ok(cu_instance_norm_backward(ctx, c->dgrad_x, c->dgrad_p1, c->dgrad_p2, dR, c->dy, c->dx, c->dmean, c->drstd, c->dp1,
                                     c->N, c->C, c->H * c->W, c->relu, c->scratch, &err), "norm backward");
        break;
    case 3: ok(cu_sigmoid255_backward(ctx, c->dgrad_x, dR, c->dy, c->nx, &err), "sigmoid backward"); break;
    case 4:
        up(c->dgrad_p1, zeros, c->np);
        ok(cu_conv_backward_input(ctx, c->conv, c->dgrad_x, dR, c->dp1, c->ws, c->wsb, &err), "conv backward input");
        ok(cu_conv_backward_weight(ctx, c->conv, c->dgrad_p1, dR, c->dx, c->ws, c->wsb, &err), "conv backward weight");
        break;
    case 5:
        up(c->dgrad_p2, zeros, c->C);
        ok(cu_bias_backward(ctx, c->dgrad_p2, dR, c->N, c->C, c->H * c->W, &err), "bias backward");
        break;
    }
    if (c->kind != 5) down(gx, c->dgrad_x, c->nx);
    if (c->kind == 2 || c->kind == 4) down(gp1, c->dgrad_p1, c->np);
    if (c->kind == 2 || c->kind == 5) down(gp2, c->dgrad_p2, nb);
    cu_buffer_free(dR);
    free(zeros);
}

static void fd_run(int kind, int relu) {
    fd_case c = {0};
    c.kind = kind;
    c.relu = relu;
    c.N = 2, c.C = 2, c.H = 4, c.W = 5, c.p = 2;
    if (kind == 1) c.H = 3, c.W = 3, c.p = 1;
    if (kind == 2) c.H = 3, c.W = 4;
    if (kind == 4) c.C = 2, c.Co = 3, c.H = 7, c.W = 6, c.K = 3, c.S = 2;
    c.nx = (size_t)c.N * c.C * c.H * c.W;
    int Hs = c.H << (kind == 1), Ws = c.W << (kind == 1);
    if (kind <= 1) c.ny = (size_t)c.N * c.C * (Hs + 2 * c.p) * (Ws + 2 * c.p);
    else if (kind == 4) c.ny = (size_t)c.N * c.Co * ((c.H - c.K) / c.S + 1) * ((c.W - c.K) / c.S + 1);
    else c.ny = c.nx;
    c.x = host(c.nx);
    c.R = host(c.ny);
    c.y = host(c.ny);
    fill(c.x, c.nx, kind == 3 ? 3.0f : 1.0f, 0);
    fill(c.R, c.ny, 1, 0);
    c.dx = dev(c.nx);
    c.dy = dev(c.ny);
    c.dgrad_x = dev(c.nx);
    if (kind == 2) {
        c.np = c.C;
        c.p1 = host(c.C);
        c.p2 = host(c.C);
        fill(c.p1, c.C, 0.5f, 1);
        fill(c.p2, c.C, 0.3f, relu ? 0.2f : 0);
        c.dp1 = dev(c.C), c.dp2 = dev(c.C), c.dgrad_p1 = dev(c.C), c.dgrad_p2 = dev(c.C);
        c.dmean = dev(c.N * c.C), c.drstd = dev(c.N * c.C);
        c.scratch = dev(cu_instance_norm_scratch_bytes(c.N * c.C, c.H * c.W) / sizeof(float) + 2);
    } else if (kind == 4) {
        c.np = (size_t)c.Co * c.C * c.K * c.K;
        c.p1 = host(c.np);
        fill(c.p1, c.np, 0.3f, 0);
        c.dp1 = dev(c.np), c.dgrad_p1 = dev(c.np);
        ok(cu_conv_create(&c.conv, ctx, c.N, c.C, c.Co, c.H, c.W, c.K, c.S, NST_PRECISION_FP32, 1, 0, 1, (size_t)64 << 20, &c.wsb, &err), "conv");
        c.ws = dev(c.wsb / sizeof(float) + 1);
    } else if (kind == 5) {
        c.np = c.C;
        c.p2 = host(c.C);
        fill(c.p2, c.C, 1, 0);
        c.dp2 = dev(c.C), c.dgrad_p2 = dev(c.C);
    }
    float *gx = host(c.nx), *gp1 = host(c.np ? c.np : 1), *gp2 = host(c.np ? c.np : 1);
    fd_backward(&c, gx, gp1, gp2);
    static const char *names[] = {"reflect pad", "upsample + pad", "instance norm", "sigmoid255", "conv 3x3/2", "bias"};
    char what[96];
    float h = relu ? 3e-3f : 1e-2f; /* (with the ReLU, a smaller step crosses fewer kinks) */
    double tol = 1e-2, floor = kind == 3 ? 1.0 : 1e-2;
    if (kind != 5) {
        snprintf(what, sizeof what, "%s%s: input", names[kind], relu ? " +relu" : "");
        fd(what, fd_loss, &c, c.x, gx, (int)c.nx, h, tol, floor);
    }
    if (kind == 2 || kind == 4) {
        snprintf(what, sizeof what, "%s%s: %s", names[kind], relu ? " +relu" : "", kind == 2 ? "gamma" : "weight");
        fd(what, fd_loss, &c, c.p1, gp1, (int)c.np, h, tol, floor);
    }
    if (kind == 2 || kind == 5) {
        snprintf(what, sizeof what, "%s%s: %s", names[kind], relu ? " +relu" : "", kind == 2 ? "beta" : "bias");
        fd(what, fd_loss, &c, c.p2, gp2, kind == 2 ? (int)c.np : c.C, h, tol, floor);
    }
    if (c.conv) cu_conv_destroy(c.conv);
    float *db[] = {c.dx, c.dy, c.dgrad_x, c.dp1, c.dp2, c.dgrad_p1, c.dgrad_p2, c.dmean, c.drstd, c.scratch, c.ws};
    for (int i = 0; i < 11; i++) if (db[i]) cu_buffer_free(db[i]);
    free(c.x); free(c.R); free(c.y); free(c.p1); free(c.p2); free(gx); free(gp1); free(gp2);
}

static void test_fd(void) {
    fd_run(0, 0);
    fd_run(1, 0);
    fd_run(2, 0);
    fd_run(2, 1);
    fd_run(3, 0);
    fd_run(4, 0);
    fd_run(5, 0);
}

/* ---- the whole network -------------------------------------------------------------- */

/* relu = 0 turns every ReLU off (a smooth network, strict gradient tolerances) */
static void test_network(int width, int n_res, int N, int H, int W, int precision, int relu) {
    stylenet net;
    char cfg[96], what[160];
    snprintf(cfg, sizeof cfg, "network w%d r%d b%d %dx%d %s ReLU %s", width, n_res, N, W, H, precision ? "tf32" : "fp32",
             relu ? "on" : "off");
    stylenet_acts a;
    nst_rng r;
    nst_rng_seed(&r, 5);
    ok(stylenet_build(&net, width, n_res, 1, &err), "build");
    ok(stylenet_init_params(&net, &r, &err), "init");
    if (!relu)
        for (int l = 0; l < net.n_layers; l++) net.layer[l].relu = 0;
    for (int l = 0; l < net.n_layers; l++) /* norms away from their initial values */
        if (net.layer[l].norm) {
            fill(net.layer[l].gamma, net.layer[l].C_out, 0.5f, 1);
            fill(net.layer[l].beta, net.layer[l].C_out, 0.3f, 0);
        }
    ok(stylenet_pack(&net, &err), "pack");
    ok(stylenet_acts_build(&a, &net, H, W, 1, &err), "acts");
    size_t n = (size_t)3 * H * W, np = net.n_params;
    float *x = host(N * n), *dout = host(N * n), *y = host(N * n), *yc = host(N * n), *dx = host(N * n), *dxc = host(N * n);
    float *gc = host(np), *gg = host(np), *g2 = host(np), *y2 = host(N * n);
    fill(x, N * n, 0.5f, 0.5f);
    fill(dout, N * n, 1e-2f, 0);
    memset(net.grads, 0, np * sizeof(float));
    double t0 = nst_now();
    for (int b = 0; b < N; b++) {
        memcpy(a.input, x + b * n, n * sizeof(float));
        ok(stylenet_forward(&net, &a, 0, &err), "forward");
        memcpy(yc + b * n, stylenet_output(&net, &a), n * sizeof(float));
        ok(stylenet_backward(&net, &a, dout + b * n, dxc + b * n, 0, &err), "backward");
    }
    memcpy(gc, net.grads, np * sizeof(float));
    double t_cpu = nst_now() - t0;
    /* the CPU's own sensitivity: its gradients for the input changed by a relative 1e-6
     * (how far apart two correct computations of this case may be) */
    double sens_p = -1, sens_x = -1;
    if (relu && !precision && width >= 16) {
        float *xp = host(N * n), *gp = host(np), *dxp = host(N * n);
        for (size_t i = 0; i < N * n; i++) xp[i] = x[i] * (1.0f + 1e-6f * test_rand(&rng));
        memset(net.grads, 0, np * sizeof(float));
        for (int b = 0; b < N; b++) {
            memcpy(a.input, xp + b * n, n * sizeof(float));
            ok(stylenet_forward(&net, &a, 0, &err), "forward");
            ok(stylenet_backward(&net, &a, dout + b * n, dxp + b * n, 0, &err), "backward");
        }
        memcpy(gp, net.grads, np * sizeof(float));
        sens_p = rel_l2(gp, gc, np);
        sens_x = rel_l2(dxp, dxc, N * n);
        free(xp); free(gp); free(dxp);
    }

    stylenet_cuda *g = NULL;
    ok(stylenet_cuda_create(&g, ctx, &net, 1, precision, &err), "stylenet_cuda_create");
    ok(stylenet_cuda_resize(g, N, H, W, &err), "stylenet_cuda_resize");
    float *dD = dev_from(dout, N * n), *dDX = dev(N * n);
    up(stylenet_cuda_input(g), x, N * n);
    t0 = nst_now();
    ok(stylenet_cuda_forward(g, &err), "stylenet_cuda_forward");
    ok(stylenet_cuda_backward(g, dD, dDX, &err), "stylenet_cuda_backward");
    ok(cu_sync(ctx, &err), "sync");
    double t_gpu = nst_now() - t0;
    down(y, stylenet_cuda_output(g), N * n);
    down(dx, dDX, N * n);
    ok(stylenet_cuda_download_grads(g, gg, &err), "grads");
    printf("%s (CPU %.0f ms, GPU %.1f ms incl. algorithm choice):\n", cfg, t_cpu * 1e3, t_gpu * 1e3);
    if (sens_p >= 0)
        printf("  (the CPU's gradients move by %.2e (parameters), %.2e (input) for a 1e-6 change of the input)\n", sens_p,
               sens_x);
    /* (the header comment says why the ReLUs loosen the gradients' tolerance) */
    double tol_y = precision ? 2e-2 : 1e-4, tol_g = precision ? (relu ? 0.1 : 5e-2) : (relu ? 1e-2 : 1e-3);
    snprintf(what, sizeof what, "%s: output (0..255)", cfg);
    compare(what, y, yc, N * n, tol_y);
    snprintf(what, sizeof what, "%s: parameter gradients (batch sum)", cfg);
    compare(what, gg, gc, np, tol_g);
    snprintf(what, sizeof what, "%s: input gradient", cfg);
    compare(what, dx, dxc, N * n, tol_g);
    /* the same bits a second time */
    ok(stylenet_cuda_zero_grads(g, &err), "zero");
    ok(stylenet_cuda_forward(g, &err), "stylenet_cuda_forward");
    ok(stylenet_cuda_backward(g, dD, NULL, &err), "stylenet_cuda_backward");
    down(y2, stylenet_cuda_output(g), N * n);
    ok(stylenet_cuda_download_grads(g, g2, &err), "grads");
    CHECK(memcmp(y, y2, N * n * sizeof(float)) == 0 && memcmp(gg, g2, np * sizeof(float)) == 0,
          "%s: GPU network twice: bit-identical output and gradients", cfg);
    /* inference buffers (train = 0) give the training mode's output */
    stylenet_cuda *gi = NULL;
    ok(stylenet_cuda_create(&gi, ctx, &net, 0, precision, &err), "stylenet_cuda_create");
    ok(stylenet_cuda_resize(gi, N, H, W, &err), "stylenet_cuda_resize");
    up(stylenet_cuda_input(gi), x, N * n);
    ok(stylenet_cuda_forward(gi, &err), "forward");
    down(y2, stylenet_cuda_output(gi), N * n);
    snprintf(what, sizeof what, "%s: inference buffers vs the CPU", cfg);
    compare(what, y2, yc, N * n, tol_y);
    stylenet_cuda_free(gi);
    if (!precision) {
        /* fp16 inference (NHWC, padded channels): TF32's output tolerance (the same 10-bit
         * mantissa, here also in the stored activations), and the same bits twice */
        /* (a failure here is reported, and the other tests still run) */
        gi = NULL;
        nst_status s = stylenet_cuda_create(&gi, ctx, &net, 0, NST_PRECISION_FP16, &err);
        if (!s) s = stylenet_cuda_resize(gi, N, H, W, &err);
        if (!s) s = cu_upload(ctx, stylenet_cuda_input(gi), x, N * n, &err);
        if (!s) s = stylenet_cuda_forward(gi, &err);
        if (!s) s = cu_download(ctx, y2, stylenet_cuda_output(gi), N * n, &err);
        if (!s) s = stylenet_cuda_forward(gi, &err);
        if (!s) s = cu_download(ctx, y, stylenet_cuda_output(gi), N * n, &err);
        CHECK(s == NST_OK, "%s: fp16 inference: %s", cfg, err.msg);
        if (!s) {
            snprintf(what, sizeof what, "%s: fp16 inference vs the CPU", cfg);
            compare(what, y2, yc, N * n, 2e-2);
            CHECK(memcmp(y, y2, N * n * sizeof(float)) == 0, "%s: fp16 inference twice: bit-identical", cfg);
        }
        stylenet_cuda_free(gi);
        gi = NULL;
        CHECK(stylenet_cuda_create(&gi, ctx, &net, 1, NST_PRECISION_FP16, &err) != NST_OK && strstr(err.msg, "fp16"),
              "%s: fp16 training refused (%s)", cfg, err.msg);
        stylenet_cuda_free(gi);
    }
    stylenet_cuda_free(g);
    cu_buffer_free(dD);
    cu_buffer_free(dDX);
    free(x); free(dout); free(y); free(yc); free(dx); free(dxc); free(gc); free(gg); free(g2); free(y2);
    stylenet_acts_free(&a);
    stylenet_free(&net);
}

/* nst_style_net_apply on CUDA vs the CPU, with a shipped style */
static void test_apply(void) {
    nst_style_net *cpu = NULL, *gpu = NULL, *tf = NULL, *hf = NULL;
    if (nst_style_net_load(&cpu, "starry_night", NULL, &err) != NST_OK) {
        CHECK(0, "the shipped style: %s", err.msg);
        return;
    }
    ok(nst_style_net_load(&gpu, "starry_night", NULL, &err), "load");
    ok(nst_style_net_load(&tf, "starry_night", NULL, &err), "load");
    ok(nst_style_net_load(&hf, "starry_night", NULL, &err), "load");
    ok(nst_style_net_set_device(gpu, NST_DEVICE_CUDA, NST_PRECISION_FP32, &err), "set_device");
    ok(nst_style_net_set_device(tf, NST_DEVICE_CUDA, NST_PRECISION_TF32, &err), "set_device");
    int hf_ok = nst_style_net_set_device(hf, NST_DEVICE_CUDA, NST_PRECISION_FP16, &err) == NST_OK;
    CHECK(hf_ok, "set_device fp16: %s", err.msg);
    CHECK(nst_style_net_device(gpu) == NST_DEVICE_CUDA && nst_style_net_device(cpu) == NST_DEVICE_CPU, "devices");
    static const int sizes[][2] = {{1, 1}, {7, 3}, {33, 17}, {5, 64}, {250, 131}, {640, 480}};
    for (int k = 0; k < 6; k++) {
        int w = sizes[k][0], h = sizes[k][1];
        nst_image img = {0}, rc = {0}, rg = {0}, rt = {0}, r2 = {0}, rh = {0}, rh2 = {0};
        ok(nst_image_alloc(&img, w, h, &err), "alloc");
        for (size_t i = 0; i < (size_t)w * h * 3; i++) img.pixels[i] = 127.5f + 127.5f * test_rand(&rng);
        ok(nst_style_net_apply(cpu, &img, &rc, &err), "apply cpu");
        ok(nst_style_net_apply(gpu, &img, &rg, &err), "apply cuda");
        ok(nst_style_net_apply(tf, &img, &rt, &err), "apply cuda tf32");
        ok(nst_style_net_apply(gpu, &img, &r2, &err), "apply cuda again");
        if (hf_ok && (nst_style_net_apply(hf, &img, &rh, &err) || nst_style_net_apply(hf, &img, &rh2, &err))) {
            CHECK(0, "apply %dx%d fp16: %s", w, h, err.msg);
            hf_ok = 0;
        }
        CHECK(rg.width == w && rg.height == h && rt.width == w && rt.height == h, "apply %dx%d keeps the size", w, h);
        size_t n = (size_t)w * h * 3;
        char what[96];
        snprintf(what, sizeof what, "apply starry_night %dx%d fp32", w, h);
        compare(what, rg.pixels, rc.pixels, n, 1e-4);
        snprintf(what, sizeof what, "apply starry_night %dx%d tf32", w, h);
        compare(what, rt.pixels, rc.pixels, n, 3e-2);
        CHECK(memcmp(rg.pixels, r2.pixels, n * sizeof(float)) == 0, "apply %dx%d twice on CUDA: bit-identical", w, h);
        if (hf_ok) {
            CHECK(rh.width == w && rh.height == h, "apply %dx%d fp16 keeps the size", w, h);
            /* (a CPU emulation of these roundings gives 1.2e-3, at most 1 of 255, on this
             * model; the shipped others 3e-4 to 4e-4) */
            snprintf(what, sizeof what, "apply starry_night %dx%d fp16", w, h);
            compare(what, rh.pixels, rc.pixels, n, 1e-2);
            CHECK(memcmp(rh.pixels, rh2.pixels, n * sizeof(float)) == 0, "apply %dx%d twice in fp16: bit-identical", w, h);
        }
        nst_image_free(&img); nst_image_free(&rc); nst_image_free(&rg); nst_image_free(&rt); nst_image_free(&r2);
        nst_image_free(&rh); nst_image_free(&rh2);
    }
    nst_style_net_free(cpu);
    nst_style_net_free(gpu);
    nst_style_net_free(tf);
    nst_style_net_free(hf);
}

/* ---- training -------------------------------------------------------------------------- */

/* the shared data folder: $NST_SHARED_DIR (e.g. on another machine), else the build's */
static char shared_style[4200], shared_data[4200], shared_weights[4200];
static void shared_paths(void) {
    const char *env = getenv("NST_SHARED_DIR"), *dir = env && *env ? env : NST_SHARED_DIR;
    snprintf(shared_style, sizeof shared_style, "%.4000s/images/style/starry_night.jpg", dir);
    snprintf(shared_data, sizeof shared_data, "%.4000s/datasets/photos256", dir);
    snprintf(shared_weights, sizeof shared_weights, "%.4000s/models/vgg19", dir);
}

static nst_train_config tiny_config(const char *out, nst_device device) {
    nst_train_config cfg;
    nst_train_defaults(&cfg);
    cfg.device = device;
    cfg.style_path = shared_style;
    cfg.data_dir = shared_data;
    cfg.output_path = out;
    cfg.size = 64;
    cfg.style_size = 128;
    cfg.batch = 2;
    cfg.width = 8;
    cfg.n_res = 2;
    cfg.lr = 1e-2f;
    cfg.steps = 40;
    cfg.checkpoint_every = 0;
    return cfg;
}

/* photos k.. of the dataset, 64x64, as a batch */
static int load_batch(float *batch, int first, int count) {
    for (int b = 0; b < count; b++) {
        char f[4300];
        snprintf(f, sizeof f, "%s/%05d.jpg", shared_data, (first + b) % 8 + 1);
        nst_image img = {0}, sq = {0};
        if (nst_image_load(&img, f, NULL, &err) || nst_image_resize(&sq, &img, 64, 64, &err)) {
            CHECK(0, "cannot read %s: %s", f, err.msg);
            nst_image_free(&img);
            return 0;
        }
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < 64 * 64; i++) batch[(size_t)b * 3 * 4096 + c * 4096 + i] = sq.pixels[3 * i + c] / 255.0f;
        nst_image_free(&img);
        nst_image_free(&sq);
    }
    return 1;
}

static size_t model_params(const char *path, float **out) {
    nst_style_net *sn = NULL;
    if (nst_style_net_load(&sn, path, NULL, &err)) return 0;
    nst_style_net_free(sn);
    FILE *f = fopen(path, "rb"); /* the whole file: its tensors are the parameters */
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    *out = host((size_t)len / 4 + 1);
    size_t got = fread(*out, 1, (size_t)len, f);
    fclose(f);
    return got;
}

static void test_training(const nst_vgg19 *vgg, const char *dir) {
    char out[512], out2[512], ckpt[600];
    snprintf(out, sizeof out, "%s/cuda.nstm", dir);
    snprintf(out2, sizeof out2, "%s/cuda2.nstm", dir);

    /* the first step: losses and gradients, CPU vs CUDA */
    nst_train_config cc = tiny_config(out, NST_DEVICE_CPU), cg = tiny_config(out, NST_DEVICE_CUDA);
    stylenet_trainer *tc = NULL, *tg = NULL;
    ok(stylenet_trainer_build(&tc, &cc, vgg, &err), "CPU trainer");
    ok(stylenet_trainer_build(&tg, &cg, vgg, &err), "CUDA trainer");
    if (!load_batch(stylenet_trainer_batch(tc), 0, 2) || !load_batch(stylenet_trainer_batch(tg), 0, 2)) return;
    double t0 = nst_now();
    ok(stylenet_trainer_step(tc, &err), "CPU step");
    double t1 = nst_now();
    ok(stylenet_trainer_step(tg, &err), "CUDA step");
    double t2 = nst_now();
    double lc[3], lg[3];
    stylenet_trainer_losses(tc, &lc[0], &lc[1], &lc[2]);
    stylenet_trainer_losses(tg, &lg[0], &lg[1], &lg[2]);
    printf("first training step (CPU %.0f ms, CUDA %.0f ms incl. set-up): losses CPU %.6g %.6g %.6g, CUDA %.6g %.6g %.6g\n",
           (t1 - t0) * 1e3, (t2 - t1) * 1e3, lc[0], lc[1], lc[2], lg[0], lg[1], lg[2]);
    for (int k = 0; k < 3; k++)
        CHECK(fabs(lg[k] - lc[k]) <= 1e-4 * fabs(lc[k]) + 1e-9, "loss %d: CUDA %.8g vs CPU %.8g", k, lg[k], lc[k]);
    size_t np = stylenet_trainer_net(tc)->n_params;
    float *gc = host(np), *gg = host(np);
    ok(stylenet_trainer_gradients(tc, gc, &err), "CPU gradients");
    ok(stylenet_trainer_gradients(tg, gg, &err), "CUDA gradients");
    compare("first step: parameter gradients, CUDA vs CPU", gg, gc, np, 1e-3);
    /* ... and after Adam, the same parameters (Adam's first step is lr * sign(g)) */
    /* (a gradient within rounding of 0 may flip its sign: a few parameters may differ by 2 lr) */
    compare("first step: parameters after Adam", stylenet_trainer_net(tg)->params, stylenet_trainer_net(tc)->params, np, 2e-2);
    free(gc);
    free(gg);
    stylenet_trainer_free(tc);

    /* steps replayed from a CUDA graph (from the second step on) == steps run one call at
     * a time (the tuning's cuda_no_graph, NST_CUDA_GRAPH=0), bit for bit */
    {
        stylenet_trainer *te = NULL, *tgr = NULL;
        nst_train_config ce = cg;
        ce.tuning.cuda_no_graph = 1;
        nst_status se = stylenet_trainer_build(&te, &ce, vgg, &err);
        ok(se, "CUDA trainer without graphs");
        ok(stylenet_trainer_build(&tgr, &cg, vgg, &err), "CUDA trainer");
        for (int step = 0; step < 4; step++) {
            if (!load_batch(stylenet_trainer_batch(te), 2 * step, 2) || !load_batch(stylenet_trainer_batch(tgr), 2 * step, 2)) return;
            ok(stylenet_trainer_step(te, &err), "CUDA step without graphs");
            ok(stylenet_trainer_step(tgr, &err), "CUDA step");
        }
        size_t n = stylenet_trainer_net(te)->n_params;
        double le = stylenet_trainer_losses(te, NULL, NULL, NULL), lr = stylenet_trainer_losses(tgr, NULL, NULL, NULL);
        CHECK(le == lr && memcmp(stylenet_trainer_net(te)->params, stylenet_trainer_net(tgr)->params, n * sizeof(float)) == 0,
              "4 CUDA steps, graph-replayed vs not: the same losses (%.9g, %.9g) and parameters, bit for bit", lr, le);
        printf("CUDA graph vs eager steps: %s\n", le == lr ? "the same bits" : "DIFFERENT");
        stylenet_trainer_free(te);
        stylenet_trainer_free(tgr);
    }

    /* the loss falls on CUDA: mean of the last 5 steps below 60% of the first step's */
    double first = 0, last = 0;
    for (int step = 1; step < cg.steps; step++) {
        if (!load_batch(stylenet_trainer_batch(tg), step * 2, 2)) return;
        ok(stylenet_trainer_step(tg, &err), "CUDA step");
        double loss = stylenet_trainer_losses(tg, NULL, NULL, NULL);
        if (step == 1) first = loss;
        if (step >= cg.steps - 5) last += loss / 5;
    }
    printf("CUDA tiny training: loss %.4g at step 2, %.4g over the last 5 of %d steps (%.1f%%)\n", first, last, cg.steps,
           100.0 * last / first);
    CHECK(last < 0.6 * first, "CUDA training loss fell from %.4g to only %.4g", first, last);
    stylenet_trainer_free(tg);

    /* stopped and resumed == straight through, bit for bit, on CUDA */
    cg.steps = 6;
    cg.holdout = 2;
    ok(nst_train_run(&cg, vgg, NULL, NULL, &err), "CUDA run");
    nst_train_config c2 = cg;
    c2.output_path = out2;
    c2.steps = 3;
    ok(nst_train_run(&c2, vgg, NULL, NULL, &err), "CUDA run, first half");
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", out2);
    c2.steps = 6;
    c2.resume_path = ckpt;
    ok(nst_train_run(&c2, vgg, NULL, NULL, &err), "CUDA run, resumed");
    /* the model files record no paths and no command here: byte-identical when the
     * parameters are */
    float *p1 = NULL, *p2 = NULL;
    size_t n1 = model_params(out, &p1), n2 = model_params(out2, &p2);
    CHECK(n1 > 0 && n1 == n2 && memcmp(p1, p2, n1) == 0, "CUDA: resumed training gives the same model file");
    free(p1);
    free(p2);
    char prev[600];
    snprintf(prev, sizeof prev, "%s/cuda_step000006.jpg", dir);
    CHECK(access(prev, R_OK) == 0, "preview %s written", prev);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* (FAIL lines go to stderr: keep the two in order) */
    if (nst_cuda_probe(&err) != NST_OK) {
        printf("SKIP: %s\n", err.msg);
        return 77;
    }
    char about[512];
    nst_cuda_describe(about, sizeof about);
    printf("GPU: %s\n", about);
    ok(nst_cuda_create(&ctx, &err), "nst_cuda_create");
    shared_paths();
    int quick = argc > 1 && !strcmp(argv[1], "--layers"); /* the layers only */
    printf("layers against the CPU:\n");
    test_pad();
    test_norm();
    test_norm_pad();
    test_fp16();
    test_elementwise();
    test_adam();
    test_conv();
    printf("layers against finite differences:\n");
    test_fd();
    if (!quick) {
        test_network(8, 2, 2, 36, 28, NST_PRECISION_FP32, 1);
        test_network(16, 5, 3, 132, 100, NST_PRECISION_FP32, 1);
        test_network(16, 5, 3, 132, 100, NST_PRECISION_FP32, 0);
        test_network(32, 5, 4, 256, 256, NST_PRECISION_FP32, 1);
        test_network(32, 5, 4, 256, 256, NST_PRECISION_FP32, 0);
        test_network(32, 5, 4, 256, 256, NST_PRECISION_TF32, 1);
        test_network(32, 5, 4, 256, 256, NST_PRECISION_TF32, 0);
        test_apply();
        nst_vgg19 *vgg = NULL;
        nst_train_config cfg = tiny_config("x", NST_DEVICE_CUDA);
        if (nst_vgg19_load(&vgg, shared_weights, nst_train_depth(&cfg), &err) != NST_OK) {
            CHECK(0, "weights: %s", err.msg);
        } else {
            char dir[] = "/tmp/nst_test_cuda_johnson_XXXXXX";
            CHECK(mkdtemp(dir) != NULL, "mkdtemp");
            test_training(vgg, dir);
            nst_vgg19_free(vgg);
            char cmd[256];
            snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
            if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
        }
    }
    nst_cuda_destroy(ctx);
    TEST_DONE();
}
#endif
