"""the catalogue in the database (issue 15): entries, checks, publication

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03

- `catalogue_entries`: one row per entry; `data` holds the entry's fields in data/aanbod's YAML
  shape (validated by bot.intents.catalogue.CatalogueEntry on every write), next to who checked
  it and when, whether it is published, who changed it last and a version per entry.
- `catalogue_state`: one row; the catalogue's version (every process reloads when it is newer),
  the best entries per theme and the YAML files' header comments (for the export).

The rows are seeded from data/aanbod by the service at start when the table is empty
(bot.catalogue_service), not here: a migration stays schema only.
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'catalogue_entries',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('data', sa.JSON(), nullable=False),
        sa.Column('file', sa.String(length=64), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('published', sa.Boolean(), nullable=False),
        sa.Column('checked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('checked_by', sa.String(length=36), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_by', sa.String(length=36), nullable=True),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['checked_by'], ['users.id'], ondelete='SET NULL',
                                name='fk_catalogue_entries_checked_by_users'),
        sa.ForeignKeyConstraint(['updated_by'], ['users.id'], ondelete='SET NULL',
                                name='fk_catalogue_entries_updated_by_users'),
        sa.PrimaryKeyConstraint('id', name='pk_catalogue_entries'),
    )
    op.create_table(
        'catalogue_state',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('best', sa.JSON(), nullable=False),
        sa.Column('headers', sa.JSON(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_catalogue_state'),
    )


def downgrade() -> None:
    op.drop_table('catalogue_state')
    op.drop_table('catalogue_entries')
