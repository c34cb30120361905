"""A real nginx running a shipped deploy/ file in front of Moot, for the deployment tests.

The shipped file is used as it is, but for what must differ on a test machine: its listen
ports (loopback, free), its upstream addresses (the test's Moot processes) and its certificate
paths (one self-signed certificate). Every substitution must find its target, so a shipped
file that changed shape fails here instead of being tested half-substituted. nginx runs in the
foreground under a wrapper config (the `http` block the shipped server blocks are included in)
with its pid, logs and temporary files in the test's directory.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from homeserver.setup import write_tls_certificate
from tests.federation_helpers import free_port

START_DEADLINE_S = 30.0
POLL_S = 0.02
# Upstream ports of the shipped files: listeners.client, listeners.federation, and two workers.
CLIENT, FEDERATION, WORKER_1, WORKER_2 = "8008", "18448", "8018", "8019"
# How Moot is told to trust the proxy (which key is current is the config's business).
TRUSTED_LOOPBACK = {"http.trusted_proxies": ["127.0.0.1/32"]}


def nginx_binary() -> str:
    """Debian's nginx: on the PATH, or in /usr/sbin (not on a non-root user's PATH). The test
    asking is skipped, with the reason printed, only when there is none."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if found is None:
        print("SKIPPED: no nginx binary (`make tools` installs Debian's package)")
        pytest.skip("nginx is not installed")
    return found


@dataclass(frozen=True)
class OutsidePorts:
    """Where the test's nginx listens instead of 80, 443 and 8448."""

    http: int
    https: int
    federation: int

    @classmethod
    def free(cls) -> OutsidePorts:
        return cls(free_port(), free_port(), free_port())


def _replace(text: str, pattern: str, replacement: str) -> str:
    changed, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    assert count, f"the shipped nginx file no longer has {pattern!r}"
    return changed


def localized(
    shipped: str, outside: OutsidePorts, upstreams: Mapping[str, int], cert: Path, key: Path
) -> str:
    """The shipped file with test ports, upstream ports and certificate paths."""
    text = _replace(shipped, r"^\s*listen \[::\]:.*\n", "")  # the machine may have no IPv6
    for shipped_port, port in (("80", outside.http), ("443", outside.https),
                               ("8448", outside.federation)):
        text = _replace(text, rf"listen {shipped_port}\b", f"listen 127.0.0.1:{port}")
    for shipped_port, port in upstreams.items():
        text = _replace(text, rf"server 127\.0\.0\.1:{shipped_port};", f"server 127.0.0.1:{port};")
    text = _replace(text, r"/etc/letsencrypt/live/[^/;]+/fullchain\.pem", str(cert))
    return _replace(text, r"/etc/letsencrypt/live/[^/;]+/privkey\.pem", str(key))


def wrapper(prefix: Path, included: Path) -> str:
    """The main config a distribution's nginx.conf would be, reduced to what the test needs."""
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read the test's files
    temp = "\n".join(f"    {kind}_temp_path {prefix}/{kind}_temp;"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (
        f"{user}worker_processes 1;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\n"
        "events { worker_connections 256; }\n"
        f"http {{\n    access_log {prefix}/access.log;\n{temp}\n    include {included};\n}}\n"
    )


@dataclass
class Nginx:
    """A running nginx and the URLs of its outside ports."""

    proc: asyncio.subprocess.Process
    prefix: Path
    outside: OutsidePorts

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.outside.https}"

    @property
    def federation(self) -> str:
        return f"https://127.0.0.1:{self.outside.federation}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.outside.http}"

    def error_log(self) -> str:
        log = self.prefix / "error.log"
        return log.read_text(errors="replace") if log.exists() else ""

    async def wait_until_up(self) -> None:
        """Until a client request passes through nginx to Moot, or nginx exits."""
        deadline = time.monotonic() + START_DEADLINE_S
        async with aiohttp.ClientSession() as session:
            while True:
                assert self.proc.returncode is None, f"nginx exited:\n{self.error_log()}"
                try:
                    async with session.get(self.https + "/_matrix/client/versions",
                                           ssl=False) as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline, f"nginx not up:\n{self.error_log()}"
                await asyncio.sleep(POLL_S)


def write_configs(shipped: Path, prefix: Path, upstreams: Mapping[str, int]
                  ) -> tuple[Path, OutsidePorts]:
    """The wrapper config (returned), the localized shipped file and a certificate in `prefix`."""
    prefix.mkdir(parents=True, exist_ok=True)
    cert, key = prefix / "cert.pem", prefix / "key.pem"
    write_tls_certificate(cert, key, "matrix.example.org")
    outside = OutsidePorts.free()
    included = prefix / "moot.conf"
    included.write_text(localized(shipped.read_text(), outside, upstreams, cert, key))
    main = prefix / "nginx.conf"
    main.write_text(wrapper(prefix, included))
    return main, outside


@asynccontextmanager
async def nginx_in_front(
    binary: str, shipped: Path, prefix: Path, upstreams: Mapping[str, int]
) -> AsyncIterator[Nginx]:
    """nginx serving `shipped` (with `upstreams` substituted), stopped on the way out."""
    main, outside = write_configs(shipped, prefix, upstreams)
    proc = await asyncio.create_subprocess_exec(
        binary, "-p", str(prefix), "-c", str(main), "-e", str(prefix / "error.log"),
        "-g", "daemon off;", stdin=asyncio.subprocess.DEVNULL,
    )
    nginx = Nginx(proc, prefix, outside)
    try:
        await nginx.wait_until_up()
        yield nginx
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()
