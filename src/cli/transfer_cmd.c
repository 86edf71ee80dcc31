/* transfer_cmd.c - `nst transfer`: options -> nst_transfer_config, every file checked,
 * then nst_transfer_run with a progress bar, a CSV log, periodic snapshots and Ctrl-C
 * handling. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/options.h"

enum {
    T_CONTENT = OPT_FIRST_OWN, T_STYLE, T_BLEND, T_OUTPUT, T_PRESET, T_SIZE, T_STEPS, T_OPTIMIZER, T_LR,
    T_LBFGS_HISTORY, T_CONTENT_WEIGHT, T_STYLE_WEIGHT, T_TV_WEIGHT, T_CONTENT_LAYERS, T_STYLE_LAYERS, T_GRAM,
    T_STYLE_SCALE, T_PRESERVE, T_INIT, T_SEED, T_SAVE_EVERY, T_PRINT_EVERY, T_LOG, T_GPU, T_DECODERS
};

static const cli_opt TRANSFER_OPTS[] = {
    {T_CONTENT, "content", 0, "FILE", "the photo (any format nst reads; - for standard input)", 0},
    {T_STYLE, "style", 0, "FILE[,FILE...]", "one or more paintings (also: repeat --style; a comma in a\n"
                                            "name is written \\,)", OPT_REPEAT},
    {T_BLEND, "style-blend", 0, "W,W,...", "blend weights of several styles (default: equal)", 0},
    {T_OUTPUT, "output", 'o', "FILE", "the result: .png, .jpg, .webp or .tif (written atomically);\n"
                                      "a folder gets PHOTO_PAINTING.png inside; - for standard output", 0},
    {T_PRESET, "preset", 0, "NAME", "gatys (default): 512 px, content relu4_2, style relu1_1..relu5_1,\n"
                                    "normalised Gram, L-BFGS 500 steps, TV;\n"
                                    "seed: the original notebook (224x224 squash, pre-ReLU\n"
                                    "conv1_1..conv5_1 taps, raw Gram, Adam lr 0.0003, 2000 steps)", 0},
    {T_SIZE, "size", 0, "N", "longer side of the result in pixels (1..16384)", 0},
    {T_STEPS, "steps", 0, "N", "optimizer steps", 0},
    {T_OPTIMIZER, "optimizer", 0, "adam|lbfgs", "the optimizer", 0},
    {T_LR, "lr", 0, "X", "Adam step size in 0..255 pixel units", 0},
    {T_LBFGS_HISTORY, "lbfgs-history", 0, "N", "L-BFGS memory (default 10)", 0},
    {T_CONTENT_WEIGHT, "content-weight", 0, "X", "weight of the content loss", 0},
    {T_STYLE_WEIGHT, "style-weight", 0, "X", "weight of the style loss", 0},
    {T_TV_WEIGHT, "tv-weight", 0, "X", "weight of the total variation loss (smoothness)", 0},
    {T_CONTENT_LAYERS, "content-layers", 0, "LIST", "NAME or NAME:WEIGHT, comma-separated (e.g. relu4_2)", 0},
    {T_STYLE_LAYERS, "style-layers", 0, "LIST", "e.g. relu1_1,relu2_1:0.5,relu3_1", 0},
    {T_GRAM, "gram", 0, "raw|normalized", "Gram normalisation (raw: F F^T; normalized: / (C*H*W))", 0},
    {T_STYLE_SCALE, "style-scale", 0, "X", "style image size relative to --size (default 1)", 0},
    {T_PRESERVE, "preserve-colors", 0, NULL, "keep the photo's colours (style in luminance only)", 0},
    {T_INIT, "init", 0, "content|noise|universal|FILE", "starting image (default content; universal: the\n"
                                                        "one-pass result of nst apply --style, fewer steps)", 0},
    {T_DECODERS, "decoders", 0, "DIR", "the decoders of --init universal (default models/universal)", 0},
    {T_SEED, "seed", 0, "N", "random seed for --init noise", 0},
    {T_SAVE_EVERY, "save-every", 0, "N", "snapshot every N steps next to the output (0: none)", 0},
    {T_PRINT_EVERY, "print-every", 0, "N", "a progress line every N steps when not on a terminal", 0},
    {T_LOG, "log", 0, "FILE.csv", "write step,elapsed_s,content_loss,style_loss,tv_loss,total_loss", 0},
    CLI_OUTPUT_OPTS,
    CLI_THREADS_OPT,
    CLI_WEIGHTS_OPT,
    CLI_LIMIT_OPTS,
    {OPT_DEVICE, "device", 0, "cpu|cuda|auto", "where to run (default auto: CUDA if this nst has it and a GPU\n"
                                               "is there, else the CPU)", 0},
    {OPT_PRECISION, "precision", 0, "P", "arithmetic of the convolutions: auto (default; seed: fp32) is\n"
                                         "bf16 on CPUs with AMX or AVX512-BF16 (faster; final losses\n"
                                         "within 1% of fp32), else fp32; or fp32, bf16, tf32 (CUDA)", 0},
    CLI_QUIET_OPT,
    CLI_COMMON_OPTS,
    /* jcjohnson/neural-style's names */
    {T_CONTENT, "content_image", 0, "FILE", NULL, OPT_ALIAS},
    {T_STYLE, "style_image", 0, "FILE[,FILE...]", NULL, OPT_ALIAS | OPT_REPEAT},
    {T_BLEND, "style_blend_weights", 0, "W,W,...", NULL, OPT_ALIAS},
    {T_OUTPUT, "output_image", 0, "FILE", NULL, OPT_ALIAS},
    {T_SIZE, "image_size", 0, "N", NULL, OPT_ALIAS},
    {T_STEPS, "num_iterations", 0, "N", NULL, OPT_ALIAS},
    {T_PRESERVE, "original_colors", 0, "0|1", "--preserve-colors: 0 or 1", OPT_ALIAS},
    {T_INIT, "init", 0, "image|random", "--init: image or random", OPT_ALIAS},
    {T_SEED, "seed", 0, "N", "--seed: -1 for a random one", OPT_ALIAS},
    {T_STYLE_SCALE, "style_scale", 0, "X", NULL, OPT_ALIAS},
    {T_SAVE_EVERY, "save_iter", 0, "N", NULL, OPT_ALIAS},
    {T_PRINT_EVERY, "print_iter", 0, "N", NULL, OPT_ALIAS},
    {T_CONTENT_WEIGHT, "content_weight", 0, "X", NULL, OPT_ALIAS},
    {T_STYLE_WEIGHT, "style_weight", 0, "X", NULL, OPT_ALIAS},
    {T_TV_WEIGHT, "tv_weight", 0, "X", NULL, OPT_ALIAS},
    {T_OPTIMIZER, "optimizer", 0, "adam|lbfgs", NULL, OPT_ALIAS},
    {T_LR, "learning_rate", 0, "X", NULL, OPT_ALIAS},
    {T_LBFGS_HISTORY, "lbfgs_num_correction", 0, "N", "--lbfgs-history: 0 for the default", OPT_ALIAS},
    {T_CONTENT_LAYERS, "content_layers", 0, "LIST", NULL, OPT_ALIAS},
    {T_STYLE_LAYERS, "style_layers", 0, "LIST", NULL, OPT_ALIAS},
    {T_GPU, "gpu", 0, "N", "--device: -1 the CPU, 0 CUDA", OPT_ALIAS},
    {0},
};

