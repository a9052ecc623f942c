"""Which client sent a request, as a person names it, from its user agent: 'Chrome 156', 'Edge 141',
'embedded webview', 'curl 8.5'. The table is data: the first pattern that matches names the client."""
from __future__ import annotations

import re

# (pattern, name) in order: the first that matches a user agent names the client
CLIENTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bTeams/([\d.]+)"), "Microsoft Teams {}"),
    (re.compile(r"\bEdg(?:A|iOS)?/(\d+)"), "Edge {}"),
    (re.compile(r"\bWebView2\b|\bwv\)"), "embedded webview"),
    (re.compile(r"\bElectron/(\d+)"), "Electron {}"),
    (re.compile(r"\bFirefox/(\d+)"), "Firefox {}"),
    (re.compile(r"\bHeadlessChrome/(\d+)"), "headless Chrome {}"),
    (re.compile(r"\bChrome/(\d+)"), "Chrome {}"),
    (re.compile(r"\bVersion/(\d+)[\d.]* .*Safari/"), "Safari {}"),
    (re.compile(r"^python-requests/([\d.]+)"), "python-requests {}"),
    (re.compile(r"^python-httpx/([\d.]+)"), "httpx {}"),
    (re.compile(r"^Python-urllib/([\d.]+)"), "Python urllib {}"),
    (re.compile(r"^curl/([\d.]+)"), "curl {}"),
    (re.compile(r"^node(?:-fetch)?\b|^undici\b|^axios/"), "Node.js"),
    (re.compile(r"^okhttp/([\d.]+)"), "OkHttp {}"),
    (re.compile(r"^Go-http-client/([\d.]+)"), "Go {}"),
    (re.compile(r"\bMSAL\.\w+|\bMicrosoft\.Identity"), "MSAL"),
)

def client_of(user_agent: str | None) -> str:
    """A user agent as a person names the client: 'Chrome 156', 'embedded webview', 'curl 8.5'."""
    if not user_agent:
        return "no user agent"
    for rx, name in CLIENTS:
        m = rx.search(user_agent)
        if m:
            return name.format(m.group(1).split(".")[0] if "{}" in name and m.groups() else "").strip()
    return user_agent.split(" ", 1)[0][:40]
