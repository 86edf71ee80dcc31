/* util.c - error formatting, checked allocation, atomic writes, clock, random numbers. */
#define _DEFAULT_SOURCE /* madvise(2), MADV_HUGEPAGE */
#include "util/util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

nst_status nst_fail(nst_error *err, nst_status status, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return status;
}

void nst_log(const nst_tuning *t, const char *fmt, ...) {
    if (!t || !t->log) return;
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    for (char *line = buf, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        if (!nl) {
            t->log(t->log_user, line);
            break;
        }
        *nl = '\0';
        t->log(t->log_user, line);
    }
}

const char *nst_status_name(nst_status s) {
    switch (s) {
    case NST_OK: return "ok";
    case NST_ERR_ARG: return "invalid argument";
    case NST_ERR_IO: return "i/o error";
    case NST_ERR_FORMAT: return "bad file format";
    case NST_ERR_LIMIT: return "size limit exceeded";
    case NST_ERR_NOMEM: return "out of memory";
    case NST_ERR_INTERRUPTED: return "interrupted";
    }
    return "unknown error";
}

/* Large arrays (activations, gradients) start on a 2 MB boundary and ask Linux for huge
 * pages: a first pass over a few hundred MB then takes hundreds of page faults instead of
 * ~100k (each costly in a VM). Where the kernel says no, nothing changes. */
#define HUGE_ALIGN ((size_t)2 << 20)
void *nst_alloc_array(size_t count, size_t size) {
    if (size != 0 && count > SIZE_MAX / size) return NULL;
    size_t bytes = count * size;
#ifdef __linux__
    if (bytes >= 4 * HUGE_ALIGN) {
        void *p = NULL;
        if (posix_memalign(&p, HUGE_ALIGN, bytes) != 0) return NULL;
        madvise(p, bytes / HUGE_ALIGN * HUGE_ALIGN, MADV_HUGEPAGE);
        return p;
    }
#endif
    return malloc(bytes ? bytes : 1);
}

void *nst_calloc_array(size_t count, size_t size) {
    if (size != 0 && count > SIZE_MAX / size) return NULL;
    return calloc(count ? count : 1, size ? size : 1);
}

nst_status nst_atomic_open(nst_atomic_file *af, const char *path, nst_error *err) {
    memset(af, 0, sizeof *af);
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof af->path)
        return nst_fail(err, NST_ERR_ARG, "%s: bad output path", path);
    memcpy(af->path, path, len + 1);
    snprintf(af->tmp_path, sizeof af->tmp_path, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(af->tmp_path);
    if (fd < 0)
        return nst_fail(err, NST_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    af->fp = fdopen(fd, "wb");
    if (!af->fp) {
        int e = errno;
        close(fd);
        unlink(af->tmp_path);
        return nst_fail(err, NST_ERR_IO, "%s: cannot write: %s", path, strerror(e));
    }
    return NST_OK;
}

/* Makes a rename durable: the new directory entry reaches the disk too. Best effort. */
static void sync_parent_dir(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    size_t len = slash ? (size_t)(slash - path) : 0;
    if (len >= sizeof dir) return;
    if (slash) {
        memcpy(dir, path, len);
        dir[len] = '\0';
        if (len == 0) strcpy(dir, "/");
    } else {
        strcpy(dir, ".");
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

nst_status nst_atomic_commit(nst_atomic_file *af, nst_error *err) {
    int failed = ferror(af->fp) || fflush(af->fp) != 0 || fsync(fileno(af->fp)) != 0;
    int e = errno;
    if (fclose(af->fp) != 0 && !failed) { failed = 1; e = errno; }
    af->fp = NULL;
    if (!failed) {
        /* mkstemp creates 0600; give the file the usual permissions. */
        mode_t mask = umask(0);
        umask(mask);
        chmod(af->tmp_path, 0666 & ~mask);
        if (rename(af->tmp_path, af->path) == 0) {
            sync_parent_dir(af->path);
            return NST_OK;
        }
        e = errno;
    }
    unlink(af->tmp_path);
    return nst_fail(err, NST_ERR_IO, "%s: write failed: %s", af->path, strerror(e));
}

void nst_atomic_abort(nst_atomic_file *af) {
    if (af->fp) fclose(af->fp);
    af->fp = NULL;
    if (af->tmp_path[0]) unlink(af->tmp_path);
}

double nst_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void nst_rng_seed(nst_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t nst_rng_next(nst_rng *r) { /* xoshiro256** */
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl(s[3], 45);
    return result;
}

double nst_rng_uniform(nst_rng *r) { return (double)(nst_rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }

double nst_rng_normal(nst_rng *r) { /* Box-Muller; one value per call keeps it stateless */
    double u1 = nst_rng_uniform(r), u2 = nst_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static nst_status read_file(const char *path, size_t max_bytes, const nst_limits *lim, int user_limit,
                            unsigned char **data, size_t *size, nst_error *err) {
    /* O_NONBLOCK: opening a FIFO would otherwise wait for a writer forever; it is
     * refused below like anything else that is not a regular file */
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0) return nst_fail(err, NST_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return nst_fail(err, NST_ERR_IO, "%s: not a regular file", path);
    }
    if (user_limit) {
        nst_status s = nst_check_file_size(path, (unsigned long long)st.st_size, lim, err);
        if (s != NST_OK) {
            close(fd);
            return s;
        }
    }
    if ((unsigned long long)st.st_size > max_bytes) {
        close(fd);
        return nst_fail(err, NST_ERR_LIMIT, "%s: file is %lld bytes, more than the limit of %zu", path,
                        (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    unsigned char *buf = malloc(n + 1);
    if (!buf) {
        close(fd);
        return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, buf + got, n - got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        got += (size_t)k;
    }
    int e = errno;
    close(fd);
    if (got != n) {
        free(buf);
        return nst_fail(err, NST_ERR_IO, "%s: read error: %s", path,
                        got < n && e ? strerror(e) : "the file changed while being read");
    }
    buf[n] = '\0';
    *data = buf;
    *size = n;
    return NST_OK;
}

nst_status nst_read_file(const char *path, size_t max_bytes, unsigned char **data, size_t *size,
                         nst_error *err) {
    return read_file(path, max_bytes, NULL, 0, data, size, err);
}

nst_status nst_read_input_file(const char *path, size_t max_bytes, const nst_limits *lim, unsigned char **data,
                               size_t *size, nst_error *err) {
    return read_file(path, max_bytes, lim, 1, data, size, err);
}
