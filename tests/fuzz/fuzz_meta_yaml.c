/* A tracking store's meta.yaml, as the file store reads one it finds on
 * disk (written by MLflow, another program, or a broken disk). */
#include <stdint.h>

#include "fuzz.h"
#include "tracking/yaml_meta.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mpb__yaml_map map = {0};
    char err[256];
    if (mpb__yaml_map_parse((const char *)data, size, &map, err, sizeof err) == 0) {
        int64_t n;
        (void)mpb__yaml_map_string(&map, "name");
        (void)mpb__yaml_map_int(&map, "lifecycle_stage", &n);
        (void)mpb__yaml_map_int(&map, "start_time", &n);
        mpb__yaml_map_clear(&map);
    }
    return 0;
}
