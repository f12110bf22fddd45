/*
 * `mpb keygen NAME`: a CURVE certificate pair for a coordinator, a worker
 * or a client (docs/security.md). NAME.key holds the secret key (mode
 * 0600, stays where it was made); NAME.pub goes to the other side: a
 * coordinator's .pub to its workers and clients, theirs into the
 * coordinator's clients folder.
 */
#include <stdio.h>
#include <string.h>

#include "core/curve.h"
#include "tools/commands.h"

static void
usage(FILE *out)
{
    fprintf(out, "usage: mpb keygen NAME\n"
                 "  Writes NAME.key (public and secret key, mode 0600) and NAME.pub (public\n"
                 "  key only), czmq certificates for CURVE on tcp:// endpoints. Give NAME.pub\n"
                 "  to the other side; keep NAME.key. Never overwrites a file.\n");
}

int
mpb_cmd_keygen(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc != 2 || argv[1][0] == '-' || argv[1][0] == '\0') {
        usage(stderr);
        return 2;
    }
    char err[512];
    if (mpb__curve_keygen(argv[1], err, sizeof err) != 0) {
        fprintf(stderr, "mpb keygen: %s\n", err);
        return 1;
    }
    printf("wrote %s.key (secret, keep it) and %s.pub (public, hand it out)\n", argv[1], argv[1]);
    return 0;
}
