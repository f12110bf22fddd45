/* Tracks one run into the default store (MLFLOW_TRACKING_URI, else sqlite:///mlflow.db or an
 * existing ./mlruns); see docs/tracking.md. */
#include "mpbatch/tracking.h"

int
main(void)
{
    if (mpb_tracking_start_run("first-run", NULL, 0, NULL, 0) != 0) {
        return 1;
    }
    mpb_tracking_log_param("learning_rate", "0.01");
    for (int step = 0; step < 100; step++) {
        mpb_tracking_log_metric("loss", 1.0 / (step + 1), step);
    }
    return mpb_tracking_end_run(MPB_RUN_FINISHED, NULL, 0) != 0;
}
