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

#include <jpeglib.h>
#include <png.h>

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

/* Writes a JPEG (1 or 3 components) with an optional APP1 segment. */
static void write_jpeg(const char *path, int w, int h, int comps, const unsigned char *data,
                       int quality, const unsigned char *app1, unsigned app1_len) {
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
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)data + (size_t)c.next_scanline * w * comps;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
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
    test_limits();
    remove_tmpdir();
    TEST_DONE();
}
