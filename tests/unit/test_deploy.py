"""The deployment files agree with each other and with the code: one image everywhere, a lock in
step with pyproject.toml, cluster.yaml valid for Ray's launcher, and every job that a KubeRay
manifest or the cron submitter runs exists with flags its parser accepts."""

from __future__ import annotations

import json

import importlib.util
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_K8S = ROOT / "deploy" / "kuberay"
# The manifests: the kustomize base and the one-off jobs beside it (overlays are tested rendered).
KUBERAY = sorted([*DEPLOY_K8S.glob("*.yaml"), *(p for p in (DEPLOY_K8S / "base").glob("*.yaml")
                                                if p.name != "kustomization.yaml")])
JOB_SETTINGS = "/etc/lxn/"  # where the head (and the check pod) mount the ConfigMap lxn-jobs


def _image() -> str:
    return re.search(r"^IMAGE \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M).group(1)


def _lock() -> dict[str, str]:
    """{package: version} of deploy/requirements.lock; every pin carries its wheels' hashes."""
    pins, text = {}, (ROOT / "deploy" / "requirements.lock").read_text()
    for entry in re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2]):  # one pin and its hash lines
        match = re.match(r"([A-Za-z0-9_.-]+)==([^\s\\;]+)", entry)
        assert match, entry
        name, version = canonicalize_name(match.group(1)), match.group(2)
        assert name not in pins and "+" not in version, entry
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", entry), f"{name} has no hash: run `make lock`"
        pins[name] = version
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
    assert "simple-icons-pack" not in pins  # the benchmarks' marks: an extra, not the cluster's stack


def test_the_image_is_rays_own_for_the_pinned_ray_and_python():
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    base = re.search(r"^ARG RAY_IMAGE=rayproject/ray:(\d+\.\d+\.\d+)-py(\d)(\d+)-gpu$", dockerfile, re.M)
    assert base, "the Dockerfile builds FROM rayproject/ray:<ray>-py<python>-gpu"
    assert base.group(1) == _lock()["ray"]
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert f"{base.group(2)}.{base.group(3)}" == "3.11" and ">=3.11" in requires
    assert "requirements.lock" in dockerfile and "--require-hashes --no-deps" in dockerfile
    assert "pip check" in dockerfile


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
    assert raw["file_mounts"] == {"/home/ray/.ray/auth_token": "deploy/secrets/ray-auth-token"}  # no other secret
    assert raw["setup_commands"] == []  # nothing installed at boot: the image is the stack
    assert "deploy/secrets/" in (ROOT / ".gitignore").read_text()


def test_the_mlflow_server_runs_on_the_head_alone_under_a_restart_policy_with_its_secret():
    raw = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    head_init = raw["initialization_commands"]  # the head's (ray up): worker types list their own
    server = " ".join(c for c in head_init if "mlflow server" in c)
    assert "--restart unless-stopped" in server and "--env-file" in server
    assert "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false" in server  # no job-runner processes: lxn runs no server jobs
    assert "--allowed-hosts" in server and "mlflow.internal" in server and "--artifacts-destination s3://" in server
    assert "sqlite" not in server and "--backend-store-uri" not in server  # the URI is never an argument
    assert "ssm get-parameter" in server and "/lxn/mlflow-backend-uri" in server
    assert not any("mlflow server" in c for c in raw["head_start_ray_commands"] + raw["head_setup_commands"])
    for name, node in raw["available_node_types"].items():
        if name == raw["head_node_type"]:
            continue
        assert "initialization_commands" in node, f"{name} would run the head's commands (the server, the secret)"
        assert not any("mlflow" in c or "ssm" in c for c in node["initialization_commands"]), name
        assert node["initialization_commands"][0] == head_init[0]  # the same registry login
    # every image the file pulls is the one image, so a registry change is one edit per file
    images = set(re.findall(r"[\w.-]+(?:/[\w.-]+)+:[\w.-]+", " ".join(head_init)))
    assert images == {_image()} == {raw["docker"]["image"]}
    # mlflow.internal follows the head: set in each container from Ray's own head address
    assert any("127.0.0.1 mlflow.internal" in c for c in raw["head_setup_commands"])
    assert any("$RAY_HEAD_IP mlflow.internal" in c for c in raw["worker_setup_commands"])
    assert "mlflow.internal:5000" in " ".join(raw["docker"]["run_options"])


