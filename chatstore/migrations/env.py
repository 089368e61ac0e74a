"""Alembic's environment: runs the revisions on the connection chatstore hands it, inside its transaction.

chatstore opens that connection and its transaction itself, under the schema lock (see
``chatstore.core.migrations``), so all the revisions of one upgrade commit together or not at all.
"""

from alembic import context
from sqlmodel import SQLModel

import chatstore.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from chatstore.core.migrations import include_name, include_object

config = context.config
connection = config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError("chatstore runs its migrations itself: use python -m chatstore db upgrade")

context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    version_table_schema=config.attributes.get("version_table_schema"),
    # SQLite changes a table by copying it into a new one ("batch" mode); elsewhere this is plain ALTER.
    render_as_batch=True,
    include_name=include_name,
    include_object=include_object,
)
with context.begin_transaction():
    context.run_migrations()
