""".mitm files: mitmproxy's FlowReader, streamed (flat memory); a corrupt tail keeps the flows before it."""
from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from mitmproxy import exceptions, http
from mitmproxy.io import FlowReader

from authtrace.addons.importers.sniff import CaptureError, Progress


def mitm_flows(path: str, progress: Progress | None) -> Iterator[Any]:
    """HTTP flows of the file; for each other flow (tcp, udp, dns), the count 1."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        reader = FlowReader(fh)
        n = 0
        try:
            for f in reader.stream():
                n += 1
                if progress and n % 1000 == 0:
                    progress(fh.tell(), size)
                if isinstance(f, http.HTTPFlow):
                    yield f
                else:
                    yield 1  # tcp/udp/dns flows: counted, not hops
        except exceptions.FlowReadException as e:
            raise CaptureError(f"{path} is damaged after {n} flow(s) ({e}); kept the flows before it.") from e
        except Exception as e:
            raise CaptureError(f"{path} is damaged after {n} flow(s) (unreadable flow: {type(e).__name__}); "
                               f"kept the flows before it.") from e
        if progress:
            progress(size, size)
