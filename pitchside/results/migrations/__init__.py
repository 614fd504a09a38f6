"""Alembic's environment and revisions of the results store (see pitchside.results.migrate)."""
