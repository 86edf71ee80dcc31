/* progress.c - the progress bar (fitted to the terminal, redrawn in place), plain lines
 * when stderr is not a terminal, and the signals that stop a run or resize the bar. */
#include <math.h>
#include <omp.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli/cli.h"

/* ---- signals: the only global state, since a signal handler can reach nothing else ---- */

static volatile sig_atomic_t g_stop = 0;
static volatile sig_atomic_t g_resized = 1; /* the width is read at the first draw */

static void on_signal(int sig) {
    g_stop = 1;
    signal(sig, SIG_DFL); /* a second Ctrl-C ends the program at once */
}

static void on_winch(int sig) {
    (void)sig;
    g_resized = 1;
}

void stop_signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = on_winch;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGWINCH, &sa, NULL);
}

int stop_requested(void) { return g_stop != 0; }

int threads_in_use(int cfg_threads) { return cfg_threads > 0 ? cfg_threads : omp_get_max_threads(); }

/* ---- progress ---- */

progress_info progress_from(const nst_progress *p) {
    progress_info q = {0};
    q.step = p->step;
    q.steps = p->steps;
    q.elapsed_s = p->elapsed_s;
    q.content_loss = p->content_loss;
    q.style_loss = p->style_loss;
    q.tv_loss = p->tv_loss;
    q.total_loss = p->total_loss;
    return q;
}

void progress_init(progress_bar *pb, FILE *out, int every) {
    pb->out = out;
    pb->tty = isatty(fileno(out));
    pb->every = every > 0 ? every : 1;
    pb->last_draw = -1.0;
    pb->drawn = 0;
    pb->width = 0;
}

static void format_time(char *buf, size_t len, double s) {
    if (!(s >= 0.0) || s > 99 * 3600.0) { snprintf(buf, len, "--:--"); return; }
    long t = lround(s);
    if (t >= 3600) snprintf(buf, len, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, len, "%ld:%02ld", t / 60, t % 60);
}

static int terminal_width(progress_bar *pb) {
    if (g_resized || pb->width == 0) {
        g_resized = 0;
        struct winsize ws;
        pb->width = ioctl(fileno(pb->out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col : 80;
    }
    return pb->width;
}

/* Steps per second and the time left, from this run's own steps (a resumed run does not
 * count the checkpoint's steps as done in no time). */
static double rate_of(const progress_info *p) {
    double dt = p->elapsed_s - p->start_elapsed_s;
    int done = p->step - p->start_step;
    return dt > 0.0 && done > 0 ? done / dt : 0.0;
}

void progress_update(progress_bar *pb, const progress_info *p) {
    double rate = rate_of(p);
    const char *cname = p->content_name ? p->content_name : "content", *sname = p->style_name ? p->style_name : "style";
    char eta[32], el[32];
    format_time(eta, sizeof eta, rate > 0.0 ? (p->steps - p->step) / rate : -1.0);
    format_time(el, sizeof el, p->elapsed_s);
    if (!pb->tty) {
        if (p->step % pb->every == 0 || p->step == p->steps) {
            fprintf(pb->out, "step %d/%d elapsed %s %.3f step/s ETA %s loss %.6g %s %.6g %s %.6g tv %.6g\n",
                    p->step, p->steps, el, rate, eta, p->total_loss, cname, p->content_loss, sname, p->style_loss,
                    p->tv_loss);
            fflush(pb->out);
        }
        return;
    }
    /* redraw at most ~10 times a second, and always on the last step */
    if (p->step != p->steps && pb->last_draw >= 0.0 && p->elapsed_s - pb->last_draw < 0.1) return;
    pb->last_draw = p->elapsed_s;
    int width = terminal_width(pb) - 1; /* the last column would wrap on some terminals */
    char counts[96], losses[160], line[512];
    snprintf(counts, sizeof counts, " %d/%d %.2f step/s ETA %s", p->step, p->steps, rate, eta);
    snprintf(losses, sizeof losses, " loss %.4g (%s %.3g %s %.3g tv %.3g)", p->total_loss, cname, p->content_loss,
             sname, p->style_loss, p->tv_loss);
    size_t lc = strlen(counts), ll = strlen(losses);
    if ((int)(lc + ll) + 12 > width) {
        snprintf(losses, sizeof losses, " loss %.4g", p->total_loss);
        ll = strlen(losses);
    }
    if ((int)(lc + ll) + 12 > width) losses[0] = '\0', ll = 0;
    int bar = width - (int)(lc + ll) - 2;
    if (bar > 30) bar = 30;
    int n = 0;
    if (bar >= 10) {
        int fill = p->steps > 0 ? (int)((long long)bar * p->step / p->steps) : bar;
        line[n++] = '[';
        for (int i = 0; i < bar; i++) line[n++] = i < fill ? '#' : '.';
        line[n++] = ']';
    }
    n += snprintf(line + n, sizeof line - (size_t)n, "%s%s", bar >= 10 ? counts : counts + 1, losses);
    if (width > 0 && n > width) line[width] = '\0'; /* a very narrow terminal: cut, never wrap */
    fprintf(pb->out, "\r%s\x1b[K", line);
    fflush(pb->out);
    pb->drawn = 1;
}

void progress_finish(progress_bar *pb) {
    if (pb->tty && pb->drawn) fputc('\n', pb->out);
}
