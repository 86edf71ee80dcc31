/* info_cmd.c - `nst info FILE|STYLE...`: what each file is, found by its content: an
 * image (size, format, depth, alpha, profile) or a style model or checkpoint (its whole
 * record); a bare name is looked up among the shipped styles as apply does. --json for
 * scripts. Exit 1 if any cannot be read (the message names the file and the problem). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/options.h"

enum { I_JSON = OPT_FIRST_OWN, I_DEVICES };

static const cli_opt INFO_OPTS[] = {
    {I_JSON, "json", 0, NULL, "print one JSON array (an object per file) instead of text", 0},
    {I_DEVICES, "devices", 0, NULL, "whether CUDA can be used (the GPU, memory, versions; or why not)", 0},
    CLI_LIMIT_OPTS,
    CLI_COMMON_OPTS,
    {0},
};

static const cli_cmd INFO_CMD = {
    "info",
    "[options] FILE|STYLE...",
    "Says what each file is, from its content (not its name): an image (PNG, JPEG, WebP,\n"
    "TIFF, BMP, GIF, PPM: size after EXIF orientation, format, bits, alpha, colour\n"
    "profile), or a style model (.nstm) or training checkpoint: its whole record (style,\n"
    "steps, hyper-parameters, loss layers, width, the command that made it). A STYLE is the\n"
    "name of a style that ships with nst (nst apply --list).",
    INFO_OPTS,
    "Exit status: 0 when every file was read, 1 if any could not be, 2 on a usage error.\n",
};

/* A decoder of universal style transfer; 0 if arg is not one. */
static int describe_decoder(const char *arg, const nst_limits *limits, cJSON *json) {
    nst_decoder_info d;
    nst_error err;
    if (nst_decoder_info_load(&d, arg, limits, &err) != NST_OK) return 0;
    struct stat st;
    long long bytes = stat(arg, &st) == 0 ? (long long)st.st_size : -1;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "file", arg);
        cJSON_AddStringToObject(o, "type", "decoder");
        cJSON_AddNumberToObject(o, "bytes", (double)bytes);
        cJSON_AddNumberToObject(o, "level", d.level);
        cJSON_AddNumberToObject(o, "width", d.width);
        cJSON_AddNumberToObject(o, "parameters", (double)d.n_params);
        cJSON *meta = cJSON_AddObjectToObject(o, "meta");
        for (int i = 0; i < d.n_meta; i++) cJSON_AddStringToObject(meta, d.keys[i], d.values[i]);
        cJSON_AddItemToArray(json, o);
    } else {
        printf("%s: decoder of relu%d_1 (universal style transfer), %lld bytes\n", arg, d.level, bytes);
        printf("  %-16s %d\n  %-16s %zu\n", "width", d.width, "parameters", d.n_params);
        for (int i = 0; i < d.n_meta; i++)
            if (strcmp(d.keys[i], "arch") != 0) printf("  %-16s %s\n", d.keys[i], d.values[i]);
    }
    nst_decoder_info_free(&d);
    return 1;
}

static int describe_model(const char *arg, const nst_limits *limits, cJSON *json) {
    nst_style_net *sn;
    nst_error err;
    if (nst_style_net_load(&sn, arg, limits, &err) != NST_OK) {
        if (is_unknown_style(arg)) styles_unknown("info", arg);
        else if (!describe_decoder(arg, limits, json)) fprintf(stderr, "nst: %s\n", err.msg);
        else return 1;
        return 0;
    }
    const char *path = nst_style_net_path(sn), *kind = nst_style_net_meta(sn, "kind");
    struct stat st;
    long long bytes = stat(path, &st) == 0 ? (long long)st.st_size : -1;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "file", arg);
        cJSON_AddStringToObject(o, "path", path);
        cJSON_AddStringToObject(o, "type", kind && !strcmp(kind, "checkpoint") ? "checkpoint" : "model");
        cJSON_AddNumberToObject(o, "bytes", (double)bytes);
        cJSON_AddNumberToObject(o, "width", nst_style_net_width(sn));
        cJSON_AddNumberToObject(o, "res_blocks", nst_style_net_res_blocks(sn));
        cJSON *meta = cJSON_AddObjectToObject(o, "meta");
        for (int i = 0; i < nst_style_net_meta_count(sn); i++) {
            const char *k = nst_style_net_meta_key(sn, i);
            cJSON_AddStringToObject(meta, k, nst_style_net_meta(sn, k));
        }
        cJSON_AddItemToArray(json, o);
    } else {
        printf("%s: style %s, %lld bytes (%s)\n", arg, kind && !strcmp(kind, "checkpoint") ? "training checkpoint" : "network",
               bytes, path);
        printf("  %-16s %d\n  %-16s %d\n", "width", nst_style_net_width(sn), "res_blocks", nst_style_net_res_blocks(sn));
        for (int i = 0; i < nst_style_net_meta_count(sn); i++) {
            const char *k = nst_style_net_meta_key(sn, i);
            if (kind && !strcmp(k, "kind")) continue;
            printf("  %-16s %s\n", k, nst_style_net_meta(sn, k));
        }
    }
    nst_style_net_free(sn);
    return 1;
}

