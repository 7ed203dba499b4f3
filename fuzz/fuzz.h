/* fuzz.h — what the snapshot fuzzers share: bytes opened as a snapshot (checked as any file
 * would be), then a fixed set of queries over every column. No Lua: the engine files only. */
#ifndef CPF_FUZZ_H
#define CPF_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* Opens the bytes with and without checksum verification and, when they open, runs the
 * queries, saves the dataset and reopens the saved file (which must open), then rewrites the
 * column arrays in place (as a file changed under its mapping) and runs the queries again.
 * Aborts on a broken invariant; sanitizers report the rest. */
void fuzz_snapshot(const uint8_t *data, size_t size);

#endif
