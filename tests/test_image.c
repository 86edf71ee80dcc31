/* test_image.c - image decoding, encoding and resampling: every PNG and JPEG flavour
 * the loader claims to handle (the test files are written here with libpng and
 * libjpeg), EXIF orientation, the oracle's images, bad and hostile input, atomic saves
 * and Lanczos resizing. Temporary files live in a fresh mkdtemp() folder. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gif_lib.h>
#include <jpeglib.h>
#include <png.h>
#include <tiffio.h>
#include <webp/decode.h>
#include <webp/encode.h>
#include <webp/mux.h>

#include "nst.h"
#include "test_util.h"

static char tmpdir[256];

/* A path inside the temporary folder (one of a few rotating buffers). */
static const char *tpath(const char *name) {
    static char buf[4][512];
    static int next = 0;
    char *p = buf[next++ & 3];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static unsigned char *read_bytes(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
    *len = fread(b, 1, (size_t)n, f);
    fclose(f);
    return b;
}

static void write_bytes(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(2); }
    fwrite(data, 1, len, f);
    fclose(f);
}

/* Files in the temporary folder whose name contains `part`. */
static int count_files_with(const char *part) {
    DIR *d = opendir(tmpdir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (strstr(e->d_name, part)) n++;
    if (d) closedir(d);
    return n;
}

static void remove_tmpdir(void) {
    DIR *d = opendir(tmpdir);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
        if (remove(p) != 0) fprintf(stderr, "cannot remove %s: %s\n", p, strerror(errno));
    }
    if (d) closedir(d);
    rmdir(tmpdir);
}

/* ------------------------------------------------------------------------- */
/* Writing test files                                                        */
/* ------------------------------------------------------------------------- */

/* Writes a PNG from packed rows in libpng's layout (big-endian 16-bit samples). */
static void write_png(const char *path, int w, int h, int color, int depth, int interlace,
                      const unsigned char *data, const png_color *pal, int npal,
                      const unsigned char *trans, int ntrans) {
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (!f || !png || !info || setjmp(png_jmpbuf(png))) { fprintf(stderr, "write_png failed\n"); exit(2); }
    png_init_io(png, f);
    png_set_IHDR(png, info, w, h, depth, color, interlace, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (pal) png_set_PLTE(png, info, pal, npal);
    if (trans) png_set_tRNS(png, info, trans, ntrans, NULL);
    png_write_info(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    png_bytep *rows = malloc(sizeof *rows * h);
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)data + y * rowbytes;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    fclose(f);
}

/* Writes a JPEG (1 or 3 components) with an optional APP1 segment and ICC profile. */
static void write_jpeg_icc(const char *path, int w, int h, int comps, const unsigned char *data, int quality,
                           const unsigned char *app1, unsigned app1_len, const unsigned char *icc, size_t icc_n) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(2); }
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = w;
    c.image_height = h;
    c.input_components = comps;
    c.in_color_space = comps == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    jpeg_start_compress(&c, TRUE);
    if (app1) jpeg_write_marker(&c, JPEG_APP0 + 1, app1, app1_len);
    if (icc) jpeg_write_icc_profile(&c, icc, (unsigned)icc_n);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)data + (size_t)c.next_scanline * w * comps;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
}

static void write_jpeg(const char *path, int w, int h, int comps, const unsigned char *data, int quality,
                       const unsigned char *app1, unsigned app1_len) {
    write_jpeg_icc(path, w, h, comps, data, quality, app1, app1_len, NULL, 0);
}

static uint32_t crc32_bytes(const unsigned char *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
    }
    return c ^ 0xFFFFFFFFu;
}

static void put32(unsigned char *p, uint32_t v) {
    p[0] = v >> 24, p[1] = v >> 16, p[2] = v >> 8, p[3] = v;
}

/* A PNG that is only a signature, an IHDR claiming w x h, the start of an IDAT and
 * IEND: what an attacker would send. */
static void write_png_header_only(const char *path, uint32_t w, uint32_t h) {
    unsigned char b[8 + 25 + 16 + 12];
    memcpy(b, "\x89PNG\r\n\x1a\n", 8);
    put32(b + 8, 13);
    memcpy(b + 12, "IHDR", 4);
    put32(b + 16, w);
    put32(b + 20, h);
    b[24] = 8, b[25] = 2, b[26] = 0, b[27] = 0, b[28] = 0;
    put32(b + 29, crc32_bytes(b + 12, 17));
    put32(b + 33, 4);
    memcpy(b + 37, "IDAT\x78\x9c\x00\x00", 8);
    put32(b + 45, crc32_bytes(b + 37, 8));
    put32(b + 49, 0);
    memcpy(b + 53, "IEND", 4);
    put32(b + 57, crc32_bytes(b + 53, 4));
    write_bytes(path, b, sizeof b);
}

/* ------------------------------------------------------------------------- */
/* Checks                                                                    */
/* ------------------------------------------------------------------------- */

static const float *px(const nst_image *img, int x, int y) {
    return img->pixels + ((size_t)y * img->width + x) * 3;
}

static int near_rgb(const float *p, float r, float g, float b, float tol) {
    return fabsf(p[0] - r) <= tol && fabsf(p[1] - g) <= tol && fabsf(p[2] - b) <= tol;
}

/* The load must fail with `want`, and the one-line message must name the file. */
static void expect_fail(const char *path, size_t max_pixels, nst_status want, const char *what) {
    nst_image img;
    nst_error err = {{0}};
    const nst_limits lim = {max_pixels, 0};
    nst_status st = nst_image_load(&img, path, &lim, &err);
    CHECK(st == want, "%s: status %d (%s), want %d; msg: %s", what, st, nst_status_name(st), want, err.msg);
    CHECK(img.pixels == NULL, "%s: pixels left behind", what);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    CHECK(strstr(err.msg, base) != NULL, "%s: message does not name the file: %s", what, err.msg);
    CHECK(strchr(err.msg, '\n') == NULL, "%s: message is not one line: %s", what, err.msg);
    if (st == NST_OK) nst_image_free(&img);
}

/* ------------------------------------------------------------------------- */
/* Tests                                                                     */
/* ------------------------------------------------------------------------- */

static void test_alloc(void) {
    nst_image img = {0};
    nst_error err;
    nst_image_free(&img); /* safe on a zeroed struct */
    CHECK(nst_image_alloc(&img, 0, 5, &err) == NST_ERR_ARG, "zero width accepted");
    CHECK(nst_image_alloc(&img, 5, -1, &err) == NST_ERR_ARG, "negative height accepted");
    CHECK(nst_image_alloc(&img, NST_MAX_DIMENSION + 1, 1, &err) == NST_ERR_ARG, "too wide accepted");
    CHECK(nst_image_alloc(&img, 3, 2, &err) == NST_OK, "alloc: %s", err.msg);
    int zero = 1;
    for (int i = 0; i < 18; i++) zero &= img.pixels[i] == 0.0f;
    CHECK(zero && img.width == 3 && img.height == 2, "alloc not zero-filled");
    nst_image_free(&img);
    CHECK(img.pixels == NULL, "free left a pointer");
    nst_image_free(&img);
}

static void fill_pattern(nst_image *img) {
    for (int y = 0; y < img->height; y++)
        for (int x = 0; x < img->width; x++)
            for (int c = 0; c < 3; c++)
                img->pixels[((size_t)y * img->width + x) * 3 + c] = (float)((x * 37 + y * 11 + c * 70) % 256);
}

static void test_png_roundtrip(void) {
    nst_image a, b;
    nst_error err;
    nst_image_alloc(&a, 7, 5, &err);
    fill_pattern(&a);
    a.pixels[0] = -20.0f;  /* clamped to 0 */
    a.pixels[1] = 300.0f;  /* clamped to 255 */
    a.pixels[2] = 99.6f;   /* rounded to 100 */
    const char *p = tpath("round.PNG");
    CHECK(nst_image_save(&a, p, &err) == NST_OK, "save png: %s", err.msg);
    CHECK(nst_image_load(&b, p, NULL, &err) == NST_OK, "load png: %s", err.msg);
    CHECK(b.width == 7 && b.height == 5, "png size %dx%d", b.width, b.height);
    a.pixels[0] = 0, a.pixels[1] = 255, a.pixels[2] = 100;
    int same = b.pixels != NULL;
    for (int i = 0; same && i < 7 * 5 * 3; i++) same = a.pixels[i] == b.pixels[i];
    CHECK(same, "png round trip not exact");
    CHECK(count_files_with(".tmp-") == 0, "temporary file left behind");
    nst_image_free(&a);
    nst_image_free(&b);
}

static void test_jpeg_roundtrip(void) {
    nst_image a, b;
    nst_error err;
    nst_image_alloc(&a, 64, 48, &err);
    for (int y = 0; y < 48; y++)
        for (int x = 0; x < 64; x++) {
            float *p = a.pixels + (y * 64 + x) * 3;
            p[0] = x * 4.0f, p[1] = y * 5.0f, p[2] = 128.0f + 60.0f * sinf(x * 0.2f + y * 0.1f);
        }
    const char *names[2] = {"round.jpg", "round.JPEG"};
    for (int k = 0; k < 2; k++) {
        const char *p = tpath(names[k]);
        CHECK(nst_image_save(&a, p, &err) == NST_OK, "save jpeg: %s", err.msg);
        CHECK(nst_image_load(&b, p, NULL, &err) == NST_OK, "load jpeg: %s", err.msg);
        CHECK(b.width == 64 && b.height == 48, "jpeg size %dx%d", b.width, b.height);
        if (!b.pixels) continue;
        double maxd = 0, sum = 0;
        for (int i = 0; i < 64 * 48 * 3; i++) {
            double d = fabs(a.pixels[i] - b.pixels[i]);
            if (d > maxd) maxd = d;
            sum += d;
        }
        CHECK(maxd < 12 && sum / (64 * 48 * 3) < 2.0, "jpeg round trip: max %.1f mean %.2f", maxd,
              sum / (64 * 48 * 3));
        nst_image_free(&b);
    }
    nst_image_free(&a);
}

static void test_png_flavours(void) {
    nst_image img;
    nst_error err;

    /* 16-bit RGB keeps precision: 1000 -> 3.891, not a rounded 4. */
    {
        unsigned vals[6] = {1000, 40000, 65535, 0, 257 * 77, 12345};
        unsigned char d[2 * 3 * 2];
        for (int i = 0; i < 6; i++) d[2 * i] = vals[i] >> 8, d[2 * i + 1] = vals[i] & 255;
        write_png(tpath("rgb16.png"), 2, 1, PNG_COLOR_TYPE_RGB, 16, PNG_INTERLACE_NONE, d, NULL, 0, NULL, 0);
        CHECK(nst_image_load(&img, tpath("rgb16.png"), NULL, &err) == NST_OK, "rgb16: %s", err.msg);
        int ok = img.pixels != NULL;
        for (int i = 0; ok && i < 6; i++) ok = fabs(img.pixels[i] - vals[i] * 255.0 / 65535.0) < 1e-4;
        CHECK(ok, "16-bit values lost precision");
        CHECK(img.pixels && img.pixels[4] == 77.0f, "16-bit 257*77 is not exactly 77");
        nst_image_free(&img);
    }
    /* 8-bit grey. */
    {
        unsigned char d[4] = {0, 50, 200, 255};
        write_png(tpath("grey.png"), 2, 2, PNG_COLOR_TYPE_GRAY, 8, PNG_INTERLACE_NONE, d, NULL, 0, NULL, 0);
        CHECK(nst_image_load(&img, tpath("grey.png"), NULL, &err) == NST_OK, "grey: %s", err.msg);
        CHECK(img.pixels && near_rgb(px(&img, 1, 0), 50, 50, 50, 0) && near_rgb(px(&img, 0, 1), 200, 200, 200, 0),
              "grey values");
        nst_image_free(&img);
    }
    /* 1-bit grey: 0 and 255. */
    {
        unsigned char d[2] = {0xA0, 0x40}; /* row 0: 1 0 1, row 1: 0 1 0 */
        write_png(tpath("grey1.png"), 3, 2, PNG_COLOR_TYPE_GRAY, 1, PNG_INTERLACE_NONE, d, NULL, 0, NULL, 0);
        CHECK(nst_image_load(&img, tpath("grey1.png"), NULL, &err) == NST_OK, "grey1: %s", err.msg);
        CHECK(img.pixels && near_rgb(px(&img, 0, 0), 255, 255, 255, 0) && near_rgb(px(&img, 1, 0), 0, 0, 0, 0) &&
                  near_rgb(px(&img, 1, 1), 255, 255, 255, 0),
              "1-bit grey values");
        nst_image_free(&img);
    }
    /* Grey + alpha, composited on white. */
    {
        unsigned char d[6] = {0, 0, 100, 255, 0, 128};
        write_png(tpath("greya.png"), 3, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 8, PNG_INTERLACE_NONE, d, NULL, 0, NULL, 0);
        CHECK(nst_image_load(&img, tpath("greya.png"), NULL, &err) == NST_OK, "grey+alpha: %s", err.msg);
        float half = 255.0f * (1.0f - 128.0f / 255.0f);
        CHECK(img.pixels && near_rgb(px(&img, 0, 0), 255, 255, 255, 0) && near_rgb(px(&img, 1, 0), 100, 100, 100, 0) &&
                  near_rgb(px(&img, 2, 0), half, half, half, 0.01f),
              "grey+alpha compositing");
        nst_image_free(&img);
    }
    /* 16-bit grey + alpha. */
    {
        unsigned char d[4] = {0x80, 0x00, 0xFF, 0xFF};
        write_png(tpath("greya16.png"), 1, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 16, PNG_INTERLACE_NONE, d, NULL, 0, NULL, 0);
        CHECK(nst_image_load(&img, tpath("greya16.png"), NULL, &err) == NST_OK, "grey+alpha 16: %s", err.msg);
        float v = (float)(32768 * 255.0 / 65535.0);
        CHECK(img.pixels && near_rgb(px(&img, 0, 0), v, v, v, 1e-3f), "16-bit grey+alpha");
        nst_image_free(&img);
    }
    /* Palette with tRNS: opaque red, transparent green, half-transparent blue. */
    {
        png_color pal[3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
        unsigned char trans[3] = {255, 0, 128};
        unsigned char d[3] = {0, 1, 2};
        write_png(tpath("pal.png"), 3, 1, PNG_COLOR_TYPE_PALETTE, 8, PNG_INTERLACE_NONE, d, pal, 3, trans, 3);
        CHECK(nst_image_load(&img, tpath("pal.png"), NULL, &err) == NST_OK, "palette: %s", err.msg);
        float t = 128.0f / 255.0f, w = 255.0f * (1 - t);
        CHECK(img.pixels && near_rgb(px(&img, 0, 0), 255, 0, 0, 0) && near_rgb(px(&img, 1, 0), 255, 255, 255, 0) &&
                  near_rgb(px(&img, 2, 0), w, w, 255, 0.01f),
              "palette + tRNS");
        nst_image_free(&img);
    }
    /* 4-bit palette without transparency. */
    {
        png_color pal[2] = {{10, 20, 30}, {200, 100, 50}};
        unsigned char d[1] = {0x10}; /* pixels 1, 0 */
        write_png(tpath("pal4.png"), 2, 1, PNG_COLOR_TYPE_PALETTE, 4, PNG_INTERLACE_NONE, d, pal, 2, NULL, 0);
        CHECK(nst_image_load(&img, tpath("pal4.png"), NULL, &err) == NST_OK, "palette 4-bit: %s", err.msg);
        CHECK(img.pixels && near_rgb(px(&img, 0, 0), 200, 100, 50, 0) && near_rgb(px(&img, 1, 0), 10, 20, 30, 0),
              "4-bit palette");
        nst_image_free(&img);
    }
    /* RGBA on white. */
    {
        unsigned char d[12] = {0, 0, 0, 0, 0, 0, 0, 255, 100, 200, 50, 255};
        write_png(tpath("rgba.png"), 3, 1, PNG_COLOR_TYPE_RGB_ALPHA, 8, PNG_INTERLACE_NONE, d, NULL, 0, NULL, 0);
        CHECK(nst_image_load(&img, tpath("rgba.png"), NULL, &err) == NST_OK, "rgba: %s", err.msg);
        CHECK(img.pixels && near_rgb(px(&img, 0, 0), 255, 255, 255, 0) && near_rgb(px(&img, 1, 0), 0, 0, 0, 0) &&
                  near_rgb(px(&img, 2, 0), 100, 200, 50, 0),
              "rgba compositing");
        nst_image_free(&img);
    }
    /* Adam7 interlaced RGB, odd sizes. */
    {
        int w = 13, h = 11;
        unsigned char *d = malloc(w * h * 3);
        for (int i = 0; i < w * h * 3; i++) d[i] = (unsigned char)(i * 7 + 3);
        write_png(tpath("interlaced.png"), w, h, PNG_COLOR_TYPE_RGB, 8, PNG_INTERLACE_ADAM7, d, NULL, 0, NULL, 0);
        CHECK(nst_image_load(&img, tpath("interlaced.png"), NULL, &err) == NST_OK, "interlaced: %s", err.msg);
        int same = img.pixels && img.width == w && img.height == h;
        for (int i = 0; same && i < w * h * 3; i++) same = img.pixels[i] == d[i];
        CHECK(same, "interlaced pixels differ");
        nst_image_free(&img);
        /* Interlaced, 16-bit RGBA. */
        unsigned char *d16 = calloc(w * h * 8, 1);
        for (int i = 0; i < w * h; i++) {
            d16[8 * i] = (unsigned char)i, d16[8 * i + 2] = 0x80, d16[8 * i + 4] = 0xFF;
            d16[8 * i + 6] = 0xFF, d16[8 * i + 7] = 0xFF;
        }
        write_png(tpath("interlaced16.png"), w, h, PNG_COLOR_TYPE_RGB_ALPHA, 16, PNG_INTERLACE_ADAM7, d16, NULL, 0, NULL, 0);
        CHECK(nst_image_load(&img, tpath("interlaced16.png"), NULL, &err) == NST_OK, "interlaced16: %s", err.msg);
        CHECK(img.pixels && fabsf(px(&img, 5, 0)[0] - (float)(5 * 256 * 255.0 / 65535)) < 1e-3f &&
                  fabsf(px(&img, 5, 0)[2] - (float)(0xFF00 * 255.0 / 65535)) < 1e-3f,
              "interlaced 16-bit values");
        nst_image_free(&img);
        free(d);
        free(d16);
    }
}

static void test_grey_jpeg(void) {
    unsigned char d[32 * 16];
    for (int i = 0; i < 32 * 16; i++) d[i] = (unsigned char)((i % 32) * 8);
    write_jpeg(tpath("grey.jpg"), 32, 16, 1, d, 95, NULL, 0);
    nst_image img;
    nst_error err;
    CHECK(nst_image_load(&img, tpath("grey.jpg"), NULL, &err) == NST_OK, "grey jpeg: %s", err.msg);
    int ok = img.pixels && img.width == 32 && img.height == 16;
    for (int i = 0; ok && i < 32 * 16; i++) {
        const float *p = img.pixels + 3 * i;
        ok = p[0] == p[1] && p[1] == p[2] && fabsf(p[0] - d[i]) < 10;
    }
    CHECK(ok, "grey jpeg pixels");
    nst_image_free(&img);
}

/* CMYK and YCCK JPEGs as Photoshop writes them: inverted (255 = no ink), marked by an
 * Adobe APP14 segment, which libjpeg writes for these colour spaces. Also progressive. */
static void write_jpeg_ex(const char *path, int w, int h, int comps, J_COLOR_SPACE in, J_COLOR_SPACE stored,
                          int progressive, const unsigned char *data) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(2); }
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = w, c.image_height = h, c.input_components = comps, c.in_color_space = in;
    jpeg_set_defaults(&c);
    jpeg_set_colorspace(&c, stored);
    jpeg_set_quality(&c, 95, TRUE);
    if (progressive) jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)data + (size_t)c.next_scanline * w * comps;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
}