def _policy_actions(path: Path) -> dict[str, set[str]]:
    """action -> the resources a policy allows it on."""
    actions: dict[str, set[str]] = {}
    for statement in json.loads(path.read_text())["Statement"]:
        assert statement["Effect"] == "Allow"
        for action in [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]:
            resources = statement["Resource"]
            actions.setdefault(action, set()).update([resources] if isinstance(resources, str) else resources)
    return actions


# What each call of Ray's AWS node provider needs; a call missing here fails the test below, so a
# Ray upgrade that calls something new is noticed before the autoscaler is refused in production.
EC2_CALLS = {"create_instances": "ec2:RunInstances", "create_tags": "ec2:CreateTags",
             "instances.filter": "ec2:DescribeInstances", "describe_instance_types": "ec2:DescribeInstanceTypes",
             "describe_images": "ec2:DescribeImages", "terminate_instances": "ec2:TerminateInstances",
             "terminate": "ec2:TerminateInstances", "stop_instances": "ec2:StopInstances", "stop": "ec2:StopInstances",
             "start_instances": "ec2:StartInstances", "wait_until_stopped": "ec2:DescribeInstances",
             "describe_launch_template_versions": "ec2:DescribeLaunchTemplateVersions"}


def test_the_heads_role_lets_rays_autoscaler_launch_workers_and_the_workers_role_does_not():
    import ray

    provider = (Path(ray.__file__).parent / "autoscaler/_private/aws/node_provider.py").read_text()
    calls = set(re.findall(r"(?:self\.ec2(?:_fail_fast)?|ec2|node|client)\.(?:meta\.client\.)?([a-z_]+(?:\.filter)?)\(", provider))
    calls -= {"meta", "get", "append", "items", "pop", "update", "instances"}
    unknown = sorted(c for c in calls if c not in EC2_CALLS and not c.startswith("describe_instance_status"))
    assert unknown == [], f"Ray's AWS node provider calls {unknown}: add their IAM actions to EC2_CALLS and the policy"
    head = _policy_actions(ROOT / "deploy/aws/lxn-ray-head-policy.json")
    worker = _policy_actions(ROOT / "deploy/aws/lxn-ray-worker-policy.json")
    needed = {EC2_CALLS[c] for c in calls}
    assert needed <= head.keys() and "ec2:RunInstances" in needed
    raw = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    profiles = {name: node["node_config"]["IamInstanceProfile"]["Name"]
                for name, node in raw["available_node_types"].items()}
    head_profile = profiles.pop(raw["head_node_type"])
    assert head_profile == "lxn-ray-head" and set(profiles.values()) == {"lxn-ray-worker"}
    # launching a worker hands it its role: iam:PassRole on exactly that role
    assert head["iam:PassRole"] == {"arn:aws:iam::*:role/lxn-ray-worker"}
    assert any("resolve:ssm:" in n["node_config"]["ImageId"] for n in raw["available_node_types"].values())
    assert "ssm:GetParameters" in head  # EC2 resolves the AMI parameter with the caller's rights
    # the workers start nothing, pass no role and read no secret
    assert not {a for a in worker if a.startswith(("ec2:", "iam:", "ssm:"))}
    assert {"arn:aws:ssm:*:*:parameter/lxn/mlflow-backend-uri"} == head["ssm:GetParameter"]
    # both roles reach the buckets the jobs use; only the head's reaches the MLflow artifacts
    assert any("lxn-mlflow-artifacts" in r for r in head["s3:PutObject"])
    assert not any("lxn-mlflow-artifacts" in r for rs in worker.values() for r in rs)
    for role in (head, worker):
        assert {"arn:aws:s3:::lxn-reports/*", "arn:aws:s3:::lxn-checkpoints/*"} <= role["s3:PutObject"]


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


def _settings_files(directory: Path) -> dict[str, Path]:
    return {path.name: path for path in directory.glob("*.toml")}


