"""Account management with an unmodified matrix-nio client: listing and deleting devices through
nio's own User-Interactive Authentication round trip (`delete_devices` without, then with
`auth`), and changing the password with UIA, after which nio logs in with the new password;
a second stage that adds a field the first lacked, and a stage answered with another user's
password.

nio has no password-change helper, so that request goes through its raw `AsyncClient.send`,
the way an application built on nio would call an endpoint nio does not wrap.
"""

from __future__ import annotations

from collections.abc import Callable

import nio

from tests.helpers import PASSWORD
from tests.nio_clients import NEW_PASSWORD, change_password, ok, password_stage, register


async def test_devices_and_password_change_with_uia(
    clients: Callable[[str], nio.AsyncClient],
) -> None:
    alice, laptop = clients("alice"), clients("alice")
    await register(alice)
    login = ok(await laptop.login(PASSWORD, device_name="laptop"), "login")
    assert isinstance(login, nio.LoginResponse)

    devices = ok(await alice.devices(), "devices")
    assert isinstance(devices, nio.DevicesResponse)
    names = {d.id: d.display_name for d in devices.devices}
    assert set(names) == {alice.device_id, laptop.device_id}
    assert names[laptop.device_id] == "laptop"

    challenge = await alice.delete_devices([laptop.device_id])
    assert isinstance(challenge, nio.DeleteDevicesAuthResponse), challenge
    deleted = await alice.delete_devices(
        [laptop.device_id], password_stage(alice, challenge.session, PASSWORD)
    )
    assert isinstance(deleted, nio.DeleteDevicesResponse), deleted
    gone = await laptop.whoami()
    assert isinstance(gone, nio.WhoamiError) and gone.status_code == "M_UNKNOWN_TOKEN"

    await change_password(alice, PASSWORD, NEW_PASSWORD, {"logout_devices": True})
    assert isinstance(await alice.whoami(), nio.WhoamiResponse)  # this session survives

    refused = await clients("alice").login(PASSWORD)
    assert isinstance(refused, nio.LoginError) and refused.status_code == "M_FORBIDDEN"
    again = clients("alice")
    # A device name is given: nio insists on `display_name`, which the spec leaves out for
    # unnamed devices ("Absent if no name has been set").
    relogin = ok(await again.login(NEW_PASSWORD, device_name="phone"), "login")
    assert isinstance(relogin, nio.LoginResponse)
    devices = ok(await again.devices(), "devices")
    assert {d.id for d in devices.devices} == {alice.device_id, again.device_id}


async def test_uia_with_fields_added_between_stages_and_device_owner_checked(
    clients: Callable[[str], nio.AsyncClient],
) -> None:
    """nio's device deletion answered with another user's password is refused (403) and
    deletes nothing; a password change whose second stage adds `logout_devices: false` (as
    clients do) succeeds and keeps the other sessions; nio's deletion then completes."""
    alice, laptop, bob = clients("alice"), clients("alice"), clients("bob")
    await register(alice)
    await register(bob)
    ok(await laptop.login(PASSWORD, device_name="laptop"), "login")

    challenge = await alice.delete_devices([laptop.device_id])
    assert isinstance(challenge, nio.DeleteDevicesAuthResponse), challenge
    refused = await alice.delete_devices(
        [laptop.device_id], password_stage(bob, challenge.session, PASSWORD)
    )
    assert isinstance(refused, nio.DeleteDevicesError), refused
    assert refused.status_code == "M_FORBIDDEN"
    assert isinstance(await laptop.whoami(), nio.WhoamiResponse)

    await change_password(alice, PASSWORD, NEW_PASSWORD, {}, {"logout_devices": False})
    assert isinstance(await laptop.whoami(), nio.WhoamiResponse)  # kept, as the client asked
    relogin = ok(await clients("alice").login(NEW_PASSWORD, device_name="phone"), "login")
    assert isinstance(relogin, nio.LoginResponse)

    challenge = await alice.delete_devices([laptop.device_id])
    assert isinstance(challenge, nio.DeleteDevicesAuthResponse), challenge
    deleted = await alice.delete_devices(
        [laptop.device_id], password_stage(alice, challenge.session, NEW_PASSWORD)
    )
    assert isinstance(deleted, nio.DeleteDevicesResponse), deleted
    gone = await laptop.whoami()
    assert isinstance(gone, nio.WhoamiError) and gone.status_code == "M_UNKNOWN_TOKEN"
