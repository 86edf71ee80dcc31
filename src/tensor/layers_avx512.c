/* layers_avx512.c - instance normalisation compiled for AVX-512 (instance_norm_impl.h):
 * the same code and bits as layers.c's, its double accumulators in vector registers. */
#define NORM_FN(name) name##_avx512
#include "tensor/instance_norm_impl.h"
