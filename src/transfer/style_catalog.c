/* style_catalog.c - the styles nst finds by name: NAME.nstm in the style folders, and
 * each style of a file of several by its own name (nst_style_dirs, nst_style_list). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/model_file.h"
#include "transfer/style_catalog.h"
#include "util/util.h"

int nst_style_dirs(char dirs[][NST_PATH_MAX], int max) {
    int n = 0;
    const char *env = getenv(NST_MODELS_ENV);
    if (n < max && env && *env && strlen(env) < NST_PATH_MAX) snprintf(dirs[n++], NST_PATH_MAX, "%s", env);
#ifdef NST_SOURCE_DIR
    if (n < max) snprintf(dirs[n++], NST_PATH_MAX, "%.4000s/models", NST_SOURCE_DIR);
#endif
    char exe[NST_PATH_MAX - 16];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) *slash = '\0';
        if (n < max) snprintf(dirs[n++], NST_PATH_MAX, "%s/models", exe);
        if (n < max) snprintf(dirs[n++], NST_PATH_MAX, "%s/../models", exe);
    }
    return n;
}

char **style_names(const char *list, int n) {
    char **v = calloc((size_t)n, sizeof *v);
    for (int i = 0; v && i < n; i++) {
        const char *e = list ? strchr(list, ',') : NULL;
        int len = list ? (e ? (int)(e - list) : (int)strlen(list)) : 0;
        char buf[128];
        if (len > 0) snprintf(buf, sizeof buf, "%.*s", len, list);
        else snprintf(buf, sizeof buf, "style%d", i + 1);
        list = e ? e + 1 : NULL;
        if (!(v[i] = strdup(buf))) {
            style_names_free(v, i);
            v = NULL;
        }
    }
    return v;
}

void style_names_free(char **v, int n) {
    for (int i = 0; v && i < n; i++) free(v[i]);
    free(v);
}

typedef struct {
    nst_style_entry *v;
    int n, cap;
} entry_list;

/* Adds name unless an earlier entry has it (the first one found wins); 0 if out of memory. */
static int add_entry(entry_list *l, const char *name, const char *path, int style, int n_styles) {
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->v[i].name, name) == 0) return 1;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        nst_style_entry *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return 0;
        l->v = v;
        l->cap = cap;
    }
    nst_style_entry *e = &l->v[l->n++];
    snprintf(e->name, sizeof e->name, "%s", name);
    snprintf(e->path, sizeof e->path, "%s", path);
    e->style = style;
    e->n_styles = n_styles;
    return 1;
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const nst_style_entry *)a)->name, ((const nst_style_entry *)b)->name);
}

static int by_path(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The .nstm files of one folder, sorted (so that which file wins a name is not up to
 * readdir's order); their count, or -1 if out of memory. */
static int folder_models(const char *dir, char ***out) {
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d) return 0;
    char **v = NULL;
    int n = 0, cap = 0, ok = 1;
    struct dirent *e;
    while (ok && (e = readdir(d))) {
        const char *dot = strrchr(e->d_name, '.');
        if (e->d_name[0] == '.' || !dot || strcmp(dot, ".nstm") != 0 || dot - e->d_name > 120) continue;
        if (n == cap) {
            char **a = realloc(v, (size_t)(cap ? 2 * cap : 16) * sizeof *a);
            if (!a) { ok = 0; break; }
            v = a;
            cap = cap ? 2 * cap : 16;
        }
        if (!(v[n] = strdup(e->d_name))) ok = 0;
        else n++;
    }
    closedir(d);
    if (!ok) {
        style_names_free(v, n);
        return -1;
    }
    if (n) qsort(v, (size_t)n, sizeof *v, by_path);
    *out = v;
    return n;
}

int nst_style_list(nst_style_entry **out, const nst_limits *limits, nst_error *err) {
    *out = NULL;
    char dirs[4][NST_PATH_MAX], path[NST_PATH_MAX];
    int nd = nst_style_dirs(dirs, 4), ok = 1;
    entry_list files = {0}, inner = {0};
    for (int k = 0; k < nd && ok; k++) {
        char **v;
        int n = folder_models(dirs[k], &v);
        if (n < 0) ok = 0;
        for (int i = 0; i < n && ok; i++) {
            char name[128];
            snprintf(name, sizeof name, "%.*s", (int)(strrchr(v[i], '.') - v[i]), v[i]);
            if (snprintf(path, sizeof path, "%s/%s", dirs[k], v[i]) >= (int)sizeof path) continue;
            /* a file of several styles lists them; one that does not load is still listed
             * (loading it by name then says what is wrong) */
            nstm_model m = {0};
            nst_error ignored;
            int32_t n_styles = 1;
            if (nstm_load(&m, path, limits, &ignored) == NST_OK) nstm_get_int(&m, "n_styles", &n_styles);
            if (n_styles < 1 || n_styles > 256) n_styles = 1;
            ok = add_entry(&files, name, path, n_styles > 1 ? -1 : 0, n_styles);
            char **names = n_styles > 1 ? style_names(nstm_get_string(&m, "styles"), n_styles) : NULL;
            if (n_styles > 1 && !names) ok = 0;
            for (int s = 0; s < n_styles && names && ok; s++) ok = add_entry(&inner, names[s], path, s, n_styles);
            style_names_free(names, names ? n_styles : 0);
            nstm_free(&m);
        }
        style_names_free(v, n > 0 ? n : 0);
    }
    /* a file's own name comes first, then the styles inside files of several */
    for (int i = 0; i < inner.n && ok; i++)
        ok = add_entry(&files, inner.v[i].name, inner.v[i].path, inner.v[i].style, inner.v[i].n_styles);
    free(inner.v);
    if (!ok) {
        free(files.v);
        nst_fail(err, NST_ERR_NOMEM, "out of memory listing the styles");
        return -1;
    }
    if (files.n) qsort(files.v, (size_t)files.n, sizeof *files.v, by_name);
    *out = files.v;
    return files.n;
}

int style_catalog_find(const char *name, char *path, size_t len, int *style, const nst_limits *limits) {
    /* a file of that name wins (nst_style_list's order): found without reading any */
    char dirs[4][NST_PATH_MAX];
    int nd = nst_style_dirs(dirs, 4);
    *style = -1;
    for (int k = 0; k < nd; k++)
        if (snprintf(path, len, "%s/%.120s.nstm", dirs[k], name) < (int)len && access(path, R_OK) == 0) return 1;
    nst_style_entry *v;
    nst_error err;
    int n = nst_style_list(&v, limits, &err), found = 0;
    for (int i = 0; i < n && !found; i++) {
        if (strcmp(v[i].name, name) != 0) continue;
        found = snprintf(path, len, "%s", v[i].path) < (int)len;
        *style = v[i].n_styles > 1 ? v[i].style : -1;
    }
    free(v);
    return found;
}
