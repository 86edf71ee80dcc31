/* style_catalog.h - finding styles by name (internal; nst_style_list is the public view). */
#ifndef NST_STYLE_CATALOG_H
#define NST_STYLE_CATALOG_H

#include <stddef.h>

#include "nst.h"

/* The model file that nst_style_net_load opens for a bare name: the first entry of
 * nst_style_list of that name. Its path, and *style: which style of a file of several
 * (-1: a whole file). 0 if none has that name. */
int style_catalog_find(const char *name, char *path, size_t len, int *style, const nst_limits *limits);

/* The n names of a file's styles, from its comma-separated "styles" (list, may be NULL;
 * a missing or empty entry: styleN); NULL if out of memory. style_names_free(v, n). */
char **style_names(const char *list, int n);
void style_names_free(char **v, int n);

#endif
