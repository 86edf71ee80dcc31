/*
 * nst.h - the one public header of libnst, neural style transfer in C11.
 *
 * Conventions
 *   - Every function that can fail returns an nst_status and, on failure, writes a
 *     one-line message into the caller's nst_error (it names the file and the problem).
 *   - The library has no global mutable state; all state lives in the objects below.
 *   - It reads the environment only where a function says so: nst_limits_from_env,
 *     nst_tuning_from_env, and the search for weights and models when no path is given
 *     (docs/environment.md lists every variable). It writes no file outside the paths and
 *     folders it is given (a config's tuning names the cuDNN cache and the rescue folder).
 *   - Images are RGB, interleaved (H,W,3), float pixel values in 0..255.
 */
#ifndef NST_H
#define NST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NST_VERSION "0.1.0"

typedef enum {
    NST_OK = 0,
    NST_ERR_ARG,         /* bad argument or configuration (a usage error for the CLI) */
    NST_ERR_IO,          /* a file could not be opened, read or written */
    NST_ERR_FORMAT,      /* a file is not what it should be: corrupt, truncated, wrong shape */
    NST_ERR_LIMIT,       /* a size limit was exceeded (refused before allocating) */
    NST_ERR_NOMEM,       /* out of memory */
    NST_ERR_INTERRUPTED  /* the caller asked to stop; results so far are still valid */
} nst_status;

typedef struct {
    char msg[1024];
} nst_error;

/* Human-readable name of a status code, e.g. "i/o error". */
const char *nst_status_name(nst_status s);

/* ------------------------------------------------------------------------- */
/* Devices                                                                   */
/* ------------------------------------------------------------------------- */

typedef enum {
    NST_DEVICE_AUTO = 0, /* CUDA when this build has it and a GPU is present, else the CPU */
    NST_DEVICE_CPU = 1,
    NST_DEVICE_CUDA = 2
} nst_device;

/* Parses "auto", "cpu" or "cuda". */
nst_status nst_device_parse(const char *name, nst_device *dev, nst_error *err);
/* "auto", "cpu" or "cuda". */
const char *nst_device_name(nst_device dev);
/* Turns a requested device into the one to use: AUTO becomes CUDA or CPU; CUDA is checked
 * (this build has CUDA, a driver and a GPU are there) and refused with the reason if not. */
nst_status nst_device_resolve(nst_device requested, nst_device *resolved, nst_error *err);
/* One line about the GPU that CUDA would use (name, memory, compute capability, CUDA and
 * cuDNN versions), or why there is none. */
void nst_cuda_describe(char *buf, size_t size);

/* Arithmetic of the convolutions. Grams, losses, optimiser state, the image and a trained
 * network's master weights are fp32 whatever the choice. */
typedef enum {
    NST_PRECISION_FP32 = 0, /* IEEE fp32 throughout (the default; what the oracle tests run) */
    NST_PRECISION_TF32 = 1, /* CUDA: convolutions (cuDNN) and Grams (cuBLAS) on TF32 tensor
                               cores (Ampere and newer): faster, final losses within 1% of fp32 */
    NST_PRECISION_FP16 = 2, /* CUDA, applying a style network only (nst_style_net_set_device):
                               fp16 activations and tensor cores, float statistics; ~1e-3 relative */
    NST_PRECISION_BF16 = 3, /* CPU: convolutions with bf16 inputs and fp32 sums, on AMX or
                               AVX512-BF16 (refused where the CPU has neither; see
                               docs/precision.md for the measured error and speed) */
    NST_PRECISION_AUTO = 4  /* BF16 on a CPU that has AMX-BF16 or AVX512-BF16, else FP32;
                               FP32 on CUDA */
} nst_precision;

/* "fp32", "tf32", "fp16", "bf16" or "auto". */
const char *nst_precision_name(nst_precision p);

/* ------------------------------------------------------------------------- */
/* Images                                                                    */
/* ------------------------------------------------------------------------- */

/* An image: RGB colour, and what a file may carry beside it. The colour of a pixel with
 * alpha < 255 is composited on white (what a viewer shows on a white page), so that the
 * networks see what the user sees; the alpha is kept apart so that it can be written
 * back (a format with alpha gets the colour that, composited on white again, gives the
 * pixels). nst_image_free frees every field; a zeroed nst_image is empty. */
typedef struct {
    int width, height;
    float *pixels;       /* (height, width, 3) RGB, 0..255 */
    float *alpha;        /* NULL (opaque), or (height, width) 0..255 */
    unsigned char *icc;  /* the colour profile (ICC) as stored in the file, or NULL (an RGB
                            profile only: a grey or CMYK one does not describe the pixels) */
    size_t icc_size;
    unsigned char *exif; /* EXIF as a TIFF structure ("II*\0" or "MM\0*" onward), or NULL;
                            its orientation is already applied to the pixels and reset to 1 */
    size_t exif_size;
    int bit_depth;       /* of the source file's samples: 8 or 16 (0: not from a file) */
} nst_image;