static void test_jpeg_flavours(void) {
    /* Left half: no ink (white); right half: full cyan ink (inverted C = 0). */
    unsigned char d[16 * 16 * 4];
    for (int i = 0; i < 16 * 16; i++) {
        int right = (i % 16) >= 8;
        d[4 * i] = right ? 0 : 255, d[4 * i + 1] = 255, d[4 * i + 2] = 255, d[4 * i + 3] = 255;
    }
    J_COLOR_SPACE stored[2] = {JCS_CMYK, JCS_YCCK};
    for (int k = 0; k < 2; k++) {
        const char *p = tpath(k ? "ycck.jpg" : "cmyk.jpg");
        write_jpeg_ex(p, 16, 16, 4, JCS_CMYK, stored[k], 0, d);
        nst_image img;
        nst_error err;
        CHECK(nst_image_load(&img, p, NULL, &err) == NST_OK, "%s: %s", p, err.msg);
        CHECK(img.pixels && near_rgb(px(&img, 2, 8), 255, 255, 255, 12) && near_rgb(px(&img, 13, 8), 0, 255, 255, 12),
              "%s colours: %.0f,%.0f,%.0f / %.0f,%.0f,%.0f", p, px(&img, 2, 8)[0], px(&img, 2, 8)[1],
              px(&img, 2, 8)[2], px(&img, 13, 8)[0], px(&img, 13, 8)[1], px(&img, 13, 8)[2]);
        nst_image_free(&img);
    }

    /* Progressive: decodes, and a truncated one is refused. */
    unsigned char rgb[48 * 32 * 3];
    unsigned long long seed = 9;
    for (int i = 0; i < 48 * 32 * 3; i++) rgb[i] = (unsigned char)(127.5f + 127.f * test_rand(&seed));
    write_jpeg_ex(tpath("prog.jpg"), 48, 32, 3, JCS_RGB, JCS_YCbCr, 1, rgb);
    nst_image img;
    nst_error err;
    CHECK(nst_image_load(&img, tpath("prog.jpg"), NULL, &err) == NST_OK && img.width == 48 && img.height == 32,
          "progressive: %s", err.msg);
    nst_image_free(&img);
    size_t len = 0;
    unsigned char *b = read_bytes(tpath("prog.jpg"), &len);
    write_bytes(tpath("prog-half.jpg"), b, len / 2);
    free(b);
    expect_fail(tpath("prog-half.jpg"), 0, NST_ERR_FORMAT, "truncated progressive jpeg");
}

/* A 32x16 JPEG with four coloured 16x8 quadrants: red, green / blue, white. */
static const float Q_RED[3] = {255, 0, 0}, Q_GREEN[3] = {0, 255, 0}, Q_BLUE[3] = {0, 0, 255},
                   Q_WHITE[3] = {255, 255, 255};

static void write_quadrants(const char *path, const unsigned char *app1, unsigned len) {
    unsigned char d[32 * 16 * 3];
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 32; x++) {
            const float *c = y < 8 ? (x < 16 ? Q_RED : Q_GREEN) : (x < 16 ? Q_BLUE : Q_WHITE);
            for (int k = 0; k < 3; k++) d[(y * 32 + x) * 3 + k] = (unsigned char)c[k];
        }
    write_jpeg(path, 32, 16, 3, d, 95, app1, len);
}

static void check_quadrants(const char *what, const char *path, int w, int h, const float *tl,
                            const float *tr, const float *bl, const float *br) {
    nst_image img;
    nst_error err;
    nst_status st = nst_image_load(&img, path, NULL, &err);
    CHECK(st == NST_OK, "%s: %s", what, err.msg);
    if (st != NST_OK) return;
    CHECK(img.width == w && img.height == h, "%s: size %dx%d, want %dx%d", what, img.width, img.height, w, h);
    if (img.width == w && img.height == h) {
        const float *want[4] = {tl, tr, bl, br};
        int xs[4] = {w / 4, 3 * w / 4, w / 4, 3 * w / 4}, ys[4] = {h / 4, h / 4, 3 * h / 4, 3 * h / 4};
        for (int q = 0; q < 4; q++) {
            const float *p = px(&img, xs[q], ys[q]);
            CHECK(near_rgb(p, want[q][0], want[q][1], want[q][2], 40), "%s: quadrant %d is %.0f,%.0f,%.0f",
                  what, q, p[0], p[1], p[2]);
        }
    }
    nst_image_free(&img);
}

/* APP1 payload with an IFD0 holding one Orientation entry. */
static unsigned exif_block(unsigned char *b, int big_endian, unsigned type, unsigned value) {
    memcpy(b, "Exif\0\0", 6);
    unsigned char *t = b + 6;
    if (big_endian) {
        unsigned char h[] = {'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, (unsigned char)type, 0, 0, 0, 1,
                             0, (unsigned char)value, 0, 0, 0, 0, 0, 0};
        memcpy(t, h, sizeof h);
        return 6 + sizeof h;
    } else {
        unsigned char h[] = {'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, (unsigned char)type, 0, 1, 0, 0, 0,
                             (unsigned char)value, 0, 0, 0, 0, 0, 0, 0};
        memcpy(t, h, sizeof h);
        return 6 + sizeof h;
    }
}

static void test_exif(void) {
    unsigned char b[256];
    unsigned n;
    write_quadrants(tpath("o1.jpg"), NULL, 0);
    check_quadrants("no exif", tpath("o1.jpg"), 32, 16, Q_RED, Q_GREEN, Q_BLUE, Q_WHITE);

    n = exif_block(b, 0, 3, 3);
    write_quadrants(tpath("o3.jpg"), b, n);
    check_quadrants("orientation 3", tpath("o3.jpg"), 32, 16, Q_WHITE, Q_BLUE, Q_GREEN, Q_RED);

    n = exif_block(b, 0, 3, 6);
    write_quadrants(tpath("o6.jpg"), b, n);
    check_quadrants("orientation 6", tpath("o6.jpg"), 16, 32, Q_BLUE, Q_RED, Q_WHITE, Q_GREEN);

    n = exif_block(b, 1, 3, 8);
    write_quadrants(tpath("o8.jpg"), b, n);
    check_quadrants("orientation 8 (big-endian)", tpath("o8.jpg"), 16, 32, Q_GREEN, Q_WHITE, Q_RED, Q_BLUE);

    n = exif_block(b, 1, 3, 2);
    write_quadrants(tpath("o2.jpg"), b, n);
    check_quadrants("orientation 2", tpath("o2.jpg"), 32, 16, Q_GREEN, Q_RED, Q_WHITE, Q_BLUE);

    n = exif_block(b, 0, 3, 5);
    write_quadrants(tpath("o5.jpg"), b, n);
    check_quadrants("orientation 5", tpath("o5.jpg"), 16, 32, Q_RED, Q_BLUE, Q_GREEN, Q_WHITE);

    n = exif_block(b, 0, 3, 7);
    write_quadrants(tpath("o7.jpg"), b, n);
    check_quadrants("orientation 7", tpath("o7.jpg"), 16, 32, Q_WHITE, Q_GREEN, Q_BLUE, Q_RED);

    /* Malformed blocks are ignored: the image comes out as stored. */
    struct { const char *name; unsigned char data[64]; unsigned len; } bad[] = {
        {"bad-offset", "Exif\0\0II*\0\xf0\xff\xff\xff", 14},
        {"huge-count", "Exif\0\0II*\0\x08\0\0\0\xff\xff\x12\x01\x03\0\1\0\0\0\6\0", 26},
        {"truncated-ifd", "Exif\0\0MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03", 20},
        {"header-only", "Exif\0\0II", 8},
        {"garbage", "Exif\0\0garbage garbage garbage garbage", 37},
        {"not-exif", "http://ns.adobe.com/xap/1.0/\0<x/>", 34},
        {"offset-at-end", "Exif\0\0II*\0\x0e\0\0\0\x05\x00", 16},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "exif-%s.jpg", bad[i].name);
        write_quadrants(tpath(name), bad[i].data, bad[i].len);
        check_quadrants(bad[i].name, tpath(name), 32, 16, Q_RED, Q_GREEN, Q_BLUE, Q_WHITE);
    }
    n = exif_block(b, 0, 3, 9); /* out of range */
    write_quadrants(tpath("o9.jpg"), b, n);
    check_quadrants("orientation 9", tpath("o9.jpg"), 32, 16, Q_RED, Q_GREEN, Q_BLUE, Q_WHITE);
    n = exif_block(b, 0, 7, 6); /* wrong type */
    write_quadrants(tpath("otype.jpg"), b, n);
    check_quadrants("orientation of type UNDEFINED", tpath("otype.jpg"), 32, 16, Q_RED, Q_GREEN, Q_BLUE, Q_WHITE);
}

static void test_shared_images(void) {
    nst_image a, b;
    nst_error err;
    nst_status sa = nst_image_load(&a, NST_SHARED_DIR "/oracle/gatys64/content_64.png", NULL, &err);
    CHECK(sa == NST_OK, "oracle png: %s", err.msg);
    nst_status sb = nst_image_load(&b, NST_SHARED_DIR "/oracle/gatys64/content_64.ppm", NULL, &err);
    CHECK(sb == NST_OK, "oracle ppm: %s", err.msg);
    if (sa == NST_OK && sb == NST_OK) {
        CHECK(a.width == 64 && a.height == 64 && b.width == 64 && b.height == 64, "oracle sizes");
        CHECK(memcmp(a.pixels, b.pixels, 64 * 64 * 3 * sizeof(float)) == 0, "oracle png and ppm differ");
    }
    nst_image_free(&a);
    nst_image_free(&b);

    double t0 = now_s();
    nst_status st = nst_image_load(&a, NST_SHARED_DIR "/images/content/tubingen.jpg", NULL, &err);
    double t = now_s() - t0;
    CHECK(st == NST_OK, "tubingen: %s", err.msg);
    if (st == NST_OK) {
        CHECK(a.width > 100 && a.height > 100, "tubingen size %dx%d", a.width, a.height);
        float lo = 255, hi = 0;
        double mean = 0;
        size_t n = (size_t)a.width * a.height * 3;
        for (size_t i = 0; i < n; i++) {
            lo = fminf(lo, a.pixels[i]), hi = fmaxf(hi, a.pixels[i]);
            mean += a.pixels[i];
        }
        mean /= n;
        CHECK(lo >= 0 && hi <= 255 && hi - lo > 100 && mean > 30 && mean < 220,
              "tubingen values: min %.0f max %.0f mean %.1f", lo, hi, mean);
        printf("tubingen.jpg: %dx%d, decoded in %.3f s\n", a.width, a.height, t);

        /* max_pixels smaller than the image. */
        char msg[64];
        snprintf(msg, sizeof msg, "max_pixels %d", a.width * a.height - 1);
        expect_fail(NST_SHARED_DIR "/images/content/tubingen.jpg", (size_t)a.width * a.height - 1,
                    NST_ERR_LIMIT, msg);
        nst_image_free(&a);
    }
    expect_fail(NST_SHARED_DIR "/oracle/gatys64/content_64.png", 64 * 64 - 1, NST_ERR_LIMIT, "png max_pixels");
    expect_fail(NST_SHARED_DIR "/oracle/gatys64/content_64.ppm", 100, NST_ERR_LIMIT, "ppm max_pixels");
    const nst_limits exact = {64 * 64, 0};
    CHECK(nst_image_load(&a, NST_SHARED_DIR "/oracle/gatys64/content_64.png", &exact, &err) == NST_OK,
          "exactly max_pixels: %s", err.msg);
    nst_image_free(&a);
}

static void test_ppm(void) {
    nst_image img;
    nst_error err;
    const char p16[] = "P6\n# comment\n2 1\n65535\n\x00\x00\xff\xff\x80\x00\x12\x34\x56\x78\x9a\xbc";
    write_bytes(tpath("deep.ppm"), p16, sizeof p16 - 1);
    CHECK(nst_image_load(&img, tpath("deep.ppm"), NULL, &err) == NST_OK, "16-bit ppm: %s", err.msg);
    CHECK(img.pixels && img.pixels[0] == 0 && img.pixels[1] == 255 &&
              fabsf(img.pixels[2] - (float)(0x8000 * 255.0 / 65535)) < 1e-3f,
          "16-bit ppm values");
    nst_image_free(&img);
    const char pgm[] = "P5 2 2 100 \x00\x32\x64\x64";
    write_bytes(tpath("grey.pgm"), pgm, sizeof pgm - 1);
    CHECK(nst_image_load(&img, tpath("grey.pgm"), NULL, &err) == NST_OK, "pgm: %s", err.msg);
    CHECK(img.pixels && near_rgb(px(&img, 1, 0), 127.5f, 127.5f, 127.5f, 1e-3f), "pgm values");
    nst_image_free(&img);
    const char trunc[] = "P6 4 4 255\n\x01\x02\x03";
    write_bytes(tpath("trunc.ppm"), trunc, sizeof trunc - 1);
    expect_fail(tpath("trunc.ppm"), 0, NST_ERR_FORMAT, "truncated ppm");
    const char huge[] = "P6 100000 100000 255\n";
    write_bytes(tpath("huge.ppm"), huge, sizeof huge - 1);
    expect_fail(tpath("huge.ppm"), 0, NST_ERR_LIMIT, "huge ppm");
    const char zero[] = "P6 0 5 255\n";
    write_bytes(tpath("zero.ppm"), zero, sizeof zero - 1);
    expect_fail(tpath("zero.ppm"), 0, NST_ERR_FORMAT, "zero-width ppm");
    const char badhdr[] = "P6 12 abc\n";
    write_bytes(tpath("badhdr.ppm"), badhdr, sizeof badhdr - 1);
    expect_fail(tpath("badhdr.ppm"), 0, NST_ERR_FORMAT, "bad ppm header");
}

/* Writes data with bytes [at, at+n) replaced by `fill` to `name`. */
static void write_corrupted(const char *name, const unsigned char *data, size_t len, size_t at,
                            size_t n, const unsigned char *fill, size_t fill_len) {
    unsigned char *c = malloc(len);
    memcpy(c, data, len);
    for (size_t i = 0; i < n && at + i < len; i++) c[at + i] = fill[i % fill_len];
    write_bytes(tpath(name), c, len);
    free(c);
}

/* Offset of the first SOFn marker in a JPEG, or 0. */
static size_t find_sof(const unsigned char *b, size_t n) {
    for (size_t i = 2; i + 9 < n; i++)
        if (b[i] == 0xFF && (b[i + 1] == 0xC0 || b[i + 1] == 0xC1 || b[i + 1] == 0xC2)) return i;
    return 0;
}

static void test_bad_input(void) {
    nst_image img;
    nst_error err;

    expect_fail(tpath("missing.png"), 0, NST_ERR_IO, "missing file");
    nst_image_load(&img, tpath("missing.png"), NULL, &err);
    CHECK(strstr(err.msg, strerror(ENOENT)) != NULL, "missing file message: %s", err.msg);
    expect_fail(tmpdir, 0, NST_ERR_IO, "directory");
    write_bytes(tpath("empty.png"), "", 0);
    expect_fail(tpath("empty.png"), 0, NST_ERR_FORMAT, "empty file");
    write_bytes(tpath("text.jpg"), "hello, world\n", 13);
    expect_fail(tpath("text.jpg"), 0, NST_ERR_FORMAT, "text file");
    write_bytes(tpath("short.png"), "\x89PNG", 4);
    expect_fail(tpath("short.png"), 0, NST_ERR_FORMAT, "4-byte png");
    write_bytes(tpath("short.jpg"), "\xff\xd8\xff", 3);
    expect_fail(tpath("short.jpg"), 0, NST_ERR_FORMAT, "3-byte jpeg");

    /* A noisy image, so the compressed data is long enough to cut and corrupt. */
    int w = 96, h = 64;
    nst_image src;
    nst_image_alloc(&src, w, h, &err);
    unsigned long long seed = 42;
    for (int i = 0; i < w * h * 3; i++) src.pixels[i] = 127.5f + 127.5f * test_rand(&seed);
    nst_image_save(&src, tpath("noise.png"), &err);
    nst_image_save(&src, tpath("noise.jpg"), &err);
    nst_image_free(&src);
    size_t plen = 0, jlen = 0;
    unsigned char *png = read_bytes(tpath("noise.png"), &plen);
    unsigned char *jpg = read_bytes(tpath("noise.jpg"), &jlen);
    CHECK(png && jpg && plen > 1000 && jlen > 1000, "noise files: %zu, %zu bytes", plen, jlen);
    if (!png || !jpg) return;

    write_bytes(tpath("half.png"), png, plen / 2);
    expect_fail(tpath("half.png"), 0, NST_ERR_FORMAT, "truncated png");
    write_bytes(tpath("noiend.png"), png, plen - 12);
    expect_fail(tpath("noiend.png"), 0, NST_ERR_FORMAT, "png without IEND");
    write_bytes(tpath("half.jpg"), jpg, jlen / 2);
    expect_fail(tpath("half.jpg"), 0, NST_ERR_FORMAT, "truncated jpeg");
    write_bytes(tpath("hdr.jpg"), jpg, find_sof(jpg, jlen) + 4);
    expect_fail(tpath("hdr.jpg"), 0, NST_ERR_FORMAT, "jpeg cut in the header");

    static const unsigned char junk[] = {0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde};
    write_corrupted("corrupt.png", png, plen, plen / 2, 16, junk, sizeof junk);
    expect_fail(tpath("corrupt.png"), 0, NST_ERR_FORMAT, "corrupt png");
    static const unsigned char eoi[] = {0xFF, 0xD9};
    write_corrupted("corrupt.jpg", jpg, jlen, jlen / 2, 16, eoi, sizeof eoi);
    expect_fail(tpath("corrupt.jpg"), 0, NST_ERR_FORMAT, "jpeg with a marker inside the data");

    /* Random damage anywhere: never a crash; failures are clean, successes sane. */
    unsigned long long s = 7;
    int failures = 0, bad_fail = 0, bad_ok = 0;
    for (int k = 0; k < 300; k++) {
        int is_png = k & 1;
        const unsigned char *data = is_png ? png : jpg;
        size_t len = is_png ? plen : jlen;
        unsigned char *c = malloc(len);
        memcpy(c, data, len);
        int edits = 1 + (int)((test_rand(&s) + 1) * 4);
        for (int e = 0; e < edits; e++) {
            size_t at = (size_t)((test_rand(&s) + 1) * 0.5 * len);
            if (at < len) c[at] = (unsigned char)((test_rand(&s) + 1) * 128);
        }
        size_t cut = k % 5 == 0 ? (size_t)((test_rand(&s) + 1) * 0.5 * len) : len;
        const char *p = tpath(is_png ? "fuzz.png" : "fuzz.jpg");
        write_bytes(p, c, cut);
        free(c);
        memset(&err, 0, sizeof err);
        nst_status st = nst_image_load(&img, p, NULL, &err);
        if (st == NST_OK) {
            bad_ok += !(img.width == w && img.height == h) && !(img.width > 0 && img.height > 0);
            nst_image_free(&img);
        } else {
            failures++;
            bad_fail += img.pixels != NULL || strstr(err.msg, is_png ? "fuzz.png" : "fuzz.jpg") == NULL ||
                        (st != NST_ERR_FORMAT && st != NST_ERR_LIMIT);
        }
    }
    CHECK(bad_fail == 0 && bad_ok == 0, "random damage: %d bad failures, %d bad successes", bad_fail, bad_ok);
    printf("random damage: %d of 300 damaged files refused\n", failures);

    /* Headers claiming huge or zero sizes: refused from the header, quickly. */
    double t0 = now_s();
    write_png_header_only(tpath("huge.png"), 100000, 100000);
    expect_fail(tpath("huge.png"), 0, NST_ERR_LIMIT, "100000x100000 png");
    write_png_header_only(tpath("wide.png"), 70000, 10);
    expect_fail(tpath("wide.png"), 0, NST_ERR_LIMIT, "70000 wide png");
    write_png_header_only(tpath("big.png"), 20000, 20000);
    expect_fail(tpath("big.png"), 0, NST_ERR_LIMIT, "20000x20000 png (4e8 pixels)");
    write_png_header_only(tpath("zero.png"), 0, 10);
    expect_fail(tpath("zero.png"), 0, NST_ERR_FORMAT, "zero-width png");

    size_t sof = find_sof(jpg, jlen);
    CHECK(sof > 0, "no SOF in the test JPEG");
    struct { const char *name; unsigned w, h; nst_status want; } hdr[] = {
        {"huge.jpg", 60000, 60000, NST_ERR_LIMIT},
        {"max.jpg", 65535, 65535, NST_ERR_LIMIT},
        {"zeroh.jpg", 96, 0, NST_ERR_FORMAT},
        {"zerow.jpg", 0, 64, NST_ERR_FORMAT},
    };
    for (size_t i = 0; sof && i < sizeof hdr / sizeof hdr[0]; i++) {
        unsigned char *c = malloc(jlen);
        memcpy(c, jpg, jlen);
        c[sof + 5] = hdr[i].h >> 8, c[sof + 6] = hdr[i].h & 255;
        c[sof + 7] = hdr[i].w >> 8, c[sof + 8] = hdr[i].w & 255;
        write_bytes(tpath(hdr[i].name), c, jlen);
        free(c);
        expect_fail(tpath(hdr[i].name), 0, hdr[i].want, hdr[i].name);
    }
    double t = now_s() - t0;
    CHECK(t < 1.0, "refusing huge headers took %.2f s", t);
    nst_image_load(&img, tpath("huge.png"), NULL, &err);
    CHECK(strstr(err.msg, "100000x100000") != NULL, "huge png message: %s", err.msg);
    free(png);
    free(jpg);
}

