/* lua_job.c — work on a thread of its own that a host polls from its event loop (Neovim's
 * timers, nginx's): a load (source:load_async), a snapshot's description (describe_async).
 * The thread calls no Lua: it publishes its figures under the job's lock (job_report, which
 * also tells it whether it was cancelled), and poll reads them there. A job's kind says what
 * the thread does (work), what poll hands back once it ended (answer) and what it holds
 * (release). Collecting a job, or closing its Lua state, cancels it and joins its thread
 * before anything is freed. */
#include <signal.h>
#include <string.h>

#include "lua_bindings.h"

static lua_job *check_job(lua_State *L) {
  return luaL_checkudata(L, 1, JOB_META);
}

static void job_join(lua_job *job) {
  if (job->running) {
    pthread_join(job->thread, NULL);
    job->running = 0;
  }
}

static int job_gc(lua_State *L) {
  lua_job *job = check_job(L);
  if (!job->made) return 0; /* already collected (a closing state may run __gc twice) */
  pthread_mutex_lock(&job->lock);
  job->cancel = 1;
  pthread_mutex_unlock(&job->lock);
  job_join(job);
  job->kind->release(job);
  pthread_mutex_destroy(&job->lock);
  job->made = 0;
  return 0;
}

lua_job *job_new(lua_State *L, size_t size, const lua_job_kind *kind) {
  lua_job *job = lua_newuserdata(L, size);
  memset(job, 0, size);
  job->kind = kind;
  pthread_mutex_init(&job->lock, NULL);
  job->made = 1;
  luaL_getmetatable(L, JOB_META);
  lua_setmetatable(L, -2); /* from here __gc releases what the job holds */
  return job;
}

int job_report(lua_job *job, size_t done, size_t total, size_t count) {
  int cancel;
  pthread_mutex_lock(&job->lock);
  job->done = done;
  job->total = total;
  job->count = count;
  cancel = job->cancel;
  pthread_mutex_unlock(&job->lock);
  return cancel;
}

int job_cancelled(lua_job *job) {
  int cancel;
  pthread_mutex_lock(&job->lock);
  cancel = job->cancel;
  pthread_mutex_unlock(&job->lock);
  return cancel;
}

static void *job_thread(void *ud) {
  lua_job *job = ud;
  job->kind->work(job);
  pthread_mutex_lock(&job->lock);
  job->finished = 1; /* what work stored is read only after this, under the lock or joined */
  pthread_mutex_unlock(&job->lock);
  return NULL;
}

int job_start(lua_job *job) {
  /* Signals are the host's business (Neovim's, nginx's): the thread starts with them blocked
   * (and the threads it starts inherit that), so that no handler of the host ever runs on it;
   * faults (SIGSEGV, SIGBUS, SIGFPE, SIGILL) stay deliverable, to the host's crash handlers. */
  sigset_t blocked, old;
  int started;
  sigfillset(&blocked);
  sigdelset(&blocked, SIGSEGV);
  sigdelset(&blocked, SIGBUS);
  sigdelset(&blocked, SIGFPE);
  sigdelset(&blocked, SIGILL);
  pthread_sigmask(SIG_BLOCK, &blocked, &old);
  started = pthread_create(&job->thread, NULL, job_thread, job) == 0;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  job->running = started;
  return started ? 0 : -1;
}

/* The answer of a joined job: true, then what its kind pushes. */
static int job_answer(lua_State *L, lua_job *job) {
  lua_pushboolean(L, 1);
  return 1 + job->kind->answer(L, job);
}

/* job:poll() -> false, done, total, count (the work's figures) | true, the answer */
static int job_poll(lua_State *L) {
  lua_job *job = check_job(L);
  int finished;
  size_t done, total, count;
  if (!job->made) return luaL_error(L, "job: already collected");
  pthread_mutex_lock(&job->lock);
  finished = job->finished;
  done = job->done, total = job->total, count = job->count;
  pthread_mutex_unlock(&job->lock);
  if (!finished) {
    lua_pushboolean(L, 0);
    compat_pushint64(L, (int64_t)done);
    compat_pushint64(L, (int64_t)total);
    compat_pushint64(L, (int64_t)count);
    return 4;
  }
  job_join(job);
  return job_answer(L, job);
}

/* job:wait() -> as poll, once the work has ended */
static int job_wait(lua_State *L) {
  lua_job *job = check_job(L);
  if (!job->made) return luaL_error(L, "job: already collected");
  job_join(job);
  return job_answer(L, job);
}

/* job:cancel(): the work stops at its next checkpoint and answers "... cancelled"; a finished
 * job keeps its answer. */
static int job_cancel(lua_State *L) {
  lua_job *job = check_job(L);
  if (!job->made) return 0;
  pthread_mutex_lock(&job->lock);
  job->cancel = 1;
  pthread_mutex_unlock(&job->lock);
  return 0;
}

static const luaL_Reg job_methods[] = {
  {"poll", job_poll}, {"wait", job_wait}, {"cancel", job_cancel}, {NULL, NULL}};

void register_job_bindings(lua_State *L) {
  new_userdata_type(L, JOB_META, job_gc, job_methods);
  lua_pop(L, 1);
}
