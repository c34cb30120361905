"""JSON schemas of Simplified Sliding Sync (MSC4186) as Synapse and Element X speak it at
`POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync`.

This is the proposal's first implemented shape, not the later text of MSC4186 (which moved to
`/v4/sync` and renamed `ranges` to `range`, `timeline` to `timeline_events`, `invite_state` to
`stripped_state`): `pos`, `timeout` and `set_presence` are query parameters; lists carry
`ranges`; `required_state` is a list of `[type, state_key]` pairs; rooms carry `timeline` and
`invite_state`; list results carry `count`. Where the proposal is silent the schemas follow
Synapse (`SlidingSyncBody` in synapse/types/rest/client, the servlet's `encode_response`) and
the extension proposals (MSC3885 to-device, MSC3884 e2ee, MSC3959 account data, MSC3960
receipts, MSC3961 typing).

The request schema describes what a well-behaved client sends: every request a test makes
through tests/sliding_sync.py is checked against it before it leaves, so a test cannot pass by
sending something no client would. The bad-input tests check the reverse: what they send is
refused by this schema and by the server. The response schema is strict about room fields
(`additionalProperties: false`), so a misspelt field fails the test instead of being ignored.
"""

from __future__ import annotations

from typing import Any

import jsonschema

# -- pieces shared by the request schema ---------------------------------------------------------

_STRING_LIST: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
_NON_NEGATIVE_INT: dict[str, Any] = {"type": "integer", "minimum": 0}

# ["m.room.member", "$LAZY"], ["*", "*"], ["m.room.name", ""] ...
_REQUIRED_STATE: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "array",
        "prefixItems": [{"type": "string"}, {"type": "string"}],
        "minItems": 2,
        "maxItems": 2,
    },
}

# Synapse caps the limit at 1000 and requires both fields of a room config; a negative limit
# is accepted by Synapse but refused by Moot (issue 14), so it is not part of a valid request.
_ROOM_CONFIG_PROPERTIES: dict[str, Any] = {
    "required_state": _REQUIRED_STATE,
    "timeline_limit": {"type": "integer", "minimum": 0, "maximum": 1000},
}

_ROOM_TYPES: dict[str, Any] = {"type": "array", "items": {"type": ["string", "null"]}}

_FILTERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "is_dm": {"type": "boolean"},
        "spaces": _STRING_LIST,
        "is_encrypted": {"type": "boolean"},
        "is_invite": {"type": "boolean"},
        "room_types": _ROOM_TYPES,
        "not_room_types": _ROOM_TYPES,
        "room_name_like": {"type": "string"},
        "tags": _STRING_LIST,
        "not_tags": _STRING_LIST,
    },
    "additionalProperties": False,
}

_LIST_CONFIG: dict[str, Any] = {
    "type": "object",
    "properties": {
        **_ROOM_CONFIG_PROPERTIES,
        # Inclusive, 0-indexed [start, end] pairs.
        "ranges": {
            "type": "array",
            "items": {
                "type": "array",
                "prefixItems": [_NON_NEGATIVE_INT, _NON_NEGATIVE_INT],
                "minItems": 2,
                "maxItems": 2,
            },
        },
        "slow_get_all_rooms": {"type": "boolean"},
        "filters": _FILTERS,
    },
    "required": ["required_state", "timeline_limit"],
    "additionalProperties": False,
}

_ROOM_SUBSCRIPTION: dict[str, Any] = {
    "type": "object",
    "properties": _ROOM_CONFIG_PROPERTIES,
    "required": ["required_state", "timeline_limit"],
    "additionalProperties": False,
}

# `lists` / `rooms` scope an extension to lists of the request and subscribed rooms; "*" is all.
_SCOPED_EXTENSION: dict[str, Any] = {
    "type": "object",
    "properties": {"enabled": {"type": "boolean"}, "lists": _STRING_LIST, "rooms": _STRING_LIST},
    "additionalProperties": False,
}

_EXTENSIONS_REQUEST: dict[str, Any] = {
    "type": "object",
    "properties": {
        "to_device": {
            "type": "object",
            "properties": {
                "enabled": {"type": "boolean"},
                "limit": _NON_NEGATIVE_INT,
                "since": {"type": "string"},
            },
            "additionalProperties": False,
        },
        "e2ee": {
            "type": "object",
            "properties": {"enabled": {"type": "boolean"}},
            "additionalProperties": False,
        },
        "account_data": _SCOPED_EXTENSION,
        "receipts": _SCOPED_EXTENSION,
        "typing": _SCOPED_EXTENSION,
    },
    # Unknown extensions must be ignored by servers, but a test never sends one by mistake.
    "additionalProperties": False,
}

