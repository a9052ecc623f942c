"""Building blocks of the end-to-end rig: certificates, ports, processes, the proxy command.

Nothing here knows pytest; ``conftest.py`` wires it into fixtures.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
IDP_DIR = HERE / "idp"
RP_DIR = HERE / "rp"
ROUTING_ADDON = HERE / "routing.py"
CHROMIUM = "/usr/bin/chromium"
TEST_HOSTS = ("idp.test", "app.test", "api.test", "other.test")
# issue 11: the public-client provider, the SPA, the second and third provider implementations and
# their relying party (one certificate covers every name)
ROUND2_HOSTS = ("op.test", "spa.test", "dot.test", "authlib.test", "client.test")
SPA_DIR = HERE / "spa"
PROVIDERS_DIR = HERE / "providers"
CLIENTS_DIR = HERE / "clients"

# --------------------------------------------------------------------------
# THE proxy switch. "mitmdump" = bare mitmdump + routing addon (rig development);
# "authtrace" = the product: `python -m authtrace record --db DB --listen-port N -- ...`.
# The env var AUTHTRACE_E2E_PROXY overrides the default either way.
PROXY_KIND = os.environ.get("AUTHTRACE_E2E_PROXY", "authtrace")
# --------------------------------------------------------------------------


def proxy_command(
    kind: str,
    *,
    port: int,
    confdir: Path,
    upstream_ca: Path,
    db: Path,
    save_flows: Path | None = None,
    hardump: Path | None = None,
) -> list[str]:
    """The command line that runs the recording proxy on 127.0.0.1:port.

    save_flows: the raw flows (mitmproxy format), hardump: the same flows as a HAR written
    at shutdown; both keep only ``*.test`` traffic (SAVE_FILTER).
    """
    mitm_args = [
        "-s", str(ROUTING_ADDON),
        "--set", f"confdir={confdir}",
        "--set", f"ssl_verify_upstream_trusted_ca={upstream_ca}",
        "--set", "listen_host=127.0.0.1",
    ]  # fmt: skip
    if save_flows or hardump:
        mitm_args += ["--set", f"save_stream_filter={SAVE_FILTER}"]
    if hardump:
        mitm_args += ["--set", f"hardump={hardump}"]
    if kind == "authtrace":
        save = ["--save-flows", str(save_flows)] if save_flows else []
        return [
            sys.executable, "-m", "authtrace", "record", "--db", str(db), "--listen-port", str(port), *save,
            "--", *mitm_args,
        ]  # fmt: skip
    if kind == "mitmdump":
        mitmdump = Path(sys.executable).with_name("mitmdump")
        exe = str(mitmdump) if mitmdump.exists() else (shutil.which("mitmdump") or "mitmdump")
        save = ["--save-stream-file", str(save_flows)] if save_flows else []
        return [exe, "--listen-port", str(port), *save, *mitm_args]
    raise ValueError(f"AUTHTRACE_E2E_PROXY must be 'mitmdump' or 'authtrace', not {kind!r}")


# Saved captures keep only the test hosts (Chromium's own calls to Google hosts get a local 403
# from routing.py and stay out). ~d matches request.host or the Host header (pretty_host).
SAVE_FILTER = r"~d \.test$"


def ensure_mitm_ca(confdir: Path) -> Path:
    """Create mitmproxy's CA in confdir now (mitmproxy's own code), so it exists before any proxy runs.

    Every proxy restart reuses it: the RP's REQUESTS_CA_BUNDLE and Chromium's SPKI pin stay valid.
    """
    from mitmproxy.certs import CertStore

    confdir.mkdir(parents=True, exist_ok=True)
    CertStore.from_store(confdir, "mitmproxy", 2048)
    return confdir / "mitmproxy-ca-cert.pem"


# ----------------------------------------------------------------- certificates


@dataclass(frozen=True)
class PKI:
    ca_cert: Path  # PEM, the throwaway CA (mitmproxy trusts it for upstreams)
    cert: Path  # PEM leaf for every *.test name
    key: Path  # PEM PKCS#8 key of the leaf
    signing_key: Path  # PEM RSA key the IdP signs tokens with (RS256)


def make_pki(directory: Path, hosts: tuple[str, ...] = TEST_HOSTS + ROUND2_HOSTS) -> PKI:
    """A throwaway CA, one leaf certificate for all test host names (EC P-256: fast), the IdP's RSA key."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "authtrace e2e throwaway CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(h) for h in hosts] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pki = PKI(
        ca_cert=directory / "ca.pem",
        cert=directory / "leaf.pem",
        key=directory / "leaf-key.pem",
        signing_key=directory / "idp-signing-key.pem",
    )
    pki.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    pki.key.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    pki.key.chmod(0o600)
    # RSA key generation is the slowest part of the IdP's start on a busy machine: do it here, once.
    signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pki.signing_key.write_bytes(
        signing_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    pki.signing_key.chmod(0o600)
    return pki


def spki_sha256_b64(cert_pem: Path) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)): the form --ignore-certificate-errors-spki-list wants."""
    cert = x509.load_pem_x509_certificate(cert_pem.read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(spki)
    return base64.b64encode(digest.finalize()).decode()


# ------------------------------------------------------------------------ ports


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1 (held open together, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


# -------------------------------------------------------------------- processes

PROXY_ENV_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without any inherited proxy settings, plus extra."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in PROXY_ENV_VARS}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: get SIGTERM if the test runner dies without tearing down."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class StartupError(RuntimeError):
    pass


@dataclass
class Proc:
    """A server subprocess with its output in a log file; stopped by pid."""

    name: str
    cmd: list[str]
    log: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None
    popen: subprocess.Popen | None = field(default=None, repr=False)
    returncode: int | None = None
    killed: bool = False  # needed SIGKILL after ignoring the polite signal

    def start(self) -> Proc:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as out:
            self.popen = subprocess.Popen(
                self.cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def wait_until(self, ready: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if ready():
                return
            if not self.running():
                raise StartupError(
                    f"{self.name} exited with {self.popen.returncode} before {what}\n"
                    f"$ {' '.join(self.cmd)}\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise StartupError(f"{self.name} not ready after {timeout:.0f}s ({what})\n{self.tail()}")
            time.sleep(0.05)

    def wait_for_line(self, marker: str, timeout: float = 60.0) -> None:
        self.wait_until(lambda: marker in self.output(), f"printing {marker!r}", timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> int | None:
        """Signal the process by its pid, SIGKILL it after timeout; returns its exit code."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(sig)
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
                self.popen.kill()
                self.popen.wait(timeout=5)
            except ProcessLookupError:
                pass
        self.returncode = self.popen.returncode
        return self.returncode


