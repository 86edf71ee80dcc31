/* emu_conv9.cpp - the own 9x9/1 convolution kernels of src/cuda/layers_cuda.cu (forward,
 * backward-data, weight gradient; the fp16 NHWC output layer + sigmoid) run on the CPU
 * under tests/emu_cuda.h against a direct double-precision convolution: several tiles
 * both ways, channel counts off the kernels' stages, 1 to 4 output channels, many filter
 * bands. Run by dev/emulate-conv9.sh (which extracts the kernels); no GPU needed. */

#include "kern.inc"
static dim3 conv9_grid(int W, int H, int N) { return dim3((W + C9_TW - 1) / C9_TW, (H + C9_TH - 1) / C9_TH, N); }
#include <random>
static std::mt19937 rng(3);
static float rnd() { return std::uniform_real_distribution<float>(-1, 1)(rng); }
static uint16_t f2h(float f) { _Float16 h = (_Float16)f; uint16_t b; memcpy(&b, &h, 2); return b; }
static double rel(const std::vector<float> &a, const std::vector<double> &b) {
    double e = 0, n = 0;
    for (size_t i = 0; i < a.size(); i++) e += (a[i] - b[i]) * (a[i] - b[i]), n += b[i] * b[i];
    return sqrt(e / (n + 1e-300));
}
template <int CO> static int run(int N, int Ci, int H, int W) {
    int Ho = H - 8, Wo = W - 8;
    std::vector<float> x((size_t)N * Ci * H * W), w((size_t)CO * Ci * 81), g((size_t)N * CO * Ho * Wo);
    for (auto &v : x) v = rnd();
    for (auto &v : w) v = rnd();
    for (auto &v : g) v = rnd();
    std::vector<double> y(g.size()), dx(x.size()), dw(w.size());
    for (int n = 0; n < N; n++) for (int co = 0; co < CO; co++) for (int i = 0; i < Ho; i++) for (int j = 0; j < Wo; j++) {
        double s = 0;
        for (int ci = 0; ci < Ci; ci++) for (int ky = 0; ky < 9; ky++) for (int kx = 0; kx < 9; kx++) {
            double xv = x[(((size_t)n * Ci + ci) * H + i + ky) * W + j + kx], wv = w[((size_t)co * Ci + ci) * 81 + ky * 9 + kx];
            double gv = g[(((size_t)n * CO + co) * Ho + i) * Wo + j];
            s += xv * wv;
            dx[(((size_t)n * Ci + ci) * H + i + ky) * W + j + kx] += wv * gv;
            dw[((size_t)co * Ci + ci) * 81 + ky * 9 + kx] += xv * gv;
        }
        y[(((size_t)n * CO + co) * Ho + i) * Wo + j] = s;
    }
    std::vector<float> yo(y.size(), -7), dxo(dx.size(), -7), dwo(dw.size(), 0.0f);
    launch(conv9_grid(Wo, Ho, N), dim3(C9_TW, C9_TY), [&] { conv9_fwd_kernel<CO, 0>(yo.data(), x.data(), w.data(), nullptr, Ci, Ci, H, W, Ho, Wo); });
    launch(conv9_grid(W, H, N), dim3(C9_TW, C9_TY), [&] { conv9_data_kernel<CO>(dxo.data(), g.data(), w.data(), Ci, H, W, Ho, Wo); });
    int bands, rb;
    conv9_bands(N, Ho, &bands, &rb);
    int chunks = N * bands;
    std::vector<float4> part((size_t)chunks * Ci * 81);
    launch(dim3(chunks, (Ci + 2) / 3), dim3(256), [&] { conv9_filter_kernel<CO>(part.data(), g.data(), x.data(), Ci, H, W, Ho, Wo, bands, rb); });
    int nj = CO * Ci * 81;
    launch(dim3((nj + 255) / 256), dim3(256), [&] { conv9_filter_final(dwo.data(), part.data(), CO, Ci, chunks); });
    double e1 = rel(yo, y), e2 = rel(dxo, dx), e3 = rel(dwo, dw);
    printf("CO %d N %d Ci %d %dx%d (bands %d rb %d): fwd %.2e data %.2e filter %.2e\n", CO, N, Ci, W, H, bands, rb, e1, e2, e3);
    int bad = !(e1 < 1e-5 && e2 < 1e-5 && e3 < 1e-5);
    if (CO == 3) { /* fp16 NHWC + bias + sigmoid */
        int Ce = (Ci + 7) / 8 * 8;
        std::vector<__half> xh((size_t)N * H * W * Ce), wh((size_t)8 * 81 * Ce);
        std::vector<double> yr(y.size());
        std::vector<float> xr(x.size()), wr(w.size());
        for (int n = 0; n < N; n++) for (int ci = 0; ci < Ce; ci++) for (int i = 0; i < H * W; i++) {
            uint16_t b = ci < Ci ? f2h(x[((size_t)n * Ci + ci) * H * W + i]) : 0;
            xh[((size_t)n * H * W + i) * Ce + ci].b = b;
            if (ci < Ci) xr[((size_t)n * Ci + ci) * H * W + i] = h2f_(b);
        }
        for (int co = 0; co < 8; co++) for (int k = 0; k < 81; k++) for (int ci = 0; ci < Ce; ci++) {
            uint16_t b = co < 3 && ci < Ci ? f2h(w[((size_t)co * Ci + ci) * 81 + k]) : 0;
            wh[((size_t)co * 81 + k) * Ce + ci].b = b;
            if (co < 3 && ci < Ci) wr[((size_t)co * Ci + ci) * 81 + k] = h2f_(b);
        }
        float bias[3] = {0.1f, -0.2f, 0.3f};
        for (int n = 0; n < N; n++) for (int co = 0; co < 3; co++) for (int i = 0; i < Ho; i++) for (int j = 0; j < Wo; j++) {
            double s = 0;
            for (int ci = 0; ci < Ci; ci++) for (int k = 0; k < 81; k++)
                s += (double)xr[(((size_t)n * Ci + ci) * H + i + k / 9) * W + j + k % 9] * wr[((size_t)co * Ci + ci) * 81 + k];
            yr[(((size_t)n * 3 + co) * Ho + i) * Wo + j] = 255.0 / (1.0 + exp(-(s + bias[co])));
        }
        std::vector<float> yh(y.size(), -7);
        launch(conv9_grid(Wo, Ho, N), dim3(C9_TW, C9_TY), [&] { conv9_fwd_kernel<3, 1>(yh.data(), xh.data(), wh.data(), bias, Ce, Ce, H, W, Ho, Wo); });
        double e4 = rel(yh, yr);
        printf("   fp16 NHWC Ce %d + sigmoid: %.2e\n", Ce, e4);
        bad |= !(e4 < 1e-5);
    }
    return bad;
}
int main() {
    int bad = 0;
    bad |= run<3>(2, 7, 47, 45);
    bad |= run<1>(2, 5, 9, 9);
    bad |= run<2>(1, 9, 20, 75);
    bad |= run<4>(2, 4, 13, 11);
    bad |= run<3>(2, 32, 21, 19);
    bad |= run<3>(1, 2, 650, 17);
    bad |= run<4>(2, 3, 1108, 13);
    printf(bad ? "FAIL\n" : "all OK\n");
    return bad;
}
