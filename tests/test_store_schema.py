"""The tables the store declares (engine/adapters/sql/schema.py) are exactly those its Alembic
migrations create, on SQLite and on PostgreSQL: compared by Alembic's autogenerate
(``compare_metadata``), column types included, on a database of its own per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from engine.adapters.sql.database import make_engine
from engine.adapters.sql.migrations import head_revision, upgrade_to_head
from engine.adapters.sql.schema import include_object, metadata
from tests.conftest import requires, throwaway_pg_database


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a throwaway PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'schema.db'}"
        return
    requires("postgresql")
    yield from throwaway_pg_database(f"journeys_schema_{uuid.uuid4().hex[:8]}")


def test_the_tables_equal_the_migrations(empty_url: str) -> None:
    engine = make_engine(empty_url)
    try:
        upgrade_to_head(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "compare_server_default": True,
                    "include_object": include_object(conn.dialect.name),
                },
            )
            assert context.get_current_revision() == head_revision()
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert differences == [], "the tables and the migrations differ: add a migration"


def test_an_index_for_another_database_is_left_out_of_the_comparison() -> None:
    """The funnel index is SQLite's alone (migration 0004): PostgreSQL compares without it."""
    [funnel] = [i for i in metadata.tables["visits"].indexes if i.name == "ix_visits_funnel"]
    assert include_object("sqlite")(funnel, funnel.name, "index", False, None)
    assert not include_object("postgresql")(funnel, funnel.name, "index", False, None)
    assert include_object("postgresql")(funnel, funnel.name, "index", True, None)  # reflected