static const cli_cmd TRANSFER_CMD = {
    "transfer",
    "--content FILE --style FILE[,FILE...] -o FILE [options]",
    "Optimizes an image so that its VGG19 features match the content photo and its\n"
    "Gram matrices match the style painting(s).",
    TRANSFER_OPTS,
    "Ctrl-C stops early and still writes the latest image to the output.\n"
    "An output never replaces an input: such a run is refused before it starts.\n"
    "Exit status: 0 success, 2 usage error, 1 any other failure (an interrupted run too).\n",
};

typedef struct {
    FILE *log;
    const char *output;
    int save_every, steps;
    progress_bar bar;
    int quiet;
    int snapshot_failed;
    const nst_save_options *save;
    const char *announce; /* a line to print once the run has started (the GPU in use) */
} run_state;

/* out.png, step 200 of 2000 -> out_step0200.png */
static void snapshot_path(char *buf, size_t len, const char *output, int step, int steps) {
    const char *dot = strrchr(output, '.'), *slash = strrchr(output, '/');
    if (!dot || (slash && dot < slash)) dot = output + strlen(output);
    int digits = 4;
    for (int s = steps; s >= 10000; s /= 10) digits++;
    if (snprintf(buf, len, "%.*s_step%0*d%s", (int)(dot - output), output, digits, step, dot) >= (int)len)
        buf[0] = '\0'; /* too long: the save then fails with a message */
}

