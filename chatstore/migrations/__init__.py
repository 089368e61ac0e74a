"""The schema's history as Alembic revisions: ``env.py`` runs them, ``versions/`` holds one file each.

chatstore runs them itself (``chatstore.core.migrations``): at start-up, or with
``python -m chatstore db upgrade``. No ``alembic.ini`` is needed.
"""
