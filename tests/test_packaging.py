"""The licence the package declares travels with every artefact: wheel, sdist and image."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from tests.test_deploy import instructions

ROOT = Path(__file__).resolve().parent.parent
LICENSE = ROOT / "LICENSE"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel and an sdist built from this checkout, as a release would build them."""
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: the test extra installs the build backend, so no network is needed here.
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel", "-o", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return out


def test_the_licence_text_is_apache_2() -> None:
    text = LICENSE.read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text


def test_the_wheel_carries_the_licence_and_an_spdx_expression(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        licences = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert licences, f"the wheel has no licence file: {names}"
        assert zf.read(licences[0]).decode() == LICENSE.read_text()
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(zf.read(metadata_name).decode())
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]


def test_the_sdist_carries_the_licence(dist: Path) -> None:
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as tf:
        (member,) = [
            m for m in tf.getmembers() if m.name.count("/") == 1 and m.name.endswith("/LICENSE")
        ]
        extracted = tf.extractfile(member)
        assert extracted is not None
        assert extracted.read().decode() == LICENSE.read_text()


def test_the_image_carries_the_licence() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "!LICENSE" in ignore, "the build context must include LICENSE"
    final_copies = instructions("COPY", final=True)
    assert any(c.endswith("/usr/share/licenses/webhook-gateway/LICENSE") for c in final_copies)
