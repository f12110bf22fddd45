/* An HTTP infer request's JSON body (Open Inference Protocol v2), as the
 * HTTP front end parses it, with the front end's limits. */
#include "frontends/kserve.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mpb__kserve_request *request = NULL;
    char err[256];
    if (mpb__kserve_parse_infer((const char *)data, size, 4096, (size_t)1 << 20, &request, err,
                                sizeof err) == 0) {
        mpb__kserve_request_destroy(&request);
    }
    return 0;
}
