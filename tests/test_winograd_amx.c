/* test_winograd_amx.c - the AMX instantiation of the Winograd convolution
 * (src/tensor/winograd_impl.h with WINO_AMX), run on any CPU with AVX512-BF16: the tile
 * instructions are replaced by a C emulation of their specification (TILELOADD,
 * TILESTORED, TILEZERO, TDPBF16PS on 16 x 64-byte tiles), so the layouts, strides and
 * padding of the AMX packs and kernel are checked against the double model of the bf16
 * rounding even where no AMX exists (CI). On a CPU with AMX, test_conv runs the real
 * instructions through the same packs. */
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "tensor/ops.h"
#include "test_util.h"
#include "wino_bf16_model.h"

/* ---- the emulated tiles (per thread, as the hardware's are) ---------------------------- */

typedef struct {
    unsigned char b[16][64];
} emu_tile;
static _Thread_local emu_tile emu_reg[8];
static _Thread_local int emu_configured;

static void emu_load(int t, const void *base, size_t stride) {
    for (int r = 0; r < 16; r++) memcpy(emu_reg[t].b[r], (const char *)base + r * stride, 64);
}
static void emu_store(int t, void *base, size_t stride) {
    for (int r = 0; r < 16; r++) memcpy((char *)base + r * stride, emu_reg[t].b[r], 64);
}
/* TDPBF16PS: C[m][n] += A[m][2k] B[k][2n] + A[m][2k+1] B[k][2n+1] (fp32 C, bf16 A and B) */
static void emu_dpbf16(int c, int a, int b) {
    for (int m = 0; m < 16; m++)
        for (int n = 0; n < 16; n++) {
            float acc;
            memcpy(&acc, emu_reg[c].b[m] + 4 * n, 4);
            for (int k = 0; k < 16; k++) {
                uint16_t a0, a1, b0, b1;
                memcpy(&a0, emu_reg[a].b[m] + 4 * k, 2);
                memcpy(&a1, emu_reg[a].b[m] + 4 * k + 2, 2);
                memcpy(&b0, emu_reg[b].b[k] + 4 * n, 2);
                memcpy(&b1, emu_reg[b].b[k] + 4 * n + 2, 2);
                acc += bf16_to_float(a0) * bf16_to_float(b0) + bf16_to_float(a1) * bf16_to_float(b1);
            }
            memcpy(emu_reg[c].b[m] + 4 * n, &acc, 4);
        }
}

#undef _tile_loadd
#undef _tile_stored
#undef _tile_zero
#undef _tile_dpbf16ps
#undef _tile_loadconfig
#undef _tile_release
#define _tile_loadd(t, base, stride) emu_load(t, base, stride)
#define _tile_stored(t, base, stride) emu_store(t, base, stride)
#define _tile_zero(t) memset(&emu_reg[t], 0, sizeof(emu_tile))
#define _tile_dpbf16ps(c, a, b) emu_dpbf16(c, a, b)
#define _tile_loadconfig(cfg) ((void)(cfg), emu_configured = 1)
#define _tile_release() (emu_configured = 0)

#define conv3x3_run_winograd_amx conv3x3_run_winograd_amx_emulated
#define WINO_BF16 1
#define WINO_AMX 1
#include "tensor/winograd_impl.h"

int conv3x3_pack_bf16_as(conv3x3_packed *p, const float *weight, int C_in, int C_out, cpu_bf16_tier t);

static float *rand_array(size_t n, unsigned long long *st) {
    float *a = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) a[i] = test_rand(st);
    return a;
}

static void test_amx_vs_model(int C_in, int C_out, int H, int W) {
    unsigned long long st = 91 + (unsigned long long)C_in * 11 + C_out * 3 + H * 7 + W;
    size_t ni = (size_t)C_in * H * W, no = (size_t)C_out * H * W;
    float *inp = rand_array(ni, &st), *weight = rand_array((size_t)C_out * C_in * 9, &st);
    float *bias = rand_array(C_out, &st), *dout = rand_array(no, &st), *mask = rand_array(ni, &st);
    float *got = malloc(no * sizeof(float)), *dgot = malloc(ni * sizeof(float));
    double *model = malloc(no * sizeof(double)), *dmodel = malloc(ni * sizeof(double));
    conv3x3_packed p;
    CHECK(conv3x3_pack_bf16_as(&p, weight, C_in, C_out, BF16_AMX) == 0, "pack amx");
    wino_bf16_model(model, inp, weight, C_in, C_in, C_out, H, W, 0);
    for (size_t i = 0; i < no; i++) got[i] = NAN;
    CHECK(conv3x3_run_winograd_amx_emulated(got, inp, p.wino16_fwd, bias, NULL, 1, C_in, C_out, H, W, NULL) == 0, "runs");
    for (int o = 0; o < C_out; o++)
        for (size_t k = 0; k < (size_t)H * W; k++) {
            double v = model[(size_t)o * H * W + k] + bias[o];
            model[(size_t)o * H * W + k] = v > 0 ? v : 0;
        }
    double e = rel_l2_d(got, model, no);
    CHECK(e < 1e-5, "amx forward+bias+relu %d->%d %dx%d against the model: %g", C_in, C_out, H, W, e);
    wino_bf16_model(dmodel, dout, weight, C_in, C_out, C_in, H, W, 1);
    for (size_t i = 0; i < ni; i++)
        if (!(mask[i] > 0)) dmodel[i] = 0;
    for (size_t i = 0; i < ni; i++) dgot[i] = NAN;
    CHECK(conv3x3_run_winograd_amx_emulated(dgot, dout, p.wino16_bwd, NULL, mask, 0, C_out, C_in, H, W, NULL) == 0, "runs");
    e = rel_l2_d(dgot, dmodel, ni);
    CHECK(e < 1e-5, "amx backward+mask %d->%d %dx%d against the model: %g", C_in, C_out, H, W, e);
    CHECK(!emu_configured, "tiles released");
    conv3x3_packed_free(&p);
    free(inp); free(weight); free(bias); free(dout); free(mask); free(got); free(dgot); free(model); free(dmodel);
}

int main(void) {
    if (cpu_bf16_best() == BF16_NONE) {
        printf("note: no AVX512-BF16 here (the emulated AMX path converts with it): skipped\n");
        return 77;
    }
    printf("AMX kernels under emulation (real AMX on this CPU: %s)\n", cpu_bf16_best() == BF16_AMX ? "yes" : "no");
    static const int shapes[][4] = {
        /* C_in, C_out, H, W: one tile, partial tiles and vectors, 16-channel blocks with
         * remainders, pairs padded to 16 (C_in 64 = 32 pairs; 65 and 100 pad), both
         * schedules (V in L2 or not) */
        {64, 64, 1, 1}, {64, 64, 7, 9}, {65, 67, 9, 13}, {100, 24, 6, 47}, {128, 256, 14, 14}, {512, 64, 5, 3},
    };
    for (int nt = 1; nt <= 2; nt++) {
        omp_set_num_threads(nt);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            test_amx_vs_model(shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3]);
    }
    TEST_DONE();
}
