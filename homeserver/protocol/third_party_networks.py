"""Third-party networks of application services (spec Client-Server API "Third-party Networks",
Application Service API "Third-party Networks"; the appservice room directory).

A bridge declares `protocols` in its registration and describes each one when asked
(`GET /_matrix/app/v1/thirdparty/protocol/{protocol}`): user and location fields, and the
`instances` of the protocol it bridges, each naming its `network_id`. Clients see one protocol
per name, whichever services bridge it; this module merges the services' answers the way Synapse
does, so clients and bridges find the same shapes on both servers:

- A protocol's description is the first valid answer's, with the `instances` of every valid
  answer concatenated in registration order. An answer is valid when it is an object whose
  `instances` is a list of objects; anything else is left out, as is a service that failed.
- Each instance naming a `network_id` gets `instance_id` = `<service id>|<network id>`: the
  value clients pass back as `third_party_instance_id` to /publicRooms, which reads the rooms
  that service listed under that network.
- A location (user) found by a lookup is kept when it is an object with string `alias`
  (`userid`) and `protocol` and an object `fields`; the others are dropped one by one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

INSTANCE_SEPARATOR = "|"

# The kinds of third-party entity a lookup finds, and the Matrix ID each result must name.
EntityKind = Literal["location", "user"]
ENTITY_ID_FIELD: dict[EntityKind, str] = {"location": "alias", "user": "userid"}


def instance_id(service_id: str, network_id: str) -> str:
    return f"{service_id}{INSTANCE_SEPARATOR}{network_id}"


def parse_instance_id(value: str) -> tuple[str, str]:
    """(service id, network id) of a `third_party_instance_id`. A value without the separator
    is no instance of ours: its network ID is empty, which names no network (a room is listed
    under a path segment, never empty), so it lists no rooms, as an unknown instance does."""
    service_id, _, network_id = value.partition(INSTANCE_SEPARATOR)
    return service_id, network_id


def protocol_description(service_id: str, answer: object) -> dict[str, Any] | None:
    """A service's valid description of a protocol with the instance IDs filled in (a copy), or
    None for an answer that is not one."""
    if not isinstance(answer, dict):
        return None
    instances = answer.get("instances")
    if not isinstance(instances, list) or not all(isinstance(i, dict) for i in instances):
        return None
    filled = []
    for instance in instances:
        network_id = instance.get("network_id")
        if isinstance(network_id, str):
            instance = {**instance, "instance_id": instance_id(service_id, network_id)}
        filled.append(instance)
    return {**answer, "instances": filled}


def merge_descriptions(descriptions: Iterable[dict[str, Any] | None]) -> dict[str, Any] | None:
    """One protocol as clients see it: the first description, every description's instances;
    None when no service described it."""
    valid = [d for d in descriptions if d is not None]
    if not valid:
        return None
    return {**valid[0], "instances": [i for d in valid for i in d["instances"]]}


def _valid_entities(kind: EntityKind, answer: object) -> list[dict[str, Any]]:
    """The well-formed results in a service's answer to a location or user lookup."""
    if not isinstance(answer, list):
        return []
    return [entity for entity in answer if _is_entity(kind, entity)]


def _is_entity(kind: EntityKind, entity: object) -> bool:
    if not isinstance(entity, dict):
        return False
    strings = (ENTITY_ID_FIELD[kind], "protocol")
    return all(isinstance(entity.get(k), str) for k in strings) and isinstance(
        entity.get("fields"), dict
    )


def merge_entities(kind: EntityKind, answers: Sequence[object]) -> list[dict[str, Any]]:
    """Every service's well-formed results, in registration order."""
    return [entity for answer in answers for entity in _valid_entities(kind, answer)]
