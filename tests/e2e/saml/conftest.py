"""Fixtures of the real SAML end-to-end rig (issue 13).

Package scope: a throwaway PKI (the parent rig's ``make_pki``), the IdP's and the SP's signing
keys, a real SimpleSAMLphp IdP (nginx + php-fpm, idp.py), a pysaml2 SP in Flask (sp/app.py),
mitmproxy's CA and one headless Chromium. ``saml_outcomes`` records the five journeys
(journeys.py) back to back, each through its own ``authtrace record --save-flows`` proxy, and
decodes each saved capture with authtrace's SAML decoder (evidence.py); ``saml_<scenario>``
hands one to its tests.

Missing pieces (Chromium, nginx, php-fpm with the xml extension, SimpleSAMLphp, xmlsec1,
Playwright, pysaml2) skip the module locally and fail it when CI is set, as in the parent rig.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from .. import rig
from . import evidence, idp, journeys

IN_CI = bool(os.environ.get("CI"))
HERE = Path(__file__).resolve().parent
SP_APP = HERE / "sp" / "app.py"
IDP_HOST, SP_HOST = "saml-idp.test", "saml-sp.test"
XMLSEC1 = "/usr/bin/xmlsec1"
TIMINGS: dict[str, dict[str, float]] = {}


def _missing(message: str) -> None:
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _self_signed(key_pem: bytes | None, name: str) -> tuple[bytes, bytes]:
    """(key PEM, certificate PEM) for SAML signing: SAML trusts the certificate itself (metadata), no CA."""
    if key_pem is None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        loaded = serialization.load_pem_private_key(key_pem, password=None)
        assert isinstance(loaded, rsa.RSAPrivateKey)
        key = loaded
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2)).sign(key, hashes.SHA256())
    )  # fmt: skip
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem_key, cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class SamlStack:
    """The running rig, as the journeys and tests need it."""

    idp: idp.IdpFiles
    sp_base: str  # https://saml-sp.test:PORT
    idp_cert_pem: bytes
    sp_cert_pem: bytes
    proxy_port: int
    confdir: Path
    mitm_ca_spki: str
    pki: rig.PKI
    workdir: Path
    procs: dict[str, rig.Proc] = field(default_factory=dict)

    def entity(self, name: str) -> str:
        return f"{self.sp_base}/sp/{name}"

    @contextlib.contextmanager
    def capture(self, name: str) -> Iterator[Path]:
        """A fresh recording proxy on the same port for one journey; yields its --save-flows path.

        Stopped with SIGTERM on exit so it flushes; a proxy that had to be killed or wrote no
        file fails the journey.
        """
        directory = self.workdir / "captures" / name
        directory.mkdir(parents=True)
        flows = directory / "flows.mitm"
        cmd = rig.proxy_command(
            rig.PROXY_KIND, port=self.proxy_port, confdir=self.confdir, upstream_ca=self.pki.ca_cert,
            db=directory / "authtrace.db", save_flows=flows,
        )  # fmt: skip
        proc = rig.Proc(f"proxy[{name}]", cmd, directory / "proxy.log", env=rig.clean_env(), cwd=rig.REPO)
        self.procs["proxy"] = proc
        proc.start()
        records = rig.PROXY_KIND == "authtrace"
        failed = False
        try:
            proc.wait_until(
                lambda: rig.port_open(self.proxy_port) and (not records or "recording session" in proc.output()),
                "listening and recording",
            )
            yield flows
        except BaseException:
            failed = True
            raise
        finally:
            proc.stop(timeout=15)
            if not failed and (proc.killed or proc.returncode != 0 or not flows.exists()):
                raise RuntimeError(f"{proc.name} did not stop cleanly or wrote no flows\n{proc.tail()}")


@pytest.fixture(scope="package")
def saml_tools() -> dict[str, str]:
    fpm = idp.php_fpm()
    needs = {
        rig.CHROMIUM: "apt-get install chromium",
        idp.NGINX: "apt-get install nginx",
        str(idp.SSP_WWW / "_include.php"): "apt-get install simplesamlphp",
        XMLSEC1: "apt-get install xmlsec1",
    }
    absent = [f"{path} ({how})" for path, how in needs.items() if not Path(path).exists()]
    if fpm is None:
        absent.append("php-fpm (apt-get install php8.2-fpm)")
    else:
        modules = subprocess.run([fpm, "-m"], capture_output=True, text=True, timeout=30, check=False).stdout
        if "dom" not in modules.split():
            absent.append("PHP's xml extension for php-fpm (apt-get install php8.2-xml)")
    for module, how in (("playwright.sync_api", "playwright"), ("saml2", "pysaml2")):
        try:
            __import__(module)
        except ImportError:
            absent.append(f"Python package {how} (pip install -e '.[test]')")
    if absent:
        _missing("SAML end-to-end rig needs: " + "; ".join(absent))
    assert fpm is not None
    return {"fpm": fpm}


def _fetch_direct(url: str, ca: Path) -> bytes:
    """GET a *.test URL straight from the server on 127.0.0.1 (not through the proxy), TLS checked."""
    scheme_host, _, path = url.partition("://")[2].partition("/")
    host_port = scheme_host
    port = host_port.rsplit(":", 1)[1]
    request = urllib.request.Request(f"https://127.0.0.1:{port}/{path}", headers={"Host": host_port})
    context = ssl.create_default_context(cafile=str(ca))
    with urllib.request.urlopen(request, context=context, timeout=5) as answer:
        body: bytes = answer.read()
        return body


@pytest.fixture(scope="package")
def saml_stack(saml_tools: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[SamlStack]:
    started = time.monotonic()
    work = tmp_path_factory.mktemp("saml-e2e")
    logs = work / "logs"
    pki = rig.make_pki(work / "pki", hosts=(IDP_HOST, SP_HOST))
    idp_key, idp_cert = _self_signed(pki.signing_key.read_bytes(), IDP_HOST)
    sp_key, sp_cert = _self_signed(None, SP_HOST)
    keys = work / "keys"
    keys.mkdir()
    for name, data in (("idp.key", idp_key), ("idp.crt", idp_cert), ("sp.key", sp_key), ("sp.crt", sp_cert)):
        (keys / name).write_bytes(data)
        (keys / name).chmod(0o600)
    idp_port, sp_port, proxy_port = rig.free_ports(3)
    sp_base = f"https://{SP_HOST}:{sp_port}"
    registrations = [
        idp.SpRegistration(f"{sp_base}/sp/main", f"{sp_base}/acs/main"),
        idp.SpRegistration(f"{sp_base}/sp/short", f"{sp_base}/acs/short", assertion_lifetime=1),
        idp.SpRegistration(f"{sp_base}/sp/old", f"{sp_base}/acs/main"),  # the old registration, same ACS
    ]
    files = idp.write_idp(
        work / "idp", host=IDP_HOST, port=idp_port, tls_cert=pki.cert, tls_key=pki.key,
        signing_cert=keys / "idp.crt", signing_key=keys / "idp.key", sps=registrations, sp_cert_pem=sp_cert,
        secret_salt=secrets.token_hex(16),
    )  # fmt: skip
    confdir = work / "mitmproxy"
    mitm_ca = rig.ensure_mitm_ca(confdir)
    stack = SamlStack(
        idp=files, sp_base=sp_base, idp_cert_pem=idp_cert, sp_cert_pem=sp_cert, proxy_port=proxy_port,
        confdir=confdir, mitm_ca_spki=rig.spki_sha256_b64(mitm_ca), pki=pki, workdir=work,
    )  # fmt: skip
    stack.procs["php-fpm"] = rig.Proc("php-fpm", idp.fpm_command(files, saml_tools["fpm"]), logs / "php-fpm.log")
    stack.procs["nginx"] = rig.Proc("nginx", idp.nginx_command(files), logs / "nginx.log")
    try:
        failure = None
        try:
            stack.procs["php-fpm"].start()
            stack.procs["nginx"].start()
            idp_metadata = work / "idp-metadata.xml"

            def metadata_served() -> bool:
                try:
                    idp_metadata.write_bytes(_fetch_direct(files.metadata_url, pki.ca_cert))
                except OSError:
                    return False
                return True

            stack.procs["nginx"].wait_until(
                lambda: stack.procs["php-fpm"].running() and metadata_served(), "serving the IdP metadata", 30
            )
            stack.procs["sp"] = rig.Proc(
                "sp", [sys.executable, str(SP_APP)], logs / "sp.log", cwd=SP_APP.parent,
                env=rig.clean_env(
                    SP_PORT=str(sp_port), SP_BASE=sp_base, IDP_METADATA=str(idp_metadata), SP_KEY=str(keys / "sp.key"),
                    SP_CERT=str(keys / "sp.crt"), TLS_CERT=str(pki.cert), TLS_KEY=str(pki.key),
                ),
            )  # fmt: skip
            stack.procs["sp"].start().wait_for_line("SP READY", timeout=60)
        except (rig.StartupError, OSError) as exc:
            failure = str(exc)
        if failure:  # outside the except block: one clean message, no chained traceback
            pytest.fail(failure, pytrace=False)
        TIMINGS["rig"] = {"start": time.monotonic() - started}
        yield stack
    finally:
        for proc in reversed(list(stack.procs.values())):
            proc.stop()


@pytest.fixture(scope="package")
def saml_browser(saml_stack: SamlStack) -> Iterator[Any]:
    """One headless Debian Chromium behind the proxy port, trusting only mitmproxy's CA."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=rig.CHROMIUM,
            headless=True,
            proxy={"server": f"http://127.0.0.1:{saml_stack.proxy_port}"},
            args=[
                "--no-sandbox", "--disable-background-networking", "--disable-component-update", "--no-first-run",
                "--disable-sync", "--disable-quic", "--disable-features=HttpsUpgrades",
                f"--ignore-certificate-errors-spki-list={saml_stack.mitm_ca_spki}",
            ],
        )  # fmt: skip
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Outcome:
    """One journey: what the browser saw, and the decoded SAML traffic of its saved capture."""

    name: str
    seen: journeys.Seen
    flows: Path
    evidence: evidence.Evidence


