#include <stdio.h>

#include "tools/commands.h"

int
mpb_cmd_run(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "mpb run: not built yet\n");
    return 1;
}
