"""What kind of capture a file is: HAR (JSON) or a mitmproxy flow file (tnetstring). One sentence when neither."""
from __future__ import annotations

import os
from collections.abc import Callable

Progress = Callable[[int, int], None]  # (done, total): a progress bar's callback


class CaptureError(Exception):
    """A capture file is unusable or damaged; the message is one sentence naming file and problem."""


def sniff(path: str) -> str:
    if not os.path.exists(path):
        raise CaptureError(f"{path}: no such file.")
    if os.path.isdir(path):
        raise CaptureError(f"{path} is a directory, not a capture file (give a .har or .mitm file).")
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError as e:
        raise CaptureError(f"{path}: cannot be read ({e.strerror}).") from e
    if not head:
        raise CaptureError(f"{path} is empty: not a HAR or mitmproxy flow file.")
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"{"):
        return "har"
    if head[:1].isdigit() and b":" in head[:12]:  # tnetstring: "<len>:<data>"
        return "mitm"
    raise CaptureError(f"{path} is not a capture: expected a HAR (JSON) or a mitmproxy flow file.")
