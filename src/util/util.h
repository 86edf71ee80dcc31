/* util.h - small internal helpers shared by the library: error messages, checked
 * allocation, atomic file writes, timing, a deterministic random generator. */
#ifndef NST_UTIL_H
#define NST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include "nst.h"

#ifdef __cplusplus
extern "C" { /* the CUDA backend's .cu files are C++ */
#endif

/* Formats a message into err (if not NULL) and returns status, so callers can write
 * `return nst_fail(err, NST_ERR_IO, "%s: cannot open: %s", path, strerror(errno));` */
nst_status nst_fail(nst_error *err, nst_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A message for the caller's tuning->log (see nst_tuning), one call per line of the
 * formatted text; nothing if t or its log is NULL. */
void nst_log(const nst_tuning *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* malloc of count*size bytes with overflow check; NULL on overflow or failure. */
void *nst_alloc_array(size_t count, size_t size);
/* The same, zero-filled. */
void *nst_calloc_array(size_t count, size_t size);

/* Atomic file writing: open a temporary file beside path, write to it, then commit
 * (fflush, fsync, rename over path) or abort (close and delete the temporary). */
typedef struct {
    FILE *fp;
    char path[4096];
    char tmp_path[4096 + 32];
} nst_atomic_file;

nst_status nst_atomic_open(nst_atomic_file *af, const char *path, nst_error *err);
nst_status nst_atomic_commit(nst_atomic_file *af, nst_error *err);
void nst_atomic_abort(nst_atomic_file *af);

/* Reads a whole regular file of at most max_bytes into a new buffer (*data, *size; a NUL
 * follows the last byte; free() it). FIFOs, folders and devices are refused without
 * blocking; a larger file is refused (NST_ERR_LIMIT) before anything is allocated. */
nst_status nst_read_file(const char *path, size_t max_bytes, unsigned char **data, size_t *size, nst_error *err);

/* The same, and first the user's limit on input files (lim; NULL: the default): a file
 * over it is refused with a message that says how to raise the limit. */
nst_status nst_read_input_file(const char *path, size_t max_bytes, const nst_limits *lim, unsigned char **data,
                               size_t *size, nst_error *err);

/* The limits in effect: lim's, or the defaults where lim is NULL or a field is 0. */
size_t nst_limit_pixels(const nst_limits *lim);
size_t nst_limit_file_bytes(const nst_limits *lim);
/* NST_OK if a file of size bytes is within lim; else NST_ERR_LIMIT and one line naming
 * path, its size and the limit, and how to raise it. */
nst_status nst_check_file_size(const char *path, unsigned long long size, const nst_limits *lim, nst_error *err);

/* The calling thread's OpenMP thread count for one call of nst: threads > 0 sets it and
 * returns the count to give back to nst_threads_end; threads <= 0 leaves it (returns 0). */
int nst_threads_begin(int threads);
void nst_threads_end(int saved);

/* Seconds from a monotonic clock. */
double nst_now(void);

/* SplitMix64-seeded xoshiro-style generator: deterministic for a given seed. */
typedef struct { uint64_t s[4]; } nst_rng;
void nst_rng_seed(nst_rng *r, uint64_t seed);
uint64_t nst_rng_next(nst_rng *r);
double nst_rng_uniform(nst_rng *r);  /* [0, 1) */
double nst_rng_normal(nst_rng *r);   /* N(0, 1) */

#ifdef __cplusplus
}
#endif
#endif
