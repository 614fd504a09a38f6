"""One module per schema revision, oldest first by its ``down_revision``."""
