"""A real PostgreSQL server for the tests and the scale bench: Debian's `initdb` and `pg_ctl` on a
temporary folder, listening on 127.0.0.1 at a free port (its socket in the same folder), trust
authentication, stopped and removed at the end.

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user (Debian's
package creates it). `PgServer.database()` makes a fresh database and returns its SQLAlchemy URL.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class PgUnavailable(Exception):
    """No PostgreSQL server binaries, or the server did not start; the message says which."""


def bindir() -> Path:
    """Debian keeps the server programs in /usr/lib/postgresql/<major>/bin (newest wins); PATH otherwise."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).resolve().parent
    raise PgUnavailable("PostgreSQL's server programs are not installed (apt-get install postgresql)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    def __init__(self, durable: bool = False):
        """`durable=False` turns fsync off: tests need no crash safety and the machine is shared."""
        self.bin = bindir()
        self.dir = Path(tempfile.mkdtemp(prefix="authtrace-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self.durable = durable
        self._n = 0
        self._as: dict[str, str] = {}
        if os.geteuid() == 0:
            self._as = {"user": "postgres", "group": "postgres"}
            shutil.chown(self.dir, "postgres", "postgres")
        self.dir.chmod(0o700)

    def _run(self, *args: str, timeout: float = 120) -> None:
        r = subprocess.run([str(self.bin / args[0]), *args[1:]], capture_output=True, text=True, timeout=timeout,
                           cwd=self.dir, **self._as)  # type: ignore[call-overload]
        if r.returncode != 0:
            raise PgUnavailable(f"{args[0]} failed: {(r.stderr or r.stdout).strip()[-500:]}")

    def start(self) -> PgServer:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c max_connections=200"
        if not self.durable:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        try:
            self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.dir / "server.log"), "-w",
                      "-t", "60", "start")
        except PgUnavailable as e:
            log = self.dir / "server.log"
            raise PgUnavailable(f"{e} {log.read_text()[-500:] if log.exists() else ''}") from None
        return self

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def database(self, prefix: str = "t") -> str:
        """A new, empty database; its URL."""
        import psycopg

        self._n += 1
        name = f"{prefix}_{os.getpid()}_{self._n}_{int(time.time() * 1000) % 100000}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PgServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
