"""Configuration: TOML validation names the bad key; zero-config mode; secret references."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import (
    ConfigError,
    config_from_env,
    load_config,
    resolve_secret,
    resolve_secret_text,
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return path


def test_env_mode_enables_one_source_per_secret_variable() -> None:
    config = config_from_env(
        {
            "STRIPE_WEBHOOK_SECRET": "whsec_a,whsec_b",
            "INTERCOM_CLIENT_SECRET": "ic",
            "GATEWAY_DATA_DIR": "/var/x",
        }
    )
    assert [(s.name, s.provider) for s in config.sources] == [
        ("stripe", "stripe"),
        ("intercom", "intercom"),
    ]
    assert config.sources[0].resolved_secrets({"STRIPE_WEBHOOK_SECRET": "whsec_a, whsec_b"}) == [
        "whsec_a",
        "whsec_b",
    ]
    assert config.gateway.data_dir == "/var/x"


def test_env_mode_defaults() -> None:
    config = config_from_env({})
    assert config.sources == []
    assert config.gateway.data_dir == "./.webhook-gateway"


def test_file_declares_two_sources_sharing_a_provider(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("whsec_from_file\n")
    path = write(
        tmp_path,
        f"""
[gateway]
data_dir = "{tmp_path / "data"}"

[[sources]]
name = "stripe-eu"
provider = "stripe"
secrets = ["env:EU_SECRET"]
tolerance = 600

[[sources]]
name = "stripe-us"
provider = "stripe"
secrets = ["file:{secret_file}"]
transform = "mypkg.mod:func"
body_limit = 2048
""",
    )
    config = load_config(path, {"EU_SECRET": "whsec_eu"})
    eu, us = config.sources
    assert (eu.name, eu.tolerance, eu.resolved_secrets({"EU_SECRET": "whsec_eu"})) == (
        "stripe-eu",
        600,
        ["whsec_eu"],
    )
    assert (us.body_limit, us.transform, us.resolved_secrets({})) == (
        2048,
        "mypkg.mod:func",
        ["whsec_from_file"],
    )


def test_data_dir_env_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[gateway]\ndata_dir = "/from/file"\n')
    assert load_config(path, {"GATEWAY_DATA_DIR": "/from/env"}).gateway.data_dir == "/from/env"


@pytest.mark.parametrize(
    ("text", "bad_key"),
    [
        ('[[sources]]\nname = "s"\nprovider = "stripe"\ntolerance = -1\n', "sources.0.tolerance"),
        ('[[sources]]\nname = "s"\n', "sources.0.provider"),
        (
            '[[sources]]\nname = "s"\nprovider = "stripe"\nsecrtes = ["env:X"]\n',
            "sources.0.secrtes",
        ),
        ('[forwarder]\nmax_batch_bytes = "big"\n', "forwarder.max_batch_bytes"),
        ("[gateway]\nunknown = 1\n", "gateway.unknown"),
        ('[[sources]]\nname = "has space"\nprovider = "stripe"\n', "sources.0.name"),
    ],
)
def test_invalid_file_names_the_bad_key(tmp_path: Path, text: str, bad_key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), {})
    assert bad_key in str(info.value)


def test_duplicate_source_names_refused(tmp_path: Path) -> None:
    text = '[[sources]]\nname = "a"\nprovider = "stripe"\n' * 2
    with pytest.raises(ConfigError, match="two sources are named 'a'"):
        load_config(write(tmp_path, text), {})


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[[sources"), {})
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "absent.toml", {})


def test_secret_references(tmp_path: Path) -> None:
    assert resolve_secret("inline:a,b", {}) == ["a", "b"]
    assert resolve_secret("env:S", {"S": " x "}) == ["x"]
    with pytest.raises(ConfigError, match="environment variable MISSING"):
        resolve_secret("env:MISSING", {})
    with pytest.raises(ConfigError, match="must start with env:, file: or inline:"):
        resolve_secret("whsec_plain", {})
    with pytest.raises(ConfigError, match="secret file"):
        resolve_secret(f"file:{tmp_path / 'nope'}", {})
    with pytest.raises(ConfigError, match="resolves to nothing"):
        resolve_secret("inline: , ", {})


def test_outbox_backend_defaults_to_sqlite_and_the_database_url_selects_postgres() -> None:
    assert config_from_env({}).outbox.backend == "sqlite"
    assert config_from_env({"GATEWAY_DATABASE_URL": "  "}).outbox.backend == "sqlite"
    outbox = config_from_env({"GATEWAY_DATABASE_URL": "postgresql://db/gw"}).outbox
    assert (outbox.backend, outbox.url) == ("postgres", "env:GATEWAY_DATABASE_URL")
    assert (outbox.pool_size, outbox.statement_timeout, outbox.migrate) == (4, 10.0, "auto")


def test_postgres_keys_in_the_file(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            '[outbox]\nbackend = "postgres"\nurl = "file:/run/secrets/db"\npool_size = 8\n'
            'statement_timeout = 30\nmigrate = "off"\nlisten = false\n',
        ),
        {},
    )
    outbox = config.outbox
    assert (outbox.backend, outbox.url, outbox.pool_size) == ("postgres", "file:/run/secrets/db", 8)
    assert (outbox.statement_timeout, outbox.migrate, outbox.listen) == (30.0, "off", False)
    with pytest.raises(ConfigError, match=r"outbox\.backend"):
        load_config(write(tmp_path, '[outbox]\nbackend = "mysql"\n'), {})
    with pytest.raises(ConfigError, match=r"outbox\.pool_size"):
        load_config(write(tmp_path, "[outbox]\npool_size = 0\n"), {})


def test_a_secret_text_keeps_its_commas() -> None:
    url = "postgresql://gw@db1:5432,db2:5432/gw?target_session_attrs=read-write"
    assert resolve_secret_text("env:U", {"U": f" {url}\n"}) == url
    with pytest.raises(ConfigError, match="resolves to nothing"):
        resolve_secret_text("inline: ", {})
