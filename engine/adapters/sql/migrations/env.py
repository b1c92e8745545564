"""Alembic environment: runs against the engine handed over by journeys."""

from __future__ import annotations

from alembic import context

from engine.adapters.sql.schema import include_object, metadata

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,
        include_object=include_object(connection.dialect.name),
    )
    context.run_migrations()
