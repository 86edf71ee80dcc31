/* bench_cmd.c - `nst bench`: times the network and a whole transfer step. */
#include <omp.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/options.h"

enum { B_SIZE = OPT_FIRST_OWN, B_ITERS, B_WARMUP, B_LAYERS };

static const cli_opt BENCH_OPTS[] = {
    {B_SIZE, "size", 0, "N", "square image side (default 224)", 0},
    {B_ITERS, "iters", 0, "N", "timed repetitions (default 10)", 0},
    {B_WARMUP, "warmup", 0, "N", "untimed repetitions first (default 2)", 0},
    CLI_THREADS_OPT,
    {OPT_DEVICE, "device", 0, "D", "cpu (default), cuda, or auto; on CUDA the times come from CUDA events\n"
                                   "and a line gives the GPU and the memory the run took", 0},
    {OPT_PRECISION, "precision", 0, "P", "fp32 (default), bf16 or auto (CPU: bf16 convolutions where\n"
                                         "the CPU has AMX or AVX512-BF16), tf32 (CUDA: TF32 tensor cores)", 0},
    {B_LAYERS, "layers", 0, "LIST", "taps (default conv1_1,conv2_1,conv3_1,conv4_1,conv5_1)", 0},
    CLI_WEIGHTS_OPT,
    CLI_COMMON_OPTS,
    {0},
};

static const cli_cmd BENCH_CMD = {
    "bench",
    "[--size N] [--iters N] [--warmup N] [--threads N] [--layers LIST] [--weights DIR]\n"
    "                 [--device cpu|cuda|auto] [--precision fp32|bf16|auto|tf32]",
    "Times, on synthetic size x size images (best of --iters runs after --warmup):\n"
    "  forward           VGG19 up to the deepest layer of LIST\n"
    "  forward+backward  the same and the backward pass to the image\n"
    "  transfer step     a whole step of the seed preset with LIST as content and style\n"
    "                    layers: forward, losses, backward, Adam update\n"
    "GFLOP/s count the convolutions only, 2*H*W*Cin*Cout*9 per conv per pass.\n"
    "The last line is ms_per_step=<transfer step in ms>.",
    BENCH_OPTS,
    NULL,
};

int cmd_bench(int argc, char **argv) {
    nst_bench_config cfg;
    nst_bench_defaults(&cfg);
    tuning_init(&cfg.tuning);
    cfg.tuning.log_user = stdout; /* the GPU profile is part of the report */
    const char *weights = NULL, *layers = "conv1_1,conv2_1,conv3_1,conv4_1,conv5_1";
    cli_args args;
    int pr = cli_parse(&BENCH_CMD, argc, argv, &args);
    if (pr) return pr > 0 ? EXIT_OK : EXIT_USAGE;
    int rc = EXIT_USAGE;
    if (args.n_positional > 0) {
        fprintf(stderr, "nst: unexpected argument '%s' (try nst bench --help)\n", args.positional[0]);
        goto done;
    }
    for (int i = 0; i < args.n_items; i++) {
        const char *a = args.items[i].spelled, *v = args.items[i].value;
        long iv;
        switch (args.items[i].opt->id) {
        case B_SIZE:
            if (!parse_int(a, v, 32, 16384, &iv)) goto done;
            cfg.size = (int)iv;
            break;
        case B_ITERS:
            if (!parse_int(a, v, 1, 100000, &iv)) goto done;
            cfg.iters = (int)iv;
            break;
        case B_WARMUP:
            if (!parse_int(a, v, 0, 100000, &iv)) goto done;
            cfg.warmup = (int)iv;
            break;
        case OPT_DEVICE:
            if (!parse_device(a, v, &cfg.device)) goto done;
            break;
        case OPT_PRECISION:
            if (!parse_precision(a, v, 0, &cfg.precision)) goto done;
            break;
        case OPT_THREADS:
            if (!parse_int(a, v, 1, 1024, &iv)) goto done;
            cfg.threads = (int)iv;
            break;
        case B_LAYERS:
            if (!parse_layers(a, v, cfg.taps, &cfg.n_taps)) goto done;
            if (cfg.n_taps == 0) {
                fprintf(stderr, "nst: %s: empty list\n", a);
                goto done;
            }
            layers = v;
            break;
        case OPT_WEIGHTS: weights = v; break;
        }
    }
    rc = EXIT_FAIL;
    nst_vgg19 *net = NULL;
    nst_error err;
    int depth = 0;
    for (int i = 0; i < cfg.n_taps; i++)
        if (cfg.taps[i].layer + 1 > depth) depth = cfg.taps[i].layer + 1;
    if (nst_vgg19_load_tuned(&net, weights, depth, &cfg.tuning, &err) != NST_OK) {
        fprintf(stderr, "nst: %s\n", err.msg);
        goto done;
    }
    nst_bench_result r;
    nst_status s = nst_bench_run(&cfg, net, &r, &err);
    nst_vgg19_free(net);
    if (s != NST_OK) {
        fprintf(stderr, "nst: %s\n", err.msg);
        goto done;
    }
    int threads = cfg.threads > 0 ? cfg.threads : omp_get_max_threads();
    if (r.device == NST_DEVICE_CUDA) {
        printf("nst bench: %dx%d, CUDA on %s, kernel %s, layers %s, best of %d\n", cfg.size, cfg.size,
               r.device_name, r.kernel, layers, cfg.iters);
        printf("GPU memory: %.1f MB taken by the run, of %.1f MB\n", r.device_bytes_used / 1e6,
               r.device_bytes_total / 1e6);
    } else {
        printf("nst bench: %dx%d, %d thread%s, kernel %s, layers %s, best of %d\n", cfg.size, cfg.size, threads,
               threads == 1 ? "" : "s", r.kernel, layers, cfg.iters);
    }
    printf("activations and gradients: %.1f MB\n", r.activation_bytes / 1e6);
    printf("%-18s %9.2f ms %8.1f GFLOP/s\n", "forward", r.forward_ms, r.conv_gflop / (r.forward_ms * 1e-3));
    printf("%-18s %9.2f ms %8.1f GFLOP/s\n", "forward+backward", r.forward_backward_ms,
           2 * r.conv_gflop / (r.forward_backward_ms * 1e-3));
    printf("%-18s %9.2f ms %8.1f GFLOP/s\n", "transfer step", r.step_ms, 2 * r.conv_gflop / (r.step_ms * 1e-3));
    printf("ms_per_step=%.3f\n", r.step_ms);
    rc = EXIT_OK;
done:
    cli_args_free(&args);
    return rc;
}
