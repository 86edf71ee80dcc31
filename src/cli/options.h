/* options.h - the one option parser of every subcommand, driven by a table from which
 * --help is printed too.
 *
 * What it accepts, for every command alike:
 *   --name VALUE and --name=VALUE; -x VALUE for the short forms (-o, -h, -V, -q);
 *   -- ends the options (what follows is a file, even "-x.jpg"); "-" is a file (stdin/stdout);
 *   the names of jcjohnson/neural-style (-content_image, -num_iterations, ...) where the
 *   table lists them as aliases.
 * What it refuses, with one line and exit status 2:
 *   an unknown option (with "did you mean" when one is close), an option that needs a
 *   value and has none (also when the next word is another option), a value given to a
 *   flag, a single-valued option given twice. */
#ifndef NST_CLI_OPTIONS_H
#define NST_CLI_OPTIONS_H

#include <stdio.h>

enum {
    OPT_REPEAT = 1, /* may be given more than once (each occurrence is an item) */
    OPT_ALIAS = 2   /* a neural-style name: spelled with one dash, listed apart in --help */
};

typedef struct {
    int id;            /* the command's code for it (0 ends the table) */
    const char *name;  /* long name without dashes: "content" for --content */
    char short_name;   /* 'o' for -o, or 0 */
    const char *value; /* the value's placeholder ("FILE"), or NULL: a flag without a value */
    const char *help;  /* text for --help (lines after the first are indented), or NULL */
    unsigned flags;    /* OPT_* */
} cli_opt;

typedef struct {
    const char *name;      /* "transfer" */
    const char *synopsis;  /* what follows "usage: nst transfer " */
    const char *about;     /* a paragraph under the usage line */
    const cli_opt *opts;   /* ends with an entry whose id is 0 */
    const char *epilog;    /* printed after the options, or NULL */
} cli_cmd;

typedef struct {
    const cli_opt *opt;
    const char *value;   /* NULL for a flag */
    const char *spelled; /* as the user wrote it ("--size", "-image_size"), for messages */
} cli_item;

typedef struct {
    cli_item *items;
    int n_items;
    char **positional; /* files and other operands, in order */
    int n_positional;
} cli_args;

/* The codes several commands share (a command's own start at OPT_FIRST_OWN). */
enum {
    OPT_HELP = 1, OPT_VERSION, OPT_QUIET, OPT_THREADS, OPT_DEVICE, OPT_PRECISION, OPT_WEIGHTS,
    OPT_MAX_PIXELS, OPT_MAX_FILE_MB, OPT_FORMAT, OPT_QUALITY, OPT_BIT_DEPTH, OPT_STRIP,
    OPT_FIRST_OWN = 100
};
#define CLI_COMMON_OPTS                                                  \
    {OPT_HELP, "help", 'h', NULL, "this help", 0},                       \
    {OPT_VERSION, "version", 'V', NULL, "print the version", 0}
#define CLI_QUIET_OPT {OPT_QUIET, "quiet", 'q', NULL, "no progress output", 0}
#define CLI_THREADS_OPT \
    {OPT_THREADS, "threads", 0, "N", "CPU threads (default: OMP_NUM_THREADS or all cores)", 0}
#define CLI_WEIGHTS_OPT \
    {OPT_WEIGHTS, "weights", 0, "DIR", "VGG19 weights folder (default: $" NST_WEIGHTS_ENV " or\n../shared/models/vgg19)", 0}
#define CLI_LIMIT_OPTS                                                                               \
    {OPT_MAX_PIXELS, "max-pixels", 0, "N", "refuse images of more than N pixels (default 100000000;\n"  \
                                            "also $" NST_MAX_PIXELS_ENV ")", 0},                        \
    {OPT_MAX_FILE_MB, "max-file-mb", 0, "N", "refuse input files larger than N MB (default 1024;\n"    \
                                              "also $" NST_MAX_FILE_MB_ENV ")", 0}
#define CLI_OUTPUT_OPTS                                                                                    \
    {OPT_FORMAT, "format", 0, "F", "png, jpeg, webp or tiff (default: from the output's\n"                  \
                                   "extension; png for -o -)", 0},                                          \
    {OPT_QUALITY, "quality", 0, "N", "JPEG and WebP quality 1..100 (default 95 JPEG, 90 WebP)", 0},          \
    {OPT_BIT_DEPTH, "bit-depth", 0, "8|16", "bits per channel of PNG and TIFF output (default 8)", 0},        \
    {OPT_STRIP, "strip", 0, NULL, "write no colour profile or EXIF (else the photo's are copied)", 0}

/* Parses argv[1..argc-1] (argv[0] is the command's name). Returns 0 with *out filled
 * (free with cli_args_free), 1 if --help or --version was given and has been printed (exit
 * 0), or -1 after printing the error (exit 2). */
int cli_parse(const cli_cmd *cmd, int argc, char **argv, cli_args *out);
void cli_args_free(cli_args *a);
void cli_help(const cli_cmd *cmd, FILE *f);

/* The value of the last item with this id, or NULL; whether a flag was given. */
const char *cli_value(const cli_args *a, int id);
int cli_flag(const cli_args *a, int id);

/* Splits a comma-separated list: items trimmed of spaces, "\," stands for a comma in an
 * item and "\\" for a backslash. *items is one allocation (free() it) holding up to max
 * strings. Returns the count, or -1 after printing "nst: FLAG: ..." (empty item, too many). */
int cli_split_list(const char *flag, const char *s, char ***items, int max);

/* Edit distance (for "did you mean"). */
int cli_edit_distance(const char *a, const char *b);
/* Of the n candidates, the closest to s if it is close enough to be a likely typo. */
const char *cli_closest(const char *s, const char *const *candidates, int n);

#endif