/* File formats, detected from the content when reading, never from the name. */
typedef enum {
    NST_FORMAT_AUTO = 0, /* when saving: from the path's extension */
    NST_FORMAT_PNG,      /* read: 1-16 bit, grey/palette/RGB, alpha; write: 8 or 16 bit, alpha */
    NST_FORMAT_JPEG,     /* read: grey/RGB/CMYK, EXIF orientation; write: quality, 4:4:4 */
    NST_FORMAT_WEBP,     /* read: lossy/lossless, alpha (first frame); write: quality, alpha */
    NST_FORMAT_TIFF,     /* read: 8/16 bit, grey/RGB/palette/CMYK, alpha; write: 8/16 bit, alpha */
    NST_FORMAT_BMP,      /* read only: 1-32 bit, uncompressed and RLE */
    NST_FORMAT_GIF,      /* read only: the first frame, transparency */
    NST_FORMAT_PPM       /* read only: binary P5/P6, 8 or 16 bit */
} nst_format;

/* "png", "jpeg", "webp", "tiff", "bmp", "gif", "ppm" ("auto" for NST_FORMAT_AUTO). */
const char *nst_format_name(nst_format f);
/* A format from a name or an extension, any case, with or without the dot ("jpg",
 * ".JPEG", "tif", "webp", ...): NST_OK, or NST_ERR_ARG naming what is supported. */
nst_status nst_format_parse(const char *name, nst_format *f, nst_error *err);
/* The format that the extension of path names when saving (png, jpg/jpeg, webp, tif/tiff):
 * NST_OK, or NST_ERR_ARG with a message naming path and the writable formats. */
nst_status nst_format_for_path(const char *path, nst_format *f, nst_error *err);
/* 1 if nst can write f. */
int nst_format_writable(nst_format f);
/* The format of a file from its first bytes (n of them; 18 are enough: with fewer, "BM"
 * alone counts as BMP, with 18 the size of its header must be a BMP's), or
 * NST_FORMAT_AUTO if none is recognised. */
nst_format nst_format_detect(const void *head, size_t n);

/* Default limit on decoded pixels (width*height); checked before allocating. */
#define NST_DEFAULT_MAX_PIXELS ((size_t)100 * 1000 * 1000)
/* Largest width or height accepted for any image. */
#define NST_MAX_DIMENSION 65535

/* Limits on what input files may make nst allocate, checked before anything the size of
 * the input is allocated. The default of a field is used where it is 0, and for both
 * where a function is given NULL. They apply to images (nst_image_load, and the images a
 * transfer or a training reads: set cfg->limits) and to model files and checkpoints
 * (nst_style_net_load, --resume). The VGG19 weights are bounded by their own fixed sizes. */
typedef struct {
    size_t max_pixels;     /* width*height of a decoded image (default NST_DEFAULT_MAX_PIXELS) */
    size_t max_file_bytes; /* size of an input file (default NST_DEFAULT_MAX_FILE_BYTES) */
} nst_limits;

#define NST_DEFAULT_MAX_FILE_BYTES ((size_t)1024 << 20) /* 1024 MB */
/* Environment variables read by nst_limits_from_env (and so by the nst command). */
#define NST_MAX_PIXELS_ENV "NST_MAX_PIXELS"
#define NST_MAX_FILE_MB_ENV "NST_MAX_FILE_MB"

typedef enum { NST_LIMIT_PIXELS, NST_LIMIT_FILE_MB } nst_limit_kind;

/* Sets one limit from a user's text: a whole number of pixels (1 .. 65535*65535) or of
 * megabytes (1 MB = 1048576 bytes; 1 .. 1048576). source names where the text came
 * from, for the message (e.g. "--max-pixels" or "NST_MAX_PIXELS"). On a bad value:
 * NST_ERR_ARG, a one-line message, lim unchanged. */
nst_status nst_limits_set(nst_limits *lim, nst_limit_kind which, const char *text, const char *source,
                          nst_error *err);
/* Reads the environment: sets the limits that $NST_MAX_PIXELS and $NST_MAX_FILE_MB give
 * (a variable that is unset or empty leaves its limit as it is). */
nst_status nst_limits_from_env(nst_limits *lim, nst_error *err);

#define NST_PATH_MAX 4096

/* Settings for testing, measuring and experimenting: which kernels run, how the CUDA path
 * chooses and keeps its algorithms. A zeroed struct (or NULL where a function takes a
 * pointer) gives the defaults, which are what nst normally runs. The library reads no
 * environment for these: nst_tuning_from_env fills the struct once (the nst command calls
 * it), and the configs below carry it to where it is used. docs/environment.md lists
 * every variable. None of these fields changes what is computed beyond the choice of
 * kernels (the same bits for a given choice). */
typedef enum {
    NST_KERNEL_BEST = 0,        /* the best this CPU has: AVX-512, else AVX2+FMA, else portable;
                                   for bf16, AMX, else AVX512-BF16 */
    NST_KERNEL_PORTABLE = 1,    /* NST_KERNEL=portable */
    NST_KERNEL_AVX2 = 2,        /* NST_KERNEL=avx2: at most AVX2 (portable where it is missing) */
    NST_KERNEL_AVX512 = 3,      /* NST_KERNEL=avx512: AVX-512 fp32 kernels, no bf16 ones */
    NST_KERNEL_AVX512_BF16 = 4  /* NST_KERNEL=avx512bf16: bf16 on AVX512-BF16 even with AMX */
} nst_kernel;

