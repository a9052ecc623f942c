"""The published JSON formats (docs/report.schema.json, docs/diff.schema.json), validated wherever a test
reads authtrace's JSON."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

DOCS = Path(__file__).resolve().parent.parent / "docs"
SCHEMA = DOCS / "report.schema.json"


@lru_cache(maxsize=4)
def _validator(name: str = "report") -> jsonschema.Draft202012Validator:
    schema = json.loads((DOCS / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def valid(obj: Any, name: str = "report") -> Any:
    """`obj`, after checking it against the published schema docs/<name>.schema.json (every error
    listed on failure): `report` (check/report --json) or `diff` (diff --json)."""
    errors = sorted(_validator(name).iter_errors(obj), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:20])
    return obj
