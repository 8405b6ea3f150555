"""The aiohttp application of the notary service."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from notary.http.health import ReadinessCheck, health_routes
from notary.http.openapi import openapi
from notary.http.problems import problem_middleware


def create_app(
    checks: Mapping[str, ReadinessCheck],
    *,
    client_max_size: int = 1024 * 1024,
    extra_middlewares: Sequence[Any] = (),
) -> web.Application:
    """Build the application: problem-details middleware (outermost, so it also answers
    for the others), then ``extra_middlewares``; health and readiness routes."""
    app = web.Application(
        middlewares=[problem_middleware, *extra_middlewares], client_max_size=client_max_size
    )
    app.add_routes(health_routes(checks))
    app.router.add_get("/openapi.json", openapi)
    return app
