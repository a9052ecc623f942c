"""Alembic revisions of the store's schema (run by `store/migrate.py`, one file per revision in
`versions/`). A revision sets `automatic = True` when opening a store may run it unasked: it only
adds what older versions ignore. One that rewrites data sets False and runs by `authtrace db upgrade`."""

HEAD = "0002"  # the newest revision: what a store opened by this version is brought to (tests/test_migrate.py
# holds it equal to Alembic's head of versions/)
