"""slot_offers: freed slots offered to the waitlist by SMS (BACKFILL_MODE=offer)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 17:28:24.930184

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('slot_offers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('freed_appointment_id', sa.Integer(), nullable=False),
    sa.Column('care_request_id', sa.Integer(), nullable=False),
    sa.Column('resident_id', sa.Integer(), nullable=False),
    sa.Column('provider_id', sa.Integer(), nullable=False),
    sa.Column('start_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'accepted', 'declined', 'expired', 'lapsed')", name=op.f('ck_slot_offers_status_valid')),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_slot_offers_appointment_id_appointments')),
    sa.ForeignKeyConstraint(['care_request_id'], ['care_requests.id'], name=op.f('fk_slot_offers_care_request_id_care_requests')),
    sa.ForeignKeyConstraint(['freed_appointment_id'], ['appointments.id'], name=op.f('fk_slot_offers_freed_appointment_id_appointments')),
    sa.ForeignKeyConstraint(['provider_id'], ['providers.id'], name=op.f('fk_slot_offers_provider_id_providers')),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_slot_offers_resident_id_residents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_slot_offers')),
    sa.UniqueConstraint('freed_appointment_id', 'care_request_id', name='uq_slot_offers_once_per_request')
    )
    with op.batch_alter_table('slot_offers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_slot_offers_freed_appointment_id'), ['freed_appointment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_slot_offers_resident_id'), ['resident_id'], unique=False)
        batch_op.create_index('ix_slot_offers_status_expires', ['status', 'expires_at'], unique=False)



def downgrade():
    with op.batch_alter_table('slot_offers', schema=None) as batch_op:
        batch_op.drop_index('ix_slot_offers_status_expires')
        batch_op.drop_index(batch_op.f('ix_slot_offers_resident_id'))
        batch_op.drop_index(batch_op.f('ix_slot_offers_freed_appointment_id'))

    op.drop_table('slot_offers')
