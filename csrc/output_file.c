/* output_file.c — a file that replaces its target only once it is complete: written to a
 * temporary beside the target, created exclusively, then renamed over it. Used by every writer
 * of cpf (snapshots, results), so that a reader never sees half a file and nothing but a regular
 * file is ever replaced. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cpf.h"

/* Bits for a temporary's name, from the kernel, else from the clock. Exclusive creation is what
 * makes the temporary safe; an unpredictable name only spares retries. */
static uint64_t random_bits(unsigned attempt) {
  uint64_t r = 0;
  struct timespec ts;
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t got = read(fd, &r, sizeof r);
    close(fd);
    if (got == (ssize_t)sizeof r) return r;
  }
  clock_gettime(CLOCK_REALTIME, &ts);
  r = ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 40) ^
      (uint64_t)(uintptr_t)&r ^ attempt;
  return r * 0xff51afd7ed558ccdull;
}

/* A regular file or nothing may be replaced; never a symlink, a FIFO, a device or a directory
 * (as root, a rename over /dev/null would replace the device). */
static int check_target(const char *path, cpf_error *err) {
  struct stat st;
  if (lstat(path, &st) != 0) {
    if (errno == ENOENT) return 0;
    cpf_error_set(err, CPF_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    return -1;
  }
  if (!S_ISREG(st.st_mode)) {
    cpf_error_set(err, CPF_ERR_IO, "%s: not a regular file: refusing to replace it", path);
    return -1;
  }
  return 0;
}

int output_file_open(output_file *out, const char *path, cpf_error *err) {
  size_t plen = strlen(path), size = plen + 32;
  unsigned attempt;
  char *tmp;
  memset(out, 0, sizeof *out);
  out->fd = -1;
  if (check_target(path, err) != 0) return -1;
  out->path = cpf_malloc(plen + 1);
  tmp = cpf_malloc(size);
  if (!out->path || !tmp) {
    free(tmp);
    output_file_abort(out);
    cpf_error_set(err, CPF_ERR_MEMORY, "%s: out of memory", path);
    return -1;
  }
  memcpy(out->path, path, plen + 1);
  /* beside the target, so that the rename stays on one file system; O_EXCL: nothing already at
   * that name, a symlink planted there included, is ever opened */
  for (attempt = 0; attempt < 100 && out->fd < 0; attempt++) {
    snprintf(tmp, size, "%s.tmp.%016llx", path, (unsigned long long)random_bits(attempt));
    out->fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666); /* the umask applies */
    if (out->fd < 0 && errno != EEXIST) break;
  }
  if (out->fd < 0) {
    cpf_error_set(err, CPF_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    free(tmp);
    output_file_abort(out);
    return -1;
  }
  out->tmp = tmp; /* from here on, a file of ours is at tmp: abort removes it */
  return 0;
}

int output_file_write(output_file *out, const void *p, size_t n, cpf_error *err) {
  const char *s = p;
  if (out->fd < 0) {
    cpf_error_set(err, CPF_ERR_IO, "output file is closed");
    return -1;
  }
  while (n > 0) {
    ssize_t k = write(out->fd, s, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) {
      cpf_error_set(err, CPF_ERR_IO, "%s: cannot write: %s", out->path, k < 0 ? strerror(errno) : "no space left");
      return -1;
    }
    s += k;
    n -= (size_t)k;
  }
  return 0;
}

int output_file_commit(output_file *out, cpf_error *err) {
  int failed = 0;
  if (out->fd < 0) {
    cpf_error_set(err, CPF_ERR_IO, "output file is closed");
    return -1;
  }
  /* close reports the write errors a network file system delays; the target is checked again:
   * something else may have been put there while the file was written */
  if (close(out->fd) != 0) {
    cpf_error_set(err, CPF_ERR_IO, "%s: cannot write: %s", out->path, strerror(errno));
    failed = 1;
  }
  out->fd = -1;
  if (!failed && check_target(out->path, err) != 0) failed = 1;
  if (!failed && rename(out->tmp, out->path) != 0) {
    cpf_error_set(err, CPF_ERR_IO, "%s: cannot write: %s", out->path, strerror(errno));
    failed = 1;
  }
  if (failed) {
    output_file_abort(out);
    return -1;
  }
  free(out->tmp);
  out->tmp = NULL;
  output_file_abort(out); /* frees the path */
  return 0;
}

void output_file_abort(output_file *out) {
  if (out->fd >= 0) close(out->fd);
  out->fd = -1;
  if (out->tmp) unlink(out->tmp);
  free(out->tmp);
  free(out->path);
  out->tmp = NULL;
  out->path = NULL;
}
