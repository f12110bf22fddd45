/*
 * Fuzz harnesses: each file defines LLVMFuzzerTestOneInput for one decoder
 * of outside input. `make fuzz` links them with libFuzzer (clang) and runs
 * each for a while; `make test` links them with fuzz_driver.c and runs
 * each over its corpus in tests/fuzz/corpus/<name>/ (seeds and every input
 * that once crashed: regression tests).
 */
#ifndef MPB_TESTS_FUZZ_FUZZ_H
#define MPB_TESTS_FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
