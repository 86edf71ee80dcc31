/* options.c - the table-driven option parser and the --help it prints (see options.h). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/options.h"

static int n_opts(const cli_opt *t) {
    int n = 0;
    while (t[n].id) n++;
    return n;
}

int cli_edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return 1000;
    int row[65];
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            /* a swap of two neighbours counts as one edit */
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *cli_closest(const char *s, const char *const *cand, int n) {
    const char *best = NULL;
    int best_d = 1000;
    size_t ls = strlen(s);
    for (int i = 0; i < n; i++) {
        int d = cli_edit_distance(s, cand[i]);
        /* a prefix is a likely abbreviation */
        if (ls >= 3 && strncmp(cand[i], s, ls) == 0) d = 1;
        if (d < best_d) best_d = d, best = cand[i];
    }
    int allowed = ls <= 4 ? 1 : ls <= 8 ? 2 : 3;
    return best_d <= allowed ? best : NULL;
}

/* "--size" or "-o" or "-image_size": how an entry is written */
static void spell(const cli_opt *o, char *buf, size_t len) {
    if (o->flags & OPT_ALIAS) snprintf(buf, len, "-%s", o->name);
    else snprintf(buf, len, "--%s", o->name);
}

static void suggest(const cli_cmd *cmd, const char *arg) {
    const char *bare = arg;
    while (*bare == '-') bare++;
    char name[128];
    snprintf(name, sizeof name, "%.*s", (int)strcspn(bare, "="), bare);
    int n = n_opts(cmd->opts);
    const char **cand = malloc((size_t)n * sizeof *cand);
    if (!cand) return;
    for (int i = 0; i < n; i++) cand[i] = cmd->opts[i].name;
    const char *best = cli_closest(name, cand, n);
    free(cand);
    if (best) {
        for (int i = 0; i < n; i++)
            if (cmd->opts[i].name == best) {
                const cli_opt *o = &cmd->opts[i];
                /* an alias's own option is the better suggestion (--preserve-colors for
                 * --original-colors) */
                for (int k = 0; k < n && (o->flags & OPT_ALIAS); k++)
                    if (cmd->opts[k].id == o->id && !(cmd->opts[k].flags & OPT_ALIAS) && arg[1] == '-') o = &cmd->opts[k];
                char s[80];
                spell(o, s, sizeof s);
                fprintf(stderr, "nst: unknown option '%s' (did you mean '%s'?)\n", arg, s);
                return;
            }
    }
    if (arg[1] != '-' && (strchr(arg, '.') || strchr(arg, '/')))
        fprintf(stderr, "nst: unknown option '%s' (for a file whose name starts with '-', put -- before it or write ./%s)\n",
                arg, arg);
    else
        fprintf(stderr, "nst: unknown option '%s' (try nst %s --help)\n", arg, cmd->name);
}

/* The entry that arg names ("--name", "--name=...", "-x", "-alias"), or NULL. */
static const cli_opt *lookup(const cli_cmd *cmd, const char *arg, const char **inline_value) {
    *inline_value = NULL;
    if (arg[0] != '-' || arg[1] == '\0') return NULL;
    int dd = arg[1] == '-';
    const char *name = arg + 1 + dd;
    size_t len = strcspn(name, "=");
    for (const cli_opt *o = cmd->opts; o->id; o++) {
        int match;
        if (!dd && name[0] && name[1] == '\0') match = o->short_name == name[0]; /* -o */
        else if (o->flags & OPT_ALIAS) match = strlen(o->name) == len && strncmp(o->name, name, len) == 0;
        else match = dd && strlen(o->name) == len && strncmp(o->name, name, len) == 0;
        if (match) {
            if (name[len] == '=') *inline_value = name + len + 1;
            return o;
        }
    }
    return NULL;
}

/* Does the next word look like an option rather than a value? A word that starts with
 * "--" or names a known option does; "-x.jpg" or "-5" does not. */
static int looks_like_option(const cli_cmd *cmd, const char *s) {
    const char *iv;
    if (s[0] != '-' || s[1] == '\0') return 0;
    if (s[1] == '-') return s[2] != '\0';
    return lookup(cmd, s, &iv) != NULL;
}

static int push_item(cli_args *a, const cli_opt *o, const char *value, const char *spelled) {
    cli_item *p = realloc(a->items, (size_t)(a->n_items + 1) * sizeof *p);
    if (!p) return 0;
    a->items = p;
    a->items[a->n_items++] = (cli_item){o, value, spelled};
    return 1;
}

void cli_args_free(cli_args *a) {
    free(a->items);
    free(a->positional);
    memset(a, 0, sizeof *a);
}

