/* lua_system.c — what the Lua layer asks of the operating system: a file's signature, kind and
 * identity, output files (a temporary renamed over its target once complete), a monotonic
 * clock and whether stderr is a terminal. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lua_bindings.h"

/* ---- files ---- */

/* nil, "path: reason", "io" after a failed stat (errno set) */
static int push_stat_failure(lua_State *L, const char *path) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", path, strerror(errno));
  lua_pushliteral(L, "io");
  return 3;
}

/* core.file_signature(path) -> "size=...;mtime=...;..." | nil, message: what a cached snapshot
 * records of the CSV it was made from. Size and mtime can be put back by a user (`touch -r`);
 * the inode and the change time (ctime) cannot, so an edited file is always seen as changed. */
static int file_signature(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (stat(path, &st) != 0) return push_stat_failure(L, path);
  {
    char buf[192];
    snprintf(buf, sizeof buf, "size=%lld;mtime=%lld.%09ld;dev=%llu;ino=%llu;ctime=%lld.%09ld",
             (long long)st.st_size, (long long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec,
             (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
             (long long)st.st_ctim.tv_sec, (long)st.st_ctim.tv_nsec);
    lua_pushstring(L, buf);
  }
  return 1;
}

/* core.same_file(a, b) -> true when both paths exist and name the same file (device and inode:
 * links and other spellings of a path included): an output must never overwrite an input. */
static int same_file(lua_State *L) {
  const char *a = luaL_checkstring(L, 1), *b = luaL_checkstring(L, 2);
  struct stat sa, sb;
  lua_pushboolean(L, stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
                     sa.st_ino == sb.st_ino);
  return 1;
}

/* core.file_kind(path) -> "regular" | "directory" | "fifo" | "device" | "other" | nil, message
 * (symlinks followed): whether a file can be read twice, e.g. its header before its rows. */
static int file_kind(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (stat(path, &st) != 0) return push_stat_failure(L, path);
  lua_pushstring(L, S_ISREG(st.st_mode) ? "regular" : S_ISDIR(st.st_mode) ? "directory"
                    : S_ISFIFO(st.st_mode) ? "fifo"
                    : (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) ? "device" : "other");
  return 1;
}

/* ---- output files: what res:write writes a path through ---- */

/* core.output_file(path) -> writer | nil, message: a temporary beside path, renamed over it by
 * writer:commit(); writer:abort() (or the collector) removes it. */
/* core.make_dirs(path) -> true | nil, "path: reason", "io": the folder and its missing
 * parents, as mkdir -p (an existing folder is fine) */
static int make_dirs(lua_State *L) {
  size_t len, i;
  const char *path = luaL_checklstring(L, 1, &len);
  char *p;
  struct stat st;
  if (len == 0) return luaL_argerror(L, 1, "empty path");
  p = lua_newuserdata(L, len + 1);
  memcpy(p, path, len + 1);
  for (i = 1; i <= len; i++) {
    if (i < len && p[i] != '/') continue;
    p[i] = '\0';
    if (mkdir(p, 0777) != 0 && errno != EEXIST) return push_stat_failure(L, p);
    if (stat(p, &st) != 0) return push_stat_failure(L, p);
    if (!S_ISDIR(st.st_mode)) {
      lua_pushnil(L);
      lua_pushfstring(L, "%s: not a folder", p);
      lua_pushliteral(L, "io");
      return 3;
    }
    if (i < len) p[i] = '/';
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int output_file_new(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  output_file *out = lua_newuserdata(L, sizeof *out);
  cpf_error err;
  memset(&err, 0, sizeof err);
  out->fd = -1;
  out->tmp = out->path = NULL;
  luaL_getmetatable(L, OUTPUT_META);
  lua_setmetatable(L, -2);
  if (output_file_open(out, path, &err) != 0) {
    return push_failure(L, &err);
  }
  return 1;
}

static int output_result(lua_State *L, int status, const cpf_error *err) {
  if (status == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  return push_failure(L, err);
}

/* writer:write(s) -> writer | nil, message (file:write's convention) */
static int output_file_write_l(lua_State *L) {
  output_file *out = luaL_checkudata(L, 1, OUTPUT_META);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  cpf_error err;
  memset(&err, 0, sizeof err);
  if (output_file_write(out, s, len, &err) != 0) return output_result(L, -1, &err);
  lua_settop(L, 1);
  return 1;
}

static int output_file_commit_l(lua_State *L) {
  output_file *out = luaL_checkudata(L, 1, OUTPUT_META);
  cpf_error err;
  memset(&err, 0, sizeof err);
  return output_result(L, output_file_commit(out, &err), &err);
}

static int output_file_abort_l(lua_State *L) {
  output_file_abort(luaL_checkudata(L, 1, OUTPUT_META));
  return 0;
}

/* ---- the host ---- */

/* Monotonic wall-clock seconds, for progress and benchmarks (os.clock is CPU time). */
static int monotonic_clock(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec * 1e-9);
  return 1;
}

static int stderr_is_tty(lua_State *L) {
  lua_pushboolean(L, isatty(2));
  return 1;
}

/* core.exec(argv) -> only on failure: nil, message. Replaces the process with argv[1] (searched
 * in PATH) and its arguments: cpf serve becomes the nginx it configured, so that its pid is the
 * server's and a signal to it stops the server. */
static int exec_program(lua_State *L) {
  size_t n, i;
  const char **argv;
  luaL_checktype(L, 1, LUA_TTABLE);
  n = compat_rawlen(L, 1);
  if (n == 0) return luaL_argerror(L, 1, "empty argument list");
  argv = lua_newuserdata(L, (n + 1) * sizeof *argv);
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, 1, (int)i + 1);
    argv[i] = lua_tostring(L, -1);
    if (argv[i] == NULL) return luaL_argerror(L, 1, "arguments must be strings");
    lua_pop(L, 1); /* the string stays alive in the table */
  }
  argv[n] = NULL;
  fflush(NULL);
  execvp(argv[0], (char *const *)argv);
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", argv[0], strerror(errno));
  return 2;
}

/* core.load_threads() -> the threads a load uses by default (one per core online) */
static int load_threads(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)loader_default_threads());
  return 1;
}