static int on_progress(nst_transfer *t, const nst_progress *p, void *user) {
    run_state *rs = user;
    if (rs->log) {
        fprintf(rs->log, "%d,%.3f,%.9g,%.9g,%.9g,%.9g\n", p->step, p->elapsed_s, p->content_loss,
                p->style_loss, p->tv_loss, p->total_loss);
        fflush(rs->log);
    }
    if (!rs->quiet && rs->announce) { /* only once the run is under way: an error stays one line */
        fprintf(stderr, "%s\n", rs->announce);
        rs->announce = NULL;
    }
    if (!rs->quiet) {
        progress_info q = progress_from(p);
        progress_update(&rs->bar, &q);
    }
    if (rs->save_every > 0 && p->step > 0 && p->step % rs->save_every == 0 && p->step < rs->steps) {
        char path[4200];
        snapshot_path(path, sizeof path, rs->output, p->step, rs->steps);
        nst_image img = {0};
        nst_error err;
        if (nst_transfer_snapshot(t, &img, &err) != NST_OK || nst_image_save_as(&img, path, rs->save, &err) != NST_OK) {
            if (!rs->snapshot_failed) fprintf(stderr, "\nnst: snapshot: %s\n", err.msg);
            rs->snapshot_failed = 1;
        }
        nst_image_free(&img);
    }
    return stop_requested();
}

/* Adds the paintings of one --style value: a whole value that names a file is one file
 * (its name may hold a comma); else a comma-separated list. */
static int add_styles(const char *spelled, char *value, char **styles, int *n, char ***lists, int *n_lists) {
    if (access(value, F_OK) == 0 || strcmp(value, "-") == 0) {
        if (*n >= NST_MAX_STYLES) goto too_many;
        styles[(*n)++] = value;
        return 1;
    }
    char **items;
    int k = cli_split_list(spelled, value, &items, NST_MAX_STYLES);
    if (k < 0) return 0;
    lists[(*n_lists)++] = items;
    for (int i = 0; i < k; i++) {
        if (*n >= NST_MAX_STYLES) goto too_many;
        styles[(*n)++] = items[i];
    }
    return 1;
too_many:
    fprintf(stderr, "nst: %s: at most %d style images\n", spelled, NST_MAX_STYLES);
    return 0;
}

/* --init universal: the one-pass result (WCT with the decoders of dir, NULL: the shipped
 * ones) of the content at the result's size, the styles at the transfer's style size. */