SCENARIOS: dict[str, Callable[[Any, SamlStack], journeys.Seen]] = {
    "clean": lambda ctx, s: journeys.clean(ctx, s.sp_base, s.idp.metadata_url),
    "repost": lambda ctx, s: journeys.repost(ctx, s.sp_base),
    "audience": lambda ctx, s: journeys.audience_mismatch(ctx, s.sp_base),
    "expired": lambda ctx, s: journeys.expired(ctx, s.sp_base),
    "nopassive": lambda ctx, s: journeys.no_passive(ctx, s.sp_base),
}


@pytest.fixture(scope="package")
def saml_outcomes(saml_stack: SamlStack, saml_browser: Any) -> dict[str, Outcome | BaseException]:
    """Record every journey, one capture each, back to back; a failed journey keeps its exception
    for its own tests and the others still run."""
    outcomes: dict[str, Outcome | BaseException] = {}
    for name, journey in SCENARIOS.items():
        t0 = time.monotonic()
        try:
            with saml_stack.capture(name) as flows:
                t1 = time.monotonic()
                context = saml_browser.new_context(ignore_https_errors=False)
                context.set_default_timeout(20_000)
                try:
                    seen = journey(context, saml_stack)
                finally:
                    context.close()
                t2 = time.monotonic()
            # The journey's own signing certificates are not given: responses are checked
            # with what the capture's metadata teaches, requests with the SP's certificate.
            ev = evidence.read(flows, sp_certs=[saml_stack.sp_cert_pem])
            outcomes[name] = Outcome(name, seen, flows, ev)
            TIMINGS[name] = {"proxy up": t1 - t0, "journey": t2 - t1, "stop+decode": time.monotonic() - t2}
        except Exception as exc:
            proxy = saml_stack.procs.get("proxy")
            log = f"\n--- proxy log ---\n{proxy.tail(40)}" if proxy else ""
            failure = RuntimeError(f"SAML journey {name} failed: {exc!r}{log}")
            failure.__cause__ = exc
            outcomes[name] = failure
    return outcomes


def _outcome_fixture(name: str) -> Any:
    @pytest.fixture(scope="package", name=f"saml_{name}")
    def outcome(saml_outcomes: dict[str, Outcome | BaseException]) -> Outcome:
        result = saml_outcomes[name]
        if isinstance(result, BaseException):
            raise result
        return result

    return outcome


saml_clean, saml_repost, saml_audience, saml_expired, saml_nopassive = (_outcome_fixture(n) for n in SCENARIOS)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On failure, attach the tail of every server's log (nginx, php-fpm with SimpleSAMLphp's log, SP, proxy)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    stack = getattr(item, "funcargs", {}).get("saml_stack")
    if report.failed and isinstance(stack, SamlStack):
        for name, proc in stack.procs.items():
            report.sections.append((f"saml e2e {name} log ({proc.log})", proc.tail(30)))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TIMINGS:
        terminalreporter.section("saml e2e: seconds per phase")
        for name, phases in TIMINGS.items():
            terminalreporter.write_line(f"{name:<10} " + "  ".join(f"{k} {v:.1f}" for k, v in phases.items()))