static const luaL_Reg output_file_methods[] = {
  {"write", output_file_write_l}, {"commit", output_file_commit_l}, {"abort", output_file_abort_l},
  {NULL, NULL}};

/* core.number_text(v) -> the fewest significant digits that read back as v, '.' as the
 * decimal point; nil for NaN and infinities. The same text on every Lua and under any locale. */
static int number_text(lua_State *L) {
  double v = (double)luaL_checknumber(L, 1);
  char buf[400];
  size_t n;
  if (v != v || v - v != 0) return 0; /* NaN, +-inf: no text */
  n = format_shortest(v, numparse_locale_point(), buf, sizeof buf);
  lua_pushlstring(L, buf, n);
  return 1;
}

/* core.fixed_text(v, decimals) -> v with `decimals` (0 to 9) fixed decimals, rounded as the C
 * library rounds the exact binary value (1060.625 -> "1060.62" on every Lua); nil for NaN and
 * infinities. */
static int fixed_text(lua_State *L) {
  double v = (double)luaL_checknumber(L, 1);
  lua_Integer decimals = luaL_checkinteger(L, 2);
  char buf[400];
  size_t n;
  luaL_argcheck(L, decimals >= 0 && decimals <= 9, 2, "decimals from 0 to 9 expected");
  if (v != v || v - v != 0) return 0;
  n = format_fixed(v, (int)decimals, buf, sizeof buf);
  lua_pushlstring(L, buf, n);
  return 1;
}

/* core.fail_allocation(n): tests only — the nth allocation of the core from now fails (0: none).
 * core.allocations_left() -> what is left of that count (0 once it failed or when off). */
static int fail_allocation(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 0, 1, "a count from 0 expected");
  cpf_fail_allocation((long)n);
  return 0;
}

static int allocations_left(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)cpf_allocations_left());
  return 1;
}

/* core.fail_io(n, "EIO" | "ENOSPC" | "short"): tests only — the nth read, write, fsync or map
 * of a file from now fails with that error, or starts short transfers (each moves half of what
 * was asked, until switched off); n = 0 switches it off. core.io_left() -> what is left. */
static int fail_io(lua_State *L) {
  static const char *const kinds[] = {"EIO", "ENOSPC", "short", NULL};
  static const int numbers[] = {EIO, ENOSPC, 0};
  lua_Integer n = luaL_checkinteger(L, 1);
  int kind = luaL_checkoption(L, 2, "EIO", kinds);
  luaL_argcheck(L, n >= 0, 1, "a count from 0 expected");
  cpf_fail_io((long)n, numbers[kind]);
  return 0;
}

static int io_left(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)cpf_io_left());
  return 1;
}

/* core.sleep(seconds): waits (cpf.fetch between two polls of its job). */
static int sleep_l(lua_State *L) {
  double seconds = (double)luaL_checknumber(L, 1);
  struct timespec ts;
  if (seconds <= 0) return 0;
  ts.tv_sec = (time_t)seconds;
  ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
  return 0;
}

/* core.list_dir(path) -> {name, ...} (sorted by the caller; "." and ".." left out) | nil, message */
static int list_dir(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  DIR *d = opendir(path);
  struct dirent *e;
  int n = 0;
  if (!d) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", path, strerror(errno));
    return 2;
  }
  lua_newtable(L);
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    lua_pushstring(L, e->d_name);
    lua_rawseti(L, -2, ++n);
  }
  closedir(d);
  return 1;
}

/* core.hard_link(from, to) -> true | nil, message: a second name for a file (cpf-latest) */
static int hard_link(lua_State *L) {
  const char *from = luaL_checkstring(L, 1), *to = luaL_checkstring(L, 2);
  if (link(from, to) != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", to, strerror(errno));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg system_functions[] = {
  {"file_signature", file_signature}, {"same_file", same_file}, {"file_kind", file_kind},
  {"output_file", output_file_new},   {"clock", monotonic_clock}, {"stderr_is_tty", stderr_is_tty},
  {"load_threads", load_threads},     {"exec", exec_program},           {"number_text", number_text},
  {"fixed_text", fixed_text},         {"fail_allocation", fail_allocation},
  {"allocations_left", allocations_left}, {"fail_io", fail_io}, {"io_left", io_left},
  {"make_dirs", make_dirs},           {"sleep", sleep_l}, {"list_dir", list_dir}, {"hard_link", hard_link},
  {NULL, NULL}};

void register_system_bindings(lua_State *L, int module) {
  /* a writer never committed leaves no temporary */
  new_userdata_type(L, OUTPUT_META, output_file_abort_l, output_file_methods);
  lua_pop(L, 1);
  set_functions(L, module, system_functions);
}
