/* lua_source.c — CSV sources: core.open(path) opens a file once, source:header() reads its
 * header record, source:load(columns, options) loads it into a dataset, calling the progress
 * callback between chunks; source:load_async(columns, options) starts the same load on a
 * thread of its own and returns a job to poll. */
#include <stdlib.h>
#include <string.h>

#include "lua_bindings.h"

static cpf_source *check_source(lua_State *L, int idx) {
  cpf_source *src = luaL_checkudata(L, idx, SOURCE_META);
  if (!src->is_open) luaL_error(L, "source is closed");
  return src;
}

static int source_close_l(lua_State *L) {
  source_close(luaL_checkudata(L, 1, SOURCE_META));
  return 0;
}

/* core.open(path) -> source | nil, message */
static int open_source(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  cpf_source *src = lua_newuserdata(L, sizeof *src);
  cpf_error err;
  memset(src, 0, sizeof *src);
  src->fd = -1; /* __gc closes it */
  luaL_getmetatable(L, SOURCE_META);
  lua_setmetatable(L, -2);
  memset(&err, 0, sizeof err);
  if (source_open(src, path, &err) != 0) {
    return push_failure(L, &err);
  }
  return 1;
}

/* source:starts_with(bytes) -> whether the file's first bytes are these: a snapshot's magic
 * seen without opening the file again */
static int source_starts_with(lua_State *L) {
  cpf_source *src = check_source(L, 1);
  size_t n;
  const char *bytes = luaL_checklstring(L, 2, &n);
  lua_pushboolean(L, src->prefix != NULL && src->prefix_len >= n && memcmp(src->prefix, bytes, n) == 0);
  return 1;
}

/* source:header([sep]) -> labels, separator | nil, message */
/* The encoding option's value (checked by cpf.load): "cp1252", "latin1", else UTF-8. */
static cpf_encoding encoding_of(const char *name) {
  if (name && strcmp(name, "cp1252") == 0) return CPF_ENCODING_CP1252;
  if (name && strcmp(name, "latin1") == 0) return CPF_ENCODING_LATIN1;
  return CPF_ENCODING_UTF8;
}

/* source:header(sep, encoding) -> labels (UTF-8), separator | nil, message, kind: a header that
 * is not UTF-8 is refused unless an encoding says how to read it. */
static int source_header(lua_State *L) {
  cpf_source *src = check_source(L, 1);
  const char *sep_arg = luaL_optstring(L, 2, "");
  cpf_encoding encoding = encoding_of(luaL_optstring(L, 3, "utf-8"));
  char sep_found = 0;
  char **labels = NULL;
  size_t count = 0, i;
  cpf_error err;
  memset(&err, 0, sizeof err);
  if (loader_read_header(src, sep_arg[0], &labels, &count, &sep_found, &err) != 0) {
    return push_failure(L, &err);
  }
  for (i = 0; encoding == CPF_ENCODING_UTF8 && i < count; i++)
    if (utf8_invalid_at(labels[i], strlen(labels[i])) < strlen(labels[i])) {
      cpf_error_at(&err, CPF_ERR_DATA, 1, i + 1, "%s:1:%zu: the header is not UTF-8 text; a French file that is "
                   "not UTF-8 is most often Windows-1252: load it with --encoding cp1252 (encoding = \"cp1252\")",
                   src->path, i + 1);
      loader_free_header(labels, count);
      return push_failure(L, &err);
    }
  /* copy into Lua, then free: a Lua allocation error would leak them, so make room first */
  if (!lua_checkstack(L, 4)) {
    loader_free_header(labels, count);
    return luaL_error(L, "stack overflow");
  }
  lua_createtable(L, (int)count, 0);
  for (i = 0; i < count; i++) {
    if (encoding == CPF_ENCODING_UTF8) {
      lua_pushstring(L, labels[i]);
    } else { /* a label is short (the header is within 1 MiB): its UTF-8 text on the stack */
      size_t n = strlen(labels[i]);
      char *out = lua_newuserdata(L, 3 * n + 1);
      lua_pushlstring(L, out, to_utf8(labels[i], n, encoding, out));
      lua_remove(L, -2);
    }
    lua_rawseti(L, -2, (int)i + 1);
  }
  loader_free_header(labels, count);
  lua_pushlstring(L, &sep_found, 1);
  return 2;
}