static void test_save_errors(void) {
    nst_image img;
    nst_error err;
    nst_image_alloc(&img, 256, 256, &err);
    unsigned long long seed = 3;
    for (int i = 0; i < 256 * 256 * 3; i++) img.pixels[i] = 127.5f + 127.5f * test_rand(&seed);

    const char *p = tpath("no/such/folder/out.png");
    CHECK(nst_image_save(&img, p, &err) == NST_ERR_IO, "save into a missing folder");
    CHECK(strstr(err.msg, p) != NULL, "message does not name the path: %s", err.msg);
    CHECK(!file_exists(p), "file appeared");

    p = tpath("out.bmp");
    CHECK(nst_image_save(&img, p, &err) == NST_ERR_ARG, "unknown extension accepted");
    CHECK(strstr(err.msg, "out.bmp") && strstr(err.msg, ".png") && strstr(err.msg, ".jpg"),
          "extension message: %s", err.msg);
    CHECK(!file_exists(p), "file appeared");
    p = tpath("noext");
    CHECK(nst_image_save(&img, p, &err) == NST_ERR_ARG && strstr(err.msg, "noext"), "no extension: %s", err.msg);
    CHECK(!file_exists(p), "file appeared");

    nst_image empty = {0};
    CHECK(nst_image_save(&empty, tpath("emptyimage.png"), &err) == NST_ERR_ARG, "empty image saved");
    CHECK(!file_exists(tpath("emptyimage.png")), "file appeared");

    /* A failure half-way through the write (file size limit) leaves the old file. */
    const char *names[2] = {"keep.png", "keep.jpg"};
    for (int k = 0; k < 2; k++) {
        p = tpath(names[k]);
        nst_image small;
        nst_image_alloc(&small, 4, 4, &err);
        CHECK(nst_image_save(&small, p, &err) == NST_OK, "save: %s", err.msg);
        nst_image_free(&small);
        size_t len0 = 0, len1 = 0;
        unsigned char *before = read_bytes(p, &len0);

        struct rlimit old, lim;
        getrlimit(RLIMIT_FSIZE, &old);
        lim = old;
        lim.rlim_cur = 2048;
        void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
        int limited = setrlimit(RLIMIT_FSIZE, &lim) == 0;
        nst_status st = nst_image_save(&img, p, &err);
        if (limited) setrlimit(RLIMIT_FSIZE, &old);
        signal(SIGXFSZ, prev);
        if (limited) {
            CHECK(st == NST_ERR_IO, "%s: save past the file size limit: status %d", names[k], st);
            CHECK(strstr(err.msg, names[k]) != NULL, "message: %s", err.msg);
        }
        unsigned char *after = read_bytes(p, &len1);
        CHECK(before && after && len0 == len1 && memcmp(before, after, len0) == 0, "%s: old file damaged", names[k]);
        CHECK(count_files_with(".tmp-") == 0, "temporary file left behind");
        free(before);
        free(after);
    }
    /* And a successful save replaces it. */
    CHECK(nst_image_save(&img, tpath("keep.png"), &err) == NST_OK, "save: %s", err.msg);
    nst_image back;
    CHECK(nst_image_load(&back, tpath("keep.png"), NULL, &err) == NST_OK && back.width == 256, "reload: %s", err.msg);
    nst_image_free(&back);
    nst_image_free(&img);
}

static void test_resize(void) {
    nst_image a, b;
    nst_error err;

    /* Constant stays constant, both ways. */
    nst_image_alloc(&a, 37, 23, &err);
    for (int i = 0; i < 37 * 23 * 3; i++) a.pixels[i] = (i % 3 == 0) ? 200.0f : (i % 3 == 1) ? 0.0f : 255.0f;
    int sizes[4][2] = {{11, 7}, {100, 61}, {37, 5}, {3, 23}};
    for (int k = 0; k < 4; k++) {
        int w = sizes[k][0], h = sizes[k][1];
        CHECK(nst_image_resize(&b, &a, w, h, &err) == NST_OK, "resize: %s", err.msg);
        CHECK(b.width == w && b.height == h, "resize size %dx%d, want %dx%d", b.width, b.height, w, h);
        float maxd = 0;
        for (int i = 0; b.pixels && i < w * h * 3; i++) {
            float want = (i % 3 == 0) ? 200.0f : (i % 3 == 1) ? 0.0f : 255.0f;
            maxd = fmaxf(maxd, fabsf(b.pixels[i] - want));
        }
        CHECK(maxd < 1e-3f, "constant image changed by %g at %dx%d", maxd, w, h);
        nst_image_free(&b);
    }
    nst_image_free(&a);

    /* A one-pixel checkerboard shrinks to flat grey, with no aliasing. */
    nst_image_alloc(&a, 128, 96, &err);
    for (int y = 0; y < 96; y++)
        for (int x = 0; x < 128; x++)
            for (int c = 0; c < 3; c++) a.pixels[(y * 128 + x) * 3 + c] = ((x + y) & 1) ? 255.0f : 0.0f;
    /* Interior pixels come out flat grey; near the border, clamping repeats the edge
     * pixel (one colour), which pulls the average towards it a little. */
    int down[3][2] = {{16, 12}, {37, 29}, {64, 48}};
    for (int k = 0; k < 3; k++) {
        int w = down[k][0], h = down[k][1], border = 3;
        CHECK(nst_image_resize(&b, &a, w, h, &err) == NST_OK, "resize: %s", err.msg);
        float inner = 0, all = 0;
        double mean = 0;
        for (int y = 0; b.pixels && y < h; y++)
            for (int x = 0; x < w; x++) {
                float d = fabsf(px(&b, x, y)[0] - 127.5f);
                all = fmaxf(all, d);
                if (x >= border && y >= border && x < w - border && y < h - border) inner = fmaxf(inner, d);
                mean += px(&b, x, y)[0];
            }
        mean /= (double)w * h;
        CHECK(inner < 0.5f && all < 15.0f && fabs(mean - 127.5) < 1.0,
              "checkerboard to %dx%d: off grey by %.2f inside, %.2f at the edges, mean %.2f", w, h, inner, all, mean);
        nst_image_free(&b);
    }

    /* Identity is exact; in-place works. */
    fill_pattern(&a);
    CHECK(nst_image_resize(&b, &a, 128, 96, &err) == NST_OK, "identity: %s", err.msg);
    CHECK(b.pixels && memcmp(a.pixels, b.pixels, 128 * 96 * 3 * sizeof(float)) == 0, "identity changed pixels");
    CHECK(b.pixels != a.pixels, "identity shares the buffer");
    nst_image_free(&b);
    nst_image c = a;
    c.pixels = malloc(128 * 96 * 3 * sizeof(float));
    memcpy(c.pixels, a.pixels, 128 * 96 * 3 * sizeof(float));
    CHECK(nst_image_resize(&c, &c, 50, 40, &err) == NST_OK && c.width == 50 && c.height == 40, "in place");
    nst_image_free(&c);

    /* Upscale of a smooth ramp stays a ramp (inside, away from the clamped edges). */
    nst_image_free(&a);
    nst_image_alloc(&a, 16, 8, &err);
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 16; x++)
            for (int k = 0; k < 3; k++) a.pixels[(y * 16 + x) * 3 + k] = x * 10.0f + 50.0f;
    CHECK(nst_image_resize(&b, &a, 64, 32, &err) == NST_OK, "upscale: %s", err.msg);
    int mono = b.pixels != NULL;
    for (int x = 9; mono && x < 55; x++) mono = px(&b, x + 1, 10)[0] > px(&b, x, 10)[0];
    CHECK(mono, "upscaled ramp is not increasing");
    CHECK(b.pixels && fabsf(px(&b, 32, 16)[0] - (50 + 10 * (32.5f / 4 - 0.5f))) < 0.5f, "ramp value %.2f",
          b.pixels ? px(&b, 32, 16)[0] : 0);
    float lo = 255, hi = 0;
    for (int i = 0; b.pixels && i < 64 * 32 * 3; i++) lo = fminf(lo, b.pixels[i]), hi = fmaxf(hi, b.pixels[i]);
    CHECK(lo >= 0 && hi <= 255, "values out of range");
    nst_image_free(&b);

    /* Ringing is clamped to 0..255. */
    for (int i = 0; i < 16 * 8 * 3; i++) a.pixels[i] = ((i / 3) % 16) < 8 ? 0.0f : 255.0f;
    CHECK(nst_image_resize(&b, &a, 61, 29, &err) == NST_OK, "upscale edge: %s", err.msg);
    lo = 255, hi = 0;
    for (int i = 0; b.pixels && i < 61 * 29 * 3; i++) lo = fminf(lo, b.pixels[i]), hi = fmaxf(hi, b.pixels[i]);
    CHECK(lo == 0 && hi == 255, "ringing not clamped: %g..%g", lo, hi);
    nst_image_free(&b);

    /* Down to 1x1: the mean. */
    CHECK(nst_image_resize(&b, &a, 1, 1, &err) == NST_OK && b.pixels && fabsf(b.pixels[0] - 127.5f) < 20,
          "1x1: %g", b.pixels ? b.pixels[0] : -1);
    nst_image_free(&b);

    /* Bad arguments. */
    CHECK(nst_image_resize(&b, &a, 0, 5, &err) == NST_ERR_ARG, "zero width accepted");
    nst_image empty = {0};
    CHECK(nst_image_resize(&b, &empty, 5, 5, &err) == NST_ERR_ARG, "empty source accepted");
    nst_image_free(&a);

    /* Speed: a photo-sized image down to network size. */
    nst_image_alloc(&a, 4000, 3000, &err);
    unsigned long long seed = 1;
    for (size_t i = 0; i < (size_t)4000 * 3000 * 3; i += 7) a.pixels[i] = 127.5f + 127.5f * test_rand(&seed);
    double t0 = now_s();
    CHECK(nst_image_resize(&b, &a, 512, 384, &err) == NST_OK, "big resize: %s", err.msg);
    double t = now_s() - t0;
    printf("resize 4000x3000 -> 512x384: %.3f s\n", t);
    CHECK(t < 5.0, "resize took %.2f s", t); /* generous: sanitizer builds are slow */
    nst_image_free(&b);
    nst_image_free(&a);
}

/* The user's limits (nst_limits): the file size just below and at a real file's size,
 * the pixel count likewise, the messages (one line: the file, the size, the limit, how
 * to raise it), and parsing them from text and from the environment. */
