"""Liveness and readiness.

``/healthz`` answers as long as the process serves requests. ``/readyz`` runs every
registered readiness check (storage quorum, database, chain) concurrently, each under
a time limit, and answers 200 only when all pass; the body lists each check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

# A check returns a short human-readable detail, or raises when not ready.
ReadinessCheck = Callable[[], Awaitable[str]]


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


async def run_check(name: str, check: ReadinessCheck, limit: float) -> CheckResult:
    """Run one check under ``limit`` seconds; failures become a not-ok result."""
    try:
        detail = await asyncio.wait_for(check(), limit)
    except TimeoutError:
        return CheckResult(name, False, f"no answer within {limit:g} s")
    except Exception as e:  # a failing dependency is a verdict here, not a crash
        return CheckResult(name, False, str(e) or type(e).__name__)
    return CheckResult(name, True, detail)


def health_routes(checks: Mapping[str, ReadinessCheck], timeout: float = 5.0) -> web.RouteTableDef:
    """Routes for ``GET /healthz`` and ``GET /readyz`` over ``checks``."""
    routes = web.RouteTableDef()

    @routes.get("/healthz")
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    @routes.get("/readyz")
    async def readyz(_: web.Request) -> web.Response:
        results = await asyncio.gather(*(run_check(n, c, timeout) for n, c in checks.items()))
        ready = all(r.ok for r in results)
        body = {
            "status": "ready" if ready else "not_ready",
            "checks": {r.name: {"ok": r.ok, "detail": r.detail} for r in results},
        }
        return web.json_response(body, status=200 if ready else 503)

    return routes
