"""Each provider's replay window defaults to the one its sender documents; a source's own
``tolerance`` (even 300) always wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.app import build_provider
from gateway.config import SourceConfig, config_from_env
from gateway.providers import DEFAULT_TOLERANCE, get_provider

SECRETS = {
    "paddle": "pdl_ntfset_01hsdn8d43dt7mezr1ef2jtbaw_abcdefghijklmnopqrstuvwxyz012345",
    "workos": "whsec_workos_signing_secret_0123456789",
    "calendly": "calendly-signing-key-0123456789",
    "twitch": "twitch-subscription-secret",
    "linear": "lin_wh_0123456789abcdefghijklmnopqrstuvwxyz",
    "stripe": "whsec_test_0123456789",
}
DOCUMENTED = {"paddle": 5, "workos": 180, "calendly": 180, "twitch": 600, "linear": 60,
              "stripe": DEFAULT_TOLERANCE}  # fmt: skip


@pytest.mark.parametrize(("name", "window"), sorted(DOCUMENTED.items()))
def test_a_source_without_tolerance_gets_the_senders_window(name: str, window: int) -> None:
    assert get_provider(name).default_tolerance == window
    source = SourceConfig(name=name, provider=name, secrets=[f"inline:{SECRETS[name]}"])
    provider, _ = build_provider(0, source, {})
    assert provider.tolerance == window
    env = {f"{name.upper()}_WEBHOOK_SECRET": SECRETS[name]}
    zero_config = config_from_env(env)
    provider, _ = build_provider(0, zero_config.source(name), env)  # type: ignore[arg-type]
    assert provider.tolerance == window


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
@pytest.mark.parametrize("tolerance", [0, 30, 300])
def test_a_sources_own_tolerance_wins(name: str, tolerance: int, tmp_path: Path) -> None:
    source = SourceConfig(
        name=name, provider=name, secrets=[f"inline:{SECRETS[name]}"], tolerance=tolerance
    )
    provider, _ = build_provider(0, source, {})
    assert provider.tolerance == tolerance
