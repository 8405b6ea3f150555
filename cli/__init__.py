"""The ``notary`` command."""