typedef enum {
    NST_CUDNN_SEARCH_DEFAULT = 0,   /* each path's own choice (a transfer measures, the rest
                                       take cuDNN's heuristics) */
    NST_CUDNN_SEARCH_HEURISTIC = 1, /* NST_CUDNN_SEARCH=0 (or any other value) */
    NST_CUDNN_SEARCH_MEASURE = 2,   /* NST_CUDNN_SEARCH=1: measure the algorithms */
    NST_CUDNN_SEARCH_FLIP = 3,      /* "flip" (tests): measure, the backward pass only on flipped
                                       forward convolutions (VGG19) */
    NST_CUDNN_SEARCH_OWN = 4        /* "own" (tests): measure, and take nst's own kernels
                                       wherever they apply (VGG19) */
} nst_cudnn_search;

typedef struct {
    /* CPU. They take effect where the weights are packed for the fast kernels:
     * nst_vgg19_load_tuned, nst_style_net_set_tuning and the network nst_train_run builds. */
    nst_kernel kernel; /* $NST_KERNEL: cap on the instruction set (default: the best) */
    int conv_direct;   /* $NST_CONV=direct: 1 = no Winograd, the direct AVX-512 kernel */
    /* CUDA (transfer, train and bench configs; nst_style_net_set_tuning) */
    nst_cudnn_search cudnn_search; /* $NST_CUDNN_SEARCH */
    char cudnn_cache[NST_PATH_MAX]; /* the file of measured cuDNN algorithms, read and appended
                                       to ("": none, the default: the library writes no file) */
    int cudnn_cache_mkdir; /* 1: create the cache file's folder and the one above it where
                              missing (for the default location, ~/.cache/nst) */
    int cuda_no_own_conv;  /* $NST_CUDA_OWN_CONV=0: cuDNN for the style network's 9x9 layers */
    int cuda_profile;      /* $NST_CUDA_PROFILE=1: per-layer timings (bench; the style
                              network's and the trainer's profile) */
    int cuda_no_graph;     /* $NST_CUDA_GRAPH=0: launch each kernel instead of CUDA graphs */
    int cuda_one_stream;   /* $NST_CUDA_LOSS_STREAM=0: a transfer's losses on the main stream */
    int cuda_lanes;        /* $NST_CUDA_LANES: the trainer's parallel lanes, 1..8 (0: 4) */
    /* files */
    char tmp_dir[NST_PATH_MAX]; /* $TMPDIR: where a training that cannot write its checkpoint
                                   rescues it ("": /tmp) */
    /* Where the library's messages go (the profiles cuda_profile asks for, and a warning
     * where a CUDA graph cannot be captured): one line at a time, without its newline.
     * NULL (the default): dropped. The library prints nothing itself. */
    void (*log)(void *user, const char *line);
    void *log_user;
} nst_tuning;

/* Fills *t from the environment (each variable as the comments above say; unset or empty:
 * the default). Values it does not know are ignored as they always were: NST_KERNEL other
 * than portable, avx2, avx512 or avx512bf16 is the best kernel, NST_CUDNN_SEARCH other than 1, flip or own is
 * the heuristics, NST_CUDA_LANES out of 1..8 is 4, a too long path is no path. The cuDNN
 * cache is $NST_CUDNN_CACHE ("0" or empty: none), else $XDG_CACHE_HOME/nst/cudnn-algos.txt,
 * else $HOME/.cache/nst/cudnn-algos.txt. Always NST_OK (err is for the future). */
nst_status nst_tuning_from_env(nst_tuning *t, nst_error *err);

/* What a CPU run with precision p computes in, FP32 or BF16: AUTO becomes BF16 where this
 * CPU has bf16 instructions that the tuning's kernel allows (NULL: the defaults), else FP32;
 * BF16 is refused with the reason where it has none; FP32 stays, and so do TF32 and FP16
 * (CUDA's: on the CPU those runs compute in fp32). */
nst_status nst_precision_resolve_cpu(nst_precision p, const nst_tuning *tuning, nst_precision *resolved,
                                     nst_error *err);
/* The bf16 kernels a CPU run would use under the tuning's kernel cap (NULL: the defaults):
 * "amx", "avx512bf16", or NULL where there are none. */
const char *nst_cpu_bf16_kernel(const nst_tuning *tuning);
/* The same for a resolved device: the CPU as above; CUDA keeps FP32, TF32 and FP16, takes
 * AUTO as FP32, and refuses BF16 (not on CUDA yet). */
nst_status nst_precision_resolve(nst_device device, nst_precision p, const nst_tuning *tuning,
                                 nst_precision *resolved, nst_error *err);

/* Allocates width*height RGB pixels, zero-filled. */
nst_status nst_image_alloc(nst_image *img, int width, int height, nst_error *err);
void nst_image_free(nst_image *img);

/* Decodes an image file of any format above, detected by content (not by extension);
 * fills the alpha, ICC profile, EXIF and bit depth where the file has them. An EXIF or
 * TIFF orientation is applied to the pixels (JPEG, PNG, WebP, TIFF). Only regular files
 * are read (a pipe or a device is refused: read it yourself and use nst_image_decode).
 * limits: NULL for the defaults; a larger file or image is refused (NST_ERR_LIMIT). Content
 * of no known format fails with NST_ERR_FORMAT and
 * "PATH: not an image nst can read (PNG, JPEG, WebP, TIFF, BMP, GIF, PPM)". */
