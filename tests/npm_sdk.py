"""Providers' own npm SDKs in the Python tests: a node script run with tests/npm's packages.

The packages are pinned in ``tests/npm/package.json`` + ``package-lock.json`` (exact versions)
and installed by ``.ci/run`` with ``npm ci --prefix tests/npm``. Add one with
``npm install --prefix tests/npm --save-exact <pkg>@<version>`` and commit both files.

``run_node(script, payload)`` runs ``script`` (an ES module) in ``tests/npm`` so that its
``import`` lines find the installed packages. The script defines ``async function main(input)``;
``input`` is ``payload`` (JSON), and ``main``'s return value comes back (JSON)::

    LINEAR = '''
    import { LinearWebhookClient } from "@linear/sdk/webhooks";
    async function main({ secret, body, signature }) {
      return new LinearWebhookClient(secret).verify(Buffer.from(body), signature);
    }
    '''
    assert run_node(LINEAR, {"secret": ..., "body": ..., "signature": ...}) is True

A script that throws raises ``NodeScriptError`` (its message holds the JS error's message).
Policy (as tests/pg.py's): without ``node`` a test that calls ``run_node`` is skipped, or fails
under ``CI=true``. With ``node`` but without installed (or with outdated) packages the helper
runs ``npm ci`` itself once; a failed install fails the test. ``GATEWAY_TEST_NODE`` names
another node binary.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

NPM_DIR = Path(__file__).resolve().parent / "npm"
NODE_VARIABLE = "GATEWAY_TEST_NODE"

_MARK = "\n@@npm_sdk@@"  # the answer follows the last mark (an SDK may print to stdout too)
_RUNNER = """
const MARK = "@MARK@";
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
try {
  const result = await main(JSON.parse(Buffer.concat(chunks).toString("utf8")));
  process.stdout.write(MARK + JSON.stringify({ result: result === undefined ? null : result }));
} catch (error) {
  process.stdout.write(MARK + JSON.stringify({ error: String(error?.message ?? error) }));
}
""".replace('"@MARK@"', json.dumps(_MARK))

_installed = False


class NodeScriptError(Exception):
    """The node script threw; the message is the JS error's message."""


def _under_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> None:
    if _under_ci():
        pytest.fail(f"node is required under CI=true: {reason}", pytrace=False)
    pytest.skip(f"no node: {reason}")


def node_binary() -> str:
    """The node binary (``$GATEWAY_TEST_NODE`` or ``node`` on PATH); skips/fails without."""
    chosen = os.environ.get(NODE_VARIABLE, "").strip()
    found = shutil.which(chosen or "node")
    if found is None:
        _unavailable(f"{chosen or 'node'} is not installed (Debian: apt-get install nodejs npm)")
        raise AssertionError("unreachable")
    return found


def _installed_matches_lock() -> bool:
    """Whether node_modules holds every package version package-lock.json pins."""
    hidden = NPM_DIR / "node_modules" / ".package-lock.json"
    try:
        wanted = json.loads((NPM_DIR / "package-lock.json").read_text("utf-8"))["packages"]
        have = json.loads(hidden.read_text("utf-8"))["packages"]
    except (OSError, ValueError, KeyError):
        return False
    return all(
        have.get(path, {}).get("version") == info.get("version")
        for path, info in wanted.items()
        if path and not info.get("optional")
    )


def ensure_installed() -> None:
    """Run ``npm ci`` in tests/npm unless the pinned packages are already installed."""
    global _installed
    if _installed:
        return
    node_binary()
    with open(NPM_DIR / "package.json", "rb") as guard:  # one installer at a time
        fcntl.flock(guard, fcntl.LOCK_EX)
        if not _installed_matches_lock():
            npm = shutil.which("npm")
            if npm is None:
                pytest.fail("node is installed but npm is not: install npm", pytrace=False)
            done = subprocess.run(
                [npm, "ci", "--prefix", str(NPM_DIR), "--no-audit", "--no-fund"],
                capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            if done.returncode != 0:
                pytest.fail(f"npm ci --prefix tests/npm failed:\n{done.stderr}", pytrace=False)
    _installed = True


def run_node(script: str, payload: Any = None, *, timeout: float = 60) -> Any:
    """Run ``script``'s ``main(payload)`` under node with tests/npm's packages (see above)."""
    ensure_installed()
    done = subprocess.run(
        [node_binary(), "--input-type=module", "--eval", script + _RUNNER],
        input=json.dumps(payload), capture_output=True, text=True, cwd=NPM_DIR, timeout=timeout,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"node exited with {done.returncode}:\n{done.stderr}")
    if _MARK not in done.stdout:
        raise RuntimeError(f"node printed no answer:\n{done.stdout}\n{done.stderr}")
    answer = json.loads(done.stdout.rsplit(_MARK, 1)[1])
    if "error" in answer:
        raise NodeScriptError(answer["error"])
    return answer["result"]
