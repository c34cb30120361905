"""Endpoints of features this server does not offer: third-party identifiers (e-mail, phone),
application services and single sign-on.

They are part of every spec version, so each is answered the way the spec (or, where the spec
is silent, Synapse without the feature configured) says a server without it answers, never with
the 404 M_UNRECOGNIZED of an endpoint that does not exist (tests/integration/test_versions.py).
The capabilities and `GET /login` already tell clients these features are off.
"""

from __future__ import annotations

from aiohttp import web

from homeserver.api.auth import require_requester
from homeserver.api.http import read_json_body
from homeserver.errors import MatrixError, forbidden, not_found

routes = web.RouteTableDef()

V3 = "/_matrix/client/v3"
NO_THREEPIDS = "This server keeps no third-party identifiers (m.3pid_changes is disabled)"


@routes.post(V3 + "/account/3pid")
@routes.post(V3 + "/account/3pid/add")
@routes.post(V3 + "/account/3pid/bind")
@routes.post(V3 + "/account/3pid/delete")
@routes.post(V3 + "/account/3pid/unbind")
async def change_threepids(request: web.Request) -> web.Response:
    await require_requester(request)
    await read_json_body(request)
    raise forbidden(NO_THREEPIDS)


@routes.post(V3 + "/account/3pid/{medium:email|msisdn}/requestToken")
@routes.post(V3 + "/account/password/{medium:email|msisdn}/requestToken")
@routes.post(V3 + "/register/{medium:email|msisdn}/requestToken")
async def request_token(request: web.Request) -> web.Response:
    """The spec's answer for an identifier the server does not permit (M_THREEPID_DENIED)."""
    await read_json_body(request)
    raise MatrixError(403, "M_THREEPID_DENIED", NO_THREEPIDS)


@routes.get(V3 + "/login/sso/redirect")
@routes.get(V3 + "/login/sso/redirect/{idpId}")
async def sso_redirect(request: web.Request) -> web.Response:
    """No identity provider is configured (`GET /login` offers no m.login.sso): the spec's
    answer for an identity provider the server does not recognise."""
    raise not_found("This server offers no single sign-on")
