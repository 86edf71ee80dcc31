/* threads.c - nst's thread count, scoped to a call of the library (nst.h, nst_transfer_run).
 * OpenMP's thread count (nthreads-var) belongs to the calling thread's data environment:
 * setting it and putting the old value back around nst's work leaves the caller's own
 * parallel regions, before and after, as they were. The count itself is what the
 * reductions' fixed orders are tuned for; scoping it changes no result. */
#include <omp.h>

#include "util/util.h"

int nst_threads_begin(int threads) {
    if (threads <= 0) return 0;
    int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    return saved;
}

void nst_threads_end(int saved) {
    if (saved > 0) omp_set_num_threads(saved);
}
