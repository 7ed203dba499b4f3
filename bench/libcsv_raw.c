/* libcsv_raw.c: the floor for any libcsv-based loader -- tokenise a CSV with
 * libcsv and empty callbacks, so the time measured is libcsv's alone.
 *
 * Build: cc -O2 -std=c99 -Wall -Wextra -pedantic -D_POSIX_C_SOURCE=200809L \
 *           -o bench/libcsv_raw bench/libcsv_raw.c -lcsv
 * Usage: bench/libcsv_raw FILE
 * Prints one JSON line:
 *   {"tool":"libcsv_raw","seconds":S,"rows":R,"fields":F,"maxrss_kb":K}
 * seconds is wall time (CLOCK_MONOTONIC) around csv_parse/csv_fini only; the
 * file is mmap'ed and pre-faulted before the clock starts, so the figure is
 * parsing, not disk I/O.  rows counts every record libcsv reports, header
 * included. */
#include <csv.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BLOCK_SIZE ((size_t)1 << 20)

struct counters {
    unsigned long long fields;
    unsigned long long rows;
};

static void on_field(void *data, size_t len, void *ctx)
{
    (void)data;
    (void)len;
    ((struct counters *)ctx)->fields++;
}

static void on_record(int term, void *ctx)
{
    (void)term;
    ((struct counters *)ctx)->rows++;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    struct csv_parser parser;
    struct counters counters = {0, 0};
    struct stat st;
    struct rusage usage;
    const unsigned char *map = NULL;
    volatile unsigned char sink = 0;
    size_t size, offset;
    double start, elapsed;
    int fd;

    if (argc != 2) {
        fprintf(stderr, "usage: %s FILE\n", argv[0]);
        return 2;
    }
    fd = open(argv[1], O_RDONLY);
    if (fd < 0 || fstat(fd, &st) != 0) {
        fprintf(stderr, "%s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    size = (size_t)st.st_size;
    if (size > 0) {
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            fprintf(stderr, "%s: mmap: %s\n", argv[1], strerror(errno));
            return 1;
        }
        posix_madvise((void *)map, size, POSIX_MADV_SEQUENTIAL);
        /* Touch every page so page faults are not charged to the parser. */
        for (offset = 0; offset < size; offset += 4096)
            sink ^= map[offset];
    }
    (void)sink;

    if (csv_init(&parser, 0) != 0) {
        fprintf(stderr, "csv_init failed\n");
        return 1;
    }
    csv_set_delim(&parser, ';');

    start = now_seconds();
    for (offset = 0; offset < size; offset += BLOCK_SIZE) {
        size_t len = size - offset < BLOCK_SIZE ? size - offset : BLOCK_SIZE;
        if (csv_parse(&parser, map + offset, len, on_field, on_record,
                      &counters) != len) {
            fprintf(stderr, "%s: %s\n", argv[1],
                    csv_strerror(csv_error(&parser)));
            return 1;
        }
    }
    if (csv_fini(&parser, on_field, on_record, &counters) != 0) {
        fprintf(stderr, "%s: %s\n", argv[1],
                csv_strerror(csv_error(&parser)));
        return 1;
    }
    elapsed = now_seconds() - start;
    csv_free(&parser);

    if (map != NULL)
        munmap((void *)map, size);
    close(fd);
    getrusage(RUSAGE_SELF, &usage);
    printf("{\"tool\":\"libcsv_raw\",\"seconds\":%.6f,\"rows\":%llu,"
           "\"fields\":%llu,\"maxrss_kb\":%ld}\n",
           elapsed, counters.rows, counters.fields, usage.ru_maxrss);
    return 0;
}
