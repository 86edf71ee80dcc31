/* transfer_cmd.c - `nst transfer`: flags -> nst_transfer_config, then nst_transfer_run
 * with a progress bar, a CSV log, periodic snapshots and Ctrl-C handling. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

static const char TRANSFER_USAGE[] =
    "usage: nst transfer --content FILE --style FILE[,FILE...] -o FILE [options]\n"
    "\n"
    "Optimizes an image so that its VGG19 features match the content photo and its\n"
    "Gram matrices match the style painting(s).\n"
    "\n"
    "  --content FILE          the photo (PNG or JPEG)\n"
    "  --style FILE[,FILE...]  one or more paintings (also: repeat --style)\n"
    "  --style-blend W,W,...   blend weights of several styles (default: equal)\n"
    "  -o, --output FILE       result, .png or .jpg (written atomically)\n"
    "  --preset NAME           gatys (default): 512 px, content relu4_2, style relu1_1..relu5_1,\n"
    "                          normalised Gram, L-BFGS 500 steps, TV;\n"
    "                          seed: the original notebook (224x224 squash, pre-ReLU\n"
    "                          conv1_1..conv5_1 taps, raw Gram, Adam lr 0.0003, 2000 steps)\n"
    "  --size N                longer side of the result in pixels\n"
    "  --steps N               optimizer steps\n"
    "  --optimizer adam|lbfgs\n"
    "  --lr X                  Adam step size in 0..255 pixel units\n"
    "  --lbfgs-history N       L-BFGS memory (default 10)\n"
    "  --content-weight X --style-weight X --tv-weight X\n"
    "  --content-layers LIST   NAME or NAME:WEIGHT, comma-separated (e.g. relu4_2)\n"
    "  --style-layers LIST     e.g. relu1_1,relu2_1:0.5,relu3_1\n"
    "  --gram raw|normalized   Gram normalisation (raw: F F^T; normalized: / (C*H*W))\n"
    "  --style-scale X         style image size relative to --size (default 1)\n"
    "  --preserve-colors       keep the photo's colours (style in luminance only)\n"
    "  --init content|noise|FILE  starting image (default content)\n"
    "  --seed N                random seed for --init noise\n"
    "  --save-every N          snapshot every N steps next to the output (0: none)\n"
    "  --log FILE.csv          write step,elapsed_s,content_loss,style_loss,tv_loss,total_loss\n"
    "  --threads N             CPU threads (default: OMP_NUM_THREADS or all cores)\n"
    "  --weights DIR           VGG19 weights folder (default: $" NST_WEIGHTS_ENV " or ../shared/models/vgg19)\n"
    LIMITS_USAGE
    "  --device cpu|cuda|auto  where to run (default auto: CUDA if this nst has it and a GPU\n"
    "                          is there, else the CPU)\n"
    "  --precision fp32|tf32   CUDA arithmetic (default fp32; tf32: TF32 tensor cores, faster,\n"
    "                          final losses within 1% of fp32)\n"
    "  -q, --quiet             no progress output\n"
    "\n"
    "Ctrl-C stops early and still writes the latest image to the output.\n"
    "Exit status: 0 success, 2 usage error, 1 any other failure (an interrupted run too).\n";

typedef struct {
    FILE *log;
    const char *output;
    int save_every, steps;
    progress_bar bar;
    int quiet;
    int snapshot_failed;
    const char *announce; /* a line to print once the run has started (the GPU in use) */
} run_state;

/* out.png, step 200 of 2000 -> out_step0200.png */
static void snapshot_path(char *buf, size_t len, const char *output, int step, int steps) {
    const char *dot = strrchr(output, '.');
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
    if (!rs->quiet) progress_update(&rs->bar, p);
    if (rs->save_every > 0 && p->step > 0 && p->step % rs->save_every == 0 && p->step < rs->steps) {
        char path[4200];
        snapshot_path(path, sizeof path, rs->output, p->step, rs->steps);
        nst_image img = {0};
        nst_error err;
        if (nst_transfer_snapshot(t, &img, &err) != NST_OK || nst_image_save(&img, path, &err) != NST_OK) {
            if (!rs->snapshot_failed) fprintf(stderr, "\nnst: snapshot: %s\n", err.msg);
            rs->snapshot_failed = 1;
        }
        nst_image_free(&img);
    }
    return stop_requested();
}

