"""A real `authtrace record` subprocess and a plain-HTTP upstream on 127.0.0.1, for live tests.

`Recorder` runs `python -m authtrace record --db DB --listen-port N -- --set confdir=DIR` with its
terminal output in a file (a pipe nobody reads would stall the proxy), and can stop it (SIGINT),
kill it (SIGKILL) and read its resident memory. `Upstream` answers every request with what its
`respond(handler, body)` function returns: `(status, [(name, value), ...], body_bytes)`.
`send()` sends one exact request through the proxy (header names in the given letter case, a
`Host` that differs from the address connected to) with http.client.
"""
from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

Respond = Callable[[BaseHTTPRequestHandler, bytes], tuple[int, list[tuple[str, str]], bytes]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30, proc: subprocess.Popen | None = None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall between them

    def log_message(self, *a):  # quiet
        pass

    def _any(self):
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n) if n else b""
        status, headers, out = self.server.respond(self, body)
        self.send_response(status)
        for k, v in headers:
            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _any


class Upstream(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # 200 concurrent connections must not wait in SYN retries

    def __init__(self, respond: Respond):
        self.respond = respond
        super().__init__(("127.0.0.1", 0), _Handler)
        self.port = self.server_address[1]
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def handle_error(self, request, client_address) -> None:  # a killed proxy resets its connections
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)

    def __enter__(self) -> Upstream:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()


class Recorder:
    """`authtrace record` as a user runs it, in its own process group."""

    def __init__(self, tmp: Path, db: Path | str | None = None, *extra: str):
        self.tmp = Path(tmp)
        # a file path, or a database URL kept as it is (a Path would fold its "//")
        self.db: Path | str = db if isinstance(db, str) and "://" in db else Path(db or self.tmp / "live.db")
        self.port = free_port()
        self.log = self.tmp / f"record-{self.port}.out"
        self.extra = extra
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Recorder:
        self._fh = open(self.log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "authtrace", "record", "--db", str(self.db), "--listen-port", str(self.port),
             "--", "--set", f"confdir={self.tmp / 'mitmconf'}", "--set", "listen_host=127.0.0.1", *self.extra],
            stdout=self._fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_port(self.port, proc=self.proc)
        self._wait_recording()
        return self

    def _wait_recording(self, timeout: float = 30) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if b"recording session" in self.log.read_bytes():
                return
            time.sleep(0.05)
        raise TimeoutError("authtrace record did not start recording: " + self.output())

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def proxy(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stop(self, timeout: float = 60) -> int:
        """Ctrl-C, as a user stops it; the addon's `done` flushes what is left."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def output(self) -> str:
        return self.log.read_bytes().decode("utf-8", "replace")

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self._fh.close()


def send(proxy_port: int, upstream_port: int, method: str, host: str, path: str,
         headers: list[tuple[str, str]], body: bytes = b"", timeout: float = 30) -> tuple[int, bytes]:
    """One request through the proxy, exactly as given: header order and letter case kept, `Host` set
    to the name the request is for while the connection goes to the upstream on 127.0.0.1."""
    conn = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=timeout)
    try:
        conn.putrequest(method, f"http://127.0.0.1:{upstream_port}{path}", skip_host=True,
                        skip_accept_encoding=True)
        conn.putheader("Host", host)
        for k, v in headers:
            if k.lower() not in ("host", "content-length", "transfer-encoding"):
                conn.putheader(k, v)
        if body or method in ("POST", "PUT", "PATCH"):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()
