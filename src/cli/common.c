/* common.c - the values of options: numbers, layer lists, devices, limits, output settings. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/options.h"

int parse_int(const char *flag, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (s[0] == '\0' || *end != '\0' || errno == ERANGE) {
        fprintf(stderr, "nst: %s: '%s' is not an integer\n", flag, s);
        return 0;
    }
    if (v < lo || v > hi) {
        fprintf(stderr, "nst: %s: %ld is out of range (%ld..%ld)\n", flag, v, lo, hi);
        return 0;
    }
    *out = v;
    return 1;
}

int parse_float(const char *flag, const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (s[0] == '\0' || *end != '\0' || errno == ERANGE || !isfinite(v)) {
        fprintf(stderr, "nst: %s: '%s' is not a finite number\n", flag, s);
        return 0;
    }
    if (v < lo || v > hi) {
        fprintf(stderr, "nst: %s: %g is out of range (%g..%g)\n", flag, v, lo, hi);
        return 0;
    }
    *out = v;
    return 1;
}

int parse_layers(const char *flag, const char *s, nst_tap *taps, int *n) {
    *n = 0;
    if (s[0] == '\0') return 1; /* an empty list turns the loss off */
    char **items;
    int count = cli_split_list(flag, s, &items, NST_MAX_TAPS + 1);
    if (count < 0) return 0;
    int ok = 1;
    if (count > NST_MAX_TAPS) {
        fprintf(stderr, "nst: %s: more than %d layers\n", flag, NST_MAX_TAPS);
        ok = 0;
    }
    for (int i = 0; i < count && ok; i++) {
        char *item = items[i];
        double w = 1.0;
        char *colon = strchr(item, ':');
        if (colon) {
            *colon = '\0';
            if (!parse_float(flag, colon + 1, 0.0, 1e30, &w)) { ok = 0; break; }
        }
        int l = nst_layer_index(item);
        if (l < 0) {
            const char *names[NST_NUM_LAYERS];
            for (int k = 0; k < NST_NUM_LAYERS; k++) names[k] = nst_layer_name(k);
            const char *near = cli_closest(item, names, NST_NUM_LAYERS);
            if (near)
                fprintf(stderr, "nst: %s: unknown layer '%s' (did you mean '%s'?)\n", flag, item, near);
            else
                fprintf(stderr, "nst: %s: unknown layer '%s' (known: conv1_1..conv5_4, relu1_1..relu5_4, pool1..pool5)\n",
                        flag, item);
            ok = 0;
            break;
        }
        taps[*n].layer = l;
        taps[*n].weight = (float)w;
        (*n)++;
    }
    free(items);
    return ok;
}

int parse_float_list(const char *flag, const char *s, float *out, int max) {
    char **items;
    int count = cli_split_list(flag, s, &items, max);
    if (count < 0) return -1;
    for (int i = 0; i < count; i++) {
        double v;
        if (!parse_float(flag, items[i], 0.0, 1e30, &v)) {
            free(items);
            return -1;
        }
        out[i] = (float)v;
    }
    free(items);
    return count;
}

int limits_init(nst_limits *lim) {
    nst_error err;
    memset(lim, 0, sizeof *lim);
    if (nst_limits_from_env(lim, &err) == NST_OK) return 1;
    fprintf(stderr, "nst: %s\n", err.msg);
    return 0;
}

/* The library's messages (nst_tuning.log): a line each, on the stream user names. */
void log_line(void *user, const char *line) {
    fprintf(user, "%s\n", line);
}

void tuning_init(nst_tuning *t) {
    nst_error err;
    nst_tuning_from_env(t, &err); /* always NST_OK: unknown values are the defaults */
    t->log = log_line;
    t->log_user = stderr;
}

int parse_device(const char *flag, const char *s, nst_device *out) {
    nst_error err;
    if (nst_device_parse(s, out, &err) == NST_OK) return 1;
    fprintf(stderr, "nst: %s: %s\n", flag, err.msg);
    return 0;
}

int parse_precision(const char *flag, const char *s, int allow_fp16, nst_precision *out) {
    if (strcmp(s, "fp32") == 0) *out = NST_PRECISION_FP32;
    else if (strcmp(s, "tf32") == 0) *out = NST_PRECISION_TF32;
    else if (allow_fp16 && strcmp(s, "fp16") == 0) *out = NST_PRECISION_FP16;
    else if (strcmp(s, "bf16") == 0) *out = NST_PRECISION_BF16;
    else if (strcmp(s, "auto") == 0) *out = NST_PRECISION_AUTO;
    else {
        fprintf(stderr, "nst: %s: '%s' is not fp32, bf16, auto%s\n", flag, s, allow_fp16 ? ", tf32 or fp16" : " or tf32");
        return 0;
    }
    return 1;
}

int cli_precision(nst_device dev, nst_precision *p, const nst_tuning *tuning, char *label, size_t n) {
    nst_error err;
    if (nst_precision_resolve(dev, *p, tuning, p, &err) != NST_OK) {
        fprintf(stderr, "nst: --precision: %s\n", err.msg);
        return 0;
    }
    if (dev == NST_DEVICE_CPU && *p == NST_PRECISION_BF16) snprintf(label, n, " in bf16 (%s)", nst_cpu_bf16_kernel(tuning));
    else if (dev == NST_DEVICE_CUDA && *p == NST_PRECISION_TF32) snprintf(label, n, " in tf32");
    else if (dev == NST_DEVICE_CUDA && *p == NST_PRECISION_FP16) snprintf(label, n, " in fp16");
    else snprintf(label, n, "%s", "");
    return 1;
}

int limits_item(const char *spelled, int id, const char *value, nst_limits *lim) {
    nst_limit_kind which;
    if (id == OPT_MAX_PIXELS) which = NST_LIMIT_PIXELS;
    else if (id == OPT_MAX_FILE_MB) which = NST_LIMIT_FILE_MB;
    else return 0;
    nst_error err;
    if (nst_limits_set(lim, which, value, spelled, &err) == NST_OK) return 1;
    fprintf(stderr, "nst: %s\n", err.msg);
    return -1;
}

int output_item(const char *spelled, int id, const char *value, nst_save_options *opt) {
    long v;
    nst_error err;
    switch (id) {
    case OPT_FORMAT:
        if (nst_format_parse(value, &opt->format, &err) != NST_OK) {
            fprintf(stderr, "nst: %s: %s\n", spelled, err.msg);
            return -1;
        }
        if (!nst_format_writable(opt->format)) {
            fprintf(stderr, "nst: %s: nst reads %s but does not write it (png, jpeg, webp or tiff)\n", spelled,
                    nst_format_name(opt->format));
            return -1;
        }
        return 1;
    case OPT_QUALITY:
        if (!parse_int(spelled, value, 1, 100, &v)) return -1;
        opt->quality = (int)v;
        return 1;
    case OPT_BIT_DEPTH:
        if (strcmp(value, "8") && strcmp(value, "16")) {
            fprintf(stderr, "nst: %s: '%s' is not 8 or 16\n", spelled, value);
            return -1;
        }
        opt->bit_depth = atoi(value);
        return 1;
    case OPT_STRIP: opt->strip = 1; return 1;
    default: return 0;
    }
}
