"""A loopback HTTP proxy that makes an S3 endpoint transiently unreliable.

Each distinct request (method, path with query, Range header) fails its first
``failures_per_request`` times, alternately with a 503 ``SlowDown`` (what S3 answers under
load) and a connection reset without any response, and is then forwarded unchanged to the
upstream server. Clients that retry with backoff see every object; clients that do not, fail.
``injected`` counts the failures served.
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection"}


class FlakyS3Proxy:
    """Start with ``with FlakyS3Proxy(upstream_url, failures_per_request=2) as proxy:``.

    Args:
        upstream: Base URL of the real endpoint (``http://127.0.0.1:5000``).
        failures_per_request: How many times each distinct request fails before it passes.
    """

    def __init__(self, upstream: str, *, failures_per_request: int = 2):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port)
        self.failures_per_request = failures_per_request
        self.seen: Counter[str] = Counter()
        self.injected = Counter()  # "503" / "reset" -> count
        self.forwarded = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FlakyS3Proxy:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _decide(self, key: str) -> str | None:
        """None to forward, or the failure to inject for this attempt."""
        with self._lock:
            attempt = self.seen[key]
            self.seen[key] += 1
            if attempt >= self.failures_per_request:
                self.forwarded += 1
                return None
            kind = "503" if attempt % 2 == 0 else "reset"
            self.injected[kind] += 1
            return kind

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                failure = proxy._decide(
                    f"{self.command} {self.path} {self.headers.get('Range', '')}"
                )
                if failure == "reset":
                    # RST instead of FIN: the client sees "connection reset by peer".
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.close_connection = True
                    self.connection.close()
                    return
                if failure == "503":
                    head = self.command == "HEAD"
                    self._reply(503, {"Content-Type": "application/xml"}, _SLOW_DOWN, head=head)
                    return
                self._forward(body)

            def _forward(self, body: bytes | None) -> None:
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                out = {k: v for k, v in resp.getheaders() if k.lower() not in _HOP_BY_HOP}
                conn.close()
                self._reply(resp.status, out, data, head=self.command == "HEAD")

            def _reply(self, status: int, headers: dict, data: bytes, head: bool = False):
                self.send_response(status)
                for k, v in headers.items():
                    if k.lower() != "content-length":
                        self.send_header(k, v)
                # A HEAD answer announces the body's length but carries no body.
                length = headers.get("Content-Length") or headers.get("content-length")
                self.send_header("Content-Length", str(length if head and length else len(data)))
                self.end_headers()
                if not head:
                    self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _handle

        return Handler
