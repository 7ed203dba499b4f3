/* lua_bindings.h — what the binding files (core.c, lua_*.c) share: the userdata types, the
 * helpers of lua_util.c that turn engine values and errors into Lua values, the result store
 * the query binding hands its run to, and each file's registration. A binding file calls
 * another's functions only through lua_util.c and lua_job.c (and lua_query.c into lua_result.c's
 * store).
 * Only the binding files include it: the engine (cpf.h) never sees a Lua header. */
#ifndef CPF_LUA_BINDINGS_H
#define CPF_LUA_BINDINGS_H

#include <pthread.h>

#include "compat.h"
#include "cpf.h"

#if defined(__GNUC__)
#pragma GCC visibility push(hidden) /* module-internal: see cpf.h */
#endif

/* Registry names of the userdata metatables. */
#define DATASET_META "cpf.dataset"
#define SCRATCH_META "cpf.scratch"
#define SOURCE_META "cpf.source"
#define JOB_META "cpf.job"
#define OUTPUT_META "cpf.output_file"
#define RESULT_STORE_META "cpf.result_store"
#define VALUE_RUNS_META "cpf.value_runs"

/* The distinct values of a numeric column a Lua function keeps, as runs of order keys
 * (core.value_runs; read by a plan's "runs" condition). */
typedef struct {
  uint64_t *lo, *hi;
  size_t count;
  int column;  /* the column, and its dataset's rows, it was made for */
  size_t rows;
} value_runs;

typedef struct {
  cpf_dataset *ds; /* NULL once closed */
  int saving;      /* a save job writes it (core.save_job): ds:close() waits for none, it refuses */
} dataset_box;

/* ---- lua_util.c ---- */
/* An engine error as Lua sees it: nil, message, kind ("data", "io", "memory", "cancelled",
 * "callback" or "usage"), so that a caller decides on the kind, never on the text. */
int push_failure(lua_State *L, const cpf_error *err);
/* An engine error raised, for a wrong request (a plan the engine refuses) or out of memory. */
int raise_failure(lua_State *L, const cpf_error *err);
/* Scratch memory owned by a userdata pushed on the stack, so that a Lua error cannot leak it:
 * scratch_alloc allocates it (raising when out of memory); scratch_hold pushes an empty box
 * for memory the engine allocates. */
void **scratch_hold(lua_State *L);
void *scratch_alloc(lua_State *L, size_t bytes);
/* Whether t[field] is true (neither nil nor false): a flag of a plan or of options. */
int table_flag(lua_State *L, int t, const char *field);
/* An integer-like stored value: an integer, a number for a decimal (v / 10^scale), "YYYY-MM"
 * for a month, "YYYY-MM-DD" for a date. */
void push_stored_integer(lua_State *L, out_kind out, int scale, int64_t v);
/* The decimal a scaled integer stands for, as the double Lua reads (v / 10^scale). */
double scaled_value(int scale, int64_t v);
/* A value of col as query_key_value and describe_column give it: a double's bits for a number
 * column, else an integer-like value (push_stored_integer). */
void push_stored_value(lua_State *L, const cpf_column *col, int64_t v);
/* Sets `functions` into the table at index t. */
void set_functions(lua_State *L, int t, const luaL_Reg *functions);
/* Creates the metatable `name` with __gc and an __index table of `methods`; leaves it on the
 * stack. */
void new_userdata_type(lua_State *L, const char *name, lua_CFunction gc, const luaL_Reg *methods);
/* The dataset userdata (its methods are lua_dataset.c's): the dataset at idx, raising when
 * closed; an empty box pushed, filled by the caller. */
cpf_dataset *check_dataset(lua_State *L, int idx);
dataset_box *new_dataset_box(lua_State *L);
/* The userdata types of the helpers (scratch memory), before any binding registers. */
void register_util_types(lua_State *L);

/* ---- lua_job.c: work on a thread of its own that Lua polls ---- */
/* A job of a kind is a struct that starts with a lua_job: job_new(L, sizeof (struct), &kind)
 * pushes a zeroed one, the caller fills in what the thread needs, then job_start. */
