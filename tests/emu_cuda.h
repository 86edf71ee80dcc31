/* emu_cuda.h - just enough of CUDA to run small kernels on the CPU (tests/emu_conv9.cpp):
 * each block's threads are std::threads, __syncthreads a std::barrier, __shared__ a
 * static (blocks run one after another). For checking indexing without a GPU; slow. */
#pragma once
#include <barrier>
#include <thread>
#include <vector>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <algorithm>
#include <cstdio>
#include <functional>
struct dim3 { unsigned x = 1, y = 1, z = 1; dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {} };
struct float4 { float x, y, z, w; };
static inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
struct __half { uint16_t b; };
thread_local dim3 threadIdx, blockIdx;
thread_local std::barrier<> *bar_;
static dim3 blockDim, gridDim;
#define __global__
#define __device__
#define __launch_bounds__(x)
#define __shared__ static
#define __syncthreads() bar_->arrive_and_wait()
using std::min;
static float h2f_(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    float f;
    if (e == 0) f = ldexpf((float)m, -24);
    else { uint32_t x = ((e + 112u) << 23) | (m << 13); memcpy(&f, &x, 4); }
    return sign ? -f : f;
}
static inline float __half2float(__half h) { return h2f_(h.b); }
/* runs a kernel: blocks one after another, each block's threads as std::threads */
static void launch(dim3 g, dim3 b, std::function<void()> k) {
    blockDim = b; gridDim = g;
    int nt = b.x * b.y * b.z;
    for (unsigned bz = 0; bz < g.z; bz++) for (unsigned by = 0; by < g.y; by++) for (unsigned bx = 0; bx < g.x; bx++) {
        std::barrier<> bar(nt);
        std::vector<std::thread> ts;
        for (int t = 0; t < nt; t++) ts.emplace_back([&, t] {
            threadIdx = dim3(t % b.x, (t / b.x) % b.y, t / (b.x * b.y));
            blockIdx = dim3(bx, by, bz);
            bar_ = &bar;
            k();
        });
        for (auto &t : ts) t.join();
    }
}
