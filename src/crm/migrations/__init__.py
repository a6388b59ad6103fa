"""Alembic migrations; run them with `crm db upgrade`."""
