"""cluster.yaml is valid for Ray's cluster launcher and gives every node type S3 access."""

from pathlib import Path

import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[2]


def test_cluster_yaml_validates_against_rays_schema():
    config = prepare_config(yaml.safe_load((ROOT / "cluster.yaml").read_text()))
    validate_config(config)
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    for name, node in types.items():
        assert all(isinstance(v, int) for v in node["resources"].values()), name
        # only the head gets an instance profile by default; every worker must read S3 too
        assert node["node_config"]["IamInstanceProfile"]["Name"], name
    assert any(node["resources"].get("GPU") for node in types.values())
