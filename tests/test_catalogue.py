"""Tests for the identity-provider error catalogue (reports/catalogue.py)."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import pytest

try:
    from authtrace.reports import catalogue
except ImportError:  # package not installed yet: load the file directly
    _path = Path(__file__).resolve().parent.parent / "reports" / "catalogue.py"
    _spec = importlib.util.spec_from_file_location("authtrace_catalogue", _path)
    assert _spec is not None and _spec.loader is not None
    catalogue = importlib.util.module_from_spec(_spec)
    sys.modules[_spec.name] = catalogue  # dataclasses need the module registered
    _spec.loader.exec_module(catalogue)

AADSTS = catalogue.AADSTS
OAUTH_ERRORS = catalogue.OAUTH_ERRORS
Entry = catalogue.Entry
aadsts_codes = catalogue.aadsts_codes
aadsts_codes_in_body = catalogue.aadsts_codes_in_body
explain = catalogue.explain

MANDATORY_AADSTS = (
    54005, 70008, 50011, 500113, 9002313, 50148, 501481, 700016, 7000215,
    65001, 50076, 50079, 53003, 50058, 500011, 700024, 50173, 90009, 900144,
    700005, 900561, 50196, 9002326,
)

MANDATORY_OAUTH = (
    # RFC 6749
    "invalid_request", "unauthorized_client", "access_denied",
    "unsupported_response_type", "invalid_scope", "server_error",
    "temporarily_unavailable", "invalid_client", "invalid_grant",
    "unsupported_grant_type",
    # RFC 6750
    "invalid_token", "insufficient_scope",
    # OIDC Core 3.1.2.6
    "interaction_required", "login_required", "account_selection_required",
    "consent_required", "invalid_request_uri", "invalid_request_object",
    "request_not_supported", "request_uri_not_supported",
    "registration_not_supported",
    # RFC 8628
    "authorization_pending", "slow_down", "expired_token",
    # RFC 8707, RFC 9449
    "invalid_target", "invalid_dpop_proof", "use_dpop_nonce",
)


def _assert_complete(entry: Entry) -> None:
    assert isinstance(entry, Entry)
    for field in ("code", "title", "meaning", "next_step"):
        value = getattr(entry, field)
        assert isinstance(value, str) and value.strip(), (entry.code, field)
    assert isinstance(entry.causes, tuple) and entry.causes, entry.code
    assert all(isinstance(c, str) and c.strip() for c in entry.causes), entry.code


@pytest.mark.parametrize("code", MANDATORY_AADSTS)
def test_mandatory_aadsts_present_and_complete(code: int) -> None:
    entry = AADSTS[code]
    _assert_complete(entry)
    assert entry.code == f"AADSTS{code}"


@pytest.mark.parametrize("error", MANDATORY_OAUTH)
def test_mandatory_oauth_errors_present_and_complete(error: str) -> None:
    entry = OAUTH_ERRORS[error]
    _assert_complete(entry)
    assert entry.code == error


def test_every_entry_is_complete_and_keyed_by_its_code() -> None:
    for number, entry in AADSTS.items():
        _assert_complete(entry)
        assert entry.code == f"AADSTS{number}"
    for key, entry in OAUTH_ERRORS.items():
        _assert_complete(entry)
        assert key == entry.code == key.lower()
    # No code was listed twice (the dicts are built from tuples of entries).
    assert len(AADSTS) + len(catalogue.B2C) == len(catalogue._AADSTS_ENTRIES)
    assert len(OAUTH_ERRORS) == len(catalogue._OAUTH_ENTRIES)


def test_entry_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        AADSTS[54005].title = "changed"  # type: ignore[misc]


def test_known_meanings() -> None:
    assert "already redeemed" in AADSTS[54005].title.lower()
    assert "single-page application" in AADSTS[9002326].meaning.lower()
    assert "code_verifier" in AADSTS[50148].title
    assert "post" in AADSTS[900561].title.lower()
    assert "loop" in AADSTS[50196].title.lower()


def test_aadsts_codes_in_order_without_duplicates() -> None:
    text = (
        "AADSTS50011: The redirect URI ... AADSTS50011 ... AADSTS54005"
    )
    assert aadsts_codes(text) == [50011, 54005]


def test_aadsts_codes_empty_and_none() -> None:
    assert aadsts_codes("") == []
    assert aadsts_codes(None) == []
    assert aadsts_codes("invalid_grant, no Entra code here") == []


def test_aadsts_codes_in_body() -> None:
    body = {
        "error": "invalid_grant",
        "error_description": "AADSTS70002: Error validating credentials. "
        "AADSTS50011: The reply address ...\r\nTrace ID: x",
        "error_codes": [70002, 50011],
    }
    assert aadsts_codes_in_body(body) == [70002, 50011]
    assert aadsts_codes_in_body({"error_description": "AADSTS54005: ..."}) == [54005]
    assert aadsts_codes_in_body({"error_codes": ["9002326", None]}) == [9002326]
    assert aadsts_codes_in_body(None) == []
    assert aadsts_codes_in_body({}) == []


def test_explain_prefers_aadsts() -> None:
    assert explain("invalid_grant", 54005) is AADSTS[54005]
    assert explain(error="invalid_grant", aadsts=54005).code == "AADSTS54005"


def test_explain_accepts_aadsts_strings() -> None:
    assert explain(aadsts="AADSTS50011") is AADSTS[50011]
    assert explain(aadsts="50011") is AADSTS[50011]


def test_explain_falls_back_to_oauth_error() -> None:
    assert explain("invalid_grant", 1) is OAUTH_ERRORS["invalid_grant"]
    assert explain("invalid_grant") is OAUTH_ERRORS["invalid_grant"]


def test_explain_is_case_insensitive() -> None:
    assert explain("INVALID_GRANT") is OAUTH_ERRORS["invalid_grant"]
    assert explain(" Login_Required ") is OAUTH_ERRORS["login_required"]


def test_unknown_codes_give_none() -> None:
    assert explain() is None
    assert explain("no_such_error") is None
    assert explain(aadsts=1) is None
    assert explain("no_such_error", 1) is None
    assert explain(aadsts="not a code") is None
    assert AADSTS.get(1) is None
    assert OAUTH_ERRORS.get("no_such_error") is None
