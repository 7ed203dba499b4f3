/* snapshot_open.c — libFuzzer harness: arbitrary bytes opened as a snapshot, then the fixed
 * query set (fuzz_queries.c). Mostly exercises the header and table checks: a random change
 * rarely survives the checksums, which snapshot_mutate.c recomputes. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_snapshot(data, size);
  return 0;
}
