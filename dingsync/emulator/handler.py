"""The HTTP side: a threaded HTTP/1.1 server with keep-alive that prints nothing.

The handler only moves bytes. What to answer comes from the gateway (DingTalk's paths) or
from the control API (``/_emulator/``); how to answer (or to reset or drop the connection
for injected faults) is decided here.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import urlsplit

from dingsync.emulator.exchange import Outcome
from dingsync.emulator.exchange import Request
from dingsync.emulator.exchange import encode

CONTROL_PREFIX = "/_emulator/"
MAX_BODY = 4 * 1024 * 1024
IDLE_TIMEOUT = 120.0  # seconds a kept-alive connection may sit idle before it is closed

Gateway = Callable[[Request], Outcome]
Control = Callable[[str, str, bytes], tuple[int, Any]]


class EmulatorHTTPServer(ThreadingHTTPServer):
    """Threads per connection, a deep accept queue, and no name lookups or stack traces."""

    daemon_threads = True
    # Pooled keep-alive connections can idle for minutes; stop() must not wait for them.
    block_on_close = False
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        gateway: Gateway,
        control: Control,
        ipv6: bool = False,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if ipv6:
            self.address_family = socket.AF_INET6
        self.gateway = gateway
        self.sleep = sleep
        self.control = control
        self._open: set[socket.socket] = set()
        self._to_reset: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        self.accepted = 0
        super().__init__(address, EmulatorHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall without DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def track(self, conn: socket.socket) -> None:
        with self._open_lock:
            self._open.add(conn)
            self.accepted += 1

    def untrack(self, conn: socket.socket) -> None:
        with self._open_lock:
            self._open.discard(conn)

    def mark_reset(self, conn: socket.socket) -> None:
        with self._open_lock:
            self._to_reset.add(conn)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            reset = request in self._to_reset
            self._to_reset.discard(request)
        if reset:
            # SO_LINGER 0 makes close() send RST instead of FIN: a "connection reset by peer".
            request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_request(request)
            return
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake every handler thread blocked on an idle keep-alive connection."""
        with self._open_lock:
            conns = list(self._open)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            return  # the client went away or timed out: nothing worth printing
        # A bug in the emulator: say so on stderr (never with the request line or URL).
        print("DingTalk emulator: internal error", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)


class _BadRequest(Exception):
    pass


class EmulatorHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients pool connections
    server_version = "DingTalkEmulator/1"
    disable_nagle_algorithm = True  # small answers must not wait for delayed ACKs
    timeout = IDLE_TIMEOUT

    def _server(self) -> EmulatorHTTPServer:
        assert isinstance(self.server, EmulatorHTTPServer)
        return self.server

    def setup(self) -> None:
        super().setup()
        self._server().track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._server().untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        # Silence: request lines carry access tokens in their query strings.
        return None

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_OPTIONS(self) -> None:
        self._serve()

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except _BadRequest as exc:
            self.close_connection = True
            self._write(400, str(exc).encode("utf-8"), "text/plain; charset=utf-8")
            return
        parts = urlsplit(self.path)
        if parts.path.startswith(CONTROL_PREFIX):
            status, payload = self._server().control(self.command, parts.path, body)
            self._write(status, encode(payload), "application/json")
            return
        request = Request(
            method=self.command,
            path=parts.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            content_type=self.headers.get("Content-Type", ""),
            body=body,
            headers={name.lower(): value for name, value in self.headers.items()},
        )
        self._deliver(self._server().gateway(request))

    def _deliver(self, outcome: Outcome) -> None:
        if outcome.delay > 0:
            # Sleeping here holds only this connection's thread, never the store lock.
            self._server().sleep(outcome.delay)
        if outcome.action == "answer":
            self._write(outcome.status, outcome.body, outcome.content_type)
            return
        self.close_connection = True
        if outcome.action == "reset":
            self._server().mark_reset(self.connection)

    def _write(self, status: int, body: bytes, content_type: str) -> None:
        reason = self.responses.get(status, ("",))[0]
        head = [
            f"HTTP/1.1 {status} {reason}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            f"Date: {self.date_time_string()}",
            f"Server: {self.server_version}",
        ]
        if self.close_connection:
            head.append("Connection: close")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if self.command != "HEAD":
            data += body
        # One write for head and body: no small-packet stalls, no half answers.
        self.wfile.write(data)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length_text = self.headers.get("Content-Length")
        if not length_text:
            return b""
        try:
            length = int(length_text)
        except ValueError:
            raise _BadRequest("bad Content-Length") from None
        if not 0 <= length <= MAX_BODY:
            raise _BadRequest("request body too large")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BadRequest("bad chunk size") from None
            if size == 0:
                break
            total += size
            if total > MAX_BODY:
                raise _BadRequest("request body too large")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(16)  # the CRLF after each chunk
        # Trailer fields may follow the last chunk; none matters to the API: read past them
        # to the empty line that ends the request.
        line = self.rfile.readline(1024)
        while line not in (b"\r\n", b"\n", b""):
            line = self.rfile.readline(1024)
        return b"".join(chunks)
