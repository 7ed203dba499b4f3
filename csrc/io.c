/* io.c — every read and write of a file by the core goes through here, so that a test can make
 * one fail (EIO, ENOSPC) or make every transfer short, and check that each reader and writer
 * ends in a clear error with the target untouched — or, for short transfers, in the same bytes.
 * Like alloc.c's switch, it is off by default and process-wide. */
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cpf.h"

/* Calls left before the one that fails (0: none fails); the errno it fails with; whether every
 * transfer from then on moves at most half of what was asked (io_short, until switched off). */
static long io_countdown = 0;
static int io_errno = 0;
static int io_short = 0;

/* -1 with errno set when this call is the one to fail (or, for short transfers, starts them). */
static int io_plan(void) {
  if (!cpf_countdown_hits(&io_countdown)) return 0;
  if (io_errno) {
    errno = io_errno;
    return -1;
  }
  io_short = 1;
  return 0;
}

static size_t io_amount(size_t n) { return io_short && n > 1 ? n / 2 : n; }

void cpf_fail_io(long n, int error_number) {
  cpf_countdown_set(&io_countdown, n);
  io_errno = error_number;
  io_short = 0;
}

long cpf_io_left(void) { return io_countdown; }

ssize_t cpf_read(int fd, void *buf, size_t n) {
  if (io_plan() < 0) return -1;
  return read(fd, buf, io_amount(n));
}

ssize_t cpf_pread(int fd, void *buf, size_t n, off_t off) {
  if (io_plan() < 0) return -1;
  return pread(fd, buf, io_amount(n), off);
}

ssize_t cpf_write(int fd, const void *buf, size_t n) {
  if (io_plan() < 0) return -1;
  return write(fd, buf, io_amount(n));
}

int cpf_fsync(int fd) {
  if (io_plan() < 0) return -1;
  return fsync(fd);
}

void *cpf_mmap_file(int fd, size_t size) {
  if (io_plan() < 0) return MAP_FAILED;
  return mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
}
