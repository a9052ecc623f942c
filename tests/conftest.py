import os

import pytest

from authtrace.addons.context import CaptureContext
from authtrace.store import db

from pgserver import PgServer, PgUnavailable

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture
def engine(tmp_path):
    return db.open_db(str(tmp_path / "authtrace.db"))


@pytest.fixture
def ctx():
    return CaptureContext(b"\x01" * 32)


@pytest.fixture(scope="session")
def pg():
    """One real PostgreSQL server for the whole run (tests/pgserver.py). Without one: skipped
    locally, a failure in CI (the suite promises both backends there)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("psycopg is not installed (pip install -e '.[test]')")
    try:
        server = PgServer().start()
    except (PgUnavailable, OSError, KeyError) as e:  # KeyError: no postgres user
        _unavailable(f"PostgreSQL could not be started: {e}")
    yield server
    server.stop()


def _unavailable(msg: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def store_url(backend, tmp_path, request):
    """A new, empty store on each backend: a SQLite file path, or a fresh PostgreSQL database's URL."""
    if backend == "sqlite":
        return str(tmp_path / "store.db")
    return request.getfixturevalue("pg").database()


@pytest.fixture
def store(store_url):
    """An open store on each backend."""
    e = db.open_db(store_url)
    yield e
    e.dispose()
