"""Who is making a request: resolved once from the access token by the accounts service."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Requester:
    user_id: str
    device_id: str
    is_admin: bool = False
    # A guest account (spec "Guest Access"): limited to the endpoints guests may use.
    is_guest: bool = False
