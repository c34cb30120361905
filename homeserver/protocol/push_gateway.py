"""The body of a push gateway request (push-gateway-api "POST /_matrix/push/v1/notify").

Pure: the sender loads the event, the room's name and alias, the sender's display name and the
user's unread count, and this module shapes them. One request carries one device (the pusher
it is for), so a `rejected` answer names that pusher or none.

What goes in follows the spec's `Notification` with two choices of ours:
- `content` is left out of encrypted events (the ciphertext helps no gateway and the spec lets
  the pusher omit it "for any other reason"), and out of everything with `format:
  event_id_only`, which sends only `event_id`, `room_id`, `counts`, `prio` and `devices` (the
  client fetches the rest itself, over its own connection, so the gateway learns nothing).
- `counts.unread` is sent even when it is 0, so that a phone clears its badge; the spec says
  zero counts "should be omitted", which would leave the last badge standing. `missed_calls`
  is not counted by this server, so it is always omitted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

EVENT_ID_ONLY = "event_id_only"
HIGH, LOW = "high", "low"
# What a person wants to hear about now: a message (plain or encrypted, a sticker) and a call
# ringing. Invites are high too (`priority`). Everything else, state changes and reactions
# among them, may wait for the phone's next wake-up.
_URGENT_TYPES = frozenset({"m.room.message", "m.room.encrypted", "m.sticker", "m.call.invite"})


@dataclass(frozen=True, slots=True)
class Device:
    """The pusher the request is for, as the gateway sees it."""

    app_id: str
    pushkey: str
    pushkey_ts_ms: int  # when the pushkey was registered
    data: Mapping[str, Any]  # the pusher's data, `url` included (it is taken out here)


@dataclass(frozen=True, slots=True)
class RoomDetails:
    """What the sender looked up about the event's room and sender; None when unknown."""

    room_name: str | None = None
    room_alias: str | None = None
    sender_display_name: str | None = None


def tweaks_of(actions: Any) -> dict[str, Any]:
    """The `set_tweak` actions as a tweaks object (push.md "Actions": a `highlight` tweak
    without a value means true)."""
    tweaks: dict[str, Any] = {}
    for action in actions if isinstance(actions, list) else []:
        if isinstance(action, dict) and isinstance(action.get("set_tweak"), str):
            name = action["set_tweak"]
            tweaks[name] = action.get("value", True) if name == "highlight" else action.get("value")
    return tweaks


def priority(pdu: Mapping[str, Any], user_id: str) -> str:
    """`high` for messages, calls and an invite of the user; `low` otherwise."""
    if pdu.get("type") in _URGENT_TYPES:
        return HIGH
    content = pdu.get("content")
    if (
        pdu.get("type") == "m.room.member" and pdu.get("state_key") == user_id
        and isinstance(content, Mapping) and content.get("membership") == "invite"
    ):
        return HIGH
    return LOW


def _device(device: Device, tweaks: dict[str, Any]) -> dict[str, Any]:
    return {
        "app_id": device.app_id,
        "pushkey": device.pushkey,
        "pushkey_ts": device.pushkey_ts_ms // 1000,
        "data": {k: v for k, v in device.data.items() if k != "url"},
        "tweaks": tweaks,
    }


def event_notification(
    pdu: Mapping[str, Any], event_id: str, room_id: str, user_id: str, actions: Any,
    device: Device, unread: int, room: RoomDetails,
) -> dict[str, Any]:
    """The request body for an event that notifies `user_id` with these push rule actions."""
    notification: dict[str, Any] = {
        "event_id": event_id,
        "room_id": room_id,
        "prio": priority(pdu, user_id),
        "counts": {"unread": unread},
        "devices": [_device(device, tweaks_of(actions))],
    }
    if device.data.get("format") == EVENT_ID_ONLY:
        return {"notification": notification}
    notification["type"] = pdu.get("type")
    notification["sender"] = pdu.get("sender")
    notification.update((k, v) for k, v in (
        ("sender_display_name", room.sender_display_name),
        ("room_name", room.room_name),
        ("room_alias", room.room_alias),
    ) if v is not None)
    if pdu.get("type") == "m.room.member":
        notification["user_is_target"] = pdu.get("state_key") == user_id
    content = pdu.get("content")
    if pdu.get("type") != "m.room.encrypted" and isinstance(content, Mapping) and content:
        notification["content"] = dict(content)
    return {"notification": notification}


def badge_notification(device: Device, unread: int) -> dict[str, Any]:
    """A badge-only update: the counts and the device, nothing about any event (the spec lets
    `event_id` be omitted "for notifications that only contain updated badge counts")."""
    return {"notification": {
        "counts": {"unread": unread}, "devices": [_device(device, {})],
    }}


def rejected_pushkeys(answer: Any) -> set[str]:
    """The pushkeys the gateway's 200 answer says to stop sending to (anything else in a
    malformed answer is ignored: the request itself was accepted)."""
    rejected = answer.get("rejected") if isinstance(answer, Mapping) else None
    if not isinstance(rejected, list):
        return set()
    return {k for k in rejected if isinstance(k, str)}