nst_status nst_image_load(nst_image *img, const char *path, const nst_limits *limits, nst_error *err);
/* The same from memory (e.g. a photo read from standard input); name stands for the file
 * in messages (e.g. "<stdin>"; NULL: "<memory>"). size is checked against
 * limits->max_file_bytes too, but the caller reading a stream should stop at that limit
 * itself. */
nst_status nst_image_decode(nst_image *img, const void *data, size_t size, const char *name,
                            const nst_limits *limits, nst_error *err);

/* Lists the image files (.jpg, .jpeg, .png, .webp, .tif, .tiff, .bmp, .gif, .ppm, .pgm, any
 * case; not hidden ones) of the folder dir, sorted by name (strcmp), as paths "dir/name"
 * (*paths: count strings; free with nst_free_paths). Fails with a one-line message naming
 * dir if it cannot be read (NST_ERR_IO) or holds no image files (NST_ERR_ARG). */
nst_status nst_list_images(const char *dir, char ***paths, int *count, nst_error *err);
void nst_free_paths(char **paths, int count);

/* How to encode. A zeroed struct (or NULL) means: the format from the extension, the
 * default quality, 8 bits, and the image's alpha, ICC profile and EXIF written where the
 * format holds them. */
typedef struct {
    nst_format format; /* AUTO: from the path's extension */
    int quality;       /* JPEG and WebP, 1..100 (0: 95 for JPEG, 90 for WebP) */
    int bit_depth;     /* 8 (0: the default) or 16 (PNG and TIFF only) */
    int strip;         /* 1: write neither the ICC profile nor EXIF */
} nst_save_options;

/* Encodes by the file's extension: .png, .jpg/.jpeg, .webp, .tif/.tiff (see
 * nst_save_options for the rest). Atomic: written to a temporary file in the same folder,
 * fsynced, then renamed, so that the path holds either the old file or the complete new
 * one. An alpha channel is written where the format has one (PNG, WebP, TIFF; JPEG: the
 * colour as composited on white). The ICC profile goes into PNG, JPEG, WebP and TIFF,
 * EXIF into PNG, WebP and JPEG (there only up to 65527 bytes, one APP1 marker). Refused
 * with NST_ERR_ARG: another extension ("PATH: unknown image file extension (supported:
 * .png, .jpg, .jpeg, .webp, .tif, .tiff)"; for .bmp, .gif, .ppm the same with "; nst reads
 * GIF but does not write it" before the ")"), 16 bits for JPEG or WebP, a quality out of
 * 1..100, a WebP over 16383 or a JPEG over 65500 pixels per side. */
nst_status nst_image_save(const nst_image *img, const char *path, nst_error *err);
nst_status nst_image_save_as(const nst_image *img, const char *path, const nst_save_options *opt,
                             nst_error *err);
/* The same into memory (e.g. for standard output): *data (free() it), *size.
 * opt->format must name a format (not AUTO). */
nst_status nst_image_encode(const nst_image *img, const nst_save_options *opt, unsigned char **data,
                            size_t *size, nst_error *err);

/* Gives dst what src carries beside its colour: the alpha (resampled to dst's size with
 * the filter of nst_image_resize), the ICC profile and EXIF (copied) and the bit depth;
 * what src lacks, dst loses. For a result made from a photo, so that it is saved with the
 * photo's transparency and colour profile. */
nst_status nst_image_copy_extras(nst_image *dst, const nst_image *src, nst_error *err);

/* The size of a w x h image scaled so that its longer side is `side`, the aspect ratio
 * kept (rounded to the nearest pixel, at least 1). */
void nst_image_fit_size(int w, int h, int side, int *out_w, int *out_h);

/* High-quality resampling to width x height: Lanczos-3, widened by the scale factor
 * when downscaling (so it averages like an area filter and does not alias). The alpha is
 * resampled the same way; the ICC profile, EXIF and bit depth are copied. */
nst_status nst_image_resize(nst_image *dst, const nst_image *src, int width, int height,
                            nst_error *err);

/* ------------------------------------------------------------------------- */
/* VGG19 feature network                                                     */
/* ------------------------------------------------------------------------- */

typedef struct nst_vgg19 nst_vgg19;

/* Environment variable naming the weights folder. */
#define NST_WEIGHTS_ENV "NST_WEIGHTS"

/* Loads the VGG19 weights (TensorFlow.js layers-model, uint8-quantized) from dir.
 * dir = NULL searches: $NST_WEIGHTS, then ../shared/models/vgg19 beside the source
 * checkout the library was built from, beside the executable, and beside the current
 * directory. depth: how many layers will be run (e.g. nst_transfer_depth(); 0 = all):
 * only their convolutions are prepared for the fast kernels, which saves memory. */
nst_status nst_vgg19_load(nst_vgg19 **net, const char *dir, int depth, nst_error *err);
/* The same with the CPU kernels that tuning chooses (its kernel and conv_direct; NULL:
 * the defaults, as nst_vgg19_load): every CPU run on this network uses them. */
nst_status nst_vgg19_load_tuned(nst_vgg19 **net, const char *dir, int depth, const nst_tuning *tuning,
                                nst_error *err);
void nst_vgg19_free(nst_vgg19 *net);
/* Folder the weights were read from. */
const char *nst_vgg19_dir(const nst_vgg19 *net);

/* Layer names: conv1_1..conv5_4 (before ReLU), relu1_1..relu5_4, pool1..pool5.
 * Returns the layer's index in the network's sequence, or -1 if the name is unknown. */
