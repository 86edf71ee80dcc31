/* test_conv2d.c - the general KxK, stride-S convolution (conv2d.h): the reference
 * gradients against central finite differences in double, the fast paths (dispatched,
 * and portable) against the reference on many shapes (odd sizes, (H-K) not a multiple of
 * S, channel counts off the register blocks, the Johnson network's layers at small
 * sizes), determinism, accumulation of the weight gradient, and re-packing. */
#include <omp.h>
#include <stdint.h>

#include "tensor/bf16.h"
#include "tensor/conv2d.h"
#include "test_util.h"

#define FAST_TOL 1e-5 /* relative L2 of the fast paths against the reference */
/* the packs' tuning: NST_KERNEL from the environment (set in main), portable for one block */
static nst_tuning tuning;


static float *rand_array(size_t n, unsigned long long *st) {
    float *a = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) a[i] = test_rand(st);
    return a;
}

/* L = sum(conv(inp, weight, bias) * R) in double; inp (Ci,H,W), weight (Co,Ci,K,K),
 * bias (Co), R (Co,Ho,Wo) */
static double conv_loss(const double *inp, const double *weight, const double *bias, const float *R,
                        int Ci, int Co, int H, int W, int K, int S) {
    const int Ho = (H - K) / S + 1, Wo = (W - K) / S + 1;
    double L = 0.0;
    for (int co = 0; co < Co; co++)
        for (int i = 0; i < Ho; i++)
            for (int j = 0; j < Wo; j++) {
                double s = bias[co];
                for (int ci = 0; ci < Ci; ci++)
                    for (int kh = 0; kh < K; kh++)
                        for (int kw = 0; kw < K; kw++)
                            s += inp[((size_t)ci * H + i * S + kh) * W + j * S + kw] *
                                 weight[(((size_t)co * Ci + ci) * K + kh) * K + kw];
                L += s * R[((size_t)co * Ho + i) * Wo + j];
            }
    return L;
}

/* Central differences of conv_loss for each element of v (inp, weight or bias, in
 * double) against the analytic gradient g: max abs error over max |g|. L is linear in
 * each element, so the differences are exact but for rounding: a tight tolerance means
 * something. */
static double fd_check(double *v, size_t n, const float *g, const double *inp, const double *weight,
                       const double *bias, const float *R, int Ci, int Co, int H, int W, int K, int S) {
    const double eps = 1e-2;
    double maxerr = 0.0, maxg = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double keep = v[i];
        v[i] = keep + eps;
        double lp = conv_loss(inp, weight, bias, R, Ci, Co, H, W, K, S);
        v[i] = keep - eps;
        double lm = conv_loss(inp, weight, bias, R, Ci, Co, H, W, K, S);
        v[i] = keep;
        double fd = (lp - lm) / (2 * eps);
        if (fabs(fd - g[i]) > maxerr) maxerr = fabs(fd - g[i]);
        if (fabs(g[i]) > maxg) maxg = fabs(g[i]);
    }
    return maxerr / maxg;
}

