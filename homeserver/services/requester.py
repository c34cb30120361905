"""Who is making a request: resolved once from the access token by the accounts service."""

from dataclasses import dataclass

from homeserver.errors import MatrixError
from homeserver.protocol.appservice import Registration

# The device of an application service's request that named none (spec "Identity
# assertion": such a request is made without a device); never a real device's ID, which is
# at least one character long.
NO_DEVICE = ""


@dataclass(frozen=True, slots=True)
class Requester:
    user_id: str
    device_id: str
    is_admin: bool = False
    # A guest account (spec "Guest Access"): limited to the endpoints guests may use.
    is_guest: bool = False
    # The application service whose as_token the request carried (acting as its sender or
    # as a user of its namespaces), or None for a user's own access token.
    appservice: Registration | None = None

    @property
    def rate_limited(self) -> bool:
        """False for the requests of an application service registered `rate_limited: false`
        (its sender's and its users' alike, as Synapse does)."""
        return self.appservice is None or self.appservice.rate_limited


def device_of(requester: Requester) -> str:
    """The requester's device, for what is kept per device (keys, pushers, sliding sync
    connections); 400 for an application service's request that named none."""
    if requester.device_id == NO_DEVICE:
        raise MatrixError(
            400, "M_MISSING_PARAM", "This request needs a device: name one with 'device_id'"
        )
    return requester.device_id
