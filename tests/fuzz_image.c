/* fuzz_image.c - libFuzzer entry point for the image decoders: decodes each input from
 * memory with nst_image_decode (every format is reached, since it comes from the
 * content), and re-encodes what decodes to each writable format and decodes that again.
 * Not part of the CMake build (the test glob only takes tests/test_*.c): scripts/fuzz.sh
 * builds it with clang's libFuzzer and the sanitizers and runs it on the seed corpus in
 * tests/fuzz/corpus/image.
 *
 * A small max_pixels keeps every run fast, so the fuzzer explores the parsers rather
 * than spending its time filling huge images; only small images are re-encoded. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nst.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NAME "fuzz-input"
#define MAX_ENCODE_PIXELS (128 * 128)

/* A failure must leave nothing allocated and explain itself on one line naming the input. */
static void check_failure(const nst_image *img, const nst_error *err) {
    if (img->pixels || img->alpha || img->icc || img->exif || !strstr(err->msg, NAME) || strchr(err->msg, '\n'))
        abort();
}

/* A decoded image is sane: every pixel and alpha value finite and within 0..255, sizes
 * consistent. Reading every value also shows uninitialised or freed memory. */
static void check_image(const nst_image *img) {
    if (!img->pixels || img->width < 1 || img->height < 1) abort();
    if (!img->icc != !img->icc_size || !img->exif != !img->exif_size) abort();
    if (img->bit_depth != 8 && img->bit_depth != 16) abort();
    size_t n = (size_t)img->width * img->height;
    for (size_t i = 0; i < 3 * n; i++)
        if (!(img->pixels[i] >= 0.0f && img->pixels[i] <= 255.0f)) abort();
    for (size_t i = 0; img->alpha && i < n; i++)
        if (!(img->alpha[i] >= 0.0f && img->alpha[i] <= 255.0f)) abort();
}

/* Re-encodes img and decodes the result: the same size always; for the lossless formats
 * the same pixels to the rounding of the bit depth (alpha and colour separately). */
static void round_trip(const nst_image *img, nst_format format, int bits) {
    nst_save_options o = {format, 0, bits, 0};
    unsigned char *buf = NULL;
    size_t n = 0;
    nst_error err = {{0}};
    nst_status st = nst_image_encode(img, &o, &buf, &n, &err);
    if (st == NST_ERR_ARG && format == NST_FORMAT_WEBP && (img->width > 16383 || img->height > 16383)) return;
    if (st != NST_OK || !buf || !n) abort();
    nst_image back;
    st = nst_image_decode(&back, buf, n, NAME, NULL, &err);
    free(buf);
    if (st != NST_OK) abort();
    check_image(&back);
    if (back.width != img->width || back.height != img->height) abort();
    if (format == NST_FORMAT_PNG || format == NST_FORMAT_TIFF) {
        float tol = bits == 16 ? 0.01f : 1.01f, atol = bits == 16 ? 0.01f : 0.5f;
        size_t np = (size_t)img->width * img->height;
        for (size_t i = 0; i < np; i++) {
            float a0 = img->alpha ? img->alpha[i] : 255.0f, a1 = back.alpha ? back.alpha[i] : 255.0f;
            if (fabsf(a0 - a1) > atol) abort();
            for (int c = 0; c < 3; c++)
                if (fabsf(img->pixels[3 * i + c] - back.pixels[3 * i + c]) > tol) abort();
        }
    }
    nst_image_free(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nst_image img;
    nst_error err;
    memset(&err, 0, sizeof err);
    const nst_limits small = {1 << 20, 0};
    nst_status st = nst_image_decode(&img, data, size, NAME, &small, &err);
    if (st != NST_OK) {
        check_failure(&img, &err);
        return 0;
    }
    check_image(&img);
    if ((size_t)img.width * img.height <= MAX_ENCODE_PIXELS) {
        round_trip(&img, NST_FORMAT_PNG, 8);
        round_trip(&img, NST_FORMAT_PNG, 16);
        round_trip(&img, NST_FORMAT_TIFF, 8);
        round_trip(&img, NST_FORMAT_TIFF, 16);
        round_trip(&img, NST_FORMAT_JPEG, 8);
        round_trip(&img, NST_FORMAT_WEBP, 8);
    }
    nst_image_free(&img);
    return 0;
}
