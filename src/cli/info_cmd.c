/* info_cmd.c - `nst info FILE...`: decodes each image and prints its size, or loads each
 * style model (.nstm, or a checkpoint) and prints what it is; exit 1 if any cannot be
 * read (the message names the file and the problem). */
#include <string.h>

#include "cli/cli.h"

static int is_model_path(const char *path) {
    const char *dot = strrchr(path, '.');
    return dot && (strcmp(dot, ".nstm") == 0 || strcmp(dot, ".ckpt") == 0);
}

int cmd_info(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs("usage: nst info [options] FILE...\n\nDecodes each image (PNG, JPEG or PPM, EXIF orientation applied) and prints\n"
              "FILE: WIDTHxHEIGHT; for a style model (.nstm) or a training checkpoint (.ckpt),\n"
              "FILE: style network, width W, trained N steps on STYLE.\n"
              "nst info --devices: whether CUDA can be used (cuda: available: GPU, memory, versions;\n"
              "or cuda: not available: why).\n\n" LIMITS_USAGE,
              argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    if (argc == 2 && strcmp(argv[1], "--devices") == 0) {
        char desc[512];
        nst_error why;
        nst_cuda_describe(desc, sizeof desc);
        printf("cpu: available\ncuda: %s: %s\n", nst_device_resolve(NST_DEVICE_CUDA, &(nst_device){0}, &why) == NST_OK
                                                       ? "available" : "not available", desc);
        return EXIT_OK;
    }
    /* the limits first: they apply to every file, wherever they stand */
    nst_limits limits;
    if (!limits_init(&limits)) return EXIT_USAGE;
    int n_files = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--max-pixels") != 0 && strcmp(argv[i], "--max-file-mb") != 0) {
            n_files++;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "nst: %s needs a value (try nst info --help)\n", argv[i]);
            return EXIT_USAGE;
        }
        if (limits_flag(argv[i], argv[i + 1], &limits) < 0) return EXIT_USAGE;
        argv[i++] = NULL; /* not a file */
        argv[i] = NULL;
    }
    if (n_files == 0) {
        fprintf(stderr, "nst: info needs a FILE (try nst info --help)\n");
        return EXIT_USAGE;
    }
    int rc = EXIT_OK;
    for (int i = 1; i < argc; i++) {
        nst_error err;
        if (!argv[i]) continue;
        if (is_model_path(argv[i])) {
            nst_style_net *sn;
            if (nst_style_net_load(&sn, argv[i], &limits, &err) != NST_OK) {
                fprintf(stderr, "nst: %s\n", err.msg);
                rc = EXIT_FAIL;
                continue;
            }
            const char *steps = nst_style_net_meta(sn, "steps"), *style = nst_style_net_meta(sn, "style");
            const char *kind = nst_style_net_meta(sn, "kind");
            printf("%s: style %s, width %d, trained %s steps on %s\n", argv[i], kind ? kind : "network",
                   nst_style_net_width(sn), steps ? steps : "?", style ? style : "?");
            nst_style_net_free(sn);
            continue;
        }
        nst_image img = {0};
        if (nst_image_load(&img, argv[i], &limits, &err) != NST_OK) {
            fprintf(stderr, "nst: %s\n", err.msg);
            rc = EXIT_FAIL;
            continue;
        }
        printf("%s: %dx%d\n", argv[i], img.width, img.height);
        nst_image_free(&img);
    }
    return rc;
}
