"""``webhook-gateway preview`` and ``transforms`` run as the installed command, as plugin authors
run them: headers given with ``--header`` reach the transform; a configured source's transform
and prefix are used; nothing is verified.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.helpers import FIXTURES
from tests.server import console_script

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("INNGEST_", "GATEWAY_"))}
    return subprocess.run(
        [*console_script(), *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        timeout=60,
        check=False,
    )


def test_preview_passes_headers_to_the_transform() -> None:
    result = run(
        "preview",
        "github",
        str(FIXTURES / "more/github/pull_request.opened.json"),
        "--header",
        "X-GitHub-Event: pull_request",
        "--header",
        "X-GitHub-Delivery:72d3162e-cc78-11e3-81ab-4c9367dc0958",
    )
    assert result.returncode == 0, result.stderr
    [event] = json.loads(result.stdout)
    assert event["name"] == "github/pull_request.opened"
    assert event["id"] == "github-72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert event["data"]["number"] == 2


def test_preview_uses_a_configured_source_and_its_prefix(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        '[[sources]]\nname = "standard"\nprovider = "standard"\nprefix = "clerk"\n'
        'secrets = ["inline:whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]\n'
    )
    payload = str(FIXTURES / "more/standard/clerk.user.created.json")
    result = run(
        "preview", "standard", payload, "--header", "svix-id: msg_1", "--config", str(config)
    )
    assert result.returncode == 0, result.stderr
    [event] = json.loads(result.stdout)
    assert (event["name"], event["id"]) == ("clerk/user.created", "clerk-msg_1")
    assert result.stderr == ""  # the name follows the source's prefix: no warning


def test_preview_of_a_filtered_webhook_prints_no_events_and_a_bad_header_is_refused() -> None:
    ping = str(FIXTURES / "intercom/ping.json")
    result = run("preview", "intercom", ping)
    assert (result.returncode, json.loads(result.stdout)) == (0, [])
    result = run("preview", "github", ping, "--header", "no-colon-here")
    assert result.returncode == 2 and "Name:value" in result.stderr


def test_transforms_lists_builtins_and_directory_plugins_with_their_origin() -> None:
    result = run("transforms", env={"GATEWAY_TRANSFORMS_DIR": str(ROOT / "examples/transforms")})
    assert result.returncode == 0, result.stderr
    origins = dict(line.split(None, 1) for line in result.stdout.splitlines())
    for name in ("stripe", "slack", "intercom", "github", "shopify", "standard", "hmac"):
        assert origins[name] == f"builtin (transforms.{name})"
    assert origins["stripe-billing"] == (
        f"directory {ROOT / 'examples/transforms/stripe_billing.py'}"
    )
