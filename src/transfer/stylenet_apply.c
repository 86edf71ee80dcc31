/* stylenet_apply.c - applying a style network (nst_style_net_*): finding and loading its
 * model file, and running it on photos of any size through a device's table
 * (stylenet_backend.h); the CPU's table is here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/model_file.h"
#include "net/stylenet.h"
#include "transfer/style_catalog.h"
#include "transfer/stylenet_backend.h"
#include "util/util.h"

struct nst_style_net {
    stylenet net;            /* what runs: one style (of several: their mix, stylenet_mix_styles) */
    stylenet all;            /* a file of several styles: all of them (else unused, zero) */
    char **names;            /* all's style names (its "styles" string), n = all.n_styles */
    nst_device device;       /* as last asked by nst_style_net_set_device */
    nst_precision precision;
    nstm_model meta;         /* the file's strings (tensors dropped after loading) */
    char path[4096];
    stylenet_runner *runner; /* the network on its device (the CPU after loading); NULL only
                              * when even the CPU's could not be made after a failed device */
};

/* Is s a bare style name (no folder, no extension)? */
static int is_style_name(const char *s) {
    return *s && !strchr(s, '/') && !strchr(s, '.');
}

static int file_exists(const char *path) { return access(path, R_OK) == 0; }

nst_status nst_style_net_load(nst_style_net **out, const char *path_or_name, const nst_limits *limits,
                              nst_error *err) {
    *out = NULL;
    nst_style_net *sn = calloc(1, sizeof *sn);
    if (!sn) return nst_fail(err, NST_ERR_NOMEM, "out of memory");
    /* FILE.nstm:NAME names one style of a file of several */
    char file[NST_PATH_MAX];
    const char *style = NULL, *colon = strrchr(path_or_name, ':');
    if (colon && colon > path_or_name && !file_exists(path_or_name) && (size_t)(colon - path_or_name) < sizeof file) {
        snprintf(file, sizeof file, "%.*s", (int)(colon - path_or_name), path_or_name);
        style = colon + 1;
        path_or_name = file;
    }
    const char *path = path_or_name;
    if (is_style_name(path_or_name) && !file_exists(path_or_name)) {
        int k;
        if (!style_catalog_find(path_or_name, sn->path, sizeof sn->path, &k, limits)) {
            free(sn);
            return nst_fail(err, NST_ERR_IO,
                            "%s: no such model file, and no style of that name in $" NST_MODELS_ENV
                            " or the models/ folder",
                            path_or_name);
        }
        if (k >= 0) style = path_or_name; /* a style of a file of several */
        path = sn->path;
    } else {
        snprintf(sn->path, sizeof sn->path, "%s", path_or_name);
    }
    nstm_model m = {0};
    nst_status s = nstm_load(&m, path, limits, err);
    if (!s) s = stylenet_model_read(&sn->all, &m, path, 0, err);
    if (s) {
        nstm_free(&m);
        free(sn);
        return s;
    }
    int k = 0, n = sn->all.n_styles;
    const char *names = nstm_get_string(&m, "styles");
    if (n > 1 && !(sn->names = style_names(names, n))) s = nst_fail(err, NST_ERR_NOMEM, "out of memory");
    if (!s && style) { /* FILE:NAME: a style of a file of several */
        while (sn->names && k < n && strcmp(sn->names[k], style) != 0) k++;
        if (!sn->names || k == n)
            s = nst_fail(err, NST_ERR_ARG, "%s: no style '%.64s' in it (its styles: %.300s)", path, style,
                         names ? names : "one, unnamed");
    }
    if (!s && n == 1) { /* one style: it runs as it is */
        sn->net = sn->all;
        memset(&sn->all, 0, sizeof sn->all);
    } else if (!s) {
        float *w = calloc((size_t)n, sizeof *w);
        if (!w) s = nst_fail(err, NST_ERR_NOMEM, "out of memory");
        else w[k] = 1.0f;
        if (!s) s = stylenet_mix_styles(&sn->net, &sn->all, w, err);
        free(w);
    }
    if (s) {
        nstm_free(&m);
        nst_style_net_free(sn);
        return s;
    }
    sn->device = NST_DEVICE_CPU;
    sn->precision = NST_PRECISION_FP32;
    s = stylenet_cpu_backend.create(&sn->runner, &sn->net, NST_PRECISION_FP32, err);
    /* keep the metadata only */
    for (int i = 0; i < m.n_strings && !s; i++) s = nstm_add_string(&sn->meta, m.strings[i].name, m.strings[i].value, err);
    nstm_free(&m);
    if (s) {
        nst_style_net_free(sn);
        return s;
    }
    *out = sn;
    return NST_OK;
}

