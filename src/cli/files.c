/* files.c - what the commands read and write: inputs recognised by inode, so that no
 * output ever replaces one; outputs checked before any work; "-" for standard input
 * and output. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"

int inputs_add(input_set *s, const char *path, const char *role) {
    struct stat st;
    if (!path || strcmp(path, "-") == 0 || stat(path, &st) != 0) return 1;
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 16;
        input_file *v = realloc(s->v, (size_t)cap * sizeof *v);
        if (!v) return 0;
        s->v = v;
        s->cap = cap;
    }
    input_file *f = &s->v[s->n++];
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    f->path = path;
    snprintf(f->role, sizeof f->role, "%s", role);
    return 1;
}

void inputs_free(input_set *s) {
    free(s->v);
    memset(s, 0, sizeof *s);
}

const input_file *inputs_find(const input_set *s, const char *path) {
    struct stat st;
    if (!s || strcmp(path, "-") == 0 || stat(path, &st) != 0) return NULL;
    for (int i = 0; i < s->n; i++)
        if (s->v[i].dev == st.st_dev && s->v[i].ino == st.st_ino) return &s->v[i];
    return NULL;
}

int same_file(const char *a, const char *b) {
    struct stat sa, sb;
    if (strcmp(a, b) == 0) return 1;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

long read_head(const char *path, unsigned char *buf, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t got = fread(buf, 1, n, f);
    fclose(f);
    return (long)got;
}

const char *format_extension(nst_format f) {
    switch (f) {
    case NST_FORMAT_JPEG: return ".jpg";
    case NST_FORMAT_WEBP: return ".webp";
    case NST_FORMAT_TIFF: return ".tif";
    default: return ".png";
    }
}

int bit_depth_fits(const nst_save_options *opt, const char *what) {
    if (opt->bit_depth != 16 || opt->format == NST_FORMAT_PNG || opt->format == NST_FORMAT_TIFF) return 1;
    fprintf(stderr, "nst: --bit-depth 16: %s holds 8 bits per channel (16 needs png or tiff)\n", what);
    return 0;
}

void path_stem(const char *path, char *buf, size_t len) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (strcmp(path, "-") == 0) base = "stdin";
    const char *dot = strrchr(base, '.');
    int n = dot && dot != base ? (int)(dot - base) : (int)strlen(base);
    snprintf(buf, len, "%.*s", n, base);
}

/* The folder part of path ("." when there is none). */
static int folder_of(const char *path, char *dir, size_t len) {
    const char *slash = strrchr(path, '/');
    if (!slash) return snprintf(dir, len, ".") < (int)len;
    size_t n = (size_t)(slash - path);
    if (n == 0) return snprintf(dir, len, "/") < (int)len;
    if (n >= len) return 0;
    memcpy(dir, path, n);
    dir[n] = '\0';
    return 1;
}

static int not_an_input(const char *flag, const char *path, const input_set *ins) {
    const input_file *in = inputs_find(ins, path);
    if (!in) return 1;
    if (strcmp(in->path, path) == 0)
        fprintf(stderr, "nst: %s %s: that is %s; an output never replaces an input (choose another name)\n", flag,
                path, in->role);
    else
        fprintf(stderr, "nst: %s %s: that is %s (%s); an output never replaces an input (choose another name)\n",
                flag, path, in->role, in->path);
    return 0;
}

static int folder_writable(const char *path) {
    char dir[4096];
    if (!folder_of(path, dir, sizeof dir)) {
        fprintf(stderr, "nst: %.64s...: %s\n", path, strerror(ENAMETOOLONG));
        return 0;
    }
    struct stat st;
    if (stat(dir, &st) != 0) {
        fprintf(stderr, "nst: %s: the folder %s does not exist\n", path, dir);
        return 0;
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "nst: %s: %s is not a folder\n", path, dir);
        return 0;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        fprintf(stderr, "nst: %s: cannot write into %s: %s\n", path, dir, strerror(errno));
        return 0;
    }
    return 1;
}