static int universal_init(nst_image *out, const nst_vgg19 *net, const char *dir, const nst_image *content,
                          const nst_image *styles, int n_styles, const float *blend, const nst_transfer_config *cfg,
                          int quiet, nst_error *err) {
    double t0 = omp_get_wtime();
    nst_universal *u = NULL;
    nst_image sized[NST_MAX_STYLES + 1] = {{0}}; /* the styles, then the content */
    const nst_image *ptr[NST_MAX_STYLES];
    float w[NST_MAX_STYLES];
    int ok = 0, cw = cfg->size, ch = cfg->size;
    if (!cfg->squash) nst_image_fit_size(content->width, content->height, cfg->size, &cw, &ch);
    /* the CPU's arithmetic: the run's own there, else the best */
    nst_precision prec = cfg->device == NST_DEVICE_CPU ? cfg->precision : NST_PRECISION_AUTO;
    if (nst_universal_load(&u, net, dir, &cfg->limits, err) != NST_OK ||
        nst_universal_set_precision(u, prec, &cfg->tuning, err) != NST_OK)
        goto done;
    for (int i = 0; i < n_styles; i++) {
        int sw = cfg->size, sh = cfg->size;
        if (!cfg->squash) {
            int side = (int)lroundf(cfg->style_scale * (float)cfg->size);
            nst_image_fit_size(styles[i].width, styles[i].height, side < 16 ? 16 : side, &sw, &sh);
        }
        if (nst_image_resize(&sized[i], &styles[i], sw, sh, err) != NST_OK) goto done;
        ptr[i] = &sized[i];
        w[i] = blend ? blend[i] : 1.0f;
    }
    nst_image result = {0};
    if (nst_universal_set_styles(u, ptr, w, n_styles, NST_UNIVERSAL_WCT, err) != NST_OK ||
        nst_image_resize(&sized[n_styles], content, cw, ch, err) != NST_OK ||
        nst_universal_apply(u, &sized[n_styles], 1.0f, &result, err) != NST_OK)
        goto done;
    *out = result;
    ok = 1;
    if (!quiet)
        fprintf(stderr, "nst: init: universal style transfer (WCT, %d levels, decoders of %s), %dx%d in %.2f s\n",
                __builtin_popcount(nst_universal_levels(u) & ((2 << NST_UNIVERSAL_LEVELS) - 1)), nst_universal_dir(u), cw,
                ch, omp_get_wtime() - t0);
done:
    for (int i = 0; i <= n_styles; i++) nst_image_free(&sized[i]);
    nst_universal_free(u);
    return ok;
}

static const char *optimizer_name(nst_optimizer o) { return o == NST_OPT_LBFGS ? "L-BFGS" : "Adam"; }

