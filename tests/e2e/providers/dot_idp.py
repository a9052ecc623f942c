"""Test-only OpenID provider: django-oauth-toolkit (issue 11: a second implementation).

A one-file Django project: django-oauth-toolkit's own views under ``/o/`` (authorize with its
consent template, token, userinfo, discovery, JWKS) with OIDC on, PKCE required; Django's
``LoginView`` for the login form; SQLite in a file (the server is threaded). On start it
migrates, creates the user and the client (a confidential client, ``client_secret_basic``,
RS256 id tokens), then serves HTTPS with werkzeug (Django's runserver has no TLS).

Environment: IDP_PORT (issuer https://dot.test:IDP_PORT/o), DOT_DB (SQLite file),
REDIRECT_URIS (space separated), CLIENT_ID, CLIENT_SECRET, SIGNING_KEY (PEM RSA),
TLS_CERT, TLS_KEY. The one user is ``alice`` with the password ``correct horse``.
Prints "DOT IDP READY <issuer>" once listening.
"""

from __future__ import annotations

import os
import secrets
import sys

import django
from django.conf import settings
from django.urls import include, path

PORT = int(os.environ["IDP_PORT"])
ORIGIN = f"https://dot.test:{PORT}"
ISSUER = f"{ORIGIN}/o"

LOGIN_TEMPLATE = """<!doctype html><html><head><meta charset="utf-8"><title>Sign in to dot.test</title></head>
<body><h1>Sign in to dot.test</h1>{% if form.errors %}<p id="error">Wrong user name or password.</p>{% endif %}
<form method="post">{% csrf_token %}<input type="hidden" name="next" value="{{ next }}">
<input name="username" autocomplete="username"> <input name="password" type="password">
<button type="submit">Sign in</button></form></body></html>"""

with open(os.environ["SIGNING_KEY"]) as f:
    SIGNING_KEY_PEM = f.read()

settings.configure(
    DEBUG=False,
    SECRET_KEY=secrets.token_urlsafe(32),
    ALLOWED_HOSTS=["dot.test"],
    ROOT_URLCONF=__name__,
    USE_TZ=True,
    INSTALLED_APPS=[
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "oauth2_provider",
    ],
    MIDDLEWARE=[
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["DOT_DB"]}},
    TEMPLATES=[
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "OPTIONS": {
                "context_processors": ["django.template.context_processors.request"],
                "loaders": [
                    ("django.template.loaders.locmem.Loader", {"registration/login.html": LOGIN_TEMPLATE}),
                    "django.template.loaders.app_directories.Loader",
                ],
            },
        }
    ],
    LOGIN_URL="/accounts/login/",
    SESSION_COOKIE_SECURE=True,
    CSRF_COOKIE_SECURE=True,
    SESSION_COOKIE_NAME="dot_session",
    PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],  # test-only: fast start and login
    OAUTH2_PROVIDER={
        "OIDC_ENABLED": True,
        "OIDC_ISS_ENDPOINT": ISSUER,
        "OIDC_RSA_PRIVATE_KEY": SIGNING_KEY_PEM,
        "PKCE_REQUIRED": True,
        "ALLOWED_REDIRECT_URI_SCHEMES": ["https"],
        "SCOPES": {"openid": "OpenID Connect", "profile": "Your profile", "email": "Your e-mail address"},
        "OAUTH2_VALIDATOR_CLASS": "__main__.Validator",
    },
)
django.setup()

from django.contrib.auth import views as auth_views  # noqa: E402  (needs settings)
from oauth2_provider.oauth2_validators import OAuth2Validator  # noqa: E402


class Validator(OAuth2Validator):
    """Standard claims by scope (django-oauth-toolkit gives only ``sub`` unless told)."""

    oidc_claim_scope = {**OAuth2Validator.oidc_claim_scope}

    def get_additional_claims(self, request):
        user = request.user
        return {
            "name": f"User {user.username}",
            "preferred_username": user.username,
            "email": f"{user.username}@example.test",
            "email_verified": True,
        }


urlpatterns = [
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("accounts/login/", auth_views.LoginView.as_view()),
]


def prepare() -> None:
    """Create the tables, the user and the client (idempotent)."""
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from oauth2_provider.models import Application

    call_command("migrate", verbosity=0, interactive=False)
    user, _ = User.objects.get_or_create(username="alice")
    user.set_password("correct horse")
    user.save()
    Application.objects.filter(client_id=os.environ.get("CLIENT_ID", "authtrace-rp")).delete()
    Application.objects.create(
        name="authtrace e2e RP",
        client_id=os.environ.get("CLIENT_ID", "authtrace-rp"),
        client_secret=os.environ.get("CLIENT_SECRET", "authtrace-rp-secret"),  # stored hashed
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=" ".join(os.environ["REDIRECT_URIS"].split()),
        algorithm=Application.RS256_ALGORITHM,
        skip_authorization=False,
    )


def main() -> None:
    from django.core.wsgi import get_wsgi_application
    from werkzeug.serving import make_server

    prepare()
    httpd = make_server(
        "127.0.0.1", PORT, get_wsgi_application(), threaded=True,
        ssl_context=(os.environ["TLS_CERT"], os.environ["TLS_KEY"]),
    )  # fmt: skip
    print(f"DOT IDP READY {ISSUER}", flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
