/* Built against an installed mpbatch (pkg-config mpbatch): serves one item
 * through a thread servlet and one through a process servlet. */
#include <stdio.h>
#include <string.h>

#include <mpbatch/mpbatch.h>

static int
serve_one(mpb_servlet *servlet)
{
    mpb_server *server = mpb_server_new(&servlet, NULL);
    char err[512];
    if (mpb_server_start(server, err, sizeof err) != 0) {
        fprintf(stderr, "tiny: %s\n", err);
        mpb_server_destroy(&server);
        return 1;
    }
    mpb_result *result = NULL;
    int rc = mpb_server_call(server, "ping", 4, 10000, &result);
    size_t len = 0;
    const char *value = rc == 0 ? mpb_result_value(result, &len) : NULL;
    int ok = value != NULL && len == 4 && memcmp(value, "ping", 4) == 0;
    mpb_result_destroy(&result);
    mpb_server_destroy(&server);
    return ok ? 0 : 1;
}

int
main(void)
{
    mpb_pool_config cfg;
    mpb_pool_config_init(&cfg);
    cfg.plugin = "passthrough";
    if (serve_one(mpb_thread_servlet_new(&cfg)) != 0 ||
        serve_one(mpb_process_servlet_new(&cfg)) != 0) {
        return 1;
    }
    printf("tiny: ok\n");
    return 0;
}
