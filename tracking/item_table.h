/*
 * The per-item records a server tracker keeps: sampled as items are
 * answered (every item up to `first`, then 1 in `every`, at most `max`
 * rows), and written at the end of the run as an MLflow table artifact:
 * the JSON that mlflow.log_table writes and mlflow.load_table reads
 * ({"columns": [...], "data": [[...], ...]}, pandas' orient="split").
 *
 * Threading: add on one thread (the server's dispatcher); write after the
 *   adding stopped. Ownership: rows copy what they keep of a record.
 */
#ifndef MPB_TRACKING_ITEM_TABLE_H
#define MPB_TRACKING_ITEM_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "mpbatch/telemetry.h"

typedef struct mpb__item_table mpb__item_table;

/* first, every, max as described above (every 0: none after first);
 * payload_max > 0 keeps each row's input and value, up to that many bytes. */
mpb__item_table *mpb__item_table_new(uint64_t first, uint64_t every, uint64_t max,
                                     size_t payload_max);
void mpb__item_table_free(mpb__item_table **self_p);

/* Samples one record; never blocks (allocates a block of rows now and then). */
void mpb__item_table_add(mpb__item_table *self, const mpb_item_record *record);

uint64_t mpb__item_table_rows(const mpb__item_table *self);
uint64_t mpb__item_table_sampled_out(const mpb__item_table *self); /* by the 1 in N rule */
uint64_t mpb__item_table_dropped(const mpb__item_table *self);     /* past max rows */

/* Writes the table to path. Returns 0 or a status with err. */
int mpb__item_table_write(const mpb__item_table *self, const char *path, char *err, size_t err_len);

#endif