static void test_limits(void) {
    const char *photo = NST_SHARED_DIR "/images/content/tubingen.jpg";
    struct stat sb;
    CHECK(stat(photo, &sb) == 0, "stat %s", photo);
    nst_image img;
    nst_error err;
    nst_limits lim = {0, (size_t)sb.st_size - 1};
    CHECK(nst_image_load(&img, photo, &lim, &err) == NST_ERR_LIMIT && img.pixels == NULL, "file limit: %s", err.msg);
    char want[160];
    snprintf(want, sizeof want, "tubingen.jpg: file is %lld bytes", (long long)sb.st_size);
    CHECK(strstr(err.msg, want) && strstr(err.msg, "--max-file-mb") && strstr(err.msg, "NST_MAX_FILE_MB") &&
              !strchr(err.msg, '\n'),
          "file limit message: %s", err.msg);
    snprintf(want, sizeof want, "limit of %lld bytes", (long long)sb.st_size - 1);
    CHECK(strstr(err.msg, want) != NULL, "the limit is not in: %s", err.msg);
    lim.max_file_bytes = (size_t)sb.st_size;
    CHECK(nst_image_load(&img, photo, &lim, &err) == NST_OK, "file exactly at the limit: %s", err.msg);
    int w = img.width, h = img.height;
    nst_image_free(&img);
    lim.max_pixels = (size_t)w * h - 1;
    CHECK(nst_image_load(&img, photo, &lim, &err) == NST_ERR_LIMIT && img.pixels == NULL, "pixel limit: %s", err.msg);
    snprintf(want, sizeof want, "tubingen.jpg: image is %dx%d = %d pixels, more than the limit of %d", w, h, w * h,
             w * h - 1);
    CHECK(strstr(err.msg, want) && strstr(err.msg, "--max-pixels") && strstr(err.msg, "NST_MAX_PIXELS"),
          "pixel limit message: %s", err.msg);
    lim.max_pixels = (size_t)w * h;
    CHECK(nst_image_load(&img, photo, &lim, &err) == NST_OK, "pixels exactly at the limit: %s", err.msg);
    nst_image_free(&img);

    /* parsing: whole positive numbers in range only; a refusal leaves the limits alone */
    static const struct { nst_limit_kind k; const char *text, *msg; } bad[] = {
        {NST_LIMIT_PIXELS, "-5", "'-5' is not a whole number of pixels"},
        {NST_LIMIT_PIXELS, "abc", "'abc' is not a whole number of pixels"},
        {NST_LIMIT_PIXELS, "", "'' is not a whole number"},
        {NST_LIMIT_PIXELS, "12x", "'12x' is not"},
        {NST_LIMIT_PIXELS, "1e6", "'1e6' is not"},
        {NST_LIMIT_PIXELS, " 5", "' 5' is not"},
        {NST_LIMIT_PIXELS, "0", "0 pixels is out of range (1..4294836225)"},
        {NST_LIMIT_PIXELS, "4294836226", "out of range"},
        {NST_LIMIT_PIXELS, "99999999999999999999999", "out of range"},
        {NST_LIMIT_FILE_MB, "0", "0 megabytes is out of range (1..1048576)"},
        {NST_LIMIT_FILE_MB, "-1", "'-1' is not a whole number of megabytes"},
        {NST_LIMIT_FILE_MB, "1048577", "out of range"},
        {NST_LIMIT_FILE_MB, "2.5", "'2.5' is not"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        nst_limits l = {7, 9};
        err.msg[0] = '\0';
        nst_status st = nst_limits_set(&l, bad[i].k, bad[i].text, "--flag", &err);
        CHECK(st == NST_ERR_ARG && l.max_pixels == 7 && l.max_file_bytes == 9 &&
                  strncmp(err.msg, "--flag: ", 8) == 0 && strstr(err.msg, bad[i].msg) && !strchr(err.msg, '\n'),
              "'%s': status %d, message '%s'", bad[i].text, st, err.msg);
    }
    nst_limits l = {0, 0};
    CHECK(nst_limits_set(&l, NST_LIMIT_PIXELS, "4294836225", "x", &err) == NST_OK && l.max_pixels == 4294836225u,
          "largest pixel limit: %s", err.msg);
    CHECK(nst_limits_set(&l, NST_LIMIT_FILE_MB, "3", "x", &err) == NST_OK && l.max_file_bytes == 3u << 20,
          "3 MB: %s", err.msg);

    /* the environment: read only by nst_limits_from_env */
    setenv("NST_MAX_PIXELS", "1234", 1);
    setenv("NST_MAX_FILE_MB", "5", 1);
    l = (nst_limits){0, 0};
    CHECK(nst_image_load(&img, photo, NULL, &err) == NST_OK, "the library read the environment: %s", err.msg);
    nst_image_free(&img);
    CHECK(nst_limits_from_env(&l, &err) == NST_OK && l.max_pixels == 1234 && l.max_file_bytes == 5u << 20,
          "from env: %s", err.msg);
    setenv("NST_MAX_FILE_MB", "lots", 1);
    l = (nst_limits){1, 2};
    CHECK(nst_limits_from_env(&l, &err) == NST_ERR_ARG && l.max_pixels == 1 && l.max_file_bytes == 2 &&
              strstr(err.msg, "NST_MAX_FILE_MB: 'lots' is not a whole number of megabytes"),
          "bad env: %s", err.msg);
    unsetenv("NST_MAX_PIXELS");
    setenv("NST_MAX_FILE_MB", "", 1);
    CHECK(nst_limits_from_env(&l, &err) == NST_OK && l.max_pixels == 1 && l.max_file_bytes == 2, "unset env");
    unsetenv("NST_MAX_FILE_MB");
}

/* ------------------------------------------------------------------------- */
/* More formats (WebP, TIFF, BMP, GIF), metadata, save options, extras       */
/* ------------------------------------------------------------------------- */

static int same_pixels(const nst_image *a, const nst_image *b) {
    if (!a->pixels || !b->pixels || a->width != b->width || a->height != b->height) return 0;
    size_t n = (size_t)a->width * a->height;
    if (memcmp(a->pixels, b->pixels, n * 3 * sizeof(float)) != 0) return 0;
    if (!a->alpha != !b->alpha) return 0;
    return !a->alpha || memcmp(a->alpha, b->alpha, n * sizeof(float)) == 0;
}

static nst_status decode_bytes(nst_image *img, const unsigned char *d, size_t n, const char *name, nst_error *err) {
    return nst_image_decode(img, d, n, name, NULL, err);
}

/* Decoding must fail with `want`, leave nothing behind and say so on one line naming it. */
static void expect_decode_fail(const unsigned char *d, size_t n, const char *name, size_t max_pixels,
                               nst_status want, const char *what) {
    nst_image img;
    nst_error err = {{0}};
    const nst_limits lim = {max_pixels, 0};
    nst_status st = nst_image_decode(&img, d, n, name, &lim, &err);
    CHECK(st == want, "%s: status %d (%s), want %d; msg: %s", what, st, nst_status_name(st), want, err.msg);
    CHECK(img.pixels == NULL && img.alpha == NULL && img.icc == NULL && img.exif == NULL, "%s: left behind", what);
    CHECK(strstr(err.msg, name) != NULL && strchr(err.msg, '\n') == NULL, "%s: message: %s", what, err.msg);
    if (st == NST_OK) nst_image_free(&img);
}

/* Every prefix of a file: a clean failure (NST_ERR_FORMAT, the name in one line, nothing
 * allocated), or, only for prefixes of at least min_ok bytes (a tail the decoder does not
 * need: BMP's last padding, GIF's trailer), exactly the full file's image. */
static void check_truncations(const unsigned char *d, size_t n, const char *name, size_t min_ok, const char *what) {
    nst_image full;
    nst_error err;
    CHECK(decode_bytes(&full, d, n, name, &err) == NST_OK, "%s: the whole file: %s", what, err.msg);
    int bad = 0, ok = 0;
    for (size_t k = 0; k < n; k++) {
        nst_image img;
        memset(&err, 0, sizeof err);
        nst_status st = decode_bytes(&img, d, k, name, &err);
        if (st == NST_OK) {
            ok++;
            if (k < min_ok || !same_pixels(&img, &full)) {
                if (!bad) fprintf(stderr, "%s: the first %zu of %zu bytes decode\n", what, k, n);
                bad++;
            }
            nst_image_free(&img);
        } else if (st != NST_ERR_FORMAT || img.pixels || !strstr(err.msg, name) || strchr(err.msg, '\n')) {
            if (!bad) fprintf(stderr, "%s: cut at %zu: status %d, %s\n", what, k, st, err.msg);
            bad++;
        }
    }
    CHECK(bad == 0, "%s: %d of %zu truncations not refused cleanly", what, bad, n);
    CHECK(ok <= (int)(n - min_ok), "%s: %d truncations decode", what, ok);
    nst_image_free(&full);
}

/* The same bytes through a file: nst_image_load gives what nst_image_decode gives. */
static void check_load_matches_decode(const unsigned char *d, size_t n, const char *file, const char *what) {
    nst_image a, b;
    nst_error err;
    write_bytes(tpath(file), d, n);
    nst_status sa = nst_image_load(&a, tpath(file), NULL, &err);
    CHECK(sa == NST_OK, "%s: load: %s", what, err.msg);
    nst_status sb = decode_bytes(&b, d, n, file, &err);
    CHECK(sb == NST_OK, "%s: decode: %s", what, err.msg);
    if (sa == NST_OK && sb == NST_OK)
        CHECK(same_pixels(&a, &b) && a.bit_depth == b.bit_depth && a.icc_size == b.icc_size &&
                  a.exif_size == b.exif_size,
              "%s: load and decode differ", what);
    nst_image_free(&a);
    nst_image_free(&b);
}

/* With NST_IMAGE_SEEDS=DIR, the files the tests build are also written to DIR: the
 * fuzzer's seeds in tests/fuzz/corpus/image come from there. */
static void seed(const char *name, const void *d, size_t n) {
    const char *dir = getenv("NST_IMAGE_SEEDS");
    if (!dir || !*dir) return;
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    write_bytes(p, d, n);
}

static void seed_file(const char *name, const char *path) {
    size_t n = 0;
    unsigned char *b = read_bytes(path, &n);
    if (b) seed(name, b, n);
    free(b);
}

static float on_white(float c, float a) { return 255.0f + (c - 255.0f) * (a / 255.0f); }

static unsigned char *copy_out(const void *p, size_t n) {
    unsigned char *c = malloc(n ? n : 1);
    memcpy(c, p, n);
    return c;
}

/* A small RGB profile that libpng accepts (header, D50, no tags), with a recognisable
 * body; space: "RGB " or "GRAY". */
static size_t make_icc(unsigned char *b, size_t n, const char *space) {
    memset(b, 0, n);
    put32(b, (uint32_t)n);
    put32(b + 8, 0x02100000);
    memcpy(b + 12, "mntr", 4);
    memcpy(b + 16, space, 4);
    memcpy(b + 20, "XYZ ", 4);
    memcpy(b + 36, "acsp", 4);
    put32(b + 68, 0x0000F6D6), put32(b + 72, 0x00010000), put32(b + 76, 0x0000D32D);
    for (size_t i = 132; i < n; i++) b[i] = (unsigned char)(i * 7);
    return n;
}

/* EXIF TIFF structure: IFD0 with Orientation (SHORT) and Software (ASCII, stored after the
 * IFD); *orient_at gets the offset of the orientation's value. */
static size_t make_exif(unsigned char *t, int le, unsigned orientation, size_t *orient_at) {
    static const char sw[] = "nst-test!!";
    size_t n = 8 + 2 + 2 * 12 + 4 + sizeof sw;
    memset(t, 0, n);
#define P16(p, v) (le ? ((p)[0] = (unsigned char)(v), (p)[1] = (unsigned char)((v) >> 8)) : ((p)[0] = (unsigned char)((v) >> 8), (p)[1] = (unsigned char)(v)))
#define P32(p, v) (le ? (P16(p, (v) & 0xffff), P16((p) + 2, (v) >> 16)) : (P16(p, (v) >> 16), P16((p) + 2, (v) & 0xffff)))
    t[0] = t[1] = le ? 'I' : 'M';
    P16(t + 2, 42);
    P32(t + 4, 8);
    P16(t + 8, 2);
    unsigned char *e = t + 10;
    P16(e, 0x0112), P16(e + 2, 3), P32(e + 4, 1), P16(e + 8, orientation);
    e += 12;
    P16(e, 0x0131), P16(e + 2, 2), P32(e + 4, (unsigned)sizeof sw), P32(e + 8, (unsigned)(8 + 2 + 24 + 4));
    memcpy(t + 8 + 2 + 24 + 4, sw, sizeof sw);
#undef P16
#undef P32
    *orient_at = 10 + 8;
    return n;
}

/* The EXIF as nst stores it: orientation 1. */
static void exif_reset(unsigned char *t, size_t at, int le) {
    t[at] = le ? 1 : 0;
    t[at + 1] = le ? 0 : 1;
}

static int blob_is(const unsigned char *p, size_t n, const unsigned char *want, size_t want_n) {
    return p && n == want_n && memcmp(p, want, n) == 0;
}

static void test_format_names(void) {
    nst_error err;
    nst_format f = NST_FORMAT_AUTO;
    static const struct { const char *s; nst_format f; } ok[] = {
        {"png", NST_FORMAT_PNG}, {".JPG", NST_FORMAT_JPEG}, {"jpeg", NST_FORMAT_JPEG}, {"WebP", NST_FORMAT_WEBP},
        {"tif", NST_FORMAT_TIFF}, {".tiff", NST_FORMAT_TIFF}, {"bmp", NST_FORMAT_BMP}, {"gif", NST_FORMAT_GIF},
        {"ppm", NST_FORMAT_PPM}, {"pgm", NST_FORMAT_PPM}, {"auto", NST_FORMAT_AUTO},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        f = (nst_format)99;
        CHECK(nst_format_parse(ok[i].s, &f, &err) == NST_OK && f == ok[i].f, "parse %s: %d %s", ok[i].s, f, err.msg);
    }
    CHECK(nst_format_parse("xcf", &f, &err) == NST_ERR_ARG && strstr(err.msg, "'xcf'") && strstr(err.msg, "webp") &&
              strstr(err.msg, "tiff"),
          "parse xcf: %s", err.msg);
    CHECK(nst_format_parse(NULL, &f, &err) == NST_ERR_ARG, "parse NULL");
    const nst_format all[] = {NST_FORMAT_PNG, NST_FORMAT_JPEG, NST_FORMAT_WEBP, NST_FORMAT_TIFF,
                              NST_FORMAT_BMP, NST_FORMAT_GIF,  NST_FORMAT_PPM};
    const char *names[] = {"png", "jpeg", "webp", "tiff", "bmp", "gif", "ppm"};
    for (int i = 0; i < 7; i++) {
        CHECK(strcmp(nst_format_name(all[i]), names[i]) == 0, "name %d: %s", i, nst_format_name(all[i]));
        CHECK(nst_format_parse(names[i], &f, &err) == NST_OK && f == all[i], "name %s parses back", names[i]);
        CHECK(nst_format_writable(all[i]) == (i < 4), "%s writable", names[i]);
    }
    CHECK(strcmp(nst_format_name(NST_FORMAT_AUTO), "auto") == 0, "auto name");
    CHECK(!nst_format_writable(NST_FORMAT_AUTO), "auto writable");

    static const struct { const char *p; nst_format f; } paths[] = {
        {"a.png", NST_FORMAT_PNG},       {"dir.x/B.JPG", NST_FORMAT_JPEG}, {"c.jpeg", NST_FORMAT_JPEG},
        {"d.webp", NST_FORMAT_WEBP},     {"e.tif", NST_FORMAT_TIFF},       {"f.TIFF", NST_FORMAT_TIFF},
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        CHECK(nst_format_for_path(paths[i].p, &f, &err) == NST_OK && f == paths[i].f, "for_path %s: %s", paths[i].p,
              err.msg);
    CHECK(nst_format_for_path("out.xyz", &f, &err) == NST_ERR_ARG &&
              strcmp(err.msg, "out.xyz: unknown image file extension (supported: .png, .jpg, .jpeg, .webp, .tif, "
                              ".tiff)") == 0,
          "unknown extension: %s", err.msg);
    CHECK(nst_format_for_path("dir.png/noext", &f, &err) == NST_ERR_ARG && strstr(err.msg, "dir.png/noext:"),
          "a dot in the folder only: %s", err.msg);
    CHECK(nst_format_for_path("x.gif", &f, &err) == NST_ERR_ARG &&
              strcmp(err.msg, "x.gif: unknown image file extension (supported: .png, .jpg, .jpeg, .webp, .tif, "
                              ".tiff; nst reads GIF but does not write it)") == 0,
          "read-only extension: %s", err.msg);

    static const struct { const char *magic; size_t n; nst_format f; } magic[] = {
        {"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16, NST_FORMAT_PNG},
        {"\xff\xd8\xff\xe0", 4, NST_FORMAT_JPEG},
        {"RIFF\x10\0\0\0WEBPVP8L", 16, NST_FORMAT_WEBP},
        {"RIFF\x10\0\0\0WAVEfmt ", 16, NST_FORMAT_AUTO},
        {"II*\0\x08\0\0\0", 8, NST_FORMAT_TIFF},
        {"MM\0*\0\0\0\x08", 8, NST_FORMAT_TIFF},
        {"II+\0\x08\0\0\0", 8, NST_FORMAT_TIFF},
        {"BM\x46\0\0\0\0\0\0\0\x36\0\0\0\x28\0\0\0", 18, NST_FORMAT_BMP},
        {"BM\x46\0\0\0\0\0\0\0\x36\0\0\0\x0c\0\0\0", 18, NST_FORMAT_BMP},
        {"BMW owners club, minutes", 18, NST_FORMAT_AUTO},
        {"GIF89a", 6, NST_FORMAT_GIF},
        {"GIF87a", 6, NST_FORMAT_GIF},
        {"GIF88a", 6, NST_FORMAT_AUTO},
        {"P6\n2 2\n255\n", 11, NST_FORMAT_PPM},
        {"P5 1 1 255 ", 11, NST_FORMAT_PPM},
        {"P3\n", 3, NST_FORMAT_AUTO},
        {"\x89PNG", 4, NST_FORMAT_AUTO},
        {"", 0, NST_FORMAT_AUTO},
    };
    for (size_t i = 0; i < sizeof magic / sizeof magic[0]; i++)
        CHECK(nst_format_detect(magic[i].magic, magic[i].n) == magic[i].f, "detect %zu: %d, want %d", i,
              nst_format_detect(magic[i].magic, magic[i].n), magic[i].f);
    CHECK(nst_format_detect(NULL, 10) == NST_FORMAT_AUTO, "detect NULL");

    unsigned char junk[64];
    memset(junk, 'x', sizeof junk);
    expect_decode_fail(junk, sizeof junk, "junk.png", 0, NST_ERR_FORMAT, "unknown content");
    nst_image img;
    decode_bytes(&img, junk, sizeof junk, "junk.png", &err);
    CHECK(strcmp(err.msg, "junk.png: not an image nst can read (PNG, JPEG, WebP, TIFF, BMP, GIF, PPM)") == 0,
          "unknown content message: %s", err.msg);
    CHECK(nst_image_decode(&img, junk, sizeof junk, NULL, NULL, &err) == NST_ERR_FORMAT &&
              strstr(err.msg, "<memory>"),
          "default name: %s", err.msg);
    const nst_limits small = {0, 10};
    CHECK(nst_image_decode(&img, junk, sizeof junk, "<stdin>", &small, &err) == NST_ERR_LIMIT &&
              strstr(err.msg, "<stdin>: file is 64 bytes"),
          "decode checks the file size limit: %s", err.msg);
}

/* ---- WebP ------------------------------------------------------------------------------ */

static unsigned char *webp_file(const unsigned char *px, int w, int h, int alpha, float lossy_q, size_t *n) {
    uint8_t *out = NULL;
    if (lossy_q > 0)
        *n = alpha ? WebPEncodeRGBA(px, w, h, w * 4, lossy_q, &out) : WebPEncodeRGB(px, w, h, w * 3, lossy_q, &out);
    else
        *n = alpha ? WebPEncodeLosslessRGBA(px, w, h, w * 4, &out) : WebPEncodeLosslessRGB(px, w, h, w * 3, &out);
    if (!*n) { fprintf(stderr, "WebP encoding failed\n"); exit(2); }
    unsigned char *c = copy_out(out, *n);
    WebPFree(out);
    return c;
}

static void test_webp(void) {
    nst_image img;
    nst_error err;
    int w = 5, h = 4;
    unsigned char rgba[5 * 4 * 4], rgb[5 * 4 * 3];
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            unsigned char *p = rgba + 4 * (y * w + x), *q = rgb + 3 * (y * w + x);
            p[0] = q[0] = (unsigned char)(x * 50), p[1] = q[1] = (unsigned char)(y * 60 + 10);
            p[2] = q[2] = (unsigned char)(200 - x * 30);
            p[3] = (unsigned char)(x == 0 ? 255 : y == 3 && x == 4 ? 0 : 40 * x + 10 * y);
        }
    /* Lossless with alpha: exact colours on white and the exact alpha. */
    size_t n = 0;
    unsigned char *f = webp_file(rgba, w, h, 1, 0, &n);
    CHECK(decode_bytes(&img, f, n, "a.webp", &err) == NST_OK, "lossless rgba webp: %s", err.msg);
    int ok = img.pixels && img.alpha && img.width == w && img.height == h && img.bit_depth == 8;
    for (int i = 0; ok && i < w * h; i++) {
        const unsigned char *p = rgba + 4 * i;
        ok = img.alpha[i] == p[3] && near_rgb(img.pixels + 3 * i, on_white(p[0], p[3]), on_white(p[1], p[3]),
                                              on_white(p[2], p[3]), 1e-3f);
    }
    CHECK(ok, "lossless rgba webp values");
    nst_image_free(&img);
    seed("rgba5x4-lossless.webp", f, n);
    check_truncations(f, n, "a.webp", n, "lossless webp");
    check_load_matches_decode(f, n, "a.webp", "webp");
    free(f);

    /* Lossless, opaque: no alpha plane. */
    f = webp_file(rgb, w, h, 0, 0, &n);
    CHECK(decode_bytes(&img, f, n, "b.webp", &err) == NST_OK, "lossless rgb webp: %s", err.msg);
    ok = img.pixels && !img.alpha && img.width == w;
    for (int i = 0; ok && i < w * h; i++) ok = near_rgb(img.pixels + 3 * i, rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2], 0);
    CHECK(ok, "lossless rgb webp: exact values and no alpha");
    nst_image_free(&img);
    /* A lossless header claiming 16384x16384 (over the default pixel limit). */
    unsigned char *big = copy_out(f, n);
    if (n > 25 && memcmp(big + 12, "VP8L", 4) == 0) {
        uint32_t bits = (uint32_t)big[21] | (uint32_t)big[22] << 8 | (uint32_t)big[23] << 16 | (uint32_t)big[24] << 24;
        bits = (bits & ~0x0FFFFFFFu) | 16383u | 16383u << 14;
        big[21] = (unsigned char)bits, big[22] = (unsigned char)(bits >> 8), big[23] = (unsigned char)(bits >> 16);
        big[24] = (unsigned char)(bits >> 24);
        expect_decode_fail(big, n, "big.webp", 0, NST_ERR_LIMIT, "16384x16384 lossless webp");
    } else {
        CHECK(0, "no VP8L chunk at 12");
    }
    free(big);
    free(f);

    /* An animated header (VP8X) claiming a 60000x60000 canvas: refused from the header. */
    unsigned char anim[30] = "RIFF\x16\0\0\0WEBPVP8X\x0a\0\0\0\x02\0\0\0";
    unsigned cw = 60000 - 1;
    anim[24] = (unsigned char)cw, anim[25] = (unsigned char)(cw >> 8), anim[26] = (unsigned char)(cw >> 16);
    anim[27] = (unsigned char)cw, anim[28] = (unsigned char)(cw >> 8), anim[29] = (unsigned char)(cw >> 16);
    double t0 = now_s();
    expect_decode_fail(anim, sizeof anim, "huge.webp", 0, NST_ERR_LIMIT, "60000x60000 webp canvas");
    CHECK(now_s() - t0 < 1.0, "huge webp took long");

    /* Lossy: close. */
    unsigned char smooth[32 * 32 * 3];
    for (int i = 0; i < 32 * 32; i++)
        smooth[3 * i] = (unsigned char)(i % 32 * 8), smooth[3 * i + 1] = (unsigned char)(i / 32 * 8),
        smooth[3 * i + 2] = 128;
    f = webp_file(smooth, 32, 32, 0, 90, &n);
    seed("rgb32x32-lossy.webp", f, n);
    CHECK(decode_bytes(&img, f, n, "c.webp", &err) == NST_OK, "lossy webp: %s", err.msg);
    double maxd = 0;
    for (int i = 0; img.pixels && i < 32 * 32 * 3; i++) maxd = fmax(maxd, fabs(img.pixels[i] - smooth[i]));
    CHECK(img.pixels && !img.alpha && maxd < 16, "lossy webp: max diff %.1f", maxd);
    nst_image_free(&img);
    free(f);

    /* Animated: the first frame. */
    WebPAnimEncoderOptions ao;
    WebPConfig cfg;
    WebPPicture pic;
    WebPData anim_data = {0};
    WebPAnimEncoderOptionsInit(&ao);
    WebPConfigInit(&cfg);
    cfg.lossless = 1;
    WebPAnimEncoder *enc = WebPAnimEncoderNew(8, 8, &ao);
    for (int fr = 0; fr < 2; fr++) {
        unsigned char fp[8 * 8 * 3];
        for (int i = 0; i < 64; i++) fp[3 * i] = fr ? 0 : 255, fp[3 * i + 1] = 0, fp[3 * i + 2] = fr ? 255 : 0;
        WebPPictureInit(&pic);
        pic.width = pic.height = 8;
        pic.use_argb = 1;
        WebPPictureImportRGB(&pic, fp, 24);
        CHECK(WebPAnimEncoderAdd(enc, &pic, fr * 100, &cfg), "anim add");
        WebPPictureFree(&pic);
    }
    WebPAnimEncoderAdd(enc, NULL, 200, NULL);
    CHECK(WebPAnimEncoderAssemble(enc, &anim_data), "anim assemble");
    WebPAnimEncoderDelete(enc);
    seed("anim8x8.webp", anim_data.bytes, anim_data.size);
    CHECK(decode_bytes(&img, anim_data.bytes, anim_data.size, "anim.webp", &err) == NST_OK, "animated webp: %s",
          err.msg);
    CHECK(img.pixels && img.width == 8 && img.height == 8 && near_rgb(px(&img, 3, 3), 255, 0, 0, 0) &&
              near_rgb(px(&img, 7, 7), 255, 0, 0, 0),
          "animated webp: not the first (red) frame");
    nst_image_free(&img);
    WebPDataClear(&anim_data);

    /* nst's own WebP: alpha, ICC and EXIF round trip; the EXIF orientation is applied. */
    nst_image a;
    nst_image_alloc(&a, 24, 16, &err);
    a.alpha = malloc(24 * 16 * sizeof(float));
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 24; x++) {
            float al = (float)(x * 11), *p = a.pixels + 3 * (y * 24 + x);
            a.alpha[y * 24 + x] = al;
            p[0] = on_white(200, al), p[1] = on_white(40, al), p[2] = on_white(90, al);
        }
    unsigned char icc[200], exif[64];
    size_t icc_n = make_icc(icc, sizeof icc, "RGB "), at = 0, exif_n = make_exif(exif, 1, 6, &at);
    a.icc = copy_out(icc, icc_n), a.icc_size = icc_n;
    a.exif = copy_out(exif, exif_n), a.exif_size = exif_n;
    CHECK(nst_image_save(&a, tpath("meta.webp"), &err) == NST_OK, "save webp: %s", err.msg);
    seed_file("rgba24x16-icc-exif6.webp", tpath("meta.webp"));
    CHECK(nst_image_load(&img, tpath("meta.webp"), NULL, &err) == NST_OK, "load webp: %s", err.msg);
    exif_reset(exif, at, 1);
    CHECK(img.width == 16 && img.height == 24, "webp orientation 6 not applied: %dx%d", img.width, img.height);
    CHECK(blob_is(img.icc, img.icc_size, icc, icc_n), "webp ICC lost");
    CHECK(blob_is(img.exif, img.exif_size, exif, exif_n), "webp EXIF lost or orientation not reset");
    /* Orientation 6: stored (x, y) is upright (h-1-y, x). */
    int alpha_ok = img.alpha != NULL, col_ok = img.pixels != NULL;
    for (int y = 0; alpha_ok && y < 16; y++)
        for (int x = 0; x < 24; x++) {
            int ux = 15 - y, uy = x;
            float al = img.alpha[uy * 16 + ux];
            alpha_ok &= fabsf(al - (float)(x * 11)) <= 1.0f;
            if (x * 11 >= 128) col_ok &= near_rgb(px(&img, ux, uy), on_white(200, al), on_white(40, al), on_white(90, al), 16);
        }
    CHECK(alpha_ok && col_ok, "webp alpha / colours after the round trip");
    nst_image_free(&img);
    nst_save_options strip = {NST_FORMAT_WEBP, 0, 0, 1};
    unsigned char *mem = NULL;
    size_t mem_n = 0;
    CHECK(nst_image_encode(&a, &strip, &mem, &mem_n, &err) == NST_OK, "encode webp: %s", err.msg);
    CHECK(decode_bytes(&img, mem, mem_n, "strip.webp", &err) == NST_OK && !img.icc && !img.exif && img.width == 24,
          "stripped webp: %s", err.msg);
    nst_image_free(&img);
    check_truncations(mem, mem_n, "strip.webp", mem_n, "nst's webp");
    free(mem);
    nst_image_free(&a);
}

