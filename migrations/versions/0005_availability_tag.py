"""providers.availability_tag: renewed on every calendar change, so processes may cache calendars

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 17:07:49.766957

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('providers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('availability_tag', sa.String(length=16), server_default='0', nullable=False))


def downgrade():
    with op.batch_alter_table('providers', schema=None) as batch_op:
        batch_op.drop_column('availability_tag')
