/* model_file.h - the "nstm" file format for trained fast-style networks (internal).
 *
 * A model file is a generic, versioned container: named int32 hyper-parameters, named
 * UTF-8 text metadata and named float32 tensors (1 to 4 dimensions), closed by a CRC-32
 * of every byte before it. The network code maps tensors by name and checks their
 * shapes with nstm_expect_tensor(). The byte layout, the limits and the versioning rules
 * are in docs/model-format.md.
 *
 * Life cycle: a model starts zeroed (nstm_model m = {0};), is filled by nstm_load*() or by
 * the nstm_add_*() builders, and is released with nstm_free(), which zeroes it again.
 * nstm_load*() overwrite *m without freeing it and leave it zeroed on failure.
 *
 * Names are 1 to 63 printable ASCII characters without spaces (0x21..0x7e), unique
 * within their kind (an int and a tensor may share a name). Strings are valid UTF-8
 * without NUL bytes, at most 64 KiB. Every float is finite. The builders and nstm_save()
 * refuse what the loader would refuse, so a saved model always loads.
 *
 * Every failure is one line in err: it names the file (the path, or name_for_errors)
 * and the problem, e.g. "starry.nstm: checksum mismatch (file corrupt)". Statuses:
 * NST_ERR_IO (cannot open / read / write, not a regular file), NST_ERR_FORMAT (not a
 * model, truncated, corrupt, newer version, a tensor missing or of the wrong shape),
 * NST_ERR_LIMIT (a limit below exceeded; refused before allocating), NST_ERR_ARG (a
 * builder or nstm_save() given something the format cannot hold), NST_ERR_NOMEM.
 */
#ifndef NST_MODEL_FILE_H
#define NST_MODEL_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "nst.h"

#define NSTM_MAGIC "NSTMODEL"           /* 8 bytes, no terminator in the file */
#define NSTM_FORMAT_VERSION 1u          /* the newest version this code reads; it writes it */
#define NSTM_MAX_NAME 63                /* bytes in a name */
#define NSTM_MAX_STRING 65536           /* bytes in a string value */
#define NSTM_MAX_ENTRIES 256            /* ints, strings and tensors: each at most this many */
#define NSTM_MAX_DIMS 4
#define NSTM_MAX_ELEMENTS ((size_t)1 << 26) /* 64M floats: in one tensor and in the whole file */
#define NSTM_HEADER_BYTES 32            /* magic, version, file size, three counts */
#define NSTM_TRAILER_BYTES 4            /* CRC-32 */
/* The largest file the limits allow (~272 MiB); anything bigger is refused unread. */
#define NSTM_MAX_FILE_BYTES                                                        \
    ((size_t)NSTM_HEADER_BYTES +                                                   \
     (size_t)NSTM_MAX_ENTRIES * (1 + NSTM_MAX_NAME + 4) +                          \
     (size_t)NSTM_MAX_ENTRIES * (1 + NSTM_MAX_NAME + 4 + NSTM_MAX_STRING) +        \
     (size_t)NSTM_MAX_ENTRIES * (1 + NSTM_MAX_NAME + 1 + 4 * NSTM_MAX_DIMS) +      \
     4 * NSTM_MAX_ELEMENTS + NSTM_TRAILER_BYTES)

typedef struct {
    char name[64];
    int ndim;           /* 1..4 */
    int dims[4];        /* dims[0] varies slowest; dims[ndim..3] are 0 */
    size_t count;       /* dims[0] * ... * dims[ndim-1] */
    float *data;        /* count values, row-major, owned by the model */
} nstm_tensor;

typedef struct {
    char name[64];
    int32_t value;
} nstm_int;

typedef struct {
    char name[64];
    char *value;        /* NUL-terminated UTF-8, owned by the model */
} nstm_string;

typedef struct {
    uint32_t version;   /* of the file it was loaded from; nstm_save() writes NSTM_FORMAT_VERSION */
    int n_ints, n_strings, n_tensors;
    nstm_int *ints;
    nstm_string *strings;
    nstm_tensor *tensors;
} nstm_model;

/* Reads a whole model file (a regular file of at most NSTM_MAX_FILE_BYTES, and within
 * the user's file size limit lim; NULL: the default), checks its magic, version, size and
 * checksum, then parses and checks every entry. */
nst_status nstm_load(nstm_model *m, const char *path, const nst_limits *lim, nst_error *err);
/* The same from memory; name_for_errors stands for the file in messages. */
nst_status nstm_load_memory(nstm_model *m, const void *data, size_t size, const char *name_for_errors,
                            nst_error *err);

/* Writes m atomically (temporary file beside path, fsync, rename): path holds either
 * its old content or the whole new model, never part of one. */
nst_status nstm_save(const nstm_model *m, const char *path, nst_error *err);
/* Serializes m into a new malloc'd buffer (*data, *size; free() it). The encoding is
 * canonical: loading a file and serializing the model gives back the same bytes. */
nst_status nstm_save_memory(const nstm_model *m, unsigned char **data, size_t *size, nst_error *err);

void nstm_free(nstm_model *m);

/* Builders: append an entry (copying name, string and data). data = NULL gives zeros. */
nst_status nstm_add_int(nstm_model *m, const char *name, int32_t v, nst_error *err);
nst_status nstm_add_string(nstm_model *m, const char *name, const char *v, nst_error *err);
nst_status nstm_add_tensor(nstm_model *m, const char *name, int ndim, const int *dims, const float *data,
                           nst_error *err);

/* Lookups by exact name: NULL / 0 when absent. */
const nstm_tensor *nstm_find_tensor(const nstm_model *m, const char *name);
int nstm_get_int(const nstm_model *m, const char *name, int32_t *out); /* 1 found, 0 not */
const char *nstm_get_string(const nstm_model *m, const char *name);

/* For the reader of a network: the tensor called name must exist with exactly this
 * shape, else NST_ERR_FORMAT with e.g. "x.nstm: tensor 'res1.conv1.weight' is 32x32x3x3,
 * expected 64x32x3x3". On success *data points at its values (owned by m). */
nst_status nstm_expect_tensor(const nstm_model *m, const char *path, const char *name, int ndim,
                              const int *dims, const float **data, nst_error *err);
/* The int called name must exist and lie in [min, max], else NST_ERR_FORMAT. */
nst_status nstm_expect_int(const nstm_model *m, const char *path, const char *name, int32_t min,
                           int32_t max, int32_t *out, nst_error *err);

/* CRC-32 (IEEE 802.3, as zlib's crc32): crc = nstm_crc32(0, data, n) for one buffer,
 * or chained over pieces by passing the previous result. */
uint32_t nstm_crc32(uint32_t crc, const void *data, size_t n);

#endif
