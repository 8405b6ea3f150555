"""The aiohttp application of the notary service."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from notary.http.health import ReadinessCheck, health_routes
from notary.http.problems import problem_middleware


def create_app(
    checks: Mapping[str, ReadinessCheck], *, client_max_size: int = 1024 * 1024
) -> web.Application:
    """Build the application: problem-details middleware, health and readiness routes."""
    app = web.Application(middlewares=[problem_middleware], client_max_size=client_max_size)
    app.add_routes(health_routes(checks))
    return app
