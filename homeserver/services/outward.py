"""`Outward`: every way the services reach other servers, handed to them when they are built.

`homeserver/app.py` builds federation's outbound parts before the services and gathers here
those the services use; a server without a federation listener gets `NO_FEDERATION`, null
objects that answer as a server on its own does. So no service holds an optional part or
checks for one, and none imports `federation/`.
"""

from __future__ import annotations

from dataclasses import dataclass

from homeserver.services.outbound_edus import Edus, NoEdus
from homeserver.services.remote_media import NoRemoteMedia, RemoteMedia
from homeserver.services.remote_queries import NoRemoteQueries, RemoteQueries
from homeserver.services.remote_room_info import NoRemoteRoomInfo, RemoteRoomInfo
from homeserver.services.remote_rooms import NoRemoteRooms, RemoteRooms
from homeserver.services.remote_server_limits import NoServerLimits, ServerLimits
from homeserver.services.room_history import NoRemoteHistory, RemoteHistory


@dataclass(frozen=True, slots=True)
class Outward:
    queries: RemoteQueries  # other servers' users' keys and profiles, their aliases
    rooms: RemoteRooms  # joining, inviting and leaving through other servers
    history: RemoteHistory  # what /messages finds before this server's oldest event
    server_limits: ServerLimits  # how many other servers one user may make us contact
    edus: Edus  # local users' typing, receipts, presence, to-device and key changes
    room_info: RemoteRoomInfo  # other servers' space hierarchies, events nearest a time
    media: RemoteMedia  # other servers' media, for local users


NO_FEDERATION = Outward(
    queries=NoRemoteQueries(), rooms=NoRemoteRooms(), history=NoRemoteHistory(),
    server_limits=NoServerLimits(), edus=NoEdus(),
    room_info=NoRemoteRoomInfo(), media=NoRemoteMedia(),
)
