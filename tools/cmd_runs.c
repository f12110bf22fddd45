#include <stdio.h>

#include "tools/commands.h"

int
mpb_cmd_runs(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "mpb runs: not built yet\n");
    return 1;
}