int cmd_transfer(int argc, char **argv) {
    cli_args args;
    int pr = cli_parse(&TRANSFER_CMD, argc, argv, &args);
    if (pr) return pr > 0 ? EXIT_OK : EXIT_USAGE;

    const char *content_path = NULL, *output_arg = NULL, *weights = NULL, *log_path = NULL, *decoders = NULL;
    const char *preset = cli_value(&args, T_PRESET) ? cli_value(&args, T_PRESET) : "gatys";
    char *styles[NST_MAX_STYLES];
    char **lists[NST_MAX_STYLES];
    int n_styles = 0, n_lists = 0, quiet = 0, print_every = 0;
    float blend[NST_MAX_STYLES];
    int n_blend = -1;
    nst_save_options save = {0};
    int rc = EXIT_USAGE;
    input_set inputs = {0};

    /* the preset goes first: every other option overrides one of its values */
    nst_transfer_config cfg;
    nst_error err;
    if (nst_transfer_preset(&cfg, preset, &err) != NST_OK) {
        fprintf(stderr, "nst: --preset: %s\n", err.msg);
        goto done;
    }
    if (!limits_init(&cfg.limits)) goto done;
    tuning_init(&cfg.tuning);
    /* the command's default: bf16 where the CPU has it (docs/precision.md), except for the
     * preset that reproduces the original notebook */
    if (strcmp(preset, "seed") != 0) cfg.precision = NST_PRECISION_AUTO;

    if (args.n_positional > 0) {
        fprintf(stderr, "nst: unexpected argument '%s' (the photo is --content FILE; try nst transfer --help)\n",
                args.positional[0]);
        goto done;
    }
    for (int i = 0; i < args.n_items; i++) {
        const cli_item *it = &args.items[i];
        const char *a = it->spelled, *v = it->value;
        int alias = (it->opt->flags & OPT_ALIAS) != 0;
        long iv;
        double fv;
        int r = limits_item(a, it->opt->id, v, &cfg.limits);
        if (!r) r = output_item(a, it->opt->id, v, &save);
        if (r < 0) goto done;
        if (r > 0) continue;
        switch (it->opt->id) {
        case OPT_QUIET: quiet = 1; break;
        case T_PRESET: break; /* above */
        case T_CONTENT: content_path = v; break;
        case T_STYLE:
            if (!add_styles(a, (char *)v, styles, &n_styles, lists, &n_lists)) goto done;
            break;
        case T_BLEND:
            if ((n_blend = parse_float_list(a, v, blend, NST_MAX_STYLES)) < 0) goto done;
            break;
        case T_OUTPUT: output_arg = v; break;
        case T_SIZE:
            if (!parse_int(a, v, 1, 16384, &iv)) goto done;
            cfg.size = (int)iv;
            break;
        case T_STEPS:
            if (!parse_int(a, v, 0, 10000000, &iv)) goto done;
            cfg.steps = (int)iv;
            break;
        case T_OPTIMIZER:
            if (strcmp(v, "adam") == 0) cfg.optimizer = NST_OPT_ADAM;
            else if (strcmp(v, "lbfgs") == 0) cfg.optimizer = NST_OPT_LBFGS;
            else {
                fprintf(stderr, "nst: %s: '%s' is not adam or lbfgs\n", a, v);
                goto done;
            }
            break;
        case T_LR:
            if (!parse_float(a, v, 1e-12, 1e6, &fv)) goto done;
            cfg.lr = (float)fv;
            break;
        case T_LBFGS_HISTORY:
            if (!parse_int(a, v, alias ? 0 : 1, 1000, &iv)) goto done;
            if (iv > 0) cfg.lbfgs_history = (int)iv;
            break;
        case T_CONTENT_WEIGHT:
            if (!parse_float(a, v, 0.0, 1e30, &fv)) goto done;
            cfg.content_weight = (float)fv;
            break;
        case T_STYLE_WEIGHT:
            if (!parse_float(a, v, 0.0, 1e30, &fv)) goto done;
            cfg.style_weight = (float)fv;
            break;
        case T_TV_WEIGHT:
            if (!parse_float(a, v, 0.0, 1e30, &fv)) goto done;
            cfg.tv_weight = (float)fv;
            break;
        case T_CONTENT_LAYERS:
            if (!parse_layers(a, v, cfg.content_taps, &cfg.n_content_taps)) goto done;
            break;
        case T_STYLE_LAYERS:
            if (!parse_layers(a, v, cfg.style_taps, &cfg.n_style_taps)) goto done;
            break;
        case T_GRAM:
            if (strcmp(v, "raw") == 0) cfg.gram_norm = NST_GRAM_RAW;
            else if (strcmp(v, "normalized") == 0 || strcmp(v, "normalised") == 0) cfg.gram_norm = NST_GRAM_NORMALIZED;
            else {
                fprintf(stderr, "nst: %s: '%s' is not raw or normalized\n", a, v);
                goto done;
            }
            break;
        case T_STYLE_SCALE:
            if (!parse_float(a, v, 0.01, 100.0, &fv)) goto done;
            cfg.style_scale = (float)fv;
            break;
        case T_PRESERVE:
            if (!v) cfg.preserve_colors = 1;
            else if (strcmp(v, "0") == 0 || strcmp(v, "1") == 0) cfg.preserve_colors = v[0] == '1';
            else {
                fprintf(stderr, "nst: %s: '%s' is not 0 or 1\n", a, v);
                goto done;
            }
            break;
        case T_INIT:
            if (strcmp(v, "content") == 0 || (alias && strcmp(v, "image") == 0)) cfg.init = NST_INIT_CONTENT;
            else if (strcmp(v, "noise") == 0 || (alias && strcmp(v, "random") == 0)) cfg.init = NST_INIT_NOISE;
            else if (!alias && strcmp(v, "universal") == 0) cfg.init = NST_INIT_IMAGE; /* a file: ./universal */
            else if (alias) {
                fprintf(stderr, "nst: %s: '%s' is not image or random (for a file use --init FILE)\n", a, v);
                goto done;
            } else if (strcmp(v, "-") == 0) {
                fprintf(stderr, "nst: %s -: the starting image must be a file (standard input is for --content)\n", a);
                goto done;
            } else {
                cfg.init = NST_INIT_FILE;
                cfg.init_file = v;
            }
            break;
        case T_SEED:
            if (alias && strcmp(v, "-1") == 0) {
                cfg.seed = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 20;
                break;
            }
            if (!parse_int(a, v, 0, 0x7fffffffL, &iv)) goto done;
            cfg.seed = (uint64_t)iv;
            break;
        case T_SAVE_EVERY:
            if (!parse_int(a, v, 0, 10000000, &iv)) goto done;
            cfg.save_every = (int)iv;
            break;
        case T_PRINT_EVERY:
            if (!parse_int(a, v, 0, 10000000, &iv)) goto done;
            print_every = (int)iv;
            break;
        case T_LOG: log_path = v; break;
        case OPT_THREADS:
            if (!parse_int(a, v, 1, 1024, &iv)) goto done;
            cfg.threads = (int)iv;
            break;
        case OPT_WEIGHTS: weights = v; break;
        case OPT_DEVICE:
            if (!parse_device(a, v, &cfg.device)) goto done;
            break;
        case T_GPU:
            if (!parse_int(a, v, -1, 64, &iv)) goto done;
            cfg.device = iv < 0 ? NST_DEVICE_CPU : NST_DEVICE_CUDA;
            break;
        case OPT_PRECISION:
            if (!parse_precision(a, v, 0, &cfg.precision)) goto done;
            break;
        case T_DECODERS:
            decoders = v;
            break;
        }
    }
    if (decoders && cfg.init != NST_INIT_IMAGE) {
        fprintf(stderr, "nst: --decoders goes with --init universal\n");
        goto done;
    }
    if (!content_path || n_styles == 0 || !output_arg) {
        fprintf(stderr, "nst: transfer needs %s (try nst transfer --help)\n",
                !content_path ? "--content FILE" : n_styles == 0 ? "--style FILE" : "-o FILE");
        goto done;
    }
    if (n_blend >= 0 && n_blend != n_styles) {
        fprintf(stderr, "nst: --style-blend: %d weights for %d style images\n", n_blend, n_styles);
        goto done;
    }
    if (cfg.n_content_taps + cfg.n_style_taps == 0) {
        fprintf(stderr, "nst: no content or style layers left\n");
        goto done;
    }
    int from_stdin = strcmp(content_path, "-") == 0;
    for (int i = 0; i < n_styles; i++) from_stdin += strcmp(styles[i], "-") == 0;
    if (from_stdin > 1) {
        fprintf(stderr, "nst: standard input (-) can be read once: give it to one image only\n");
        goto done;
    }

    /* every file is checked before anything is loaded: an output never replaces an input */
    int ok = inputs_add(&inputs, content_path, "the content photo");
    for (int i = 0; i < n_styles; i++) {
        char role[48];
        snprintf(role, sizeof role, n_styles > 1 ? "style image %d" : "the style image", i + 1);
        ok = ok && inputs_add(&inputs, styles[i], role);
    }
    if (cfg.init == NST_INIT_FILE) ok = ok && inputs_add(&inputs, cfg.init_file, "the --init image");
    if (!ok) {
        fprintf(stderr, "nst: out of memory\n");
        rc = EXIT_FAIL;
        goto done;
    }
    char output[4200], default_name[600], cstem[256], sstem[256];
    path_stem(content_path, cstem, sizeof cstem);
    path_stem(styles[0], sstem, sizeof sstem);
    snprintf(default_name, sizeof default_name, "%s_%s%s%s", cstem, sstem, n_styles > 1 ? "_blend" : "",
             format_extension(save.format));
    if ((rc = output_prepare("-o", output_arg, default_name, &save, &inputs, output, sizeof output))) goto done;
    rc = EXIT_USAGE;
    if (cfg.save_every > 0 && strcmp(output, "-") == 0) {
        fprintf(stderr, "nst: --save-every writes snapshots beside the output: give -o FILE, not -\n");
        goto done;
    }
    if (log_path) {
        if (same_file(log_path, output)) {
            fprintf(stderr, "nst: --log %s: the same file as -o\n", log_path);
            goto done;
        }
        if ((rc = output_prepare_file("--log", log_path, &inputs))) goto done;
        rc = EXIT_USAGE;
    }
    if (cfg.save_every > 0) {
        for (int step = cfg.save_every; step < cfg.steps && step / cfg.save_every <= 100000; step += cfg.save_every) {
            char snap[4300];
            snapshot_path(snap, sizeof snap, output, step, cfg.steps);
            if (inputs_find(&inputs, snap)) {
                fprintf(stderr, "nst: --save-every: snapshot %s would replace %s; choose another -o\n", snap,
                        inputs_find(&inputs, snap)->role);
                goto done;
            }
        }
    }
    rc = EXIT_FAIL;
    /* the device first: --device cuda without a GPU fails before anything is loaded */
    if (nst_device_resolve(cfg.device, &cfg.device, &err) != NST_OK) {
        fprintf(stderr, "nst: %s\n", err.msg);
        goto done;
    }
    char prec_label[64];
    if (!cli_precision(cfg.device, &cfg.precision, &cfg.tuning, prec_label, sizeof prec_label)) {
        rc = EXIT_USAGE;
        goto done;
    }

    /* load everything before the long run, so that bad input fails fast */
    nst_vgg19 *net = NULL;
    nst_image content = {0}, style_imgs[NST_MAX_STYLES] = {{0}}, result = {0}, init_img = {0};
    run_state rs = {0};
    if (image_read(&content, content_path, &cfg.limits, &err) != NST_OK) goto fail;
    for (int i = 0; i < n_styles; i++)
        if (image_read(&style_imgs[i], styles[i], &cfg.limits, &err) != NST_OK) goto fail;
    if (cfg.init == NST_INIT_FILE) { /* read inside the run: a bad file is found before the summary line */
        nst_image init = {0};
        nst_status si = image_read(&init, cfg.init_file, &cfg.limits, &err);
        nst_image_free(&init);
        if (si != NST_OK) goto fail;
    }
    int depth = nst_transfer_depth(&cfg), deepest = nst_layer_index("relu5_1") + 1;
    if (cfg.init == NST_INIT_IMAGE && depth < deepest) depth = deepest; /* the decoders' encoder */
    if (nst_vgg19_load_tuned(&net, weights, depth, &cfg.tuning, &err) != NST_OK) goto fail;
    if (cfg.init == NST_INIT_IMAGE) {
        if (!universal_init(&init_img, net, decoders, &content, style_imgs, n_styles, n_blend > 0 ? blend : NULL, &cfg,
                            quiet, &err))
            goto fail;
        cfg.init_image = &init_img;
    }
    if (log_path) {
        rs.log = fopen(log_path, "w");
        if (!rs.log) {
            snprintf(err.msg, sizeof err.msg, "%s: cannot write the log", log_path);
            goto fail;
        }
        fprintf(rs.log, "step,elapsed_s,content_loss,style_loss,tv_loss,total_loss\n");
    }
    rs.output = output;
    rs.save_every = cfg.save_every;
    rs.steps = cfg.steps;
    rs.quiet = quiet;
    rs.save = &save;
    int every = print_every > 0 ? print_every
              : cfg.save_every > 0 ? cfg.save_every : (cfg.steps >= 10 ? cfg.steps / 10 : 1);
    progress_init(&rs.bar, stderr, every);
    stop_signals_install();
    char gpu_line[600];
    if (cfg.device == NST_DEVICE_CUDA) {
        char gpu[512];
        nst_cuda_describe(gpu, sizeof gpu);
        snprintf(gpu_line, sizeof gpu_line, "nst: on CUDA%s: %.500s", cfg.precision == NST_PRECISION_TF32 ? " (TF32)" : "",
                 gpu);
        rs.announce = gpu_line;
    }
    if (!quiet) {
        int w = cfg.size, h = cfg.size;
        if (!cfg.squash) nst_image_fit_size(content.width, content.height, cfg.size, &w, &h);
        fprintf(stderr, "nst: %s (%dx%d) -> %s %dx%d; style %s%s; preset %s: %s, %d steps; %d thread%s on the %s%s\n",
                content_path, content.width, content.height, output, w, h, styles[0],
                n_styles > 1 ? " and more" : "", preset, optimizer_name(cfg.optimizer), cfg.steps,
                threads_in_use(cfg.threads), threads_in_use(cfg.threads) == 1 ? "" : "s",
                cfg.device == NST_DEVICE_CUDA ? "GPU" : "CPU", prec_label);
    }

    nst_status s = nst_transfer_run(&cfg, net, &content, style_imgs, n_blend > 0 ? blend : NULL, n_styles,
                                    on_progress, &rs, &result, &err);
    if (!quiet) progress_finish(&rs.bar);
    if (s != NST_OK && s != NST_ERR_INTERRUPTED) goto fail;
    nst_error extras_err;
    if (nst_image_copy_extras(&result, &content, &extras_err) != NST_OK && !quiet)
        fprintf(stderr, "nst: warning: %s (the result is written without the photo's alpha and profile)\n",
                extras_err.msg);
    nst_error save_err;
    if (image_write(&result, output, &save, &save_err) != NST_OK) {
        /* a full disk or a folder gone read-only must not lose a finished run */
        char rescue[512];
        const char *tmp = cfg.tuning.tmp_dir; /* $TMPDIR */
        snprintf(rescue, sizeof rescue, "%.400s/nst-rescue-%ld.png", tmp[0] ? tmp : "/tmp", (long)getpid());
        nst_error rescue_err;
        if (nst_image_save(&result, rescue, &rescue_err) == NST_OK)
            snprintf(err.msg, sizeof err.msg, "%.480s; the result was saved to %.480s instead", save_err.msg, rescue);
        else
            err = save_err;
        goto fail;
    }
    if (s == NST_ERR_INTERRUPTED) {
        fprintf(stderr, "nst: %s; the latest image is in %s\n", err.msg, output);
        rc = EXIT_FAIL;
    } else {
        if (!quiet) fprintf(stderr, "nst: wrote %s (%dx%d)\n", output, result.width, result.height);
        rc = EXIT_OK;
    }
    goto cleanup;
fail:
    fprintf(stderr, "nst: %s\n", err.msg);
    rc = EXIT_FAIL;
cleanup:
    if (rs.log) fclose(rs.log);
    nst_image_free(&result);
    nst_image_free(&content);
    nst_image_free(&init_img);
    for (int i = 0; i < n_styles; i++) nst_image_free(&style_imgs[i]);
    nst_vgg19_free(net);
done:
    for (int i = 0; i < n_lists; i++) free(lists[i]);
    inputs_free(&inputs);
    cli_args_free(&args);
    return rc;
}
