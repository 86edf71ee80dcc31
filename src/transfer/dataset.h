/* dataset.h - training photos for a feed-forward style network: a folder of images,
 * drawn in shuffled epochs with random crops and flips, resumable.
 *
 * Life cycle: dataset_open (lists the folder) -> dataset_set_seed, dataset_set_holdout
 * (optional) -> [dataset_set_position to resume] -> dataset_next_batch, many times ->
 * dataset_free.
 *
 * Determinism: everything random is a function of (seed, epoch, index in the epoch):
 * epoch e's order is a Fisher-Yates shuffle with nst_rng seeded from (seed, e), and the
 * photo drawn at (e, i) is cropped and flipped with nst_rng seeded from (seed, e, i). So
 * a run resumed from a saved dataset_position draws exactly the batches an uninterrupted
 * run would, whatever the batch size was before the interruption. */
#ifndef NST_DATASET_H
#define NST_DATASET_H

#include <stdint.h>

#include "nst.h"

typedef struct nst_dataset nst_dataset;

/* Where sampling stands; save it with a training checkpoint, restore it to resume. */
typedef struct {
    uint64_t seed;      /* dataset_set_seed's */
    int64_t epoch;      /* epochs completed */
    int64_t index;      /* photos of this epoch's order already drawn (decoded or skipped) */
    int64_t n_train;    /* files sampled from: must match when restored (the folder changed?) */
    int64_t failures;   /* files of this epoch that failed to decode (for the "half" rule) */
} dataset_position;

/* Lists the image files of dir with nst_list_images (.jpg .jpeg .png, case-insensitive,
 * not hidden; sorted by name with strcmp: the order does not depend on the file system).
 * Excludes nothing else (a file that is not an image fails later, when drawn). Fails
 * with a one-line message naming dir if it cannot be read or holds no image files.
 * Seed 0, no holdout, position at the start, the default limits. */
nst_status dataset_open(nst_dataset **ds, const char *dir, nst_error *err);
void dataset_free(nst_dataset *ds);

/* The limits the photos are decoded under (a photo over them is skipped, as any other
 * photo that fails to decode). */
void dataset_set_limits(nst_dataset *ds, const nst_limits *limits);

/* The scale of the photos: each random crop is resized to photo_size x photo_size and a
 * window of the batch's size is cut from it at a random position, so that a network can
 * train on small windows of photos at the scale it will see them (0, the default, or any
 * value up to the batch's size: the whole crop, resized to that size). */
void dataset_set_photo_size(nst_dataset *ds, int photo_size);

/* Number of image files, and the path of file i (0 <= i < count; NULL otherwise). */
int dataset_count(const nst_dataset *ds);
const char *dataset_path(const nst_dataset *ds, int i);

/* Holds out the last n_holdout files (by sorted order) from sampling, for previews and
 * evaluation: they are files count-n_holdout .. count-1. Clamped to 0..count; if all are
 * held out, dataset_next_batch fails. Call before drawing (it changes the training set,
 * so the position restarts at epoch 0). */
void dataset_set_holdout(nst_dataset *ds, int n_holdout);
/* Files sampled from: count - n_holdout. */
int dataset_train_count(const nst_dataset *ds);

/* Sets the seed of the shuffles and augmentations (e.g. nst_rng_next of the caller's
 * generator) and restarts at epoch 0. */
void dataset_set_seed(nst_dataset *ds, uint64_t seed);

/* Saves / restores the sampling position (seed included). Restoring fails with
 * NST_ERR_ARG if pos does not fit this dataset (a different number of training files, or
 * an index past the end of the epoch). */
void dataset_get_position(const nst_dataset *ds, dataset_position *pos);
nst_status dataset_set_position(nst_dataset *ds, const dataset_position *pos, nst_error *err);

/* Fills batch (B,3,size,size) with the next B photos in the network's input layout: RGB
 * planes, values 0..1 (pixel/255). Each photo: decoded with nst_image_load, a random
 * square crop whose side is 80..100% of its shorter side at a random position, resized to
 * size x size with nst_image_resize (or to the photo size, then a size x size window cut
 * at a random position), flipped left-right with probability 1/2.
 * The photos are the training files in a new shuffled order each epoch, consumed in
 * sequence (a batch may straddle two epochs).
 * A file that cannot be decoded is skipped (the next file takes its place) and counted:
 * see dataset_skipped. If more than half of an epoch's files fail, it returns an error
 * (NST_ERR_FORMAT, or the decoder's status) naming the folder and the last failure.
 * On error, batch is partly written and the position has moved past the files tried. */
nst_status dataset_next_batch(nst_dataset *ds, float *batch, int B, int size, nst_error *err);

/* Files skipped since dataset_open, and the decoder's message for the latest one ("" if
 * none); a trainer can log them. */
int64_t dataset_skipped(const nst_dataset *ds);
const char *dataset_last_warning(const nst_dataset *ds);

#endif
