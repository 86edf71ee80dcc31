/* webp.c - WebP through libwebp: lossy and lossless, alpha, the first frame of an
 * animation (placed on its transparent canvas), ICCP and EXIF chunks (demux when
 * reading, mux when writing). */
#include "image/image_internal.h"

#include <stdlib.h>
#include <string.h>

#include <webp/decode.h>
#include <webp/demux.h>
#include <webp/encode.h>
#include <webp/mux.h>

static const char *vp8_status_text(VP8StatusCode s) {
    switch (s) {
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "bitstream error";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_SUSPENDED: return "suspended";
    case VP8_STATUS_USER_ABORT: return "aborted";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "not enough data";
    default: return "error";
    }
}

/* Metadata chunk fourcc of the demuxed file, or NULL/0. */
static const unsigned char *get_chunk(WebPDemuxer *dmux, const char *fourcc, size_t *n) {
    WebPChunkIterator ci;
    const unsigned char *p = NULL;
    *n = 0;
    if (WebPDemuxGetChunk(dmux, fourcc, 1, &ci)) {
        p = ci.chunk.bytes;
        *n = ci.chunk.size;
    }
    WebPDemuxReleaseChunkIterator(&ci);
    return p; /* points into the file's data, which outlives dmux */
}

nst_status img_decode_webp(const img_input *in, nst_image *out, nst_error *err) {
    const char *name = in->name;
    WebPBitstreamFeatures f;
    VP8StatusCode vs = WebPGetFeatures(in->data, in->size, &f);
    if (vs == VP8_STATUS_NOT_ENOUGH_DATA) return nst_fail(err, NST_ERR_FORMAT, "%s: truncated WebP", name);
    if (vs != VP8_STATUS_OK) return nst_fail(err, NST_ERR_FORMAT, "%s: corrupt WebP (%s)", name, vp8_status_text(vs));
    /* The canvas's size, from the header, before the demuxer indexes the file. */
    nst_status st = img_check_size(name, (unsigned)f.width, (unsigned)f.height, in->max_pixels, err);
    if (st != NST_OK) return st;

    WebPData wd = {in->data, in->size};
    WebPDemuxState state;
    WebPDemuxer *dmux = WebPDemuxPartial(&wd, &state);
    if (!dmux || state != WEBP_DEMUX_DONE) {
        WebPDemuxDelete(dmux);
        if (state == WEBP_DEMUX_PARSING_HEADER || state == WEBP_DEMUX_PARSED_HEADER)
            return nst_fail(err, NST_ERR_FORMAT, "%s: truncated WebP", name);
        return nst_fail(err, NST_ERR_FORMAT, "%s: corrupt WebP (its chunks do not parse)", name);
    }
    unsigned cw = WebPDemuxGetI(dmux, WEBP_FF_CANVAS_WIDTH), ch = WebPDemuxGetI(dmux, WEBP_FF_CANVAS_HEIGHT);
    WebPIterator it;
    memset(&it, 0, sizeof it);
    nst_image img = {0};
    unsigned char *rgba = NULL;
    if ((st = img_check_size(name, cw, ch, in->max_pixels, err)) != NST_OK) goto done;
    if (!WebPDemuxGetFrame(dmux, 1, &it) || it.width < 1 || it.height < 1 || it.x_offset < 0 || it.y_offset < 0 ||
        (unsigned)it.x_offset + (unsigned)it.width > cw || (unsigned)it.y_offset + (unsigned)it.height > ch) {
        st = nst_fail(err, NST_ERR_FORMAT, "%s: corrupt WebP (no frame that fits its canvas)", name);
        goto done;
    }
    /* A first frame smaller than the canvas leaves the rest transparent. */
    int covers = it.x_offset == 0 && it.y_offset == 0 && (unsigned)it.width == cw && (unsigned)it.height == ch;
    if ((st = img_alloc(&img, name, (int)cw, (int)ch, it.has_alpha || !covers, err)) != NST_OK) goto done;
    img.bit_depth = 8;
    size_t stride = (size_t)it.width * 4;
    if (!(rgba = nst_alloc_array((size_t)it.height, stride))) {
        st = nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", name);
        goto done;
    }
    WebPDecoderConfig dc;
    if (!WebPInitDecoderConfig(&dc)) {
        st = nst_fail(err, NST_ERR_FORMAT, "%s: libwebp version mismatch", name);
        goto done;
    }
    dc.output.colorspace = MODE_RGBA; /* not premultiplied */
    dc.output.is_external_memory = 1;
    dc.output.u.RGBA.rgba = rgba;
    dc.output.u.RGBA.stride = (int)stride;
    dc.output.u.RGBA.size = stride * (size_t)it.height;
    vs = WebPDecode(it.fragment.bytes, it.fragment.size, &dc);
    WebPFreeDecBuffer(&dc.output);
    if (vs != VP8_STATUS_OK) {
        st = vs == VP8_STATUS_NOT_ENOUGH_DATA ? nst_fail(err, NST_ERR_FORMAT, "%s: truncated WebP", name)
                                              : nst_fail(err, NST_ERR_FORMAT, "%s: corrupt WebP (%s)", name,
                                                         vp8_status_text(vs));
        goto done;
    }
    if (dc.output.width != it.width || dc.output.height != it.height) {
        st = nst_fail(err, NST_ERR_FORMAT, "%s: corrupt WebP (the frame's size does not match its header)", name);
        goto done;
    }
    for (unsigned y = 0; y < ch; y++) {
        float *d = img.pixels + (size_t)y * cw * 3;
        float *a = img.alpha ? img.alpha + (size_t)y * cw : NULL;
        for (unsigned x = 0; x < cw; x++) {
            int fx = (int)x - it.x_offset, fy = (int)y - it.y_offset;
            if (fx >= 0 && fy >= 0 && fx < it.width && fy < it.height) {
                const unsigned char *s = rgba + (size_t)fy * stride + (size_t)fx * 4;
                img_put(d + 3 * x, a ? a + x : NULL, s[0], s[1], s[2], it.has_alpha ? s[3] : 255.0f);
            } else {
                img_put(d + 3 * x, a ? a + x : NULL, 0, 0, 0, 0);
            }
        }
    }
    size_t icc_n = 0, exif_n = 0;
    const unsigned char *icc = get_chunk(dmux, "ICCP", &icc_n), *exif = get_chunk(dmux, "EXIF", &exif_n);
    /* Some writers keep JPEG's "Exif\0\0" prefix in the chunk. */
    if (exif && exif_n >= 6 && memcmp(exif, "Exif\0\0", 6) == 0) exif += 6, exif_n -= 6;
    if (!img_set_icc(&img, icc, icc_n) || !img_set_exif(&img, exif, exif_n)) {
        st = nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", name);
        goto done;
    }
    img_drop_opaque_alpha(&img);
    st = img_orient(&img, img_exif_orientation(exif, exif_n), name, err);
done:
    WebPDemuxReleaseIterator(&it);
    WebPDemuxDelete(dmux);
    free(rgba);
    if (st == NST_OK) *out = img;
    else nst_image_free(&img);
    return st;
}

