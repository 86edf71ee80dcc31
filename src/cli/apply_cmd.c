/* apply_cmd.c - `nst apply`: stylise photos with a trained style network. */
#include <dirent.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli/cli.h"

static const char APPLY_USAGE[] =
    "usage: nst apply --model MODEL|NAME [-o FILE | --out-dir DIR] [options] FILE|DIR...\n"
    "\n"
    "Stylises photos with a style network trained by nst train (one forward pass each).\n"
    "\n"
    "  --model MODEL|NAME      a model file (.nstm), or the name of a style that ships\n"
    "                          with nst (nst apply --list shows them)\n"
    "  -o, --output FILE       the result, .png or .jpg (one input only)\n"
    "  --out-dir DIR           results go to DIR/<photo name>.<png|jpg> (several inputs,\n"
    "                          or a folder: its .jpg/.jpeg/.png files)\n"
    "  --size N                rescale so that the longer side is N pixels first\n"
    "                          (default: the photo's own size)\n"
    "  --preserve-colors       keep the photo's colours (style in luminance only)\n"
    "  --threads N             CPU threads (default: OMP_NUM_THREADS or all cores)\n"
    "  --device auto|cpu|cuda  where the network runs (default auto: CUDA when this nst\n"
    "                          has it and a GPU is there, else the CPU)\n"
    "  --precision P           CUDA arithmetic: fp32 (default, as the CPU), tf32 (TF32\n"
    "                          tensor cores: faster, ~1e-3 relative) or fp16 (fp16\n"
    "                          activations and tensor cores: fastest, ~1e-3 relative)\n"
    LIMITS_USAGE
    "  --list                  list the styles that ship with nst\n"
    "  -q, --quiet             no progress output\n"
    "\n"
    "Exit status: 0 success, 2 usage error, 1 any other failure (other photos are still done).\n";

typedef struct {
    char **items;
    int n, cap;
} path_list;

static int list_add(path_list *l, const char *s) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        char **p = realloc(l->items, (size_t)cap * sizeof *p);
        if (!p) return 0;
        l->items = p;
        l->cap = cap;
    }
    if (!(l->items[l->n] = strdup(s))) return 0;
    l->n++;
    return 1;
}

static void list_free(path_list *l) {
    for (int i = 0; i < l->n; i++) free(l->items[i]);
    free(l->items);
}

