"""A loopback HTTP file server whose connections break at a byte offset of a file.

It serves the files of one folder with ``Range`` support, as object stores and CDNs do.
A request whose bytes reach ``break_at`` gets the bytes before that offset and then a
connection reset (RST, no clean end), ``breaks`` times in all (``None``: forever, a
connection that breaks for good); a request that starts past the offset while breaks are
left is reset at once. ``broken`` counts the resets served.
"""

from __future__ import annotations

import re
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class BreakingFileServer:
    """``with BreakingFileServer(folder, break_at=1000, breaks=2) as server: server.url``."""

    def __init__(self, folder: Path, *, break_at: int, breaks: int | None) -> None:
        self.folder, self.break_at, self.breaks_left = Path(folder), break_at, breaks
        self.broken = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> BreakingFileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _take_break(self) -> bool:
        with self._lock:
            if self.breaks_left is not None and self.breaks_left <= 0:
                return False
            if self.breaks_left is not None:
                self.breaks_left -= 1
            self.broken += 1
            return True

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def _reset(self) -> None:
                self.wfile.flush()
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True
                self.connection.close()

            def do_HEAD(self) -> None:
                self._serve(head=True)

            def do_GET(self) -> None:
                self._serve(head=False)

            def _serve(self, head: bool) -> None:
                path = server.folder / self.path.lstrip("/").split("?")[0]
                if not path.is_file():
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = path.read_bytes()
                start, end = 0, len(data) - 1
                match = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
                if match:
                    start = int(match.group(1))
                    end = min(int(match.group(2) or end), len(data) - 1)
                self.send_response(206 if match else 200)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(end - start + 1))
                if match:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                self.end_headers()
                if head:
                    return
                if end >= server.break_at and server._take_break():
                    self.wfile.write(data[start : max(start, server.break_at)])
                    self._reset()
                    return
                self.wfile.write(data[start : end + 1])

        return Handler
