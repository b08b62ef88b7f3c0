"""Alembic's script directory for the relayer's database: `env.py` and one revision per schema change.

`bme.relayer.migrate` runs it (the relayer on start, `bme relayer db` for operators). A change to the models
in `bme.relayer.db` needs a revision here; to draft one against a database at the head revision:

    from alembic import command
    from bme.relayer.db import make_engine
    from bme.relayer.migrate import alembic_config

    with make_engine(url).begin() as conn:
        command.revision(alembic_config(conn), message="what changed", autogenerate=True)

then read and complete the draft (autogenerate misses renames and data moves).
"""
