/* label.c - text on images (a contact sheet's captions): a 5x7 pixel font of the
 * letters (upper case for both cases), digits and - _ . : ( ) , drawn at an integer
 * scale. */
#include <ctype.h>
#include <string.h>

#include "image/image_internal.h"

/* Each glyph: 7 rows, top first; bit 4 of a row is its leftmost pixel. */
typedef struct {
    char c;
    unsigned char row[7];
} glyph;

static const glyph FONT[] = {
    {'A', {14, 17, 17, 31, 17, 17, 17}}, {'B', {30, 17, 17, 30, 17, 17, 30}}, {'C', {14, 17, 16, 16, 16, 17, 14}},
    {'D', {30, 17, 17, 17, 17, 17, 30}}, {'E', {31, 16, 16, 30, 16, 16, 31}}, {'F', {31, 16, 16, 30, 16, 16, 16}},
    {'G', {14, 17, 16, 23, 17, 17, 15}}, {'H', {17, 17, 17, 31, 17, 17, 17}}, {'I', {14, 4, 4, 4, 4, 4, 14}},
    {'J', {7, 2, 2, 2, 2, 18, 12}},      {'K', {17, 18, 20, 24, 20, 18, 17}}, {'L', {16, 16, 16, 16, 16, 16, 31}},
    {'M', {17, 27, 21, 21, 17, 17, 17}}, {'N', {17, 17, 25, 21, 19, 17, 17}}, {'O', {14, 17, 17, 17, 17, 17, 14}},
    {'P', {30, 17, 17, 30, 16, 16, 16}}, {'Q', {14, 17, 17, 17, 21, 18, 13}}, {'R', {30, 17, 17, 30, 20, 18, 17}},
    {'S', {15, 16, 16, 14, 1, 1, 30}},   {'T', {31, 4, 4, 4, 4, 4, 4}},       {'U', {17, 17, 17, 17, 17, 17, 14}},
    {'V', {17, 17, 17, 17, 17, 10, 4}},  {'W', {17, 17, 17, 21, 21, 21, 10}}, {'X', {17, 17, 10, 4, 10, 17, 17}},
    {'Y', {17, 17, 10, 4, 4, 4, 4}},     {'Z', {31, 1, 2, 4, 8, 16, 31}},     {'0', {14, 17, 19, 21, 25, 17, 14}},
    {'1', {4, 12, 4, 4, 4, 4, 14}},      {'2', {14, 17, 1, 2, 4, 8, 31}},     {'3', {31, 2, 4, 2, 1, 17, 14}},
    {'4', {2, 6, 10, 18, 31, 2, 2}},     {'5', {31, 16, 30, 1, 1, 17, 14}},   {'6', {6, 8, 16, 30, 17, 17, 14}},
    {'7', {31, 1, 2, 4, 8, 8, 8}},       {'8', {14, 17, 17, 14, 17, 17, 14}}, {'9', {14, 17, 17, 15, 1, 2, 12}},
    {'_', {0, 0, 0, 0, 0, 0, 31}},       {'-', {0, 0, 0, 31, 0, 0, 0}},       {'.', {0, 0, 0, 0, 0, 12, 12}},
    {':', {0, 12, 12, 0, 12, 12, 0}},    {',', {0, 0, 0, 0, 12, 4, 8}},       {'(', {2, 4, 8, 8, 8, 4, 2}},
    {')', {8, 4, 2, 2, 2, 4, 8}},        {' ', {0, 0, 0, 0, 0, 0, 0}},        {'?', {14, 17, 1, 2, 4, 0, 4}},
};

static const glyph *glyph_of(char c) {
    c = (char)toupper((unsigned char)c);
    for (size_t i = 0; i < sizeof FONT / sizeof FONT[0]; i++)
        if (FONT[i].c == c) return &FONT[i];
    return glyph_of('?');
}

int nst_text_width(const char *text, int scale) {
    int n = (int)strlen(text);
    return n ? (6 * n - 1) * scale : 0;
}

void nst_image_draw_text(nst_image *img, int x, int y, const char *text, int scale, const float rgb[3]) {
    for (; *text; text++, x += 6 * scale) {
        const glyph *g = glyph_of(*text);
        for (int r = 0; r < 7 * scale; r++) {
            int py = y + r;
            if (py < 0 || py >= img->height) continue;
            for (int c = 0; c < 5 * scale; c++) {
                int px = x + c;
                if (px < 0 || px >= img->width || !(g->row[r / scale] >> (4 - c / scale) & 1)) continue;
                float *p = img->pixels + ((size_t)py * img->width + px) * 3;
                p[0] = rgb[0], p[1] = rgb[1], p[2] = rgb[2];
            }
        }
    }
}