int nst_layer_index(const char *name);
const char *nst_layer_name(int index);
#define NST_NUM_LAYERS 37 /* 16 conv + 16 relu + 5 pool */

/* ------------------------------------------------------------------------- */
/* Optimization-based style transfer (Gatys et al.)                          */
/* ------------------------------------------------------------------------- */

#define NST_MAX_TAPS 16
#define NST_MAX_STYLES 8

typedef struct {
    int layer;    /* nst_layer_index() */
    float weight; /* per-layer weight */
} nst_tap;

typedef enum { NST_OPT_ADAM = 0, NST_OPT_LBFGS = 1 } nst_optimizer;
typedef enum {
    NST_INIT_CONTENT = 0,
    NST_INIT_NOISE = 1,
    NST_INIT_FILE = 2, /* init_file */
    NST_INIT_IMAGE = 3 /* init_image: e.g. a one-pass result (nst_universal_apply) */
} nst_init;
typedef enum {
    NST_GRAM_RAW = 0,       /* G = F F^T (the seed notebook) */
    NST_GRAM_NORMALIZED = 1 /* G = F F^T / (C*H*W), as in Johnson's neural-style */
} nst_gram_norm;

typedef struct {
    /* geometry */
    int size;   /* longer side of the result in pixels */
    int squash; /* 1: content and style are resized to size x size (the seed notebook);
                   0: content keeps its aspect ratio, style is scaled to the same longer side */
    float style_scale; /* style images' longer side = style_scale * size (when not squashed) */
    int preserve_colors; /* 1: keep the content's colours (style transferred in luminance only) */
    /* loss */
    int n_content_taps, n_style_taps;
    nst_tap content_taps[NST_MAX_TAPS];
    nst_tap style_taps[NST_MAX_TAPS];
    nst_gram_norm gram_norm;
    float content_weight, style_weight, tv_weight;
    /* optimization */
    nst_optimizer optimizer;
    int steps;
    float lr;          /* Adam step size, in 0..255 pixel units */
    int lbfgs_history; /* L-BFGS memory */
    nst_init init;
    const char *init_file; /* with NST_INIT_FILE */
    const nst_image *init_image; /* with NST_INIT_IMAGE: any size, resized onto the result
                                    like the content (as a file's is); borrowed for the run */
    uint64_t seed;         /* noise initialisation */
    int threads;           /* 0: the OpenMP default (OMP_NUM_THREADS or all cores); see
                              nst_transfer_run for its scope */
    int save_every;        /* snapshot period in steps (0: none); used by the caller's callback */
    nst_limits limits;     /* for --init FILE (zero: the defaults) */
    nst_device device;     /* AUTO (the presets' default): CUDA if there is a GPU, else the CPU */
    nst_precision precision; /* FP32 (the default), BF16 or AUTO on the CPU; FP32 or TF32 on CUDA */
    nst_tuning tuning;       /* CUDA's settings; the CPU's kernel cap for a bf16 run's own packs
                                (the fp32 ones are the network's) */
} nst_transfer_config;

/* Layers a transfer with this configuration runs: the deepest tap + 1. */
int nst_transfer_depth(const nst_transfer_config *cfg);

/* Fills cfg with a named preset: "gatys" (the default) or "seed" (the original notebook).
 * Returns NST_ERR_ARG for an unknown name. */
nst_status nst_transfer_preset(nst_transfer_config *cfg, const char *name, nst_error *err);

typedef struct {
    int step, steps;         /* step = number of completed steps */
    double elapsed_s;
    double content_loss, style_loss, tv_loss, total_loss; /* weighted, at the last step */
} nst_progress;

/* Called after every step. Return nonzero to stop early (e.g. on Ctrl-C).
 * nst_transfer_snapshot() may be called from inside it to get the current image. */
typedef struct nst_transfer nst_transfer;
typedef int (*nst_progress_fn)(nst_transfer *t, const nst_progress *p, void *user);

/* Runs a whole transfer. cfg->threads > 0 sets the OpenMP thread count of the calling
 * thread (omp_set_num_threads) for the call and restores it before returning: nst's
 * parallel regions use it, the caller's own regions afterwards do not (the same for
 * nst_train_run and nst_bench_run). styles/blend: n_styles style images and their blend weights
 * (NULL: equal). result receives the final image (or the latest one when stopped:
 * then the status is NST_ERR_INTERRUPTED and result is still valid). */
nst_status nst_transfer_run(const nst_transfer_config *cfg, const nst_vgg19 *net,
                            const nst_image *content, const nst_image *styles,
                            const float *blend, int n_styles, nst_progress_fn progress,
                            void *user, nst_image *result, nst_error *err);

/* The current image of a running transfer (allocates img; free with nst_image_free). */
nst_status nst_transfer_snapshot(const nst_transfer *t, nst_image *img, nst_error *err);

/* Keeps the original's colours: the stylized image's luminance with the original's
 * chroma (YIQ). The original is resampled to the stylized image's size if needed. */
nst_status nst_image_preserve_colors(nst_image *stylized, const nst_image *original, nst_error *err);

/* The style's strength: stylized = strength * stylized + (1 - strength) * original, pixel
 * by pixel (strength in 0..1: 0 gives the original, 1 leaves stylized as it is). The
 * original is resampled to the stylized image's size if needed. */
