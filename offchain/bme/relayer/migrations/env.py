"""Alembic's environment: runs the revisions on the connection `bme.relayer.migrate` passes in.

The caller owns the connection and its transaction (and, on PostgreSQL, the advisory lock taken in it), so
nothing here commits. SQLite alters tables in batch mode (a copy of the table), as it lacks most `ALTER`s.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from bme.relayer.db import Base

if context.is_offline_mode():
    raise RuntimeError("the relayer's migrations run on a live connection: use `bme relayer db upgrade`")
connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("the relayer's migrations run through bme.relayer.migrate, which passes a connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