# ------------------------------------------------------------ authtrace's store


def hop_rows(db: Path, after_rowid: int = 0) -> list[dict]:
    """Rows of authtrace's ``hop`` table with rowid > after_rowid, oldest first (read-only), each with
    its ``number``: the position in time order within its session, the number authtrace prints."""
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        con.row_factory = sqlite3.Row
        try:
            rows = [dict(r) for r in con.execute("SELECT rowid AS _rowid, * FROM hop ORDER BY session_id, started, id")]
            count: dict[int, int] = {}
            for r in rows:
                r["number"] = count[r["session_id"]] = count.get(r["session_id"], 0) + 1
            return sorted((r for r in rows if r["_rowid"] > after_rowid), key=lambda r: r["_rowid"])
        except sqlite3.OperationalError as exc:  # table not created yet
            if "no such table" in str(exc):
                return []
            raise
    finally:
        con.close()


def capture_sessions(db: Path) -> list[dict]:
    """authtrace's capture sessions (id, source, kind, hops), oldest first (read-only)."""
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        con.row_factory = sqlite3.Row
        return [dict(r) for r in con.execute("SELECT id, source, kind, hops FROM capturesession ORDER BY id")]
    finally:
        con.close()


# ------------------------------------------------------------ authtrace's CLI


@dataclass
class CliRun:
    """One `python -m authtrace ...` run started in the background; ``result()`` waits for it."""

    args: list[str]
    popen: subprocess.Popen = field(repr=False)
    timeout: float = 120.0
    _done: tuple[int, str, str] | None = field(default=None, repr=False)

    def result(self) -> tuple[int, str, str]:
        """(exit code, stdout, stderr)."""
        if self._done is None:
            try:
                out, err = self.popen.communicate(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                out, err = self.popen.communicate()
                err += f"\n[killed after {self.timeout:.0f}s]"
            self._done = (self.popen.returncode, out, err)
        return self._done


def authtrace_cli(*args: str | Path, cwd: Path = REPO) -> CliRun:
    """Start ``python -m authtrace ARGS`` (the real command line) without waiting for it."""
    cmd = [sys.executable, "-m", "authtrace", *map(str, args)]
    popen = subprocess.Popen(
        cmd, cwd=cwd, env=clean_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    return CliRun(cmd, popen)