/* ---- TIFF ------------------------------------------------------------------------------ */

typedef struct {
    int w, h, spp, bps, photometric, planar, extra, tile, orientation, compression, inkset;
    const uint16_t *cmap;
    const unsigned char *icc;
    size_t icc_n;
} tiff_spec;

/* Writes a TIFF with libtiff from interleaved samples (host-order 16-bit) or packed rows
 * (bps < 8), and returns its bytes. */
static unsigned char *make_tiff(const tiff_spec *s, const void *data, size_t *n) {
    const char *path = tpath("make.tif");
    TIFF *t = TIFFOpen(path, "w");
    if (!t) { fprintf(stderr, "TIFFOpen failed\n"); exit(2); }
    TIFFSetField(t, TIFFTAG_IMAGEWIDTH, (uint32_t)s->w);
    TIFFSetField(t, TIFFTAG_IMAGELENGTH, (uint32_t)s->h);
    TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, (uint16_t)s->spp);
    TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, (uint16_t)s->bps);
    TIFFSetField(t, TIFFTAG_PHOTOMETRIC, (uint16_t)s->photometric);
    TIFFSetField(t, TIFFTAG_PLANARCONFIG, (uint16_t)(s->planar ? PLANARCONFIG_SEPARATE : PLANARCONFIG_CONTIG));
    TIFFSetField(t, TIFFTAG_COMPRESSION, (uint16_t)(s->compression ? s->compression : COMPRESSION_NONE));
    if (s->orientation) TIFFSetField(t, TIFFTAG_ORIENTATION, (uint16_t)s->orientation);
    if (s->inkset) TIFFSetField(t, TIFFTAG_INKSET, (uint16_t)s->inkset);
    if (s->extra >= 0) {
        uint16_t ex = (uint16_t)s->extra;
        TIFFSetField(t, TIFFTAG_EXTRASAMPLES, 1, &ex);
    }
    if (s->cmap) {
        size_t k = (size_t)1 << s->bps;
        TIFFSetField(t, TIFFTAG_COLORMAP, s->cmap, s->cmap + k, s->cmap + 2 * k);
    }
    if (s->icc) TIFFSetField(t, TIFFTAG_ICCPROFILE, (uint32_t)s->icc_n, s->icc);
    int bytes = s->bps >= 8 ? s->bps / 8 : 0;
    size_t row = s->bps >= 8 ? (size_t)s->w * s->spp * bytes : ((size_t)s->w * s->spp * s->bps + 7) / 8;
    const unsigned char *d = data;
    if (s->tile) {
        int planes = s->planar ? s->spp : 1, per = s->planar ? 1 : s->spp;
        TIFFSetField(t, TIFFTAG_TILEWIDTH, (uint32_t)s->tile);
        TIFFSetField(t, TIFFTAG_TILELENGTH, (uint32_t)s->tile);
        unsigned char *buf = malloc((size_t)s->tile * s->tile * per * bytes);
        for (int p = 0; p < planes; p++)
            for (int ty = 0; ty < s->h; ty += s->tile)
                for (int tx = 0; tx < s->w; tx += s->tile) {
                    memset(buf, 0, (size_t)s->tile * s->tile * per * bytes);
                    for (int y = 0; y < s->tile && ty + y < s->h; y++)
                        for (int x = 0; x < s->tile && tx + x < s->w; x++)
                            for (int c = 0; c < per; c++)
                                memcpy(buf + (((size_t)y * s->tile + x) * per + c) * bytes,
                                       d + (((size_t)(ty + y) * s->w + tx + x) * s->spp + (s->planar ? p : c)) * bytes,
                                       bytes);
                    TIFFWriteTile(t, buf, tx, ty, 0, (uint16_t)p);
                }
        free(buf);
    } else {
        TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, 2u);
        if (!s->planar) {
            for (int y = 0; y < s->h; y++) TIFFWriteScanline(t, (void *)(d + y * row), (uint32_t)y, 0);
        } else {
            unsigned char *prow = malloc((size_t)s->w * bytes);
            for (int p = 0; p < s->spp; p++)
                for (int y = 0; y < s->h; y++) {
                    for (int x = 0; x < s->w; x++)
                        memcpy(prow + (size_t)x * bytes, d + y * row + ((size_t)x * s->spp + p) * bytes, bytes);
                    TIFFWriteScanline(t, prow, (uint32_t)y, (uint16_t)p);
                }
            free(prow);
        }
    }
    TIFFClose(t);
    return read_bytes(path, n);
}

/* Patches the IFD0 ImageWidth and ImageLength of a little-endian TIFF. */
static int tiff_patch_size(unsigned char *b, size_t n, unsigned w, unsigned h) {
    if (n < 8 || b[0] != 'I') return 0;
    size_t ifd = b[4] | b[5] << 8 | b[6] << 16 | (size_t)b[7] << 24;
    if (ifd + 2 > n) return 0;
    unsigned count = b[ifd] | b[ifd + 1] << 8, done = 0;
    for (unsigned i = 0; i < count && ifd + 2 + 12 * (i + 1) <= n; i++) {
        unsigned char *e = b + ifd + 2 + 12 * i;
        unsigned tag = e[0] | e[1] << 8, v = tag == 256 ? w : h;
        if (tag != 256 && tag != 257) continue;
        memset(e + 8, 0, 4);
        e[8] = (unsigned char)v, e[9] = (unsigned char)(v >> 8);
        if ((e[2] | e[3] << 8) == 4) e[10] = (unsigned char)(v >> 16), e[11] = (unsigned char)(v >> 24);
        done++;
    }
    return done == 2;
}

static void test_tiff(void) {
    nst_image img;
    nst_error err;
    int w = 7, h = 5;
    unsigned char rgb8[7 * 5 * 4];
    uint16_t rgb16[7 * 5 * 4];
    for (int i = 0; i < w * h; i++)
        for (int c = 0; c < 4; c++) {
            rgb8[4 * i + c] = (unsigned char)((i * 37 + c * 70) % 256);
            rgb16[4 * i + c] = (uint16_t)((i * 4099 + c * 17001 + 1000) % 65536);
        }
    rgb8[3] = 0, rgb16[3] = 0; /* one transparent pixel */

    /* 8-bit RGB, contiguous strips, deflate, with an ICC profile. */
    unsigned char icc[256];
    size_t icc_n = make_icc(icc, sizeof icc, "RGB "), n = 0;
    unsigned char packed[7 * 5 * 3];
    for (int i = 0; i < w * h; i++) memcpy(packed + 3 * i, rgb8 + 4 * i, 3);
    tiff_spec s = {w, h, 3, 8, PHOTOMETRIC_RGB, 0, -1, 0, 0, COMPRESSION_ADOBE_DEFLATE, 0, NULL, icc, icc_n};
    unsigned char *f = make_tiff(&s, packed, &n);
    seed("rgb8-icc-deflate.tif", f, n);
    CHECK(decode_bytes(&img, f, n, "rgb8.tif", &err) == NST_OK, "rgb8 tiff: %s", err.msg);
    int ok = img.pixels && img.width == w && img.height == h && !img.alpha && img.bit_depth == 8;
    for (int i = 0; ok && i < w * h; i++) ok = near_rgb(img.pixels + 3 * i, packed[3 * i], packed[3 * i + 1], packed[3 * i + 2], 0);
    CHECK(ok, "rgb8 tiff values");
    CHECK(blob_is(img.icc, img.icc_size, icc, icc_n), "tiff ICC not read");
    nst_image_free(&img);
    check_load_matches_decode(f, n, "rgb8.tif", "tiff");
    free(f);

    /* 16-bit RGB keeps 16-bit precision (strips, then tiles, then planar). */
    uint16_t packed16[7 * 5 * 3];
    for (int i = 0; i < w * h; i++) memcpy(packed16 + 3 * i, rgb16 + 4 * i, 6);
    for (int variant = 0; variant < 3; variant++) {
        tiff_spec s16 = {w, h, 3, 16, PHOTOMETRIC_RGB, variant == 2, -1, variant == 1 ? 16 : 0, 0, COMPRESSION_LZW, 0, NULL, NULL, 0};
        f = make_tiff(&s16, packed16, &n);
        static const char *const seeds16[3] = {"rgb16-lzw.tif", "rgb16-lzw-tiled.tif", "rgb16-lzw-planar.tif"};
        seed(seeds16[variant], f, n);
        CHECK(decode_bytes(&img, f, n, "rgb16.tif", &err) == NST_OK, "rgb16 tiff %d: %s", variant, err.msg);
        ok = img.pixels && img.width == w && img.bit_depth == 16;
        for (int i = 0; ok && i < w * h * 3; i++) ok = fabs(img.pixels[i] - packed16[i] * 255.0 / 65535.0) < 1e-4;
        CHECK(ok, "rgb16 tiff %d: values lost precision", variant);
        nst_image_free(&img);
        if (variant == 1) check_truncations(f, n, "tiled.tif", n, "tiled 16-bit tiff");
        free(f);
    }

    /* 8-bit RGBA, unassociated alpha, planar: composited on white, alpha kept. */
    tiff_spec sa = {w, h, 4, 8, PHOTOMETRIC_RGB, 1, EXTRASAMPLE_UNASSALPHA, 0, 0, 0, 0, NULL, NULL, 0};
    f = make_tiff(&sa, rgb8, &n);
    seed("rgba8-planar.tif", f, n);
    CHECK(decode_bytes(&img, f, n, "rgba.tif", &err) == NST_OK, "rgba tiff: %s", err.msg);
    ok = img.pixels && img.alpha;
    for (int i = 0; ok && i < w * h; i++) {
        const unsigned char *p = rgb8 + 4 * i;
        ok = img.alpha[i] == p[3] &&
             near_rgb(img.pixels + 3 * i, on_white(p[0], p[3]), on_white(p[1], p[3]), on_white(p[2], p[3]), 1e-3f);
    }
    CHECK(ok, "rgba tiff values");
    nst_image_free(&img);
    check_truncations(f, n, "rgba.tif", n, "planar rgba tiff");
    free(f);

    /* 16-bit RGBA with associated (premultiplied) alpha, tiled. */
    uint16_t pre[7 * 5 * 4];
    for (int i = 0; i < w * h; i++) {
        double a = rgb16[4 * i + 3];
        for (int c = 0; c < 3; c++) pre[4 * i + c] = (uint16_t)(rgb16[4 * i + c] * a / 65535.0);
        pre[4 * i + 3] = rgb16[4 * i + 3];
    }
    tiff_spec sp = {w, h, 4, 16, PHOTOMETRIC_RGB, 0, EXTRASAMPLE_ASSOCALPHA, 16, 0, 0, 0, NULL, NULL, 0};
    f = make_tiff(&sp, pre, &n);
    seed("rgba16-assoc-tiled.tif", f, n);
    CHECK(decode_bytes(&img, f, n, "pre.tif", &err) == NST_OK, "premultiplied tiff: %s", err.msg);
    ok = img.pixels && img.alpha && img.bit_depth == 16;
    for (int i = 0; ok && i < w * h; i++) {
        float a = (float)(pre[4 * i + 3] * 255.0 / 65535.0);
        ok = fabsf(img.alpha[i] - a) < 1e-3f;
        for (int c = 0; ok && c < 3; c++)
            ok = fabsf(img.pixels[3 * i + c] - fminf((float)(pre[4 * i + c] * 255.0 / 65535.0) + 255.0f - a, 255.0f)) < 1e-3f;
    }
    CHECK(ok, "premultiplied 16-bit tiff values");
    nst_image_free(&img);
    free(f);

    /* Grey 16-bit, min-is-white 8-bit, palette, CMYK. */
    uint16_t g16[7 * 5];
    for (int i = 0; i < w * h; i++) g16[i] = rgb16[4 * i];
    tiff_spec sg = {w, h, 1, 16, PHOTOMETRIC_MINISBLACK, 0, -1, 0, 0, 0, 0, NULL, NULL, 0};
    f = make_tiff(&sg, g16, &n);
    seed("grey16.tif", f, n);
    CHECK(decode_bytes(&img, f, n, "g16.tif", &err) == NST_OK, "grey16 tiff: %s", err.msg);
    ok = img.pixels != NULL;
    for (int i = 0; ok && i < w * h; i++) {
        float v = (float)(g16[i] * 255.0 / 65535.0);
        ok = near_rgb(img.pixels + 3 * i, v, v, v, 1e-4f);
    }
    CHECK(ok && img.bit_depth == 16, "grey16 tiff values");
    nst_image_free(&img);
    free(f);

    unsigned char g8[7 * 5];
    for (int i = 0; i < w * h; i++) g8[i] = rgb8[4 * i];
    tiff_spec sw = {w, h, 1, 8, PHOTOMETRIC_MINISWHITE, 0, -1, 0, 0, 0, 0, NULL, NULL, 0};
    f = make_tiff(&sw, g8, &n);
    CHECK(decode_bytes(&img, f, n, "white.tif", &err) == NST_OK, "min-is-white tiff: %s", err.msg);
    ok = img.pixels != NULL;
    for (int i = 0; ok && i < w * h; i++) ok = near_rgb(img.pixels + 3 * i, 255 - g8[i], 255 - g8[i], 255 - g8[i], 0);
    CHECK(ok, "min-is-white tiff values");
    nst_image_free(&img);
    free(f);

    uint16_t cmap[3 * 256] = {0};
    for (int i = 0; i < 256; i++) cmap[i] = (uint16_t)(i * 257), cmap[256 + i] = (uint16_t)((255 - i) * 257), cmap[512 + i] = 0x8080;
    tiff_spec spal = {w, h, 1, 8, PHOTOMETRIC_PALETTE, 0, -1, 0, 0, 0, 0, cmap, NULL, 0};
    f = make_tiff(&spal, g8, &n);
    seed("palette8.tif", f, n);
    CHECK(decode_bytes(&img, f, n, "pal.tif", &err) == NST_OK, "palette tiff: %s", err.msg);
    ok = img.pixels != NULL;
    for (int i = 0; ok && i < w * h; i++) ok = near_rgb(img.pixels + 3 * i, g8[i], 255 - g8[i], 128, 1e-3f);
    CHECK(ok, "palette tiff values");
    nst_image_free(&img);
    free(f);

    unsigned char cmyk[7 * 5 * 4];
    for (int i = 0; i < w * h; i++) cmyk[4 * i] = (unsigned char)(i * 7), cmyk[4 * i + 1] = 0, cmyk[4 * i + 2] = 255, cmyk[4 * i + 3] = (unsigned char)(i * 3);
    tiff_spec sc = {w, h, 4, 8, PHOTOMETRIC_SEPARATED, 0, -1, 0, 0, 0, INKSET_CMYK, NULL, NULL, 0};
    f = make_tiff(&sc, cmyk, &n);
    seed("cmyk8.tif", f, n);
    CHECK(decode_bytes(&img, f, n, "cmyk.tif", &err) == NST_OK, "cmyk tiff: %s", err.msg);
    ok = img.pixels && !img.alpha;
    for (int i = 0; ok && i < w * h; i++) {
        float k = (255 - cmyk[4 * i + 3]) / 255.0f;
        ok = near_rgb(img.pixels + 3 * i, (255 - cmyk[4 * i]) * k, 255 * k, 0, 1e-3f);
    }
    CHECK(ok, "cmyk tiff values");
    nst_image_free(&img);
    free(f);

    /* 1-bit (through libtiff's RGBA reader) and an orientation tag (bottom-right: 180). */
    unsigned char bits[5 * 1] = {0xA0, 0x40, 0xE0, 0x00, 0xFE}; /* 7 wide: 1 0 1 0 0 0 0 / 0 1 0 ... */
    tiff_spec sb = {w, h, 1, 1, PHOTOMETRIC_MINISBLACK, 0, -1, 0, 0, 0, 0, NULL, NULL, 0};
    f = make_tiff(&sb, bits, &n);
    seed("bilevel.tif", f, n);
    CHECK(decode_bytes(&img, f, n, "bits.tif", &err) == NST_OK, "1-bit tiff: %s", err.msg);
    CHECK(img.pixels && near_rgb(px(&img, 0, 0), 255, 255, 255, 0) && near_rgb(px(&img, 1, 0), 0, 0, 0, 0) &&
              near_rgb(px(&img, 1, 1), 255, 255, 255, 0) && near_rgb(px(&img, 6, 4), 255, 255, 255, 0) &&
              near_rgb(px(&img, 6, 3), 0, 0, 0, 0) && !img.alpha && img.bit_depth == 8,
          "1-bit tiff values");
    nst_image_free(&img);
    free(f);
    tiff_spec so = s;
    so.icc = NULL;
    so.orientation = ORIENTATION_BOTRIGHT;
    f = make_tiff(&so, packed, &n);
    seed("rgb8-orientation3.tif", f, n);
    CHECK(decode_bytes(&img, f, n, "rot.tif", &err) == NST_OK, "rotated tiff: %s", err.msg);
    ok = img.pixels && img.width == w;
    for (int y = 0; ok && y < h; y++)
        for (int x = 0; ok && x < w; x++) {
            const unsigned char *p = packed + 3 * ((h - 1 - y) * w + (w - 1 - x));
            ok = near_rgb(px(&img, x, y), p[0], p[1], p[2], 0);
        }
    CHECK(ok, "tiff orientation 3 not applied");
    nst_image_free(&img);
    check_truncations(f, n, "rot.tif", n, "8-bit tiff");

    /* A header claiming 60000x60000. */
    CHECK(tiff_patch_size(f, n, 60000, 60000), "could not patch the TIFF's size");
    double t0 = now_s();
    expect_decode_fail(f, n, "huge.tif", 0, NST_ERR_LIMIT, "60000x60000 tiff");
    CHECK(now_s() - t0 < 1.0, "huge tiff took long");
    tiff_patch_size(f, n, 0, 5);
    expect_decode_fail(f, n, "zero.tif", 0, NST_ERR_FORMAT, "zero-width tiff");
    free(f);

    /* Floating-point samples: refused with the reason. */
    float fl[4] = {0.5f, 0.25f, 1.0f, 0.0f};
    const char *fp = tpath("float.tif");
    TIFF *t = TIFFOpen(fp, "w");
    TIFFSetField(t, TIFFTAG_IMAGEWIDTH, 4u);
    TIFFSetField(t, TIFFTAG_IMAGELENGTH, 1u);
    TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, (uint16_t)1);
    TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, (uint16_t)32);
    TIFFSetField(t, TIFFTAG_SAMPLEFORMAT, (uint16_t)SAMPLEFORMAT_IEEEFP);
    TIFFSetField(t, TIFFTAG_PHOTOMETRIC, (uint16_t)PHOTOMETRIC_MINISBLACK);
    TIFFWriteScanline(t, fl, 0, 0);
    TIFFClose(t);
    expect_fail(fp, 0, NST_ERR_FORMAT, "float tiff");
    nst_image_load(&img, fp, NULL, &err);
    CHECK(strstr(err.msg, "floating-point") != NULL, "float tiff message: %s", err.msg);
}