nst_status nst_image_mix(nst_image *stylized, const nst_image *original, float strength, nst_error *err);
/* How close two images of one size are: PSNR in dB over the RGB values (0..255; +inf
 * when identical), and SSIM (Wang et al. 2004) of their luma with the paper's 11-tap
 * Gaussian window (sigma 1.5; renormalised at the borders), C1 = (0.01 x 255)^2,
 * C2 = (0.03 x 255)^2, the map's mean (1 when identical). */
nst_status nst_image_psnr(const nst_image *a, const nst_image *b, double *psnr, nst_error *err);
nst_status nst_image_ssim(const nst_image *a, const nst_image *b, double *ssim, nst_error *err);

/* Captions (a contact sheet's): text in a 5x7 pixel font (letters, upper case for both
 * cases; digits; - _ . : , ( ) and space; '?' for anything else), each pixel scale x
 * scale, the top-left corner at (x, y), in the colour rgb (0..255); clipped to the image.
 * nst_text_width: the width that text takes (its height is 7 x scale). */
void nst_image_draw_text(nst_image *img, int x, int y, const char *text, int scale, const float rgb[3]);
int nst_text_width(const char *text, int scale);

/* ------------------------------------------------------------------------- */
/* Fast (feed-forward) style transfer (Johnson et al.)                       */
/* ------------------------------------------------------------------------- */

/* A trained style network: a model file (.nstm, see docs/model-format.md). */
typedef struct nst_style_net nst_style_net;

/* Environment variable naming a folder of model files (searched by nst_style_net_load). */
#define NST_MODELS_ENV "NST_MODELS"

/* The folders searched for styles by name, in order ($NST_MODELS, the checkout's models/,
 * models/ and ../models beside the executable; some may not exist): writes up to max of
 * them into dirs and returns how many. */
int nst_style_dirs(char dirs[][NST_PATH_MAX], int max);

/* The styles nst_style_net_load finds by name, sorted by name: each NAME.nstm in the
 * folders of nst_style_dirs (an earlier folder's hides a later one's), and each style of
 * a file of several by its own name (unless a file of that name, or an earlier file,
 * has it). Returns their count, *list a malloc'd array (free() it; NULL when 0), or -1
 * with err when out of memory. Reads every model file of those folders. */
typedef struct {
    char name[128];          /* what nst_style_net_load takes */
    char path[NST_PATH_MAX]; /* the model file */
    int style;               /* the style in that file; -1: a file of several itself */
    int n_styles;            /* the file's styles (1: a network of one style) */
} nst_style_entry;
int nst_style_list(nst_style_entry **list, const nst_limits *limits, nst_error *err);

/* Loads a model file, or a style by name (a name contains no '/' and no '.'): as
 * nst_style_list finds it, NAME.nstm in $NST_MODELS, in the models/ folder of the
 * checkout the library was built from and in models/ beside the executable, or a style
 * of a file of several there. limits: NULL for the defaults. */
nst_status nst_style_net_load(nst_style_net **net, const char *path_or_name, const nst_limits *limits,
                              nst_error *err);
void nst_style_net_free(nst_style_net *net);
/* The file it was loaded from; a metadata string ("style", "command", ...) or NULL;
 * the network's width (32: standard, 16: slim). */
const char *nst_style_net_path(const nst_style_net *net);
const char *nst_style_net_meta(const nst_style_net *net, const char *key);
int nst_style_net_width(const nst_style_net *net);
/* The number of residual blocks; the metadata's keys, in the file's order (i in
 * 0..nst_style_net_meta_count()-1; NULL out of range), for listing the whole record. */
int nst_style_net_res_blocks(const nst_style_net *net);
int nst_style_net_meta_count(const nst_style_net *net);
const char *nst_style_net_meta_key(const nst_style_net *net, int i);

/* Stylises img (any size >= 1x1) into out (allocated, the same size). The network keeps
 * scratch memory from call to call (sized for the last image), so one nst_style_net
 * serves one thread at a time. */
nst_status nst_style_net_apply(nst_style_net *net, const nst_image *img, nst_image *out,
                               nst_error *err);

/* Where nst_style_net_apply runs: NST_DEVICE_CPU (the default after loading), NST_DEVICE_CUDA
 * (refused with the reason when this build or machine has no GPU) or NST_DEVICE_AUTO (CUDA
 * when there is a GPU, else the CPU). On CUDA the parameters are copied to the GPU once;
 * each image is one upload, the network, one download, and the GPU buffers are kept for
 * the last image size. precision: on the CPU, FP32, BF16 or AUTO (nst_precision_resolve;
 * the weights are repacked when it changes); on CUDA, NST_PRECISION_FP32 computes what the
 * CPU does in fp32 (to ~1e-5); NST_PRECISION_TF32 runs the convolutions on TF32 tensor
 * cores; NST_PRECISION_FP16 runs the network in fp16 (NHWC, tensor cores, float
 * statistics; ~1e-3 relative, under 1 of 255 on the shipped styles). */
nst_status nst_style_net_set_device(nst_style_net *net, nst_device device, nst_precision precision,
                                    nst_error *err);
/* The tuning of the network's kernels (NULL: the defaults, as after loading): the CPU
 * kernels (repacked now) and the CUDA settings, which nst_style_net_set_device takes, so
 * call this first. */
