"""TEST-ONLY name resolution for rig processes that do NOT use the proxy.

Behind the proxy, the proxy resolves ``*.test`` (routing.py). A process of the rig that talks to
the other servers directly (the second relying party of scenario e, the API's key fetches) needs
the names itself: with ``E2E_RESOLVE_TEST_HOSTS=127.0.0.1`` in its environment,
``socket.getaddrinfo`` answers that address for every ``*.test`` name. urllib3 (under requests)
looks names up through ``socket.getaddrinfo`` at connect time and keeps the name for SNI and the
certificate check, so TLS is still verified for ``idp.test`` (point REQUESTS_CA_BUNDLE at the
rig's own throwaway CA, not mitmproxy's).
"""

from __future__ import annotations

import os
import socket

ENV_VAR = "E2E_RESOLVE_TEST_HOSTS"


def resolve_test_hosts(address: str) -> None:
    """Make socket.getaddrinfo answer address for every ``*.test`` name in this process."""
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if isinstance(name, str) and name.rstrip(".").lower().endswith(".test"):
            host = address
        return real_getaddrinfo(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo


def install_from_env() -> str | None:
    """resolve_test_hosts($E2E_RESOLVE_TEST_HOSTS) when that is set; returns the address."""
    address = os.environ.get(ENV_VAR)
    if address:
        resolve_test_hosts(address)
    return address
