/* styles.c - the styles that ship with nst (NAME.nstm in the folders nst_style_dirs
 * names): listing them, and suggesting one for a mistyped name. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/options.h"

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int styles_find(char ***names, char ***paths) {
    char dirs[4][NST_PATH_MAX];
    int nd = nst_style_dirs(dirs, 4), n = 0, cap = 0;
    char **nv = NULL, **pv = NULL;
    for (int k = 0; k < nd; k++) {
        DIR *d = opendir(dirs[k]);
        if (!d) continue;
        struct dirent *e;
        while ((e = readdir(d))) {
            const char *dot = strrchr(e->d_name, '.');
            if (e->d_name[0] == '.' || !dot || strcmp(dot, ".nstm") != 0) continue;
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)(dot - e->d_name), e->d_name);
            int dup = 0; /* a style found in an earlier folder hides later ones */
            for (int i = 0; i < n; i++) dup |= strcmp(nv[i], name) == 0;
            if (dup) continue;
            if (n == cap) {
                char **a = realloc(nv, (size_t)(cap ? 2 * cap : 16) * sizeof *a);
                if (!a) break;
                nv = a;
                cap = cap ? 2 * cap : 16;
            }
            /* one allocation: "name\0path\0", so that sorting keeps each path with its name */
            size_t ln = strlen(name) + 1, len = ln + strlen(dirs[k]) + strlen(e->d_name) + 2;
            if (!(nv[n] = malloc(len))) break;
            memcpy(nv[n], name, ln);
            snprintf(nv[n] + ln, len - ln, "%s/%s", dirs[k], e->d_name);
            n++;
        }
        closedir(d);
    }
    if (n) qsort(nv, (size_t)n, sizeof *nv, by_name);
    pv = malloc((size_t)(n ? n : 1) * sizeof *pv);
    if (!pv) {
        for (int i = 0; i < n; i++) free(nv[i]);
        n = 0;
    }
    for (int i = 0; i < n; i++) pv[i] = nv[i] + strlen(nv[i]) + 1;
    *names = nv;
    *paths = pv;
    return n;
}

void styles_free(char **names, char **paths, int n) {
    for (int i = 0; i < n; i++) free(names[i]); /* it holds its path too */
    free(names);
    free(paths);
}

int is_bare_name(const char *s) { return *s && !strchr(s, '/') && !strchr(s, '.'); }

int is_unknown_style(const char *s) {
    if (!is_bare_name(s) || access(s, F_OK) == 0) return 0;
    char **names, **paths;
    int n = styles_find(&names, &paths), found = 0;
    for (int i = 0; i < n; i++) found |= strcmp(names[i], s) == 0;
    styles_free(names, paths, n);
    return !found;
}

void styles_unknown(const char *flag, const char *name) {
    char **names, **paths;
    int n = styles_find(&names, &paths);
    const char *near = cli_closest(name, (const char *const *)names, n);
    char list[1024] = "";
    size_t used = 0;
    for (int i = 0; i < n && used + 70 < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", names[i]);
    if (near)
        fprintf(stderr, "nst: %s %s: no such file or style (did you mean '%s'? styles: %s)\n", flag, name, near, list);
    else if (n)
        fprintf(stderr, "nst: %s %s: no such file or style (styles: %s; nst apply --list shows them)\n", flag, name, list);
    else
        fprintf(stderr, "nst: %s %s: no such file, and no styles found in $" NST_MODELS_ENV " or models/\n", flag, name);
    styles_free(names, paths, n);
}
