"""The session store on SQLite or PostgreSQL (SQLAlchemy Core): tables (schema), connections
and tuning (database), a step's rows (rows), the PostgreSQL one-statement step (postgres),
the grant ledger (grants), the report's queries (reporting) and the Alembic migrations."""
