"""The relayer database's schema migrations (Alembic), run by the relayer on start and by `bme relayer db`.

`upgrade_to_head` brings a database to the newest revision in one transaction. A database made before
migrations existed (its tables created from the models, no `alembic_version` table) is adopted first: it
gains the columns added before then if it lacks them, which gives it the baseline revision's schema, and is
stamped at that revision; the revisions after it then run as on any other database.

Relayers sharing a PostgreSQL database upgrade it under an advisory lock, so when several start together one
runs the migrations and the others wait, then find the database at the head revision. On SQLite the upgrade
holds the database's write lock from its first statement, to the same effect.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.operations import Operations
from alembic.script import Script, ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from bme.errors import ConfigError

#: Alembic's script directory, inside the package so that an installed relayer finds it.
MIGRATIONS = Path(__file__).with_name("migrations")
#: Alembic's record of a database's revision.
VERSION_TABLE = "alembic_version"
#: The first revision: the schema the models created before migrations existed.
BASELINE = "0001"
#: The tables of the baseline revision; a database with these and no version table predates migrations.
BASELINE_TABLES = frozenset(
    {
        "attempts",
        "block_hashes",
        "checkpoints",
        "jobs",
        "leases",
        "models",
        "operators",
        "reveals",
        "settlements",
        "transitions",
    }
)
#: The PostgreSQL advisory lock held while upgrading; any constant, the same in every relayer ("bmerelay").
UPGRADE_LOCK_KEY = 0x626D_6572_656C_6179


def _pre_migration_columns() -> list[tuple[str, sa.Column[int]]]:
    """Columns the models gained after their first release and before migrations: a database made by that
    release lacks them (the release after it added them when it opened the database)."""
    return [
        ("operators", sa.Column("unreachable", sa.Integer(), nullable=False, server_default="0")),
        ("operators", sa.Column("answered_errors", sa.Integer(), nullable=False, server_default="0")),
    ]


def alembic_config(connection: Connection) -> Config:
    """Alembic's configuration for running the revisions on `connection` (in the caller's transaction)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def script_directory() -> ScriptDirectory:
    """The revisions shipped with this package."""
    return ScriptDirectory(str(MIGRATIONS))


def head_revision() -> str:
    """The newest revision: the schema of the models in `bme.relayer.db`."""
    head = script_directory().get_current_head()
    if head is None:
        raise RuntimeError(f"no revisions in {MIGRATIONS}")
    return head


def revisions() -> list[Script]:
    """Every revision, newest first."""
    return list(script_directory().walk_revisions())


def current_revision(engine: Engine) -> str | None:
    """The database's revision; None when it has none (it is empty, or was made before migrations)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade_to_head(engine: Engine) -> None:
    """Brings the database at `engine` to the head revision, adopting one made before migrations existed.

    One transaction on PostgreSQL, whose DDL is transactional: a failed upgrade leaves the database as it was.
    """
    with engine.begin() as conn:
        _lock(conn)
        _check_known(conn)
        _adopt_unversioned(conn)
        command.upgrade(alembic_config(conn), "head")


def _lock(conn: Connection) -> None:
    """Makes concurrent upgrades of one database wait for each other, until this transaction ends."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": UPGRADE_LOCK_KEY})
    elif conn.dialect.name == "sqlite":
        # The driver begins transactions lazily, at the first write: take the write lock now instead.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _check_known(conn: Connection) -> None:
    """A database a newer release upgraded is left alone, with a reason, rather than failing half-way."""
    revision = MigrationContext.configure(conn).get_current_revision()
    if revision is not None and revision not in {r.revision for r in revisions()}:
        raise ConfigError(
            f"the relayer's database is at schema revision {revision}, which this release does not know (a"
            f" newer release upgraded it; this one's newest is {head_revision()}): run a release that has it"
        )


def _adopt_unversioned(conn: Connection) -> None:
    """Stamps a database made before migrations at the baseline, once it has the baseline's schema."""
    tables = set(sa.inspect(conn).get_table_names())
    if VERSION_TABLE in tables or not tables & BASELINE_TABLES:
        return
    if missing := BASELINE_TABLES - tables:
        raise ConfigError(
            f"the database has some of the relayer's tables but not {', '.join(sorted(missing))}, and no"
            f" {VERSION_TABLE} table: it was not made by a relayer, so it is left as it is"
        )
    inspector = sa.inspect(conn)
    ops = Operations(MigrationContext.configure(conn))
    for table, column in _pre_migration_columns():
        if column.name not in {c["name"] for c in inspector.get_columns(table)}:
            ops.add_column(table, column)
    command.stamp(alembic_config(conn), BASELINE)


__all__ = [
    "BASELINE",
    "MIGRATIONS",
    "VERSION_TABLE",
    "alembic_config",
    "current_revision",
    "head_revision",
    "revisions",
    "script_directory",
    "upgrade_to_head",
]
