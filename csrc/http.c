/* http.c — one HTTP GET with libcurl, for cpf fetch: an answer in memory (the portal's
 * metadata) or a download into a file that survives an interruption. A download resumes where
 * the file stops (Range, with If-Range naming what it holds, so that a changed file restarts
 * from zero); cut transfers, 5xx answers and refused connections are retried with a doubling
 * backoff; a 429 or 503 is waited out for its Retry-After. It runs on a job's thread: no Lua,
 * no signal (CURLOPT_NOSIGNAL), and libcurl's allocations go through alloc.c's. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cpf.h"

/* ---- libcurl's global state, made once per process, its allocations alloc.c's ---- */

static char *http_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = cpf_malloc(n);
  return p ? memcpy(p, s, n) : NULL;
}

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_code = CURLE_FAILED_INIT;

static void global_init(void) {
  global_code = curl_global_init_mem(CURL_GLOBAL_DEFAULT, cpf_malloc, free, cpf_realloc, http_strdup, cpf_calloc);
}

/* ---- one attempt ---- */

typedef struct {
  const http_request *req;
  http_response *res;
  int fd;                    /* the download's file, or -1: the body in memory */
  uint64_t have;             /* bytes the file held when the attempt started (its Range) */
  int restart;               /* a 200 to a Range: the file starts again from zero */
  long long range_total;     /* a 416's Content-Range: bytes * /N, or -1 */
  char error_body[512];      /* the start of a refused answer's body, for the message */
  size_t error_len;
  double retry_after;
  int write_failed;          /* errno of a failed write, or -1 for a body over max_body */
  size_t done, total;        /* the last figures given to the monitor */
  char validator[256];       /* what names the file's bytes: if_range, then the ETag or
                              * Last-Modified of the answer they came from */
  cpf_error *err;
} attempt;

static void copy_value(char *dst, size_t cap, const char *v, size_t n) {
  while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ')) n--;
  while (n > 0 && *v == ' ') v++, n--;
  if (n >= cap) n = cap - 1;
  memcpy(dst, v, n);
  dst[n] = '\0';
}

static int header_is(const char *line, size_t n, const char *name) {
  size_t k = strlen(name);
  return n > k && strncasecmp(line, name, k) == 0 && line[k] == ':';
}

/* A validator names the file being downloaded: written beside it as soon as the answer
 * arrives, so that a run killed midway resumes it next time (If-Range). */
static void save_validator(attempt *a) {
  /* If-Range takes a strong validator only: a weak ETag (W/"...") would never match */
  const char *v = a->res->etag[0] && strncmp(a->res->etag, "W/", 2) != 0 ? a->res->etag : a->res->last_modified;
  char tmp[4096];
  FILE *f;
  copy_value(a->validator, sizeof a->validator, v, strlen(v)); /* "" when the server named none */
  if (!a->req->validator_path || !v[0]) return;
  if (snprintf(tmp, sizeof tmp, "%s.tmp", a->req->validator_path) >= (int)sizeof tmp) return;
  if (!(f = fopen(tmp, "wb"))) return;
  fprintf(f, "%s\n", v);
  if (fclose(f) == 0) rename(tmp, a->req->validator_path);
  else remove(tmp);
}

