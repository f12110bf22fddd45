#include <stdio.h>

#include "mpbatch/error.h"

int
main(void)
{
    printf("mpbatch demo: the serving engine is being built (%s)\n", mpb_strerror(0));
    return 0;
}
