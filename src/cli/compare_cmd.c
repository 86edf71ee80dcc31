/* compare_cmd.c - `nst compare REFERENCE IMAGE...`: how close each image is to the
 * reference (PSNR in dB, SSIM), e.g. a decoder's reconstruction against its photo. */
#include <math.h>
#include <stdio.h>

#include "cli/cli.h"
#include "cli/options.h"

enum { C_SIZE = OPT_FIRST_OWN };

static const cli_opt COMPARE_OPTS[] = {
    {C_SIZE, "size", 0, "N", "first scale each image whose longer side is not N px to N\n"
                            "(as nst apply --size does: a reconstruction made at --size N is\n"
                            "compared with its photo at that size)", 0},
    CLI_LIMIT_OPTS,
    CLI_COMMON_OPTS,
    {0},
};

static const cli_cmd COMPARE_CMD = {
    "compare",
    "[options] REFERENCE IMAGE...",
    "Prints, for each IMAGE, its PSNR (dB, over RGB 0..255; inf when identical) and SSIM\n"
    "(of the luma, Wang et al. 2004's 11-tap Gaussian window) against REFERENCE. The images\n"
    "must be of the reference's size.",
    COMPARE_OPTS,
    "Output: one line per image, 'IMAGE psnr P ssim S'.\n"
    "Exit status: 0 when every image was compared, 1 if any could not be, 2 on a usage error.\n",
};

/* img scaled so that its longer side is size (0: as it is); 0 on failure */
static int scale_to(nst_image *img, int size, nst_error *err) {
    if (size <= 0 || (img->width > img->height ? img->width : img->height) == size) return 1;
    int w, h;
    nst_image scaled = {0};
    nst_image_fit_size(img->width, img->height, size, &w, &h);
    if (nst_image_resize(&scaled, img, w, h, err) != NST_OK) return 0;
    nst_image_free(img);
    *img = scaled;
    return 1;
}

int cmd_compare(int argc, char **argv) {
    cli_args args;
    int pr = cli_parse(&COMPARE_CMD, argc, argv, &args);
    if (pr) return pr > 0 ? EXIT_OK : EXIT_USAGE;
    int rc = EXIT_USAGE;
    nst_limits limits;
    nst_image ref = {0};
    nst_error err;
    if (!limits_init(&limits)) goto done;
    int size = 0;
    for (int i = 0; i < args.n_items; i++) {
        const cli_item *it = &args.items[i];
        int r = limits_item(it->spelled, it->opt->id, it->value, &limits);
        if (r < 0) goto done;
        long iv;
        if (!r && it->opt->id == C_SIZE) {
            if (!parse_int(it->spelled, it->value, 1, NST_MAX_DIMENSION, &iv)) goto done;
            size = (int)iv;
        }
    }
    if (args.n_positional < 2) {
        fprintf(stderr, "nst: compare needs a reference and at least one image (try nst compare --help)\n");
        goto done;
    }
    rc = EXIT_FAIL;
    if (image_read(&ref, args.positional[0], &limits, &err) != NST_OK || !scale_to(&ref, size, &err)) {
        fprintf(stderr, "nst: %s\n", err.msg);
        goto done;
    }
    rc = EXIT_OK;
    for (int i = 1; i < args.n_positional; i++) {
        const char *path = args.positional[i];
        nst_image img = {0};
        double psnr, ssim;
        if (image_read(&img, path, &limits, &err) != NST_OK || !scale_to(&img, size, &err) || nst_image_psnr(&ref, &img, &psnr, &err) != NST_OK ||
            nst_image_ssim(&ref, &img, &ssim, &err) != NST_OK) {
            fprintf(stderr, "nst: %s: %s\n", path, err.msg);
            rc = EXIT_FAIL;
        } else {
            printf("%s psnr %.3f ssim %.5f\n", path, psnr, ssim);
        }
        nst_image_free(&img);
    }
done:
    nst_image_free(&ref);
    cli_args_free(&args);
    return rc;
}
