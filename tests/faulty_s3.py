"""An HTTP proxy in front of the test S3 endpoint that injects faults on the wire.

Every request is classified by the kind of S3 call it is (ListObjectsV2, GetObject, HeadObject,
PutObject, CopyObject, DeleteObject(s), multipart steps ...). The first request of each kind, and
then every `every`-th, gets a fault instead of its answer, cycling through: a 503 SlowDown, a 500
InternalError, and (for calls that return a body) a response cut mid-body: the full headers, half
the bytes, then a closed connection. Faulted requests never reach the server, except cut ones,
which are reads. boto3 and pyarrow (the AWS C++ SDK) talk to it exactly as to S3.
"""

from __future__ import annotations

import http.client
import http.server
import threading
from collections import Counter
from urllib.parse import parse_qs, urlsplit

__all__ = ["FaultyS3"]

_SLOW_DOWN = b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
_INTERNAL = b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>"
_HOP_HEADERS = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}


def call_kind(method: str, path: str, headers) -> str:
    """The S3 operation a request is, from its method, query and headers."""
    query = parse_qs(urlsplit(path).query, keep_blank_values=True)
    key = urlsplit(path).path.lstrip("/").partition("/")[2]
    if method == "GET":
        if "list-type" in query or not key:
            return "ListObjects"
        return "GetObject"
    if method == "HEAD":
        return "HeadObject" if key else "HeadBucket"
    if method == "PUT":
        if "partNumber" in query:
            return "UploadPart"
        if "x-amz-copy-source" in {h.lower() for h in headers.keys()}:
            return "CopyObject"
        return "PutObject" if key else "CreateBucket"
    if method == "POST":
        if "delete" in query:
            return "DeleteObjects"
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
        return "Post"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    return method


class FaultyS3:
    """`with FaultyS3(upstream) as proxy:` -> `proxy.url` is the faulty endpoint."""

    FAULTS = ("slow_down", "internal", "cut")

    def __init__(self, upstream: str, every: int = 4) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port)
        self.every = every
        self.seen: Counter[str] = Counter()
        self.faults: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                body = self._request_body()
                kind = call_kind(self.command, self.path, self.headers)
                fault = proxy._next_fault(kind)
                if fault in ("slow_down", "internal"):
                    payload = _SLOW_DOWN if fault == "slow_down" else _INTERNAL
                    self.send_response(503 if fault == "slow_down" else 500)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload) if self.command != "HEAD" else 0))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    return
                status, reason, headers, data = proxy._forward(self.command, self.path, self.headers, body)
                self.send_response(status, reason)
                for name, value in headers:
                    if name.lower() not in _HOP_HEADERS and name.lower() != "content-length":
                        self.send_header(name, value)
                length = headers_length(headers, data, self.command)
                self.send_header("Content-Length", str(length))
                if fault == "cut":
                    self.send_header("Connection", "close")
                self.end_headers()
                if self.command == "HEAD":
                    return
                if fault == "cut":
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)

            def _request_body(self) -> bytes:
                if self.headers.get("Expect", "").lower() == "100-continue":
                    self.send_response_only(100)
                    self.end_headers()
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline().strip():
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _next_fault(self, kind: str) -> str | None:
        with self._lock:
            self.seen[kind] += 1
            n = self.seen[kind]
            if (n - 1) % self.every:
                return None
            faults = [f for f in self.FAULTS if f != "cut" or kind in ("GetObject", "ListObjects")]
            fault = faults[((n - 1) // self.every) % len(faults)]
            self.faults[(kind, fault)] += 1
            return fault

    def _forward(self, method: str, path: str, headers, body: bytes):
        connection = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            forwarded = {k: v for k, v in headers.items() if k.lower() not in _HOP_HEADERS and k.lower() != "expect"}
            forwarded["Content-Length"] = str(len(body))
            connection.request(method, path, body=body, headers=forwarded)
            response = connection.getresponse()
            data = response.read()
            return response.status, response.reason, response.getheaders(), data
        finally:
            connection.close()

    def faulted_kinds(self) -> set[str]:
        return {kind for kind, _ in self.faults}

    def __enter__(self) -> "FaultyS3":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def headers_length(headers, data: bytes, method: str) -> int:
    """The Content-Length to announce: the body's, or for HEAD the upstream's own."""
    if method == "HEAD":
        for name, value in headers:
            if name.lower() == "content-length":
                return int(value)
        return 0
    return len(data)