static void runner_free(stylenet_runner *r) {
    if (r) r->ops->free(r);
}

void nst_style_net_free(nst_style_net *sn) {
    if (!sn) return;
    runner_free(sn->runner);
    stylenet_free(&sn->net);
    style_names_free(sn->names, sn->all.n_styles);
    stylenet_free(&sn->all);
    nstm_free(&sn->meta);
    free(sn);
}

nst_status nst_style_net_set_device(nst_style_net *sn, nst_device device, nst_precision precision, nst_error *err) {
    nst_device dev;
    nst_status s = nst_device_resolve(device, &dev, err);
    if (s) return s;
    nst_precision prec;
    if ((s = nst_precision_resolve(dev, precision, &sn->net.tuning, &prec, err))) return s;
    /* the CPU's packs in the CPU's precision (on CUDA they serve a fallback: fp32) */
    nst_precision cpu_prec = dev == NST_DEVICE_CPU ? prec : NST_PRECISION_FP32;
    if (sn->net.precision != cpu_prec) {
        sn->net.precision = cpu_prec;
        if ((s = stylenet_pack(&sn->net, err))) return s;
    }
    sn->device = device;
    sn->precision = precision;
    precision = prec;
    /* the old runner goes first: the new one may need the device memory it holds */
    runner_free(sn->runner);
    sn->runner = NULL;
    s = stylenet_backend_get(dev)->create(&sn->runner, &sn->net, precision, err);
    if (s) { /* the network stays usable, on the CPU */
        nst_error ignored;
        stylenet_cpu_backend.create(&sn->runner, &sn->net, precision, &ignored);
    }
    return s;
}

nst_status nst_style_net_set_tuning(nst_style_net *sn, const nst_tuning *tuning, nst_error *err) {
    nst_tuning zero = {0};
    sn->net.tuning = tuning ? *tuning : zero; /* kept for set_device's CUDA settings too */
    return stylenet_pack(&sn->net, err);
}

int nst_style_net_styles(const nst_style_net *sn) { return sn->names ? sn->all.n_styles : 1; }

const char *nst_style_net_style_name(const nst_style_net *sn, int i) {
    return sn->names && i >= 0 && i < sn->all.n_styles ? sn->names[i] : NULL;
}

nst_status nst_style_net_set_mix(nst_style_net *sn, const float *weights, nst_error *err) {
    if (!sn->names) return nst_fail(err, NST_ERR_ARG, "%s: a network of one style has nothing to mix", sn->path);
    stylenet mixed;
    sn->all.tuning = sn->net.tuning;
    sn->all.precision = sn->net.precision;
    nst_status s = stylenet_mix_styles(&mixed, &sn->all, weights, err);
    if (s) return s;
    runner_free(sn->runner); /* it holds the old network */
    sn->runner = NULL;
    stylenet_free(&sn->net);
    sn->net = mixed;
    s = nst_style_net_set_device(sn, sn->device, sn->precision, err);
    if (s && !sn->runner) {
        nst_error ignored;
        stylenet_cpu_backend.create(&sn->runner, &sn->net, NST_PRECISION_FP32, &ignored);
    }
    return s;
}

nst_device nst_style_net_device(const nst_style_net *sn) { return sn->runner ? sn->runner->ops->device : NST_DEVICE_CPU; }

const char *nst_style_net_path(const nst_style_net *sn) { return sn->path; }
const char *nst_style_net_meta(const nst_style_net *sn, const char *key) { return nstm_get_string(&sn->meta, key); }
int nst_style_net_width(const nst_style_net *sn) { return sn->net.width; }
int nst_style_net_res_blocks(const nst_style_net *sn) { return sn->net.n_res; }
int nst_style_net_meta_count(const nst_style_net *sn) { return sn->meta.n_strings; }
const char *nst_style_net_meta_key(const nst_style_net *sn, int i) {
    return i >= 0 && i < sn->meta.n_strings ? sn->meta.strings[i].name : NULL;
}

