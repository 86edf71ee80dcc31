/* train_cmd.c - `nst train`: flags -> nst_train_config, then nst_train_run with a progress
 * bar, checkpoints and Ctrl-C handling. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/options.h"

enum {
    R_STYLE = OPT_FIRST_OWN, R_DATA, R_OUTPUT, R_STEPS, R_BATCH, R_SIZE, R_PHOTO_SIZE, R_STYLE_SIZE, R_WIDTH, R_RES_BLOCKS, R_LR,
    R_CONTENT_WEIGHT, R_CONTENT_LAYERS, R_STYLE_WEIGHT, R_STYLE_LAYERS, R_TV_WEIGHT, R_SEED, R_CHECKPOINT_EVERY,
    R_CHECKPOINT, R_RESUME, R_HOLDOUT, R_LOG, R_DECODER, R_PIXEL_WEIGHT, R_FEATURE_WEIGHT
};

static const cli_opt TRAIN_OPTS[] = {
    {R_STYLE, "style", 0, "FILE|LIST|DIR", "the painting (any format nst reads); several (a,b,... or a\n"
                                           "folder of them): one network for all, a style each", 0},
    {R_DECODER, "decoder", 0, "LAYER", "instead, the decoder of universal style transfer that inverts\n"
                                       "VGG19's LAYER (relu1_1 .. relu5_1; nst apply --style uses\n"
                                       "them): no painting; --width 64 is the full decoder (default 32),\n"
                                       "--lr default 0.0001, --tv-weight default 0", 0},
    {R_PIXEL_WEIGHT, "pixel-weight", 0, "X", "a decoder's pixel loss (mean squared, 0..255; default 1)", 0},
    {R_FEATURE_WEIGHT, "feature-weight", 0, "X", "a decoder's feature loss at its LAYER (mean squared; default 1)", 0},
    {R_DATA, "data", 0, "DIR", "folder of training photos", 0},
    {R_OUTPUT, "output", 'o', "MODEL.nstm", "the model file; rewritten at every checkpoint", 0},
    {R_STEPS, "steps", 0, "N", "optimizer steps (default 2000)", 0},
    {R_BATCH, "batch", 0, "N", "photos per step (default 4)", 0},
    {R_SIZE, "size", 0, "N", "training crop size, a multiple of 4 (default 256)", 0},
    {R_PHOTO_SIZE, "photo-size", 0, "N", "scale the photos to N px and train on --size windows of them\n"
                                         "(default: the --size, whole photos)", 0},
    {R_STYLE_SIZE, "style-size", 0, "N", "longer side of the painting for its Grams (default 512)", 0},
    {R_WIDTH, "width", 0, "N", "network width: 32 standard, 16 slim (default 32)", 0},
    {R_RES_BLOCKS, "res-blocks", 0, "N", "residual blocks (default 5)", 0},
    {R_LR, "lr", 0, "X", "Adam learning rate (default 0.001)", 0},
    {R_CONTENT_WEIGHT, "content-weight", 0, "X", "(default 7.5)", 0},
    {R_CONTENT_LAYERS, "content-layers", 0, "LIST", "(default relu4_2)", 0},
    {R_STYLE_WEIGHT, "style-weight", 0, "X", "(default 100)", 0},
    {R_STYLE_LAYERS, "style-layers", 0, "LIST", "(default relu1_1,relu2_1,relu3_1,relu4_1,relu5_1)", 0},
    {R_TV_WEIGHT, "tv-weight", 0, "X", "(default 200)", 0},
    {R_SEED, "seed", 0, "N", "initialisation and data order (default 1)", 0},
    {R_CHECKPOINT_EVERY, "checkpoint-every", 0, "N", "steps between checkpoints (default 200; 0: only at the end)", 0},
    {R_CHECKPOINT, "checkpoint", 0, "FILE", "training state (default: OUTPUT.ckpt)", 0},
    {R_RESUME, "resume", 0, "FILE", "continue from a checkpoint", 0},
    {R_HOLDOUT, "holdout", 0, "N", "photos kept out of training, for previews (default 4)", 0},
    {R_LOG, "log", 0, "FILE.csv", "write step,elapsed_s,content_loss,style_loss,tv_loss,total_loss\n"
                                  "(appended to when resuming)", 0},
    CLI_THREADS_OPT,
    {OPT_DEVICE, "device", 0, "auto|cpu|cuda", "where to train (default auto: CUDA when this nst has it and\n"
                                               "a GPU is there, else the CPU; on CUDA the whole batch runs at once)", 0},
    {OPT_PRECISION, "precision", 0, "P", "arithmetic of the convolutions: auto (default) is bf16 on CPUs\n"
                                         "with AMX or AVX512-BF16 (fp32 master weights and Adam), else\n"
                                         "fp32; fp32; bf16; tf32 (CUDA tensor cores)", 0},
    CLI_WEIGHTS_OPT,
    CLI_LIMIT_OPTS,
    CLI_QUIET_OPT,
    CLI_COMMON_OPTS,
    {0},
};

static const cli_cmd TRAIN_CMD = {
    "train",
    "--style FILE --data DIR -o MODEL.nstm [options]",
    "Trains a feed-forward style network (Johnson et al.) for one painting, or one for\n"
    "several (conditional instance norm, Dumoulin et al.); then nst apply --model\n"
    "MODEL.nstm stylises any photo in one pass.",
    TRAIN_OPTS,
    "Each checkpoint writes the model, OUTPUT.ckpt and a preview of a held-out photo\n"
    "(OUTPUT_stepNNNNNN.jpg). Ctrl-C stops after the current step and writes them too.\n"
    "The same command with the same --seed and --threads gives the same model, bit for bit.\n"
    "Exit status: 0 success, 2 usage error, 1 any other failure (an interrupted run too).\n",
};

typedef struct {
    FILE *log;
    progress_bar bar;
    int quiet;
    int warned;
    const char *summary; /* printed with the first step: a bad input before it stays one line */
    int decoder;         /* its losses are feature, pixel (not content, style) */
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
    if (!ts->quiet && ts->summary) {
        fprintf(stderr, "%s; from step %d\n", ts->summary, p->start_step);
        ts->summary = NULL;
    }
    if (!ts->quiet) {
        progress_info q = {.step = p->step, .steps = p->steps, .start_step = p->start_step,
                           .elapsed_s = p->elapsed_s, .start_elapsed_s = p->start_elapsed_s,
                           .content_loss = p->content_loss, .style_loss = p->style_loss, .tv_loss = p->tv_loss,
                           .total_loss = p->total_loss,
                           .content_name = ts->decoder ? "feature" : NULL,
                           .style_name = ts->decoder ? "pixel" : NULL};
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

/* A model file's name must not say it is an image (nst info and viewers go by content,
 * but people go by the name). */
static int model_name_ok(const char *flag, const char *path) {
    nst_format f;
    nst_error err;
    if (nst_format_for_path(path, &f, &err) != NST_OK) return 1;
    fprintf(stderr, "nst: %s %s: that names a %s image; a model file ends in .nstm\n", flag, path, nst_format_name(f));
    return 0;
}

#define STYLES_MAX 256 /* (STYLENET_MAX_STYLES) */

/* --style: one painting, a comma-separated list, or a folder (every image in it, sorted);
 * *out gets n paths (free with nst_free_paths). */
static int style_list(const char *v, char ***out, int *n) {
    struct stat st;
    nst_error err;
    if (stat(v, &st) == 0 && S_ISDIR(st.st_mode)) {
        if (nst_list_images(v, out, n, &err) == NST_OK) return 1;
        fprintf(stderr, "nst: --style %s\n", err.msg);
        return 0;
    }
    char **items;
    int count = cli_split_list("--style", v, &items, STYLES_MAX);
    if (count < 0) return 0;
    char **paths = calloc((size_t)count, sizeof *paths);
    int ok = paths != NULL;
    for (int k = 0; k < count && ok; k++) ok = (paths[k] = strdup(items[k])) != NULL;
    free(items);
    if (!ok) {
        fprintf(stderr, "nst: --style: out of memory\n");
        nst_free_paths(paths, count);
        return 0;
    }
    *out = paths;
    *n = count;
    return 1;
}

int cmd_train(int argc, char **argv) {
    cli_args args;
    int pr = cli_parse(&TRAIN_CMD, argc, argv, &args);
    if (pr) return pr > 0 ? EXIT_OK : EXIT_USAGE;
    nst_train_config cfg;
    nst_train_defaults(&cfg);
    cfg.precision = NST_PRECISION_AUTO; /* the command's default: bf16 where the CPU has it */
    const char *weights = NULL, *log_path = NULL;
    char **styles = NULL;
    int n_styles = 0;
    int quiet = 0, rc = EXIT_USAGE, set_width = 0, set_lr = 0, set_tv = 0;
    cfg.pixel_weight = 1.0f;
    float feature_weight = 1.0f;
    input_set inputs = {0};
    if (!limits_init(&cfg.limits)) goto usage;
    tuning_init(&cfg.tuning);
    if (args.n_positional > 0) {
        fprintf(stderr, "nst: unexpected argument '%s' (try nst train --help)\n", args.positional[0]);
        goto usage;
    }
    for (int i = 0; i < args.n_items; i++) {
        const char *a = args.items[i].spelled, *v = args.items[i].value;
        int id = args.items[i].opt->id;
        long iv;
        double fv;
        int limit = limits_item(a, id, v, &cfg.limits);
        if (limit < 0) goto usage;
        if (limit > 0) continue;
        switch (id) {
        case OPT_QUIET: quiet = 1; break;
        case R_STYLE: cfg.style_path = v; break;
        case R_DATA: cfg.data_dir = v; break;
        case R_OUTPUT: cfg.output_path = v; break;
        case R_CHECKPOINT: cfg.checkpoint_path = v; break;
        case R_RESUME: cfg.resume_path = v; break;
        case R_LOG: log_path = v; break;
        case OPT_WEIGHTS: weights = v; break;
        case R_STEPS:
            if (!parse_int(a, v, 0, 100000000, &iv)) goto usage;
            cfg.steps = (int)iv;
            break;
        case R_BATCH:
            if (!parse_int(a, v, 1, 256, &iv)) goto usage;
            cfg.batch = (int)iv;
            break;
        case R_SIZE:
            if (!parse_int(a, v, 32, 2048, &iv)) goto usage;
            if (iv % 4) {
                fprintf(stderr, "nst: %s: %ld is not a multiple of 4\n", a, iv);
                goto usage;
            }
            cfg.size = (int)iv;
            break;
        case R_PHOTO_SIZE:
            if (!parse_int(a, v, 32, 8192, &iv)) goto usage;
            cfg.photo_size = (int)iv;
            break;
        case R_STYLE_SIZE:
            if (!parse_int(a, v, 16, 8192, &iv)) goto usage;
            cfg.style_size = (int)iv;
            break;
        case R_WIDTH:
            if (!parse_int(a, v, 1, 256, &iv)) goto usage;
            cfg.width = (int)iv;
            set_width = 1;
            break;
        case R_DECODER: {
            int level = 0;
            for (int k = 1; k <= 5; k++) {
                char name[24];
                snprintf(name, sizeof name, "relu%d_1", k);
                if (strcmp(v, name) == 0) level = k;
            }
            if (!level) {
                fprintf(stderr, "nst: %s %s: a decoder inverts relu1_1, relu2_1, relu3_1, relu4_1 or relu5_1\n", a, v);
                goto usage;
            }
            cfg.decoder_level = level;
            break;
        }
        case R_PIXEL_WEIGHT:
            if (!parse_float(a, v, 0.0, 1e30, &fv)) goto usage;
            cfg.pixel_weight = (float)fv;
            break;
        case R_FEATURE_WEIGHT:
            if (!parse_float(a, v, 0.0, 1e30, &fv)) goto usage;
            feature_weight = (float)fv;
            break;
        case R_RES_BLOCKS:
            if (!parse_int(a, v, 0, 8, &iv)) goto usage;
            cfg.n_res = (int)iv;
            break;
        case R_LR:
            if (!parse_float(a, v, 1e-12, 10.0, &fv)) goto usage;
            cfg.lr = (float)fv;
            set_lr = 1;
            break;
        case R_CONTENT_WEIGHT:
            if (!parse_float(a, v, 0.0, 1e30, &fv)) goto usage;
            cfg.content_weight = (float)fv;
            break;
        case R_STYLE_WEIGHT:
            if (!parse_float(a, v, 0.0, 1e30, &fv)) goto usage;
            cfg.style_weight = (float)fv;
            break;
        case R_TV_WEIGHT:
            if (!parse_float(a, v, 0.0, 1e30, &fv)) goto usage;
            cfg.tv_weight = (float)fv;
            set_tv = 1;
            break;
        case R_CONTENT_LAYERS:
            if (!parse_layers(a, v, cfg.content_taps, &cfg.n_content_taps)) goto usage;
            break;
        case R_STYLE_LAYERS:
            if (!parse_layers(a, v, cfg.style_taps, &cfg.n_style_taps)) goto usage;
            break;
        case R_SEED:
            if (!parse_int(a, v, 0, 0x7fffffffL, &iv)) goto usage;
            cfg.seed = (uint64_t)iv;
            break;
        case R_CHECKPOINT_EVERY:
            if (!parse_int(a, v, 0, 100000000, &iv)) goto usage;
            cfg.checkpoint_every = (int)iv;
            break;
        case R_HOLDOUT:
            if (!parse_int(a, v, 0, 1000000, &iv)) goto usage;
            cfg.holdout = (int)iv;
            break;
        case OPT_THREADS:
            if (!parse_int(a, v, 1, 1024, &iv)) goto usage;
            cfg.threads = (int)iv;
            break;
        case OPT_DEVICE:
            if (!parse_device(a, v, &cfg.device)) goto usage;
            break;
        case OPT_PRECISION:
            if (!parse_precision(a, v, 0, &cfg.precision)) goto usage;
            break;
        }
    }
    if (cfg.decoder_level) {
        if (cfg.style_path) {
            fprintf(stderr, "nst: --decoder trains on photos alone: no --style (any painting is given to nst apply --style)\n");
            goto usage;
        }
        if (!set_width) cfg.width = 32;
        if (cfg.width > 64) {
            fprintf(stderr, "nst: --width %d: a decoder is at most 64 wide (VGG19's own channels)\n", cfg.width);
            goto usage;
        }
        if (!set_lr) cfg.lr = 1e-4f;
        if (!set_tv) cfg.tv_weight = 0.0f;
        cfg.content_weight = feature_weight;
        int m = 1 << (cfg.decoder_level - 1);
        if (cfg.size % m || cfg.size < 4 * m) {
            fprintf(stderr, "nst: --size %d: the decoder of relu%d_1 trains on multiples of %d, at least %d\n", cfg.size,
                    cfg.decoder_level, m, 4 * m);
            goto usage;
        }
    }
    if (cfg.style_path && !style_list(cfg.style_path, &styles, &n_styles)) goto usage;
    if (n_styles == 1) cfg.style_path = styles[0];
    if (n_styles > 1) {
        cfg.style_paths = (const char *const *)styles;
        cfg.n_styles = n_styles;
    }
    if ((!cfg.style_path && !cfg.decoder_level) || !cfg.data_dir || !cfg.output_path) {
        fprintf(stderr, "nst: train needs %s (try nst train --help)\n",
                !cfg.style_path && !cfg.decoder_level ? "--style FILE (or --decoder LAYER)"
                : !cfg.data_dir                       ? "--data DIR"
                                                      : "-o MODEL.nstm");
        goto usage;
    }
    if (cfg.n_content_taps + cfg.n_style_taps == 0) {
        fprintf(stderr, "nst: no content or style layers left\n");
        goto usage;
    }
    /* every output checked before the weights are read: the model, the checkpoint (which
     * may be the one resumed from) and the log */
    int styles_ok = 1;
    for (int k = 0; k < n_styles; k++) styles_ok &= inputs_add(&inputs, styles[k], n_styles == 1 ? "the style image" : "a style image") != 0;
    if (!styles_ok || !inputs_add(&inputs, cfg.data_dir, "the data folder")) {
        rc = EXIT_FAIL;
        goto usage;
    }
    if ((rc = output_prepare_file("-o", cfg.output_path, &inputs))) goto usage;
    rc = EXIT_USAGE;
    if (!model_name_ok("-o", cfg.output_path)) goto usage;
    if (cfg.resume_path) {
        if (same_file(cfg.resume_path, cfg.output_path)) {
            fprintf(stderr, "nst: --resume %s: that is the model (-o); resume from the checkpoint (%s.ckpt)\n",
                    cfg.resume_path, cfg.output_path);
            rc = EXIT_USAGE;
            goto usage;
        }
    }
    char ckpt[4200];
    snprintf(ckpt, sizeof ckpt, cfg.checkpoint_path ? "%s" : "%s.ckpt",
             cfg.checkpoint_path ? cfg.checkpoint_path : cfg.output_path);
    if (!model_name_ok("--checkpoint", ckpt)) { rc = EXIT_USAGE; goto usage; }
    if ((rc = output_prepare_file("--checkpoint", ckpt, &inputs))) goto usage;
    if (same_file(ckpt, cfg.output_path)) {
        fprintf(stderr, "nst: --checkpoint %s: the same file as -o\n", ckpt);
        rc = EXIT_USAGE;
        goto usage;
    }
    if (log_path) {
        if (same_file(log_path, cfg.output_path) || same_file(log_path, ckpt)) {
            fprintf(stderr, "nst: --log %s: the same file as the model or the checkpoint\n", log_path);
            rc = EXIT_USAGE;
            goto usage;
        }
        if ((rc = output_prepare_file("--log", log_path, &inputs))) goto usage;
    }

    rc = EXIT_FAIL;
    nst_error err;
    nst_device dev;
    if (nst_device_resolve(cfg.device, &dev, &err) != NST_OK) { /* before the weights are read */
        fprintf(stderr, "nst: %s\n", err.msg);
        goto usage;
    }
    char prec_label[64];
    if (!cli_precision(dev, &cfg.precision, &cfg.tuning, prec_label, sizeof prec_label)) goto usage;
    char summary[2048];
    {
        char about[512] = "the CPU";
        if (dev == NST_DEVICE_CUDA) nst_cuda_describe(about, sizeof about);
        char what[600];
        if (cfg.decoder_level) snprintf(what, sizeof what, "the decoder of relu%d_1", cfg.decoder_level);
        else if (n_styles > 1) snprintf(what, sizeof what, "%d paintings (%.200s, ...)", n_styles, styles[0]);
        else snprintf(what, sizeof what, "%.590s", cfg.style_path);
        snprintf(summary, sizeof summary, "nst: train %s on %s -> %s: %d steps, batch %d, %d px, width %d; %d thread%s on %s%s%s%s",
                 what, cfg.data_dir, cfg.output_path, cfg.steps, cfg.batch, cfg.size, cfg.width,
                 threads_in_use(cfg.threads), threads_in_use(cfg.threads) == 1 ? "" : "s", about, prec_label,
                 cfg.resume_path ? "; resuming from " : "", cfg.resume_path ? cfg.resume_path : "");
    }
    nst_vgg19 *vgg = NULL;
    train_state ts = {0};
    char *command = join_args(argc, argv);
    cfg.command = command;
    if (nst_vgg19_load_tuned(&vgg, weights, nst_train_depth(&cfg), &cfg.tuning, &err) != NST_OK) goto fail;
    if (log_path) {
        ts.log = fopen(log_path, cfg.resume_path ? "a" : "w");
        if (!ts.log) {
            snprintf(err.msg, sizeof err.msg, "%s: cannot write the log", log_path);
            goto fail;
        }
        if (!cfg.resume_path)
            fprintf(ts.log, cfg.decoder_level ? "step,elapsed_s,feature_loss,pixel_loss,tv_loss,total_loss\n"
                                              : "step,elapsed_s,content_loss,style_loss,tv_loss,total_loss\n");
    }
    ts.quiet = quiet;
    ts.decoder = cfg.decoder_level != 0;
    ts.summary = summary;
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
usage:
    nst_free_paths(styles, n_styles);
    inputs_free(&inputs);
    cli_args_free(&args);
    return rc;
}