REQUEST_BODY_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Simplified sliding sync request body",
    "type": "object",
    "properties": {
        "conn_id": {"type": "string"},
        "lists": {
            "type": "object",
            "maxProperties": 100,
            "propertyNames": {"maxLength": 64},
            "additionalProperties": _LIST_CONFIG,
        },
        "room_subscriptions": {"type": "object", "additionalProperties": _ROOM_SUBSCRIPTION},
        # MSC3575's way to drop a subscription without resending every other one.
        "unsubscribe_rooms": _STRING_LIST,
        "extensions": _EXTENSIONS_REQUEST,
    },
    "additionalProperties": False,
}

# Query parameters arrive as strings.
REQUEST_PARAMS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Simplified sliding sync query parameters",
    "type": "object",
    "properties": {
        "pos": {"type": "string"},
        "timeout": {"type": "string", "pattern": "^[0-9]+$"},
        "set_presence": {"enum": ["offline", "online", "unavailable"]},
    },
    "additionalProperties": False,
}

# -- pieces shared by the response schema --------------------------------------------------------

_EVENT_CONTENT: dict[str, Any] = {"type": "object"}

# A room event in the client format (as in /v3/sync's rooms, where `room_id` is left out;
# Synapse keeps it on the m.room.create event of a version 12 room, so it is not forbidden).
_CLIENT_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "event_id": {"type": "string", "pattern": "^\\$"},
        "sender": {"type": "string", "pattern": "^@"},
        "origin_server_ts": {"type": "integer"},
        "content": _EVENT_CONTENT,
        "state_key": {"type": "string"},
        "unsigned": {"type": "object"},
        "redacts": {"type": "string"},
    },
    "required": ["type", "event_id", "sender", "origin_server_ts", "content"],
}

_STATE_EVENT: dict[str, Any] = {**_CLIENT_EVENT, "required": [*_CLIENT_EVENT["required"],
                                                               "state_key"]}

# Invite/knock state: stripped events, as /v3/sync's `invite_state`.
_STRIPPED_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "state_key": {"type": "string"},
        "sender": {"type": "string", "pattern": "^@"},
        "content": _EVENT_CONTENT,
    },
    "required": ["type", "state_key", "sender", "content"],
}

_HERO: dict[str, Any] = {
    "type": "object",
    "properties": {
        "user_id": {"type": "string", "pattern": "^@"},
        "displayname": {"type": "string"},
        "avatar_url": {"type": "string"},
    },
    "required": ["user_id"],
    "additionalProperties": False,
}

_COUNT: dict[str, Any] = {"type": "integer", "minimum": 0}

ROOM_RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        # null: removed (MSC4186; matrix-rust-sdk reads `avatar` as a JsOption for this).
        "name": {"type": ["string", "null"]},
        "avatar": {"type": ["string", "null"]},
        "heroes": {"type": "array", "items": _HERO},
        # Absent means false (Synapse sends it only when true).
        "initial": {"type": "boolean"},
        "expanded_timeline": {"type": "boolean"},
        "unstable_expanded_timeline": {"type": "boolean"},
        "required_state": {"type": "array", "items": _STATE_EVENT},
        "timeline": {"type": "array", "items": _CLIENT_EVENT},
        "limited": {"type": "boolean"},
        "prev_batch": {"type": "string", "minLength": 1},
        "num_live": _COUNT,
        "joined_count": _COUNT,
        "invited_count": _COUNT,
        "notification_count": _COUNT,
        "highlight_count": _COUNT,
        "is_dm": {"type": "boolean"},
        "invite_state": {"type": "array", "items": _STRIPPED_EVENT},
        "knock_state": {"type": "array", "items": _STRIPPED_EVENT},
        "bump_stamp": {"type": "integer", "minimum": 0},
    },
    "additionalProperties": False,
}

# Synapse also sends the MSC3575 `ops` (one SYNC op per list); the issue does not need them, but
# when sent they must be well-formed.
_LIST_RESULT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "count": _COUNT,
        "ops": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "op": {"type": "string"},
                    "range": {
                        "type": "array",
                        "prefixItems": [_COUNT, _COUNT],
                        "minItems": 2,
                        "maxItems": 2,
                    },
                    "room_ids": _STRING_LIST,
                },
                "required": ["op"],
            },
        },
    },
    "required": ["count"],
    "additionalProperties": False,
}

_ACCOUNT_DATA_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {"type": {"type": "string"}, "content": _EVENT_CONTENT},
    "required": ["type", "content"],
}

