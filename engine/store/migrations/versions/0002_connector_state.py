"""connector state

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 14:11:10.469502
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('connector_tokens',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('connector', sa.String(length=64), nullable=False),
    sa.Column('token', sa.LargeBinary(), nullable=True),
    sa.Column('expires_at', sa.Float(), nullable=True),
    sa.Column('lease_until', sa.Float(), nullable=True),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_connector_tokens'))
    )
    op.create_table('rate_buckets',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('tokens', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_rate_buckets'))
    )
    op.create_table('trigger_state',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('cursor', sa.Text(), nullable=True),
    sa.Column('seen', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_trigger_state'))
    )


def downgrade() -> None:
    op.drop_table('trigger_state')
    op.drop_table('rate_buckets')
    op.drop_table('connector_tokens')
