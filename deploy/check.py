"""Check a kustomize overlay of deploy/kuberay before applying it: render it, validate every object
against the supported KubeRay CRDs and Kubernetes API schemas (an unknown field fails: the API
server would drop it silently), and refuse what would not run.

    python deploy/check.py deploy/kuberay/overlays/acme     # then: kubectl apply -k deploy/kuberay/overlays/acme

Exit status 0: valid, with one line saying for which versions; 2: one line saying what to fix.
Needs kubectl (its built-in kustomize) and the dev extras (kubernetes-validate).
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CRDS = ROOT / "deploy" / "kuberay" / "crds"  # openAPIV3Schema of each CRD at a KubeRay release tag
KUBERAY = ["v1.6.0", "v1.7.0"]  # the supported range; RayCronJob needs 1.7
KUBERNETES = ["1.29", "1.35"]   # CronJob timeZone is GA from 1.27; the newest kubernetes-validate has
BASE_IMAGE = "ghcr.io/lxn-project/lxn"
EXAMPLE_ACCOUNT = "123456789012"  # the example overlay's placeholder AWS account


class OverlayError(ValueError):
    """The overlay would not run as it is; the message says what to change."""


def render(overlay: Path) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise OverlayError("kubectl is not installed: it renders the overlay (kubectl kustomize)")
    done = subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise OverlayError(f"kubectl kustomize {overlay} failed: {done.stderr.strip().splitlines()[-1:]}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def crd_schemas(tag: str) -> dict[str, dict]:
    return json.loads(gzip.decompress((CRDS / f"crds-{tag}.json.gz").read_bytes()))["schemas"]


def strict(schema):
    """The API server drops fields a structural schema does not name (and strict field validation
    refuses them): a misspelt or too-new field must fail here, so objects admit no others."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema \
                and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def crd_errors(doc: dict, tag: str) -> list[str]:
    import jsonschema

    schema = strict(crd_schemas(tag)[doc["kind"]])
    return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:200]}"
            for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]


def schema_errors(doc: dict) -> list[str]:
    """What each supported version says against `doc` (empty: valid everywhere it must be)."""
    import kubernetes_validate

    where = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
    if doc.get("apiVersion", "").startswith("ray.io/"):
        tags = [t for t in KUBERAY if doc["kind"] != "RayCronJob" or t >= "v1.7"]
        return [f"{where} on KubeRay {tag}: {e}" for tag in tags for e in crd_errors(doc, tag)]
    errors = []
    for version in KUBERNETES:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{where} on Kubernetes {version}: {exc.message[:200]}")
    return errors


def _images(node) -> set[str]:
    if isinstance(node, dict):
        found = {node["image"]} if isinstance(node.get("image"), str) else set()
        return found.union(*(_images(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_images(v) for v in node))
    return set()


def check(overlay: Path) -> str:
    """One line describing a valid overlay; raises OverlayError with one line otherwise."""
    docs = render(overlay)
    images = set().union(*(_images(doc) for doc in docs))
    if any(image.startswith(BASE_IMAGE + ":") for image in images):
        raise OverlayError(f"{overlay}: no `images:` entry for {BASE_IMAGE}: name the image your nodes pull "
                           "(registry, name, tag) in the overlay's kustomization.yaml")
    if any(EXAMPLE_ACCOUNT in image for image in images) or EXAMPLE_ACCOUNT in yaml.safe_dump_all(docs):
        raise OverlayError(f"{overlay}: still names the example account {EXAMPLE_ACCOUNT}: set your registry "
                           "and the service account's role")
    namespaced = [doc for doc in docs if doc["kind"] != "Namespace"]
    if any(not doc["metadata"].get("namespace") for doc in namespaced):
        raise OverlayError(f"{overlay}: no `namespace:`: set the namespace lxn runs in")
    errors = [e for doc in docs for e in schema_errors(doc)]
    if errors:
        raise OverlayError(f"{overlay}: {len(errors)} schema error(s), the first: {errors[0]}")
    return (f"ok: {len(docs)} objects in namespace {namespaced[0]['metadata']['namespace']}, image "
            f"{', '.join(sorted(images))}; valid on KubeRay {'/'.join(KUBERAY)} and Kubernetes {'/'.join(KUBERNETES)}")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python deploy/check.py OVERLAY_DIR", file=sys.stderr)
        return 2
    try:
        print(check(Path(args[0])))
    except OverlayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