nst_status nst_style_net_set_tuning(nst_style_net *net, const nst_tuning *tuning, nst_error *err);
/* A model file may hold several styles (nst train with several paintings: the
 * convolutions shared, a scale and shift per style in every norm). Loading it selects
 * the first, or the one named as FILE.nstm:NAME. nst_style_net_styles: how many (1 for
 * a network of one style); nst_style_net_style_name: style i's name (NULL for one style
 * or i out of range); nst_style_net_set_mix: runs the mix sum_i weights[i] style_i of the
 * norms' scales and shifts (nst_style_net_styles weights, >= 0, not all 0; divided by
 * their sum): a one-hot weight selects a style, others blend them (Dumoulin et al.);
 * the network stays on its device. */
int nst_style_net_styles(const nst_style_net *net);
const char *nst_style_net_style_name(const nst_style_net *net, int i);
nst_status nst_style_net_set_mix(nst_style_net *net, const float *weights, nst_error *err);
/* The device nst_style_net_apply runs on: NST_DEVICE_CPU or NST_DEVICE_CUDA. */
nst_device nst_style_net_device(const nst_style_net *net);

/* ---- any painting in one pass: universal style transfer (Li et al. 2017) ------------ */

/* The decoders (nst train --decoder) with the VGG19 they invert. The photo's features are
 * whitened and coloured with the painting's (WCT) at each level a decoder is there for,
 * relu5_1 down to relu1_1, or only at relu4_1 by AdaIN (Huang & Belongie 2017), and each
 * level's image is decoded and re-encoded for the next. */
typedef struct nst_universal nst_universal;
typedef enum { NST_UNIVERSAL_WCT = 0, NST_UNIVERSAL_ADAIN = 1 } nst_universal_method;

/* The folder of decoders a bare nst_universal_load finds: universal/ in the style folders
 * of nst_style_dirs (the first that has relu1_1.nstm ... relu5_1.nstm, any of them). */
#define NST_DECODERS_DIR "universal"

/* Loads the decoders relu1_1.nstm .. relu5_1.nstm found in dir (NULL: the first style
 * folder's universal/ that has any). vgg: loaded to relu5_1's depth (nst_layer_index +
 * 1) or deeper than the deepest decoder; borrowed. NST_ERR_IO when there is none. */
nst_status nst_universal_load(nst_universal **u, const nst_vgg19 *vgg, const char *dir, const nst_limits *limits,
                              nst_error *err);
void nst_universal_free(nst_universal *u);
/* The folder the decoders came from; which levels (bit k: relu<k>_1's decoder) it has. */
const char *nst_universal_dir(const nst_universal *u);
int nst_universal_levels(const nst_universal *u);
/* The arithmetic of the convolutions (the CPU's; nst_precision_resolve_cpu): FP32 (the
 * default) or BF16 (AUTO: where the CPU has it), for the paintings set after it and every
 * photo; the statistics and transforms stay in double and float. */
nst_status nst_universal_set_precision(nst_universal *u, nst_precision precision, const nst_tuning *tuning,
                                       nst_error *err);
nst_precision nst_universal_precision(const nst_universal *u);
/* WCT at the levels up to relu<deepest>_1 (1..5) of those the decoders are there for
 * (the default NST_UNIVERSAL_LEVELS: relu4_1 .. relu1_1): fewer keep more of the photo,
 * relu5_1 repaints the most and keeps little of it. Before nst_universal_set_styles.
 * NST_ERR_ARG when none of the decoders is that shallow. */
#define NST_UNIVERSAL_LEVELS 4
nst_status nst_universal_set_levels(nst_universal *u, int deepest, nst_error *err);
/* The paintings and their mix (weights >= 0, not all 0; divided by their sum), encoded
 * now, once, for every photo after. n: 1..16. AdaIN needs relu4_1's decoder. */
nst_status nst_universal_set_styles(nst_universal *u, const nst_image *const *paintings, const float *weights, int n,
                                    nst_universal_method method, nst_error *err);
/* After nst_universal_set_styles: NULL, or what the caller should tell the user (a
 * painting too small for a level's covariance). */
const char *nst_universal_note(const nst_universal *u);
/* One decoder file's record, for listing it (nst info): its level k (relu<k>_1), width,
 * size in floats, and its metadata strings ("command", "steps", ...) as key/value pairs in
 * the file's order, valid until nst_decoder_info_free. NST_ERR_FORMAT, saying what the
 * file is, for a file that is not a decoder. */
typedef struct {
    int level, width, n_meta;
    size_t n_params;
    const char **keys, **values;
    void *model; /* the file, owned */
} nst_decoder_info;
nst_status nst_decoder_info_load(nst_decoder_info *info, const char *path, const nst_limits *limits, nst_error *err);
void nst_decoder_info_free(nst_decoder_info *info);
/* photo -> out (the photo's size), at strength 0..1 (0: the photo through the decoders). */
nst_status nst_universal_apply(nst_universal *u, const nst_image *photo, float strength, nst_image *out,
                               nst_error *err);

