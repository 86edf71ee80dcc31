/* vgg19.c - VGG19's convolutional part: layer table, weights loader for the
 * TensorFlow.js layers-model (JSON manifest + binary shards, uint8-quantized), and the
 * forward / backward passes. */
#include "net/vgg19.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"

/* ---- the layer table --------------------------------------------------------------- */

/* Convs per block and channels per block; the 37 layers follow from these. */
static const int BLOCK_CONVS[5] = {2, 2, 4, 4, 4};
static const int BLOCK_CHANNELS[5] = {64, 128, 256, 512, 512};

static const char *const LAYER_NAMES[NST_NUM_LAYERS] = {
    "conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1",
    "conv2_1", "relu2_1", "conv2_2", "relu2_2", "pool2",
    "conv3_1", "relu3_1", "conv3_2", "relu3_2", "conv3_3", "relu3_3", "conv3_4", "relu3_4", "pool3",
    "conv4_1", "relu4_1", "conv4_2", "relu4_2", "conv4_3", "relu4_3", "conv4_4", "relu4_4", "pool4",
    "conv5_1", "relu5_1", "conv5_2", "relu5_2", "conv5_3", "relu5_3", "conv5_4", "relu5_4", "pool5",
};

int nst_layer_index(const char *name) {
    for (int l = 0; l < NST_NUM_LAYERS; l++)
        if (strcmp(name, LAYER_NAMES[l]) == 0) return l;
    return -1;
}

const char *nst_layer_name(int index) {
    return index >= 0 && index < NST_NUM_LAYERS ? LAYER_NAMES[index] : "?";
}

vgg_layer_kind vgg19_layer_kind(int layer) {
    const char *n = LAYER_NAMES[layer];
    return n[0] == 'c' ? VGG_CONV : n[0] == 'r' ? VGG_RELU : VGG_POOL;
}

/* The layer index of conv k (0..15). */
static int vgg19_layer_index_of_conv(int k) {
    for (int l = 0; l < NST_NUM_LAYERS; l++)
        if (vgg19_layer_kind(l) == VGG_CONV && k-- == 0) return l;
    return NST_NUM_LAYERS;
}

int vgg19_layer_conv(int layer) {
    int k = -1;
    for (int l = 0; l <= layer; l++)
        if (vgg19_layer_kind(l) == VGG_CONV) k++;
    return k;
}

/* ---- finding and reading the weights --------------------------------------------------- */

static int has_model_json(const char *dir) {
    char path[4400];
    if (snprintf(path, sizeof path, "%s/model.json", dir) >= (int)sizeof path) return 0;
    return access(path, R_OK) == 0;
}

/* Where to look when no folder is given: see nst.h. */
static int find_default_dir(char *out, size_t outlen, char *tried, size_t triedlen) {
    const char *env = getenv(NST_WEIGHTS_ENV);
    char cand[4][4200 + 64];
    int n = 0;
    if (env && env[0]) {
        snprintf(out, outlen, "%s", env); /* an explicit setting is used even if wrong */
        return 1;
    }
#ifdef NST_SOURCE_DIR
    snprintf(cand[n++], sizeof cand[0], "%s/../shared/models/vgg19", NST_SOURCE_DIR);
#endif
    char exe[4000];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) *slash = '\0';
        snprintf(cand[n++], sizeof cand[0], "%s/../../shared/models/vgg19", exe);
        snprintf(cand[n++], sizeof cand[0], "%s/../shared/models/vgg19", exe);
    }
    snprintf(cand[n++], sizeof cand[0], "../shared/models/vgg19");
    tried[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (has_model_json(cand[i]) && strlen(cand[i]) < outlen) {
            memcpy(out, cand[i], strlen(cand[i]) + 1);
            return 1;
        }
        size_t used = strlen(tried);
        snprintf(tried + used, triedlen - used, "%s%s", used ? ", " : "", cand[i]);
    }
    return 0;
}

/* One tensor of the manifest, as it lies in the byte stream. */
typedef struct {
    int conv;          /* which conv layer (0..15) */
    int is_bias;
    int bytes_per_value;
    double scale, min; /* dequantization, when quantized */
    size_t count, offset;
} manifest_tensor;

