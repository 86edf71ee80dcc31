/* compare.c - how close two images are: PSNR and SSIM (Wang et al. 2004), for measuring
 * reconstructions (the decoders of universal style transfer) against their photos. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nst.h"
#include "util/util.h"

static nst_status same_shape(const nst_image *a, const nst_image *b, nst_error *err) {
    if (a->width != b->width || a->height != b->height || a->width < 1 || a->height < 1)
        return nst_fail(err, NST_ERR_ARG, "images of %dx%d and %dx%d cannot be compared", a->width, a->height, b->width,
                        b->height);
    return NST_OK;
}

nst_status nst_image_psnr(const nst_image *a, const nst_image *b, double *psnr, nst_error *err) {
    nst_status s = same_shape(a, b, err);
    if (s) return s;
    size_t n = (size_t)3 * a->width * a->height;
    double se = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a->pixels[i] - b->pixels[i];
        se += d * d;
    }
    *psnr = se > 0.0 ? 10.0 * log10(255.0 * 255.0 * (double)n / se) : INFINITY;
    return NST_OK;
}

/* Rec. 601 luma of pixel i */
static double luma(const nst_image *im, size_t i) {
    const float *p = im->pixels + 3 * i;
    return 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
}

/* the 11-tap Gaussian (sigma 1.5) of the SSIM paper, normalised over the taps inside the
 * image (so that borders and images smaller than the window still get a mean) */
#define SSIM_R 5
static void gauss_taps(double *g) {
    double sum = 0.0;
    for (int k = -SSIM_R; k <= SSIM_R; k++) sum += g[k + SSIM_R] = exp(-(double)(k * k) / (2.0 * 1.5 * 1.5));
    for (int k = 0; k <= 2 * SSIM_R; k++) g[k] /= sum;
}

/* out (H,W) = the Gaussian-weighted local mean of in (H,W), separable, renormalised at borders */
static void blur(double *out, const double *in, double *tmp, int W, int H, const double *g) {
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double s = 0.0, wsum = 0.0;
            for (int k = -SSIM_R; k <= SSIM_R; k++)
                if (x + k >= 0 && x + k < W) s += g[k + SSIM_R] * in[(size_t)y * W + x + k], wsum += g[k + SSIM_R];
            tmp[(size_t)y * W + x] = s / wsum;
        }
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double s = 0.0, wsum = 0.0;
            for (int k = -SSIM_R; k <= SSIM_R; k++)
                if (y + k >= 0 && y + k < H) s += g[k + SSIM_R] * tmp[(size_t)(y + k) * W + x], wsum += g[k + SSIM_R];
            out[(size_t)y * W + x] = s / wsum;
        }
}

nst_status nst_image_ssim(const nst_image *a, const nst_image *b, double *ssim, nst_error *err) {
    nst_status s = same_shape(a, b, err);
    if (s) return s;
    int W = a->width, H = a->height;
    size_t n = (size_t)W * H;
    double *buf = nst_alloc_array(9 * n, sizeof(double));
    if (!buf) return nst_fail(err, NST_ERR_NOMEM, "out of memory comparing %dx%d images", W, H);
    double *x = buf, *y = x + n, *xx = y + n, *yy = xx + n, *xy = yy + n, *mx = xy + n, *my = mx + n, *tmp = my + n,
           *m2 = tmp + n;
    for (size_t i = 0; i < n; i++) {
        x[i] = luma(a, i), y[i] = luma(b, i);
        xx[i] = x[i] * x[i], yy[i] = y[i] * y[i], xy[i] = x[i] * y[i];
    }
    double g[2 * SSIM_R + 1];
    gauss_taps(g);
    blur(mx, x, tmp, W, H, g);
    blur(my, y, tmp, W, H, g);
    const double C1 = (0.01 * 255) * (0.01 * 255), C2 = (0.03 * 255) * (0.03 * 255);
    double sum = 0.0;
    /* the second moments, one at a time into m2, then the map's mean */
    blur(m2, xx, tmp, W, H, g);
    memcpy(xx, m2, n * sizeof *xx);
    blur(m2, yy, tmp, W, H, g);
    memcpy(yy, m2, n * sizeof *yy);
    blur(m2, xy, tmp, W, H, g);
    for (size_t i = 0; i < n; i++) {
        double vx = xx[i] - mx[i] * mx[i], vy = yy[i] - my[i] * my[i], cxy = m2[i] - mx[i] * my[i];
        sum += (2 * mx[i] * my[i] + C1) * (2 * cxy + C2) / ((mx[i] * mx[i] + my[i] * my[i] + C1) * (vx + vy + C2));
    }
    free(buf);
    *ssim = sum / (double)n;
    return NST_OK;
}
