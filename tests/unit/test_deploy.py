"""The deployment files agree with each other and with the code: one image everywhere, a lock in
step with pyproject.toml, cluster.yaml valid for Ray's launcher, and every job that a KubeRay
manifest or the cron submitter runs exists with flags its parser accepts."""

from __future__ import annotations

import importlib.util
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[2]
KUBERAY = sorted((ROOT / "deploy" / "kuberay").glob("*.yaml"))


def _image() -> str:
    return re.search(r"^IMAGE \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M).group(1)


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "deploy" / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version and canonicalize_name(name) not in pins, line
            pins[canonicalize_name(name)] = version
    return pins


def _docs():
    for path in KUBERAY:
        for doc in yaml.safe_load_all(path.read_text()):
            yield path.name, doc


def test_the_lock_pins_every_runtime_requirement_inside_its_range():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _lock()
    for line in [*project["dependencies"], *project["optional-dependencies"]["server"]]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in deploy/requirements.lock: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (line, pins[name])
    assert not {"pytest", "moto", "hypothesis"} & set(pins)  # the image carries no test tools


def test_the_image_is_rays_own_for_the_pinned_ray_and_python():
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    base = re.search(r"^ARG RAY_IMAGE=rayproject/ray:(\d+\.\d+\.\d+)-py(\d)(\d+)-gpu$", dockerfile, re.M)
    assert base, "the Dockerfile builds FROM rayproject/ray:<ray>-py<python>-gpu"
    assert base.group(1) == _lock()["ray"]
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert f"{base.group(2)}.{base.group(3)}" == "3.11" and ">=3.11" in requires
    assert "requirements.lock" in dockerfile and "--no-deps" in dockerfile


def test_cluster_yaml_launches_the_image_with_a_shared_token_and_an_idle_head():
    raw = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    config = prepare_config(raw)
    validate_config(config)
    assert raw["docker"]["image"] == _image()
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"] == {"CPU": 0}  # no decode task competes with the drivers
    for name, node in types.items():
        assert all(isinstance(v, int) for v in node["resources"].values()), name
        assert node["node_config"]["IamInstanceProfile"]["Name"], name  # every node reads S3
        assert node["node_config"]["ImageId"].startswith(("ami-", "resolve:ssm:")), name
    gpu = [n for n in types.values() if n["resources"].get("GPU")]
    cpu = [n for name, n in types.items() if name != config["head_node_type"] and not n["resources"].get("GPU")]
    for group in (gpu, cpu):
        assert group and all(n["min_workers"] == 0 < n["max_workers"] for n in group)
    assert raw["file_mounts"]["/home/ray/.ray/auth_token"] == "deploy/secrets/ray-auth-token"
    assert raw["setup_commands"] == []  # nothing installed at boot: the image is the stack
    server = " ".join(c for c in raw["head_start_ray_commands"] if "mlflow server" in c)
    assert "--allowed-hosts" in server and "mlflow.internal" in server and "--artifacts-destination s3://" in server
    assert "sqlite" not in server and "mlflow-backend-uri" in server
    assert "deploy/secrets/" in (ROOT / ".gitignore").read_text()


def _mappings(node):
    """Every mapping inside a manifest document, at any depth."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _mappings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _mappings(value)


def _strings_under(key: str) -> set[str]:
    return {m[key] for _, doc in _docs() for m in _mappings(doc) if isinstance(m.get(key), str)}


def test_every_manifest_names_the_one_image():
    kinds = {doc["kind"] for _, doc in _docs()}
    assert _strings_under("image") == {_image()}
    assert {"RayCluster", "RayJob", "RayCronJob", "CronJob", "Deployment", "Service"} <= kinds


def _job_module(script: str):
    path = ROOT / script
    assert path.is_file(), f"{script} does not exist"
    spec = importlib.util.spec_from_file_location(f"job_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _entrypoints():
    for name, doc in _docs():
        spec = doc.get("spec", {})
        if doc["kind"] == "RayJob":
            yield name, spec["entrypoint"]
        elif doc["kind"] == "RayCronJob":
            yield name, spec["jobTemplate"]["entrypoint"]
        elif doc["kind"] == "CronJob":
            [container] = spec["jobTemplate"]["spec"]["template"]["spec"]["containers"]
            command = " ".join(container["args"])
            assert spec["concurrencyPolicy"] == "Forbid"
            if "ray job submit" in command:
                # waits for the job (its exit status is the scan's); every attempt its own id
                assert "--no-wait" not in command and '--submission-id "lxn-scan-$(date -u +%F-%H%M%S)"' in command
                yield name, command.split(" -- ", 1)[1]
            else:  # the freshness check runs in its own pod, with the date filled in by the shell
                yield name, command.replace('"$(date -u -d yesterday +%F)"', "2026-12-01")


@pytest.mark.parametrize("name, entrypoint", list(_entrypoints()), ids=lambda v: v if v.endswith(".yaml") else "")
def test_every_entrypoint_is_a_job_whose_parser_accepts_its_flags(name, entrypoint):
    python, script, *flags = shlex.split(entrypoint)
    assert python == "python" and script.startswith("jobs/")
    config = _job_module(script).parse_config(flags)  # parses and validates: a bad flag raises
    for field in ("source", "data", "out", "storage"):
        value = getattr(config, field, None)
        for uri in value if isinstance(value, list) else [value]:
            assert uri is None or uri.startswith("s3://"), (name, field, uri)  # a cluster job reads and writes S3
    if not getattr(config, "check", None):  # the freshness check draws none
        assert getattr(config, "progress_bars", False) is False  # scheduled logs stay readable


def test_every_service_account_a_pod_names_is_shipped():
    """KubeRay does not create a service account the head names itself; a pod whose account is
    missing is never created."""
    shipped = {doc["metadata"]["name"] for _, doc in _docs() if doc["kind"] == "ServiceAccount"}
    named = _strings_under("serviceAccountName")
    assert named and named <= shipped, named - shipped
