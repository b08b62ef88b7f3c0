"""`bme relayer db current|history|upgrade`: the relayer database's schema revision, for operators.

A relayer upgrades its database when it starts; these commands show where a database stands and upgrade it
beforehand (say, before starting the relayers of a new release one after the other). The database is
`--database-url`, else `BME_RELAYER_DATABASE_URL`, else the relayer's default, as for `bme relayer run`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from bme.errors import ConfigError

db_app = typer.Typer(
    help="The relayer's database: its schema revision, the revisions shipped, the upgrade.",
    no_args_is_help=True,
)
console = Console(highlight=False)

DatabaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL [BME_RELAYER_DATABASE_URL, default sqlite:///relayer.db].",
        show_default=False,
    ),
]


def chosen_url(option: str | None) -> str:
    """The database the commands act on: the option, else the relayer's setting."""
    if option:
        return option
    from bme.relayer.settings import RelayerSettings

    return RelayerSettings().database_url


def shown(url: str) -> str:
    """`url` without its password, to print."""
    return make_url(url).render_as_string(hide_password=True)


def open_database(url: str, *, must_exist: bool) -> Engine:
    """An engine for `url`; with `must_exist`, a SQLite file that is not there is an error, not a new file."""
    from bme.relayer.db import make_engine

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"{url!r} is not a database URL (e.g. sqlite:///relayer.db)") from None
    path = parsed.database
    if must_exist and parsed.get_backend_name() == "sqlite" and path and not Path(path).exists():
        raise ConfigError(f"no database at {path}")
    return make_engine(url)


def _revision_line(revision: str | None) -> str:
    from bme.relayer.migrate import head_revision, revisions

    head = head_revision()
    if revision is None:
        return "no revision: an empty database, or one made before migrations (`upgrade` adopts it)"
    if revision == head:
        return f"{revision} (head)"
    if revision not in {r.revision for r in revisions()}:
        return f"{revision}, unknown to this release (a newer release made it); this release's head is {head}"
    return f"{revision}; the newest is {head}: `bme relayer db upgrade` brings it there"


@db_app.command("current")
def current(database_url: DatabaseUrlOpt = None) -> None:
    """The database's schema revision, and whether it is the newest this release knows."""
    from bme.relayer.migrate import current_revision

    url = chosen_url(database_url)
    engine = open_database(url, must_exist=True)
    try:
        revision = current_revision(engine)
    except DBAPIError as exc:
        raise ConfigError(f"cannot read {shown(url)}: {exc.orig}") from None
    finally:
        engine.dispose()
    console.print(f"{escape(shown(url))}: {escape(_revision_line(revision))}", soft_wrap=True)


@db_app.command("history")
def history() -> None:
    """The schema revisions this release ships, newest first."""
    from bme.relayer.migrate import head_revision, revisions

    head = head_revision()
    for script in revisions():
        mark = " (head)" if script.revision == head else ""
        console.print(f"{script.revision}{mark}  {escape(script.doc)}", soft_wrap=True)


@db_app.command("upgrade")
def upgrade(database_url: DatabaseUrlOpt = None) -> None:
    """Bring the database to the newest revision, as a relayer does on start (keeping an old one's rows)."""
    from bme.relayer.migrate import current_revision, upgrade_to_head

    url = chosen_url(database_url)
    engine = open_database(url, must_exist=False)
    try:
        before = current_revision(engine)
        upgrade_to_head(engine)
        after = current_revision(engine)
    except DBAPIError as exc:
        raise ConfigError(f"cannot upgrade {shown(url)}: {exc.orig}") from None
    finally:
        engine.dispose()
    change = "already at" if before == after else f"{before or 'no revision'} ->"
    console.print(f"{escape(shown(url))}: {change} {after} (head)", soft_wrap=True)
