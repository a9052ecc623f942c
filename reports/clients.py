"""Which client sent a request, as a person names it, from its user agent: 'Chrome 156', 'Edge 141,
embedded webview (WebView2)', 'python-requests 2.32', 'curl 8.5'. The tables are data: the first entry
that matches names the browser family or library; a webview or in-app browser is said beside it."""
from __future__ import annotations

import re

WEBVIEWS = ((re.compile(r";\s*wv\)"), "Android WebView"), (re.compile(r"\bElectron/"), "Electron"),
            (re.compile(r"\bTeams/"), "Teams"), (re.compile(r"\bWebView2\b|\bEdgeWebView/"), "WebView2"),
            (re.compile(r"\bFBAN/|\bFBAV/|\bInstagram\b|\bLinkedInApp\b"), "in-app browser"))
BROWSERS = (("EdgA", "Edge"), ("EdgiOS", "Edge"), ("Edg", "Edge"), ("OPR", "Opera"), ("SamsungBrowser", "Samsung"),
            ("FxiOS", "Firefox"), ("Firefox", "Firefox"), ("CriOS", "Chrome"), ("HeadlessChrome", "HeadlessChrome"),
            ("Chrome", "Chrome"))
LIBRARIES = ((re.compile(r"^python-requests/(\d+(?:\.\d+)?)"), "python-requests {}"),
             (re.compile(r"^python-httpx/(\d+(?:\.\d+)?)"), "httpx {}"),
             (re.compile(r"^Python-urllib/(\d+(?:\.\d+)?)"), "Python urllib {}"),
             (re.compile(r"^curl/(\d+(?:\.\d+)?)"), "curl {}"),
             (re.compile(r"^okhttp/(\d+(?:\.\d+)?)"), "OkHttp {}"),
             (re.compile(r"^Go-http-client/(\d+(?:\.\d+)?)"), "Go {}"),
             (re.compile(r"^(?:node(?:-fetch)?|undici|axios)\b"), "Node.js"),
             (re.compile(r"\bMSAL\.\w+|\bMicrosoft\.Identity"), "MSAL"))


def client_of(user_agent: str | None) -> str:
    """'Chrome 156', 'Edge 120, embedded webview (WebView2)', 'python-requests 2.32', 'no user agent'."""
    if not user_agent:
        return "no user agent"
    ua = user_agent
    for rx, name in LIBRARIES:
        m = rx.search(ua)
        if m:
            return name.format(*m.groups()) if m.groups() else name
    webview = next((name for rx, name in WEBVIEWS if rx.search(ua)), None)
    if webview is None and re.search(r"\((iPhone|iPad)", ua) and "Safari/" not in ua:
        webview = "iOS WKWebView"
    family = None
    for token, name in BROWSERS:
        m = re.search(rf"\b{token}/(\d+)", ua)
        if m:
            family = f"{name} {m.group(1)}"
            break
    if family is None:
        m = re.search(r"Version/(\d+)[\d.]* (Mobile/\S+ )?Safari/", ua)
        family = f"Safari {m.group(1)}" if m else ua.split(" ", 1)[0][:60]
    return family + (f", embedded webview ({webview})" if webview else "")
