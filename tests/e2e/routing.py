"""TEST-ONLY mitmproxy addon: resolve ``*.test`` to 127.0.0.1, refuse everything else.

Load with ``mitmdump -s tests/e2e/routing.py`` (or after ``--`` of
``authtrace record``). Not part of the product.

- A browser behind a proxy never resolves names itself (it sends
  ``CONNECT idp.test:8443``), so the proxy must. For tunnels, ``server_connect``
  points the upstream connection at 127.0.0.1 and keeps the name as SNI, so the
  upstream certificate is still verified for ``idp.test``.
- Plain-HTTP absolute-form requests are rewritten in ``requestheaders`` (the
  Host header keeps the name). Rewriting them in ``server_connect`` instead
  broke keep-alive reuse.
- Any other host (Chromium still calls a few Google hosts) gets a local 403 and
  never goes upstream.

Inside tunnels ``flow.request.host`` is 127.0.0.1 after this addon ran; the
host a user sees is ``flow.request.pretty_host`` (the Host header).
"""

from __future__ import annotations

import logging

from mitmproxy import http
from mitmproxy.proxy import server_hooks

SUFFIX = ".test"
TARGET = "127.0.0.1"


def _is_test_host(host: str | None) -> bool:
    return bool(host) and host.rstrip(".").lower().endswith(SUFFIX)


def _refuse(flow: http.HTTPFlow, host: str) -> None:
    flow.response = http.Response.make(
        403, f"authtrace e2e routing: {host} is not a .test host\n", {"Content-Type": "text/plain"}
    )
    flow.metadata["e2e_refused"] = True


class E2ERouting:
    def http_connect(self, flow: http.HTTPFlow) -> None:
        # CONNECT host:port -> refuse non-test hosts before any tunnel exists.
        if not _is_test_host(flow.request.host):
            _refuse(flow, flow.request.host)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get("e2e_refused"):
            return
        if flow.request.method == "CONNECT":
            return
        host = flow.request.pretty_host
        if not _is_test_host(host):
            _refuse(flow, host)
            return
        # Plain HTTP in absolute form (no tunnel): resolve here, keep the Host header.
        if flow.request.scheme == "http" and _is_test_host(flow.request.host):
            host_header = flow.request.host_header
            flow.request.host = TARGET
            flow.request.host_header = host_header

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        server = data.server
        if server.address is None:
            return
        host, port = server.address
        if _is_test_host(host):
            if server.sni is None:
                server.sni = host  # certificate is checked for the name, not the IP
            server.address = (TARGET, port)
        elif host != TARGET:
            # Never reached for refused flows; a guard against anything else.
            logging.warning("e2e routing: refusing upstream connection to %s", host)
            server.error = f"e2e routing: {host} is not a .test host"


addons = [E2ERouting()]