static int has_image_ext(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

/* Adds path, or the image files of the folder path (sorted). 0 and a message on error. */
static int add_input(path_list *l, const char *path) {
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return list_add(l, path);
    char **files;
    int n, ok = 1;
    nst_error err;
    if (nst_list_images(path, &files, &n, &err) != NST_OK) {
        fprintf(stderr, "nst: %s\n", err.msg);
        return 0;
    }
    for (int i = 0; i < n && ok; i++) ok = list_add(l, files[i]);
    if (!ok) fprintf(stderr, "nst: %s: out of memory listing the folder\n", path);
    nst_free_paths(files, n);
    return ok;
}

/* DIR/photo.jpg for input some/where/photo.jpg (a .png or .jpg name; other extensions
 * become .png). */
static void output_in_dir(char *buf, size_t len, const char *dir, const char *input) {
    const char *base = strrchr(input, '/');
    base = base ? base + 1 : input;
    const char *dot = strrchr(base, '.');
    int stem = dot ? (int)(dot - base) : (int)strlen(base);
    const char *ext = dot && has_image_ext(base) ? dot : ".png";
    snprintf(buf, len, "%s/%.*s%s", dir, stem, base, ext);
}

static void list_styles(const nst_limits *limits) {
    char dirs[4][NST_PATH_MAX];
    int n = nst_style_dirs(dirs, 4);
    path_list seen = {0}; /* a style found in an earlier folder hides later ones */
    for (int k = 0; k < n; k++) {
        DIR *d = opendir(dirs[k]);
        if (!d) continue;
        struct dirent *e;
        while ((e = readdir(d))) {
            const char *dot = strrchr(e->d_name, '.');
            if (!dot || strcmp(dot, ".nstm") != 0) continue;
            int dup = 0;
            for (int i = 0; i < seen.n; i++) dup |= strcmp(seen.items[i], e->d_name) == 0;
            if (dup || !list_add(&seen, e->d_name)) continue;
            char path[2 * NST_PATH_MAX];
            snprintf(path, sizeof path, "%.4095s/%.255s", dirs[k], e->d_name);
            nst_style_net *sn;
            nst_error err;
            if (nst_style_net_load(&sn, path, limits, &err) != NST_OK) continue;
            const char *style = nst_style_net_meta(sn, "style"), *steps = nst_style_net_meta(sn, "steps");
            printf("%-16.*s width %-3d %s steps on %-28s %s\n", (int)(dot - e->d_name), e->d_name,
                   nst_style_net_width(sn), steps ? steps : "?", style ? style : "?", path);
            nst_style_net_free(sn);
        }
        closedir(d);
    }
    list_free(&seen);
}

int cmd_apply(int argc, char **argv) {
    const char *model = NULL, *output = NULL, *out_dir = NULL;
    int quiet = 0, preserve = 0, size = 0, threads = 0;
    path_list inputs = {0};
    int rc = EXIT_USAGE;
    nst_device device = NST_DEVICE_AUTO;
    nst_precision precision = NST_PRECISION_FP32;
    nst_limits limits;
    if (!limits_init(&limits)) return EXIT_USAGE;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(APPLY_USAGE, stdout);
            list_free(&inputs);
            return EXIT_OK;
        }
        if (!strcmp(a, "--list")) {
            list_styles(&limits);
            list_free(&inputs);
            return EXIT_OK;
        }
        if (!strcmp(a, "--preserve-colors")) { preserve = 1; continue; }
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) { quiet = 1; continue; }
        if (a[0] != '-' || !strcmp(a, "-")) {
            if (!add_input(&inputs, a)) goto done;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "nst: %s needs a value (try nst apply --help)\n", a);
            goto done;
        }
        const char *v = argv[++i];
        long iv;
        int limit = limits_flag(a, v, &limits);
        if (limit < 0) goto done;
        if (limit > 0) continue;
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) output = v;
        else if (!strcmp(a, "--out-dir")) out_dir = v;
        else if (!strcmp(a, "--size")) {
            if (!parse_int(a, v, 1, NST_MAX_DIMENSION, &iv)) goto done;
            size = (int)iv;
        } else if (!strcmp(a, "--threads")) {
            if (!parse_int(a, v, 1, 1024, &iv)) goto done;
            threads = (int)iv;
        } else if (!strcmp(a, "--device")) {
            if (!parse_device(a, v, &device)) goto done;
        } else if (!strcmp(a, "--precision")) {
            if (!parse_precision(a, v, 1, &precision)) goto done;
        } else {
            fprintf(stderr, "nst: unknown option '%s' (try nst apply --help)\n", a);
            goto done;
        }
    }
    if (!model || inputs.n == 0 || (!output && !out_dir) || (output && out_dir)) {
        fprintf(stderr, "nst: apply needs --model, photos, and one of -o FILE or --out-dir DIR (try nst apply --help)\n");
        goto done;
    }
    if (output && inputs.n > 1) {
        fprintf(stderr, "nst: -o takes one photo; use --out-dir DIR for %d\n", inputs.n);
        goto done;
    }
    if (output && !check_output_path("-o", output)) { rc = EXIT_FAIL; goto done; }
    if (out_dir) {
        struct stat st;
        if (stat(out_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
            if (mkdir(out_dir, 0777) != 0) {
                fprintf(stderr, "nst: --out-dir: %s: cannot create the folder\n", out_dir);
                rc = EXIT_FAIL;
                goto done;
            }
        }
    }
    if (threads > 0) omp_set_num_threads(threads);

    nst_style_net *sn = NULL;
    nst_error err;
    if (nst_style_net_load(&sn, model, &limits, &err) != NST_OK) {
        fprintf(stderr, "nst: %s\n", err.msg);
        rc = EXIT_FAIL;
        goto done;
    }
    if (nst_style_net_set_device(sn, device, precision, &err) != NST_OK) {
        fprintf(stderr, "nst: %s\n", err.msg);
        nst_style_net_free(sn);
        rc = EXIT_FAIL;
        goto done;
    }
    if (nst_style_net_device(sn) == NST_DEVICE_CUDA && !quiet) {
        char about[512];
        nst_cuda_describe(about, sizeof about);
        fprintf(stderr, "nst: running on %s\n", about);
    }
    rc = EXIT_OK;
    for (int k = 0; k < inputs.n; k++) {
        const char *in = inputs.items[k];
        char outbuf[8448];
        const char *out = output;
        if (out_dir) {
            output_in_dir(outbuf, sizeof outbuf, out_dir, in);
            out = outbuf;
        }
        nst_image img = {0}, scaled = {0}, res = {0};
        double t0 = omp_get_wtime();
        nst_status s = nst_image_load(&img, in, &limits, &err);
        if (!s && size > 0 && (img.width > img.height ? img.width : img.height) != size) {
            int w, h;
            nst_image_fit_size(img.width, img.height, size, &w, &h);
            s = nst_image_resize(&scaled, &img, w, h, &err);
            if (!s) {
                nst_image_free(&img);
                img = scaled;
            }
        }
        double t1 = omp_get_wtime();
        if (!s) s = nst_style_net_apply(sn, &img, &res, &err);
        double t2 = omp_get_wtime();
        if (!s && preserve) s = nst_image_preserve_colors(&res, &img, &err);
        if (!s) s = nst_image_save(&res, out, &err);
        if (s) {
            fprintf(stderr, "nst: %s\n", err.msg);
            rc = EXIT_FAIL;
        } else if (!quiet) {
            fprintf(stderr, "nst: wrote %s (%dx%d, network %.3f s, total %.3f s)\n", out, res.width, res.height,
                    t2 - t1, omp_get_wtime() - t0);
        }
        nst_image_free(&img);
        nst_image_free(&res);
    }
    nst_style_net_free(sn);
done:
    list_free(&inputs);
    return rc;
}
