/* bench_cmd.c - `nst bench`: times the network and a whole transfer step. */
#include <omp.h>
#include <string.h>

#include "cli/cli.h"

static const char BENCH_USAGE[] =
    "usage: nst bench [--size N] [--iters N] [--warmup N] [--threads N] [--layers LIST] [--weights DIR]\n"
    "                 [--device cpu|cuda|auto] [--precision fp32|tf32]\n"
    "\n"
    "Times, on synthetic size x size images (best of --iters runs after --warmup):\n"
    "  forward           VGG19 up to the deepest layer of LIST\n"
    "  forward+backward  the same and the backward pass to the image\n"
    "  transfer step     a whole step of the seed preset with LIST as content and style\n"
    "                    layers: forward, losses, backward, Adam update\n"
    "GFLOP/s count the convolutions only, 2*H*W*Cin*Cout*9 per conv per pass.\n"
    "The last line is ms_per_step=<transfer step in ms>.\n"
    "\n"
    "  --size N      square image side (default 224)\n"
    "  --iters N     timed repetitions (default 10)\n"
    "  --warmup N    untimed repetitions first (default 2)\n"
    "  --threads N   CPU threads (default: OMP_NUM_THREADS or all cores)\n"
    "  --device D    cpu (default), cuda, or auto; on CUDA the times come from CUDA events\n"
    "                and a line gives the GPU and the memory the run took\n"
    "  --precision P fp32 (default) or tf32 (CUDA: TF32 tensor cores)\n"
    "  --layers LIST taps (default conv1_1,conv2_1,conv3_1,conv4_1,conv5_1)\n"
    "  --weights DIR VGG19 weights folder\n";

int cmd_bench(int argc, char **argv) {
    nst_bench_config cfg;
    nst_bench_defaults(&cfg);
    const char *weights = NULL, *layers = "conv1_1,conv2_1,conv3_1,conv4_1,conv5_1";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(BENCH_USAGE, stdout);
            return EXIT_OK;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "nst: %s needs a value (try nst bench --help)\n", a);
            return EXIT_USAGE;
        }
        const char *v = argv[++i];
        long iv;
        if (strcmp(a, "--size") == 0) {
            if (!parse_int(a, v, 32, 16384, &iv)) return EXIT_USAGE;
            cfg.size = (int)iv;
        } else if (strcmp(a, "--iters") == 0) {
            if (!parse_int(a, v, 1, 100000, &iv)) return EXIT_USAGE;
            cfg.iters = (int)iv;
        } else if (strcmp(a, "--warmup") == 0) {
            if (!parse_int(a, v, 0, 100000, &iv)) return EXIT_USAGE;
            cfg.warmup = (int)iv;
        } else if (strcmp(a, "--device") == 0) {
            if (!parse_device(a, v, &cfg.device)) return EXIT_USAGE;
        } else if (strcmp(a, "--precision") == 0) {
            if (!parse_precision(a, v, 0, &cfg.precision)) return EXIT_USAGE;
        } else if (strcmp(a, "--threads") == 0) {
            if (!parse_int(a, v, 1, 1024, &iv)) return EXIT_USAGE;
            cfg.threads = (int)iv;
        } else if (strcmp(a, "--layers") == 0) {
            if (!parse_layers(a, v, cfg.taps, &cfg.n_taps)) return EXIT_USAGE;
            if (cfg.n_taps == 0) {
                fprintf(stderr, "nst: --layers: empty list\n");
                return EXIT_USAGE;
            }
            layers = v;
        } else if (strcmp(a, "--weights") == 0) {
            weights = v;
        } else {
            fprintf(stderr, "nst: unknown option '%s' (try nst bench --help)\n", a);
            return EXIT_USAGE;
        }
    }
    nst_vgg19 *net = NULL;
    nst_error err;
    int depth = 0;
    for (int i = 0; i < cfg.n_taps; i++)
        if (cfg.taps[i].layer + 1 > depth) depth = cfg.taps[i].layer + 1;
    if (nst_vgg19_load(&net, weights, depth, &err) != NST_OK) {
        fprintf(stderr, "nst: %s\n", err.msg);
        return EXIT_FAIL;
    }
    nst_bench_result r;
    nst_status s = nst_bench_run(&cfg, net, &r, &err);
    nst_vgg19_free(net);
    if (s != NST_OK) {
        fprintf(stderr, "nst: %s\n", err.msg);
        return EXIT_FAIL;
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
    return EXIT_OK;
}
