"""`authtrace record` listens on loopback unless told otherwise, says where it really listens, and
refuses a busy port in one sentence. Asserted from the kernel's table of listening sockets."""
from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from liverig import Upstream, free_port, send

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc/net/tcp")


def listening(port: int) -> list[str]:
    """Addresses with a socket in LISTEN state on this TCP port (this network namespace)."""
    found = []
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            hexip, hexport = fields[1].split(":")
            if fields[3] != "0A" or int(hexport, 16) != port:
                continue
            raw = bytes.fromhex(hexip)
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))  # host-order words
            found.append(socket.inet_ntop(family, raw))
    return sorted(found)


class Record:
    def __init__(self, tmp: Path, *args: str):
        self.out = tmp / "record.out"
        self.fh = open(self.out, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "authtrace", "record", "--db", str(tmp / "l.db"), *args,
             "--", "--set", f"confdir={tmp / 'conf'}"],
            stdout=self.fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            m = re.search(pattern, self.text())
            if m:
                return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} in: {self.text()}")

    def text(self) -> str:
        return self.out.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.fh.close()


def test_record_binds_loopback_only_by_default(tmp_path):
    port = free_port()
    rec = Record(tmp_path, "--listen-port", str(port))
    try:
        rec.wait_for(rf"proxy on http://127\.0\.0\.1:{port} \(loopback only\)")
        assert listening(port) == ["127.0.0.1"]
    finally:
        rec.stop()


def test_record_prints_the_port_the_proxy_really_bound(tmp_path):
    rec = Record(tmp_path, "--listen-port", "0")
    try:
        port = int(rec.wait_for(r"proxy on http://127\.0\.0\.1:(\d+) ").group(1))
        assert port != 0 and listening(port) == ["127.0.0.1"]
        with Upstream(lambda h, b: (200, [], b"ok")) as up:
            status, body = send(port, up.port, "GET", "app.test", "/callback?code=C-1&state=s", [])
        assert (status, body) == (200, b"ok")  # the printed address is the proxy
    finally:
        rec.stop()


def test_record_listen_host_all_interfaces_warns(tmp_path):
    port = free_port()
    rec = Record(tmp_path, "--listen-host", "0.0.0.0", "--listen-port", str(port))
    try:
        rec.wait_for(r"other machines on the network can use it \(--listen-host 127\.0\.0\.1 keeps it local\)")
        assert listening(port) == ["0.0.0.0"]
    finally:
        rec.stop()


def test_busy_port_is_one_sentence_naming_our_flag_and_exit_2(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "authtrace", "record", "--db", str(tmp_path / "b.db"),
                              "--listen-port", str(port)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stdout == "" and len(out.stderr.splitlines()) == 1, out.stderr
    assert f"port {port} is already in use" in out.stderr and "--listen-port" in out.stderr
    assert not (tmp_path / "b.db").exists()
