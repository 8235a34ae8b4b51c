"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""

# Checklist for a new revision (README "Adding a migration"):
# - the id is the next 4-digit sequence number (0003, 0004, ...);
# - self-contained: spell types out, never import archiver;
# - if code of the previous revision can no longer use this schema, set
#   schema_compat.min_code_revision to this revision (and restore it on
#   downgrade); an additive change keeps the value it finds;
# - bump SCHEMA_REVISION in archiver/db/engine.py.

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
