"""Test-only OAuth 2.0 device authorization grant client (RFC 8628), as a CLI or TV app runs it.

Its whole back channel uses ``requests``, so it goes through the recording proxy when started with
HTTPS_PROXY and REQUESTS_CA_BUNDLE (mitmproxy's CA). It prints one JSON object per line, which is
how the test follows it (no fixed sleeps):

  {"event": "authorization", "user_code", "verification_uri", "verification_uri_complete", "expires_in", "interval"}
  {"event": "poll", "n", "status", "error"}              one per token request
  {"event": "done", "ok", "error", "error_description", "polls", "userinfo_status", "sub"}

Environment: ISSUER, CLIENT_ID, SCOPE (default "openid profile email"), POLL_INTERVAL in seconds
(default 0.3: oidc-provider sends no ``interval`` and does not enforce ``slow_down``; RFC 8628's
default of 5 s would only make the test slow), MAX_SECONDS (default 60).
"""

from __future__ import annotations

import json
import os
import sys
import time

import requests

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def emit(**event: object) -> None:
    print(json.dumps(event), flush=True)


def main() -> int:
    issuer = os.environ["ISSUER"]
    client_id = os.environ["CLIENT_ID"]
    interval = float(os.environ.get("POLL_INTERVAL", "0.3"))
    deadline = time.monotonic() + float(os.environ.get("MAX_SECONDS", "60"))
    http = requests.Session()
    meta = http.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()
    auth = http.post(
        meta["device_authorization_endpoint"],
        data={"client_id": client_id, "scope": os.environ.get("SCOPE", "openid profile email")},
        timeout=10,
    )
    auth.raise_for_status()
    grant = auth.json()
    emit(
        event="authorization",
        user_code=grant["user_code"],
        verification_uri=grant["verification_uri"],
        verification_uri_complete=grant.get("verification_uri_complete"),
        expires_in=grant.get("expires_in"),
        interval=grant.get("interval"),
    )
    polls = 0
    while time.monotonic() < deadline:
        time.sleep(interval)
        resp = http.post(
            meta["token_endpoint"],
            data={"grant_type": DEVICE_GRANT, "device_code": grant["device_code"], "client_id": client_id},
            timeout=10,
        )
        polls += 1
        body = resp.json()
        emit(event="poll", n=polls, status=resp.status_code, error=body.get("error"))
        if resp.status_code == 200:
            info = http.get(
                meta["userinfo_endpoint"], headers={"Authorization": f"Bearer {body['access_token']}"}, timeout=10
            )
            emit(event="done", ok=True, polls=polls, userinfo_status=info.status_code, sub=info.json().get("sub"))
            return 0
        if body.get("error") == "slow_down":
            interval += 5
        elif body.get("error") != "authorization_pending":
            emit(
                event="done",
                ok=False,
                polls=polls,
                error=body.get("error"),
                error_description=body.get("error_description"),
            )
            return 1
    emit(event="done", ok=False, polls=polls, error="client_gave_up")
    return 1


if __name__ == "__main__":
    sys.exit(main())
