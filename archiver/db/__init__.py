"""The archive database: the schema declaration, engines, units of work, the
error boundary and schema management (Alembic).

``schema`` declares every table once; ``engine`` makes engines and checks
the schema revision; ``unit`` opens units of work; ``boundary`` turns
SQLAlchemy errors into ours; ``migrate`` runs Alembic for ``db`` commands.
"""

__all__ = ["batching", "boundary", "engine", "migrate", "schema", "types", "unit"]
