"""The relayer database's migrations, on SQLite and on PostgreSQL: a database made before migrations keeps
its rows and is brought to the head revision, the migrated schema is the models' (a model changed without a
revision fails here), a second upgrade changes nothing, and relayers starting together migrate once."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, event, inspect, text
from sqlalchemy.engine import Engine

from bme.errors import ConfigError
from bme.relayer.db import Base, make_engine
from bme.relayer.migrate import (
    BASELINE,
    VERSION_TABLE,
    current_revision,
    head_revision,
    revisions,
    upgrade_to_head,
)
from bme.relayer.store import JobStore

from .pre_migration import ROWS, create_schema, insert_rows, read_rows

pytestmark = pytest.mark.pure


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    engine = make_engine(store_url)
    yield engine
    engine.dispose()


def differences(engine: Engine) -> list[Any]:
    """What autogenerate would write to bring the database to the models: nothing, if they agree."""
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, Base.metadata))


def schema(engine: Engine) -> dict[str, Any]:
    """The database's tables as reflected: columns (type, nullability, default), keys and indexes."""
    inspector = inspect(engine)
    return {
        table: {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], c.get("default"))
                for c in inspector.get_columns(table)
            ],
            "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(table)
            ),
            "unique": sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)),
            "foreign_keys": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"])
                for f in inspector.get_foreign_keys(table)
            ),
        }
        for table in sorted(inspector.get_table_names())
        if table != VERSION_TABLE
    }


def statements(engine: Engine) -> list[str]:
    """Every statement `engine` executes from now on (appended as they run)."""
    seen: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    return seen


def writes(executed: list[str]) -> list[str]:
    verbs = ("CREATE", "ALTER", "DROP", "INSERT", "UPDATE", "DELETE")
    return [s for s in executed if s.lstrip().upper().startswith(verbs)]


def test_a_fresh_database_is_migrated_to_the_models_schema(engine: Engine) -> None:
    assert current_revision(engine) is None
    upgrade_to_head(engine)
    assert current_revision(engine) == head_revision()
    assert set(inspect(engine).get_table_names()) == {*Base.metadata.tables, VERSION_TABLE}
    assert differences(engine) == []


def test_a_database_made_before_migrations_is_adopted_with_its_rows(store_url: str, engine: Engine) -> None:
    create_schema(engine)
    insert_rows(engine)
    before = read_rows(engine)

    store = JobStore(store_url, owner="relayer-a")  # the relayer's start
    assert current_revision(engine) == head_revision()
    assert read_rows(engine) == before
    assert differences(engine) == []
    job, transitions = store.job(ROWS["jobs"]["job_id"])
    assert job is not None and job.state == "SETTLED" and len(transitions) == 1
    (operator,) = store.operators()
    assert (operator.dispatched, operator.unreachable) == (4, 1)
    assert store.hold_lease("ingest", ttl_s=5.0)  # and it is written to as before


def test_an_adopted_database_has_the_schema_of_a_migrated_one(engine: Engine) -> None:
    """A database made before migrations, once upgraded, has exactly the schema of one migrated from empty:
    the same columns, defaults (the sequences of PostgreSQL's serial keys among them), keys and indexes; so
    the baseline revision makes what `create_all` made."""
    upgrade_to_head(engine)
    migrated = schema(engine)
    tables = MetaData()
    tables.reflect(engine)
    tables.drop_all(engine)
    create_schema(engine)
    upgrade_to_head(engine)
    assert current_revision(engine) == head_revision()
    assert schema(engine) == migrated


def test_a_database_from_before_the_failure_counters_gains_them(engine: Engine) -> None:
    create_schema(engine)
    with engine.begin() as conn:  # as the first release left it
        for column in ("unreachable", "answered_errors"):
            conn.execute(text(f"ALTER TABLE operators DROP COLUMN {column}"))
    operator = {k: v for k, v in ROWS["operators"].items() if k not in ("unreachable", "answered_errors")}
    insert_rows(engine, {"operators": operator})

    upgrade_to_head(engine)
    assert differences(engine) == []
    with engine.connect() as conn:
        counters = conn.execute(text("SELECT dispatched, unreachable, answered_errors FROM operators")).one()
    assert tuple(counters) == (4, 0, 0)


def test_upgrading_twice_changes_nothing(engine: Engine) -> None:
    upgrade_to_head(engine)
    insert_rows(engine)
    before = (schema(engine), read_rows(engine))

    executed = statements(engine)
    upgrade_to_head(engine)
    assert executed, "the second upgrade did not even read the version"
    assert writes(executed) == []
    assert (schema(engine), read_rows(engine)) == before
    assert current_revision(engine) == head_revision()


def test_relayers_starting_together_migrate_once(store_url: str) -> None:
    engines = [make_engine(store_url) for _ in range(4)]
    executed = [statements(e) for e in engines]
    together = threading.Barrier(len(engines))
    failures: list[BaseException] = []

    def start(engine: Engine) -> None:
        try:
            together.wait()
            upgrade_to_head(engine)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=start, args=(e,), daemon=True) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert not any(t.is_alive() for t in threads), "the upgrades are waiting for each other"
        assert failures == []
        creates = [
            s for run in executed for s in writes(run) if s.lstrip().upper().startswith("CREATE TABLE")
        ]
        assert len(creates) == len(Base.metadata.tables) + 1  # the relayer's tables and the version table
        assert current_revision(engines[0]) == head_revision()
    finally:
        for e in engines:
            e.dispose()


def test_a_database_with_only_some_of_the_tables_is_left_alone(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE jobs (id INTEGER PRIMARY KEY)"))
    with pytest.raises(ConfigError, match="not made by a relayer"):
        upgrade_to_head(engine)
    assert set(inspect(engine).get_table_names()) == {"jobs"}


def test_a_database_from_a_newer_release_is_left_alone(engine: Engine) -> None:
    upgrade_to_head(engine)
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = 'ffff'"))
    with pytest.raises(ConfigError, match="revision ffff, which this release does not know"):
        upgrade_to_head(engine)
    assert current_revision(engine) == "ffff"


def test_the_revisions_form_one_line_from_the_baseline() -> None:
    chain = revisions()
    assert chain[-1].revision == BASELINE and chain[-1].down_revision is None
    assert chain[0].revision == head_revision()
    for newer, older in itertools.pairwise(chain):
        assert newer.down_revision == older.revision


def test_the_operators_commands_show_and_upgrade_a_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from bme.cli.main import app

    url = f"sqlite:///{tmp_path / 'relayer.db'}"
    engine = make_engine(url)
    create_schema(engine)
    insert_rows(engine)
    before = read_rows(engine)
    head = head_revision()

    def bme(*args: str) -> str:
        result = CliRunner().invoke(app, ["relayer", "db", *args])
        assert result.exit_code == 0, result.output
        return result.output

    assert "no revision" in bme("current", "--database-url", url)
    assert f"no revision -> {head} (head)" in bme("upgrade", "--database-url", url)
    assert current_revision(engine) == head and read_rows(engine) == before
    assert f"already at {head}" in bme("upgrade", "--database-url", url)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BME_RELAYER_DATABASE_URL", url)
    assert f"{head} (head)" in bme("current")
    listed = bme("history")
    assert all(script.revision in listed for script in revisions())
    monkeypatch.setenv("BME_RELAYER_DATABASE_URL", f"sqlite:///{tmp_path / 'missing.db'}")
    missing = CliRunner().invoke(app, ["relayer", "db", "current"])
    assert missing.exit_code != 0 and not (tmp_path / "missing.db").exists()
