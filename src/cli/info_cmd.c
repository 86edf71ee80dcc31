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
        fputs("usage: nst info FILE...\n\nDecodes each image (PNG, JPEG or PPM, EXIF orientation applied) and prints\n"
              "FILE: WIDTHxHEIGHT; for a style model (.nstm) or a training checkpoint (.ckpt),\n"
              "FILE: style network, width W, trained N steps on STYLE.\n", argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    int rc = EXIT_OK;
    for (int i = 1; i < argc; i++) {
        nst_error err;
        if (is_model_path(argv[i])) {
            nst_style_net *sn;
            if (nst_style_net_load(&sn, argv[i], &err) != NST_OK) {
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
        if (nst_image_load(&img, argv[i], 0, &err) != NST_OK) {
            fprintf(stderr, "nst: %s\n", err.msg);
            rc = EXIT_FAIL;
            continue;
        }
        printf("%s: %dx%d\n", argv[i], img.width, img.height);
        nst_image_free(&img);
    }
    return rc;
}
