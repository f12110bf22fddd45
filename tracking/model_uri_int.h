/*
 * What tracking/model_uri.c shares with tracking/model_uri_registry.c.
 * Threading: no state. Ownership: out is the caller's buffer.
 */
#ifndef MPB_TRACKING_MODEL_URI_INT_H
#define MPB_TRACKING_MODEL_URI_INT_H

/* A cache folder's name for text (an artifact path; a store and a
 * source): 32 hex digits of its SHA-256. */
void mpb__model_cache_key(const char *text, char out[33]);

#endif
