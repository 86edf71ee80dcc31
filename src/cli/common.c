/* common.c - argument parsing, output checks, the progress bar and signal handling. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

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
    char buf[1024];
    if (strlen(s) >= sizeof buf) {
        fprintf(stderr, "nst: %s: list too long\n", flag);
        return 0;
    }
    strcpy(buf, s);
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        if (*n >= NST_MAX_TAPS) {
            fprintf(stderr, "nst: %s: more than %d layers\n", flag, NST_MAX_TAPS);
            return 0;
        }
        double w = 1.0;
        char *colon = strchr(item, ':');
        if (colon) {
            *colon = '\0';
            if (!parse_float(flag, colon + 1, 0.0, 1e30, &w)) return 0;
        }
        int l = nst_layer_index(item);
        if (l < 0) {
            fprintf(stderr, "nst: %s: unknown layer '%s' (known: conv1_1..conv5_4, relu1_1..relu5_4, pool1..pool5)\n",
                    flag, item);
            return 0;
        }
        taps[*n].layer = l;
        taps[*n].weight = (float)w;
        (*n)++;
    }
    return 1;
}

int parse_float_list(const char *flag, const char *s, float *out, int max) {
    char buf[1024];
    if (strlen(s) >= sizeof buf) {
        fprintf(stderr, "nst: %s: list too long\n", flag);
        return -1;
    }
    strcpy(buf, s);
    int n = 0;
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        double v;
        if (n >= max) {
            fprintf(stderr, "nst: %s: more than %d values\n", flag, max);
            return -1;
        }
        if (!parse_float(flag, item, 0.0, 1e30, &v)) return -1;
        out[n++] = (float)v;
    }
    return n;
}

int limits_init(nst_limits *lim) {
    nst_error err;
    memset(lim, 0, sizeof *lim);
    if (nst_limits_from_env(lim, &err) == NST_OK) return 1;
    fprintf(stderr, "nst: %s\n", err.msg);
    return 0;
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
    else {
        fprintf(stderr, "nst: %s: '%s' is not fp32%s\n", flag, s, allow_fp16 ? ", tf32 or fp16" : " or tf32");
        return 0;
    }
    return 1;
}

int limits_flag(const char *flag, const char *value, nst_limits *lim) {
    nst_limit_kind which;
    if (strcmp(flag, "--max-pixels") == 0) which = NST_LIMIT_PIXELS;
    else if (strcmp(flag, "--max-file-mb") == 0) which = NST_LIMIT_FILE_MB;
    else return 0;
    nst_error err;
    if (nst_limits_set(lim, which, value, flag, &err) == NST_OK) return 1;
    fprintf(stderr, "nst: %s\n", err.msg);
    return -1;
}

int check_output_path(const char *flag, const char *path) {
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash) ||
        (strcasecmp(dot, ".png") != 0 && strcasecmp(dot, ".jpg") != 0 && strcasecmp(dot, ".jpeg") != 0)) {
        fprintf(stderr, "nst: %s: %s: unsupported image type (use .png, .jpg or .jpeg)\n", flag, path);
        return 0;
    }
    char dir[4096];
    if (slash) {
        size_t len = (size_t)(slash - path);
        if (len >= sizeof dir) { /* cut short, it would name some other folder */
            fprintf(stderr, "nst: %s: %.64s...: %s\n", flag, path, strerror(ENAMETOOLONG));
            return 0;
        }
        memcpy(dir, path, len);
        dir[len] = '\0';
        if (len == 0) strcpy(dir, "/");
    } else {
        strcpy(dir, ".");
    }
    if (access(dir, W_OK | X_OK) != 0) {
        fprintf(stderr, "nst: %s: cannot write: %s\n", path, strerror(errno));
        return 0;
    }
    return 1;
}

/* ---- progress ---- */

void progress_init(progress_bar *pb, FILE *out, int every) {
    pb->out = out;
    pb->tty = isatty(fileno(out));
    pb->every = every > 0 ? every : 1;
    pb->last_draw = -1.0;
}

static void format_time(char *buf, size_t len, double s) {
    if (!(s >= 0.0) || s > 99 * 3600.0) { snprintf(buf, len, "--:--"); return; }
    long t = lround(s);
    if (t >= 3600) snprintf(buf, len, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, len, "%ld:%02ld", t / 60, t % 60);
}

void progress_update(progress_bar *pb, const nst_progress *p) {
    double rate = p->elapsed_s > 0.0 ? p->step / p->elapsed_s : 0.0;
    char eta[32], el[32];
    format_time(eta, sizeof eta, rate > 0.0 ? (p->steps - p->step) / rate : -1.0);
    format_time(el, sizeof el, p->elapsed_s);
    if (pb->tty) {
        /* redraw at most ~10 times a second, and always on the last step */
        if (p->step != p->steps && pb->last_draw >= 0.0 && p->elapsed_s - pb->last_draw < 0.1) return;
        pb->last_draw = p->elapsed_s;
        enum { WIDTH = 24 };
        int fill = p->steps > 0 ? (int)((long long)WIDTH * p->step / p->steps) : WIDTH;
        char bar[WIDTH + 1];
        for (int i = 0; i < WIDTH; i++) bar[i] = i < fill ? '#' : '.';
        bar[WIDTH] = '\0';
        fprintf(pb->out, "\r[%s] %d/%d %.2f step/s ETA %s loss %.4g (content %.3g style %.3g tv %.3g)\x1b[K",
                bar, p->step, p->steps, rate, eta, p->total_loss, p->content_loss, p->style_loss, p->tv_loss);
        fflush(pb->out);
    } else if (p->step % pb->every == 0 || p->step == p->steps) {
        fprintf(pb->out, "step %d/%d elapsed %s %.3f step/s ETA %s loss %.6g content %.6g style %.6g tv %.6g\n",
                p->step, p->steps, el, rate, eta, p->total_loss, p->content_loss, p->style_loss, p->tv_loss);
        fflush(pb->out);
    }
}

void progress_finish(progress_bar *pb) {
    if (pb->tty && pb->last_draw >= 0.0) fputc('\n', pb->out);
}

/* ---- signals: the only global state, since a signal handler can reach nothing else ---- */

static volatile sig_atomic_t g_stop = 0;

static void on_signal(int sig) {
    g_stop = 1;
    signal(sig, SIG_DFL); /* a second Ctrl-C ends the program at once */
}

void stop_signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int stop_requested(void) { return g_stop != 0; }
