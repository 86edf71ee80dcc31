/* cli.h - pieces of the nst command line shared by its subcommands. */
#ifndef NST_CLI_H
#define NST_CLI_H

#include <signal.h>
#include <stdio.h>
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
/* Comma-separated floats into out[max]; returns the count, or -1 on error. */
int parse_float_list(const char *flag, const char *s, float *out, int max);

/* The limits on input files: limits_init starts from the defaults and the environment
 * ($NST_MAX_PIXELS, $NST_MAX_FILE_MB); limits_flag takes --max-pixels N and
 * --max-file-mb N: 1 if flag is one of them (parsed into lim), 0 if it is not, -1 on a
 * bad value. Both print the one-line error themselves (a usage error). */
int limits_init(nst_limits *lim);
int limits_flag(const char *flag, const char *value, nst_limits *lim);
#define LIMITS_USAGE                                                                           \
    "  --max-pixels N          refuse images of more than N pixels (default 100000000;\n"     \
    "                          also $" NST_MAX_PIXELS_ENV ")\n"                              \
    "  --max-file-mb N         refuse input files larger than N MB (default 1024;\n"          \
    "                          also $" NST_MAX_FILE_MB_ENV ")\n"

/* Checks that path has a supported image extension and that its folder is writable. */
int check_output_path(const char *flag, const char *path);

/* Progress display: a bar redrawn in place on a terminal; plain lines otherwise. */
typedef struct {
    int tty;
    int every;        /* plain-line period in steps */
    double last_draw;
    FILE *out;
} progress_bar;
void progress_init(progress_bar *pb, FILE *out, int every);
void progress_update(progress_bar *pb, const nst_progress *p);
void progress_finish(progress_bar *pb);

/* Ctrl-C / SIGTERM: the first sets a flag the loops poll; a second one kills at once. */
void stop_signals_install(void);
int stop_requested(void);

int cmd_transfer(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_apply(int argc, char **argv);

#endif
