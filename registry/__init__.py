"""The registry: services and stored workflows, kept with SQLAlchemy (SQLite or PostgreSQL)."""
