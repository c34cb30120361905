"""Room tags (Client-Server API "Room Tagging"), kept as the `m.tag` room account data.

Tags live in the user's per-room `m.tag` account data (`{"tags": {tag: {"order": n}}}`), so
/sync delivers them through the account-data stream like any other entry. Adding or removing one
tag is a read-modify-write of that entry, serialized (tag changes are rare) so that two
concurrent changes both survive.
"""

from __future__ import annotations

import asyncio
from typing import Any

from homeserver.services.account_data import AccountDataService
from homeserver.services.quotas import over_quota
from storage import account_data as account_data_store

TAG_TYPE = "m.tag"


class TagsService:
    def __init__(self, account_data: AccountDataService) -> None:
        self.account_data = account_data
        self._lock = asyncio.Lock()

    async def get_tags(self, user_id: str, room_id: str) -> dict[str, Any]:
        """tag -> tag content; empty when the user never tagged the room."""
        content = await self.account_data.db.run(
            lambda conn: account_data_store.get_account_data(conn, user_id, room_id, TAG_TYPE)
        )
        tags = (content or {}).get("tags")
        return tags if isinstance(tags, dict) else {}

    async def set_tag(self, user_id: str, room_id: str, tag: str, content: dict[str, Any]) -> None:
        """Add or change a tag; a room holds at most `quotas.max_tags_per_room` of them (the
        entry's size and the user's entries are account data's quotas)."""
        limit = self.account_data.quotas.max_tags_per_room
        async with self._lock:
            tags = await self.get_tags(user_id, room_id)
            if tag not in tags and len(tags) >= limit:
                raise over_quota("tags per room", limit)
            tags[tag] = content
            await self.account_data.set(user_id, room_id, TAG_TYPE, {"tags": tags})

    async def delete_tag(self, user_id: str, room_id: str, tag: str) -> None:
        """Removing a tag the room does not have changes nothing (and wakes nobody)."""
        async with self._lock:
            tags = await self.get_tags(user_id, room_id)
            if tags.pop(tag, None) is None:
                return
            await self.account_data.set(user_id, room_id, TAG_TYPE, {"tags": tags})
