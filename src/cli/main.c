/* main.c - the nst command: dispatches to a subcommand. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/options.h"

static const char USAGE[] =
    "usage: nst <command> [options]\n"
    "\n"
    "Neural style transfer: repaint a photo in the style of a painting.\n"
    "\n"
    "commands:\n"
    "  transfer   optimization-based transfer (Gatys et al.): nst transfer --help\n"
    "  train      train a style network on a painting, or a decoder: nst train --help\n"
    "  apply      stylise photos with a trained network, or any painting: nst apply --help\n"
    "  bench      time the network and a transfer step: nst bench --help\n"
    "  info       what an image, a model or a style is: nst info FILE|STYLE...\n"
    "  compare    PSNR and SSIM of images against a reference: nst compare REF IMAGE...\n"
    "\n"
    "options:\n"
    "  -h, --help     this help (nst COMMAND --help: the command's options)\n"
    "  -V, --version  print the version\n"
    "\n"
    "example:\n"
    "  nst transfer --content photo.jpg --style painting.jpg -o out.png\n"
    "  nst apply --model starry_night photo.jpg -o out.jpg\n";

/* OpenMP threads that wait at a barrier spin by default. On a machine shared with other
 * work (CI, a desktop, several nst runs) a spinning thread takes the core from the one it
 * waits for: training ran 4x slower with one busy process beside it, against no
 * measurable gain when the machine is idle. libgomp reads the policy once, before
 * main(), so nst sets it and starts itself again, unless the user chose a policy. */
static void prefer_passive_wait(char **argv) {
    if (getenv("OMP_WAIT_POLICY")) return;
    if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
    execv("/proc/self/exe", argv); /* returns only on failure: then go on as we are */
}

int main(int argc, char **argv) {
    prefer_passive_wait(argv);
    if (argc < 2) {
        fputs(USAGE, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        fputs(USAGE, stdout);
        return EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0 || strcmp(cmd, "version") == 0) {
        printf("nst %s\n", NST_VERSION);
        return EXIT_OK;
    }
    static const char *const names[] = {"transfer", "train", "apply", "bench", "info", "compare"};
    static int (*const cmds[])(int, char **) = {cmd_transfer, cmd_train, cmd_apply, cmd_bench, cmd_info, cmd_compare};
    for (int i = 0; i < 6; i++)
        if (strcmp(cmd, names[i]) == 0) return cmds[i](argc - 1, argv + 1);
    const char *near = cli_closest(cmd, names, 6);
    if (near) fprintf(stderr, "nst: unknown command '%s' (did you mean '%s'?)\n", cmd, near);
    else fprintf(stderr, "nst: unknown command '%s' (try nst --help)\n", cmd);
    return EXIT_USAGE;
}
