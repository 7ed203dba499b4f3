/* lua_dataset.c — the dataset userdata: its length, columns, values, rows, dictionaries,
 * distinct values, memory, save and close; and the module functions that make one from others
 * (concat) or from a snapshot (open_snapshot). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "lua_bindings.h"
#include "snapshot_format.h"



static int dataset_close(lua_State *L) {
  dataset_box *box = luaL_checkudata(L, 1, DATASET_META);
  /* a save job holds the dataset (and keeps it from the collector) until it ended */
  if (box->saving) return luaL_error(L, "dataset: a save job is writing it: close it once the job ended");
  dataset_free(box->ds); /* idempotent: __gc, :close() and __close may all run */
  box->ds = NULL;
  return 0;
}

/* __gc: a dataset a save job still writes is left to the job (only a closing Lua state can
 * collect both at once, the job being joined by its own __gc) */
static int dataset_gc(lua_State *L) {
  dataset_box *box = luaL_checkudata(L, 1, DATASET_META);
  if (box->saving) return 0;
  return dataset_close(L);
}

static int dataset_len(lua_State *L) {
  compat_pushint64(L, (int64_t)check_dataset(L, 1)->rows);
  return 1;
}

static int dataset_is_closed(lua_State *L) {
  dataset_box *box = luaL_checkudata(L, 1, DATASET_META);
  lua_pushboolean(L, box->ds == NULL);
  return 1;
}

static int dataset_memory_l(lua_State *L) {
  compat_pushint64(L, (int64_t)dataset_memory(check_dataset(L, 1)));
  return 1;
}

static int dataset_columns(lua_State *L) {
  cpf_dataset *ds = check_dataset(L, 1);
  size_t i;
  lua_createtable(L, (int)ds->ncols, 0);
  for (i = 0; i < ds->ncols; i++) {
    const cpf_column *col = &ds->cols[i];
    lua_createtable(L, 0, 6);
    lua_pushstring(L, col->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, col->label);
    lua_setfield(L, -2, "label");
    lua_pushstring(L, cpf_type_name(col->type));
    lua_setfield(L, -2, "type");
    compat_pushint64(L, (int64_t)col->missing);
    lua_setfield(L, -2, "missing");
    compat_pushint64(L, (int64_t)column_memory(col));
    lua_setfield(L, -2, "bytes");
    if (col->type == CPF_TYPE_DECIMAL) {
      lua_pushinteger(L, col->scale);
      lua_setfield(L, -2, "scale");
    }
    lua_rawseti(L, -2, (int)i + 1);
  }
  return 1;
}

/* The column named by argument `arg` of a method whose dataset is argument 1: an index, or a
 * name. A name that is not a canonical one goes to the Lua layer's resolver (the metatable's
 * __column_name: schema.find_column, the one rule for names, with the header as written and
 * the older spellings), which gives the canonical name or nil; canonical names never leave C. */
