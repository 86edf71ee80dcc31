/* losses.c - content, style (Gram) and total-variation losses. */
#include "loss/losses.h"

#include "tensor/ops.h"

double content_loss_forward(const float *F, const float *P, size_t n) {
    return sum_sq_diff(F, P, n) / (double)n;
}

void content_loss_backward(float *dF, const float *F, const float *P, size_t n, float scale) {
    float k = (float)(2.0 * scale / (double)n);
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dF[i] += k * (F[i] - P[i]);
}

double style_loss_forward(float *G, const float *F, const float *A, int C, int N, float gscale, cpu_tier tier) {
    gram_forward(G, F, C, N, gscale, tier);
    return sum_sq_diff(G, A, (size_t)C * C) / ((double)C * C);
}

void style_loss_backward(float *dF, float *dG, const float *G, const float *A, const float *F,
                         int C, int N, float gscale, float scale, cpu_tier tier) {
    size_t cc = (size_t)C * C;
    float k = (float)(2.0 * scale / (double)cc);
    #pragma omp parallel for schedule(static) if (cc >= 65536)
    for (size_t i = 0; i < cc; i++) dG[i] = k * (G[i] - A[i]);
    gram_backward(dF, dG, F, C, N, gscale, tier);
}

double tv_loss_forward(const float *x, int C, int H, int W) {
    enum { SUM_BLOCKS = 64 };
    double part[SUM_BLOCKS] = {0};
    int rows = C * H; /* row r is channel r/H, image row r%H */
    #pragma omp parallel for schedule(static)
    for (int k = 0; k < SUM_BLOCKS; k++) {
        double s = 0.0;
        for (int r = k; r < rows; r += SUM_BLOCKS) {
            int i = r % H;
            const float *row = x + (size_t)r * W;
            for (int j = 0; j + 1 < W; j++) {
                double d = (double)row[j + 1] - row[j];
                s += d * d;
            }
            if (i + 1 < H)
                for (int j = 0; j < W; j++) {
                    double d = (double)row[j + W] - row[j];
                    s += d * d;
                }
        }
        part[k] = s;
    }
    double total = 0.0;
    for (int k = 0; k < SUM_BLOCKS; k++) total += part[k];
    return total / ((double)C * H * W);
}

void tv_loss_backward(float *dx, const float *x, int C, int H, int W, float scale) {
    float k = (float)(2.0 * scale / ((double)C * H * W));
    #pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++)
        for (int i = 0; i < H; i++) {
            const float *row = x + ((size_t)c * H + i) * W;
            float *drow = dx + ((size_t)c * H + i) * W;
            for (int j = 0; j < W; j++) {
                float g = 0.0f, v = row[j];
                if (j + 1 < W) g += v - row[j + 1];
                if (j > 0) g += v - row[j - 1];
                if (i + 1 < H) g += v - row[j + W];
                if (i > 0) g += v - row[j - W];
                drow[j] += k * g;
            }
        }
}
