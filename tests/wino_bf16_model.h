/* wino_bf16_model.h - what the bf16 Winograd kernels (AVX512-BF16 and AMX) compute, in
 * double, for the tests that check them (test_conv.c, test_winograd_amx.c). */
#ifndef NST_WINO_BF16_MODEL_H
#define NST_WINO_BF16_MODEL_H

#include <math.h>
#include <stdlib.h>

#include "tensor/bf16.h"

/* What the bf16 Winograd kernels compute, in double: the transforms of the input and the
 * weights rounded to bf16 (as the kernels round them), their products summed exactly, the
 * output transform exact. out is (n_out,H,W), inp (n_in,H,W); the kernel k(o,i) is
 * weight[o][i] or, with flip, weight[i][o] flipped in space (the backward pass). */
static inline void wino_bf16_model(double *out, const float *inp, const float *weight, int C_in, int n_in, int n_out,
                            int H, int W, int flip) {
    static const double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
    int nty = (H + 1) / 2, ntx = (W + 1) / 2;
    size_t T = (size_t)nty * ntx;
    double *U = malloc(sizeof(double) * 16 * n_out * n_in), *V = malloc(sizeof(double) * 16 * n_in * T);
    for (int o = 0; o < n_out; o++)
        for (int i = 0; i < n_in; i++) {
            double g[3][3], t[4][3];
            for (int k = 0; k < 9; k++)
                g[k / 3][k % 3] = flip ? weight[((size_t)i * C_in + o) * 9 + (8 - k)] : weight[((size_t)o * C_in + i) * 9 + k];
            for (int a = 0; a < 4; a++)
                for (int c = 0; c < 3; c++) t[a][c] = G[a][0] * g[0][c] + G[a][1] * g[1][c] + G[a][2] * g[2][c];
            for (int a = 0; a < 4; a++)
                for (int b = 0; b < 4; b++)
                    U[((size_t)(a * 4 + b) * n_out + o) * n_in + i] =
                        bf16_round((float)(t[a][0] * G[b][0] + t[a][1] * G[b][1] + t[a][2] * G[b][2]));
        }
    for (int i = 0; i < n_in; i++)
        for (size_t tl = 0; tl < T; tl++) {
            int ty = (int)(tl / ntx), tx = (int)(tl % ntx);
            double d[4][4], e[4][4];
            for (int r = 0; r < 4; r++)
                for (int c = 0; c < 4; c++) {
                    int y = 2 * ty - 1 + r, x = 2 * tx - 1 + c;
                    d[r][c] = y >= 0 && y < H && x >= 0 && x < W ? inp[((size_t)i * H + y) * W + x] : 0.0;
                }
            for (int r = 0; r < 4; r++) { /* d B */
                e[r][0] = d[r][0] - d[r][2];
                e[r][1] = d[r][1] + d[r][2];
                e[r][2] = d[r][2] - d[r][1];
                e[r][3] = d[r][1] - d[r][3];
            }
            for (int c = 0; c < 4; c++) { /* B^T (d B) */
                double v[4] = {e[0][c] - e[2][c], e[1][c] + e[2][c], e[2][c] - e[1][c], e[1][c] - e[3][c]};
                for (int a = 0; a < 4; a++) V[((size_t)(a * 4 + c) * n_in + i) * T + tl] = bf16_round((float)v[a]);
            }
        }
    for (int o = 0; o < n_out; o++)
        for (size_t tl = 0; tl < T; tl++) {
            double m[4][4];
            for (int xi = 0; xi < 16; xi++) {
                double sum = 0;
                for (int i = 0; i < n_in; i++) sum += U[((size_t)xi * n_out + o) * n_in + i] * V[((size_t)xi * n_in + i) * T + tl];
                m[xi / 4][xi % 4] = sum;
            }
            double sA[4][2], y[2][2];
            for (int a = 0; a < 4; a++) {
                sA[a][0] = m[a][0] + m[a][1] + m[a][2];
                sA[a][1] = m[a][1] - m[a][2] - m[a][3];
            }
            for (int c = 0; c < 2; c++) {
                y[0][c] = sA[0][c] + sA[1][c] + sA[2][c];
                y[1][c] = sA[1][c] - sA[2][c] - sA[3][c];
            }
            int ty = (int)(tl / ntx), tx = (int)(tl % ntx);
            for (int a = 0; a < 2; a++)
                for (int c = 0; c < 2; c++) {
                    int yy = 2 * ty + a, xx = 2 * tx + c;
                    if (yy < H && xx < W) out[((size_t)o * H + yy) * W + xx] = y[a][c];
                }
        }
    free(U);
    free(V);
}

static inline double rel_l2_d(const float *a, const double *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += (a[i] - b[i]) * (a[i] - b[i]);
        den += b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

#endif
