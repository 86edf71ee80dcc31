/* cli.h - pieces of the nst command line shared by its subcommands. */
#ifndef NST_CLI_H
#define NST_CLI_H

#include <signal.h>
#include <stdio.h>
#include <sys/types.h>
#include "nst.h"

/* Exit codes */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* Strict number parsing: the whole string must be a number within [lo, hi].
 * On failure they print "nst: FLAG: ..." and return 0. */
int parse_int(const char *flag, const char *s, long lo, long hi, long *out);
int parse_float(const char *flag, const char *s, double lo, double hi, double *out);
/* "NAME[:WEIGHT],..." into taps; prints the error and returns 0 on a bad list. */
int parse_layers(const char *flag, const char *s, nst_tap *taps, int *n);
/* --device auto|cpu|cuda and --precision fp32|tf32 (|fp16 when allow_fp16): 1 on
 * success, else 0 after printing "nst: FLAG: ...". */
int parse_device(const char *flag, const char *s, nst_device *out);
int parse_precision(const char *flag, const char *s, int allow_fp16, nst_precision *out);
/* Resolves *p for the resolved device dev (nst_precision_resolve), before anything is
 * loaded; label gets what the summary line says of it (" in bf16 (avx512bf16)", or "" for
 * fp32). 0 after printing why it cannot run (a usage error). */
int cli_precision(nst_device dev, nst_precision *p, const nst_tuning *tuning, char *label, size_t n);
/* Comma-separated floats into out[max]; returns the count, or -1 on error. */
int parse_float_list(const char *flag, const char *s, float *out, int max);

/* The limits on input files: limits_init starts from the defaults and the environment
 * ($NST_MAX_PIXELS, $NST_MAX_FILE_MB) and prints the error itself (a usage error). */
int limits_init(nst_limits *lim);
/* The tuning from the environment (nst_tuning_from_env, docs/environment.md): read once by
 * each command, carried to the library in its config. */
void tuning_init(nst_tuning *t);
/* An nst_tuning.log that writes each line to the FILE * in user (tuning_init: stderr). */
void log_line(void *user, const char *line);

/* The items that several commands share: 1 if it was one of them (parsed into the
 * target), 0 if not, -1 after printing the error of a bad value (a usage error). */
int limits_item(const char *spelled, int id, const char *value, nst_limits *lim);
int output_item(const char *spelled, int id, const char *value, nst_save_options *opt);

/* ---- files: inputs are never replaced, outputs are checked before any work ---- */

/* The files a run reads (by device and inode, so that another name or a link to the
 * same file is recognised). */
typedef struct {
    dev_t dev;
    ino_t ino;
    const char *path;
    char role[48]; /* "the content photo", "style image 2", ... */
} input_file;
typedef struct {
    input_file *v;
    int n, cap;
} input_set;
/* Adds path ("-" and files that do not exist are not recorded); 0 when out of memory. */
int inputs_add(input_set *s, const char *path, const char *role);
void inputs_free(input_set *s);
/* The input that path is (the same file), or NULL. */
const input_file *inputs_find(const input_set *s, const char *path);

/* Where an output goes, checked before any work. out "-" is standard output (refused on
 * a terminal); a folder (an existing one, or a name ending in '/', created if missing)
 * gets default_name inside (NULL: a folder is refused). The format is opt->format, or
 * the extension's (opt->format is set to it); the bit depth must suit it; the folder
 * must be writable; the file must not be an input. The path is written to buf. Returns
 * EXIT_OK, or the exit code after printing the one-line error. */
int output_prepare(const char *flag, const char *out, const char *default_name, nst_save_options *opt,
                   const input_set *ins, char *buf, size_t len);
/* The same for a file that is not an image (a log, a model): no format check. */
int output_prepare_file(const char *flag, const char *out, const input_set *ins);

/* Images from a path or "-" (standard input, read whole within the limits). */
nst_status image_read(nst_image *img, const char *path, const nst_limits *limits, nst_error *err);
/* Saves atomically to path, or encodes to standard output for "-". */
nst_status image_write(const nst_image *img, const char *path, const nst_save_options *opt, nst_error *err);
/* The same name, or another name (a link) of the same existing file. */
int same_file(const char *a, const char *b);
/* The first n bytes of a file (to tell what it is by content): how many were read, -1 if it
 * cannot be opened. HEAD_BYTES are enough for nst_format_detect and a model's magic. */
enum { HEAD_BYTES = 32 };
long read_head(const char *path, unsigned char *buf, size_t n);
/* ".png", ".jpg", ".webp", ".tif": the extension nst gives a format (".png" for AUTO). */
const char *format_extension(nst_format f);
/* 0 after printing why, if opt asks 16 bits of a format that holds 8 (what names it). */
int bit_depth_fits(const nst_save_options *opt, const char *what);
/* "dir/photo.tar.jpg" -> "photo.tar" (at most len-1 bytes). */
void path_stem(const char *path, char *buf, size_t len);

/* ---- progress ---- */

typedef struct {
    int step, steps;
    int start_step;         /* where this run started (a resumed run: the checkpoint's step) */
    double elapsed_s;       /* in all runs */
    double start_elapsed_s; /* elapsed_s at start_step */
    double content_loss, style_loss, tv_loss, total_loss;
    const char *content_name, *style_name; /* the first two losses' names (NULL: content, style) */
} progress_info;

/* A bar redrawn in place on a terminal, fitted to its width (and to a resize); plain
 * lines every `every` steps otherwise. */
typedef struct {
    int tty;
    int every;
    double last_draw;
    int drawn;
    int width; /* the terminal's columns (0: not read yet) */
    FILE *out;
} progress_bar;
void progress_init(progress_bar *pb, FILE *out, int every);
void progress_update(progress_bar *pb, const progress_info *p);
void progress_finish(progress_bar *pb);
/* The line nst_progress gives, as a progress_info. */
progress_info progress_from(const nst_progress *p);

/* Ctrl-C / SIGTERM: the first sets a flag the loops poll; a second one kills at once.
 * SIGWINCH marks the terminal's width as changed. */
void stop_signals_install(void);
int stop_requested(void);

/* "2 threads" for the start summary: cfg_threads, or OpenMP's default. */
int threads_in_use(int cfg_threads);

/* The shipped styles (styles.c): nst_style_list's, in *v (free() it); 0 if none (an
 * error printed). styles_unknown prints "FLAG NAME: no such file or style (did you
 * mean ...)". */
int styles_find(nst_style_entry **v);
int is_bare_name(const char *s);
/* s is a bare name that is neither a file nor a shipped style (a likely typo). */
int is_unknown_style(const char *s);
void styles_unknown(const char *flag, const char *name);

int cmd_transfer(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_apply(int argc, char **argv);
int cmd_compare(int argc, char **argv);

#endif