/* Expected shapes, derived from the block table. */
static void conv_shape(int k, int *C_in, int *C_out) {
    int b = 0, i = k;
    while (i >= BLOCK_CONVS[b]) i -= BLOCK_CONVS[b++];
    *C_out = BLOCK_CHANNELS[b];
    *C_in = i > 0 ? BLOCK_CHANNELS[b] : (b > 0 ? BLOCK_CHANNELS[b - 1] : 3);
}

static int conv_from_name(const char *name, int *is_bias) {
    int b, i;
    char rest[16], canon[64];
    if (sscanf(name, "block%d_conv%d/%15s", &b, &i, rest) != 3) return -1;
    if (b < 1 || b > 5 || i < 1 || i > BLOCK_CONVS[b - 1]) return -1;
    if (strcmp(rest, "kernel") == 0) *is_bias = 0;
    else if (strcmp(rest, "bias") == 0) *is_bias = 1;
    else return -1;
    /* sscanf skips spaces, signs and leading zeros and ignores what follows the last
     * word: only the exact name may count as this tensor */
    snprintf(canon, sizeof canon, "block%d_conv%d/%s", b, i, rest);
    if (strcmp(name, canon) != 0) return -1;
    int k = i - 1;
    for (int j = 0; j < b - 1; j++) k += BLOCK_CONVS[j];
    return k;
}

/* A manifest string made fit for a one-line message: control characters (a JSON "\n"
 * included) become '?', and a long one is cut. */
static const char *printable(const char *s, char *buf, size_t len) {
    size_t i = 0;
    for (; s[i] && i + 1 < len; i++) buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    buf[i] = '\0';
    return buf;
}

/* Parses one weight entry of the manifest into t, checking name, shape and dtype. */
static nst_status parse_weight_entry(const cJSON *w, const char *json_path, manifest_tensor *t,
                                     nst_error *err) {
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(w, "name");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(w, "shape");
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(w, "dtype");
    const cJSON *quant = cJSON_GetObjectItemCaseSensitive(w, "quantization");
    if (!cJSON_IsString(name) || !cJSON_IsArray(shape) || !cJSON_IsString(dtype))
        return nst_fail(err, NST_ERR_FORMAT, "%s: weight entry without name, shape or dtype", json_path);
    char nm[128], tmp[64];
    printable(name->valuestring, nm, sizeof nm);
    if (strcmp(dtype->valuestring, "float32") != 0)
        return nst_fail(err, NST_ERR_FORMAT, "%s: %s: unsupported dtype %s", json_path, nm,
                        printable(dtype->valuestring, tmp, sizeof tmp));
    t->conv = conv_from_name(name->valuestring, &t->is_bias);
    if (t->conv < 0)
        return nst_fail(err, NST_ERR_FORMAT, "%s: unexpected tensor %s", json_path, nm);
    int C_in, C_out;
    conv_shape(t->conv, &C_in, &C_out);
    int want_rank = t->is_bias ? 1 : 4;
    int want[4] = {3, 3, C_in, C_out};
    if (t->is_bias) want[0] = C_out;
    int ok = cJSON_GetArraySize(shape) == want_rank;
    for (int d = 0; ok && d < want_rank; d++) {
        const cJSON *s = cJSON_GetArrayItem(shape, d);
        ok = cJSON_IsNumber(s) && s->valuedouble == want[d];
    }
    if (!ok) {
        char want_s[64];
        if (t->is_bias) snprintf(want_s, sizeof want_s, "[%d]", C_out);
        else snprintf(want_s, sizeof want_s, "[3,3,%d,%d]", C_in, C_out);
        return nst_fail(err, NST_ERR_FORMAT, "%s: %s has the wrong shape (VGG19 needs %s)", json_path,
                        nm, want_s);
    }
    t->count = t->is_bias ? (size_t)C_out : (size_t)9 * C_in * C_out;
    t->bytes_per_value = 4;
    t->scale = 1.0;
    t->min = 0.0;
    if (quant) {
        const cJSON *qd = cJSON_GetObjectItemCaseSensitive(quant, "dtype");
        const cJSON *sc = cJSON_GetObjectItemCaseSensitive(quant, "scale");
        const cJSON *mn = cJSON_GetObjectItemCaseSensitive(quant, "min");
        if (!cJSON_IsString(qd) || !cJSON_IsNumber(sc) || !cJSON_IsNumber(mn))
            return nst_fail(err, NST_ERR_FORMAT, "%s: %s: bad quantization entry", json_path, nm);
        if (strcmp(qd->valuestring, "uint8") == 0) t->bytes_per_value = 1;
        else if (strcmp(qd->valuestring, "uint16") == 0) t->bytes_per_value = 2;
        else
            return nst_fail(err, NST_ERR_FORMAT, "%s: %s: unsupported quantization %s", json_path,
                            nm, printable(qd->valuestring, tmp, sizeof tmp));
        t->scale = sc->valuedouble;
        t->min = mn->valuedouble;
        /* cJSON reads 1e999 as infinity; and every dequantized value, min + q * scale,
         * must be a finite float, or the network computes with inf and NaN */
        double qmax = t->bytes_per_value == 1 ? 255.0 : 65535.0;
        if (!isfinite(t->scale) || !isfinite(t->min) || t->scale < 0.0 ||
            fabs(t->min) + qmax * t->scale > FLT_MAX)
            return nst_fail(err, NST_ERR_FORMAT, "%s: %s: quantization scale %g / min %g out of range",
                            json_path, nm, t->scale, t->min);
    }
    return NST_OK;
}

