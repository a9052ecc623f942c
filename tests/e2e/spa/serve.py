"""Test-only static server of the e2e SPA over HTTPS (as spa.test).

Serves ``$SPA_BUNDLE`` (esbuild's app.js) at ``/app.js`` and the page for every other path (a
single-page app routes in the browser: /login, /callback). The page carries the app's settings
in a JSON script element, so one bundle fits any port.

Environment: SPA_PORT, SPA_BUNDLE (path of app.js), ISSUER, CLIENT_ID, TLS_CERT, TLS_KEY.
Prints "SPA READY <url>" once listening.
"""

from __future__ import annotations

import html
import json
import os
import sys
from pathlib import Path

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

PORT = int(os.environ["SPA_PORT"])
ORIGIN = f"https://spa.test:{PORT}"
BUNDLE = Path(os.environ["SPA_BUNDLE"])
CONFIG = {
    "issuer": os.environ["ISSUER"],
    "client_id": os.environ.get("CLIENT_ID", "spa"),
    "redirect_uri": f"{ORIGIN}/callback",
}
PAGE = (
    "<!doctype html><html><head><meta charset='utf-8'><title>authtrace e2e SPA</title>"
    f"<script id='config' type='application/json'>{html.escape(json.dumps(CONFIG), quote=False)}</script>"
    "<script type='module' src='/app.js'></script></head>"
    "<body><div id='root'></div></body></html>"
)


@Request.application
def app(request: Request) -> Response:
    if request.path == "/app.js":
        # cacheable, so the callback page does not load it again: captures stay small
        return Response(
            BUNDLE.read_bytes(), content_type="text/javascript; charset=utf-8", headers={"Cache-Control": "max-age=600"}
        )
    if request.path == "/favicon.ico":
        return Response(status=204)
    return Response(PAGE, content_type="text/html; charset=utf-8", headers={"Cache-Control": "no-store"})


def main() -> None:
    server = make_server(
        "127.0.0.1", PORT, app, threaded=True, ssl_context=(os.environ["TLS_CERT"], os.environ["TLS_KEY"])
    )
    print(f"SPA READY {ORIGIN}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
