#!/usr/bin/env python3
"""A stand-in for the Caisse des Dépôts' Opendatasoft portal, for cpf fetch's tests only: it
listens on 127.0.0.1 and serves, from DIR, metadata.json (the dataset's catalog entry) and
export.csv.gz (the export), with ETag and Range (If-Range) as the portal does. What each export
request meets is read from DIR/script (one word a line, consumed in order; "ok" once empty):
  ok        the export, whole (or the range asked)
  cut:N     the headers of the whole answer, then N bytes of it, then the connection closed
  429:S     429 Too Many Requests with Retry-After: S
  500       500 Internal Server Error
  html      200 with an HTML page instead of the export
  noetag    the export without ETag (and without Range support)
  norange   the export with its ETag, whole: Range ignored (a 200 to a Range)
  429date:S 429 Too Many Requests with Retry-After: an HTTP date S seconds ahead
Every request is logged in DIR/requests.log: method, path, Range and If-Range.
usage: portal.py DIR  (prints the port it listens on, then serves until killed)"""
import email.utils
import hashlib
import http.server
import os
import sys
import time

DIR = sys.argv[1]
BASE = "/api/explore/v2.1/catalog/datasets/moncompteformation_formations_engagees"


def next_step():
    path = os.path.join(DIR, "script")
    try:
        with open(path) as f:
            lines = [l.strip() for l in f if l.strip()]
    except FileNotFoundError:
        return "ok"
    if not lines:
        return "ok"
    with open(path, "w") as f:
        f.write("\n".join(lines[1:]) + ("\n" if len(lines) > 1 else ""))
    return lines[0]


class Portal(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_body(self, status, ctype, body, extra=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        with open(os.path.join(DIR, "requests.log"), "a") as log:
            log.write("GET %s Range=%s If-Range=%s\n" % (self.path, self.headers.get("Range"),
                                                         self.headers.get("If-Range")))
        path = self.path.split("?")[0]
        if path.startswith("http://"):  # asked as a proxy: the absolute form of the target
            path = "/" + path.split("/", 3)[3]
        if path == BASE:
            with open(os.path.join(DIR, "metadata.json"), "rb") as f:
                return self.send_body(200, "application/json; charset=utf-8", f.read())
        if path != BASE + "/exports/csv":
            return self.send_body(404, "application/json", b'{"error": "not found"}')
        step = next_step()
        if step.startswith("429date:"):
            when = email.utils.formatdate(time.time() + int(step[8:]), usegmt=True)
            return self.send_body(429, "application/json", b'{"error": "too many requests"}', {"Retry-After": when})
        if step.startswith("429:"):
            return self.send_body(429, "application/json", b'{"error": "too many requests"}',
                                  {"Retry-After": step[4:]})
        if step == "500":
            return self.send_body(500, "text/plain", b"internal error")
        if step == "html":
            return self.send_body(200, "text/html; charset=utf-8",
                                  b"<!doctype html><html><body>Maintenance</body></html>")
        with open(os.path.join(DIR, "export.csv.gz"), "rb") as f:
            data = f.read()
        etag = '"%s"' % hashlib.md5(data).hexdigest()[:16]
        extra = {} if step == "noetag" else {"ETag": etag}
        rng = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        status, start = 200, 0
        if rng and step not in ("noetag", "norange") and rng.startswith("bytes=") and (if_range is None or if_range == etag):
            start = int(rng[6:].split("-")[0])
            if start >= len(data):
                return self.send_body(416, "text/plain", b"", {"Content-Range": "bytes */%d" % len(data)})
            status = 206
            extra["Content-Range"] = "bytes %d-%d/%d" % (start, len(data) - 1, len(data))
        body = data[start:]
        if step.startswith("cut:"):
            n = int(step[4:])
            self.send_response(status)
            self.send_header("Content-Type", "application/gzip")
            self.send_header("Content-Length", str(len(body)))
            for k, v in extra.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body[:n])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.send_body(status, "application/gzip", body, extra)


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Portal)
print(server.server_address[1], flush=True)
server.serve_forever()
