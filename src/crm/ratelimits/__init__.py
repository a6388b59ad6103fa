"""Fixed-window rate counters shared by every server process through the database."""