static void test_reference(int Ci, int Co, int H, int W, int K, int S) {
    const int Ho = (H - K) / S + 1, Wo = (W - K) / S + 1;
    unsigned long long st = 99 + Ci * 31 + H * 7 + K;
    size_t ni = (size_t)Ci * H * W, no = (size_t)Co * Ho * Wo, nw = (size_t)Co * Ci * K * K;
    float *inp = rand_array(ni, &st), *weight = rand_array(nw, &st), *bias = rand_array(Co, &st);
    float *R = rand_array(no, &st);
    double *di = malloc(ni * sizeof(double)), *dw = malloc(nw * sizeof(double)), *db = malloc(Co * sizeof(double));
    for (size_t i = 0; i < ni; i++) di[i] = inp[i];
    for (size_t i = 0; i < nw; i++) dw[i] = weight[i];
    for (int i = 0; i < Co; i++) db[i] = bias[i];

    float *gi = malloc(ni * sizeof(float)), *gw = calloc(nw, sizeof(float)), *gb = calloc(Co, sizeof(float));
    for (size_t i = 0; i < ni; i++) gi[i] = 123.0f; /* must be overwritten */
    conv2d_backward_input_ref(gi, R, weight, Ci, Co, H, W, K, S);
    conv2d_backward_weight_ref(gw, gb, R, inp, Ci, Co, H, W, K, S);
    double e;
    e = fd_check(di, ni, gi, di, dw, db, R, Ci, Co, H, W, K, S);
    CHECK(e < 1e-5, "ref dinp vs finite differences Ci=%d Co=%d H=%d W=%d K=%d S=%d: %g", Ci, Co, H, W, K, S, e);
    e = fd_check(dw, nw, gw, di, dw, db, R, Ci, Co, H, W, K, S);
    CHECK(e < 1e-5, "ref dweight vs finite differences Ci=%d Co=%d H=%d W=%d K=%d S=%d: %g", Ci, Co, H, W, K, S, e);
    e = fd_check(db, Co, gb, di, dw, db, R, Ci, Co, H, W, K, S);
    CHECK(e < 1e-5, "ref dbias vs finite differences Ci=%d Co=%d H=%d W=%d K=%d S=%d: %g", Ci, Co, H, W, K, S, e);

    /* the forward reference against the double loss */
    float *out = malloc(no * sizeof(float));
    conv2d_forward_ref(out, inp, weight, bias, Ci, Co, H, W, K, S);
    double L = 0.0;
    for (size_t i = 0; i < no; i++) L += (double)out[i] * R[i];
    double Ld = conv_loss(di, dw, db, R, Ci, Co, H, W, K, S);
    CHECK(fabs(L - Ld) <= 1e-5 * (fabs(Ld) + 1.0), "forward_ref vs double: %g vs %g", L, Ld);

    free(inp); free(weight); free(bias); free(R); free(di); free(dw); free(db);
    free(gi); free(gw); free(gb); free(out);
}

/* The three fast passes (portable: the portable path) against the reference on one shape;
 * with a workspace kept across the calls or none. Also: the weight gradient accumulates,
 * and a second run gives the same bits. */