typedef struct {
    const char *style_path;      /* the painting */
    const char *const *style_paths; /* or, n_styles > 1 of them: one network for all (its
                                    convolutions shared, a norm's scale and shift per style:
                                    conditional instance norm); a photo's style in a batch
                                    goes round robin. CPU only. */
    int n_styles;
    const char *data_dir;        /* folder of training photos */
    const char *output_path;     /* the model file (.nstm); also rewritten at each checkpoint */
    const char *checkpoint_path; /* training state for --resume (default: OUTPUT.ckpt) */
    const char *resume_path;     /* NULL, or a checkpoint to continue from */
    const char *command;         /* the command line, recorded in the model file */
    int steps, batch, size;      /* optimizer steps, photos per step, training crop size */
    int style_size;              /* longer side of the painting for its Gram targets */
    int photo_size;              /* the photos' scale: each random crop is resized to this and a
                                    size x size window cut from it (0: size, the whole crop) */
    int width, n_res;            /* network width (32 standard, 16 slim) and residual blocks */
    float lr;
    int n_content_taps, n_style_taps;
    nst_tap content_taps[NST_MAX_TAPS];
    nst_tap style_taps[NST_MAX_TAPS];
    float content_weight, style_weight, tv_weight;
    uint64_t seed;
    int threads;                 /* 0: the OpenMP default */
    int checkpoint_every;        /* steps between checkpoints (0: only at the end) */
    int holdout;                 /* photos held out of training: previews and evaluation */
    nst_limits limits;           /* for the painting, the photos and --resume (zero: defaults) */
    nst_device device;           /* AUTO (the default): CUDA if there is a GPU, else the CPU */
    nst_precision precision;     /* FP32 (the default), BF16 or AUTO on the CPU (the style network
                                    and the loss network); FP32 or TF32 on CUDA */
    nst_tuning tuning;           /* the style network's CPU kernels, CUDA's settings, tmp_dir */
    /* 1..5: train instead the decoder of universal style transfer that inverts VGG19's
     * relu<level>_1 (no painting; width: 64 is the full decoder): the loss is pixel_weight
     * x the mean squared pixel error (0..255) + content_weight x the mean squared error of
     * the reconstruction's relu<level>_1 features (tv_weight as above). CPU only. */
    int decoder_level;
    float pixel_weight;
} nst_train_config;

/* Fills cfg with the defaults (documented in the README). */
void nst_train_defaults(nst_train_config *cfg);
/* Layers the training's loss runs. */
int nst_train_depth(const nst_train_config *cfg);

typedef struct {
    int step, steps;
    double elapsed_s;        /* training time in all runs so far (a resumed run goes on from
                                the checkpoint's time) */
    int start_step;          /* the step this run started from (0, or the checkpoint's) */
    double start_elapsed_s;  /* elapsed_s at start_step: the rate is
                                (step - start_step) / (elapsed_s - start_elapsed_s) */
    double content_loss, style_loss, tv_loss, total_loss; /* weighted, mean over the batch */
    const char *checkpoint; /* non-NULL right after a checkpoint: the preview image written */
    const char *warning;    /* non-NULL if something non-essential failed (the preview) */
} nst_train_progress;
/* Called after every step; return nonzero to stop (a checkpoint is then written). */
typedef int (*nst_train_progress_fn)(const nst_train_progress *p, void *user);

/* Trains a style network. Writes cfg->output_path and the checkpoint at every checkpoint
 * and at the end (also when stopped: then the status is NST_ERR_INTERRUPTED). */
nst_status nst_train_run(const nst_train_config *cfg, const nst_vgg19 *vgg,
                         nst_train_progress_fn progress, void *user, nst_error *err);

/* ------------------------------------------------------------------------- */
/* Benchmark                                                                 */
/* ------------------------------------------------------------------------- */

typedef struct {
    int size;    /* square input, size x size */
    int iters;   /* timed repetitions of each measurement */
    int warmup;  /* untimed repetitions first */
    int threads; /* 0: the OpenMP default */
    int n_taps;  /* layers used as content and style taps (the seed preset's by default) */
    nst_tap taps[NST_MAX_TAPS];
    nst_device device;       /* CPU by default (a measurement names its device); AUTO or CUDA */
    nst_precision precision; /* as in nst_transfer_config */
    nst_tuning tuning;       /* as in nst_transfer_config */
} nst_bench_config;

typedef struct {
    double forward_ms;          /* VGG19 forward up to the deepest tap */
    double forward_backward_ms; /* forward + backward to the image */
    double step_ms;             /* a whole seed-preset step: forward, losses, backward, Adam */
    double conv_gflop;          /* convolution work of one forward pass (2*H*W*Cin*Cout*9 each) */
    size_t activation_bytes;    /* memory of the activations and gradients */
    const char *kernel;         /* the convolution kernel in use: avx512, avx2 or portable
                                   (CUDA: cudnn-fp32 or cudnn-tf32) */
    nst_device device;          /* the device that ran it */
    char device_name[256];      /* CUDA: the GPU's name */
    size_t device_bytes_used;   /* CUDA: GPU memory the run took (weights, activations,
                                   targets, state, library workspaces) */
    size_t device_bytes_total;  /* CUDA: the GPU's memory */
} nst_bench_result;

/* Fills cfg with the defaults: 224 px, 10 iterations, 2 warm-up, seed taps, the CPU, fp32. */
void nst_bench_defaults(nst_bench_config *cfg);
/* Times the network and a seed-preset step on synthetic images (the best of iters). */
nst_status nst_bench_run(const nst_bench_config *cfg, const nst_vgg19 *net, nst_bench_result *res,
                         nst_error *err);

#ifdef __cplusplus
}
#endif
#endif
