"""`GET /health`: whether this process and its database answer, for load balancers and
systemd. 200 `OK` (text/plain, as Synapse answers) or 503; main process and workers alike."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.context import DATABASE

routes = web.RouteTableDef()

# Load balancers give a check a few seconds; a database slower than this to answer a
# `SELECT 1` through the pool is as good as down for the requests behind it.
DATABASE_TIMEOUT_S = 2.0


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    if await request.app[DATABASE].answers(DATABASE_TIMEOUT_S):
        return web.Response(text="OK", content_type="text/plain")
    return web.Response(status=503, text="database unavailable", content_type="text/plain")