static void test_fast(int Ci, int Co, int H, int W, int K, int S, int portable, int use_ws) {
    const int Ho = (H - K) / S + 1, Wo = (W - K) / S + 1;
    unsigned long long st = 7 + Ci * 13 + Co * 5 + H + W * 3 + K * 11 + S;
    size_t ni = (size_t)Ci * H * W, no = (size_t)Co * Ho * Wo, nw = (size_t)Co * Ci * K * K;
    float *inp = rand_array(ni, &st), *weight = rand_array(nw, &st), *bias = rand_array(Co, &st);
    float *dout = rand_array(no, &st), *dw0 = rand_array(nw, &st), *db0 = rand_array(Co, &st);
    float *out_r = malloc(no * sizeof(float)), *out_f = malloc(no * sizeof(float));
    float *di_r = malloc(ni * sizeof(float)), *di_f = malloc(ni * sizeof(float));
    float *dw_r = malloc(nw * sizeof(float)), *dw_f = malloc(nw * sizeof(float));
    float *db_r = malloc(Co * sizeof(float)), *db_f = malloc(Co * sizeof(float));
    float *tmp = malloc((ni > no ? (ni > nw ? ni : nw) : (no > nw ? no : nw)) * sizeof(float));
    conv2d_workspace ws0 = {0}, *ws = use_ws ? &ws0 : NULL;
    conv2d_packed p = {0};
    CHECK(conv2d_pack(&p, weight, Ci, Co, K, S, &tuning, NST_PRECISION_FP32) == 0, "pack");
    const char *tag = portable ? "portable" : conv2d_kernel_name(&p);

    conv2d_forward_ref(out_r, inp, weight, bias, Ci, Co, H, W, K, S);
    conv2d_backward_input_ref(di_r, dout, weight, Ci, Co, H, W, K, S);
    memcpy(dw_r, dw0, nw * sizeof(float));
    memcpy(db_r, db0, Co * sizeof(float));
    conv2d_backward_weight_ref(dw_r, db_r, dout, inp, Ci, Co, H, W, K, S);

    for (size_t i = 0; i < no; i++) out_f[i] = NAN;
    for (size_t i = 0; i < ni; i++) di_f[i] = NAN; /* overwritten, rows the conv skips too */
    memcpy(dw_f, dw0, nw * sizeof(float));
    memcpy(db_f, db0, Co * sizeof(float));
    int rc;
    if (portable) {
        rc = conv2d_forward_portable(out_f, inp, &p, bias, H, W, ws);
        rc |= conv2d_backward_input_portable(di_f, dout, &p, H, W, ws);
        rc |= conv2d_backward_weight_portable(dw_f, db_f, dout, inp, Ci, Co, H, W, K, S, ws);
    } else {
        rc = conv2d_forward(out_f, inp, &p, bias, H, W, ws);
        rc |= conv2d_backward_input(di_f, dout, &p, H, W, ws);
        rc |= conv2d_backward_weight(dw_f, db_f, dout, inp, &p, H, W, ws);
    }
    CHECK(rc == 0, "fast passes return 0");
    double ef = rel_l2(out_f, out_r, no), ei = rel_l2(di_f, di_r, ni);
    /* the gradient alone (minus the starting values), so the check is not diluted */
    for (size_t i = 0; i < nw; i++) { dw_f[i] -= dw0[i]; dw_r[i] -= dw0[i]; }
    for (int i = 0; i < Co; i++) { db_f[i] -= db0[i]; db_r[i] -= db0[i]; }
    double ew = rel_l2(dw_f, dw_r, nw), eb = rel_l2(db_f, db_r, Co);
    CHECK(ef <= FAST_TOL && ei <= FAST_TOL && ew <= FAST_TOL && eb <= FAST_TOL,
          "%s Ci=%d Co=%d H=%d W=%d K=%d S=%d ws=%d: fwd %g bwd_in %g bwd_w %g bwd_b %g", tag, Ci, Co, H,
          W, K, S, use_ws, ef, ei, ew, eb);

    /* same bits again; and the weight gradient accumulates (a second call adds again) */
    if (portable) conv2d_forward_portable(tmp, inp, &p, bias, H, W, ws);
    else conv2d_forward(tmp, inp, &p, bias, H, W, ws);
    int same = memcmp(tmp, out_f, no * sizeof(float)) == 0;
    if (portable) conv2d_backward_input_portable(tmp, dout, &p, H, W, ws);
    else conv2d_backward_input(tmp, dout, &p, H, W, ws);
    same &= memcmp(tmp, di_f, ni * sizeof(float)) == 0;
    memcpy(tmp, dw0, nw * sizeof(float));
    memcpy(dw_f, dw0, nw * sizeof(float));
    if (portable) {
        conv2d_backward_weight_portable(tmp, NULL, dout, inp, Ci, Co, H, W, K, S, ws);
        conv2d_backward_weight_portable(dw_f, NULL, dout, inp, Ci, Co, H, W, K, S, ws);
    } else {
        conv2d_backward_weight(tmp, NULL, dout, inp, &p, H, W, ws);
        conv2d_backward_weight(dw_f, NULL, dout, inp, &p, H, W, ws);
    }
    same &= memcmp(tmp, dw_f, nw * sizeof(float)) == 0;
    CHECK(same, "%s Ci=%d Co=%d H=%d W=%d K=%d S=%d: deterministic", tag, Ci, Co, H, W, K, S);
    memset(tmp, 0, nw * sizeof(float));
    for (int rep = 0; rep < 2; rep++) {
        if (portable) conv2d_backward_weight_portable(tmp, NULL, dout, inp, Ci, Co, H, W, K, S, ws);
        else conv2d_backward_weight(tmp, NULL, dout, inp, &p, H, W, ws);
    }
    for (size_t i = 0; i < nw; i++) dw_r[i] *= 2.0f;
    CHECK(rel_l2(tmp, dw_r, nw) <= FAST_TOL, "%s: backward_weight accumulates", tag);

    conv2d_packed_free(&p);
    conv2d_workspace_free(&ws0);
    free(inp); free(weight); free(bias); free(dout); free(dw0); free(db0); free(out_r); free(out_f);
    free(di_r); free(di_f); free(dw_r); free(dw_f); free(db_r); free(db_f); free(tmp);
}

