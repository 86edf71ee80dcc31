/* train_cmd.c - `nst train`: flags -> nst_train_config, then nst_train_run with a progress
 * bar, checkpoints and Ctrl-C handling. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const char TRAIN_USAGE[] =
    "usage: nst train --style FILE --data DIR -o MODEL.nstm [options]\n"
    "\n"
    "Trains a feed-forward style network (Johnson et al.) for one painting; then\n"
    "nst apply --model MODEL.nstm stylises any photo in one pass.\n"
    "\n"
    "  --style FILE            the painting (PNG or JPEG)\n"
    "  --data DIR              folder of training photos (.jpg/.jpeg/.png)\n"
    "  -o, --output FILE       the model file; rewritten at every checkpoint\n"
    "  --steps N               optimizer steps (default 2000)\n"
    "  --batch N               photos per step (default 4)\n"
    "  --size N                training crop size, a multiple of 4 (default 256)\n"
    "  --style-size N          longer side of the painting for its Grams (default 512)\n"
    "  --width N               network width: 32 standard, 16 slim (default 32)\n"
    "  --res-blocks N          residual blocks (default 5)\n"
    "  --lr X                  Adam learning rate (default 0.001)\n"
    "  --content-weight X      (default 7.5)  --content-layers LIST (default relu4_2)\n"
    "  --style-weight X        (default 100)  --style-layers LIST (default relu1_1,relu2_1,relu3_1,relu4_1,relu5_1)\n"
    "  --tv-weight X           (default 200)\n"
    "  --seed N                initialisation and data order (default 1)\n"
    "  --checkpoint-every N    steps between checkpoints (default 200; 0: only at the end)\n"
    "  --checkpoint FILE       training state (default: OUTPUT.ckpt)\n"
    "  --resume FILE           continue from a checkpoint\n"
    "  --holdout N             photos kept out of training, for previews (default 4)\n"
    "  --log FILE.csv          write step,elapsed_s,content_loss,style_loss,tv_loss,total_loss\n"
    "  --threads N             CPU threads (default: OMP_NUM_THREADS or all cores)\n"
    "  --device auto|cpu|cuda  where to train (default auto: CUDA when this nst has it and\n"
    "                          a GPU is there, else the CPU; on CUDA the whole batch runs at once)\n"
    "  --precision fp32|tf32   CUDA arithmetic: fp32 (default) or TF32 tensor cores (faster)\n"
    "  --weights DIR           VGG19 weights folder (default: $" NST_WEIGHTS_ENV " or ../shared/models/vgg19)\n"
    LIMITS_USAGE
    "  -q, --quiet             no progress output\n"
    "\n"
    "Each checkpoint writes the model, OUTPUT.ckpt and a preview of a held-out photo\n"
    "(OUTPUT_stepNNNNNN.jpg). Ctrl-C stops after the current step and writes them too.\n"
    "The same command with the same --seed and --threads gives the same model, bit for bit.\n"
    "Exit status: 0 success, 2 usage error, 1 any other failure (an interrupted run too).\n";

typedef struct {
    FILE *log;
    progress_bar bar;
    int quiet;
    int warned;
} train_state;

static int on_train_progress(const nst_train_progress *p, void *user) {
    train_state *ts = user;
    if (ts->log) {
        fprintf(ts->log, "%d,%.3f,%.9g,%.9g,%.9g,%.9g\n", p->step, p->elapsed_s, p->content_loss, p->style_loss,
                p->tv_loss, p->total_loss);
        fflush(ts->log);
    }
    if (p->warning && !ts->warned) { /* once: it would repeat at every checkpoint */
        fprintf(stderr, "\nnst: warning: %s (training goes on)\n", p->warning);
        ts->warned = 1;
    }
    if (!ts->quiet) {
        nst_progress q = {p->step, p->steps, p->elapsed_s, p->content_loss, p->style_loss, p->tv_loss, p->total_loss};
        progress_update(&ts->bar, &q);
    }
    return stop_requested();
}