typedef struct lua_job lua_job;
typedef struct {
  void (*work)(lua_job *job);                /* on the thread: calls no Lua, stores its answer */
  int (*answer)(lua_State *L, lua_job *job); /* pushes poll's answer after true (joined) */
  void (*release)(lua_job *job);             /* frees what the job holds (joined; any state) */
} lua_job_kind;
struct lua_job {
  const lua_job_kind *kind;
  pthread_mutex_t lock;
  int made;                     /* the lock exists and the job was not collected yet */
  int cancel, finished;         /* under lock */
  size_t done, total, count;    /* under lock: the work's last figures (job_report) */
  pthread_t thread;
  int running;                  /* a thread was started and not yet joined */
};
lua_job *job_new(lua_State *L, size_t size, const lua_job_kind *kind);
int job_start(lua_job *job); /* 0, or -1 when no thread could start */
/* From the thread: publishes its figures; true when the job was cancelled. */
int job_report(lua_job *job, size_t done, size_t total, size_t count);
int job_cancelled(lua_job *job);

/* ---- lua_result.c: the result store ---- */
/* A query's result kept columnar: what lua_result.c builds and lua_writer.c reads. */
typedef struct {
  out_kind out;
  int scale;
  int64_t *integers;
  double *numbers;
  uint8_t *present;
} store_agg;

typedef enum { SOURCE_KEY, SOURCE_AGG, SOURCE_VALUES } column_source;

typedef struct {
  column_source source;
  size_t index; /* key or aggregate number, from 0; SOURCE_VALUES: Lua array in values[col] */
} store_column;

typedef struct {
  size_t ngroups;  /* groups the query found */
  size_t count;    /* rows of the result: ngroups, fewer after a limit */
  uint32_t *order; /* row i of the result is group order[i] */
  int owner;       /* frees the arrays below; a view (store:view) shares its parent's */
  int own_cols;    /* a view with columns of its own (store:extend) frees its cols */
  size_t nkeys, naggs, ncols;
  uint32_t **codes, **rank, *cardinality; /* per key: code per group, rank per code */
  store_agg *aggs;
  store_column *cols;
  cpf_pool *pool; /* an owner's: where its key codes and aggregates' arrays go back */
} result_store;

/* The uservalue of a store: the Lua side of what it holds. */
#define UV_NAMES 1  /* column names, in order */
#define UV_LABELS 2 /* per key: code + 1 -> its Lua value */
#define UV_VALUES 3 /* per column computed in Lua: group + 1 -> value */
#define UV_PARENT 4 /* a view: the store whose arrays it reads */
/* The Lua value a key code stands for; nil for the "no value" code; the code itself for
 * remap/bucket keys, whose labels the Lua side knows. */
void push_key_value(lua_State *L, const cpf_dataset *ds, const query_key *key, uint32_t code);
/* Pushes a result store that takes over the key codes and aggregate arrays of a run (res and
 * aggs no longer own them), its rows in the keys' order; plan_keys: stack index of the plan's
 * keys table (their labels), unused without keys. Raises on failure. */
int push_result_store(lua_State *L, const cpf_dataset *ds, query_result *res, query_key *keys,
                      size_t nkeys, query_agg *aggs, size_t naggs, int plan_keys);

/* Each binding file registers its userdata types and sets its functions into the module table
 * at index `module`. */
void register_dataset_bindings(lua_State *L, int module);
void register_query_bindings(lua_State *L, int module);  /* lua_query.c */
void register_result_bindings(lua_State *L, int module); /* lua_result.c */
void register_source_bindings(lua_State *L, int module); /* lua_source.c */
void register_system_bindings(lua_State *L, int module); /* lua_system.c */
void register_job_bindings(lua_State *L);                /* lua_job.c: no functions */
void register_fetch_bindings(lua_State *L, int module);  /* lua_fetch.c */
void register_writer_bindings(lua_State *L, int module); /* lua_writer.c */

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