/* ---- BMP ------------------------------------------------------------------------------- */

static void le16p(unsigned char *p, unsigned v) { p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8); }
static void le32p(unsigned char *p, uint32_t v) { le16p(p, v & 0xffff), le16p(p + 2, v >> 16); }

/* A BMP: file header, a DIB header of hs bytes, the masks (in the header from 52 bytes
 * on, else after it), the palette (BGR0, or BGR for the 12-byte header), the pixel data. */
static size_t make_bmp(unsigned char *b, uint32_t hs, int32_t w, int32_t h, int bpp, uint32_t comp,
                       const uint32_t *masks, int nmasks, const unsigned char *pal, int npal,
                       const unsigned char *pix, size_t npix) {
    size_t esize = hs == 12 ? 3 : 4, at = 14 + hs + (hs < 52 && masks ? 4 * (size_t)nmasks : 0);
    size_t off = at + (size_t)npal * esize;
    memset(b, 0, off);
    b[0] = 'B', b[1] = 'M';
    le32p(b + 2, (uint32_t)(off + npix));
    le32p(b + 10, (uint32_t)off);
    unsigned char *d = b + 14;
    le32p(d, hs);
    if (hs == 12) {
        le16p(d + 4, (unsigned)w), le16p(d + 6, (unsigned)h), le16p(d + 8, 1), le16p(d + 10, (unsigned)bpp);
    } else {
        le32p(d + 4, (uint32_t)w), le32p(d + 8, (uint32_t)h), le16p(d + 12, 1), le16p(d + 14, (unsigned)bpp);
        le32p(d + 16, comp), le32p(d + 20, (uint32_t)npix), le32p(d + 32, (uint32_t)npal);
        for (int i = 0; masks && i < nmasks; i++) le32p((hs >= 52 ? d + 40 : b + 14 + hs) + 4 * i, masks[i]);
    }
    for (int i = 0; i < npal; i++) memcpy(b + at + (size_t)i * esize, pal + 4 * i, esize);
    memcpy(b + off, pix, npix);
    return off + npix;
}

static void test_bmp(void) {
    nst_image img;
    nst_error err;
    unsigned char b[1024];
    size_t n;

    /* 24-bit, 3x2, bottom-up, rows padded to 12 bytes: BGR. */
    static const unsigned char c24[2][3][3] = {{{255, 0, 0}, {0, 255, 0}, {0, 0, 255}},
                                               {{10, 20, 30}, {40, 50, 60}, {70, 80, 90}}}; /* [y][x] RGB, top first */
    unsigned char rows[24];
    memset(rows, 0xEE, sizeof rows);
    for (int sy = 0; sy < 2; sy++)
        for (int x = 0; x < 3; x++)
            for (int c = 0; c < 3; c++) rows[sy * 12 + x * 3 + c] = c24[1 - sy][x][2 - c];
    n = make_bmp(b, 40, 3, 2, 24, 0, NULL, 0, NULL, 0, rows, sizeof rows);
    seed("rgb24.bmp", b, n);
    CHECK(decode_bytes(&img, b, n, "a.bmp", &err) == NST_OK, "24-bit bmp: %s", err.msg);
    int ok = img.pixels && img.width == 3 && img.height == 2 && !img.alpha && img.bit_depth == 8;
    for (int y = 0; ok && y < 2; y++)
        for (int x = 0; ok && x < 3; x++) ok = near_rgb(px(&img, x, y), c24[y][x][0], c24[y][x][1], c24[y][x][2], 0);
    CHECK(ok, "24-bit bottom-up bmp values");
    nst_image_free(&img);
    check_truncations(b, n, "a.bmp", n - 3, "24-bit bmp");
    check_load_matches_decode(b, n, "a.bmp", "bmp");
    /* The same top-down. */
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 3; x++)
            for (int c = 0; c < 3; c++) rows[y * 12 + x * 3 + c] = c24[y][x][2 - c];
    n = make_bmp(b, 124, 3, -2, 24, 0, NULL, 0, NULL, 0, rows, sizeof rows);
    seed("rgb24-topdown-v5.bmp", b, n);
    CHECK(decode_bytes(&img, b, n, "td.bmp", &err) == NST_OK && near_rgb(px(&img, 0, 0), 255, 0, 0, 0) &&
              near_rgb(px(&img, 2, 1), 70, 80, 90, 0),
          "top-down V5 bmp: %s", err.msg);
    nst_image_free(&img);

    /* 32-bit BI_RGB: the fourth byte is not alpha. */
    unsigned char p32[16] = {1, 2, 3, 0, 4, 5, 6, 77, 7, 8, 9, 255, 10, 11, 12, 128};
    n = make_bmp(b, 40, 2, 2, 32, 0, NULL, 0, NULL, 0, p32, sizeof p32);
    seed("bgrx32.bmp", b, n);
    CHECK(decode_bytes(&img, b, n, "x.bmp", &err) == NST_OK && !img.alpha && near_rgb(px(&img, 0, 1), 3, 2, 1, 0) &&
              near_rgb(px(&img, 1, 0), 12, 11, 10, 0),
          "32-bit BI_RGB bmp: %s", err.msg);
    nst_image_free(&img);
    /* 32-bit bit fields with an alpha mask (V5): BGRA. */
    const uint32_t m32[4] = {0x00FF0000, 0x0000FF00, 0x000000FF, 0xFF000000};
    n = make_bmp(b, 124, 2, 2, 32, 3, m32, 4, NULL, 0, p32, sizeof p32);
    seed("bgra32-v5.bmp", b, n);
    CHECK(decode_bytes(&img, b, n, "alpha.bmp", &err) == NST_OK, "32-bit alpha bmp: %s", err.msg);
    CHECK(img.alpha && img.alpha[0] == 255 && img.alpha[1] == 128 && img.alpha[2] == 0 && img.alpha[3] == 77 &&
              near_rgb(px(&img, 0, 0), 9, 8, 7, 0) && near_rgb(px(&img, 0, 1), 255, 255, 255, 0) &&
              near_rgb(px(&img, 1, 1), on_white(6, 77), on_white(5, 77), on_white(4, 77), 1e-3f),
          "32-bit alpha bmp values");
    nst_image_free(&img);
    check_truncations(b, n, "alpha.bmp", n, "32-bit alpha bmp");
    /* ... and all opaque: no alpha plane. */
    unsigned char o32[16];
    memcpy(o32, p32, 16);
    o32[3] = o32[7] = o32[11] = o32[15] = 255;
    n = make_bmp(b, 124, 2, 2, 32, 3, m32, 4, NULL, 0, o32, sizeof o32);
    CHECK(decode_bytes(&img, b, n, "opaque.bmp", &err) == NST_OK && img.pixels && !img.alpha, "opaque alpha bmp");
    nst_image_free(&img);

    /* 16-bit: 5-5-5 by default, 5-6-5 by masks after a 40-byte header. */
    unsigned char p16[4] = {0xFF, 0x7F, 0x10, 0x00}; /* white, blue 16/31 */
    n = make_bmp(b, 40, 2, 1, 16, 0, NULL, 0, NULL, 0, p16, sizeof p16);
    seed("rgb555.bmp", b, n);
    CHECK(decode_bytes(&img, b, n, "555.bmp", &err) == NST_OK && near_rgb(px(&img, 0, 0), 255, 255, 255, 1e-3f) &&
              near_rgb(px(&img, 1, 0), 0, 0, 16 * 255.0f / 31, 1e-3f),
          "16-bit 5-5-5 bmp: %s", err.msg);
    nst_image_free(&img);
    const uint32_t m565[3] = {0xF800, 0x07E0, 0x001F};
    unsigned char q16[4] = {0x20, 0x00, 0x00, 0xF8}; /* green 1/63, red 31/31 */
    n = make_bmp(b, 40, 2, 1, 16, 3, m565, 3, NULL, 0, q16, sizeof q16);
    seed("rgb565-bitfields.bmp", b, n);
    CHECK(decode_bytes(&img, b, n, "565.bmp", &err) == NST_OK && near_rgb(px(&img, 0, 0), 0, 255.0f / 63, 0, 1e-3f) &&
              near_rgb(px(&img, 1, 0), 255, 0, 0, 1e-3f),
          "16-bit 5-6-5 bmp: %s", err.msg);
    nst_image_free(&img);

    /* Palettes: 8, 4, 2 and 1 bit; an index past the palette is black. */
    unsigned char pal[16] = {10, 20, 30, 0, 40, 50, 60, 0, 70, 80, 90, 0, 1, 2, 3, 0}; /* BGR0 */
    unsigned char i8[8] = {0, 1, 2, 9, 2, 1, 0, 0};                                    /* 4x2, bottom row first */
    n = make_bmp(b, 40, 4, 2, 8, 0, NULL, 0, pal, 3, i8, sizeof i8);
    seed("pal8.bmp", b, n);
    CHECK(decode_bytes(&img, b, n, "p8.bmp", &err) == NST_OK && near_rgb(px(&img, 0, 1), 30, 20, 10, 0) &&
              near_rgb(px(&img, 2, 1), 90, 80, 70, 0) && near_rgb(px(&img, 3, 1), 0, 0, 0, 0) &&
              near_rgb(px(&img, 1, 0), 60, 50, 40, 0),
          "8-bit palette bmp: %s", err.msg);
    nst_image_free(&img);
    check_truncations(b, n, "p8.bmp", n, "8-bit bmp");
    unsigned char i4[4] = {0x12, 0x30, 0x00, 0x00}; /* 3x1: 1 2 3 */
    n = make_bmp(b, 40, 3, 1, 4, 0, NULL, 0, pal, 4, i4, sizeof i4);
    seed("pal4.bmp", b, n);
    CHECK(decode_bytes(&img, b, n, "p4.bmp", &err) == NST_OK && near_rgb(px(&img, 0, 0), 60, 50, 40, 0) &&
              near_rgb(px(&img, 1, 0), 90, 80, 70, 0) && near_rgb(px(&img, 2, 0), 3, 2, 1, 0),
          "4-bit palette bmp: %s", err.msg);
    nst_image_free(&img);
    unsigned char i2[4] = {0x1B, 0x00, 0x00, 0x00}; /* 4x1: 0 1 2 3 */
    n = make_bmp(b, 40, 4, 1, 2, 0, NULL, 0, pal, 4, i2, sizeof i2);
    seed("pal2.bmp", b, n);
    CHECK(decode_bytes(&img, b, n, "p2.bmp", &err) == NST_OK && near_rgb(px(&img, 0, 0), 30, 20, 10, 0) &&
              near_rgb(px(&img, 3, 0), 3, 2, 1, 0),
          "2-bit palette bmp: %s", err.msg);
    nst_image_free(&img);
    unsigned char i1[8] = {0xA0, 0, 0, 0, 0x40, 0, 0, 0}; /* 3x2: bottom 1 0 1, top 0 1 0 */
    n = make_bmp(b, 12, 3, 2, 1, 0, NULL, 0, pal, 2, i1, sizeof i1);
    seed("pal1-core.bmp", b, n);
    CHECK(decode_bytes(&img, b, n, "core.bmp", &err) == NST_OK && near_rgb(px(&img, 0, 1), 60, 50, 40, 0) &&
              near_rgb(px(&img, 1, 1), 30, 20, 10, 0) && near_rgb(px(&img, 1, 0), 60, 50, 40, 0),
          "1-bit core-header bmp: %s", err.msg);
    nst_image_free(&img);
    check_truncations(b, n, "core.bmp", n - 3, "1-bit core bmp");

    /* RLE8, 4x3: row 0 (bottom) a run of 4; row 1 a literal 2 3 1 and a run of 1; row 2 a
     * delta past two pixels (left transparent) and a run of 2; end of bitmap. */
    unsigned char rle8[] = {4, 1, 0, 0, 0, 3, 2, 3, 1, 0, 1, 2, 0, 0, 0, 2, 2, 0, 2, 3, 0, 1};
    n = make_bmp(b, 40, 4, 3, 8, 1, NULL, 0, pal, 4, rle8, sizeof rle8);
    seed("rle8.bmp", b, n);
    CHECK(decode_bytes(&img, b, n, "rle8.bmp", &err) == NST_OK, "rle8 bmp: %s", err.msg);
    CHECK(img.alpha && img.alpha[0] == 0 && img.alpha[1] == 0 && img.alpha[2] == 255 &&
              near_rgb(px(&img, 0, 0), 255, 255, 255, 0) && near_rgb(px(&img, 3, 0), 3, 2, 1, 0) &&
              near_rgb(px(&img, 0, 1), 90, 80, 70, 0) && near_rgb(px(&img, 2, 1), 60, 50, 40, 0) &&
              near_rgb(px(&img, 3, 1), 90, 80, 70, 0) && near_rgb(px(&img, 0, 2), 60, 50, 40, 0) &&
              near_rgb(px(&img, 3, 2), 60, 50, 40, 0),
          "rle8 bmp values");
    nst_image_free(&img);
    check_truncations(b, n, "rle8.bmp", n, "rle8 bmp");
    unsigned char rle4[] = {5, 0x12, 0, 1};
    n = make_bmp(b, 40, 5, 1, 4, 2, NULL, 0, pal, 4, rle4, sizeof rle4);
    seed("rle4.bmp", b, n);
    CHECK(decode_bytes(&img, b, n, "rle4.bmp", &err) == NST_OK && !img.alpha && near_rgb(px(&img, 0, 0), 60, 50, 40, 0) &&
              near_rgb(px(&img, 1, 0), 90, 80, 70, 0) && near_rgb(px(&img, 4, 0), 60, 50, 40, 0),
          "rle4 bmp: %s", err.msg);
    nst_image_free(&img);

    /* Hostile and unsupported headers. */
    double t0 = now_s();
    n = make_bmp(b, 40, 60000, 60000, 24, 0, NULL, 0, NULL, 0, rows, sizeof rows);
    expect_decode_fail(b, n, "huge.bmp", 0, NST_ERR_LIMIT, "60000x60000 bmp");
    n = make_bmp(b, 40, 60000, -60000, 8, 1, NULL, 0, pal, 4, rle8, sizeof rle8);
    expect_decode_fail(b, n, "huge-rle.bmp", 0, NST_ERR_LIMIT, "60000x60000 rle bmp");
    CHECK(now_s() - t0 < 1.0, "huge bmp took long");
    n = make_bmp(b, 40, -3, 2, 24, 0, NULL, 0, NULL, 0, rows, sizeof rows);
    expect_decode_fail(b, n, "negw.bmp", 0, NST_ERR_FORMAT, "negative width bmp");
    n = make_bmp(b, 40, 0, 2, 24, 0, NULL, 0, NULL, 0, rows, sizeof rows);
    expect_decode_fail(b, n, "zerow.bmp", 0, NST_ERR_FORMAT, "zero width bmp");
    n = make_bmp(b, 40, 3, 2, 24, 0, NULL, 0, NULL, 0, rows, sizeof rows);
    le32p(b + 14, 100);
    expect_decode_fail(b, n, "hs.bmp", 0, NST_ERR_FORMAT, "bmp header of 100 bytes");
    n = make_bmp(b, 40, 3, 2, 24, 0, NULL, 0, NULL, 0, rows, sizeof rows);
    le32p(b + 10, 5000);
    expect_decode_fail(b, n, "off.bmp", 0, NST_ERR_FORMAT, "bmp pixel offset past the end");
    n = make_bmp(b, 40, 3, 2, 7, 0, NULL, 0, NULL, 0, rows, sizeof rows);
    expect_decode_fail(b, n, "bpp.bmp", 0, NST_ERR_FORMAT, "7-bit bmp");
    n = make_bmp(b, 40, 3, 2, 24, 4, NULL, 0, NULL, 0, rows, sizeof rows);
    expect_decode_fail(b, n, "jpeg.bmp", 0, NST_ERR_FORMAT, "bmp holding a jpeg");
    decode_bytes(&img, b, n, "jpeg.bmp", &err);
    CHECK(strstr(err.msg, "JPEG") != NULL, "bmp jpeg message: %s", err.msg);
    n = make_bmp(b, 40, 3, 2, 8, 1, NULL, 0, pal, 4, rle8, 6); /* RLE data without an end */
    expect_decode_fail(b, n, "rlecut.bmp", 0, NST_ERR_FORMAT, "rle bmp ending early");
}

/* ---- GIF ------------------------------------------------------------------------------- */

typedef struct {
    int sw, sh, trans, left, top, fw, fh, interlace, frames;
    const GifColorType *gmap, *lmap;
    int gn, ln;
} gif_spec;

