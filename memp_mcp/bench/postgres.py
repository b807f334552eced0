"""Scratch PostgreSQL databases for the benchmarks: created on a server given by URL, dropped after."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit


@contextmanager
def scratch_database(server_url: str, purpose: str, template: str | None = None) -> Iterator[str]:
    """The URL of a new, empty database on the server at `server_url` (whose user may create databases),
    named after `purpose` and this process; dropped on exit, even by a failed run. With `template` (the
    URL of a database on the same server, which nothing else may be connected to) it starts as a copy
    of that one."""
    import psycopg

    name = f"memp_{purpose}_{os.getpid()}"
    url = urlunsplit(urlsplit(server_url)._replace(path="/" + name))
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        copied = f" TEMPLATE {urlsplit(template).path.lstrip('/')} STRATEGY FILE_COPY" if template else ""
        admin.execute(f"CREATE DATABASE {name}{copied}")
    try:
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