/* f: the format its first bytes say (AUTO for standard input, read only once) */
static int describe_image(const char *path, nst_format f, const nst_limits *limits, cJSON *json) {
    nst_image img = {0};
    nst_error err;
    if (image_read(&img, path, limits, &err) != NST_OK) {
        fprintf(stderr, "nst: %s\n", err.msg);
        return 0;
    }
    const char *name = f == NST_FORMAT_AUTO ? "image" : nst_format_name(f);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "file", path);
        cJSON_AddStringToObject(o, "type", "image");
        cJSON_AddStringToObject(o, "format", name);
        cJSON_AddNumberToObject(o, "width", img.width);
        cJSON_AddNumberToObject(o, "height", img.height);
        cJSON_AddNumberToObject(o, "bit_depth", img.bit_depth);
        cJSON_AddBoolToObject(o, "alpha", img.alpha != NULL);
        cJSON_AddNumberToObject(o, "icc_bytes", (double)img.icc_size);
        cJSON_AddNumberToObject(o, "exif_bytes", (double)img.exif_size);
        cJSON_AddItemToArray(json, o);
    } else {
        printf("%s: %dx%d %s %d-bit%s", path, img.width, img.height, name, img.bit_depth, img.alpha ? " alpha" : "");
        if (img.icc) printf(", ICC profile %zu bytes", img.icc_size);
        if (img.exif) printf(", EXIF %zu bytes", img.exif_size);
        putchar('\n');
    }
    nst_image_free(&img);
    return 1;
}

int cmd_info(int argc, char **argv) {
    cli_args args;
    int pr = cli_parse(&INFO_CMD, argc, argv, &args);
    if (pr) return pr > 0 ? EXIT_OK : EXIT_USAGE;
    int rc = EXIT_USAGE;
    cJSON *json = NULL;
    nst_limits limits;
    if (!limits_init(&limits)) goto done;
    for (int i = 0; i < args.n_items; i++)
        if (limits_item(args.items[i].spelled, args.items[i].opt->id, args.items[i].value, &limits) < 0) goto done;
    if (cli_flag(&args, I_DEVICES)) {
        char desc[512];
        nst_error why;
        nst_cuda_describe(desc, sizeof desc);
        printf("cpu: available\ncuda: %s: %s\n",
               nst_device_resolve(NST_DEVICE_CUDA, &(nst_device){0}, &why) == NST_OK ? "available" : "not available", desc);
        if (args.n_positional == 0) {
            rc = EXIT_OK;
            goto done;
        }
    }
    if (args.n_positional == 0) {
        fprintf(stderr, "nst: info needs a FILE or a STYLE name (try nst info --help)\n");
        goto done;
    }
    if (cli_flag(&args, I_JSON) && !(json = cJSON_CreateArray())) {
        fprintf(stderr, "nst: out of memory\n");
        rc = EXIT_FAIL;
        goto done;
    }
    rc = EXIT_OK;
    for (int i = 0; i < args.n_positional; i++) {
        const char *p = args.positional[i];
        unsigned char head[HEAD_BYTES];
        long n = strcmp(p, "-") == 0 ? -1 : read_head(p, head, sizeof head);
        int model = n >= 8 && memcmp(head, "NSTMODEL", 8) == 0;
        int ok;
        if (model || (strcmp(p, "-") != 0 && is_bare_name(p) && access(p, F_OK) != 0))
            ok = describe_model(p, &limits, json);
        else
            ok = describe_image(p, n > 0 ? nst_format_detect(head, (size_t)n) : NST_FORMAT_AUTO, &limits, json);
        if (!ok) rc = EXIT_FAIL;
    }
    if (json) {
        char *s = cJSON_Print(json);
        if (s) puts(s);
        free(s);
    }
done:
    cJSON_Delete(json);
    cli_args_free(&args);
    return rc;
}