@pytest.mark.parametrize("settings", [DEPLOY_K8S / "base" / "jobs", DEPLOY_K8S / "overlays" / "example"],
                         ids=["base", "overlay"])
@pytest.mark.parametrize("name, entrypoint", list(_entrypoints()), ids=lambda v: v if v.endswith(".yaml") else "")
def test_every_entrypoint_is_a_job_whose_parser_accepts_its_flags(name, entrypoint, settings):
    python, script, *flags = shlex.split(entrypoint)
    assert python == "python" and script.startswith("jobs/")
    files = _settings_files(settings)
    if "--config" in flags:  # the mounted settings file: parse the one kustomize puts there
        where = flags.index("--config") + 1
        assert flags[where].startswith(JOB_SETTINGS), flags[where]
        flags[where] = str(files[flags[where].removeprefix(JOB_SETTINGS)])
    config = _job_module(script).parse_config(flags)  # parses and validates: a bad flag or key raises
    for field in ("source", "data", "out", "storage"):
        value = getattr(config, field, None)
        for uri in value if isinstance(value, list) else [value]:
            assert uri is None or uri.startswith("s3://"), (name, field, uri)  # a cluster job reads and writes S3
    if not getattr(config, "check", None):  # the freshness check draws none
        assert getattr(config, "progress_bars", False) is False  # scheduled logs stay readable


def _render(overlay: Path) -> list[dict]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    return CHECK.render(overlay)


