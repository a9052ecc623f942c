"""TEST-ONLY SAML service provider: pysaml2 in Flask, HTTPS, three entity ids, one process.

Entities (``SP_BASE`` = https://saml-sp.test:PORT):
- ``main``  ``{SP_BASE}/sp/main``,  ACS ``/acs/main``: the ordinary app;
- ``short`` ``{SP_BASE}/sp/short``, ACS ``/acs/short``: registered at the IdP with a 1 s assertion lifetime;
- ``old``   ``{SP_BASE}/sp/old``, whose ACS is ``/acs/main``: an old registration of the same app, so a
  sign-in started under it comes back to ``main``, which expects its own entity id as audience.

Routes: ``GET /login/<entity>[?passive=1]`` sends a signed AuthnRequest (HTTP-Redirect, RSA-SHA256);
``POST /acs/<entity>`` checks the Response with pysaml2 (signatures with Debian's xmlsec1,
InResponseTo against the requests this process sent, audience, times, Destination) and answers 200
"signed in" or 403 with the exception's name. Outstanding requests are dropped once answered, so a
re-posted Response is unsolicited. Prints ``SP READY`` when listening.

Environment: SP_PORT, SP_BASE, IDP_METADATA (file), SP_KEY, SP_CERT, TLS_CERT, TLS_KEY.
"""

from __future__ import annotations

import html
import os
import threading

from flask import Flask, redirect, request
from flask.typing import ResponseReturnValue
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.saml import NAMEID_FORMAT_TRANSIENT
from saml2.sigver import get_xmlsec_binary
from saml2.xmldsig import SIG_RSA_SHA256
from werkzeug.serving import make_server

BASE = os.environ["SP_BASE"]
ACS = {"main": "main", "short": "short", "old": "main"}  # entity -> the ACS its requests name

app = Flask(__name__)
_lock = threading.Lock()
OUTSTANDING: dict[str, str] = {}  # AuthnRequest ID -> entity that sent it


def _client(name: str) -> Saml2Client:
    config = {
        "entityid": f"{BASE}/sp/{name}",
        "service": {
            "sp": {
                "endpoints": {"assertion_consumer_service": [(f"{BASE}/acs/{ACS[name]}", BINDING_HTTP_POST)]},
                "allow_unsolicited": False,
                "authn_requests_signed": True,
                "want_assertions_signed": True,
                "want_response_signed": True,
                "name_id_format": NAMEID_FORMAT_TRANSIENT,
                "name_id_policy_format": NAMEID_FORMAT_TRANSIENT,  # sent as NameIDPolicy/@Format
            }
        },
        "key_file": os.environ["SP_KEY"],
        "cert_file": os.environ["SP_CERT"],
        "xmlsec_binary": get_xmlsec_binary(["/usr/bin"]),
        "metadata": {"local": [os.environ["IDP_METADATA"]]},
        "accepted_time_diff": 0,
        "allow_unknown_attributes": True,
    }
    sp_config = SPConfig()
    sp_config.load(config)
    return Saml2Client(config=sp_config)


CLIENTS = {name: _client(name) for name in ACS}
IDP_ENTITY = next(iter(CLIENTS["main"].metadata.identity_providers()))


@app.get("/health")
def health() -> str:
    return "ok"


@app.get("/login/<name>")
def login(name: str) -> ResponseReturnValue:
    client = CLIENTS[name]
    extra = {"is_passive": "true"} if request.args.get("passive") else {}
    reqid, info = client.prepare_for_authenticate(
        entityid=IDP_ENTITY, relay_state=f"/home/{name}", binding=BINDING_HTTP_REDIRECT,
        sigalg=SIG_RSA_SHA256, sign=True, **extra,
    )  # fmt: skip
    with _lock:
        OUTSTANDING[reqid] = name
    location = dict(info["headers"])["Location"]
    return redirect(location, code=302)


@app.post("/acs/<name>")
def acs(name: str) -> ResponseReturnValue:
    client = CLIENTS[name]
    with _lock:
        outstanding = dict(OUTSTANDING)
    try:
        result = client.parse_authn_request_response(
            request.form.get("SAMLResponse", ""), BINDING_HTTP_POST, outstanding=outstanding
        )
    except Exception as exc:
        return f"<h1>SAML response rejected</h1><p>{html.escape(type(exc).__name__)}: {html.escape(str(exc))}</p>", 403
    # pysaml2 may return a response without an assertion when a check (e.g. Destination) failed
    if result is None or getattr(result, "assertion", None) is None:
        return "<h1>SAML response rejected</h1><p>no valid assertion</p>", 403
    with _lock:
        OUTSTANDING.pop(result.in_response_to, None)
    return f"<h1>signed in</h1><p id='entity'>{html.escape(client.config.entityid)}</p>", 200


if __name__ == "__main__":
    server = make_server(
        "127.0.0.1", int(os.environ["SP_PORT"]), app, threaded=True,
        ssl_context=(os.environ["TLS_CERT"], os.environ["TLS_KEY"]),
    )  # fmt: skip
    print(f"SP READY {BASE}", flush=True)  # the socket is bound and listening now
    server.serve_forever()