/* The weight gradient gives the same bits on 1 and 2 threads (fixed chunks, fixed order). */
static void test_threads(int Ci, int Co, int H, int W, int K, int S) {
    const int Ho = (H - K) / S + 1, Wo = (W - K) / S + 1;
    unsigned long long st = 5;
    size_t ni = (size_t)Ci * H * W, no = (size_t)Co * Ho * Wo, nw = (size_t)Co * Ci * K * K;
    float *inp = rand_array(ni, &st), *dout = rand_array(no, &st);
    float *a = calloc(nw, sizeof(float)), *b = calloc(nw, sizeof(float));
    float *ba = calloc(Co, sizeof(float)), *bb = calloc(Co, sizeof(float));
    conv2d_packed p = {0}; /* the gradient reads the shape and kernels only: zero weights */
    CHECK(conv2d_pack(&p, a, Ci, Co, K, S, &tuning, NST_PRECISION_FP32) == 0, "pack");
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    conv2d_backward_weight(a, ba, dout, inp, &p, H, W, NULL);
    omp_set_num_threads(2);
    conv2d_backward_weight(b, bb, dout, inp, &p, H, W, NULL);
    omp_set_num_threads(nt);
    conv2d_packed_free(&p);
    CHECK(memcmp(a, b, nw * sizeof(float)) == 0 && memcmp(ba, bb, Co * sizeof(float)) == 0,
          "backward_weight: 1 and 2 threads give the same bits (Ci=%d Co=%d H=%d K=%d S=%d)", Ci, Co, H, K, S);
    free(inp); free(dout); free(a); free(b); free(ba); free(bb);
}

/* Packing again into the same struct (a weight update; a new shape) gives the new conv. */
static void test_repack(void) {
    const int Ci = 64, Co = 64, K = 3, S = 1, H = 14, W = 13, Ho = 12, Wo = 11;
    unsigned long long st = 77;
    float *w1 = rand_array((size_t)Co * Ci * 9, &st), *w2 = rand_array((size_t)Co * Ci * 9, &st);
    float *inp = rand_array((size_t)Ci * H * W, &st);
    float *o_r = malloc((size_t)Co * Ho * Wo * sizeof(float)), *o_f = malloc((size_t)Co * Ho * Wo * sizeof(float));
    conv2d_packed p = {0};
    conv2d_workspace ws = {0};
    CHECK(conv2d_pack(&p, w1, Ci, Co, K, S, &tuning, NST_PRECISION_FP32) == 0, "pack");
    conv2d_forward(o_f, inp, &p, NULL, H, W, &ws);
    float *fwd = p.fwd;
    CHECK(conv2d_pack(&p, w2, Ci, Co, K, S, &tuning, NST_PRECISION_FP32) == 0, "re-pack");
    CHECK(p.fwd == fwd, "re-pack of the same shape reuses the memory");
    conv2d_forward(o_f, inp, &p, NULL, H, W, &ws);
    conv2d_forward_ref(o_r, inp, w2, NULL, Ci, Co, H, W, K, S);
    CHECK(rel_l2(o_f, o_r, (size_t)Co * Ho * Wo) <= FAST_TOL, "re-packed forward");
    /* a different shape in the same struct: 5 -> 3, K=5, S=2 */
    float *o2_r = malloc(3 * 5 * 5 * sizeof(float)), *o2_f = malloc(3 * 5 * 5 * sizeof(float));
    CHECK(conv2d_pack(&p, w1, 5, 3, 5, 2, &tuning, NST_PRECISION_FP32) == 0, "re-pack, new shape");
    float *inp2 = rand_array(5 * 13 * 14, &st);
    conv2d_forward(o2_f, inp2, &p, NULL, 13, 14, &ws);
    conv2d_forward_ref(o2_r, inp2, w1, NULL, 5, 3, 13, 14, 5, 2);
    CHECK(rel_l2(o2_f, o2_r, 3 * 5 * 5) <= FAST_TOL, "re-packed forward, new shape");
    conv2d_packed_free(&p);
    conv2d_workspace_free(&ws);
    free(w1); free(w2); free(inp); free(o_r); free(o_f); free(o2_r); free(o2_f); free(inp2);
}