def test_the_overlay_is_the_one_place_for_namespace_image_buckets_and_role():
    """`kubectl kustomize` on the example overlay: every object in its namespace, every container
    (KubeRay's pod templates included) on its image, its settings in the ConfigMaps the pods
    mount, its role on the service account; and no base bucket or image left anywhere."""
    overlay = DEPLOY_K8S / "overlays" / "example"
    spec = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    [image] = spec["images"]
    rendered = _render(overlay)
    objects = {(doc["kind"], doc["metadata"]["name"]): doc for doc in rendered}
    assert {("RayCluster", "lxn"), ("Deployment", "mlflow"), ("CronJob", "lxn-nightly-scan-submitter"),
            ("CronJob", "lxn-nightly-scan-check"), ("ServiceAccount", "lxn")} <= objects.keys()
    for (kind, name), doc in objects.items():
        if kind != "Namespace":
            assert doc["metadata"]["namespace"] == spec["namespace"], (kind, name)
    images = {m["image"] for doc in rendered for m in _mappings(doc) if isinstance(m.get("image"), str)}
    assert images == {f"{image['newName']}:{image['newTag']}"}
    text = yaml.safe_dump_all(rendered)
    for base_only in ("s3://media-bucket", "s3://lxn-reports", "s3://lxn-data", "s3://lxn-mlflow-artifacts", _image()):
        assert base_only not in text, base_only
    jobs = objects[("ConfigMap", "lxn-jobs")]["data"]
    assert jobs == {name: path.read_text() for name, path in _settings_files(overlay).items()}
    account = objects[("ServiceAccount", "lxn")]["metadata"]["annotations"]
    assert account["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
    # the pods that read /etc/lxn mount the ConfigMap there
    head = objects[("RayCluster", "lxn")]["spec"]["headGroupSpec"]["template"]["spec"]
    check = objects[("CronJob", "lxn-nightly-scan-check")]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    for pod in (head, check):
        [volume] = [v for v in pod["volumes"] if v.get("configMap", {}).get("name") == "lxn-jobs"]
        mounts = [m for c in pod["containers"] for m in c.get("volumeMounts", []) if m["name"] == volume["name"]]
        assert [m["mountPath"] for m in mounts] == [JOB_SETTINGS.rstrip("/")]
    server = objects[("Deployment", "mlflow")]["spec"]["template"]["spec"]["containers"][0]
    assert {"configMapRef": {"name": "lxn-settings"}} in server["envFrom"]
    assert "artifacts-destination" not in " ".join(server["args"])  # MLFLOW_ARTIFACTS_DESTINATION, from the overlay


def test_the_one_off_jobs_name_no_image_and_no_bucket():
    """They run on the overlay's cluster and read the overlay's settings: nothing in them differs
    between installations."""
    for path in DEPLOY_K8S.glob("*.yaml"):
        text = path.read_text()
        assert "s3://" not in text and _image() not in text and "namespace:" not in text, path.name


def test_every_service_account_a_pod_names_is_shipped():
    """KubeRay does not create a service account the head names itself; a pod whose account is
    missing is never created."""
    shipped = {doc["metadata"]["name"] for _, doc in _docs() if doc["kind"] == "ServiceAccount"}
    named = _strings_under("serviceAccountName")
    assert named and named <= shipped, named - shipped


def _checker():
    """deploy/check.py: the overlay check users run; its validation rules are the tests' too."""
    spec = importlib.util.spec_from_file_location("deploy_check", ROOT / "deploy" / "check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CHECK = _checker()


def test_every_manifest_is_valid_on_the_stated_kuberay_and_kubernetes_versions():
    assert CHECK.KUBERAY == ["v1.6.0", "v1.7.0"]
    for name, doc in _docs():
        assert CHECK.schema_errors(doc) == [], name


def test_the_version_floors_in_the_files_are_the_real_ones():
    """RayCronJob's timeZone is new in KubeRay 1.7 and the RayCluster's authOptions.secretName in
    1.6: the schemas one release older refuse them, so the stated minimums are the true ones."""
    docs = {doc["kind"]: doc for _, doc in _docs()}
    assert any("timeZone" in e for e in CHECK.crd_errors(docs["RayCronJob"], "v1.6.0"))
    assert any("secretName" in e for e in CHECK.crd_errors(docs["RayCluster"], "v1.5.2"))
    assert "KubeRay >= 1.7" in (DEPLOY_K8S / "raycronjob-scan.yaml").read_text()
    assert "KubeRay >= 1.6" in (DEPLOY_K8S / "base" / "raycluster.yaml").read_text()


def _overlay_copy(tmp_path: Path, edit) -> Path:
    """The example overlay beside a copy of the base, its placeholder account replaced (as a user
    does first), then edited by `edit(kustomization text)`."""
    shutil.copytree(DEPLOY_K8S / "base", tmp_path / "base")
    overlay = tmp_path / "overlays" / "acme"
    shutil.copytree(DEPLOY_K8S / "overlays" / "example", overlay)
    kustomization = overlay / "kustomization.yaml"
    kustomization.write_text(edit(kustomization.read_text().replace("123456789012", "210987654321")))
    return overlay


def _check(overlay: Path) -> subprocess.CompletedProcess:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    return subprocess.run([sys.executable, str(ROOT / "deploy" / "check.py"), str(overlay)], capture_output=True,
                          text=True, timeout=120)


def test_the_overlay_check_passes_an_edited_overlay_and_refuses_the_unedited_one(tmp_path):
    edited = _overlay_copy(tmp_path / "edited", lambda text: text)
    done = _check(edited)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok: 9 objects in namespace lxn, image 210987654321.dkr.ecr")
    example = _check(DEPLOY_K8S / "overlays" / "example")  # as shipped: a placeholder account
    assert example.returncode == 2 and "example account 123456789012" in example.stderr
    assert len(example.stderr.strip().splitlines()) == 1 and "Traceback" not in example.stderr


@pytest.mark.parametrize("edit, reason", [
    (lambda text: re.sub(r"images:\n(  .*\n)+", "", text), "no `images:` entry"),
    (lambda text: text.replace("namespace: lxn\n", ""), "no `namespace:`"),
    (lambda text: text.replace("patches:\n", "patches:\n  - target: {kind: RayCluster}\n    patch: |-\n"
                               "      - {op: add, path: /spec/enableInTreeAutoscalling, value: true}\n"),
     "RayCluster/lxn on KubeRay v1.6.0: spec: Additional properties"),
], ids=["no image", "no namespace", "unknown field"])
def test_an_overlay_that_would_not_run_is_one_clear_line_and_exit_2(tmp_path, edit, reason):
    done = _check(_overlay_copy(tmp_path, edit))
    assert done.returncode == 2 and reason in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
