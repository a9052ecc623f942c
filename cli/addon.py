"""The file to load into mitmproxy: `mitmdump -s "$(authtrace addon-path)"` (also mitmweb, mitmproxy).

It assembles the addons of every floor: capture (addons/capture.py), the proxied browser or app
(addons/launch.py), the decoded content view (addons/views.py), and live findings over the checks
(authtrace.live). `authtrace record` loads this same file.
"""
from __future__ import annotations

import sys

try:
    from authtrace.addons.capture import AuthTrace
    from authtrace.addons.launch import Launcher
    from authtrace.addons.views import ContentViews
    from authtrace.live import LiveFindings
except ModuleNotFoundError as e:  # `-s` into a mitmproxy whose Python lacks authtrace (a standalone binary)
    raise ModuleNotFoundError(
        f"authtrace: {e.name} cannot be imported by the Python that runs this mitmproxy ({sys.executable}): "
        "install authtrace into that environment (pip install <authtrace checkout or wheel>; with pipx: "
        "pipx inject mitmproxy <checkout or wheel>), or run `authtrace record`; mitmproxy's standalone "
        "binaries cannot load it.",
        name=e.name) from e

addons = [AuthTrace(), Launcher(), ContentViews(), LiveFindings()]
