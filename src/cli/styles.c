/* styles.c - the styles that ship with nst (nst_style_list): finding them, and
 * suggesting one for a mistyped name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/options.h"

int styles_find(nst_style_entry **v) {
    nst_error err;
    int n = nst_style_list(v, NULL, &err);
    if (n < 0) fprintf(stderr, "nst: %s\n", err.msg);
    return n > 0 ? n : 0;
}

int is_bare_name(const char *s) { return *s && !strchr(s, '/') && !strchr(s, '.'); }

int is_unknown_style(const char *s) {
    if (!is_bare_name(s) || access(s, F_OK) == 0) return 0;
    nst_style_entry *v;
    int n = styles_find(&v), found = 0;
    for (int i = 0; i < n; i++) found |= strcmp(v[i].name, s) == 0;
    free(v);
    return !found;
}

void styles_unknown(const char *flag, const char *name) {
    nst_style_entry *v;
    int n = styles_find(&v);
    const char **names = malloc((size_t)(n ? n : 1) * sizeof *names);
    if (!names) n = 0;
    for (int i = 0; i < n; i++) names[i] = v[i].name;
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
    free(names);
    free(v);
}
