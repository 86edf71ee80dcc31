/* apply_cmd.c - `nst apply`: stylise photos with a trained style network. Every input
 * and output is settled before the first photo: no output replaces an input, and two
 * photos of the same name get distinct outputs. */
#include <dirent.h>
#include <errno.h>
#include <unistd.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/options.h"

enum {
    A_MODEL = OPT_FIRST_OWN, A_OUTPUT, A_OUT_DIR, A_SIZE, A_PRESERVE, A_STRENGTH, A_BLEND, A_SHEET, A_LIST, A_STYLE,
    A_METHOD, A_DECODERS, A_STYLE_SIZE, A_LEVELS
};

#define MAX_BLEND 64

static const cli_opt APPLY_OPTS[] = {
    {A_MODEL, "model", 'm', "MODEL|NAME", "a model file (.nstm), or the name of a style that ships\n"
                                          "with nst (nst apply --list shows them: a style inside a\n"
                                          "file of several too); of a file of several styles,\n"
                                          "FILE.nstm:NAME, or A,B,... with --blend", 0},
    {A_STYLE, "style", 's', "PAINTING[,...]", "instead of --model: any painting, in one pass (universal style\n"
                                                 "transfer with the decoders nst train --decoder makes); several\n"
                                                 "with --blend", 0},
    {A_METHOD, "method", 0, "wct|adain", "with --style: WCT level by level (default; --levels), or\n"
                                         "AdaIN at relu4_1 only (faster, plainer)", 0},
    {A_DECODERS, "decoders", 0, "DIR", "with --style: the decoders' folder (relu1_1.nstm ..\n"
                                       "relu5_1.nstm; default: models/" NST_DECODERS_DIR "/)", 0},
    {A_STYLE_SIZE, "style-size", 0, "N", "with --style: the painting's longer side, in px (default 512)", 0},
    {A_LEVELS, "levels", 0, "K", "with --style: WCT from relu<K>_1 down (default 4; 1..3 keep\n"
                                 "more of the photo, 5 repaints it the most)", 0},
    {A_BLEND, "blend", 0, "W,W,...", "weights of the styles named in --model: their mix (of one\n"
                                      "network of several styles: its norms' scales and shifts)", 0},
    {A_OUTPUT, "output", 'o', "FILE", "the result (one photo): .png, .jpg, .webp or .tif; a folder\n"
                                      "gets PHOTO_STYLE.png inside; - for standard output", 0},
    {A_OUT_DIR, "out-dir", 0, "DIR", "results go to DIR/<photo name> (several photos, or folders:\n"
                                     "every image in them, found by content)", 0},
    {A_SIZE, "size", 0, "N", "rescale so that the longer side is N pixels first\n"
                             "(default: the photo's own size)", 0},
    {A_PRESERVE, "preserve-colors", 0, NULL, "keep the photo's colours (style in luminance only)", 0},
    {A_STRENGTH, "strength", 0, "S", "how much of the style, 0..1: the result mixed with the photo\n"
                                     "(default 1: all of it)", 0},
    CLI_OUTPUT_OPTS,
    CLI_THREADS_OPT,
    {OPT_DEVICE, "device", 0, "auto|cpu|cuda", "where the network runs (default auto: CUDA when this nst\n"
                                               "has it and a GPU is there, else the CPU)", 0},
    {OPT_PRECISION, "precision", 0, "P", "arithmetic: auto (default) is bf16 on CPUs with AMX or\n"
                                         "AVX512-BF16, else fp32 (on CUDA: fp32); fp32; bf16; on\n"
                                         "CUDA tf32 (TF32 tensor cores: faster, ~1e-3 relative)\n"
                                         "or fp16 (fp16 activations and tensor cores: fastest)", 0},
    CLI_WEIGHTS_OPT,
    CLI_LIMIT_OPTS,
    {A_LIST, "list", 0, NULL, "list the styles that ship with nst", 0},
    {A_SHEET, "sheet", 0, NULL, "every style that ships, on one photo: a tile each, named,\n"
                                "into -o FILE (tiles --size px, default 320)", 0},
    CLI_QUIET_OPT,
    CLI_COMMON_OPTS,
    {0},
};

static const cli_cmd APPLY_CMD = {
    "apply",
    "--model MODEL|NAME | --style PAINTING [-o FILE | --out-dir DIR] [options] FILE|DIR...",
    "Stylises photos with a style network trained by nst train (one forward pass each),\n"
    "or with any painting (--style: universal style transfer, Li et al. 2017).",
    APPLY_OPTS,
    "Photos of the same name from different folders get distinct outputs (photo.jpg,\n"
    "photo_2.jpg, ...); an output that would replace an input stops the run before it starts.\n"
    "Exit status: 0 success, 2 usage error, 1 any other failure (other photos are still done).\n",
};