/* The padded size the network runs at: a multiple of 4, at least 8. */
static int padded_side(int n) {
    int p = (n + 3) / 4 * 4;
    return p < 8 ? 8 : p;
}

/* img (H,W,3) 0..255 -> x (3,Hp,Wp) 0..1, the border past W, H filled by clamping
 * to the edge (at most 3 pixels, or up to 8 for tiny images; cropped off afterwards). */
static void image_to_planes(float *x, const nst_image *img, int Hp, int Wp) {
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < Hp; i++) {
            int si = i < img->height ? i : img->height - 1;
            const float *row = img->pixels + (size_t)si * img->width * 3;
            float *dst = x + ((size_t)c * Hp + i) * Wp;
            for (int j = 0; j < Wp; j++) {
                int sj = j < img->width ? j : img->width - 1;
                dst[j] = row[3 * sj + c] * (1.0f / 255.0f);
            }
        }
}

/* y (3,Hp,Wp) 0..255 -> img (H,W,3), the top-left H x W. */
static void planes_to_image(nst_image *img, const float *y, int Hp, int Wp) {
    for (int i = 0; i < img->height; i++)
        for (int j = 0; j < img->width; j++)
            for (int c = 0; c < 3; c++) img->pixels[((size_t)i * img->width + j) * 3 + c] = y[((size_t)c * Hp + i) * Wp + j];
}

nst_status stylenet_apply_image(stylenet_runner *r, const nst_image *img, nst_image *out, nst_error *err) {
    memset(out, 0, sizeof *out);
    return r->ops->apply(r, img, padded_side(img->height), padded_side(img->width), out, err);
}

nst_status nst_style_net_apply(nst_style_net *sn, const nst_image *img, nst_image *out, nst_error *err) {
    if (!sn->runner) {
        memset(out, 0, sizeof *out);
        return nst_fail(err, NST_ERR_NOMEM, "out of memory for the style network");
    }
    return stylenet_apply_image(sn->runner, img, out, err);
}

/* ---- the CPU's table ------------------------------------------------------------------ */

typedef struct {
    stylenet_runner base;
    const stylenet *net;
    stylenet_acts acts; /* sized for the last image */
} cpu_runner;

static nst_status cpu_create(stylenet_runner **out, const stylenet *net, nst_precision precision, nst_error *err) {
    (void)precision; /* (the network's packs carry the CPU's precision: set_device) */
    *out = NULL;
    cpu_runner *r = calloc(1, sizeof *r);
    if (!r) return nst_fail(err, NST_ERR_NOMEM, "out of memory");
    r->base.ops = &stylenet_cpu_backend;
    r->net = net;
    *out = &r->base;
    return NST_OK;
}

static nst_status cpu_apply(stylenet_runner *base, const nst_image *img, int Hp, int Wp, nst_image *out,
                            nst_error *err) {
    cpu_runner *r = (cpu_runner *)base;
    memset(out, 0, sizeof *out);
    nst_status s;
    if (r->acts.H != Hp || r->acts.W != Wp) {
        stylenet_acts_free(&r->acts);
        if ((s = stylenet_acts_build(&r->acts, r->net, Hp, Wp, 0, err))) return s;
    }
    image_to_planes(r->acts.input, img, Hp, Wp);
    if ((s = stylenet_forward(r->net, &r->acts, 0, err))) return s;
    if ((s = nst_image_alloc(out, img->width, img->height, err))) return s;
    planes_to_image(out, stylenet_output(r->net, &r->acts), Hp, Wp);
    return NST_OK;
}

static void cpu_free(stylenet_runner *base) {
    cpu_runner *r = (cpu_runner *)base;
    stylenet_acts_free(&r->acts);
    free(r);
}

const stylenet_backend stylenet_cpu_backend = {
    .name = "cpu",
    .device = NST_DEVICE_CPU,
    .create = cpu_create,
    .apply = cpu_apply,
    .free = cpu_free,
};
