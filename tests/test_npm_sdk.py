"""tests/npm_sdk.py: npm SDKs pinned exactly, run under node with JSON in and out."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.npm_sdk import NPM_DIR, NodeScriptError, run_node

ROOT = Path(__file__).resolve().parent.parent

LINEAR_VERIFY = """
import { LinearWebhookClient } from "@linear/sdk/webhooks";
async function main({ secret, body, signature }) {
  return new LinearWebhookClient(secret).verify(Buffer.from(body, "utf8"), signature);
}
"""


def test_every_npm_package_is_pinned_to_an_exact_version_in_the_lockfile() -> None:
    manifest = json.loads((NPM_DIR / "package.json").read_text("utf-8"))
    lock = json.loads((NPM_DIR / "package-lock.json").read_text("utf-8"))
    assert manifest["dependencies"]
    for name, version in manifest["dependencies"].items():
        assert version[0].isdigit(), f"{name}: {version} is a range, pin it (--save-exact)"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
    assert "tests/npm/node_modules" in (ROOT / ".gitignore").read_text("utf-8").splitlines()


def test_a_script_gets_its_input_and_returns_json_through_an_installed_sdk() -> None:
    secret, body = "lin_wh_test", json.dumps({"webhookTimestamp": 0, "type": "Issue"})
    good = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
    # the SDK checks the signature first, then the (here: ancient) signed timestamp
    with pytest.raises(NodeScriptError, match="Invalid webhook timestamp"):
        run_node(LINEAR_VERIFY, {"secret": secret, "body": body, "signature": good})
    with pytest.raises(NodeScriptError, match="Invalid webhook signature"):
        run_node(LINEAR_VERIFY, {"secret": secret, "body": body, "signature": "0" * 64})
    echo = "async function main(input) { console.log('noise'); return { got: input }; }"
    assert run_node(echo, {"a": [1, "é"]}) == {"got": {"a": [1, "é"]}}
    assert run_node("async function main() {}") is None


@pytest.mark.parametrize(("ci", "outcome"), [("", "1 skipped"), ("true", "1 failed")])
def test_without_node_the_tests_skip_locally_and_fail_under_ci(
    tmp_path: Path, ci: str, outcome: str
) -> None:
    (tmp_path / "test_needs_node.py").write_text(
        "from tests.npm_sdk import run_node\n\n"
        "def test_needs_node():\n    assert run_node('async function main() { return 1; }') == 1\n",
        encoding="utf-8",
    )
    env = {**os.environ, "CI": ci, "GATEWAY_TEST_NODE": str(tmp_path / "no-such-node")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )  # fmt: skip
    assert outcome in result.stdout, result.stdout
    assert result.returncode == (1 if ci else 0)
    reason = "node is required under CI=true" if ci else "no node: "
    assert reason in result.stdout