/* One photo to do: where it comes from, where it goes, or why it is skipped. */
typedef struct {
    char *in;
    char *out;
    const char *skip; /* a reason, or NULL */
} job;

typedef struct {
    job *v;
    int n, cap;
} job_list;

static job *jobs_add(job_list *l, const char *in, const char *skip) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        job *p = realloc(l->v, (size_t)cap * sizeof *p);
        if (!p) return NULL;
        l->v = p;
        l->cap = cap;
    }
    job *j = &l->v[l->n];
    if (!(j->in = strdup(in))) return NULL;
    j->out = NULL;
    j->skip = skip;
    l->n++;
    return j;
}

static void jobs_free(job_list *l) {
    for (int i = 0; i < l->n; i++) {
        free(l->v[i].in);
        free(l->v[i].out);
    }
    free(l->v);
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Is the file an image, by its first bytes? */
static const char *why_not_image(const char *path) {
    unsigned char head[HEAD_BYTES];
    long n = read_head(path, head, sizeof head);
    if (n < 0) return "cannot be opened";
    return nst_format_detect(head, (size_t)n) == NST_FORMAT_AUTO ? "not an image" : NULL;
}

/* A folder: each entry, sorted by name; what is not an image is a skipped job. */
static int add_folder(job_list *l, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "nst: %s: cannot read the folder\n", dir);
        return 0;
    }
    char **names = NULL;
    int n = 0, cap = 0, ok = 1;
    struct dirent *e;
    while ((e = readdir(d)) && ok) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (n == cap) {
            char **p = realloc(names, (size_t)(cap ? 2 * cap : 64) * sizeof *p);
            if (!p) { ok = 0; break; }
            names = p;
            cap = cap ? 2 * cap : 64;
        }
        if (!(names[n] = strdup(e->d_name))) ok = 0;
        else n++;
    }
    closedir(d);
    if (n) qsort(names, (size_t)n, sizeof *names, by_name);
    for (int i = 0; i < n && ok; i++) {
        size_t len = strlen(dir) + strlen(names[i]) + 2;
        char *path = malloc(len);
        if (!path) { ok = 0; break; }
        snprintf(path, len, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", names[i]);
        struct stat st;
        const char *skip = NULL;
        if (names[i][0] == '.') skip = "a hidden file";
        else if (stat(path, &st) != 0) skip = "cannot be read";
        else if (S_ISDIR(st.st_mode)) skip = "a folder (folders inside are not read)";
        else if (!S_ISREG(st.st_mode)) skip = "not a regular file";
        else skip = why_not_image(path);
        ok = jobs_add(l, path, skip) != NULL;
        free(path);
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    if (!ok) fprintf(stderr, "nst: %s: out of memory listing the folder\n", dir);
    return ok;
}

/* The extension of an output in a folder: the photo's, if nst writes it; else png. */
static const char *out_extension(const char *in, nst_format forced) {
    if (forced != NST_FORMAT_AUTO) return format_extension(forced);
    const char *base = strrchr(in, '/');
    base = base ? base + 1 : in;
    const char *dot = strrchr(base, '.');
    nst_format f;
    nst_error err;
    if (dot && dot != base && nst_format_for_path(base, &f, &err) == NST_OK) return dot;
    return ".png";
}

/* Gives each job its output in dir: DIR/STEM.EXT, or DIR/STEM_2.EXT ... when an earlier
 * photo of this run already goes there. */
static int plan_out_dir(job_list *l, const char *dir, nst_format forced, int quiet) {
    for (int k = 0; k < l->n; k++) {
        job *j = &l->v[k];
        if (j->skip) continue;
        char stem[256];
        path_stem(j->in, stem, sizeof stem);
        const char *ext = out_extension(j->in, forced);
        size_t len = strlen(dir) + strlen(stem) + strlen(ext) + 32;
        if (!(j->out = malloc(len))) return 0;
        int copy;
        for (copy = 1;; copy++) {
            if (copy == 1) snprintf(j->out, len, "%s/%s%s", dir, stem, ext);
            else snprintf(j->out, len, "%s/%s_%d%s", dir, stem, copy, ext);
            int taken = 0;
            for (int i = 0; i < k && !taken; i++) taken = l->v[i].out && strcmp(l->v[i].out, j->out) == 0;
            if (!taken) break;
        }
        if (!quiet && copy > 1)
            fprintf(stderr, "nst: %s: another photo of this name comes first: writing %s\n", j->in, j->out);
    }
    return 1;
}

/* The files first (their styles under each of several), a style that a name hides
 * shown as FILE:NAME. */
static void list_styles(const nst_limits *limits) {
    nst_style_entry *v;
    int n = styles_find(&v);
    for (int i = 0; i < n; i++) {
        if (v[i].n_styles > 1 && v[i].style >= 0) continue; /* under its file */
        nst_style_net *sn;
        nst_error err;
        if (nst_style_net_load(&sn, v[i].path, limits, &err) != NST_OK) {
            printf("%-16s (cannot be loaded: %s)\n", v[i].name, err.msg);
            continue;
        }
        const char *style = nst_style_net_meta(sn, "style"), *steps = nst_style_net_meta(sn, "steps");
        int ns = nst_style_net_styles(sn);
        if (ns > 1) {
            printf("%-16s width %-3d %s steps on %d paintings, %s\n", v[i].name, nst_style_net_width(sn),
                   steps ? steps : "?", ns, v[i].path);
            for (int k = 0; k < ns; k++) {
                const char *name = nst_style_net_style_name(sn, k);
                int bare = 0; /* does the name alone find this style? */
                for (int j = 0; j < n; j++)
                    bare |= strcmp(v[j].name, name) == 0 && v[j].style == k && strcmp(v[j].path, v[i].path) == 0;
                if (bare) printf("  %s\n", name);
                else printf("  %s:%s\n", v[i].name, name);
            }
        } else {
            printf("%-16s width %-3d %s steps on %-28s %s\n", v[i].name, nst_style_net_width(sn), steps ? steps : "?",
                   style ? style : "?", v[i].path);
        }
        nst_style_net_free(sn);
    }
    if (n == 0) fprintf(stderr, "nst: no styles found in $" NST_MODELS_ENV " or models/\n");
    free(v);
}

/* --style: the VGG19, the decoders, the paintings (scaled to style_size) encoded once;
 * 0 after printing the one-line error. */
static int load_universal(nst_universal **uni, nst_vgg19 **vgg, const char *weights, const char *decoders,
                          const char *const *paintings, int n, const float *blend, nst_universal_method method,
                          int style_size, int levels, const nst_limits *limits, const nst_tuning *tuning,
                          nst_precision precision, int quiet) {
    nst_error err;
    nst_image img[16] = {{0}};
    const nst_image *ptr[16];
    int ok = 0;
    double t0 = omp_get_wtime();
    if (nst_vgg19_load_tuned(vgg, weights, nst_layer_index("relu5_1") + 1, tuning, &err) != NST_OK) goto fail;
    if (nst_universal_load(uni, *vgg, decoders, limits, &err) != NST_OK) goto fail;
    if (nst_universal_set_precision(*uni, precision, tuning, &err) != NST_OK) goto fail;
    if (method == NST_UNIVERSAL_WCT && nst_universal_set_levels(*uni, levels, &err) != NST_OK) goto fail;
    for (int k = 0; k < n; k++) {
        nst_image raw = {0};
        int w, h;
        if (image_read(&raw, paintings[k], limits, &err) != NST_OK) goto fail;
        nst_image_fit_size(raw.width, raw.height, style_size, &w, &h);
        nst_status s = nst_image_resize(&img[k], &raw, w, h, &err);
        nst_image_free(&raw);
        if (s) goto fail;
        ptr[k] = &img[k];
    }
    if (nst_universal_set_styles(*uni, ptr, blend, n, method, &err) != NST_OK) goto fail;
    if (nst_universal_note(*uni) && !quiet) fprintf(stderr, "nst: note: %s\n", nst_universal_note(*uni));
    if (!quiet)
        fprintf(stderr, "nst: %d painting%s encoded at %d px with the decoders of %s (%.2f s)\n", n, n == 1 ? "" : "s",
                style_size, nst_universal_dir(*uni), omp_get_wtime() - t0);
    ok = 1;
    goto done;
fail:
    fprintf(stderr, "nst: %s\n", err.msg);
done:
    for (int k = 0; k < n; k++) nst_image_free(&img[k]);
    return ok;
}

/* --sheet: every shipped style (each style of a file of several) on one photo, scaled
 * to size px, a tile each with its name under it, the photo first; into out. */
static int make_sheet(const char *photo, const char *out, int size, const nst_limits *limits,
                      const nst_save_options *save, nst_device device, nst_precision precision,
                      const nst_tuning *tuning, int quiet) {
    enum { MAX_TILES = 257 };
    nst_style_entry *v;
    int n = styles_find(&v), n_tiles = 0, ok = 0, bad = 0;
    nst_image img = {0}, sheet = {0}, tiles[MAX_TILES] = {{0}}; /* tiles[0]: the photo, scaled */
    char labels[MAX_TILES][128];
    nst_error err;
    if (n == 0) {
        fprintf(stderr, "nst: --sheet: no styles found in $" NST_MODELS_ENV " or models/\n");
        goto done;
    }
    if (image_read(&img, photo, limits, &err) != NST_OK) goto fail;
    int w, h;
    nst_image_fit_size(img.width, img.height, size, &w, &h);
    if (nst_image_resize(&tiles[0], &img, w, h, &err) != NST_OK) goto fail;
    snprintf(labels[0], sizeof labels[0], "photo");
    n_tiles = 1;
    for (int i = 0; i < n && n_tiles < MAX_TILES; i++) {
        if (v[i].n_styles > 1 && v[i].style >= 0) continue; /* with its file */
        nst_style_net *sn = NULL;
        if (nst_style_net_load(&sn, v[i].path, limits, &err) != NST_OK || nst_style_net_set_tuning(sn, tuning, &err) ||
            nst_style_net_set_device(sn, device, precision, &err)) {
            nst_style_net_free(sn);
            goto fail;
        }
        int ns = nst_style_net_styles(sn);
        for (int k = 0; k < ns && n_tiles < MAX_TILES; k++) {
            if (ns > 1) {
                float one[256] = {0};
                one[k] = 1.0f;
                if ((bad = nst_style_net_set_mix(sn, one, &err) != NST_OK)) break;
            }
            double t0 = omp_get_wtime();
            if ((bad = nst_style_net_apply(sn, &tiles[0], &tiles[n_tiles], &err) != NST_OK)) break;
            snprintf(labels[n_tiles], sizeof labels[n_tiles], "%s", ns > 1 ? nst_style_net_style_name(sn, k) : v[i].name);
            if (!quiet)
                fprintf(stderr, "nst: [%d] %s (%.3f s)\n", n_tiles, labels[n_tiles], omp_get_wtime() - t0);
            n_tiles++;
        }
        nst_style_net_free(sn);
        if (bad) goto fail;
    }
    /* a grid as square as the tiles allow, a caption under each */
    int cols = 1;
    while (cols * cols < n_tiles) cols++;
    int rows = (n_tiles + cols - 1) / cols, scale = w >= 200 ? 2 : 1, gap = 4 * scale, cap = 7 * scale + 2 * gap;
    if (nst_image_alloc(&sheet, cols * (w + gap) + gap, rows * (h + cap) + gap, &err) != NST_OK) goto fail;
    for (size_t i = 0; i < (size_t)3 * sheet.width * sheet.height; i++) sheet.pixels[i] = 255.0f;
    const float ink[3] = {20.0f, 20.0f, 20.0f};
    for (int t = 0; t < n_tiles; t++) {
        int x0 = gap + (t % cols) * (w + gap), y0 = gap + (t / cols) * (h + cap);
        for (int y = 0; y < h; y++)
            memcpy(sheet.pixels + ((size_t)(y0 + y) * sheet.width + x0) * 3, tiles[t].pixels + (size_t)y * w * 3,
                   (size_t)w * 3 * sizeof(float));
        char *label = labels[t];
        while (strlen(label) > 1 && nst_text_width(label, scale) > w) label[strlen(label) - 1] = '\0';
        nst_image_draw_text(&sheet, x0 + (w - nst_text_width(label, scale)) / 2, y0 + h + gap, label, scale, ink);
    }
    if (image_write(&sheet, out, save, &err) != NST_OK) goto fail;
    if (!quiet) fprintf(stderr, "nst: wrote %s (%d styles on %s, %dx%d)\n", out, n_tiles - 1, photo, sheet.width, sheet.height);
    ok = 1;
    goto done;
fail:
    fprintf(stderr, "nst: %s\n", err.msg);
done:
    for (int t = 0; t < n_tiles; t++) nst_image_free(&tiles[t]);
    nst_image_free(&img);
    nst_image_free(&sheet);
    free(v);
    return ok;
}

/* --model FILE:A,B,... --blend WA,WB,...: the mix of those styles of one network of
 * several (items: "FILE:A", "B", ...; FILE:A is loaded). Separate networks are not mixed:
 * their convolutions differ, so there is no one network to run (mix their results instead). */
static int blend_styles(nst_style_net *sn, char **items, int count, const float *w, int n_w) {
    int n = nst_style_net_styles(sn);
    if (n < 2) {
        fprintf(stderr, "nst: --blend: %s holds one style; a blend mixes the styles of one network trained on several\n",
                nst_style_net_path(sn));
        return 0;
    }
    const char *colon = strrchr(items[0], ':');
    if (colon) items[0] = (char *)colon + 1; /* FILE:A -> A */
    float *mix = calloc((size_t)n, sizeof *mix);
    int ok = mix != NULL;
    if (ok && count != n_w) {
        fprintf(stderr, "nst: --blend: %d weights for %d styles\n", n_w, count);
        ok = 0;
    }
    for (int i = 0; i < count && ok; i++) {
        int k = 0;
        while (k < n && strcmp(nst_style_net_style_name(sn, k), items[i]) != 0) k++;
        if (k == n) {
            fprintf(stderr, "nst: --model: %s has no style '%s'\n", nst_style_net_path(sn), items[i]);
            ok = 0;
        } else {
            mix[k] += w[i];
        }
    }
    nst_error err;
    if (ok && nst_style_net_set_mix(sn, mix, &err) != NST_OK) {
        fprintf(stderr, "nst: --blend: %s\n", err.msg);
        ok = 0;
    }
    free(mix);
    return ok;
}

int cmd_apply(int argc, char **argv) {
    cli_args args;
    int pr = cli_parse(&APPLY_CMD, argc, argv, &args);
    if (pr) return pr > 0 ? EXIT_OK : EXIT_USAGE;
    const char *model = NULL, *output = NULL, *out_dir = NULL, *style = NULL, *decoders = NULL, *weights = NULL;
    int style_size = 512, levels = NST_UNIVERSAL_LEVELS;
    nst_universal_method method = NST_UNIVERSAL_WCT;
    nst_universal *uni = NULL;
    nst_vgg19 *vgg = NULL;
    char **paintings = NULL;
    int n_paintings = 0;
    int quiet = 0, preserve = 0, size = 0, threads = 0;
    float strength = 1.0f, blend[MAX_BLEND];
    int n_blend = 0;
    char **model_items = NULL; /* --model FILE:A,B,...: "FILE:A", "B", ... (FILE:A is loaded) */
    int n_model_items = 0;
    job_list jobs = {0};
    input_set inputs = {0};
    nst_style_net *sn = NULL;
    int rc = EXIT_USAGE;
    nst_device device = NST_DEVICE_AUTO;
    nst_precision precision = NST_PRECISION_AUTO; /* bf16 where the CPU has it */
    nst_save_options save = {0};
    nst_limits limits;
    if (!limits_init(&limits)) goto done;
    nst_tuning tuning;
    tuning_init(&tuning);
    for (int i = 0; i < args.n_items; i++) {
        const cli_item *it = &args.items[i];
        const char *a = it->spelled, *v = it->value;
        long iv;
        double fv;
        int r = limits_item(a, it->opt->id, v, &limits);
        if (!r) r = output_item(a, it->opt->id, v, &save);
        if (r < 0) goto done;
        if (r > 0) continue;
        switch (it->opt->id) {
        case OPT_QUIET: quiet = 1; break;
        case A_LIST: break; /* below, once the limits are known */
        case A_SHEET: break;
        case A_PRESERVE: preserve = 1; break;
        case A_BLEND:
            if ((n_blend = parse_float_list(a, v, blend, MAX_BLEND)) < 0) goto done;
            break;
        case A_STRENGTH:
            if (!parse_float(a, v, 0.0, 1.0, &fv)) goto done;
            strength = (float)fv;
            break;
        case A_MODEL: model = v; break;
        case A_STYLE: style = v; break;
        case A_DECODERS: decoders = v; break;
        case OPT_WEIGHTS: weights = v; break;
        case A_METHOD:
            if (strcmp(v, "wct") == 0) method = NST_UNIVERSAL_WCT;
            else if (strcmp(v, "adain") == 0) method = NST_UNIVERSAL_ADAIN;
            else {
                fprintf(stderr, "nst: %s %s: the methods are wct and adain\n", a, v);
                goto done;
            }
            break;
        case A_STYLE_SIZE:
            if (!parse_int(a, v, 16, 8192, &iv)) goto done;
            style_size = (int)iv;
            break;
        case A_LEVELS:
            if (!parse_int(a, v, 1, 5, &iv)) goto done;
            levels = (int)iv;
            break;
        case A_OUTPUT: output = v; break;
        case A_OUT_DIR: out_dir = v; break;
        case A_SIZE:
            if (!parse_int(a, v, 1, NST_MAX_DIMENSION, &iv)) goto done;
            size = (int)iv;
            break;
        case OPT_THREADS:
            if (!parse_int(a, v, 1, 1024, &iv)) goto done;
            threads = (int)iv;
            break;
        case OPT_DEVICE:
            if (!parse_device(a, v, &device)) goto done;
            break;
        case OPT_PRECISION:
            if (!parse_precision(a, v, 1, &precision)) goto done;
            break;
        }
    }
    if (cli_flag(&args, A_LIST)) {
        list_styles(&limits);
        rc = EXIT_OK;
        goto done;
    }
    if (cli_flag(&args, A_SHEET)) {
        if (args.n_positional != 1 || !output || out_dir || model) {
            fprintf(stderr, "nst: --sheet takes one photo and -o FILE (and no --model: it shows every style)\n");
            goto done;
        }
        const char *photo = args.positional[0];
        char buf[8448], stem[256], name[300];
        path_stem(photo, stem, sizeof stem);
        snprintf(name, sizeof name, "%s_sheet%s", stem, format_extension(save.format));
        if (strcmp(photo, "-") != 0 && !inputs_add(&inputs, photo, "the photo")) { rc = EXIT_FAIL; goto done; }
        if ((rc = output_prepare("-o", output, name, &save, &inputs, buf, sizeof buf))) goto done;
        rc = EXIT_USAGE;
        nst_device dev;
        nst_error err;
        if (nst_device_resolve(device, &dev, &err) != NST_OK) {
            fprintf(stderr, "nst: %s\n", err.msg);
            goto done;
        }
        char label[64];
        if (!cli_precision(dev, &precision, &tuning, label, sizeof label)) goto done;
        if (threads > 0) omp_set_num_threads(threads);
        rc = make_sheet(photo, buf, size > 0 ? size : 320, &limits, &save, device, precision, &tuning, quiet) ? EXIT_OK
                                                                                                       : EXIT_FAIL;
        goto done;
    }
    if (model && style) {
        fprintf(stderr, "nst: --model and --style: one or the other (a trained network, or any painting)\n");
        goto done;
    }
    if (style && device == NST_DEVICE_CUDA) {
        fprintf(stderr, "nst: --style runs on the CPU: universal style transfer has no CUDA path yet (--device cpu)\n");
        goto done;
    }
    if (!style && (decoders || cli_flag(&args, A_METHOD) || cli_flag(&args, A_STYLE_SIZE) || cli_flag(&args, A_LEVELS))) {
        fprintf(stderr, "nst: --method, --decoders, --style-size and --levels go with --style PAINTING\n");
        goto done;
    }
    if (method == NST_UNIVERSAL_ADAIN && cli_flag(&args, A_LEVELS)) {
        fprintf(stderr, "nst: --levels is WCT's (AdaIN runs at relu4_1 only)\n");
        goto done;
    }
    if ((!model && !style) || args.n_positional == 0 || (!output && !out_dir) || (output && out_dir)) {
        fprintf(stderr, "nst: apply needs %s (try nst apply --help)\n",
                !model && !style ? "--model MODEL|NAME or --style PAINTING" : args.n_positional == 0 ? "one or more photos or folders"
                : output && out_dir ? "one of -o FILE or --out-dir DIR, not both" : "-o FILE or --out-dir DIR");
        goto done;
    }

    /* --style A,B --blend WA,WB: the paintings and their weights */
    if (style) {
        if ((n_paintings = cli_split_list("--style", style, &paintings, 16)) < 0) goto done;
        if (n_paintings > 1 && n_blend != n_paintings) {
            fprintf(stderr, "nst: --style names %d paintings: give %s weights with --blend W,W,...\n", n_paintings,
                    n_blend ? "as many" : "their");
            goto done;
        }
        if (n_paintings == 1 && n_blend) {
            fprintf(stderr, "nst: --blend needs several paintings in --style (A,B,...)\n");
            goto done;
        }
        if (n_blend == 0) blend[0] = 1.0f;
        for (int k = 0; k < n_paintings; k++)
            if (!inputs_add(&inputs, paintings[k], "a style image")) { rc = EXIT_FAIL; goto done; }
    }
    /* --model FILE:A,B,... --blend WA,WB,...: FILE:A is loaded, the weights go to the names */
    const char *comma = model ? strchr(model, ',') : NULL;
    if (model && (comma || n_blend)) {
        if (!comma || !n_blend) {
            fprintf(stderr, "nst: %s\n", comma ? "--model names several styles: give their weights with --blend W,W,..."
                                                : "--blend needs several styles in --model (FILE.nstm:A,B,...)");
            goto done;
        }
        if ((n_model_items = cli_split_list("--model", model, &model_items, MAX_BLEND)) < 0) goto done;
        model = model_items[0];
    }

    /* the photos: files as given, folders by content; the same file twice is done once */
    int from_stdin = 0;
    for (int i = 0; i < args.n_positional; i++) {
        const char *p = args.positional[i];
        struct stat st;
        int ok;
        from_stdin += strcmp(p, "-") == 0;
        if (strcmp(p, "-") != 0 && stat(p, &st) == 0 && S_ISDIR(st.st_mode)) ok = add_folder(&jobs, p);
        else ok = jobs_add(&jobs, p, NULL) != NULL;
        if (!ok) { rc = EXIT_FAIL; goto done; }
    }
    if (from_stdin > 1) {
        fprintf(stderr, "nst: standard input (-) can be read once\n");
        goto done;
    }
    for (int k = 0; k < jobs.n; k++) {
        job *j = &jobs.v[k];
        if (j->skip) continue;
        const input_file *seen = inputs_find(&inputs, j->in);
        if (seen) {
            j->skip = "given twice (done once)";
            continue;
        }
        if (!inputs_add(&inputs, j->in, "an input photo")) { rc = EXIT_FAIL; goto done; }
    }
    int todo = 0;
    for (int k = 0; k < jobs.n; k++) todo += !jobs.v[k].skip;
    if (todo == 0) { /* only folders without images: say so in one line, and fail (nothing was done) */
        char why[700] = "empty";
        if (jobs.n)
            snprintf(why, sizeof why, "%d %s skipped; %.400s: %.150s", jobs.n, jobs.n == 1 ? "entry" : "entries",
                     jobs.v[0].in, jobs.v[0].skip);
        fprintf(stderr, "nst: %s: no image to stylise (%s)\n",
                args.n_positional == 1 ? args.positional[0] : "the folders given", why);
        goto done;
    }
    if (output && todo > 1) {
        fprintf(stderr, "nst: -o takes one photo; use --out-dir DIR for %d\n", todo);
        goto done;
    }

    /* the model before the outputs: a mistyped style name is the likelier mistake */
    nst_error err;
    char mstem[256];
    if (style) {
        path_stem(paintings[0], mstem, sizeof mstem); /* (loaded once the outputs are checked) */
    } else if (nst_style_net_load(&sn, model, &limits, &err) != NST_OK) {
        if (is_unknown_style(model)) {
            styles_unknown("--model", model);
            rc = EXIT_USAGE;
        } else {
            fprintf(stderr, "nst: %s\n", err.msg);
            rc = EXIT_FAIL;
        }
        goto done;
    }
    if (sn && !inputs_add(&inputs, nst_style_net_path(sn), "the model file")) { rc = EXIT_FAIL; goto done; }
    if (model_items && !blend_styles(sn, model_items, n_model_items, blend, n_blend)) goto done;
    if (model) path_stem(model, mstem, sizeof mstem);

    /* every output settled and checked before the first photo */
    if (output) {
        for (int k = 0; k < jobs.n; k++) {
            job *j = &jobs.v[k];
            if (j->skip) continue;
            char name[600], stem[256], buf[8448];
            path_stem(j->in, stem, sizeof stem);
            snprintf(name, sizeof name, "%s_%s%s", stem, mstem, format_extension(save.format));
            if ((rc = output_prepare("-o", output, name, &save, &inputs, buf, sizeof buf))) goto done;
            if (!(j->out = strdup(buf))) { rc = EXIT_FAIL; goto done; }
        }
    } else {
        struct stat st;
        if (stat(out_dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
            fprintf(stderr, "nst: --out-dir %s: is a file, not a folder\n", out_dir);
            goto done;
        }
        if (!plan_out_dir(&jobs, out_dir, save.format, quiet)) { rc = EXIT_FAIL; goto done; }
        for (int k = 0; k < jobs.n; k++) {
            job *j = &jobs.v[k];
            if (j->skip) continue;
            const input_file *in = inputs_find(&inputs, j->out);
            if (in) {
                fprintf(stderr, "nst: --out-dir %s: %s would replace %s (%s); an output never replaces an input "
                        "(choose another folder)\n", out_dir, j->out, in->role, in->path);
                goto done;
            }
            nst_save_options o = save;
            if (o.format == NST_FORMAT_AUTO) {
                nst_format f;
                if (nst_format_for_path(j->out, &f, &err) == NST_OK) o.format = f;
            }
            if (!bit_depth_fits(&o, j->out)) goto done;
        }
        if (stat(out_dir, &st) != 0 && mkdir(out_dir, 0777) != 0) {
            fprintf(stderr, "nst: --out-dir %s: cannot create the folder\n", out_dir);
            rc = EXIT_FAIL;
            goto done;
        }
        if (access(out_dir, W_OK | X_OK) != 0) {
            fprintf(stderr, "nst: --out-dir %s: cannot write into the folder: %s\n", out_dir, strerror(errno));
            rc = EXIT_FAIL;
            goto done;
        }
    }
    rc = EXIT_FAIL;
    /* the nst command owns its process: apply's thread count is process-wide */
    if (threads > 0) omp_set_num_threads(threads);
    char prec_label[64] = "";
    {
        nst_device dev;
        if (nst_device_resolve(style ? NST_DEVICE_CPU : device, &dev, &err) != NST_OK) {
            fprintf(stderr, "nst: %s\n", err.msg);
            goto done;
        }
        if (!cli_precision(dev, &precision, &tuning, prec_label, sizeof prec_label)) {
            rc = EXIT_USAGE;
            goto done;
        }
    }
    if (style && !load_universal(&uni, &vgg, weights, decoders, (const char *const *)paintings, n_paintings, blend,
                                 method, style_size, levels, &limits, &tuning, precision, quiet))
        goto done;
    if (sn && (nst_style_net_set_tuning(sn, &tuning, &err) != NST_OK ||
               nst_style_net_set_device(sn, device, precision, &err) != NST_OK)) {
        fprintf(stderr, "nst: %s\n", err.msg);
        goto done;
    }
    if (!quiet && todo > 1 && uni) {
        fprintf(stderr, "nst: %s (universal, %s, decoders of %d levels) on %d photos -> %s; %d thread%s%s\n", style,
                method == NST_UNIVERSAL_ADAIN ? "AdaIN" : "WCT",
                method == NST_UNIVERSAL_ADAIN ? 1 : __builtin_popcount(nst_universal_levels(uni) & ((2 << levels) - 1)), todo,
                output ? output : out_dir, threads_in_use(threads), threads_in_use(threads) == 1 ? "" : "s",
                prec_label);
    } else if (!quiet && todo > 1) { /* a batch says what it will do; one photo says what it did */
        const char *style = nst_style_net_meta(sn, "style");
        char about[512] = "the CPU";
        if (nst_style_net_device(sn) == NST_DEVICE_CUDA) nst_cuda_describe(about, sizeof about);
        fprintf(stderr, "nst: %s (style %s, width %d) on %d photo%s -> %s; %d thread%s on %s%s\n", mstem,
                style ? style : "?", nst_style_net_width(sn), todo, todo == 1 ? "" : "s", output ? output : out_dir,
                threads_in_use(threads), threads_in_use(threads) == 1 ? "" : "s", about, prec_label);
    }
    stop_signals_install();
    rc = EXIT_OK;
    int written = 0, skipped = 0, failed = 0, done_n = 0;
    for (int k = 0; k < jobs.n; k++) {
        job *j = &jobs.v[k];
        if (j->skip) {
            skipped++;
            if (!quiet) fprintf(stderr, "nst: skipped %s: %s\n", j->in, j->skip);
            continue;
        }
        if (stop_requested()) break;
        done_n++;
        nst_image img = {0}, scaled = {0}, res = {0};
        const nst_image *src = &img;
        double t0 = omp_get_wtime();
        nst_status s = image_read(&img, j->in, &limits, &err);
        if (!s && size > 0 && (img.width > img.height ? img.width : img.height) != size) {
            int w, h;
            nst_image_fit_size(img.width, img.height, size, &w, &h);
            s = nst_image_resize(&scaled, &img, w, h, &err);
            src = &scaled;
        }
        double t1 = omp_get_wtime();
        if (!s) s = uni ? nst_universal_apply(uni, src, strength, &res, &err) : nst_style_net_apply(sn, src, &res, &err);
        double t2 = omp_get_wtime();
        if (!s && preserve) s = nst_image_preserve_colors(&res, src, &err);
        if (!s && !uni && strength < 1.0f) s = nst_image_mix(&res, src, strength, &err);
        if (!s && nst_image_copy_extras(&res, &img, &err) != NST_OK && !quiet)
            fprintf(stderr, "nst: warning: %s (written without the photo's alpha and profile)\n", err.msg);
        if (!s) s = image_write(&res, j->out, &save, &err);
        if (s) {
            fprintf(stderr, "nst: %s\n", err.msg);
            failed++;
            rc = EXIT_FAIL;
        } else {
            written++;
            if (!quiet)
                fprintf(stderr, "nst: [%d/%d] wrote %s (%dx%d, network %.3f s, total %.3f s)\n", done_n, todo,
                        j->out, res.width, res.height, t2 - t1, omp_get_wtime() - t0);
        }
        nst_image_free(&img);
        nst_image_free(&scaled);
        nst_image_free(&res);
    }
    if (!quiet && jobs.n > 1)
        fprintf(stderr, "nst: %d written, %d skipped, %d failed%s\n", written, skipped, failed,
                stop_requested() ? " (stopped by a signal)" : "");
done:
    free(model_items);
    free(paintings);
    nst_universal_free(uni);
    nst_vgg19_free(vgg);
    nst_style_net_free(sn);
    jobs_free(&jobs);
    inputs_free(&inputs);
    cli_args_free(&args);
    return rc;
}