/* The progress function of source:load, called between chunks on the thread that called load
 * (never on a loading thread): an error it raises, or a false return, stops the load. */
typedef struct {
  lua_State *L;
  int function; /* stack index of the progress function */
} progress_context;

static int call_progress(void *ud, size_t done, size_t total, size_t rows, cpf_error *err) {
  progress_context *ctx = ud;
  lua_State *L = ctx->L;
  int stop = 0;
  lua_pushvalue(L, ctx->function);
  lua_pushnumber(L, (lua_Number)done);
  lua_pushnumber(L, (lua_Number)total);
  lua_pushnumber(L, (lua_Number)rows);
  if (lua_pcall(L, 3, 1, 0) != 0) {
    const char *msg = lua_tostring(L, -1);
    cpf_error_set(err, CPF_ERR_CALLBACK, "progress callback failed: %s",
                  msg ? msg : "(error object is not a string)");
    stop = 1;
  } else if (lua_toboolean(L, -1) == 0 && !lua_isnil(L, -1)) {
    cpf_error_set(err, CPF_ERR_CANCELLED, "load cancelled by the progress callback");
    stop = 1;
  }
  lua_pop(L, 1);
  return stop;
}

/* A one-character option of source:load (sep, decimal); 0 when absent. */
static char sep_option(lua_State *L, int opts, const char *field) {
  const char *s;
  size_t len;
  char c;
  lua_getfield(L, opts, field);
  if (lua_isnil(L, -1)) { lua_pop(L, 1); return 0; }
  s = lua_tolstring(L, -1, &len);
  if (s == NULL || len != 1)
    luaL_error(L, "option '%s' must be a one-character string", field);
  c = s[0];
  lua_pop(L, 1);
  return c;
}

/* The options of source:load and source:load_async (opts at index `t`), but the progress
 * function. */
static void read_load_options(lua_State *L, int t, cpf_load_options *opts) {
  memset(opts, 0, sizeof *opts);
  opts->sep = sep_option(L, t, "sep");
  opts->decimal_mark = sep_option(L, t, "decimal");
  /* checked by cpf.load: "none" or one of ' ', '.', ',', "'" */
  lua_getfield(L, t, "thousands");
  if (lua_type(L, -1) == LUA_TSTRING) {
    const char *th = lua_tostring(L, -1);
    opts->thousands = strcmp(th, "none") == 0 ? 'n' : th[0];
  }
  lua_pop(L, 1);
  opts->libcsv_only = table_flag(L, t, "libcsv_only");
  /* checked by cpf.load: on_error "fail" or "skip", max_rejects a whole number */
  lua_getfield(L, t, "on_error");
  opts->skip_bad_records = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "skip") == 0;
  lua_pop(L, 1);
  lua_getfield(L, t, "encoding");
  opts->encoding = encoding_of(lua_tostring(L, -1));
  lua_pop(L, 1);
  lua_getfield(L, t, "max_rejects");
  opts->max_rejects = lua_isnumber(L, -1) ? (size_t)lua_tonumber(L, -1) : 1000;
  lua_pop(L, 1);
  lua_getfield(L, t, "threads");
  if (!lua_isnil(L, -1)) {
    int64_t n = (int64_t)luaL_checknumber(L, -1);
    if (n < 1 || n > 64) luaL_error(L, "option 'threads' must be a whole number from 1 to 64");
    opts->threads = (size_t)n;
  }
  lua_pop(L, 1);
  if (opts->decimal_mark && opts->decimal_mark != '.' && opts->decimal_mark != ',')
    luaL_error(L, "option 'decimal' must be \".\" or \",\"");
}