int cli_parse(const cli_cmd *cmd, int argc, char **argv, cli_args *out) {
    memset(out, 0, sizeof *out);
    out->positional = calloc((size_t)argc + 1, sizeof *out->positional);
    if (!out->positional) {
        fprintf(stderr, "nst: out of memory\n");
        return -1;
    }
    /* --help and --version win wherever they stand (before --) */
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
        const char *iv;
        const cli_opt *o = lookup(cmd, argv[i], &iv);
        if (o && o->id == OPT_HELP) {
            cli_help(cmd, stdout);
            cli_args_free(out);
            return 1;
        }
        if (o && o->id == OPT_VERSION) {
            printf("nst %s\n", NST_VERSION);
            cli_args_free(out);
            return 1;
        }
    }
    int only_files = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (only_files || arg[0] != '-' || arg[1] == '\0') {
            out->positional[out->n_positional++] = argv[i];
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            only_files = 1;
            continue;
        }
        const char *value;
        const cli_opt *o = lookup(cmd, arg, &value);
        if (!o) {
            suggest(cmd, arg);
            goto fail;
        }
        char name[80];
        spell(o, name, sizeof name);
        if (!o->value && value) {
            fprintf(stderr, "nst: %s takes no value (try nst %s --help)\n", name, cmd->name);
            goto fail;
        }
        if (o->value && !value) {
            if (i + 1 >= argc || looks_like_option(cmd, argv[i + 1]) || strcmp(argv[i + 1], "--") == 0) {
                fprintf(stderr, "nst: %s needs a value: %s %s (try nst %s --help)\n", arg, arg, o->value, cmd->name);
                goto fail;
            }
            value = argv[++i];
        }
        if (o->value && !(o->flags & OPT_REPEAT)) {
            for (int k = 0; k < out->n_items; k++)
                if (out->items[k].opt->id == o->id) {
                    fprintf(stderr, "nst: %s given twice ('%s' and '%s'); give it once\n", arg,
                            out->items[k].value, value);
                    goto fail;
                }
        }
        if (!push_item(out, o, value, arg)) {
            fprintf(stderr, "nst: out of memory\n");
            goto fail;
        }
    }
    return 0;
fail:
    cli_args_free(out);
    return -1;
}

const char *cli_value(const cli_args *a, int id) {
    const char *v = NULL;
    for (int i = 0; i < a->n_items; i++)
        if (a->items[i].opt->id == id) v = a->items[i].value;
    return v;
}

int cli_flag(const cli_args *a, int id) {
    for (int i = 0; i < a->n_items; i++)
        if (a->items[i].opt->id == id) return 1;
    return 0;
}

int cli_split_list(const char *flag, const char *s, char ***items, int max) {
    size_t len = strlen(s);
    /* the pointers, then the unescaped text: at most len + 1 bytes */
    char **v = malloc((size_t)max * sizeof *v + len + 1);
    if (!v) {
        fprintf(stderr, "nst: %s: out of memory\n", flag);
        return -1;
    }
    char *text = (char *)(v + max), *w = text;
    int n = 0;
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == '\t') p++;
        char *start = w, *last_kept = w; /* trailing blanks are trimmed, escaped ones kept */
        while (*p && *p != ',') {
            if (*p == '\\' && (p[1] == ',' || p[1] == '\\')) {
                *w++ = p[1];
                p += 2;
                last_kept = w;
                continue;
            }
            *w++ = *p;
            if (*p != ' ' && *p != '\t') last_kept = w;
            p++;
        }
        w = last_kept;
        *w++ = '\0';
        if (start[0] == '\0') {
            fprintf(stderr, "nst: %s: empty item in '%s'\n", flag, s);
            free(v);
            return -1;
        }
        if (n >= max) {
            fprintf(stderr, "nst: %s: more than %d items\n", flag, max);
            free(v);
            return -1;
        }
        v[n++] = start;
        if (!*p) break;
        p++; /* the comma */
    }
    *items = v;
    return n;
}

/* ---- --help ---- */

static void print_help_text(FILE *f, const char *left, const char *help) {
    enum { COL = 26 };
    int pad = (int)strlen(left) + 2 >= COL ? 0 : COL - 2 - (int)strlen(left);
    if ((int)strlen(left) + 2 >= COL) {
        fprintf(f, "  %s\n%*s", left, COL, "");
    } else {
        fprintf(f, "  %s%*s", left, pad, "");
    }
    for (const char *p = help; *p;) {
        size_t n = strcspn(p, "\n");
        fprintf(f, "%.*s\n", (int)n, p);
        p += n;
        if (*p == '\n') {
            p++;
            if (*p) fprintf(f, "%*s", COL, "");
        }
    }
}

void cli_help(const cli_cmd *cmd, FILE *f) {
    fprintf(f, "usage: nst %s %s\n\n%s\n\noptions:\n", cmd->name, cmd->synopsis, cmd->about);
    for (const cli_opt *o = cmd->opts; o->id; o++) {
        if ((o->flags & OPT_ALIAS) || !o->help) continue;
        char left[96];
        if (o->short_name)
            snprintf(left, sizeof left, "-%c, --%s%s%s", o->short_name, o->name, o->value ? " " : "",
                     o->value ? o->value : "");
        else
            snprintf(left, sizeof left, "--%s%s%s", o->name, o->value ? " " : "", o->value ? o->value : "");
        print_help_text(f, left, o->help);
    }
    int any_alias = 0;
    for (const cli_opt *o = cmd->opts; o->id; o++) any_alias |= (o->flags & OPT_ALIAS) != 0;
    if (any_alias) {
        fprintf(f, "\nThe option names of jcjohnson/neural-style work too, with the same meaning:\n");
        int col = 0;
        for (const cli_opt *o = cmd->opts; o->id; o++) {
            if (!(o->flags & OPT_ALIAS)) continue;
            const char *same = o->help;
            char buf[160];
            if (!same) {
                for (const cli_opt *m = cmd->opts; m->id; m++)
                    if (m->id == o->id && !(m->flags & OPT_ALIAS)) {
                        snprintf(buf, sizeof buf, "--%s", m->name);
                        same = buf;
                        break;
                    }
            }
            char item[200];
            int n = snprintf(item, sizeof item, "-%s (%s)", o->name, same ? same : "?");
            if (col > 0 && col + n + 2 > 88) {
                fputc('\n', f);
                col = 0;
            }
            fprintf(f, "%s%s", col ? ", " : "  ", item);
            col += n + 2;
        }
        fputc('\n', f);
    }
    if (cmd->epilog) fprintf(f, "\n%s", cmd->epilog);
}
