"""The seam through which the client API's room services reach rooms that live on other
servers; `federation/joins.py` implements it and `app.py` plugs it in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class RemoteRooms(Protocol):
    async def join_remote(
        self, room_id: str, user_id: str, content: Mapping[str, Any], servers: Sequence[str]
    ) -> None:
        """Join through the first of `servers` that lets us; MatrixError otherwise."""
        ...