/* The column list { {name=, label=, type=, skip=}, ... } at index `t`, in file order, into
 * specs[ncols]; the names and labels point into the Lua strings of the list. */
static void read_specs(lua_State *L, int t, cpf_column_spec *specs, size_t ncols) {
  size_t i;
  for (i = 0; i < ncols; i++) {
    const char *type_name;
    lua_rawgeti(L, t, (int)i + 1);
    luaL_checktype(L, -1, LUA_TTABLE);
    lua_getfield(L, -1, "name");
    lua_getfield(L, -2, "label");
    lua_getfield(L, -3, "type");
    specs[i].name = lua_tostring(L, -3);
    specs[i].label = lua_tostring(L, -2);
    type_name = lua_tostring(L, -1);
    specs[i].skip = table_flag(L, -4, "skip");
    if (!specs[i].name || !specs[i].label || !type_name)
      luaL_error(L, "column %d: name, label and type must be strings", (int)i + 1);
    if (cpf_type_from_name(type_name, &specs[i].type) != 0)
      luaL_error(L, "column '%s': unknown type '%s'", specs[i].name, type_name);
    lua_pop(L, 4); /* the strings stay alive in the columns table */
  }
}

/* source:load(columns, opts): columns = { {name=, label=, type=}, ... } in file order */
static int source_load(lua_State *L) {
  cpf_source *src = check_source(L, 1);
  size_t ncols;
  cpf_column_spec *specs;
  cpf_load_options opts;
  progress_context progress;
  dataset_box *box;
  cpf_error err;
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  read_load_options(L, 3, &opts);
  lua_getfield(L, 3, "progress"); /* stays at index 4 */
  if (!lua_isnil(L, 4)) {
    luaL_checktype(L, 4, LUA_TFUNCTION);
    progress.L = L;
    progress.function = 4;
    opts.progress = call_progress;
    opts.progress_ud = &progress;
  }
  ncols = compat_rawlen(L, 2);
  specs = lua_newuserdata(L, (ncols ? ncols : 1) * sizeof *specs); /* index 5 */
  read_specs(L, 2, specs, ncols);
  box = new_dataset_box(L);
  memset(&err, 0, sizeof err);
  if (source_inflate(src, &opts, &err) == 0) box->ds = loader_load(src, &opts, specs, ncols, &err);
  if (box->ds != NULL && err.code) { /* never a partial dataset with an error: no dataset */
    dataset_free(box->ds);
    box->ds = NULL;
  }
  if (box->ds == NULL) {
    if (!err.code) cpf_error_set(&err, CPF_ERR_MEMORY, "%s: out of memory", src->path);
    return push_failure(L, &err);
  }
  return 1;
}

/* ---- source:load_async: the same load on a thread of its own (a lua_job) ----
 * The job owns everything the thread reads: the source (moved out of its userdata), copies of
 * the column names and labels, the options. Its figures: bytes read, bytes in all, rows. */
typedef struct {
  lua_job job;
  int taken;                  /* the dataset was handed to Lua */
  cpf_source src;
  cpf_column_spec *specs;
  size_t ncols;
  char *names;                /* the specs' names and labels, one block */
  cpf_load_options opts;
  cpf_dataset *ds;            /* the thread's answer */
  cpf_error err;
} load_job;

static int load_monitor(void *ud, size_t done, size_t total, size_t rows) {
  return job_report(ud, done, total, rows);
}

static void load_work(lua_job *base) {
  load_job *job = (load_job *)base;
  /* a gzip file inflated here, on the job's thread */
  if (source_inflate(&job->src, &job->opts, &job->err) == 0)
    job->ds = loader_load(&job->src, &job->opts, job->specs, job->ncols, &job->err);
  if (job->ds && job->err.code) { /* never a partial dataset with an error */
    dataset_free(job->ds);
    job->ds = NULL;
  }
  if (!job->ds && !job->err.code) cpf_error_set(&job->err, CPF_ERR_MEMORY, "%s: out of memory", job->src.path);
  source_close(&job->src); /* the file and what was read of it, now rather than at __gc */
}

