"""Fixtures for the relayer: its job store on SQLite and on PostgreSQL, and a PostgreSQL database to share.

PostgreSQL comes from `BME_TEST_POSTGRES_URL` when set (its tables are dropped and re-created by the tests);
otherwise, on a machine with the Debian/Ubuntu PostgreSQL tools and as root, the first local cluster is
started if needed and a role and database `bme_test` are created in it (idempotently). Without either, the
PostgreSQL tests are skipped and the reason is printed at the end of the run; with
`BME_TEST_REQUIRE_POSTGRES=1` (for CI) they fail instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
from sqlalchemy import MetaData, create_engine

POSTGRES_ENV = "BME_TEST_POSTGRES_URL"
REQUIRE_ENV = "BME_TEST_REQUIRE_POSTGRES"
ROLE = DATABASE = "bme_test"
_unavailable: list[str] = []


def _no_postgres(reason: str) -> NoReturn:
    if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
        pytest.fail(f"{reason} ({REQUIRE_ENV} is set)", pytrace=False)
    if reason not in _unavailable:
        _unavailable.append(reason)
    pytest.skip(reason)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for reason in _unavailable:
        terminalreporter.write_line(f"PostgreSQL tests skipped: {reason}", yellow=True)


def _local_cluster_url() -> str:
    """Starts the first local cluster (Debian's postgresql-common tools) and creates the test role and db."""
    lines = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    if not lines:
        _no_postgres(f"no PostgreSQL cluster exists (pg_lsclusters lists none); set {POSTGRES_ENV}")
    version, cluster, port, status = lines[0].split()[:4]
    if status != "online":
        subprocess.run(["pg_ctlcluster", version, cluster, "start"], check=True, capture_output=True)

    def psql(sql: str, database: str = "postgres") -> str:
        return subprocess.run(
            ["su", "postgres", "-c", f"psql -p {port} -d {database} -tAq -v ON_ERROR_STOP=1"],
            input=sql,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    deadline = time.monotonic() + 30
    while True:
        try:
            psql("SELECT 1")
            break
        except subprocess.CalledProcessError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    psql(
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN "
        f"CREATE ROLE {ROLE} LOGIN PASSWORD '{ROLE}'; END IF; END $$;"
    )
    if psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'") != "1":
        psql(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")
    return f"postgresql://{ROLE}:{ROLE}@127.0.0.1:{port}/{DATABASE}"


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The URL of a PostgreSQL database the tests may wipe."""
    url = os.environ.get(POSTGRES_ENV)
    if url:
        return url
    if shutil.which("pg_ctlcluster") is None or shutil.which("pg_lsclusters") is None:
        _no_postgres(f"they need {POSTGRES_ENV}, or a local cluster managed by pg_ctlcluster")
    if os.geteuid() != 0:
        _no_postgres(f"they need {POSTGRES_ENV}, or root to start the local cluster")
    try:
        return _local_cluster_url()
    except (subprocess.CalledProcessError, OSError, ValueError) as exc:
        detail = (getattr(exc, "stderr", None) or str(exc)).strip()
        _no_postgres(f"could not prepare a local PostgreSQL database ({detail}); set {POSTGRES_ENV}")


def reset_postgres(url: str) -> str:
    """Drops every table in the database at `url` (the relayer's and Alembic's); returns `url`."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        tables = MetaData()
        tables.reflect(engine)
        tables.drop_all(engine)
    finally:
        engine.dispose()
    return url


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """An empty PostgreSQL database for one test."""
    return reset_postgres(postgres_server)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: Any, tmp_path: Path) -> Iterator[str]:
    """The job store's database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'relayer.db'}"
    else:
        yield reset_postgres(request.getfixturevalue("postgres_server"))
