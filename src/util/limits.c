/* limits.c - the user's limits on input files (nst_limits): parsing them from flags and
 * the environment, and the one refusal message for a file that is too large. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define MB ((size_t)1 << 20)
#define MAX_PIXELS_LIMIT ((unsigned long long)NST_MAX_DIMENSION * NST_MAX_DIMENSION)
#define MAX_FILE_MB_LIMIT (1ull << 20) /* 1 TB */

size_t nst_limit_pixels(const nst_limits *lim) {
    return lim && lim->max_pixels ? lim->max_pixels : NST_DEFAULT_MAX_PIXELS;
}

size_t nst_limit_file_bytes(const nst_limits *lim) {
    return lim && lim->max_file_bytes ? lim->max_file_bytes : NST_DEFAULT_MAX_FILE_BYTES;
}

nst_status nst_check_file_size(const char *path, unsigned long long size, const nst_limits *lim, nst_error *err) {
    size_t max = nst_limit_file_bytes(lim);
    if (size <= max) return NST_OK;
    return nst_fail(err, NST_ERR_LIMIT,
                    "%s: file is %llu bytes (%.2f MB), more than the limit of %zu bytes (%.2f MB); "
                    "raise it with --max-file-mb N or " NST_MAX_FILE_MB_ENV "=N",
                    path, size, (double)size / MB, max, (double)max / MB);
}

nst_status nst_limits_set(nst_limits *lim, nst_limit_kind which, const char *text, const char *source,
                          nst_error *err) {
    const char *unit = which == NST_LIMIT_PIXELS ? "pixels" : "megabytes";
    unsigned long long hi = which == NST_LIMIT_PIXELS ? MAX_PIXELS_LIMIT : MAX_FILE_MB_LIMIT;
    const char *p = text;
    /* digits only: strtoull would take "-1" as a huge number and "0x10" as sixteen */
    int digits = p[0] != '\0';
    for (const char *q = p; *q; q++) digits &= *q >= '0' && *q <= '9';
    if (!digits)
        return nst_fail(err, NST_ERR_ARG, "%s: '%.64s' is not a whole number of %s (e.g. %s)", source, text,
                        unit, which == NST_LIMIT_PIXELS ? "100000000" : "1024");
    errno = 0;
    unsigned long long v = strtoull(p, NULL, 10);
    if (errno == ERANGE || v < 1 || v > hi)
        return nst_fail(err, NST_ERR_ARG, "%s: %.64s %s is out of range (1..%llu)", source, p, unit, hi);
    if (which == NST_LIMIT_PIXELS) lim->max_pixels = (size_t)v;
    else lim->max_file_bytes = (size_t)v * MB;
    return NST_OK;
}

nst_status nst_limits_from_env(nst_limits *lim, nst_error *err) {
    const char *px = getenv(NST_MAX_PIXELS_ENV), *mb = getenv(NST_MAX_FILE_MB_ENV);
    nst_limits out = *lim; /* lim stays as it was if either value is bad */
    nst_status s = NST_OK;
    if (px && px[0]) s = nst_limits_set(&out, NST_LIMIT_PIXELS, px, NST_MAX_PIXELS_ENV, err);
    if (!s && mb && mb[0]) s = nst_limits_set(&out, NST_LIMIT_FILE_MB, mb, NST_MAX_FILE_MB_ENV, err);
    if (!s) *lim = out;
    return s;
}