int cmd_transfer(int argc, char **argv) {
    const char *content_path = NULL, *output = NULL, *weights = NULL, *log_path = NULL, *preset = "gatys";
    const char *styles[NST_MAX_STYLES];
    int n_styles = 0, quiet = 0;
    float blend[NST_MAX_STYLES];
    int n_blend = -1;

    /* the preset goes first: every other flag overrides one of its values */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(TRANSFER_USAGE, stdout);
            return EXIT_OK;
        }
        if (strcmp(argv[i], "--preset") == 0 && i + 1 < argc) preset = argv[i + 1];
    }
    nst_transfer_config cfg;
    nst_error err;
    if (nst_transfer_preset(&cfg, preset, &err) != NST_OK) {
        fprintf(stderr, "nst: --preset: %s\n", err.msg);
        return EXIT_USAGE;
    }
    if (!limits_init(&cfg.limits)) return EXIT_USAGE;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        /* flags without a value */
        if (strcmp(a, "--preserve-colors") == 0) { cfg.preserve_colors = 1; continue; }
        if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) { quiet = 1; continue; }
        if (a[0] != '-') {
            fprintf(stderr, "nst: unexpected argument '%s' (try nst transfer --help)\n", a);
            return EXIT_USAGE;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "nst: %s needs a value (try nst transfer --help)\n", a);
            return EXIT_USAGE;
        }
        const char *v = argv[++i];
        long iv;
        double fv;
        int limit = limits_flag(a, v, &cfg.limits);
        if (limit < 0) return EXIT_USAGE;
        if (limit > 0 || strcmp(a, "--preset") == 0) {
            /* a limit (parsed), or the preset (handled above) */
        } else if (strcmp(a, "--content") == 0) {
            content_path = v;
        } else if (strcmp(a, "--style") == 0) {
            /* a comma-separated list, split in place (argv strings are writable) */
            char *save = NULL;
            for (char *item = strtok_r(argv[i], ",", &save); item; item = strtok_r(NULL, ",", &save)) {
                if (n_styles >= NST_MAX_STYLES) {
                    fprintf(stderr, "nst: --style: at most %d style images\n", NST_MAX_STYLES);
                    return EXIT_USAGE;
                }
                styles[n_styles++] = item;
            }
        } else if (strcmp(a, "--style-blend") == 0) {
            if ((n_blend = parse_float_list(a, v, blend, NST_MAX_STYLES)) < 0) return EXIT_USAGE;
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            output = v;
        } else if (strcmp(a, "--size") == 0) {
            if (!parse_int(a, v, 16, 16384, &iv)) return EXIT_USAGE;
            cfg.size = (int)iv;
        } else if (strcmp(a, "--steps") == 0) {
            if (!parse_int(a, v, 0, 10000000, &iv)) return EXIT_USAGE;
            cfg.steps = (int)iv;
        } else if (strcmp(a, "--optimizer") == 0) {
            if (strcmp(v, "adam") == 0) cfg.optimizer = NST_OPT_ADAM;
            else if (strcmp(v, "lbfgs") == 0) cfg.optimizer = NST_OPT_LBFGS;
            else {
                fprintf(stderr, "nst: --optimizer: '%s' is not adam or lbfgs\n", v);
                return EXIT_USAGE;
            }
        } else if (strcmp(a, "--lr") == 0) {
            if (!parse_float(a, v, 1e-12, 1e6, &fv)) return EXIT_USAGE;
            cfg.lr = (float)fv;
        } else if (strcmp(a, "--lbfgs-history") == 0) {
            if (!parse_int(a, v, 1, 1000, &iv)) return EXIT_USAGE;
            cfg.lbfgs_history = (int)iv;
        } else if (strcmp(a, "--content-weight") == 0) {
            if (!parse_float(a, v, 0.0, 1e30, &fv)) return EXIT_USAGE;
            cfg.content_weight = (float)fv;
        } else if (strcmp(a, "--style-weight") == 0) {
            if (!parse_float(a, v, 0.0, 1e30, &fv)) return EXIT_USAGE;
            cfg.style_weight = (float)fv;
        } else if (strcmp(a, "--tv-weight") == 0) {
            if (!parse_float(a, v, 0.0, 1e30, &fv)) return EXIT_USAGE;
            cfg.tv_weight = (float)fv;
        } else if (strcmp(a, "--content-layers") == 0) {
            if (!parse_layers(a, v, cfg.content_taps, &cfg.n_content_taps)) return EXIT_USAGE;
        } else if (strcmp(a, "--style-layers") == 0) {
            if (!parse_layers(a, v, cfg.style_taps, &cfg.n_style_taps)) return EXIT_USAGE;
        } else if (strcmp(a, "--gram") == 0) {
            if (strcmp(v, "raw") == 0) cfg.gram_norm = NST_GRAM_RAW;
            else if (strcmp(v, "normalized") == 0) cfg.gram_norm = NST_GRAM_NORMALIZED;
            else {
                fprintf(stderr, "nst: --gram: '%s' is not raw or normalized\n", v);
                return EXIT_USAGE;
            }
        } else if (strcmp(a, "--style-scale") == 0) {
            if (!parse_float(a, v, 0.01, 100.0, &fv)) return EXIT_USAGE;
            cfg.style_scale = (float)fv;
        } else if (strcmp(a, "--init") == 0) {
            if (strcmp(v, "content") == 0) cfg.init = NST_INIT_CONTENT;
            else if (strcmp(v, "noise") == 0) cfg.init = NST_INIT_NOISE;
            else { cfg.init = NST_INIT_FILE; cfg.init_file = v; }
        } else if (strcmp(a, "--seed") == 0) {
            if (!parse_int(a, v, 0, 0x7fffffffL, &iv)) return EXIT_USAGE;
            cfg.seed = (uint64_t)iv;
        } else if (strcmp(a, "--save-every") == 0) {
            if (!parse_int(a, v, 0, 10000000, &iv)) return EXIT_USAGE;
            cfg.save_every = (int)iv;
        } else if (strcmp(a, "--log") == 0) {
            log_path = v;
        } else if (strcmp(a, "--threads") == 0) {
            if (!parse_int(a, v, 1, 1024, &iv)) return EXIT_USAGE;
            cfg.threads = (int)iv;
        } else if (strcmp(a, "--weights") == 0) {
            weights = v;
        } else if (strcmp(a, "--device") == 0) {
            if (!parse_device(a, v, &cfg.device)) return EXIT_USAGE;
        } else if (strcmp(a, "--precision") == 0) {
            if (!parse_precision(a, v, 0, &cfg.precision)) return EXIT_USAGE;
        } else {
            fprintf(stderr, "nst: unknown option '%s' (try nst transfer --help)\n", a);
            return EXIT_USAGE;
        }
    }
    if (!content_path || n_styles == 0 || !output) {
        fprintf(stderr, "nst: transfer needs --content FILE, --style FILE and -o FILE (try nst transfer --help)\n");
        return EXIT_USAGE;
    }
    if (n_blend >= 0 && n_blend != n_styles) {
        fprintf(stderr, "nst: --style-blend: %d weights for %d style images\n", n_blend, n_styles);
        return EXIT_USAGE;
    }
    if (cfg.n_content_taps + cfg.n_style_taps == 0) {
        fprintf(stderr, "nst: no content or style layers left\n");
        return EXIT_USAGE;
    }
    if (!check_output_path("-o", output)) return EXIT_FAIL;
    /* the device first: --device cuda without a GPU fails before anything is loaded */
    if (nst_device_resolve(cfg.device, &cfg.device, &err) != NST_OK) {
        fprintf(stderr, "nst: %s\n", err.msg);
        return EXIT_FAIL;
    }

    /* load everything before the long run, so that bad input fails fast */
    int rc = EXIT_FAIL;
    nst_vgg19 *net = NULL;
    nst_image content = {0}, style_imgs[NST_MAX_STYLES] = {{0}}, result = {0};
    run_state rs = {0};
    if (nst_image_load(&content, content_path, &cfg.limits, &err) != NST_OK) goto fail;
    for (int i = 0; i < n_styles; i++)
        if (nst_image_load(&style_imgs[i], styles[i], &cfg.limits, &err) != NST_OK) goto fail;
    if (nst_vgg19_load(&net, weights, nst_transfer_depth(&cfg), &err) != NST_OK) goto fail;
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
    progress_init(&rs.bar, stderr, cfg.save_every > 0 ? cfg.save_every : (cfg.steps >= 10 ? cfg.steps / 10 : 1));
    stop_signals_install();
    char gpu_line[600];
    if (cfg.device == NST_DEVICE_CUDA) {
        char gpu[512];
        nst_cuda_describe(gpu, sizeof gpu);
        snprintf(gpu_line, sizeof gpu_line, "nst: on CUDA%s: %.500s", cfg.precision == NST_PRECISION_TF32 ? " (TF32)" : "",
                 gpu);
        rs.announce = gpu_line;
    }

    nst_status s = nst_transfer_run(&cfg, net, &content, style_imgs, n_blend > 0 ? blend : NULL, n_styles,
                                    on_progress, &rs, &result, &err);
    if (!quiet) progress_finish(&rs.bar);
    if (s != NST_OK && s != NST_ERR_INTERRUPTED) goto fail;
    nst_error save_err;
    if (nst_image_save(&result, output, &save_err) != NST_OK) {
        /* a full disk or a folder gone read-only must not lose a finished run */
        char rescue[512];
        const char *tmp = getenv("TMPDIR");
        snprintf(rescue, sizeof rescue, "%s/nst-rescue-%ld.png", tmp && tmp[0] ? tmp : "/tmp", (long)getpid());
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
    goto done;
fail:
    fprintf(stderr, "nst: %s\n", err.msg);
done:
    if (rs.log) fclose(rs.log);
    nst_image_free(&result);
    nst_image_free(&content);
    for (int i = 0; i < n_styles; i++) nst_image_free(&style_imgs[i]);
    nst_vgg19_free(net);
    return rc;
}
