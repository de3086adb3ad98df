"""Typed configs: every field is a flag, a config file sits under the command line."""

import dataclasses
import json
from pathlib import Path
from typing import Literal

import pytest

from lxn.config import parse_config, setting, to_dict


@dataclasses.dataclass(frozen=True)
class Demo:
    epochs: int = setting(150, "epochs")
    lr: float = setting(1e-3, "learning rate")
    model: Literal["a", "b"] = setting("a", "model")
    use_gpu: bool = setting(False, "GPU")
    data: str | None = setting(None, "dataset URI")
    out: Path = setting(Path("out"), "output")
    seeds: list[int] = setting([0, 1], "seeds")
    share: float = setting(0.3, "share of memory (30% by default)")


def test_defaults_and_flags():
    assert parse_config(Demo, []) == Demo()
    cfg = parse_config(Demo, ["--epochs", "3", "--lr", "0.5", "--model", "b", "--use-gpu", "--seeds", "4", "5"])
    assert (cfg.epochs, cfg.lr, cfg.model, cfg.use_gpu, cfg.seeds) == (3, 0.5, "b", True, [4, 5])
    assert parse_config(Demo, ["--no-use-gpu"]).use_gpu is False


def test_help_lists_every_setting_even_with_a_percent_sign(capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_config(Demo, ["--help"])
    assert exit_.value.code == 0
    assert "(30% by default)" in capsys.readouterr().out


def test_config_file_under_command_line(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('epochs = 7\nmodel = "b"\nuse-gpu = true\n')
    cfg = parse_config(Demo, ["--config", str(toml), "--epochs", "9"])
    assert (cfg.epochs, cfg.model, cfg.use_gpu) == (9, "b", True)
    js = tmp_path / "c.json"
    js.write_text(json.dumps({"lr": 0.1}))
    assert parse_config(Demo, ["--config", str(js)]).lr == 0.1


def test_unknown_setting_in_file_is_an_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("epoch = 3\n")
    with pytest.raises(ValueError, match="unknown setting.*epoch"):
        parse_config(Demo, ["--config", str(bad)])


def test_bad_choice_exits():
    with pytest.raises(SystemExit):
        parse_config(Demo, ["--model", "c"])


def test_to_dict_is_json_ready():
    assert json.loads(json.dumps(to_dict(Demo()))) == {
        "epochs": 150, "lr": 1e-3, "model": "a", "use_gpu": False, "data": None, "out": "out", "seeds": [0, 1],
        "share": 0.3,
    }


def test_profile_defaults_sit_under_file_and_flags(tmp_path):
    import argparse

    from lxn.config import add_arguments, from_namespace

    parser = add_arguments(argparse.ArgumentParser(), Demo)
    profile = {"epochs": 2, "lr": 0.5}
    assert from_namespace(Demo, parser.parse_args([]), defaults=profile).epochs == 2
    assert from_namespace(Demo, parser.parse_args(["--epochs", "4"]), defaults=profile).epochs == 4
    assert from_namespace(Demo, parser.parse_args(["--epochs", "4"]), defaults=profile).lr == 0.5
