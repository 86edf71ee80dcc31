/* winograd_amx.c - the Winograd F(2x2,3x3) convolution with its GEMMs on AMX tiles
 * (winograd_impl.h): the same transforms and bf16 rounding as winograd_avx512bf16.c, the
 * products as TDPBF16PS on 16 output channels x 16 tiles x 16 channel pairs. Runs only where
 * cpu_bf16_best() says AMX (the CPU has AMX-BF16 and Linux granted tile data). */
#define WINO_BF16 1
#define WINO_AMX 1
#include "tensor/winograd_impl.h"