int output_prepare(const char *flag, const char *out, const char *default_name, nst_save_options *opt,
                   const input_set *ins, char *buf, size_t len) {
    nst_error err;
    if (strcmp(out, "-") == 0) {
        if (isatty(STDOUT_FILENO)) {
            fprintf(stderr, "nst: %s -: standard output is a terminal; redirect it to a file or a pipe\n", flag);
            return EXIT_USAGE;
        }
        if (opt->format == NST_FORMAT_AUTO) opt->format = NST_FORMAT_PNG;
        snprintf(buf, len, "-");
    } else {
        size_t n = strlen(out);
        struct stat st;
        int named_dir = n > 0 && out[n - 1] == '/';
        int is_dir = stat(out, &st) == 0 && S_ISDIR(st.st_mode);
        if (named_dir || is_dir) {
            if (!default_name) {
                fprintf(stderr, "nst: %s %s: is a folder; give a file name\n", flag, out);
                return EXIT_USAGE;
            }
            if (!is_dir && mkdir(out, 0777) != 0) {
                fprintf(stderr, "nst: %s %s: cannot create the folder: %s\n", flag, out, strerror(errno));
                return EXIT_FAIL;
            }
            if (snprintf(buf, len, "%s%s%s", out, named_dir ? "" : "/", default_name) >= (int)len) {
                fprintf(stderr, "nst: %s %.64s...: %s\n", flag, out, strerror(ENAMETOOLONG));
                return EXIT_USAGE;
            }
        } else if (snprintf(buf, len, "%s", out) >= (int)len) {
            fprintf(stderr, "nst: %s %.64s...: %s\n", flag, out, strerror(ENAMETOOLONG));
            return EXIT_USAGE;
        }
        nst_format ext;
        if (nst_format_for_path(buf, &ext, &err) != NST_OK) {
            if (opt->format == NST_FORMAT_AUTO) {
                fprintf(stderr, "nst: %s %s\n", flag, err.msg);
                return EXIT_USAGE;
            }
        } else if (opt->format == NST_FORMAT_AUTO) {
            opt->format = ext;
        } else if (opt->format != ext) {
            fprintf(stderr, "nst: %s %s: the name says %s but --format says %s\n", flag, buf, nst_format_name(ext),
                    nst_format_name(opt->format));
            return EXIT_USAGE;
        }
        if (stat(buf, &st) == 0 && S_ISDIR(st.st_mode)) {
            fprintf(stderr, "nst: %s %s: is a folder\n", flag, buf);
            return EXIT_USAGE;
        }
        if (!not_an_input(flag, buf, ins)) return EXIT_USAGE;
        if (!folder_writable(buf)) return EXIT_FAIL;
    }
    return bit_depth_fits(opt, nst_format_name(opt->format)) ? EXIT_OK : EXIT_USAGE;
}

int output_prepare_file(const char *flag, const char *out, const input_set *ins) {
    struct stat st;
    if (stat(out, &st) == 0 && S_ISDIR(st.st_mode)) {
        fprintf(stderr, "nst: %s %s: is a folder; give a file name\n", flag, out);
        return EXIT_USAGE;
    }
    if (!not_an_input(flag, out, ins)) return EXIT_USAGE;
    return folder_writable(out) ? EXIT_OK : EXIT_FAIL;
}

nst_status image_read(nst_image *img, const char *path, const nst_limits *limits, nst_error *err) {
    if (strcmp(path, "-") != 0) return nst_image_load(img, path, limits, err);
    size_t max = limits && limits->max_file_bytes ? limits->max_file_bytes : NST_DEFAULT_MAX_FILE_BYTES;
    size_t cap = 1 << 16, n = 0;
    unsigned char *data = malloc(cap);
    if (!data) {
        snprintf(err->msg, sizeof err->msg, "<stdin>: out of memory");
        return NST_ERR_NOMEM;
    }
    for (;;) {
        if (n == cap) {
            if (cap > max) break;
            unsigned char *d = realloc(data, cap * 2);
            if (!d) {
                free(data);
                snprintf(err->msg, sizeof err->msg, "<stdin>: out of memory");
                return NST_ERR_NOMEM;
            }
            data = d;
            cap *= 2;
        }
        size_t got = fread(data + n, 1, cap - n, stdin);
        n += got;
        if (got == 0) break;
        if (n > max) break;
    }
    if (ferror(stdin)) {
        free(data);
        snprintf(err->msg, sizeof err->msg, "<stdin>: cannot read: %s", strerror(errno));
        return NST_ERR_IO;
    }
    if (n > max) {
        free(data);
        snprintf(err->msg, sizeof err->msg,
                 "<stdin>: more than the limit of %zu bytes (%.2f MB); raise it with --max-file-mb N or " NST_MAX_FILE_MB_ENV "=N",
                 max, max / 1048576.0);
        return NST_ERR_LIMIT;
    }
    nst_status s = nst_image_decode(img, data, n, "<stdin>", limits, err);
    free(data);
    return s;
}

nst_status image_write(const nst_image *img, const char *path, const nst_save_options *opt, nst_error *err) {
    if (strcmp(path, "-") != 0) return nst_image_save_as(img, path, opt, err);
    unsigned char *data;
    size_t size;
    nst_status s = nst_image_encode(img, opt, &data, &size, err);
    if (s) return s;
    size_t put = fwrite(data, 1, size, stdout);
    free(data);
    if (put != size || fflush(stdout) != 0) {
        snprintf(err->msg, sizeof err->msg, "<stdout>: cannot write: %s", strerror(errno));
        return NST_ERR_IO;
    }
    return NST_OK;
}
