"""``webhook-gateway send <name> --sample <type>`` for the named providers the gateway can sign
(twitch, x, okta; discord holds only a public key), against a real gateway on a loopback socket."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import load_config
from tests.eventapi_standin import event_api
from tests.server import run_gateway

#: source -> (secret, sample, expected event names)
CASES: dict[str, tuple[str, str, list[str]]] = {
    "twitch": ("s3cRe7-eventsub-0123", "channel.follow", ["twitch/channel.follow"]),
    "okta": ("okta-hook-9f8e7d6c5b4a", "user.session.start", ["okta/user.session.start"]),
    "x": ("kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw7x9Bbyz", "tweet.create", ["x/tweet.create"]),
}


def write_config(tmp_path: Path, api_url: str) -> Path:
    lines = [
        f'[gateway]\ndata_dir = "{tmp_path / "data"}"\nstrict_names = true\n',
        f'[inngest]\nbase_url = "{api_url}"\nevent_key = "inline:test-key"\n',
        "[forwarder]\nbackoff_base = 0.01\nbackoff_max = 0.05\nidle_poll = 0.02\n",
    ]
    for name, (secret, _, _) in CASES.items():
        lines.append(
            f'[[sources]]\nname = "{name}"\nprovider = "{name}"\n'
            f"secrets = [{json.dumps('inline:' + secret)}]\n"
        )
    path = tmp_path / "gateway.toml"
    path.write_text("\n".join(lines))
    return path


def test_send_delivers_each_sample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with event_api() as api:
        path = write_config(tmp_path, api.url)
        with run_gateway(load_config(path, {})) as gw:
            for source, (_, sample, _) in CASES.items():
                argv = ["send", source, "--sample", sample, "--url", gw.url, "--config", str(path)]
                assert main(argv, {}) == 0, capsys.readouterr()
                out = capsys.readouterr().out.splitlines()
                assert out[1].startswith("200 OK: accepted:"), out
            expected = sorted(name for *_, names in CASES.values() for name in names)
            assert api.wait_for_events(len(expected))
    assert sorted(event["name"] for event in api.events) == expected
