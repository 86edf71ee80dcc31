/* info_cmd.c - `nst info FILE...`: decodes each image and prints its size; exit 1 if any
 * cannot be read (the message names the file and the problem). */
#include <string.h>

#include "cli/cli.h"

int cmd_info(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs("usage: nst info FILE...\n\nDecodes each image (PNG, JPEG or PPM, EXIF orientation applied) and prints\n"
              "FILE: WIDTHxHEIGHT.\n", argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    int rc = EXIT_OK;
    for (int i = 1; i < argc; i++) {
        nst_image img = {0};
        nst_error err;
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