static unsigned char *make_gif(const gif_spec *s, const unsigned char *idx, size_t *n) {
    const char *path = tpath("make.gif");
    int e = 0;
    GifFileType *g = EGifOpenFileName(path, false, &e);
    if (!g) { fprintf(stderr, "EGifOpenFileName: %d\n", e); exit(2); }
    EGifSetGifVersion(g, true);
    ColorMapObject *gm = s->gmap ? GifMakeMapObject(s->gn, s->gmap) : NULL;
    ColorMapObject *lm = s->lmap ? GifMakeMapObject(s->ln, s->lmap) : NULL;
    EGifPutScreenDesc(g, s->sw, s->sh, 8, 0, gm);
    for (int fr = 0; fr < s->frames; fr++) {
        if (s->trans >= 0) {
            GraphicsControlBlock gcb = {DISPOSAL_UNSPECIFIED, false, 10, s->trans};
            GifByteType ext[4];
            size_t len = EGifGCBToExtension(&gcb, ext);
            EGifPutExtension(g, GRAPHICS_EXT_FUNC_CODE, (int)len, ext);
        }
        EGifPutImageDesc(g, s->left, s->top, s->fw, s->fh, s->interlace, lm);
        static const int start[4] = {0, 4, 2, 1}, step[4] = {8, 8, 4, 2};
        GifPixelType line[64];
        for (int p = 0; p < (s->interlace ? 4 : 1); p++)
            for (int y = s->interlace ? start[p] : 0; y < s->fh; y += s->interlace ? step[p] : 1) {
                for (int x = 0; x < s->fw; x++) line[x] = fr ? 0 : idx[y * s->fw + x];
                EGifPutLine(g, line, s->fw);
            }
    }
    EGifCloseFile(g, &e);
    GifFreeMapObject(gm);
    GifFreeMapObject(lm);
    return read_bytes(path, n);
}

static void test_gif(void) {
    nst_image img;
    nst_error err;
    GifColorType gmap[4] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {10, 20, 30}};
    GifColorType lmap[2] = {{100, 110, 120}, {200, 210, 220}};
    unsigned char idx[30];
    for (int i = 0; i < 30; i++) idx[i] = (unsigned char)((i * 7 + i / 5) % 4);

    /* 5x3, global colours, no transparency: exact, opaque. */
    gif_spec s = {5, 3, -1, 0, 0, 5, 3, 0, 1, gmap, NULL, 4, 0};
    size_t n;
    unsigned char *f = make_gif(&s, idx, &n);
    seed("rgb5x3.gif", f, n);
    CHECK(decode_bytes(&img, f, n, "a.gif", &err) == NST_OK, "gif: %s", err.msg);
    int ok = img.pixels && img.width == 5 && img.height == 3 && !img.alpha && img.bit_depth == 8;
    for (int i = 0; ok && i < 15; i++) {
        const GifColorType *c = &gmap[idx[i]];
        ok = near_rgb(img.pixels + 3 * i, c->Red, c->Green, c->Blue, 0);
    }
    CHECK(ok, "gif values");
    nst_image_free(&img);
    check_truncations(f, n, "a.gif", n - 1, "gif");
    check_load_matches_decode(f, n, "a.gif", "gif");
    /* A screen claiming 60000x60000. */
    f[6] = (unsigned char)(60000 & 255), f[7] = (unsigned char)(60000 >> 8);
    f[8] = (unsigned char)(60000 & 255), f[9] = (unsigned char)(60000 >> 8);
    double t0 = now_s();
    expect_decode_fail(f, n, "huge.gif", 0, NST_ERR_LIMIT, "60000x60000 gif");
    CHECK(now_s() - t0 < 1.0, "huge gif took long");
    free(f);

    /* Transparency: index 1 has alpha 0 (white), the others are opaque. Two frames: the
     * second (all index 0) is not read. */
    gif_spec st = s;
    st.trans = 1, st.frames = 2;
    f = make_gif(&st, idx, &n);
    seed("transparent-2frames.gif", f, n);
    CHECK(decode_bytes(&img, f, n, "t.gif", &err) == NST_OK, "transparent gif: %s", err.msg);
    ok = img.pixels && img.alpha;
    for (int i = 0; ok && i < 15; i++) {
        const GifColorType *c = &gmap[idx[i]];
        ok = idx[i] == 1 ? img.alpha[i] == 0 && near_rgb(img.pixels + 3 * i, 255, 255, 255, 0)
                         : img.alpha[i] == 255 && near_rgb(img.pixels + 3 * i, c->Red, c->Green, c->Blue, 0);
    }
    CHECK(ok, "transparent gif values (or not the first frame)");
    nst_image_free(&img);
    free(f);

    /* A 2x2 frame with its own colours at (1,1) of a 4x4 screen: the rest transparent. */
    unsigned char li[4] = {0, 1, 1, 0};
    gif_spec sl = {4, 4, -1, 1, 1, 2, 2, 0, 1, gmap, lmap, 4, 2};
    f = make_gif(&sl, li, &n);
    seed("local-map-offset.gif", f, n);
    CHECK(decode_bytes(&img, f, n, "l.gif", &err) == NST_OK, "local-map gif: %s", err.msg);
    CHECK(img.pixels && img.width == 4 && img.alpha && img.alpha[0] == 0 && img.alpha[5] == 255 &&
              img.alpha[15] == 0 && near_rgb(px(&img, 1, 1), 100, 110, 120, 0) &&
              near_rgb(px(&img, 2, 1), 200, 210, 220, 0) && near_rgb(px(&img, 3, 3), 255, 255, 255, 0),
          "local-map gif values");
    nst_image_free(&img);
    check_truncations(f, n, "l.gif", n - 1, "local-map gif");
    free(f);

    /* Interlaced, 3x10. */
    gif_spec si = {3, 10, -1, 0, 0, 3, 10, 1, 1, gmap, NULL, 4, 0};
    f = make_gif(&si, idx, &n);
    seed("interlaced.gif", f, n);
    CHECK(decode_bytes(&img, f, n, "i.gif", &err) == NST_OK, "interlaced gif: %s", err.msg);
    ok = img.pixels && img.height == 10;
    for (int i = 0; ok && i < 30; i++) {
        const GifColorType *c = &gmap[idx[i]];
        ok = near_rgb(img.pixels + 3 * i, c->Red, c->Green, c->Blue, 0);
    }
    CHECK(ok, "interlaced gif rows");
    nst_image_free(&img);
    free(f);
}

/* ---- metadata, options, extras --------------------------------------------------------- */

/* A JPEG with EXIF (as APP1 "Exif\0\0") and an ICC profile, either may be NULL. */
static void write_jpeg_meta(const char *path, int w, int h, const unsigned char *rgb, const unsigned char *icc,
                            size_t icc_n, const unsigned char *exif, size_t exif_n) {
    unsigned char *app1 = NULL;
    if (exif) {
        app1 = malloc(6 + exif_n);
        if (!app1) { perror(path); exit(2); }
        memcpy(app1, "Exif\0\0", 6);
        memcpy(app1 + 6, exif, exif_n);
    }
    write_jpeg_icc(path, w, h, 3, rgb, 95, app1, (unsigned)(6 + exif_n), icc, icc_n);
    free(app1);
}

static void write_png_meta(const char *path, int w, int h, int color, const unsigned char *data,
                           const unsigned char *icc, size_t icc_n, const unsigned char *exif, size_t exif_n) {
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (!f || !png || !info || setjmp(png_jmpbuf(png))) { fprintf(stderr, "write_png_meta failed\n"); exit(2); }
    png_init_io(png, f);
    png_set_IHDR(png, info, w, h, 8, color, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (icc) png_set_iCCP(png, info, "test", 0, icc, (png_uint_32)icc_n);
    if (exif) png_set_eXIf_1(png, info, (png_uint_32)exif_n, (png_bytep)exif);
    png_write_info(png, info);
    size_t rb = png_get_rowbytes(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, data + y * rb);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

static void test_metadata(void) {
    nst_image a, b;
    nst_error err;
    unsigned char icc[400], exif[64], want_exif[64];
    size_t icc_n = make_icc(icc, sizeof icc, "RGB "), at = 0;
    size_t exif_n = make_exif(exif, 0, 6, &at);
    memcpy(want_exif, exif, exif_n);
    exif_reset(want_exif, at, 0);

    /* JPEG (ICC in APP2, EXIF orientation 6 in APP1) -> PNG -> JPEG. */
    unsigned char rgb[32 * 16 * 3];
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 32; x++) {
            unsigned char *p = rgb + 3 * (y * 32 + x);
            p[0] = x < 16 ? 250 : 5, p[1] = y < 8 ? 250 : 5, p[2] = 128;
        }
    write_jpeg_meta(tpath("meta.jpg"), 32, 16, rgb, icc, icc_n, exif, exif_n);
    seed_file("icc-exif6.jpg", tpath("meta.jpg"));
    CHECK(nst_image_load(&a, tpath("meta.jpg"), NULL, &err) == NST_OK, "jpeg with metadata: %s", err.msg);
    CHECK(a.width == 16 && a.height == 32, "jpeg orientation 6: %dx%d", a.width, a.height);
    CHECK(blob_is(a.icc, a.icc_size, icc, icc_n), "jpeg ICC not read");
    CHECK(blob_is(a.exif, a.exif_size, want_exif, exif_n), "jpeg EXIF not read or orientation not reset to 1");
    CHECK(a.bit_depth == 8, "jpeg bit depth %d", a.bit_depth);
    CHECK(nst_image_save(&a, tpath("meta.png"), &err) == NST_OK, "save png: %s", err.msg);
    CHECK(nst_image_load(&b, tpath("meta.png"), NULL, &err) == NST_OK, "load png: %s", err.msg);
    CHECK(b.width == 16 && b.height == 32 && same_pixels(&a, &b), "png from jpeg: turned again or changed");
    CHECK(blob_is(b.icc, b.icc_size, icc, icc_n) && blob_is(b.exif, b.exif_size, want_exif, exif_n),
          "ICC / EXIF lost from jpeg to png");
    nst_image_free(&a);
    CHECK(nst_image_save(&b, tpath("meta2.jpg"), &err) == NST_OK, "save jpeg: %s", err.msg);
    CHECK(nst_image_load(&a, tpath("meta2.jpg"), NULL, &err) == NST_OK, "load jpeg: %s", err.msg);
    CHECK(a.width == 16 && a.height == 32, "jpeg from png turned: %dx%d", a.width, a.height);
    CHECK(blob_is(a.icc, a.icc_size, icc, icc_n) && blob_is(a.exif, a.exif_size, want_exif, exif_n),
          "ICC / EXIF lost from png to jpeg");
    nst_image_free(&a);
    /* strip: neither is written. */
    nst_save_options strip = {NST_FORMAT_AUTO, 0, 0, 1};
    const char *names[3] = {"strip.png", "strip.jpg", "strip.tif"};
    for (int k = 0; k < 3; k++) {
        CHECK(nst_image_save_as(&b, tpath(names[k]), &strip, &err) == NST_OK, "save %s: %s", names[k], err.msg);
        CHECK(nst_image_load(&a, tpath(names[k]), NULL, &err) == NST_OK && !a.icc && !a.exif, "%s not stripped",
              names[k]);
        nst_image_free(&a);
    }
    /* TIFF keeps the ICC profile (not EXIF). */
    CHECK(nst_image_save(&b, tpath("meta.tif"), &err) == NST_OK, "save tiff: %s", err.msg);
    CHECK(nst_image_load(&a, tpath("meta.tif"), NULL, &err) == NST_OK && blob_is(a.icc, a.icc_size, icc, icc_n) &&
              same_pixels(&a, &b),
          "tiff ICC / pixels: %s", err.msg);
    nst_image_free(&a);

    /* EXIF over what one JPEG marker holds: the JPEG is written without it, the PNG with it. */
    unsigned char *big = calloc(70000, 1);
    memcpy(big, exif, exif_n);
    free(b.exif);
    b.exif = big, b.exif_size = 70000;
    CHECK(nst_image_save(&b, tpath("bigexif.jpg"), &err) == NST_OK, "save jpeg with big exif: %s", err.msg);
    CHECK(nst_image_load(&a, tpath("bigexif.jpg"), NULL, &err) == NST_OK && !a.exif && a.icc, "big exif in jpeg");
    nst_image_free(&a);
    CHECK(nst_image_save(&b, tpath("bigexif.png"), &err) == NST_OK, "save png with big exif: %s", err.msg);
    CHECK(nst_image_load(&a, tpath("bigexif.png"), NULL, &err) == NST_OK && a.exif_size == 70000, "big exif in png");
    nst_image_free(&a);
    nst_image_free(&b);

    /* PNG with iCCP and eXIf orientation 3 (180 degrees) -> JPEG. */
    exif_n = make_exif(exif, 1, 3, &at);
    memcpy(want_exif, exif, exif_n);
    exif_reset(want_exif, at, 1);
    write_png_meta(tpath("meta3.png"), 32, 16, PNG_COLOR_TYPE_RGB, rgb, icc, icc_n, exif, exif_n);
    seed_file("icc-exif3.png", tpath("meta3.png"));
    CHECK(nst_image_load(&a, tpath("meta3.png"), NULL, &err) == NST_OK, "png with metadata: %s", err.msg);
    CHECK(a.pixels && a.width == 32 && near_rgb(px(&a, 0, 0), 5, 5, 128, 0) && near_rgb(px(&a, 31, 15), 250, 250, 128, 0),
          "png orientation 3 not applied");
    CHECK(blob_is(a.icc, a.icc_size, icc, icc_n) && blob_is(a.exif, a.exif_size, want_exif, exif_n),
          "png ICC / EXIF not read, or the orientation not reset");
    CHECK(nst_image_save(&a, tpath("meta3.jpg"), &err) == NST_OK, "save jpeg: %s", err.msg);
    CHECK(nst_image_load(&b, tpath("meta3.jpg"), NULL, &err) == NST_OK, "load jpeg: %s", err.msg);
    CHECK(b.pixels && near_rgb(px(&b, 0, 0), 5, 5, 128, 12), "jpeg from png turned again");
    CHECK(blob_is(b.icc, b.icc_size, icc, icc_n) && blob_is(b.exif, b.exif_size, want_exif, exif_n),
          "ICC / EXIF lost from png to jpeg");
    nst_image_free(&a);
    nst_image_free(&b);

    /* A profile libpng finds unfit (an unknown PCS) is left out of a PNG; the image is
     * still written, and a JPEG keeps the profile. */
    nst_image_alloc(&a, 4, 4, &err);
    a.icc = copy_out(icc, icc_n), a.icc_size = icc_n;
    memcpy(a.icc + 20, "XXXX", 4);
    CHECK(nst_image_save(&a, tpath("badicc.png"), &err) == NST_OK, "png with an unfit profile: %s", err.msg);
    CHECK(nst_image_load(&b, tpath("badicc.png"), NULL, &err) == NST_OK && !b.icc, "unfit profile in png: %s", err.msg);
    nst_image_free(&b);
    CHECK(nst_image_save(&a, tpath("badicc.jpg"), &err) == NST_OK && nst_image_load(&b, tpath("badicc.jpg"), NULL, &err) == NST_OK &&
              blob_is(b.icc, b.icc_size, a.icc, a.icc_size),
          "unfit-for-png profile in jpeg: %s", err.msg);
    nst_image_free(&b);
    nst_image_free(&a);

    /* A grey profile does not describe the RGB pixels: dropped. */
    unsigned char grey_icc[200], grey[4] = {0, 80, 160, 240};
    size_t gn = make_icc(grey_icc, sizeof grey_icc, "GRAY");
    write_png_meta(tpath("greyicc.png"), 2, 2, PNG_COLOR_TYPE_GRAY, grey, grey_icc, gn, NULL, 0);
    CHECK(nst_image_load(&a, tpath("greyicc.png"), NULL, &err) == NST_OK && !a.icc && near_rgb(px(&a, 1, 1), 240, 240, 240, 0),
          "grey profile kept: %s", err.msg);
    nst_image_free(&a);
}

static void test_save_options(void) {
    nst_image img, back;
    nst_error err;
    nst_image_alloc(&img, 40, 30, &err);
    unsigned long long seed = 5;
    for (int i = 0; i < 40 * 30 * 3; i++) img.pixels[i] = 127.5f + 127.4f * test_rand(&seed);

    /* 16 bits: to 1/257 of a grey level; 8 bits is further (so the check can fail). */
    const char *deep[2] = {"deep.png", "deep.tif"};
    for (int k = 0; k < 2; k++) {
        for (int bits = 8; bits <= 16; bits += 8) {
            nst_save_options o = {NST_FORMAT_AUTO, 0, bits, 0};
            CHECK(nst_image_save_as(&img, tpath(deep[k]), &o, &err) == NST_OK, "save %s: %s", deep[k], err.msg);
            CHECK(nst_image_load(&back, tpath(deep[k]), NULL, &err) == NST_OK, "load %s: %s", deep[k], err.msg);
            double maxd = 0;
            for (int i = 0; back.pixels && i < 40 * 30 * 3; i++) maxd = fmax(maxd, fabs(back.pixels[i] - img.pixels[i]));
            CHECK(back.bit_depth == bits, "%s: bit depth %d, want %d", deep[k], back.bit_depth, bits);
            if (bits == 16) CHECK(maxd <= 1.0 / 257, "%s 16-bit: off by %g", deep[k], maxd);
            else CHECK(maxd > 1.0 / 257 && maxd <= 0.5 + 1e-4, "%s 8-bit: off by %g", deep[k], maxd);
            nst_image_free(&back);
        }
    }
    /* A 16-bit PNG from libpng, saved at 16 bits: the same samples. */
    unsigned vals[6] = {1000, 40000, 65535, 0, 257 * 77, 12345};
    unsigned char d16[12];
    for (int i = 0; i < 6; i++) d16[2 * i] = (unsigned char)(vals[i] >> 8), d16[2 * i + 1] = (unsigned char)vals[i];
    write_png(tpath("in16.png"), 2, 1, PNG_COLOR_TYPE_RGB, 16, PNG_INTERLACE_NONE, d16, NULL, 0, NULL, 0);
    CHECK(nst_image_load(&back, tpath("in16.png"), NULL, &err) == NST_OK && back.bit_depth == 16, "in16: %s", err.msg);
    nst_save_options o16 = {NST_FORMAT_PNG, 0, 16, 0};
    unsigned char *mem = NULL;
    size_t mem_n = 0;
    CHECK(nst_image_encode(&back, &o16, &mem, &mem_n, &err) == NST_OK, "encode 16: %s", err.msg);
    nst_image_free(&back);
    uint16_t got[6] = {0};
    nst_image again;
    CHECK(decode_bytes(&again, mem, mem_n, "o16.png", &err) == NST_OK, "decode o16: %s", err.msg);
    for (int i = 0; again.pixels && i < 6; i++) got[i] = (uint16_t)lround(again.pixels[i] * 65535.0 / 255.0);
    CHECK(again.pixels && memcmp(got, (uint16_t[]){1000, 40000, 65535, 0, 257 * 77, 12345}, sizeof got) == 0,
          "16-bit samples changed: %u %u %u", got[0], got[1], got[5]);
    nst_image_free(&again);
    free(mem);

    /* Refused options leave no file. */
    struct { const char *file; nst_save_options o; const char *msg; } bad[] = {
        {"d16.jpg", {NST_FORMAT_AUTO, 0, 16, 0}, "JPEG holds 8-bit samples only"},
        {"d16.webp", {NST_FORMAT_AUTO, 0, 16, 0}, "WebP holds 8-bit samples only"},
        {"d12.png", {NST_FORMAT_AUTO, 0, 12, 0}, "bit depth 12 is not 8 or 16"},
        {"q.jpg", {NST_FORMAT_AUTO, 101, 0, 0}, "quality 101 is out of range (1..100)"},
        {"q.webp", {NST_FORMAT_AUTO, -1, 0, 0}, "quality -1 is out of range"},
        {"w.png", {NST_FORMAT_GIF, 0, 0, 0}, "cannot write gif"},
        {"x.bmp", {NST_FORMAT_AUTO, 0, 0, 0}, "unknown image file extension (supported: .png"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *p = tpath(bad[i].file);
        CHECK(nst_image_save_as(&img, p, &bad[i].o, &err) == NST_ERR_ARG && strstr(err.msg, p) &&
                  strstr(err.msg, bad[i].msg),
              "%s: %s", bad[i].file, err.msg);
        CHECK(!file_exists(p), "%s appeared", bad[i].file);
    }
    /* The format named overrides the extension. */
    nst_save_options as_png = {NST_FORMAT_PNG, 0, 0, 0};
    CHECK(nst_image_save_as(&img, tpath("named.img"), &as_png, &err) == NST_OK, "save named: %s", err.msg);
    size_t fn = 0;
    unsigned char *fb = read_bytes(tpath("named.img"), &fn);
    CHECK(fb && nst_format_detect(fb, fn) == NST_FORMAT_PNG, "named format not PNG");
    /* encode gives the bytes save writes. */
    CHECK(nst_image_encode(&img, &as_png, &mem, &mem_n, &err) == NST_OK && mem_n == fn && memcmp(mem, fb, fn) == 0,
          "encode and save differ");
    free(mem);
    free(fb);
    nst_save_options none = {0};
    mem = (unsigned char *)1;
    CHECK(nst_image_encode(&img, &none, &mem, &mem_n, &err) == NST_ERR_ARG && mem == NULL && mem_n == 0,
          "encode without a format: %s", err.msg);
    CHECK(nst_image_encode(&img, NULL, &mem, &mem_n, &err) == NST_ERR_ARG, "encode NULL options");
    /* Quality changes the size. */
    size_t sizes[2];
    for (int k = 0; k < 2; k++) {
        nst_save_options q = {NST_FORMAT_JPEG, k ? 100 : 5, 0, 0};
        CHECK(nst_image_encode(&img, &q, &mem, &sizes[k], &err) == NST_OK, "jpeg quality: %s", err.msg);
        free(mem);
    }
    CHECK(sizes[0] < sizes[1] / 2, "jpeg quality 5: %zu bytes, 100: %zu", sizes[0], sizes[1]);
    nst_image_free(&img);
    /* WebP's size limit. */
    nst_image_alloc(&img, 16384, 1, &err);
    CHECK(nst_image_save(&img, tpath("wide.webp"), &err) == NST_ERR_ARG && strstr(err.msg, "16383"),
          "16384-wide webp: %s", err.msg);
    CHECK(!file_exists(tpath("wide.webp")), "wide.webp appeared");
    nst_image_free(&img);
}

static void test_alpha_and_extras(void) {
    nst_image a, b;
    nst_error err;
    /* An RGBA PNG through nst: the same RGBA bytes come out (alpha > 0). */
    int w = 6, h = 3;
    unsigned char rgba[6 * 3 * 4];
    for (int i = 0; i < w * h; i++)
        rgba[4 * i] = (unsigned char)(i * 13), rgba[4 * i + 1] = (unsigned char)(255 - i * 7),
        rgba[4 * i + 2] = (unsigned char)(i * 3 + 50), rgba[4 * i + 3] = (unsigned char)(i * 14 + 1);
    write_png(tpath("in_rgba.png"), w, h, PNG_COLOR_TYPE_RGB_ALPHA, 8, PNG_INTERLACE_NONE, rgba, NULL, 0, NULL, 0);
    CHECK(nst_image_load(&a, tpath("in_rgba.png"), NULL, &err) == NST_OK && a.alpha, "rgba png: %s", err.msg);
    const char *outs[3] = {"out_rgba.png", "out_rgba.tif", "out_rgba.webp"};
    for (int k = 0; k < 3; k++) {
        CHECK(nst_image_save(&a, tpath(outs[k]), &err) == NST_OK, "save %s: %s", outs[k], err.msg);
        if (k == 0) {
            png_image pi;
            memset(&pi, 0, sizeof pi);
            pi.version = PNG_IMAGE_VERSION;
            unsigned char raw[6 * 3 * 4] = {0};
            int ok = png_image_begin_read_from_file(&pi, tpath(outs[k]));
            pi.format = PNG_FORMAT_RGBA;
            ok = ok && pi.width == (unsigned)w && png_image_finish_read(&pi, NULL, raw, 0, NULL);
            CHECK(ok && memcmp(raw, rgba, sizeof raw) == 0, "rgba png bytes changed");
            png_image_free(&pi);
        }
        CHECK(nst_image_load(&b, tpath(outs[k]), NULL, &err) == NST_OK && b.alpha, "load %s: %s", outs[k], err.msg);
        float da = 0, dp = 0;
        for (int i = 0; b.alpha && i < w * h; i++) {
            da = fmaxf(da, fabsf(a.alpha[i] - b.alpha[i]));
            if (k < 2) for (int c = 0; c < 3; c++) dp = fmaxf(dp, fabsf(a.pixels[3 * i + c] - b.pixels[3 * i + c]));
        }
        CHECK(da <= (k == 2 ? 1.0f : 0.0f) && dp <= 0.5f, "%s: alpha off by %g, colour by %g", outs[k], da, dp);
        nst_image_free(&b);
    }
    /* JPEG: the colour as composited, no alpha. */
    CHECK(nst_image_save(&a, tpath("out_rgba.jpg"), &err) == NST_OK && nst_image_load(&b, tpath("out_rgba.jpg"), NULL, &err) == NST_OK &&
              !b.alpha,
          "rgba to jpeg: %s", err.msg);
    nst_image_free(&b);
    nst_image_free(&a);
    /* All opaque: no alpha plane. */
    for (int i = 0; i < w * h; i++) rgba[4 * i + 3] = 255;
    write_png(tpath("opaque.png"), w, h, PNG_COLOR_TYPE_RGB_ALPHA, 8, PNG_INTERLACE_NONE, rgba, NULL, 0, NULL, 0);
    CHECK(nst_image_load(&a, tpath("opaque.png"), NULL, &err) == NST_OK && a.pixels && !a.alpha, "opaque rgba png");
    nst_image_free(&a);

    /* copy_extras: alpha resampled, blobs deep-copied, bit depth; what src lacks, dst loses. */
    nst_image src, dst;
    nst_image_alloc(&src, 16, 8, &err);
    src.alpha = malloc(16 * 8 * sizeof(float));
    for (int i = 0; i < 16 * 8; i++) src.alpha[i] = (i % 16) < 8 ? 0.0f : 255.0f;
    unsigned char icc[200], exif[64];
    size_t icc_n = make_icc(icc, sizeof icc, "RGB "), at, exif_n = make_exif(exif, 1, 1, &at);
    src.icc = copy_out(icc, icc_n), src.icc_size = icc_n;
    src.exif = copy_out(exif, exif_n), src.exif_size = exif_n;
    src.bit_depth = 16;
    nst_image_alloc(&dst, 4, 2, &err);
    CHECK(nst_image_copy_extras(&dst, &src, &err) == NST_OK, "copy_extras: %s", err.msg);
    CHECK(dst.alpha && dst.alpha[0] < 1 && dst.alpha[3] > 254 && dst.alpha[4] < 1 && dst.alpha[7] > 254, "alpha resampled");
    float lo = 255, hi = 0;
    for (int i = 0; dst.alpha && i < 8; i++) lo = fminf(lo, dst.alpha[i]), hi = fmaxf(hi, dst.alpha[i]);
    CHECK(lo >= 0 && hi <= 255, "resampled alpha out of range: %g..%g", lo, hi);
    CHECK(blob_is(dst.icc, dst.icc_size, icc, icc_n) && dst.icc != src.icc && blob_is(dst.exif, dst.exif_size, exif, exif_n) &&
              dst.exif != src.exif && dst.bit_depth == 16,
          "blobs or bit depth not copied");
    nst_image plain;
    nst_image_alloc(&plain, 3, 3, &err);
    CHECK(nst_image_copy_extras(&dst, &plain, &err) == NST_OK && !dst.alpha && !dst.icc && !dst.exif && !dst.icc_size &&
              dst.bit_depth == 0,
          "extras of a plain image");
    nst_image_free(&dst);
    nst_image_free(&plain);
    /* Same size: an exact copy; resize carries them (constant alpha stays constant). */
    nst_image_alloc(&dst, 16, 8, &err);
    CHECK(nst_image_copy_extras(&dst, &src, &err) == NST_OK && dst.alpha &&
              memcmp(dst.alpha, src.alpha, 16 * 8 * sizeof(float)) == 0,
          "same-size alpha copy");
    nst_image_free(&dst);
    for (int i = 0; i < 16 * 8; i++) src.alpha[i] = 100.0f;
    CHECK(nst_image_resize(&dst, &src, 7, 21, &err) == NST_OK && dst.alpha && dst.icc_size == icc_n &&
              dst.exif_size == exif_n && dst.bit_depth == 16,
          "resize extras: %s", err.msg);
    float maxd = 0;
    for (int i = 0; dst.alpha && i < 7 * 21; i++) maxd = fmaxf(maxd, fabsf(dst.alpha[i] - 100.0f));
    CHECK(maxd < 1e-3f, "resized constant alpha off by %g", maxd);
    nst_image_free(&dst);
    CHECK(nst_image_resize(&src, &src, 5, 5, &err) == NST_OK && src.alpha && src.icc && src.width == 5,
          "in-place resize with extras");
    nst_image_free(&src);
    /* alloc starts from nothing, whatever the struct held. */
    memset(&dst, 0xAB, sizeof dst);
    CHECK(nst_image_alloc(&dst, 2, 2, &err) == NST_OK && !dst.alpha && !dst.icc && !dst.exif && !dst.icc_size &&
              !dst.exif_size && dst.bit_depth == 0,
          "alloc left fields set");
    nst_image_free(&dst);
    CHECK(!dst.pixels && !dst.alpha && dst.width == 0, "free left fields");
}

static void test_list_new_extensions(void) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/listing", tmpdir);
    mkdir(dir, 0700);
    const char *files[] = {"a.webp", "b.TIF", "c.tiff", "d.bmp", "e.gif", "f.ppm", "g.pgm", "h.txt", ".i.gif", "j.png"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p[700];
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        write_bytes(p, "x", 1);
    }
    char **paths = NULL;
    int count = 0;
    nst_error err;
    CHECK(nst_list_images(dir, &paths, &count, &err) == NST_OK && count == 8, "listing: %d files: %s", count, err.msg);
    CHECK(count == 8 && strstr(paths[0], "/a.webp") && strstr(paths[6], "/g.pgm") && strstr(paths[7], "/j.png"),
          "listing order");
    nst_free_paths(paths, count);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p[700];
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        remove(p);
    }
    rmdir(dir);
}

