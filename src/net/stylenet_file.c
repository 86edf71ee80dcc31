/* stylenet_file.c - a style network <-> a model file (net/model_file.h): the architecture's
 * name and shape as metadata, each parameter tensor by name (stylenet_tensor). */
#include <string.h>

#include "net/model_file.h"
#include "net/stylenet.h"

#define ARCH_NAME "johnson-in"     /* the "arch" of a transformation network's file */
#define DECODER_ARCH "vgg19-decoder" /* ... and of a decoder's */

/* Adds the network's architecture and parameters to m. */
nst_status stylenet_model_add(nstm_model *m, const stylenet *net, nst_error *err) {
    nst_status s;
    int dec = net->kind == STYLENET_DECODER;
    if ((s = nstm_add_string(m, "arch", dec ? DECODER_ARCH : ARCH_NAME, err))) return s;
    if ((s = nstm_add_int(m, "width", net->width, err))) return s;
    if (dec && (s = nstm_add_int(m, "level", net->level, err))) return s;
    if (!dec && (s = nstm_add_int(m, "res_blocks", net->n_res, err))) return s;
    /* several styles (the norms' tables are (n_styles,C) tensors); absent: one */
    if (net->n_styles > 1 && (s = nstm_add_int(m, "n_styles", net->n_styles, err))) return s;
    for (int i = 0; i < stylenet_n_tensors(net); i++) {
        char name[64];
        int ndim, dims[4];
        const float *data = stylenet_tensor(net, i, name, &ndim, dims);
        if ((s = nstm_add_tensor(m, name, ndim, dims, data, err))) return s;
    }
    return NST_OK;
}

/* The parameters of a built network from the model file, then packed. */
static nst_status read_params(stylenet *net, const nstm_model *m, const char *path, nst_error *err);

/* Is the file's arch the one wanted? If not, a message that says what it is. */
static nst_status expect_arch(const nstm_model *m, const char *path, const char *want, nst_error *err) {
    const char *arch = nstm_get_string(m, "arch");
    if (arch && strcmp(arch, want) == 0) return NST_OK;
    if (arch && strcmp(arch, DECODER_ARCH) == 0)
        return nst_fail(err, NST_ERR_FORMAT, "%s: a decoder of universal style transfer, not a style network", path);
    if (arch && strcmp(arch, ARCH_NAME) == 0)
        return nst_fail(err, NST_ERR_FORMAT, "%s: a style network, not a decoder of universal style transfer", path);
    return nst_fail(err, NST_ERR_FORMAT, "%s: not a network of a kind this nst knows (arch '%s')", path,
                    arch ? arch : "missing");
}

nst_status stylenet_decoder_read(stylenet *net, const nstm_model *m, const char *path, int train, nst_error *err) {
    int32_t width, level;
    nst_status s;
    if ((s = expect_arch(m, path, DECODER_ARCH, err))) return s;
    if ((s = nstm_expect_int(m, path, "level", 1, 5, &level, err))) return s;
    if ((s = nstm_expect_int(m, path, "width", 1, 64, &width, err))) return s;
    if ((s = stylenet_build_decoder(net, level, width, train, err))) return s;
    return read_params(net, m, path, err);
}

/* Builds a network from a loaded model file (path for messages). */
nst_status stylenet_model_read(stylenet *net, const nstm_model *m, const char *path, int train,
                                 nst_error *err) {
    int32_t width, n_res, n_styles = 1;
    nst_status s;
    if ((s = expect_arch(m, path, ARCH_NAME, err))) return s;
    if ((s = nstm_expect_int(m, path, "width", 1, 256, &width, err))) return s;
    if ((s = nstm_expect_int(m, path, "res_blocks", 0, STYLENET_MAX_RES, &n_res, err))) return s;
    int32_t present;
    if (nstm_get_int(m, "n_styles", &present) && (s = nstm_expect_int(m, path, "n_styles", 2, STYLENET_MAX_STYLES, &n_styles, err)))
        return s;
    if ((s = stylenet_build_styles(net, width, n_res, n_styles, train, err))) return s;
    return read_params(net, m, path, err);
}

static nst_status read_params(stylenet *net, const nstm_model *m, const char *path, nst_error *err) {
    nst_status s;
    for (int i = 0; i < stylenet_n_tensors(net); i++) {
        char name[64];
        int ndim, dims[4];
        float *dst = stylenet_tensor(net, i, name, &ndim, dims);
        const float *src;
        if ((s = nstm_expect_tensor(m, path, name, ndim, dims, &src, err))) {
            stylenet_free(net);
            return s;
        }
        const nstm_tensor *t = nstm_find_tensor(m, name);
        memcpy(dst, src, t->count * sizeof(float));
    }
    if ((s = stylenet_pack(net, err))) stylenet_free(net);
    return s;
}