/* The command line as one string, for the model file's record of how it was made. */
static char *join_args(int argc, char **argv) {
    size_t len = 16;
    for (int i = 0; i < argc; i++) len += strlen(argv[i]) + 1;
    char *s = malloc(len);
    if (!s) return NULL;
    strcpy(s, "nst train");
    for (int i = 1; i < argc; i++) {
        strcat(s, " ");
        strcat(s, argv[i]);
    }
    return s;
}

int cmd_train(int argc, char **argv) {
    nst_train_config cfg;
    nst_train_defaults(&cfg);
    const char *weights = NULL, *log_path = NULL;
    int quiet = 0;
    if (!limits_init(&cfg.limits)) return EXIT_USAGE;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(TRAIN_USAGE, stdout);
            return EXIT_OK;
        }
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) { quiet = 1; continue; }
        if (a[0] != '-') {
            fprintf(stderr, "nst: unexpected argument '%s' (try nst train --help)\n", a);
            return EXIT_USAGE;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "nst: %s needs a value (try nst train --help)\n", a);
            return EXIT_USAGE;
        }
        const char *v = argv[++i];
        long iv;
        double fv;
        int limit = limits_flag(a, v, &cfg.limits);
        if (limit < 0) return EXIT_USAGE;
        if (limit > 0) continue;
        if (!strcmp(a, "--style")) cfg.style_path = v;
        else if (!strcmp(a, "--data")) cfg.data_dir = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) cfg.output_path = v;
        else if (!strcmp(a, "--checkpoint")) cfg.checkpoint_path = v;
        else if (!strcmp(a, "--resume")) cfg.resume_path = v;
        else if (!strcmp(a, "--log")) log_path = v;
        else if (!strcmp(a, "--weights")) weights = v;
        else if (!strcmp(a, "--steps")) {
            if (!parse_int(a, v, 0, 100000000, &iv)) return EXIT_USAGE;
            cfg.steps = (int)iv;
        } else if (!strcmp(a, "--batch")) {
            if (!parse_int(a, v, 1, 256, &iv)) return EXIT_USAGE;
            cfg.batch = (int)iv;
        } else if (!strcmp(a, "--size")) {
            if (!parse_int(a, v, 32, 2048, &iv)) return EXIT_USAGE;
            if (iv % 4) {
                fprintf(stderr, "nst: --size: %ld is not a multiple of 4\n", iv);
                return EXIT_USAGE;
            }
            cfg.size = (int)iv;
        } else if (!strcmp(a, "--style-size")) {
            if (!parse_int(a, v, 16, 8192, &iv)) return EXIT_USAGE;
            cfg.style_size = (int)iv;
        } else if (!strcmp(a, "--width")) {
            if (!parse_int(a, v, 1, 256, &iv)) return EXIT_USAGE;
            cfg.width = (int)iv;
        } else if (!strcmp(a, "--res-blocks")) {
            if (!parse_int(a, v, 0, 8, &iv)) return EXIT_USAGE;
            cfg.n_res = (int)iv;
        } else if (!strcmp(a, "--lr")) {
            if (!parse_float(a, v, 1e-12, 10.0, &fv)) return EXIT_USAGE;
            cfg.lr = (float)fv;
        } else if (!strcmp(a, "--content-weight")) {
            if (!parse_float(a, v, 0.0, 1e30, &fv)) return EXIT_USAGE;
            cfg.content_weight = (float)fv;
        } else if (!strcmp(a, "--style-weight")) {
            if (!parse_float(a, v, 0.0, 1e30, &fv)) return EXIT_USAGE;
            cfg.style_weight = (float)fv;
        } else if (!strcmp(a, "--tv-weight")) {
            if (!parse_float(a, v, 0.0, 1e30, &fv)) return EXIT_USAGE;
            cfg.tv_weight = (float)fv;
        } else if (!strcmp(a, "--content-layers")) {
            if (!parse_layers(a, v, cfg.content_taps, &cfg.n_content_taps)) return EXIT_USAGE;
        } else if (!strcmp(a, "--style-layers")) {
            if (!parse_layers(a, v, cfg.style_taps, &cfg.n_style_taps)) return EXIT_USAGE;
        } else if (!strcmp(a, "--seed")) {
            if (!parse_int(a, v, 0, 0x7fffffffL, &iv)) return EXIT_USAGE;
            cfg.seed = (uint64_t)iv;
        } else if (!strcmp(a, "--checkpoint-every")) {
            if (!parse_int(a, v, 0, 100000000, &iv)) return EXIT_USAGE;
            cfg.checkpoint_every = (int)iv;
        } else if (!strcmp(a, "--holdout")) {
            if (!parse_int(a, v, 0, 1000000, &iv)) return EXIT_USAGE;
            cfg.holdout = (int)iv;
        } else if (!strcmp(a, "--threads")) {
            if (!parse_int(a, v, 1, 1024, &iv)) return EXIT_USAGE;
            cfg.threads = (int)iv;
        } else if (!strcmp(a, "--device")) {
            if (!parse_device(a, v, &cfg.device)) return EXIT_USAGE;
        } else if (!strcmp(a, "--precision")) {
            if (!parse_precision(a, v, 0, &cfg.precision)) return EXIT_USAGE;
        } else {
            fprintf(stderr, "nst: unknown option '%s' (try nst train --help)\n", a);
            return EXIT_USAGE;
        }
    }
    if (!cfg.style_path || !cfg.data_dir || !cfg.output_path) {
        fprintf(stderr, "nst: train needs --style FILE, --data DIR and -o MODEL (try nst train --help)\n");
        return EXIT_USAGE;
    }
    if (cfg.n_content_taps + cfg.n_style_taps == 0) {
        fprintf(stderr, "nst: no content or style layers left\n");
        return EXIT_USAGE;
    }

    int rc = EXIT_FAIL;
    nst_error err;
    nst_device dev;
    if (nst_device_resolve(cfg.device, &dev, &err) != NST_OK) { /* before the weights are read */
        fprintf(stderr, "nst: %s\n", err.msg);
        return EXIT_FAIL;
    }
    if (dev == NST_DEVICE_CUDA && !quiet) {
        char about[512];
        nst_cuda_describe(about, sizeof about);
        fprintf(stderr, "nst: training on %s\n", about);
    }
    nst_vgg19 *vgg = NULL;
    train_state ts = {0};
    char *command = join_args(argc, argv);
    cfg.command = command;
    if (nst_vgg19_load(&vgg, weights, nst_train_depth(&cfg), &err) != NST_OK) goto fail;
    if (log_path) {
        ts.log = fopen(log_path, cfg.resume_path ? "a" : "w");
        if (!ts.log) {
            snprintf(err.msg, sizeof err.msg, "%s: cannot write the log", log_path);
            goto fail;
        }
        if (!cfg.resume_path) fprintf(ts.log, "step,elapsed_s,content_loss,style_loss,tv_loss,total_loss\n");
    }
    ts.quiet = quiet;
    progress_init(&ts.bar, stderr, cfg.checkpoint_every > 0 ? cfg.checkpoint_every / 4 + 1 : (cfg.steps >= 20 ? cfg.steps / 20 : 1));
    stop_signals_install();
    nst_status s = nst_train_run(&cfg, vgg, on_train_progress, &ts, &err);
    if (!quiet) progress_finish(&ts.bar);
    if (s == NST_ERR_INTERRUPTED) {
        fprintf(stderr, "nst: %s (the model so far is in %s)\n", err.msg, cfg.output_path);
        goto done;
    }
    if (s != NST_OK) goto fail;
    if (!quiet) fprintf(stderr, "nst: wrote %s\n", cfg.output_path);
    rc = EXIT_OK;
    goto done;
fail:
    fprintf(stderr, "nst: %s\n", err.msg);
done:
    if (ts.log) fclose(ts.log);
    nst_vgg19_free(vgg);
    free(command);
    return rc;
}