/* nst_image_mix (--strength): 0 gives the original bit for bit, 1 the stylised image,
 * 0.25 the pixel-wise mix; an original of another size is resampled; out of range refused. */
static void test_mix(void) {
    nst_image a = {0}, b = {0}, keep = {0}, c = {0};
    nst_error err;
    CHECK(nst_image_alloc(&a, 5, 3, &err) == NST_OK && nst_image_alloc(&b, 5, 3, &err) == NST_OK &&
          nst_image_alloc(&keep, 5, 3, &err) == NST_OK, "alloc");
    for (int i = 0; i < 45; i++) a.pixels[i] = keep.pixels[i] = (float)(i * 5), b.pixels[i] = (float)(250 - i * 3);
    CHECK(nst_image_mix(&a, &b, 1.0f, &err) == NST_OK && memcmp(a.pixels, keep.pixels, 45 * sizeof(float)) == 0,
          "strength 1: unchanged");
    CHECK(nst_image_mix(&a, &b, 0.25f, &err) == NST_OK, "%s", err.msg);
    double worst = 0;
    for (int i = 0; i < 45; i++) worst = fmax(worst, fabs(a.pixels[i] - (0.25 * i * 5 + 0.75 * (250 - i * 3))));
    CHECK(worst < 1e-4, "strength 0.25: the mix, worst %g", worst);
    CHECK(nst_image_mix(&a, &b, 0.0f, &err) == NST_OK && memcmp(a.pixels, b.pixels, 45 * sizeof(float)) == 0,
          "strength 0: the original");
    CHECK(nst_image_mix(&a, &b, 1.5f, &err) == NST_ERR_ARG && !strchr(err.msg, '\n') &&
          nst_image_mix(&a, &b, NAN, &err) == NST_ERR_ARG, "out of range refused: %s", err.msg);
    CHECK(nst_image_alloc(&c, 10, 6, &err) == NST_OK, "alloc");
    for (int i = 0; i < 180; i++) c.pixels[i] = 100.0f;
    CHECK(nst_image_mix(&a, &c, 0.0f, &err) == NST_OK && fabs(a.pixels[7] - 100.0f) < 1e-3 && a.width == 5,
          "another size: resampled (%g)", a.pixels[7]);
    nst_image_free(&a);
    nst_image_free(&b);
    nst_image_free(&c);
    nst_image_free(&keep);
}

/* SSIM by its definition, in double, the 2-D window summed directly (the reference for
 * nst_image_ssim's separable one) */
static double ssim_ref(const nst_image *a, const nst_image *b) {
    int W = a->width, H = a->height;
    double g[11], sum = 0.0, C1 = 6.5025, C2 = 58.5225;
    for (int k = -5; k <= 5; k++) g[k + 5] = exp(-(double)(k * k) / 4.5);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double w = 0, mx = 0, my = 0, xx = 0, yy = 0, xy = 0;
            for (int dy = -5; dy <= 5; dy++)
                for (int dx = -5; dx <= 5; dx++) {
                    int u = x + dx, v = y + dy;
                    if (u < 0 || u >= W || v < 0 || v >= H) continue;
                    const float *p = a->pixels + ((size_t)v * W + u) * 3, *q = b->pixels + ((size_t)v * W + u) * 3;
                    double lx = 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2], ly = 0.299 * q[0] + 0.587 * q[1] + 0.114 * q[2];
                    double k = g[dx + 5] * g[dy + 5];
                    w += k, mx += k * lx, my += k * ly, xx += k * lx * lx, yy += k * ly * ly, xy += k * lx * ly;
                }
            mx /= w, my /= w, xx = xx / w - mx * mx, yy = yy / w - my * my, xy = xy / w - mx * my;
            sum += (2 * mx * my + C1) * (2 * xy + C2) / ((mx * mx + my * my + C1) * (xx + yy + C2));
        }
    return sum / ((double)W * H);
}

/* PSNR and SSIM: identical images, flat ones (closed forms), the reference, symmetry,
 * more noise scoring lower, a size mismatch refused. */
static void test_compare(void) {
    nst_image a = {0}, b = {0}, c = {0};
    nst_error err;
    double p, q, r;
    CHECK(nst_image_alloc(&a, 23, 17, &err) == NST_OK && nst_image_alloc(&b, 23, 17, &err) == NST_OK &&
          nst_image_alloc(&c, 23, 17, &err) == NST_OK, "alloc");
    size_t n = (size_t)3 * 23 * 17;
    for (size_t i = 0; i < n; i++) a.pixels[i] = 100.0f, b.pixels[i] = 110.0f;
    CHECK(nst_image_psnr(&a, &b, &p, &err) == NST_OK && fabs(p - 10 * log10(255.0 * 255.0 / 100.0)) < 1e-9, "flat PSNR %g", p);
    double want = (2 * 100.0 * 110.0 + 6.5025) / (100.0 * 100.0 + 110.0 * 110.0 + 6.5025);
    CHECK(nst_image_ssim(&a, &b, &q, &err) == NST_OK && fabs(q - want) < 1e-9, "flat SSIM %.12g, want %.12g", q, want);
    unsigned long long st = 5;
    for (size_t i = 0; i < n; i++) {
        a.pixels[i] = 127.5f + 100.0f * test_rand(&st) * (float)((i / 3) % 23) / 23.0f;
        b.pixels[i] = a.pixels[i] + 10.0f * test_rand(&st);
        c.pixels[i] = a.pixels[i] + 40.0f * test_rand(&st);
    }
    CHECK(nst_image_psnr(&a, &a, &p, &err) == NST_OK && isinf(p) && nst_image_ssim(&a, &a, &q, &err) == NST_OK &&
          fabs(q - 1.0) < 1e-12, "identical: PSNR %g, SSIM %.15g", p, q);
    CHECK(nst_image_ssim(&a, &b, &q, &err) == NST_OK && fabs(q - ssim_ref(&a, &b)) < 1e-9, "SSIM %.12g, reference %.12g", q,
          ssim_ref(&a, &b));
    CHECK(nst_image_ssim(&b, &a, &r, &err) == NST_OK && r == q, "SSIM not symmetric: %g, %g", q, r);
    double q2, p2;
    CHECK(nst_image_ssim(&a, &c, &q2, &err) == NST_OK && q2 < q && nst_image_psnr(&a, &b, &p, &err) == NST_OK &&
          nst_image_psnr(&a, &c, &p2, &err) == NST_OK && p2 < p && p > 20 && p < 40, "noise: SSIM %g then %g, PSNR %g then %g",
          q, q2, p, p2);
    nst_image_free(&c);
    CHECK(nst_image_alloc(&c, 22, 17, &err) == NST_OK && nst_image_ssim(&a, &c, &q, &err) == NST_ERR_ARG &&
          nst_image_psnr(&a, &c, &q, &err) == NST_ERR_ARG && strstr(err.msg, "23x17"), "a size mismatch: %s", err.msg);
    nst_image_free(&a);
    nst_image_free(&b);
    nst_image_free(&c);
}

/* Captions: the width of a string, pixels drawn only inside its box and only in the ink,
 * clipping at the borders, a scale that doubles the box. */
static void test_text(void) {
    nst_image img = {0};
    nst_error err;
    CHECK(nst_image_alloc(&img, 40, 20, &err) == NST_OK, "alloc");
    CHECK(nst_text_width("AB", 1) == 11 && nst_text_width("AB", 2) == 22 && nst_text_width("", 3) == 0, "widths");
    const float ink[3] = {255.0f, 0.0f, 0.0f};
    nst_image_draw_text(&img, 3, 2, "Hi.", 1, ink);
    int inside = 0, outside = 0, wrong = 0;
    for (int y = 0; y < 20; y++)
        for (int x = 0; x < 40; x++) {
            const float *p = img.pixels + ((size_t)y * 40 + x) * 3;
            if (p[0] == 0.0f) continue;
            wrong += p[0] != 255.0f || p[1] != 0.0f;
            if (x >= 3 && x < 3 + nst_text_width("Hi.", 1) && y >= 2 && y < 9) inside++;
            else outside++;
        }
    CHECK(inside > 20 && outside == 0 && wrong == 0, "drawn in its box: %d in, %d out, %d off colour", inside, outside, wrong);
    /* clipped at every edge (a write past them is AddressSanitizer's to catch) */
    nst_image_draw_text(&img, 36, 13, "LWW", 1, ink);  /* L's foot on the last row, cut at x = 40 */
    nst_image_draw_text(&img, -2, 0, "T", 1, ink);      /* T's bar from x = -2 */
    nst_image_draw_text(&img, 30, 15, "#?", 3, ink);
    CHECK(img.pixels[((size_t)19 * 40 + 39) * 3] == 255.0f && img.pixels[0] == 255.0f, "drawn up to the corners");
    nst_image_free(&img);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/nst_test_image_XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 2; }
    test_alloc();
    test_png_roundtrip();
    test_jpeg_roundtrip();
    test_png_flavours();
    test_grey_jpeg();
    test_jpeg_flavours();
    test_exif();
    test_shared_images();
    test_ppm();
    test_bad_input();
    test_save_errors();
    test_resize();
    test_mix();
    test_compare();
    test_text();
    test_limits();
    test_format_names();
    test_webp();
    test_tiff();
    test_bmp();
    test_gif();
    test_metadata();
    test_save_options();
    test_alpha_and_extras();
    test_list_new_extensions();
    remove_tmpdir();
    TEST_DONE();
}