_TO_DEVICE_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "sender": {"type": "string", "pattern": "^@"},
        "content": _EVENT_CONTENT,
    },
    "required": ["type", "sender", "content"],
}


def _ephemeral_rooms(event_type: str, content: dict[str, Any]) -> dict[str, Any]:
    """{"rooms": {room_id: {"type": event_type, "content": ...}}}, as the receipts and typing
    extensions answer."""
    return {
        "type": "object",
        "properties": {
            "rooms": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "properties": {"type": {"const": event_type}, "content": content},
                    "required": ["type", "content"],
                },
            },
        },
        "required": ["rooms"],
        "additionalProperties": False,
    }


_RECEIPT_CONTENT: dict[str, Any] = {
    # {event_id: {receipt_type: {user_id: {"ts": ..., "thread_id"?: ...}}}}
    "type": "object",
    "additionalProperties": {
        "type": "object",
        "additionalProperties": {
            "type": "object",
            "additionalProperties": {"type": "object"},
            "propertyNames": {"pattern": "^@"},
        },
    },
}

_TYPING_CONTENT: dict[str, Any] = {
    "type": "object",
    "properties": {"user_ids": {"type": "array", "items": {"type": "string", "pattern": "^@"}}},
    "required": ["user_ids"],
}

_EXTENSIONS_RESPONSE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "to_device": {
            "type": "object",
            "properties": {
                "next_batch": {"type": "string", "minLength": 1},
                "events": {"type": "array", "items": _TO_DEVICE_EVENT},
            },
            "required": ["next_batch", "events"],
            "additionalProperties": False,
        },
        "e2ee": {
            "type": "object",
            "properties": {
                "device_lists": {
                    "type": "object",
                    "properties": {"changed": _STRING_LIST, "left": _STRING_LIST},
                    "additionalProperties": False,
                },
                "device_one_time_keys_count": {
                    "type": "object", "additionalProperties": _COUNT,
                },
                "device_unused_fallback_key_types": _STRING_LIST,
            },
            # Always sent, even when unchanged (MSC2732, element-android#3725).
            "required": ["device_one_time_keys_count", "device_unused_fallback_key_types"],
            "additionalProperties": False,
        },
        "account_data": {
            "type": "object",
            "properties": {
                "global": {"type": "array", "items": _ACCOUNT_DATA_EVENT},
                "rooms": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": _ACCOUNT_DATA_EVENT},
                },
            },
            "additionalProperties": False,
        },
        "receipts": _ephemeral_rooms("m.receipt", _RECEIPT_CONTENT),
        "typing": _ephemeral_rooms("m.typing", _TYPING_CONTENT),
    },
    "additionalProperties": False,
}

RESPONSE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Simplified sliding sync response",
    "type": "object",
    "properties": {
        "pos": {"type": "string", "minLength": 1},
        "lists": {"type": "object", "additionalProperties": _LIST_RESULT},
        "rooms": {
            "type": "object",
            "propertyNames": {"pattern": "^!"},
            "additionalProperties": ROOM_RESULT_SCHEMA,
        },
        "extensions": _EXTENSIONS_RESPONSE,
        # Synapse's early versions sent the connection ID back; harmless if present.
        "txn_id": {"type": "string"},
    },
    "required": ["pos"],
    "additionalProperties": False,
}

# A Matrix error, as every 4xx answer must be.
ERROR_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {"errcode": {"type": "string", "pattern": "^M_"}, "error": {"type": "string"}},
    "required": ["errcode"],
}

_VALIDATORS = {
    id(schema): jsonschema.Draft202012Validator(schema)
    for schema in (REQUEST_BODY_SCHEMA, REQUEST_PARAMS_SCHEMA, RESPONSE_SCHEMA, ERROR_SCHEMA)
}


def _validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return _VALIDATORS[id(schema)]


def validate_request(body: Any, params: dict[str, str]) -> None:
    """Raise jsonschema.ValidationError unless `body` and `params` are a well-formed request."""
    _validator(REQUEST_BODY_SCHEMA).validate(body)
    _validator(REQUEST_PARAMS_SCHEMA).validate(params)


def request_errors(body: Any) -> list[str]:
    """Why `body` is not a valid request body (empty if it is)."""
    return [e.message for e in _validator(REQUEST_BODY_SCHEMA).iter_errors(body)]


def validate_response(body: Any) -> None:
    """Raise jsonschema.ValidationError unless `body` is a well-formed 200 response."""
    _validator(RESPONSE_SCHEMA).validate(body)


def validate_error(body: Any) -> None:
    """Raise jsonschema.ValidationError unless `body` is a Matrix error."""
    _validator(ERROR_SCHEMA).validate(body)