static float decode_value(const unsigned char *p, const manifest_tensor *t) {
    if (t->bytes_per_value == 1) return (float)(p[0] * t->scale + t->min);
    if (t->bytes_per_value == 2) return (float)((p[0] | (p[1] << 8)) * t->scale + t->min);
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* A shard path must stay inside the weights folder, and must not carry control
 * characters: they would end up in the one-line error messages that name the file. */
static int good_shard_path(const char *s) {
    if (s[0] == '/' || strstr(s, "..")) return 0;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return 0;
    return 1;
}

/* Concatenates the group's shard files into one byte stream of at most max_bytes. */
static nst_status read_shards(const char *dir, const cJSON *paths, const char *json_path,
                              size_t max_bytes, unsigned char **stream, size_t *size,
                              nst_error *err) {
    size_t total = 0, cap = 0;
    unsigned char *buf = NULL;
    const cJSON *p;
    cJSON_ArrayForEach(p, paths) {
        if (!cJSON_IsString(p) || !good_shard_path(p->valuestring)) {
            free(buf);
            return nst_fail(err, NST_ERR_FORMAT, "%s: bad shard path in weightsManifest", json_path);
        }
        char path[8400];
        if (snprintf(path, sizeof path, "%s/%s", dir, p->valuestring) >= (int)sizeof path) {
            free(buf); /* a cut name could open some other file */
            return nst_fail(err, NST_ERR_FORMAT, "%s: shard path too long in weightsManifest", json_path);
        }
        unsigned char *data;
        size_t n;
        nst_status s = nst_read_file(path, max_bytes, &data, &n, err);
        if (s) { free(buf); return s; }
        /* a manifest naming the same shard over and over must not fill the memory */
        if (n > max_bytes - total) {
            free(buf);
            free(data);
            return nst_fail(err, NST_ERR_LIMIT, "%s: the shards of one group hold more than the %zu bytes VGG19 can use",
                            path, max_bytes);
        }
        if (total + n > cap) {
            cap = (total + n) * 2;
            unsigned char *nb = realloc(buf, cap);
            if (!nb) { free(buf); free(data); return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", path); }
            buf = nb;
        }
        if (n) memcpy(buf + total, data, n); /* an empty first shard leaves buf NULL */
        total += n;
        free(data);
    }
    *stream = buf;
    *size = total;
    return NST_OK;
}

static nst_status load_weights(nst_vgg19 *net, const char *dir, int depth, const nst_tuning *tuning,
                               nst_error *err) {
    char json_path[4200];
    snprintf(json_path, sizeof json_path, "%s/model.json", dir);
    unsigned char *text;
    size_t text_len;
    nst_status s = nst_read_file(json_path, (size_t)64 << 20, &text, &text_len, err);
    if (s) return s;
    cJSON *root = cJSON_ParseWithLength((const char *)text, text_len);
    free(text);
    if (!root) return nst_fail(err, NST_ERR_FORMAT, "%s: not valid JSON", json_path);

    /* parameters: one allocation; layout conv by conv, weight then bias */
    size_t total = 0, offs[16];
    for (int k = 0; k < 16; k++) {
        int C_in, C_out;
        conv_shape(k, &C_in, &C_out);
        offs[k] = total;
        total += (size_t)9 * C_in * C_out + C_out;
    }
    net->params = nst_alloc_array(total, sizeof(float));
    if (!net->params) { cJSON_Delete(root); return nst_fail(err, NST_ERR_NOMEM, "out of memory for VGG19 weights"); }
    int seen[16][2] = {{0}};

    const cJSON *manifest = cJSON_GetObjectItemCaseSensitive(root, "weightsManifest");
    if (!cJSON_IsArray(manifest) || cJSON_GetArraySize(manifest) == 0) {
        s = nst_fail(err, NST_ERR_FORMAT, "%s: no weightsManifest", json_path);
        goto done;
    }
    const cJSON *group;
    cJSON_ArrayForEach(group, manifest) {
        const cJSON *paths = cJSON_GetObjectItemCaseSensitive(group, "paths");
        const cJSON *weights = cJSON_GetObjectItemCaseSensitive(group, "weights");
        if (!cJSON_IsArray(paths) || !cJSON_IsArray(weights)) {
            s = nst_fail(err, NST_ERR_FORMAT, "%s: weightsManifest group without paths or weights", json_path);
            goto done;
        }
        unsigned char *stream = NULL;
        size_t stream_len = 0;
        s = read_shards(dir, paths, json_path, total * sizeof(float), &stream, &stream_len, err);
        if (s) goto done;
        size_t offset = 0;
        const cJSON *w;
        cJSON_ArrayForEach(w, weights) {
            manifest_tensor t = {0};
            s = parse_weight_entry(w, json_path, &t, err);
            if (s) { free(stream); goto done; }
            size_t need = t.count * (size_t)t.bytes_per_value;
            if (offset + need > stream_len) {
                s = nst_fail(err, NST_ERR_FORMAT, "%s: shards are truncated: %zu bytes, tensors need more",
                             json_path, stream_len);
                free(stream);
                goto done;
            }
            int C_in, C_out;
            conv_shape(t.conv, &C_in, &C_out);
            float *dst = net->params + offs[t.conv];
            const unsigned char *src = stream + offset;
            if (t.is_bias) {
                for (int o = 0; o < C_out; o++) dst[(size_t)9 * C_in * C_out + o] = decode_value(src + (size_t)o * t.bytes_per_value, &t);
            } else { /* HWIO [kh][kw][ci][co] -> OIHW [co][ci][kh][kw] */
                for (int kh = 0; kh < 3; kh++)
                    for (int kw = 0; kw < 3; kw++)
                        for (int ci = 0; ci < C_in; ci++)
                            for (int co = 0; co < C_out; co++) {
                                size_t si = (((size_t)kh * 3 + kw) * C_in + ci) * C_out + co;
                                dst[(((size_t)co * C_in + ci) * 3 + kh) * 3 + kw] =
                                    decode_value(src + si * t.bytes_per_value, &t);
                            }
            }
            seen[t.conv][t.is_bias]++;
            offset += need;
        }
        free(stream);
        if (offset != stream_len) {
            s = nst_fail(err, NST_ERR_FORMAT, "%s: shards hold %zu bytes but the manifest describes %zu",
                         json_path, stream_len, offset);
            goto done;
        }
    }
    for (int k = 0; k < 16; k++)
        for (int b = 0; b < 2; b++)
            if (seen[k][b] != 1) {
                int blk = 0, i = k;
                while (i >= BLOCK_CONVS[blk]) i -= BLOCK_CONVS[blk++];
                s = nst_fail(err, NST_ERR_FORMAT, "%s: tensor block%d_conv%d/%s is %s", json_path,
                             blk + 1, i + 1, b ? "bias" : "kernel", seen[k][b] ? "repeated" : "missing");
                goto done;
            }
    for (int k = 0; k < 16; k++) {
        vgg_conv *c = &net->conv[k];
        conv_shape(k, &c->C_in, &c->C_out);
        c->weight = net->params + offs[k];
        c->bias = c->weight + (size_t)9 * c->C_in * c->C_out;
        if (vgg19_layer_index_of_conv(k) >= depth) continue; /* never run: not packed */
        if (conv3x3_pack_lean(&c->packed, c->weight, c->C_in, c->C_out, tuning, NST_PRECISION_FP32) != 0) {
            s = nst_fail(err, NST_ERR_NOMEM, "out of memory packing VGG19 weights");
            goto done;
        }
    }
    s = NST_OK;
done:
    cJSON_Delete(root);
    return s;
}

nst_status nst_vgg19_load(nst_vgg19 **out, const char *dir, int depth, nst_error *err) {
    return nst_vgg19_load_tuned(out, dir, depth, NULL, err);
}

nst_status nst_vgg19_load_tuned(nst_vgg19 **out, const char *dir, int depth, const nst_tuning *tuning,
                                nst_error *err) {
    *out = NULL;
    nst_vgg19 *net = calloc(1, sizeof *net);
    if (!net) return nst_fail(err, NST_ERR_NOMEM, "out of memory");
    if (dir) {
        snprintf(net->dir, sizeof net->dir, "%s", dir);
    } else {
        char tried[4 * 4300];
        if (!find_default_dir(net->dir, sizeof net->dir, tried, sizeof tried)) {
            free(net);
            return nst_fail(err, NST_ERR_IO,
                            "VGG19 weights not found (looked in %s); pass --weights DIR or set %s",
                            tried, NST_WEIGHTS_ENV);
        }
    }
    if (depth <= 0 || depth > NST_NUM_LAYERS) depth = NST_NUM_LAYERS;
    net->depth = depth;
    net->tier = cpu_kernel_tier(tuning ? tuning->kernel : NST_KERNEL_BEST);
    nst_status s = load_weights(net, net->dir, depth, tuning, err);
    if (s) {
        nst_vgg19_free(net);
        return s;
    }
    *out = net;
    return NST_OK;
}

void nst_vgg19_free(nst_vgg19 *net) {
    if (!net) return;
    for (int k = 0; k < 16; k++) conv3x3_packed_free(&net->conv[k].packed);
    free(net->params);
    free(net);
}

const char *nst_vgg19_dir(const nst_vgg19 *net) { return net->dir; }

/* ---- activations ---------------------------------------------------------------- */

/* a's depth, input size and every layer's output shape (the rest zeroed); NST_ERR_ARG
 * for an image too small for the pools among the layers */
static nst_status acts_shapes(vgg19_acts *a, int depth, int H, int W, nst_error *err) {
    memset(a, 0, sizeof *a);
    if (depth < 1 || depth > NST_NUM_LAYERS || H < 1 || W < 1)
        return nst_fail(err, NST_ERR_ARG, "bad network size %dx%d, depth %d", W, H, depth);
    a->depth = depth;
    a->H = H;
    a->W = W;
    int C = 3, h = H, w = W, k = 0;
    for (int l = 0; l < depth; l++) {
        vgg_layer_kind kind = vgg19_layer_kind(l);
        if (kind == VGG_CONV) {
            int ci;
            conv_shape(k++, &ci, &C);
        } else if (kind == VGG_POOL) {
            h /= 2;
            w /= 2;
            if (h < 1 || w < 1)
                return nst_fail(err, NST_ERR_ARG, "image %dx%d is too small for layer %s (each side needs at least %d pixels)",
                                W, H, LAYER_NAMES[l], vgg19_min_side(l + 1));
        }
        a->C[l] = C;
        a->Hl[l] = h;
        a->Wl[l] = w;
    }
    return NST_OK;
}

nst_status vgg19_acts_build(vgg19_acts *a, int depth, int H, int W, const unsigned char *keep,
                            nst_error *err) {
    nst_status s = acts_shapes(a, depth, H, W, err);
    if (s) return s;
    size_t total = (size_t)3 * H * W, largest = total;
    for (int l = 0; l < depth; l++) {
        size_t n = vgg19_layer_size(a, l);
        if (vgg19_layer_kind(l) != VGG_RELU || (keep && keep[l - 1])) total += n; /* else ReLU runs in place */
        if (n > largest) largest = n;
    }
    total += 2 * largest;
    a->memory = nst_alloc_array(total, sizeof(float));
    if (!a->memory)
        return nst_fail(err, NST_ERR_NOMEM, "out of memory for a %dx%d image (%.1f GB of activations)",
                        W, H, (double)total * 4 / 1e9);
    a->bytes = total * sizeof(float);
    float *p = a->memory;
    a->input = p;
    p += (size_t)3 * H * W;
    for (int l = 0; l < depth; l++) {
        if (vgg19_layer_kind(l) == VGG_RELU && !(keep && keep[l - 1])) {
            a->out[l] = a->out[l - 1];
        } else {
            a->out[l] = p;
            p += vgg19_layer_size(a, l);
        }
    }
    a->grad_a = p;
    a->grad_b = p + largest;
    return NST_OK;
}

void vgg19_acts_fuse_relus(vgg19_acts *a) {
    for (int l = 0; l + 1 < a->depth; l++)
        a->fused_relu[l] = vgg19_layer_kind(l) == VGG_CONV && a->out[l + 1] == a->out[l];
}

void vgg19_acts_free(vgg19_acts *a) {
    free(a->memory);
    conv3x3_workspace_free(&a->ws);
    memset(a, 0, sizeof *a);
}

/* ---- a run's own packs ---------------------------------------------------------------- */

nst_status vgg19_packs_build(conv3x3_packed **out, const nst_vgg19 *net, int depth, const nst_tuning *tuning,
                             nst_precision precision, nst_error *err) {
    *out = NULL;
    if (precision != NST_PRECISION_BF16) return NST_OK;
    conv3x3_packed *packs = calloc(16, sizeof *packs);
    if (!packs) return nst_fail(err, NST_ERR_NOMEM, "out of memory packing VGG19 weights for bf16");
    for (int k = 0; k < 16; k++) {
        const vgg_conv *c = &net->conv[k];
        if (vgg19_layer_index_of_conv(k) >= depth || vgg19_layer_index_of_conv(k) >= net->depth) continue;
        if (conv3x3_pack_lean(&packs[k], c->weight, c->C_in, c->C_out, tuning, precision) != 0) {
            vgg19_packs_free(packs);
            return nst_fail(err, NST_ERR_NOMEM, "out of memory packing VGG19 weights for bf16");
        }
    }
    *out = packs;
    return NST_OK;
}

void vgg19_packs_free(conv3x3_packed *packs) {
    if (!packs) return;
    for (int k = 0; k < 16; k++) conv3x3_packed_free(&packs[k]);
    free(packs);
}

const char *vgg19_kernel_name(const nst_vgg19 *net, const conv3x3_packed *packs) {
    for (int k = 0; packs && k < 16; k++)
        if (packs[k].bf16) return conv3x3_kernel_name(&packs[k]);
    return cpu_tier_name(net->tier);
}

/* ---- forward and backward ----------------------------------------------------------- */

static const conv3x3_packed *pack_of(const nst_vgg19 *net, const vgg19_acts *a, int k) {
    return a->packs ? &a->packs[k] : &net->conv[k].packed;
}

static void forward_layer(const nst_vgg19 *net, vgg19_acts *a, int l, int use_ref) {
    const float *inp = l == 0 ? a->input : a->out[l - 1];
    int Ci = l == 0 ? 3 : a->C[l - 1];
    int Hi = l == 0 ? a->H : a->Hl[l - 1], Wi = l == 0 ? a->W : a->Wl[l - 1];
    switch (vgg19_layer_kind(l)) {
    case VGG_CONV: {
        const vgg_conv *c = &net->conv[vgg19_layer_conv(l)];
        if (use_ref) {
            conv3x3_forward_ref(a->out[l], inp, c->weight, c->bias, c->C_in, c->C_out, Hi, Wi);
            if (a->fused_relu[l]) relu_forward(a->out[l], a->out[l], vgg19_layer_size(a, l));
        } else if (a->fused_relu[l]) {
            conv3x3_forward_relu(a->out[l], inp, pack_of(net, a, vgg19_layer_conv(l)), c->bias, Hi, Wi, &a->ws);
        } else {
            conv3x3_forward(a->out[l], inp, pack_of(net, a, vgg19_layer_conv(l)), c->bias, Hi, Wi, &a->ws);
        }
        break;
    }
    case VGG_RELU:
        if (!a->fused_relu[l - 1]) relu_forward(a->out[l], inp, vgg19_layer_size(a, l));
        break;
    case VGG_POOL:
        maxpool2x2_forward(a->out[l], inp, Ci, Hi, Wi);
        break;
    }
}

void vgg19_forward_layer(const nst_vgg19 *net, vgg19_acts *a, int l) { forward_layer(net, a, l, 0); }
void vgg19_forward_layer_ref(const nst_vgg19 *net, vgg19_acts *a, int l) { forward_layer(net, a, l, 1); }

void vgg19_forward(const nst_vgg19 *net, vgg19_acts *a) {
    for (int l = 0; l < a->depth; l++) vgg19_forward_layer(net, a, l);
}

nst_status vgg19_forward_taps(const nst_vgg19 *net, const conv3x3_packed *packs, const nst_image *img, int depth,
                              const unsigned char *want, vgg19_take_fn tap, void *ctx, nst_error *err) {
    if (depth < 1 || depth > net->depth)
        return nst_fail(err, NST_ERR_ARG, "depth %d: the network was loaded to %d layers", depth, net->depth);
    vgg19_acts a; /* shapes, flags and scratch only: the outputs are allocated one by one */
    nst_status s = acts_shapes(&a, depth, img->height, img->width, err);
    if (s) return s;
    a.packs = packs;
    for (int l = 0; l + 1 < depth; l++) /* a ReLU runs in its conv unless the conv's own output is tapped */
        a.fused_relu[l] = vgg19_layer_kind(l) == VGG_CONV && !want[l];
    if (!(a.input = nst_alloc_array((size_t)3 * a.H * a.W, sizeof(float))))
        return nst_fail(err, NST_ERR_NOMEM, "out of memory for a %dx%d image", a.W, a.H);
    vgg19_preprocess(a.input, img);
    float *cur = a.input; /* the last output, owned here unless a tap took it */
    int taken = 0;
    for (int l = 0; l < depth && !s; l++) {
        if (l > 0) a.out[l - 1] = cur;
        if (vgg19_layer_kind(l) == VGG_RELU) {
            a.out[l] = cur; /* in place */
            if (!a.fused_relu[l - 1]) relu_forward(cur, cur, vgg19_layer_size(&a, l));
        } else {
            if (!(a.out[l] = nst_alloc_array(vgg19_layer_size(&a, l), sizeof(float)))) {
                s = nst_fail(err, NST_ERR_NOMEM, "out of memory for layer %s at %dx%d (%.0f MB)", LAYER_NAMES[l], a.W,
                             a.H, vgg19_layer_size(&a, l) * 4.0 / 1e6);
                break;
            }
            forward_layer(net, &a, l, 0);
            free(cur);
            cur = a.out[l];
        }
        if (want[l]) {
            int take = 0;
            s = tap(ctx, l, cur, a.C[l], a.Hl[l], a.Wl[l], &take, err);
            if (!s && take && l + 1 < depth) s = nst_fail(err, NST_ERR_ARG, "only the last layer's output can be taken");
            else if (!s && take) taken = 1;
        }
    }
    if (!taken) free(cur);
    conv3x3_workspace_free(&a.ws);
    return s;
}

void vgg19_backward(const nst_vgg19 *net, vgg19_acts *a, const unsigned char *tap, vgg19_tap_fn tap_fn,
                    void *ctx, float *dinput, int use_ref) {
    float *g = a->grad_a, *spare = a->grad_b;
    int top = a->depth - 1, relu_done = 0;
    memset(g, 0, vgg19_layer_size(a, top) * sizeof(float));
    for (int l = top; l >= 0; l--) {
        size_t n = vgg19_layer_size(a, l);
        if (tap && tap[l]) tap_fn(ctx, a, l, g);
        float *dst = l == 0 ? dinput : spare;
        int Hi = l == 0 ? a->H : a->Hl[l - 1], Wi = l == 0 ? a->W : a->Wl[l - 1];
        switch (vgg19_layer_kind(l)) {
        case VGG_CONV: {
            const vgg_conv *c = &net->conv[vgg19_layer_conv(l)];
            /* the ReLU below can be fused into this conv's backward unless a loss adds
             * its gradient between the two */
            int fuse = !use_ref && l > 0 && vgg19_layer_kind(l - 1) == VGG_RELU && !(tap && tap[l - 1]);
            if (use_ref) conv3x3_backward_input_ref(dst, g, c->weight, c->C_in, c->C_out, Hi, Wi);
            else if (fuse) conv3x3_backward_input_relu(dst, g, pack_of(net, a, vgg19_layer_conv(l)), a->out[l - 1], Hi, Wi, &a->ws);
            else conv3x3_backward_input(dst, g, pack_of(net, a, vgg19_layer_conv(l)), Hi, Wi, &a->ws);
            relu_done = fuse;
            break;
        }
        case VGG_RELU:
            /* out[l] holds max(x,0): positive exactly where x is, so it serves as the mask */
            if (!relu_done) relu_backward(g, g, a->out[l], n);
            relu_done = 0;
            continue; /* in place: g stays the current buffer */
        case VGG_POOL: {
            int fuse = vgg19_layer_kind(l - 1) == VGG_RELU && !(tap && tap[l - 1]);
            maxpool2x2_backward(dst, g, a->out[l - 1], a->C[l - 1], Hi, Wi, fuse);
            relu_done = fuse;
            break;
        }
        }
        float *t = g;
        g = spare;
        spare = t;
    }
}

/* ---- pre/post-processing ----------------------------------------------------------------- */

const float vgg19_mean_bgr[3] = {103.939f, 116.779f, 123.68f};
#define CAFFE_MEAN_BGR vgg19_mean_bgr

void vgg19_preprocess_planes(float *x, const float *rgb, size_t hw) {
    for (int c = 0; c < 3; c++) /* BGR plane c takes RGB plane 2-c */
        for (size_t i = 0; i < hw; i++) x[c * hw + i] = rgb[(2 - c) * hw + i] - CAFFE_MEAN_BGR[c];
}

void vgg19_preprocess(float *x, const nst_image *img) {
    size_t hw = (size_t)img->width * img->height;
    for (size_t i = 0; i < hw; i++)
        for (int c = 0; c < 3; c++) /* BGR plane c takes RGB channel 2-c */
            x[c * hw + i] = img->pixels[i * 3 + (2 - c)] - CAFFE_MEAN_BGR[c];
}

void vgg19_deprocess(nst_image *img, const float *x) {
    size_t hw = (size_t)img->width * img->height;
    for (size_t i = 0; i < hw; i++)
        for (int c = 0; c < 3; c++) {
            float v = x[c * hw + i] + CAFFE_MEAN_BGR[c];
            img->pixels[i * 3 + (2 - c)] = v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v;
        }
}

int vgg19_min_side(int depth) {
    int side = 1;
    for (int l = 0; l < depth && l < NST_NUM_LAYERS; l++)
        if (vgg19_layer_kind(l) == VGG_POOL) side *= 2;
    return side;
}

int vgg19_taps_depth(const nst_tap *a, int na, const nst_tap *b, int nb) {
    int depth = 0;
    for (int i = 0; i < na; i++)
        if (a[i].layer + 1 > depth) depth = a[i].layer + 1;
    for (int i = 0; i < nb; i++)
        if (b[i].layer + 1 > depth) depth = b[i].layer + 1;
    return depth;
}
