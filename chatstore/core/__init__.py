"""Settings and the database."""
