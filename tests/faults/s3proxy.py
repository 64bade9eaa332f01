"""A fault-injecting HTTP proxy on 127.0.0.1 in front of the moto S3 server.

Rules say which requests to break and how: answer with an HTTP status
(500, 503 SlowDown), drop the connection after part of the response body,
or drop it while the request body is still being uploaded. Each rule fires a
given number of times (or forever), so a test can make faults transient or
persistent. Every exchange is counted (`exchanges`: method, path, status,
response body bytes), so a test can assert what a run read.
"""

from __future__ import annotations

import http.client
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse


@dataclass
class Rule:
    method: str  # "GET", "PUT", … or "*"
    path_part: str  # substring of the request path
    action: str  # "status", "drop_response", "drop_upload"
    times: int  # how often; -1 = always
    status: int = 503
    fired: int = 0
    code: str = ""  # the S3 error code of a "status" answer (default: SlowDown for 503, else InternalError)

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method) and self.path_part in path
                and (self.times < 0 or self.fired < self.times))


@dataclass(frozen=True)
class Exchange:
    method: str
    path: str  # with the query string
    status: int
    sent: int  # response body bytes sent to the client
    range: str | None = None  # the request's Range header


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        parsed = urlparse(upstream)
        self.upstream = (parsed.hostname, parsed.port)
        self.rules: list[Rule] = []
        self.requests: list[tuple[str, str]] = []
        self.exchanges: list[Exchange] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _handle(self) -> None:
                method, path = self.command, self.path
                with proxy.lock:
                    proxy.requests.append((method, path))
                    rule = next((r for r in proxy.rules if r.matches(method, path)), None)
                    if rule:
                        rule.fired += 1
                length = int(self.headers.get("Content-Length") or 0)
                if rule and rule.action == "drop_upload":
                    self.rfile.read(min(length, max(1, length // 2)))
                    self.close_connection = True
                    self.connection.close()
                    return
                body = self.rfile.read(length) if length else None
                if rule and rule.action == "status":
                    code = rule.code or ("SlowDown" if rule.status == 503 else "InternalError")
                    payload = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                               f"<Message>injected</Message></Error>").encode()
                    self.send_response(rule.status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if rule and rule.action == "drop_response" and method == "GET" and len(data) > 1:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.close()
                    return
                if method != "HEAD":
                    self.wfile.write(data)
                conn.close()
                with proxy.lock:
                    proxy.exchanges.append(Exchange(method, path, resp.status, 0 if method == "HEAD" else len(data),
                                                     self.headers.get("Range")))

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add(self, method: str, path_part: str, action: str, times: int = 1, status: int = 503,
            code: str = "") -> Rule:
        rule = Rule(method, path_part, action, times, status, code=code)
        with self.lock:
            self.rules.append(rule)
        return rule

    def take(self) -> list[Exchange]:
        """The exchanges counted since the last call (and forget them)."""
        with self.lock:
            taken, self.exchanges = self.exchanges, []
        return taken

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()
