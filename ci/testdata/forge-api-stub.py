#!/usr/bin/env python3
"""A stand-in for the comment endpoints of the GitHub and GitLab APIs, on loopback, for
ci/test-templates.sh: lists (paginated), creates and updates comments of one pull request,
and records every request (method, path, JSON body) as a line of JSON in LOG.

    forge-api-stub.py PORT_FILE LOG

Collection paths end in /comments or /notes (GET lists, POST creates); item paths are
<collection>/<id> (PATCH or PUT updates). Starts with one unrelated comment (id 1).
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

comments = [{"id": 1, "body": "LGTM", "user": {"login": "someone", "type": "User"}}]


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _record(self, body):
        with open(sys.argv[2], "a", encoding="utf-8") as log:
            log.write(json.dumps({"method": self.command, "path": self.path, "body": body,
                                  "auth": self.headers.get("Authorization") or self.headers.get("PRIVATE-TOKEN")}) + "\n")

    def _reply(self, code, value):
        data = json.dumps(value).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        return json.loads(raw) if raw else None

    def do_GET(self):
        self._record(None)
        query = parse_qs(urlparse(self.path).query)
        per_page = int(query.get("per_page", ["30"])[0])
        page = int(query.get("page", ["1"])[0])
        self._reply(200, comments[(page - 1) * per_page: page * per_page])

    def do_POST(self):
        body = self._body()
        self._record(body)
        comment = {"id": len(comments) + 1, "body": body["body"],
                   "user": {"login": "github-actions[bot]", "type": "Bot"}}
        comments.append(comment)
        self._reply(201, comment)

    def _update(self):
        body = self._body()
        self._record(body)
        wanted = int(urlparse(self.path).path.rsplit("/", 1)[1])
        for comment in comments:
            if comment["id"] == wanted:
                comment["body"] = body["body"]
                return self._reply(200, comment)
        return self._reply(404, {"message": "Not Found"})

    do_PATCH = _update
    do_PUT = _update


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[1], "w", encoding="utf-8") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