/* ---- bf16 ---------------------------------------------------------------------------- */

#define BF16_MODEL_TOL 1e-5 /* relative L2 against the double model of the same bf16 rounding */
#define BF16_TOL 1e-2       /* relative L2 against the fp32 reference (measured: see main) */
static double bf16_worst[3]; /* the worst relative L2 against fp32: forward, bwd-input, bwd-weight */

static double rel_l2_d(const float *a, const double *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static double *bf16_copy(const float *a, size_t n) {
    double *d = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) d[i] = bf16_round(a[i]);
    return d;
}

/* The three passes of a bf16 pack: against a double model that rounds inputs and weights
 * to bf16 as the kernels do (the bias and dbias in fp32, unrounded), against the fp32
 * reference, and the same bits on 1 and 2 threads. Where the layer runs on conv3x3
 * (use3: K=3, S=1) its forward and backward to the input are conv3x3's (test_conv.c
 * checks their bf16 against a model of Winograd's rounding): fp32 reference only. */
static void test_bf16(int Ci, int Co, int H, int W, int K, int S) {
    const int Ho = (H - K) / S + 1, Wo = (W - K) / S + 1;
    unsigned long long st = 3 + Ci * 17 + Co * 7 + H * 5 + W + K * 13 + S;
    size_t ni = (size_t)Ci * H * W, no = (size_t)Co * Ho * Wo, nw = (size_t)Co * Ci * K * K;
    float *inp = rand_array(ni, &st), *weight = rand_array(nw, &st), *bias = rand_array(Co, &st);
    float *dout = rand_array(no, &st);
    float *ref = malloc(no * sizeof(float)), *got = malloc(no * sizeof(float)), *got1 = malloc(no * sizeof(float));
    float *dref = malloc(ni * sizeof(float)), *dgot = malloc(ni * sizeof(float)), *dgot1 = malloc(ni * sizeof(float));
    float *wref = calloc(nw, sizeof(float)), *wgot = calloc(nw, sizeof(float)), *wgot1 = calloc(nw, sizeof(float));
    float *bref = calloc(Co, sizeof(float)), *bgot = calloc(Co, sizeof(float)), *bgot1 = calloc(Co, sizeof(float));
    double *mo = calloc(no, sizeof(double)), *mi = calloc(ni, sizeof(double)), *mw = calloc(nw, sizeof(double));
    double *xi = bf16_copy(inp, ni), *xw = bf16_copy(weight, nw), *xd = bf16_copy(dout, no);
    conv2d_packed p = {0};
    conv2d_workspace ws = {0};
    CHECK(conv2d_pack(&p, weight, Ci, Co, K, S, &tuning, NST_PRECISION_BF16) == 0, "pack bf16");
    CHECK(p.bf16 == BF16_AVX512 && (p.use3 || (p.fwd16 && p.bwd16)) && strcmp(conv2d_kernel_name(&p), "avx512bf16") == 0,
          "bf16 pack %d->%d K=%d S=%d: %s", Ci, Co, K, S, conv2d_kernel_name(&p));

    /* the model: the three sums in double on the rounded values */
    for (int co = 0; co < Co; co++)
        for (int i = 0; i < Ho; i++)
            for (int j = 0; j < Wo; j++) {
                size_t o = ((size_t)co * Ho + i) * Wo + j;
                double s = bias[co];
                for (int ci = 0; ci < Ci; ci++)
                    for (int kh = 0; kh < K; kh++)
                        for (int kw = 0; kw < K; kw++) {
                            size_t x = ((size_t)ci * H + i * S + kh) * W + j * S + kw;
                            size_t t = (((size_t)co * Ci + ci) * K + kh) * K + kw;
                            s += xi[x] * xw[t];
                            mi[x] += xd[o] * xw[t];
                            mw[t] += xd[o] * xi[x];
                        }
                mo[o] = s;
            }
    conv2d_forward_ref(ref, inp, weight, bias, Ci, Co, H, W, K, S);
    conv2d_backward_input_ref(dref, dout, weight, Ci, Co, H, W, K, S);
    conv2d_backward_weight_ref(wref, bref, dout, inp, Ci, Co, H, W, K, S);
    for (size_t i = 0; i < no; i++) got[i] = NAN;
    for (size_t i = 0; i < ni; i++) dgot[i] = NAN;
    int rc = conv2d_forward(got, inp, &p, bias, H, W, &ws);
    rc |= conv2d_backward_input(dgot, dout, &p, H, W, &ws);
    rc |= conv2d_backward_weight(wgot, bgot, dout, inp, &p, H, W, &ws);
    CHECK(rc == 0, "bf16 passes return 0");
    double em[3] = {rel_l2_d(got, mo, no), rel_l2_d(dgot, mi, ni), rel_l2_d(wgot, mw, nw)};
    double er[3] = {rel_l2(got, ref, no), rel_l2(dgot, dref, ni), rel_l2(wgot, wref, nw)};
    static const char *pass[3] = {"forward", "backward-input", "backward-weight"};
    for (int k = 0; k < 3; k++) {
        if (!(er[k] <= bf16_worst[k])) bf16_worst[k] = er[k];
        if (k == 2 || !p.use3)
            CHECK(em[k] < BF16_MODEL_TOL, "bf16 %s %d->%d %dx%d K=%d S=%d against its model: %g", pass[k], Ci, Co, H, W,
                  K, S, em[k]);
        CHECK(er[k] < BF16_TOL, "bf16 %s %d->%d %dx%d K=%d S=%d against fp32: %g", pass[k], Ci, Co, H, W, K, S, er[k]);
    }
    CHECK(rel_l2(bgot, bref, Co) <= FAST_TOL, "bf16 %d->%d K=%d S=%d: dbias in fp32", Ci, Co, K, S);

    /* the same bits on 1 thread as on 2 (no workspace: a fresh scratch each time) */
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    conv2d_forward(got1, inp, &p, bias, H, W, NULL);
    conv2d_backward_input(dgot1, dout, &p, H, W, NULL);
    conv2d_backward_weight(wgot1, bgot1, dout, inp, &p, H, W, NULL);
    omp_set_num_threads(2);
    memset(wgot, 0, nw * sizeof(float));
    memset(bgot, 0, Co * sizeof(float));
    conv2d_forward(got, inp, &p, bias, H, W, NULL);
    conv2d_backward_input(dgot, dout, &p, H, W, NULL);
    conv2d_backward_weight(wgot, bgot, dout, inp, &p, H, W, NULL);
    omp_set_num_threads(nt);
    CHECK(memcmp(got, got1, no * sizeof(float)) == 0 && memcmp(dgot, dgot1, ni * sizeof(float)) == 0 &&
              memcmp(wgot, wgot1, nw * sizeof(float)) == 0 && memcmp(bgot, bgot1, Co * sizeof(float)) == 0,
          "bf16 %d->%d K=%d S=%d: the same bits on 1 and 2 threads", Ci, Co, K, S);

    conv2d_packed_free(&p);
    conv2d_workspace_free(&ws);
    free(inp); free(weight); free(bias); free(dout); free(ref); free(got); free(got1); free(dref); free(dgot);
    free(dgot1); free(wref); free(wgot); free(wgot1); free(bref); free(bgot); free(bgot1); free(mo); free(mi);
    free(mw); free(xi); free(xw); free(xd);
}