static void load_release(lua_job *base) {
  load_job *job = (load_job *)base;
  if (job->ds && !job->taken) dataset_free(job->ds);
  job->ds = NULL;
  source_close(&job->src);
  free(job->specs);
  free(job->names);
  job->specs = NULL;
  job->names = NULL;
}

/* dataset | nil, message, kind */
static int load_answer(lua_State *L, lua_job *base) {
  load_job *job = (load_job *)base;
  if (job->ds && !job->taken) {
    dataset_box *box = new_dataset_box(L);
    box->ds = job->ds;
    job->taken = 1;
    return 1;
  }
  if (job->taken) {
    cpf_error err;
    memset(&err, 0, sizeof err);
    cpf_error_set(&err, CPF_ERR_USAGE, "load job: its dataset was already returned");
    return push_failure(L, &err);
  }
  return push_failure(L, &job->err);
}

static const lua_job_kind load_kind = {load_work, load_answer, load_release};

/* source:load_async(columns, opts) -> job (poll: false, bytes_done, bytes_total, rows | true,
 * dataset | true, nil, message, kind): the source is the job's from now on (closed here). */
static int source_load_async(lua_State *L) {
  cpf_source *src = check_source(L, 1);
  size_t ncols, i, bytes = 0;
  cpf_column_spec *specs;
  load_job *job;
  char *p;
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  ncols = compat_rawlen(L, 2);
  specs = lua_newuserdata(L, (ncols ? ncols : 1) * sizeof *specs); /* index 4 */
  read_specs(L, 2, specs, ncols);
  job = (load_job *)job_new(L, sizeof *job, &load_kind); /* index 5 */
  job->src.fd = -1;
  read_load_options(L, 3, &job->opts);
  job->opts.monitor = load_monitor;
  job->opts.monitor_ud = job;
  for (i = 0; i < ncols; i++) bytes += strlen(specs[i].name) + strlen(specs[i].label) + 2;
  job->specs = cpf_malloc((ncols ? ncols : 1) * sizeof *job->specs);
  job->names = cpf_malloc(bytes ? bytes : 1);
  if (!job->specs || !job->names) return luaL_error(L, "not enough memory");
  for (i = 0, p = job->names; i < ncols; i++) {
    size_t n = strlen(specs[i].name) + 1, m = strlen(specs[i].label) + 1;
    job->specs[i] = specs[i];
    job->specs[i].name = memcpy(p, specs[i].name, n);
    job->specs[i].label = memcpy(p + n, specs[i].label, m);
    p += n + m;
  }
  job->ncols = ncols;
  job->src = *src; /* moved: the source userdata is closed, without closing the file */
  memset(src, 0, sizeof *src);
  src->fd = -1;
  /* what poll says before the first checkpoint: the file's bytes (a gzip file's compressed) */
  job->job.total = job->src.gzip_pending ? job->src.file_size : job->src.size;
  job->opts.locale_point = numparse_locale_point(); /* here: localeconv is not thread-safe */
  if (job_start(&job->job) != 0) {
    cpf_error err;
    memset(&err, 0, sizeof err);
    cpf_error_set(&err, CPF_ERR_MEMORY, "%s: cannot start a loading thread", job->src.path);
    source_close(&job->src); /* the file now, not at the next collection */
    return push_failure(L, &err);
  }
  return 1;
}

static const luaL_Reg source_methods[] = {{"header", source_header},  {"load", source_load},
                                          {"starts_with", source_starts_with},
                                          {"load_async", source_load_async}, {"close", source_close_l},
                                          {NULL, NULL}};

static const luaL_Reg source_functions[] = {{"open", open_source}, {NULL, NULL}};

void register_source_bindings(lua_State *L, int module) {
  new_userdata_type(L, SOURCE_META, source_close_l, source_methods);
  lua_pop(L, 1);
  set_functions(L, module, source_functions);
}
