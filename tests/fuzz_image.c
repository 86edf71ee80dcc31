/* fuzz_image.c - libFuzzer entry point for the image loader: writes each input to a
 * temporary file and decodes it with nst_image_load (PNG, JPEG, PPM are all reached,
 * since the format comes from the content). Not part of the CMake build (the test glob
 * only takes tests/test_*.c): scripts/fuzz.sh builds it with clang's libFuzzer and the
 * sanitizers and runs it on the seed corpus in tests/fuzz/corpus/image.
 *
 * A small max_pixels keeps every run fast, so the fuzzer explores the parsers rather
 * than spending its time filling huge images. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nst.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[] = "/tmp/nst_fuzz_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return 0;
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        close(fd);
        unlink(path);
        return 0;
    }
    if (size) fwrite(data, 1, size, f);
    fclose(f);

    nst_image img;
    nst_error err;
    memset(&err, 0, sizeof err);
    const nst_limits small = {1 << 20, 0};
    nst_status st = nst_image_load(&img, path, &small, &err);
    if (st == NST_OK) {
        /* Touch every pixel, so reading uninitialised or freed memory would show up. */
        size_t n = (size_t)img.width * img.height * 3;
        float sum = 0;
        for (size_t i = 0; i < n; i++) sum += img.pixels[i];
        if (!(img.width > 0 && img.height > 0) || sum < 0 || sum != sum) abort();
        nst_image_free(&img);
    } else {
        /* A failure must leave nothing allocated and explain itself on one line that
         * names the file. */
        if (img.pixels || !strstr(err.msg, path) || strchr(err.msg, '\n')) abort();
    }
    unlink(path);
    return 0;
}