static size_t on_header(char *line, size_t size, size_t count, void *ud) {
  attempt *a = ud;
  size_t n = size * count;
  http_response *res = a->res;
  if (n > 5 && strncmp(line, "HTTP/", 5) == 0) { /* a new answer (after a redirect, a 100) */
    const char *sp = memchr(line, ' ', n);
    res->status = sp ? strtol(sp + 1, NULL, 10) : 0;
    res->etag[0] = res->last_modified[0] = res->content_type[0] = '\0';
    a->retry_after = -1;
  } else if (header_is(line, n, "ETag")) {
    copy_value(res->etag, sizeof res->etag, line + 5, n - 5);
  } else if (header_is(line, n, "Last-Modified")) {
    copy_value(res->last_modified, sizeof res->last_modified, line + 14, n - 14);
  } else if (header_is(line, n, "Content-Type")) {
    copy_value(res->content_type, sizeof res->content_type, line + 13, n - 13);
  } else if (header_is(line, n, "Retry-After")) {
    char v[64], *end;
    double secs;
    copy_value(v, sizeof v, line + 12, n - 12);
    secs = strtod(v, &end);
    if (end != v && *end == '\0') a->retry_after = secs;
    else { /* an HTTP date: the seconds until then */
      time_t when = curl_getdate(v, NULL);
      if (when != (time_t)-1) a->retry_after = difftime(when, time(NULL)) > 0 ? difftime(when, time(NULL)) : 0;
    }
  } else if (header_is(line, n, "Content-Range")) {
    char v[128];
    const char *slash;
    copy_value(v, sizeof v, line + 14, n - 14);
    slash = strchr(v, '/');
    a->range_total = slash ? strtoll(slash + 1, NULL, 10) : -1;
  } else if ((n == 2 && line[0] == '\r') || (n == 1 && line[0] == '\n')) {
    if (res->status == 200 && a->fd >= 0 && a->have > 0) {
      /* the whole file to a Range (the server ignores ranges, or what the file holds changed):
       * the download starts again from zero, before any of its bytes is written */
      if (ftruncate(a->fd, 0) != 0 || lseek(a->fd, 0, SEEK_SET) != 0) {
        a->write_failed = errno;
        return 0;
      }
      a->restart = 1;
      a->have = 0;
    }
    if ((res->status == 200 || res->status == 206) && a->fd >= 0) save_validator(a);
  }
  return n;
}

static size_t on_body(char *data, size_t size, size_t count, void *ud) {
  attempt *a = ud;
  size_t n = size * count, done = 0;
  http_response *res = a->res;
  if (res->status != 200 && res->status != 206) { /* a refusal's body: its first bytes */
    size_t k = n < sizeof a->error_body - 1 - a->error_len ? n : sizeof a->error_body - 1 - a->error_len;
    memcpy(a->error_body + a->error_len, data, k);
    a->error_len += k;
    return n;
  }
  if (a->fd < 0) { /* in memory */
    char *p;
    if (res->body_len + n > a->req->max_body) {
      a->write_failed = -1;
      return 0;
    }
    if (!(p = cpf_realloc(res->body, res->body_len + n + 1))) {
      a->write_failed = ENOMEM;
      return 0;
    }
    res->body = p;
    memcpy(res->body + res->body_len, data, n);
    res->body_len += n;
    res->body[res->body_len] = '\0';
    return n;
  }
  while (done < n) {
    ssize_t w = cpf_write(a->fd, data + done, n - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      a->write_failed = w < 0 ? errno : EIO;
      return 0;
    }
    done += (size_t)w;
  }
  return n;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
  attempt *a = ud;
  (void)ultotal;
  (void)ulnow;
  if (!a->req->monitor) return 0;
  a->done = (size_t)(a->have + (uint64_t)dlnow);
  a->total = dltotal > 0 ? (size_t)(a->have + (uint64_t)dltotal) : 0;
  return a->req->monitor(a->req->monitor_ud, a->done, a->total, a->res->attempts);
}

/* Waits `seconds`, a tenth at a time so that a cancel is heard: nonzero when cancelled. */
static int wait_cancellable(const attempt *a, double seconds) {
  const http_request *req = a->req;
  while (seconds > 0) {
    double step = seconds < 0.1 ? seconds : 0.1;
    struct timespec ts;
    ts.tv_sec = (time_t)step;
    ts.tv_nsec = (long)((step - (double)ts.tv_sec) * 1e9);
    nanosleep(&ts, NULL);
    seconds -= step;
    if (req->monitor && req->monitor(req->monitor_ud, a->done, a->total, a->res->attempts)) return 1;
  }
  return 0;
}

