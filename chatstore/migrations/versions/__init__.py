"""One revision a file, named ``NNNN_what_it_does.py``, each naming the one before as ``down_revision``."""
