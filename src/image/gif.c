/* gif.c - GIF through giflib's low-level reader over memory: the first frame on its
 * canvas (the area it does not cover is transparent, as browsers show it), its
 * transparent colour as alpha, the local or global colour map, interlacing. The frame's
 * size is checked before giflib decodes a pixel (DGifSlurp would allocate every frame
 * first). */
#include "image/image_internal.h"

#include <stdlib.h>
#include <string.h>

#include <gif_lib.h>

typedef struct {
    const img_input *in;
    size_t pos;
} gif_src;

static int gif_read(GifFileType *gif, GifByteType *buf, int n) {
    gif_src *s = gif->UserData;
    size_t left = s->in->size - s->pos, k = n > 0 ? (size_t)n : 0;
    if (k > left) k = left;
    memcpy(buf, s->in->data + s->pos, k);
    s->pos += k;
    return (int)k;
}

static nst_status gif_fail(const char *name, int code, nst_error *err) {
    const char *why = GifErrorString(code);
    if (code == D_GIF_ERR_READ_FAILED || code == D_GIF_ERR_EOF_TOO_SOON)
        return nst_fail(err, NST_ERR_FORMAT, "%s: truncated GIF (%s)", name, why ? why : "the data ends early");
    if (code == D_GIF_ERR_NOT_ENOUGH_MEM) return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", name);
    return nst_fail(err, NST_ERR_FORMAT, "%s: corrupt GIF (%s)", name, why ? why : "unknown giflib error");
}

typedef struct {
    GifFileType *gif;
    GifPixelType *line;
    nst_image img;
} gif_job;

static nst_status decode(gif_job *job, const char *name, size_t max_pixels, nst_error *err) {
    GifFileType *gif = job->gif;
    int transparent = -1;
    for (;;) {
        GifRecordType type;
        if (DGifGetRecordType(gif, &type) == GIF_ERROR) return gif_fail(name, gif->Error, err);
        if (type == TERMINATE_RECORD_TYPE)
            return nst_fail(err, NST_ERR_FORMAT, "%s: corrupt GIF (it holds no image)", name);
        if (type == EXTENSION_RECORD_TYPE) {
            int code = 0;
            GifByteType *ext = NULL;
            if (DGifGetExtension(gif, &code, &ext) == GIF_ERROR) return gif_fail(name, gif->Error, err);
            /* The graphics control block before the first image: its transparent index. */
            if (code == GRAPHICS_EXT_FUNC_CODE && ext && ext[0] >= 4) {
                GraphicsControlBlock gcb;
                if (DGifExtensionToGCB(ext[0], ext + 1, &gcb) == GIF_OK) transparent = gcb.TransparentColor;
            }
            while (ext)
                if (DGifGetExtensionNext(gif, &ext) == GIF_ERROR) return gif_fail(name, gif->Error, err);
            continue;
        }
        if (type == IMAGE_DESC_RECORD_TYPE) break;
    }
    if (DGifGetImageDesc(gif) == GIF_ERROR) return gif_fail(name, gif->Error, err);
    GifImageDesc *d = &gif->Image;
    if (d->Left < 0 || d->Top < 0 || d->Width < 1 || d->Height < 1)
        return nst_fail(err, NST_ERR_FORMAT, "%s: corrupt GIF (a frame of %dx%d at %d,%d)", name, d->Width, d->Height,
                        d->Left, d->Top);
    /* The canvas is the screen, grown to hold a frame that does not fit (as browsers do). */
    long long cw = gif->SWidth, ch = gif->SHeight;
    if ((long long)d->Left + d->Width > cw) cw = (long long)d->Left + d->Width;
    if ((long long)d->Top + d->Height > ch) ch = (long long)d->Top + d->Height;
    nst_status st = img_check_size(name, (unsigned long long)cw, (unsigned long long)ch, max_pixels, err);
    if (st != NST_OK) return st;
    const ColorMapObject *map = d->ColorMap ? d->ColorMap : gif->SColorMap;
    if (!map || !map->Colors || map->ColorCount < 1)
        return nst_fail(err, NST_ERR_FORMAT, "%s: corrupt GIF (no colour map)", name);

    int covers = d->Left == 0 && d->Top == 0 && d->Width == cw && d->Height == ch;
    st = img_alloc(&job->img, name, (int)cw, (int)ch, transparent >= 0 || !covers, err);
    if (st != NST_OK) return st;
    job->img.bit_depth = 8;
    float *px = job->img.pixels, *al = job->img.alpha;
    if (!covers)
        for (size_t i = 0, n = (size_t)cw * ch; i < n; i++) img_put(px + 3 * i, al + i, 0, 0, 0, 0);
    if (!(job->line = malloc((size_t)d->Width))) return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", name);

    /* Interlaced frames come in four passes: every 8th row from 0, every 8th from 4,
     * every 4th from 2, every 2nd from 1. */
    static const int start[4] = {0, 4, 2, 1}, step[4] = {8, 8, 4, 2};
    int passes = d->Interlace ? 4 : 1;
    for (int p = 0; p < passes; p++) {
        for (int y = d->Interlace ? start[p] : 0; y < d->Height; y += d->Interlace ? step[p] : 1) {
            if (DGifGetLine(gif, job->line, d->Width) == GIF_ERROR) return gif_fail(name, gif->Error, err);
            size_t at = (size_t)(d->Top + y) * cw + d->Left;
            for (int x = 0; x < d->Width; x++) {
                int idx = job->line[x];
                float *o = px + 3 * (at + x);
                if (idx == transparent) {
                    img_put(o, al + at + x, 0, 0, 0, 0);
                } else if (idx < map->ColorCount) {
                    const GifColorType *c = &map->Colors[idx];
                    img_put(o, al ? al + at + x : NULL, c->Red, c->Green, c->Blue, 255.0f);
                } else { /* outside the colour map */
                    img_put(o, al ? al + at + x : NULL, 0, 0, 0, 255.0f);
                }
            }
        }
    }
    img_drop_opaque_alpha(&job->img);
    return NST_OK;
}

nst_status img_decode_gif(const img_input *in, nst_image *out, nst_error *err) {
    gif_src src = {in, 0};
    int code = 0;
    gif_job job = {0};
    job.gif = DGifOpen(&src, gif_read, &code);
    if (!job.gif) return gif_fail(in->name, code, err);
    nst_status st = decode(&job, in->name, in->max_pixels, err);
    DGifCloseFile(job.gif, &code);
    free(job.line);
    if (st == NST_OK) *out = job.img;
    else nst_image_free(&job.img);
    return st;
}
