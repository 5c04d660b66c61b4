"""Migration revisions, applied in order by alembic."""