typedef struct { int Ci, Co, H, W, K, S; } shape;

int main(void) {
    nst_error terr;
    nst_tuning_from_env(&tuning, &terr);
    /* the reference against finite differences: K in {1,3,9}, S in {1,2}, odd sizes */
    static const shape ref_shapes[] = {
        {1, 1, 5, 7, 1, 1},  {3, 5, 7, 5, 1, 2},   {5, 3, 9, 7, 3, 1},  {17, 1, 6, 5, 3, 2},
        {1, 17, 7, 8, 3, 2}, {3, 3, 11, 10, 9, 1}, {1, 5, 12, 11, 9, 2}, {3, 2, 9, 9, 5, 2},
    };
    for (size_t i = 0; i < sizeof(ref_shapes) / sizeof(ref_shapes[0]); i++) {
        const shape *s = &ref_shapes[i];
        test_reference(s->Ci, s->Co, s->H, s->W, s->K, s->S);
    }

    /* fast against the reference */
    static const shape shapes[] = {
        /* odd sizes, (H-K) not a multiple of S, channels off the blocks of 8/16 */
        {1, 1, 5, 7, 1, 1},     {1, 1, 6, 9, 1, 2},     {3, 5, 9, 7, 3, 1},     {5, 3, 10, 9, 3, 2},
        {17, 17, 13, 21, 3, 1}, {17, 5, 12, 37, 3, 2},  {5, 17, 19, 18, 5, 2},  {3, 4, 20, 35, 7, 1},
        {4, 2, 14, 15, 7, 2},   {2, 1, 11, 40, 9, 1},   {1, 9, 12, 13, 9, 2},   {6, 7, 11, 50, 9, 1},
        {9, 6, 3, 3, 3, 1},     {9, 6, 3, 4, 3, 2},     {70, 66, 9, 19, 3, 1},  {64, 64, 4, 5, 3, 1},
        {33, 20, 8, 70, 1, 2},  {16, 16, 35, 34, 3, 2}, {8, 24, 18, 17, 1, 1},
        /* the Johnson layers (w = 32) at small sizes */
        {3, 32, 28, 30, 9, 1},   /* c1 */
        {32, 64, 22, 21, 3, 2},  /* c2 */
        {64, 128, 13, 14, 3, 2}, /* c3 */
        {128, 128, 10, 12, 3, 1}, /* residual */
        {128, 64, 18, 17, 3, 1}, /* u1 */
        {64, 32, 26, 27, 3, 1},  /* u2 */
        {32, 3, 30, 28, 9, 1},   /* out */
        /* slim (w = 16) */
        {3, 16, 24, 24, 9, 1},  {16, 32, 18, 18, 3, 2}, {64, 64, 12, 12, 3, 1}, {16, 3, 24, 25, 9, 1},
    };
    const size_t ns = sizeof(shapes) / sizeof(shapes[0]);
    for (size_t i = 0; i < ns; i++) {
        const shape *s = &shapes[i];
        test_fast(s->Ci, s->Co, s->H, s->W, s->K, s->S, 0, (int)(i % 2));
        test_fast(s->Ci, s->Co, s->H, s->W, s->K, s->S, 1, (int)(i % 2 == 0));
    }

    /* the tuning's kernel portable (NST_KERNEL=portable) through the public entry points */
    nst_tuning keep = tuning;
    tuning.kernel = NST_KERNEL_PORTABLE;
    {
        conv2d_packed p = {0};
        float w[27] = {0};
        CHECK(conv2d_pack(&p, w, 1, 3, 3, 1, &tuning, NST_PRECISION_FP32) == 0, "pack");
        CHECK(strcmp(conv2d_kernel_name(&p), "portable") == 0, "kernel portable: %s", conv2d_kernel_name(&p));
        conv2d_packed_free(&p);
    }
    test_fast(17, 5, 12, 37, 3, 2, 0, 1);
    test_fast(128, 128, 10, 12, 3, 1, 0, 1);
    test_fast(32, 3, 30, 28, 9, 1, 0, 0);
    tuning = keep;

    test_threads(32, 64, 41, 43, 3, 2);
    test_threads(3, 32, 60, 70, 9, 1);
    test_threads(128, 128, 40, 40, 3, 1);
    test_repack();

    /* fp32 packs carry no bf16; neither do bf16 packs where the tuning allows no bf16 kernel */
    {
        conv2d_packed p = {0};
        float *w = calloc(32 * 3 * 81, sizeof(float));
        CHECK(conv2d_pack(&p, w, 3, 32, 9, 1, &tuning, NST_PRECISION_FP32) == 0 && p.bf16 == BF16_NONE && !p.fwd16 &&
                  !p.bwd16, "fp32 pack: no bf16");
        nst_tuning t = tuning;
        t.kernel = NST_KERNEL_AVX512;
        CHECK(conv2d_pack(&p, w, 3, 32, 9, 1, &t, NST_PRECISION_BF16) == 0 && p.bf16 == BF16_NONE && !p.fwd16,
              "bf16 pack under NST_KERNEL=avx512: fp32");
        conv2d_packed_free(&p);
        free(w);
    }
    if (cpu_bf16_kernel(tuning.kernel) != BF16_NONE && cpu_kernel_tier(tuning.kernel) == CPU_AVX512) {
        /* K = 9/3/1, S = 1/2, 3 channels, odd counts, 32..128, odd sizes, rows past 32 pixels */
        static const shape bshapes[] = {
            {3, 32, 28, 31, 9, 1},   {32, 3, 30, 27, 9, 1},  {32, 64, 23, 21, 3, 2},  {64, 128, 13, 15, 3, 2},
            {128, 128, 12, 11, 3, 1}, {64, 32, 19, 18, 3, 1}, {5, 7, 11, 13, 1, 1},    {7, 9, 12, 9, 1, 2},
            {3, 5, 9, 10, 3, 2},     {17, 9, 13, 40, 5, 2},  {33, 20, 8, 70, 1, 2},   {9, 6, 3, 4, 3, 2},
            {3, 3, 9, 75, 3, 1},     {1, 1, 6, 37, 7, 1},    {2, 17, 11, 80, 3, 2},
        };
        for (size_t i = 0; i < sizeof(bshapes) / sizeof(bshapes[0]); i++) {
            const shape *s = &bshapes[i];
            test_bf16(s->Ci, s->Co, s->H, s->W, s->K, s->S);
        }
        printf("bf16: worst relative L2 error vs the fp32 reference: forward %.3g, backward-input %.3g, "
               "backward-weight %.3g (tolerance %g)\n", bf16_worst[0], bf16_worst[1], bf16_worst[2], BF16_TOL);
    } else {
        printf("note: no AVX512-BF16 here (or NST_KERNEL rules it out): bf16 kernels not tested\n");
    }
    printf("conv2d kernel: %s\n", cpu_kernel_tier(tuning.kernel) == CPU_AVX512 ? "avx512" : "portable");
    TEST_DONE();
}
