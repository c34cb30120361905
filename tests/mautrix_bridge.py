"""A bridge written with the unmodified mautrix-python library, for end-to-end tests of
application services against Moot and against Synapse.

`MautrixBridge` is what a mautrix bridge is underneath: mautrix's `AppService` (its own aiohttp
server for the homeserver's transactions and queries) and `IntentAPI` (the Client-Server calls
made as the bridge bot or as a ghost user, with the `as_token`, `?user_id=` and `?ts=`). Its
registration is the file a bridge's `-g` writes: the same YAML goes to Synapse's
`app_service_config_files` and Moot's `appservices.registration_files`.

The bridge owns the user namespace `@mx_.*` and the alias namespace `#mx_.*` (exclusively), like
a real bridge's ghosts and portal aliases. Asked for an unknown alias in its namespace, it creates
a public portal room with that alias, as bridges do for `#prefix_<remote id>` lookups.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from mautrix.appservice import AppService
from mautrix.appservice.state_store import FileASStateStore
from mautrix.types import Event, RoomAlias, RoomCreatePreset, RoomID, UserID

GHOST_PREFIX = "mx_"
BOT_LOCALPART = "mxbot"


@dataclass(frozen=True)
class BridgeRegistration:
    """One appservice registration: what the bridge and the homeserver both read."""

    id: str
    server_name: str
    port: int
    as_token: str
    hs_token: str
    sender_localpart: str = BOT_LOCALPART

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def bot_user_id(self) -> str:
        return f"@{self.sender_localpart}:{self.server_name}"

    def ghost_user_id(self, name: str) -> str:
        return f"@{GHOST_PREFIX}{name}:{self.server_name}"

    def portal_alias(self, name: str) -> str:
        return f"#{GHOST_PREFIX}{name}:{self.server_name}"

    def as_dict(self) -> dict[str, Any]:
        """The registration in the format mautrix bridges generate."""
        server = re.escape(self.server_name)
        return {
            "id": self.id,
            "url": self.url,
            "as_token": self.as_token,
            "hs_token": self.hs_token,
            "sender_localpart": self.sender_localpart,
            "rate_limited": False,
            "namespaces": {
                "users": [{"regex": f"@{GHOST_PREFIX}.*:{server}", "exclusive": True}],
                "aliases": [{"regex": f"#{GHOST_PREFIX}.*:{server}", "exclusive": True}],
            },
            "de.sorunome.msc2409.push_ephemeral": True,
            "receive_ephemeral": True,
        }

    def write(self, path: Path) -> Path:
        path.write_text(yaml.safe_dump(self.as_dict()))
        return path


def new_registration(server_name: str, port: int) -> BridgeRegistration:
    return BridgeRegistration(
        id="mautrix-test", server_name=server_name, port=port,
        as_token=secrets.token_urlsafe(24), hs_token=secrets.token_urlsafe(24),
    )


class MautrixBridge:
    """A running mautrix `AppService` that records every event the homeserver sends it."""

    def __init__(
        self, registration: BridgeRegistration, homeserver_url: str, state_dir: Path
    ) -> None:
        self.registration = registration
        self.events: list[Event] = []
        self.portals: dict[str, RoomID] = {}  # alias -> the room made when it was asked for
        self.appservice = AppService(
            server=homeserver_url, domain=registration.server_name,
            as_token=registration.as_token, hs_token=registration.hs_token,
            bot_localpart=registration.sender_localpart, id=registration.id,
            state_store=FileASStateStore(path=state_dir / "mx-state.json", binary=False),
            # mautrix annotates this as an aiohttp handler; it is called with the alias.
            query_alias=self._query_alias,  # type: ignore[arg-type]
        )
        self.appservice.matrix_event_handler(self._record)

    async def start(self) -> None:
        await self.appservice.start(host="127.0.0.1", port=self.registration.port)

    async def stop(self) -> None:
        await self.appservice.stop()

    async def _record(self, event: Event) -> None:
        self.events.append(event)

    async def _query_alias(self, alias: RoomAlias) -> dict[str, Any] | None:
        """mautrix answers 404 for a falsy result: a portal in the namespace is made here."""
        localpart = alias[1:].split(":", 1)[0]
        if not localpart.startswith(GHOST_PREFIX):
            return None
        room_id = await self.appservice.intent.create_room(
            alias_localpart=localpart, preset=RoomCreatePreset.PUBLIC, name=f"Portal {localpart}",
        )
        self.portals[alias] = room_id
        return {"room_id": room_id}

    def ghost(self, name: str) -> Any:
        """The `IntentAPI` of a ghost user in the namespace (not registered yet)."""
        return self.appservice.intent.user(UserID(self.registration.ghost_user_id(name)))

    def received(self, event_type: str, room_id: str) -> list[Event]:
        return [e for e in self.events if e.type.t == event_type and e.room_id == room_id]
