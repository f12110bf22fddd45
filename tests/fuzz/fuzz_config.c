/* A pipeline file, as mpb run and mpb serve load it (the tree is not
 * built: that would load plugins). */
#include "fuzz.h"
#include "mpbatch/config.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mpb_config *config = NULL;
    char err[512];
    if (mpb_config_parse((const char *)data, size, "fuzz.yaml", &config, err, sizeof err) == 0) {
        for (size_t i = 0; i < mpb_config_count(config); i++) {
            (void)mpb_config_key(config, i);
            (void)mpb_config_value(config, i);
        }
        mpb_config_destroy(&config);
    }
    return 0;
}
