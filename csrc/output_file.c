/* output_file.c — a file that replaces its target only once it is complete: written to a
 * temporary beside the target, created exclusively, synced, renamed over it, the folder synced
 * (as SQLite and PostgreSQL do), so that after a crash or a power cut the target is the old file
 * or the new one, whole. Used by every writer of cpf (snapshots, results). A temporary is locked
 * (flock) while written: the next write to the target removes the temporaries of writers that
 * died (killed), never one still being written. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
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

/* The folder of a path ("." for a bare name), in buf. */
static void folder_of(const char *path, char *buf, size_t size) {
  const char *slash = strrchr(path, '/');
  size_t n = slash ? (size_t)(slash - path) : 0;
  if (!slash) { snprintf(buf, size, "."); return; }
  if (n == 0) n = 1; /* "/x": the root */
  if (n >= size) n = size - 1;
  memcpy(buf, path, n);
  buf[n] = 0;
}

/* Removes the temporaries of the target that a killed writer left ("TARGET.tmp.*", regular
 * files whose lock nobody holds). Best effort: a temporary it cannot open or lock stays. */
static void remove_dead_temporaries(const char *path) {
  char folder[4096], *name;
  const char *base = strrchr(path, '/');
  size_t blen;
  DIR *dir;
  struct dirent *e;
  base = base ? base + 1 : path;
  blen = strlen(base);
  folder_of(path, folder, sizeof folder);
  if (!(dir = opendir(folder))) return;
  name = cpf_malloc(strlen(folder) + 256 + 2);
  if (!name) { closedir(dir); return; }
  while ((e = readdir(dir)) != NULL) {
    int fd;
    struct stat st;
    if (strncmp(e->d_name, base, blen) != 0 || strncmp(e->d_name + blen, ".tmp.", 5) != 0) continue;
    sprintf(name, "%s/%s", folder, e->d_name);
    fd = open(name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) continue;
    /* a writer alive holds its lock: only a regular file nobody locks is a dead writer's */
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && flock(fd, LOCK_EX | LOCK_NB) == 0) unlink(name);
    close(fd);
  }
  free(name);
  closedir(dir);
}

/* fsync of a path's folder: the rename itself durable. Best effort (a file system may refuse). */
static void sync_folder(const char *path) {
  char folder[4096];
  int fd;
  folder_of(path, folder, sizeof folder);
  fd = open(folder, O_RDONLY | O_CLOEXEC | O_DIRECTORY);
  if (fd < 0) return;
  (void)fsync(fd);
  close(fd);
}

int output_file_open(output_file *out, const char *path, cpf_error *err) {
  size_t plen = strlen(path), size = plen + 48;
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
  remove_dead_temporaries(path);
  /* beside the target, so that the rename stays on one file system; O_EXCL: nothing already at
   * that name, a symlink planted there included, is ever opened; the pid says whose it is */
  for (attempt = 0; attempt < 100 && out->fd < 0; attempt++) {
    snprintf(tmp, size, "%s.tmp.%ld.%016llx", path, (long)getpid(), (unsigned long long)random_bits(attempt));
    out->fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666); /* the umask applies */
    if (out->fd < 0 && errno != EEXIST) break;
  }
  if (out->fd >= 0) (void)flock(out->fd, LOCK_EX | LOCK_NB); /* ours while written: never cleaned up */
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
    ssize_t k = cpf_write(out->fd, s, n);
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
  /* on disk before it takes the target's name (a power cut must not leave the name on an empty
   * file); close reports the write errors a network file system delays; the target is checked
   * again: something else may have been put there while the file was written */
  if (cpf_fsync(out->fd) != 0 && errno != EINVAL && errno != EROFS) {
    cpf_error_set(err, CPF_ERR_IO, "%s: cannot write: %s", out->path, strerror(errno));
    failed = 1;
  }
  if (close(out->fd) != 0 && !failed) {
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
  sync_folder(out->path); /* the new name on disk too */
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
