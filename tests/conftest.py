import pytest

from authtrace.addons.context import CaptureContext
from authtrace.store import db


@pytest.fixture
def engine(tmp_path):
    return db.open_db(str(tmp_path / "authtrace.db"))


@pytest.fixture
def ctx():
    return CaptureContext(b"\x01" * 32)
