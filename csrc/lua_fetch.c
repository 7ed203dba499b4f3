/* lua_fetch.c — core.http_job(opts): one HTTP GET (http.c, libcurl) on a thread of its own (a
 * lua_job), for cpf fetch: the portal's metadata in memory, or the export into a file,
 * resumed and retried. Its figures: bytes done, bytes in all (0 while unknown), attempt. */
#include <stdlib.h>
#include <string.h>

#include "lua_bindings.h"

typedef struct {
  lua_job job;
  http_request req;
  char *strings[5];          /* url, path, if_range, validator_path, user_agent: the job's copies */
  http_response res;
  cpf_error err;
} http_job;

static int http_monitor(void *ud, size_t done, size_t total, size_t attempt) {
  return job_report(ud, done, total, attempt);
}

static void http_work(lua_job *base) {
  http_job *job = (http_job *)base;
  http_get(&job->req, &job->res, &job->err);
}

static void http_release(lua_job *base) {
  http_job *job = (http_job *)base;
  size_t i;
  http_response_free(&job->res);
  for (i = 0; i < sizeof job->strings / sizeof job->strings[0]; i++) {
    free(job->strings[i]);
    job->strings[i] = NULL;
  }
}

static void set_string(lua_State *L, int t, const char *field, const char *value) {
  lua_pushstring(L, value);
  lua_setfield(L, t, field);
}

/* {status =, body =, etag =, last_modified =, content_type =, size =, attempts =, resumed =,
 *  restarted =} | nil, message, kind */
static int http_answer(lua_State *L, lua_job *base) {
  http_job *job = (http_job *)base;
  const http_response *res = &job->res;
  if (job->err.code) return push_failure(L, &job->err);
  lua_createtable(L, 0, 9);
  lua_pushinteger(L, (lua_Integer)res->status);
  lua_setfield(L, -2, "status");
  if (res->body) {
    lua_pushlstring(L, res->body, res->body_len);
    lua_setfield(L, -2, "body");
  }
  set_string(L, -2, "etag", res->etag);
  set_string(L, -2, "last_modified", res->last_modified);
  set_string(L, -2, "content_type", res->content_type);
  compat_pushint64(L, (int64_t)res->size);
  lua_setfield(L, -2, "size");
  compat_pushint64(L, (int64_t)res->attempts);
  lua_setfield(L, -2, "attempts");
  compat_pushint64(L, (int64_t)res->resumed);
  lua_setfield(L, -2, "resumed");
  compat_pushint64(L, (int64_t)res->restarted);
  lua_setfield(L, -2, "restarted");
  return 1;
}

static const lua_job_kind http_kind = {http_work, http_answer, http_release};

static const char *copy_field(lua_State *L, int t, const char *field, char **slot) {
  const char *v;
  lua_getfield(L, t, field);
  v = lua_isnil(L, -1) ? NULL : luaL_checkstring(L, -1);
  if (v) {
    size_t n = strlen(v) + 1;
    if (!(*slot = cpf_malloc(n))) luaL_error(L, "not enough memory");
    memcpy(*slot, v, n);
  }
  lua_pop(L, 1);
  return *slot;
}

static double number_field(lua_State *L, int t, const char *field, double dflt) {
  double v;
  lua_getfield(L, t, field);
  v = lua_isnil(L, -1) ? dflt : luaL_checknumber(L, -1);
  lua_pop(L, 1);
  return v;
}

/* core.http_job{url =, path =, max_body =, if_range =, validator_path =, user_agent =,
 * retries =, backoff =, max_wait =, stall_seconds =} -> job (poll: false, done, total,
 * attempt | true, answer | true, nil, message, kind) */
static int http_job_l(lua_State *L) {
  http_job *job;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  job = (http_job *)job_new(L, sizeof *job, &http_kind);
  job->req.url = copy_field(L, 1, "url", &job->strings[0]);
  if (!job->req.url) return luaL_error(L, "http_job: url expected");
  job->req.path = copy_field(L, 1, "path", &job->strings[1]);
  job->req.if_range = copy_field(L, 1, "if_range", &job->strings[2]);
  job->req.validator_path = copy_field(L, 1, "validator_path", &job->strings[3]);
  job->req.user_agent = copy_field(L, 1, "user_agent", &job->strings[4]);
  {
    /* bounded here, whatever the caller checked: a count or a pause never wraps nor waits days */
    double max_body = number_field(L, 1, "max_body", 1 << 20), retries = number_field(L, 1, "retries", 5);
    double backoff = number_field(L, 1, "backoff", 2), max_wait = number_field(L, 1, "max_wait", 300);
    double stall = number_field(L, 1, "stall_seconds", 60);
    job->req.max_body = max_body >= 1 && max_body <= 1e9 ? (size_t)max_body : (size_t)1 << 20;
    job->req.retries = retries >= 0 && retries <= 100 ? (int)retries : retries > 100 ? 100 : 0;
    job->req.backoff = backoff >= 0 && backoff <= 86400 ? backoff : 2;
    job->req.max_wait = max_wait >= 0 && max_wait <= 86400 ? max_wait : 300;
    job->req.stall_seconds = stall >= 1 && stall <= 86400 ? (long)stall : 60;
  }
  job->req.monitor = http_monitor;
  job->req.monitor_ud = job;
  if (job_start(&job->job) != 0) {
    cpf_error err;
    memset(&err, 0, sizeof err);
    cpf_error_set(&err, CPF_ERR_MEMORY, "%s: cannot start a thread to fetch it", job->req.url);
    return push_failure(L, &err);
  }
  return 1;
}

static const luaL_Reg fetch_functions[] = {{"http_job", http_job_l}, {NULL, NULL}};

void register_fetch_bindings(lua_State *L, int module) {
  set_functions(L, module, fetch_functions);
}
