"""The database a test's server runs on: a SQLite file in the test's directory, or, when
DASHBOARD_MCP_TEST_ENGINE=postgres (the second pass of scripts/test), a throwaway PostgreSQL
database on the server of DASHBOARD_MCP_TEST_POSTGRES, dropped when the tests end."""

from __future__ import annotations

import atexit
import os
import uuid
from pathlib import Path

ENGINE = os.environ.get("DASHBOARD_MCP_TEST_ENGINE", "sqlite")
ADMIN_URL = os.environ.get("DASHBOARD_MCP_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test")
_made: list[str] = []


def _with_database(url: str, name: str) -> str:
    """`url` with its database name replaced by `name` (query string kept)."""
    scheme, rest = url.split("://", 1)
    query = ""
    if "?" in rest:
        rest, query = rest.split("?", 1)
        query = "?" + query
    authority = rest.split("/", 1)[0]
    return f"{scheme}://{authority}/{name}{query}"


def database(tmp: Path) -> str:
    """What `--db` takes for a new, empty database of the engine under test."""
    if ENGINE != "postgres":
        return str(tmp / "usage.db")
    import psycopg

    name = f"dmcp_py_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    _made.append(name)
    return _with_database(ADMIN_URL, name)


@atexit.register
def _drop() -> None:
    if not _made:
        return
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as c:
        for name in _made:
            c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