/* ---- writing --------------------------------------------------------------------------- */

static const char *enc_error_text(WebPEncodingError e) {
    switch (e) {
    case VP8_ENC_ERROR_OUT_OF_MEMORY:
    case VP8_ENC_ERROR_BITSTREAM_OUT_OF_MEMORY: return "out of memory";
    case VP8_ENC_ERROR_BAD_DIMENSION: return "bad dimensions";
    case VP8_ENC_ERROR_PARTITION0_OVERFLOW:
    case VP8_ENC_ERROR_PARTITION_OVERFLOW: return "partition overflow (try a lower quality)";
    case VP8_ENC_ERROR_FILE_TOO_BIG: return "the file would be over 4 GB";
    default: return "encoder error";
    }
}

nst_status img_encode_webp(const nst_image *img, const img_enc *o, img_buf *out, const char *name, nst_error *err) {
    int w = img->width, h = img->height;
    if (w > WEBP_MAX_DIMENSION || h > WEBP_MAX_DIMENSION)
        return nst_fail(err, NST_ERR_ARG, "%s: a WebP holds at most %dx%d pixels, the image is %dx%d", name,
                        WEBP_MAX_DIMENSION, WEBP_MAX_DIMENSION, w, h);
    WebPConfig cfg;
    if (!WebPConfigInit(&cfg)) return nst_fail(err, NST_ERR_IO, "%s: libwebp version mismatch", name);
    cfg.quality = (float)o->quality;
    if (!WebPValidateConfig(&cfg)) return nst_fail(err, NST_ERR_ARG, "%s: invalid WebP settings", name);

    int ch = img->alpha ? 4 : 3;
    unsigned char *px = nst_alloc_array((size_t)w * h, (size_t)ch);
    if (!px) return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", name);
    for (size_t i = 0, n = (size_t)w * h; i < n; i++) {
        const float *s = img->pixels + 3 * i;
        unsigned char *d = px + ch * i;
        if (img->alpha) {
            float a = img->alpha[i];
            for (int c = 0; c < 3; c++) d[c] = img_to_u8(img_uncomposite(s[c], a));
            d[3] = img_to_u8(a);
        } else {
            for (int c = 0; c < 3; c++) d[c] = img_to_u8(s[c]);
        }
    }
    WebPPicture pic;
    WebPMemoryWriter mw;
    WebPMemoryWriterInit(&mw);
    nst_status st = NST_OK;
    if (!WebPPictureInit(&pic)) {
        free(px);
        return nst_fail(err, NST_ERR_IO, "%s: libwebp version mismatch", name);
    }
    pic.use_argb = 1;
    pic.width = w;
    pic.height = h;
    pic.writer = WebPMemoryWrite;
    pic.custom_ptr = &mw;
    int ok = img->alpha ? WebPPictureImportRGBA(&pic, px, w * 4) : WebPPictureImportRGB(&pic, px, w * 3);
    free(px);
    if (!ok) {
        WebPPictureFree(&pic);
        return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", name);
    }
    if (!WebPEncode(&cfg, &pic)) {
        st = nst_fail(err, pic.error_code == VP8_ENC_ERROR_OUT_OF_MEMORY ? NST_ERR_NOMEM : NST_ERR_IO,
                      "%s: cannot write WebP: %s", name, enc_error_text(pic.error_code));
        WebPPictureFree(&pic);
        WebPMemoryWriterClear(&mw);
        return st;
    }
    WebPPictureFree(&pic);

    if (!o->icc && !o->exif) {
        if (!img_buf_write(out, mw.mem, mw.size)) st = nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", name);
        WebPMemoryWriterClear(&mw);
        return st;
    }
    /* With metadata: the extended format (VP8X) that the muxer assembles. */
    WebPMux *mux = WebPMuxNew();
    WebPData bits = {mw.mem, mw.size}, icc = {o->icc, o->icc_size}, exif = {o->exif, o->exif_size}, file = {0};
    WebPMuxError me = mux ? WebPMuxSetImage(mux, &bits, 0) : WEBP_MUX_MEMORY_ERROR;
    if (me == WEBP_MUX_OK && o->icc) me = WebPMuxSetChunk(mux, "ICCP", &icc, 0);
    if (me == WEBP_MUX_OK && o->exif) me = WebPMuxSetChunk(mux, "EXIF", &exif, 0);
    if (me == WEBP_MUX_OK) me = WebPMuxAssemble(mux, &file);
    if (me == WEBP_MUX_MEMORY_ERROR) st = nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", name);
    else if (me != WEBP_MUX_OK) st = nst_fail(err, NST_ERR_IO, "%s: cannot write WebP: muxer error %d", name, (int)me);
    else if (!img_buf_write(out, file.bytes, file.size)) st = nst_fail(err, NST_ERR_NOMEM, "%s: out of memory", name);
    WebPDataClear(&file);
    WebPMuxDelete(mux);
    WebPMemoryWriterClear(&mw);
    return st;
}