static const char *status_text(long status) {
  switch (status) {
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 410: return "Gone";
  case 429: return "Too Many Requests";
  case 500: return "Internal Server Error";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  default: return "";
  }
}

/* One request: 0 done, 1 to try again (after *wait seconds), -1 failed (err set). */
static int attempt_once(CURL *curl, attempt *a, double *wait) {
  const http_request *req = a->req;
  http_response *res = a->res;
  struct curl_slist *headers = NULL;
  char range_header[600], range_text[32];
  CURLcode code;
  struct stat st;
  if (a->fd >= 0) {
    if (fstat(a->fd, &st) != 0) {
      cpf_error_set(a->err, CPF_ERR_IO, "%s: %s", req->path, strerror(errno));
      return -1;
    }
    a->have = (uint64_t)st.st_size;
    /* resumed only when what the file holds is named (If-Range): else from zero */
    if (a->have > 0 && !a->validator[0]) {
      if (ftruncate(a->fd, 0) != 0) {
        cpf_error_set(a->err, CPF_ERR_IO, "%s: %s", req->path, strerror(errno));
        return -1;
      }
      a->have = 0;
    }
    lseek(a->fd, 0, SEEK_END);
  }
  a->restart = 0;
  a->range_total = -1;
  a->error_len = 0;
  a->retry_after = -1;
  a->write_failed = 0;
  res->status = 0;
  /* the range asked as is (CURLOPT_RANGE): with a resume offset libcurl would refuse a 200,
   * which must restart the download instead */
  if (a->have > 0) {
    snprintf(range_text, sizeof range_text, "%llu-", (unsigned long long)a->have);
    curl_easy_setopt(curl, CURLOPT_RANGE, range_text);
  } else {
    curl_easy_setopt(curl, CURLOPT_RANGE, NULL);
  }
  if (a->have > 0) {
    snprintf(range_header, sizeof range_header, "If-Range: %s", a->validator);
    if (!(headers = curl_slist_append(NULL, range_header))) {
      cpf_error_set(a->err, CPF_ERR_MEMORY, "out of memory");
      return -1;
    }
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  code = curl_easy_perform(curl);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
  curl_slist_free_all(headers);
  if (a->restart) res->restarted++;
  else if (a->have > 0 && res->status == 206) res->resumed++;
  if (a->write_failed) {
    if (a->write_failed == -1)
      cpf_error_set(a->err, CPF_ERR_DATA, "%s: the answer is larger than %zu bytes", req->url, req->max_body);
    else if (a->write_failed == ENOMEM) cpf_error_set(a->err, CPF_ERR_MEMORY, "out of memory");
    else if (a->write_failed == ENOSPC)
      cpf_error_set(a->err, CPF_ERR_IO, "%s: the disk is full (%s): free some space and run again, the download "
                    "resumes where it stopped", req->path, strerror(a->write_failed));
    else cpf_error_set(a->err, CPF_ERR_IO, "%s: %s", req->path, strerror(a->write_failed));
    return -1;
  }
  if (code == CURLE_ABORTED_BY_CALLBACK) {
    cpf_error_set(a->err, CPF_ERR_CANCELLED, "%s: download cancelled", req->url);
    return -1;
  }
  if (code != CURLE_OK) {
    /* cut, timed out, refused: worth another try, resumed */
    cpf_error_set(a->err, CPF_ERR_IO, "%s: %s", req->url, curl_easy_strerror(code));
    if (code == CURLE_UNSUPPORTED_PROTOCOL || code == CURLE_URL_MALFORMAT || code == CURLE_COULDNT_RESOLVE_HOST ||
        code == CURLE_OUT_OF_MEMORY)
      return -1;
    return 1;
  }
  if (res->status == 200 || res->status == 206) return 0;
  {
    char shown[200];
    size_t k = a->error_len < sizeof shown - 1 ? a->error_len : sizeof shown - 1, i;
    for (i = 0; i < k; i++) shown[i] = (a->error_body[i] >= 32 && a->error_body[i] < 127) ? a->error_body[i] : ' ';
    shown[k] = '\0';
    cpf_error_set(a->err, CPF_ERR_IO, "%s: HTTP %ld %s%s%s", req->url, res->status, status_text(res->status),
                  k ? ": " : "", shown);
  }
  if (res->status == 429 || (res->status == 503 && a->retry_after >= 0)) {
    *wait = a->retry_after >= 0 ? a->retry_after : req->backoff;
    if (*wait > req->max_wait) *wait = req->max_wait;
    return 1;
  }
  if (res->status == 416 && a->have > 0 && a->range_total == (long long)a->have) {
    memset(a->err, 0, sizeof *a->err); /* the file was whole already (a run that stopped after it) */
    res->status = 200;
    return 0;
  }
  if (res->status == 416 && a->have > 0) { /* the file is not what the server has: from zero */
    if (ftruncate(a->fd, 0) != 0) {
      cpf_error_set(a->err, CPF_ERR_IO, "%s: %s", req->path, strerror(errno));
      return -1;
    }
    *wait = 0;
    return 1;
  }
  if (res->status >= 500) return 1;
  return -1;
}

int http_get(const http_request *req, http_response *res, cpf_error *err) {
  attempt a;
  CURL *curl;
  double backoff = req->backoff;
  int rc;
  memset(res, 0, sizeof *res);
  memset(&a, 0, sizeof a);
  a.req = req;
  a.res = res;
  a.err = err;
  a.fd = -1;
  if (req->if_range) copy_value(a.validator, sizeof a.validator, req->if_range, strlen(req->if_range));
  pthread_once(&global_once, global_init);
  if (global_code != CURLE_OK) {
    cpf_error_set(err, CPF_ERR_MEMORY, "cannot start libcurl: %s", curl_easy_strerror(global_code));
    return -1;
  }
  if (req->path && (a.fd = open(req->path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)) < 0) {
    cpf_error_set(err, CPF_ERR_IO, "%s: %s", req->path, strerror(errno));
    return -1;
  }
  if (!(curl = curl_easy_init())) {
    if (a.fd >= 0) close(a.fd);
    cpf_error_set(err, CPF_ERR_MEMORY, "out of memory");
    return -1;
  }
  curl_easy_setopt(curl, CURLOPT_URL, req->url);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L); /* on a thread: no SIGALRM for timeouts */
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 5L);
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  curl_easy_setopt(curl, CURLOPT_USERAGENT, req->user_agent ? req->user_agent : "cpf");
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 30L);
  /* a transfer that stalls (under 1 byte/s for stall_seconds) is cut, then resumed */
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, req->stall_seconds > 0 ? req->stall_seconds : 60L);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &a);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &a);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &a);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  /* proxies: libcurl reads http_proxy, https_proxy and no_proxy from the environment */
  for (;;) {
    double wait = -1;
    res->attempts++;
    memset(err, 0, sizeof *err);
    rc = attempt_once(curl, &a, &wait);
    if (rc <= 0) break;
    if (res->attempts > (size_t)req->retries) break; /* err says the last failure */
    if (wait < 0) {
      wait = backoff;
      backoff = backoff * 2 > req->max_wait ? req->max_wait : backoff * 2;
    }
    if (wait_cancellable(&a, wait)) {
      cpf_error_set(err, CPF_ERR_CANCELLED, "%s: download cancelled", req->url);
      rc = -1;
      break;
    }
  }
  curl_easy_cleanup(curl);
  if (a.fd >= 0) {
    struct stat st;
    if (rc == 0 && cpf_fsync(a.fd) != 0) {
      cpf_error_set(err, CPF_ERR_IO, "%s: %s", req->path, strerror(errno));
      rc = -1;
    }
    if (fstat(a.fd, &st) == 0) res->size = (uint64_t)st.st_size;
    close(a.fd);
  }
  return rc == 0 ? 0 : -1;
}

void http_response_free(http_response *res) {
  free(res->body);
  res->body = NULL;
  res->body_len = 0;
}
