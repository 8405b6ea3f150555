"""``notary logs``: push log files to anchored streams, verify them, show their status."""