static int column_arg(lua_State *L, const cpf_dataset *ds, int arg) {
  int idx;
  if (lua_type(L, arg) == LUA_TNUMBER) {
    int64_t n = compat_checkint64(L, arg);
    if (n < 1 || (size_t)n > ds->ncols)
      luaL_error(L, "column %d does not exist (the dataset has %d columns)", (int)n, (int)ds->ncols);
    return (int)n - 1;
  }
  idx = dataset_find_column(ds, luaL_checkstring(L, arg));
  if (idx < 0 && luaL_getmetafield(L, 1, "__column_name") != LUA_TNIL) {
    lua_pushvalue(L, 1);
    lua_pushvalue(L, arg);
    lua_call(L, 2, 1);
    if (lua_type(L, -1) == LUA_TSTRING) idx = dataset_find_column(ds, lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  if (idx < 0) luaL_error(L, "unknown column '%s'", lua_tostring(L, arg));
  return idx;
}

static size_t row_arg(lua_State *L, const cpf_dataset *ds, int arg) {
  int64_t i = compat_checkint64(L, arg);
  if (i < 1 || (uint64_t)i > ds->rows) {
    char msg[120]; /* lua_pushfstring knows no 64-bit formats */
    snprintf(msg, sizeof msg, "row %lld is out of range (the dataset has %lld rows)", (long long)i,
             (long long)ds->rows);
    luaL_error(L, "%s", msg);
  }
  return (size_t)(i - 1);
}

static void push_value(lua_State *L, const cpf_column *col, size_t row) {
  if (!column_is_valid(col, row)) {
    lua_pushnil(L);
    return;
  }
  switch (col->type) {
  case CPF_TYPE_STRING: {
    size_t len;
    uint32_t code = column_code_at(col, row);
    const char *s;
    if (code >= col->dict.count) { /* past the dictionary (a damaged snapshot): no value */
      lua_pushnil(L);
      break;
    }
    s = dictionary_value(&col->dict, code, &len);
    lua_pushlstring(L, s, len);
    break;
  }
  case CPF_TYPE_NUMBER: lua_pushnumber(L, column_number_at(col, row)); break;
  case CPF_TYPE_INTEGER:
  case CPF_TYPE_DECIMAL:
  case CPF_TYPE_MONTH:
  case CPF_TYPE_DATE:
    push_stored_integer(L, column_out_kind(col), col->scale, column_integer_at(col, row));
    break;
  default: lua_pushnil(L); break;
  }
}

/* ds:get(row, column) -> the value, nil when missing */
/* The deferred checks of a snapshot's column j (or of every column, j < 0) before its values
 * are read: raises "path: column N: ..." for a damaged one. */
static void need_checked(lua_State *L, const cpf_dataset *ds, int j) {
  cpf_error err;
  memset(&err, 0, sizeof err);
  if ((j < 0 ? snapshot_check_columns(ds, &err) : snapshot_check_column(ds, (size_t)j, &err)) != 0)
    raise_failure(L, &err);
}

static int dataset_get(lua_State *L) {
  cpf_dataset *ds = check_dataset(L, 1);
  size_t row = row_arg(L, ds, 2);
  int j = column_arg(L, ds, 3);
  need_checked(L, ds, j);
  push_value(L, &ds->cols[j], row);
  return 1;
}

static void push_row(lua_State *L, const cpf_dataset *ds, size_t row) {
  size_t i;
  lua_createtable(L, 0, (int)ds->ncols);
  for (i = 0; i < ds->ncols; i++) {
    push_value(L, &ds->cols[i], row);
    lua_setfield(L, -2, ds->cols[i].name);
  }
}

static int dataset_row(lua_State *L) {
  cpf_dataset *ds = check_dataset(L, 1);
  need_checked(L, ds, -1);
  push_row(L, ds, row_arg(L, ds, 2));
  return 1;
}

static int rows_step(lua_State *L) {
  cpf_dataset *ds = check_dataset(L, lua_upvalueindex(1));
  int64_t i = (int64_t)lua_tonumber(L, lua_upvalueindex(2));
  if ((uint64_t)i >= ds->rows) return 0;
  lua_pushnumber(L, (lua_Number)(i + 1));
  lua_replace(L, lua_upvalueindex(2));
  compat_pushint64(L, i + 1);
  push_row(L, ds, (size_t)i);
  return 2;
}

static int dataset_rows(lua_State *L) {
  need_checked(L, check_dataset(L, 1), -1);
  lua_settop(L, 1);
  lua_pushnumber(L, 0);
  lua_pushcclosure(L, rows_step, 2);
  return 1;
}

/* ds:distinct(column) -> { {value =, count =}, ... }, most frequent first */
static int dataset_distinct(lua_State *L) {
  cpf_dataset *ds = check_dataset(L, 1);
  int column = column_arg(L, ds, 2);
  const cpf_column *col = &ds->cols[column];
  void **held = scratch_hold(L);
  query_distinct_value *values;
  size_t n, i;
  cpf_error err;
  memset(&err, 0, sizeof err);
  if (query_distinct(ds, column, &values, &n, &err) != 0) return raise_failure(L, &err);
  *held = values; /* freed by the collector, even if a push below raises */
  lua_createtable(L, (int)n, 0);
  for (i = 0; i < n; i++) {
    lua_createtable(L, 0, 2);
    if (values[i].missing) lua_pushnil(L);
    else if (col->type == CPF_TYPE_STRING) {
      size_t len;
      const char *s = dictionary_value(&col->dict, (uint32_t)values[i].value, &len);
      lua_pushlstring(L, s, len);
    } else if (col->type == CPF_TYPE_NUMBER) {
      double d;
      memcpy(&d, &values[i].value, sizeof d);
      lua_pushnumber(L, d);
    } else push_stored_integer(L, column_out_kind(col), col->scale, values[i].value);
    lua_setfield(L, -2, "value");
    compat_pushint64(L, (int64_t)values[i].count);
    lua_setfield(L, -2, "count");
    lua_rawseti(L, -2, (int)i + 1);
  }
  return 1;
}

/* ds:dictionary(column) -> the distinct values of a string column, in code order */
static int dataset_dictionary(lua_State *L) {
  cpf_dataset *ds = check_dataset(L, 1);
  int j = column_arg(L, ds, 2);
  const cpf_column *col = &ds->cols[j];
  uint32_t c;
  if (col->type != CPF_TYPE_STRING) return luaL_error(L, "column '%s' is not a string column", col->name);
  need_checked(L, ds, j);
  lua_createtable(L, (int)col->dict.count, 0);
  for (c = 0; c < col->dict.count; c++) {
    size_t len;
    const char *s = dictionary_value(&col->dict, c, &len);
    lua_pushlstring(L, s, len);
    lua_rawseti(L, -2, (int)c + 1);
  }
  return 1;
}

/* ---- snapshots ---- */

/* ds:save(path [, tag]) -> true | nil, message */
static int dataset_save(lua_State *L) {
  cpf_dataset *ds = check_dataset(L, 1);
  const char *path = luaL_checkstring(L, 2);
  size_t tag_len = 0;
  const char *tag = luaL_optlstring(L, 3, "", &tag_len);
  cpf_error err;
  memset(&err, 0, sizeof err);
  if (snapshot_check_columns(ds, &err) != 0 || snapshot_save(ds, path, tag, tag_len, &err) != 0) {
    return push_failure(L, &err);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* ds:verify() -> true | nil, "path: column N: ...", "data": a snapshot's deferred checks of every
 * column now (a loaded dataset has none) */
static int dataset_verify(lua_State *L) {
  cpf_dataset *ds = check_dataset(L, 1);
  cpf_error err;
  memset(&err, 0, sizeof err);
  if (snapshot_check_columns(ds, &err) != 0) return push_failure(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* ds:rejects() -> { {line=, record=, column=, name=, kind=, message=, text=, length=, file=}, ... }:
 * the records the load set aside (on_error = "skip"), in file order; column and name are nil
 * for a fault of the record as a whole, file for a dataset of one file. */
static int dataset_rejects(lua_State *L) {
  cpf_dataset *ds = check_dataset(L, 1);
  size_t offset = 0, n;
  lua_createtable(L, (int)ds->rejects.count, 0);
  for (n = 0; n < ds->rejects.count; n++) {
    snap_reject e;
    const char *name, *message, *text, *file;
    offset = rejects_entry(&ds->rejects, offset, &e, &name, &message, &text, &file);
    lua_createtable(L, 0, 9);
    compat_pushint64(L, (int64_t)e.line);
    lua_setfield(L, -2, "line");
    compat_pushint64(L, (int64_t)e.record);
    lua_setfield(L, -2, "record");
    if (e.column > 0) {
      compat_pushint64(L, (int64_t)e.column);
      lua_setfield(L, -2, "column");
    }
    if (e.name_size > 0) {
      lua_pushlstring(L, name, e.name_size);
      lua_setfield(L, -2, "name");
    }
    lua_pushstring(L, cpf_reject_kind_name((cpf_reject_kind)e.kind));
    lua_setfield(L, -2, "kind");
    lua_pushlstring(L, message, e.message_size);
    lua_setfield(L, -2, "message");
    lua_pushlstring(L, text, e.text_size);
    lua_setfield(L, -2, "text");
    compat_pushint64(L, (int64_t)e.length);
    lua_setfield(L, -2, "length");
    if (e.file_size > 0) {
      lua_pushlstring(L, file, e.file_size);
      lua_setfield(L, -2, "file");
    }
    lua_rawseti(L, -2, (int)n + 1);
  }
  return 1;
}

/* ds:is_snapshot() -> true when the dataset is a mapped snapshot */
static int dataset_is_snapshot(lua_State *L) {
  lua_pushboolean(L, check_dataset(L, 1)->mapping != NULL);
  return 1;
}

/* core.open_snapshot(path, verify) -> dataset, tag | nil, message */
static int open_snapshot(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int verify = lua_isnoneornil(L, 2) ? 1 : lua_toboolean(L, 2);
  dataset_box *box = new_dataset_box(L);
  cpf_error err;
  memset(&err, 0, sizeof err);
  box->ds = snapshot_open(path, verify, &err);
  if (!box->ds) {
    return push_failure(L, &err);
  }
  lua_pushlstring(L, box->ds->tag, box->ds->tag_len);
  return 2;
}

typedef struct {
  const char *text;
  size_t len;
} text_ref;

/* A column's summary as Lua sees it: {distinct =, min =, max =, top = {{value =, count =}, ...}};
 * shape: the column's type and scale (push_stored_value reads nothing else), top: the texts of
 * s->top_codes. */
static void push_summary(lua_State *L, const cpf_column *shape, const column_summary *s, const text_ref *top) {
  size_t i;
  lua_createtable(L, 0, 4);
  compat_pushint64(L, (int64_t)s->distinct);
  lua_setfield(L, -2, "distinct");
  if (s->has_range) {
    int k;
    for (k = 0; k < 2; k++) {
      push_stored_value(L, shape, k == 0 ? s->min : s->max);
      lua_setfield(L, -2, k == 0 ? "min" : "max");
    }
  }
  lua_createtable(L, (int)s->ntop, 0);
  for (i = 0; i < s->ntop; i++) {
    lua_createtable(L, 0, 2);
    lua_pushlstring(L, top[i].text, top[i].len);
    lua_setfield(L, -2, "value");
    compat_pushint64(L, (int64_t)s->top_counts[i]);
    lua_setfield(L, -2, "count");
    lua_rawseti(L, -2, (int)i + 1);
  }
  lua_setfield(L, -2, "top");
}

/* core.describe_column(ds, column, top) -> the column's summary (push_summary): what
 * ds:describe shows of a column (1-based), computed in C; raises on a damaged column */
static int describe_column_l(lua_State *L) {
  cpf_dataset *ds = check_dataset(L, 1);
  lua_Integer j = luaL_checkinteger(L, 2), top = luaL_optinteger(L, 3, 0);
  const cpf_column *col;
  column_summary s;
  text_ref *texts;
  cpf_error err;
  size_t i;
  luaL_argcheck(L, j >= 1 && (size_t)j <= ds->ncols, 2, "no such column");
  luaL_argcheck(L, top >= 0, 3, "a whole number from 0 expected");
  col = &ds->cols[j - 1];
  /* before s, as it may raise; at most one text per dictionary entry */
  texts = lua_newuserdata(L, ((size_t)top < col->dict.count ? (size_t)top : col->dict.count + 1) * sizeof *texts);
  memset(&err, 0, sizeof err);
  if (describe_column(ds, (size_t)j - 1, (size_t)top, &s, &err) != 0) return raise_failure(L, &err);
  for (i = 0; i < s.ntop; i++) texts[i].text = dictionary_value(&col->dict, s.top_codes[i], &texts[i].len);
  push_summary(L, col, &s, texts);
  describe_free(&s);
  return 1;
}

/* ---- core.describe_job: every column's summary on a thread of its own (a lua_job) ----
 * The thread opens the snapshot again, its own dataset: nothing of the caller's dataset (its
 * first-use checks, its scratch) is shared with the thread, and the caller may close it at
 * any time. Its header must be the caller's, else the file was replaced in between. What it
 * finds is copied out and its dataset closed before it ends: a finished job maps nothing. The
 * thread runs at a lower priority: a server's requests go first. Its figures: columns done,
 * columns in all. */
typedef struct {
  cpf_column shape;          /* type and scale only */
  column_summary s;
  text_ref *top;             /* s.ntop texts, in one block with their bytes */
} described_column;

typedef struct {
  lua_job job;
  char *path;
  int verify;
  size_t top;
  snap_header header;        /* the caller's snapshot's */
  described_column *columns;
  size_t ncols;
  cpf_error err;
} describe_job;

static int describe_one(const cpf_dataset *ds, size_t j, size_t top, described_column *d, cpf_error *err) {
  const cpf_column *col = &ds->cols[j];
  size_t i, bytes = 0;
  char *p;
  d->shape.type = col->type;
  d->shape.scale = col->scale;
  if (describe_column(ds, j, col->type == CPF_TYPE_STRING ? top : 0, &d->s, err) != 0) return -1;
  for (i = 0; i < d->s.ntop; i++) {
    size_t len;
    dictionary_value(&col->dict, d->s.top_codes[i], &len);
    bytes += len;
  }
  if (!(d->top = cpf_malloc(d->s.ntop * sizeof *d->top + bytes + 1))) {
    cpf_error_set(err, CPF_ERR_MEMORY, "out of memory");
    return -1;
  }
  p = (char *)(d->top + d->s.ntop);
  for (i = 0; i < d->s.ntop; i++) {
    const char *v = dictionary_value(&col->dict, d->s.top_codes[i], &d->top[i].len);
    d->top[i].text = memcpy(p, v, d->top[i].len);
    p += d->top[i].len;
  }
  return 0;
}

static void describe_work(lua_job *base) {
  describe_job *job = (describe_job *)base;
  cpf_dataset *ds;
  size_t j;
#ifdef __linux__
  /* On Linux a thread's nice value is its own: requests on the host's loop go first */
  errno = 0;
  {
    int nice_now = getpriority(PRIO_PROCESS, 0);
    if (errno == 0) setpriority(PRIO_PROCESS, 0, nice_now + 10 > 19 ? 19 : nice_now + 10);
  }
#endif
  if (!(ds = snapshot_open(job->path, job->verify, &job->err))) return;
  if (memcmp(ds->snapshot_base, &job->header, sizeof job->header) != 0) {
    cpf_error_set(&job->err, CPF_ERR_IO, "%s: the snapshot was replaced while it was being described", job->path);
  } else if (!(job->columns = cpf_calloc(ds->ncols ? ds->ncols : 1, sizeof *job->columns))) {
    cpf_error_set(&job->err, CPF_ERR_MEMORY, "out of memory");
  } else {
    job->ncols = ds->ncols;
    for (j = 0; j < ds->ncols; j++) {
      if (job_report(base, j, ds->ncols, 0)) {
        cpf_error_set(&job->err, CPF_ERR_CANCELLED, "describe cancelled");
        break;
      }
      if (describe_one(ds, j, job->top, &job->columns[j], &job->err) != 0) break;
    }
    if (!job->err.code) job_report(base, j, j, 0);
  }
  dataset_free(ds);
}

static void describe_release(lua_job *base) {
  describe_job *job = (describe_job *)base;
  size_t j;
  for (j = 0; j < job->ncols; j++) {
    describe_free(&job->columns[j].s);
    free(job->columns[j].top);
  }
  free(job->columns);
  job->columns = NULL;
  job->ncols = 0;
  free(job->path);
  job->path = NULL;
}

/* {summary, ...} (push_summary's, one per column) | nil, message, kind */
static int describe_answer(lua_State *L, lua_job *base) {
  describe_job *job = (describe_job *)base;
  size_t j;
  if (job->err.code) return push_failure(L, &job->err);
  lua_createtable(L, (int)job->ncols, 0);
  for (j = 0; j < job->ncols; j++) {
    const described_column *d = &job->columns[j];
    push_summary(L, &d->shape, &d->s, d->top);
    lua_rawseti(L, -2, (int)j + 1);
  }
  return 1;
}

static const lua_job_kind describe_kind = {describe_work, describe_answer, describe_release};

/* core.describe_job(ds, top) -> job (poll: false, columns_done, columns | true, {summary, ...}
 * | true, nil, message, kind) | nil, message for a dataset not opened from a snapshot file */
static int describe_job_l(lua_State *L) {
  cpf_dataset *ds = check_dataset(L, 1);
  lua_Integer top = luaL_optinteger(L, 2, 0);
  describe_job *job;
  cpf_error err;
  luaL_argcheck(L, top >= 0, 2, "a whole number from 0 expected");
  memset(&err, 0, sizeof err);
  if (!ds->mapping || !ds->snapshot_path) {
    cpf_error_set(&err, CPF_ERR_USAGE, "describe_async: the dataset was not opened from a snapshot file (ds:describe)");
    return push_failure(L, &err);
  }
  job = (describe_job *)job_new(L, sizeof *job, &describe_kind);
  if (!(job->path = cpf_malloc(strlen(ds->snapshot_path) + 1))) return luaL_error(L, "not enough memory");
  memcpy(job->path, ds->snapshot_path, strlen(ds->snapshot_path) + 1);
  memcpy(&job->header, ds->snapshot_base, sizeof job->header);
  job->verify = ds->snapshot_verify;
  job->top = (size_t)top;
  job->job.total = ds->ncols;
  if (job_start(&job->job) != 0) {
    cpf_error_set(&err, CPF_ERR_MEMORY, "%s: cannot start a thread to describe it", ds->snapshot_path);
    return push_failure(L, &err);
  }
  return 1;
}

/* ---- core.save_job: ds:save on a thread of its own (a lua_job) ----
 * For cpf.fetch inside a host: a snapshot of 0.6 GB takes seconds to write. The job keeps the
 * dataset's userdata (its uservalue) so that the collector leaves it, and ds:close() refuses
 * while it writes. Its figures: none. */
typedef struct {
  lua_job job;
  dataset_box *box;
  char *path, *tag;
  size_t tag_len;
  int answered;
  cpf_error err;
} save_job;

static void save_work(lua_job *base) {
  save_job *job = (save_job *)base;
  if (snapshot_check_columns(job->box->ds, &job->err) == 0)
    snapshot_save(job->box->ds, job->path, job->tag, job->tag_len, &job->err);
}

static void save_release(lua_job *base) {
  save_job *job = (save_job *)base;
  if (job->box && !job->answered) job->box->saving--; /* the job's uservalue still holds it */
  job->answered = 1;
  free(job->path);
  free(job->tag);
  job->path = job->tag = NULL;
}

/* true | nil, message, kind; the dataset is free again */
static int save_answer(lua_State *L, lua_job *base) {
  save_job *job = (save_job *)base;
  if (!job->answered) {
    job->box->saving--;
    job->answered = 1;
  }
  if (job->err.code) return push_failure(L, &job->err);
  lua_pushboolean(L, 1);
  return 1;
}

static const lua_job_kind save_kind = {save_work, save_answer, save_release};

/* core.save_job(ds, path [, tag]) -> job (poll: false, 0, 0, 0 | true, true | true, nil,
 * message, kind): ds:save on a thread; the dataset must not be queried meanwhile */
static int save_job_l(lua_State *L) {
  dataset_box *box = luaL_checkudata(L, 1, DATASET_META);
  const char *path = luaL_checkstring(L, 2);
  size_t tag_len = 0;
  const char *tag = luaL_optlstring(L, 3, "", &tag_len);
  save_job *job;
  if (box->ds == NULL) return luaL_error(L, "dataset is closed");
  job = (save_job *)job_new(L, sizeof *job, &save_kind);
  lua_createtable(L, 1, 0); /* the job's uservalue: the dataset, kept while the job lives */
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, 1);
  compat_setuservalue(L, -2);
  if (!(job->path = cpf_malloc(strlen(path) + 1)) || !(job->tag = cpf_malloc(tag_len + 1)))
    return luaL_error(L, "not enough memory");
  memcpy(job->path, path, strlen(path) + 1);
  memcpy(job->tag, tag, tag_len);
  job->tag[tag_len] = '\0';
  job->tag_len = tag_len;
  job->box = box;
  box->saving++;
  if (job_start(&job->job) != 0) {
    cpf_error err;
    box->saving--;
    job->answered = 1;
    memset(&err, 0, sizeof err);
    cpf_error_set(&err, CPF_ERR_MEMORY, "%s: cannot start a thread to write it", path);
    return push_failure(L, &err);
  }
  return 1;
}

/* ---- a dataset made of others ---- */

/* core.concat({ds, ...}, {source, ...}) -> dataset | nil, message */
static int concat_datasets(lua_State *L) {
  size_t n, i;
  cpf_dataset **parts;
  const char **sources;
  dataset_box *box;
  cpf_error err;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  n = compat_rawlen(L, 1);
  if (compat_rawlen(L, 2) != n) return luaL_error(L, "concat: one source name per dataset expected");
  parts = lua_newuserdata(L, (n ? n : 1) * sizeof *parts);
  sources = lua_newuserdata(L, (n ? n : 1) * sizeof *sources);
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, 1, (int)i + 1);
    parts[i] = check_dataset(L, -1);
    need_checked(L, parts[i], -1);
    lua_pop(L, 1);
    lua_rawgeti(L, 2, (int)i + 1);
    sources[i] = luaL_checkstring(L, -1);
    lua_pop(L, 1); /* still referenced by the table */
  }
  box = new_dataset_box(L);
  memset(&err, 0, sizeof err);
  box->ds = dataset_concat(parts, n, sources, &err);
  if (!box->ds) {
    return push_failure(L, &err);
  }
  return 1;
}

static const luaL_Reg dataset_methods[] = {
  {"close", dataset_close},     {"is_closed", dataset_is_closed}, {"columns", dataset_columns},
  {"get", dataset_get},         {"row", dataset_row},             {"rows", dataset_rows},
  {"distinct", dataset_distinct}, {"memory", dataset_memory_l},   {"dictionary", dataset_dictionary},
  {"save", dataset_save}, {"is_snapshot", dataset_is_snapshot}, {"verify", dataset_verify},
  {"rejects", dataset_rejects}, {NULL, NULL}};

static const luaL_Reg dataset_functions[] = {
  {"concat", concat_datasets}, {"open_snapshot", open_snapshot}, {"describe_column", describe_column_l},
  {"describe_job", describe_job_l}, {"save_job", save_job_l},
  {NULL, NULL}};

void register_dataset_bindings(lua_State *L, int module) {
  new_userdata_type(L, DATASET_META, dataset_gc, dataset_methods);
  lua_pushcfunction(L, dataset_close);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, dataset_len);
  lua_setfield(L, -2, "__len");
  lua_setfield(L, module, "dataset_metatable"); /* the Lua layer adds its methods to __index */
  set_functions(L, module, dataset_functions);
  lua_pushlstring(L, SNAP_MAGIC, 8); /* the first bytes of every snapshot: cpf.is_snapshot */
  lua_setfield(L, module, "snapshot_magic");
}
