/* winograd_avx512bf16.c - the Winograd F(2x2,3x3) convolution with its GEMMs in bf16 on
 * AVX512-BF16 (winograd_impl.h): the transforms and the sums in fp32, the transformed
 * input and weights rounded to bf16 (round to nearest even). */
#define WINO_BF16 1
#include "tensor/winograd_impl.h"
