/* reduce.c - sums over long vectors in double, in a fixed number of blocks whatever the
 * number of threads, so that losses and optimizer steps are reproducible bit for bit. */
#include "tensor/ops.h"

#define SUM_BLOCKS 64

/* sum_i a[i]*b[i] if square_diff is 0, else sum_i (a[i]-b[i])^2 (b may be NULL: 0) */
static double block_sum(const float *a, const float *b, size_t n, int square_diff) {
    double part[SUM_BLOCKS];
    size_t block = (n + SUM_BLOCKS - 1) / SUM_BLOCKS;
    /* (short vectors, such as a 64x64 Gram, cost less than waking a second thread) */
    #pragma omp parallel for schedule(static) if (n >= 32768)
    for (int k = 0; k < SUM_BLOCKS; k++) {
        size_t lo = (size_t)k * block, hi = lo + block < n ? lo + block : n;
        double s = 0.0;
        if (square_diff) {
            for (size_t i = lo; i < hi; i++) {
                double d = (double)a[i] - (b ? (double)b[i] : 0.0);
                s += d * d;
            }
        } else {
            for (size_t i = lo; i < hi; i++) s += (double)a[i] * b[i];
        }
        part[k] = s;
    }
    double total = 0.0;
    for (int k = 0; k < SUM_BLOCKS; k++) total += part[k];
    return total;
}

double dot_product(const float *a, const float *b, size_t n) { return block_sum(a, b, n, 0); }
double sum_sq_diff(const float *a, const float *b, size_t n) { return block_sum(a, b, n, 1); }
