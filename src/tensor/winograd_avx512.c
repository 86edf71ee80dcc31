/* winograd_avx512.c - the Winograd F(2x2,3x3) convolution in fp32 (winograd_impl.h). */
#define WINO_BF16 0
#include "tensor/winograd_impl.h"
