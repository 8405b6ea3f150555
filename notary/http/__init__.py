"""The HTTP interface of the notary service (aiohttp)."""
