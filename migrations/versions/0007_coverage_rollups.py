"""coverage_rollups: stored cells of calendar days, ISO weeks and months; indexes for
the coverage report on appointments and reminders

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 20:16:58.910506

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('coverage_rollup_periods',
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('start_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('end_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('cells', sa.Integer(), nullable=False),
    sa.Column('built_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('day', 'week', 'month')", name=op.f('ck_coverage_rollup_periods_kind_valid')),
    sa.PrimaryKeyConstraint('kind', 'start_at', name=op.f('pk_coverage_rollup_periods')),
    sa.UniqueConstraint('start_at', 'end_at', name='uq_coverage_rollup_periods_span')
    )
    op.create_table('coverage_rollups',
    sa.Column('period_kind', sa.String(length=8), nullable=False),
    sa.Column('period_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('village_id', sa.Integer(), nullable=False),
    sa.Column('sex', sa.String(length=8), nullable=False),
    sa.Column('age_band', sa.String(length=8), nullable=False),
    sa.Column('service_type', sa.String(length=40), nullable=False),
    sa.Column('provider_kind', sa.String(length=16), nullable=False),
    sa.Column('registered', sa.Integer(), nullable=False),
    sa.Column('served', sa.Integer(), nullable=False),
    sa.Column('booked', sa.Integer(), nullable=False),
    sa.Column('completed', sa.Integer(), nullable=False),
    sa.Column('no_shows', sa.Integer(), nullable=False),
    sa.Column('cancelled', sa.Integer(), nullable=False),
    sa.Column('unmet', sa.Integer(), nullable=False),
    sa.Column('sms_delivered', sa.Integer(), nullable=False),
    sa.Column('sms_not_delivered', sa.Integer(), nullable=False),
    sa.Column('across_partners', sa.Integer(), nullable=False),
    sa.Column('waits', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['period_kind', 'period_start'], ['coverage_rollup_periods.kind', 'coverage_rollup_periods.start_at'], name=op.f('fk_coverage_rollups_period_kind_coverage_rollup_periods'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['village_id'], ['regions.id'], name=op.f('fk_coverage_rollups_village_id_regions')),
    sa.PrimaryKeyConstraint('period_kind', 'period_start', 'village_id', 'sex', 'age_band', 'service_type', 'provider_kind', name=op.f('pk_coverage_rollups'))
    )
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.create_index('ix_appointments_coverage', ['start_at', 'resident_id', 'provider_id', 'service_type_id', 'status', 'recorded', 'id'], unique=False)
    with op.batch_alter_table('reminders', schema=None) as batch_op:
        batch_op.create_index('ix_reminders_coverage', ['sent_at', 'resident_id', 'status'], unique=False)


def downgrade():
    with op.batch_alter_table('reminders', schema=None) as batch_op:
        batch_op.drop_index('ix_reminders_coverage')
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.drop_index('ix_appointments_coverage')
    op.drop_table('coverage_rollups')
    op.drop_table('coverage_rollup_periods')
