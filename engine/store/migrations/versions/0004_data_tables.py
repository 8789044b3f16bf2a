"""data tables

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 15:55:00.000000
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('data_tables',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=True),
    sa.Column('columns', sa.Text(), nullable=False),
    sa.Column('required', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_data_tables'))
    )
    op.create_table('data_rows',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('table_name', sa.String(length=64), nullable=False),
    sa.Column('key_value', sa.String(length=255), nullable=True),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_data_rows'))
    )
    with op.batch_alter_table('data_rows', schema=None) as batch_op:
        batch_op.create_index('ix_data_rows_table_id', ['table_name', 'id'], unique=False)
        batch_op.create_index('ix_data_rows_table_key', ['table_name', 'key_value'], unique=True)
        batch_op.create_index('ix_data_rows_table_updated', ['table_name', 'updated_at'], unique=False)
    op.create_table('data_rotations',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('last_id', sa.BigInteger(), nullable=True),
    sa.Column('turns', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_data_rotations'))
    )
    op.create_table('data_row_changes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('table_name', sa.String(length=64), nullable=False),
    sa.Column('row_id', sa.BigInteger(), nullable=False),
    sa.Column('event', sa.String(length=16), nullable=False),
    sa.Column('row', sa.Text(), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_data_row_changes'))
    )
    with op.batch_alter_table('data_row_changes', schema=None) as batch_op:
        batch_op.create_index('ix_data_row_changes_at', ['at'], unique=False)
        batch_op.create_index('ix_data_row_changes_table_at', ['table_name', 'at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('data_row_changes', schema=None) as batch_op:
        batch_op.drop_index('ix_data_row_changes_table_at')
        batch_op.drop_index('ix_data_row_changes_at')

    op.drop_table('data_row_changes')
    op.drop_table('data_rotations')
    with op.batch_alter_table('data_rows', schema=None) as batch_op:
        batch_op.drop_index('ix_data_rows_table_updated')
        batch_op.drop_index('ix_data_rows_table_key')
        batch_op.drop_index('ix_data_rows_table_id')

    op.drop_table('data_rows')
    op.drop_table('data_tables')
