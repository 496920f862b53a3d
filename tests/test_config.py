"""Config checks and the command line's way of building a config from flags."""

from __future__ import annotations

import dataclasses
import json
from typing import ClassVar

import pytest

from dlrecipes import cli
from dlrecipes.config import ConfigError, RecipeConfig


@dataclasses.dataclass
class Config(RecipeConfig):
    widths: tuple[int, ...] = (8, 16)
    arch: str = "convnet"
    batch_norm: bool = True
    CHOICES: ClassVar = {"arch": ("convnet", "resnet")}
    TINY: ClassVar = {"epochs": 1, "widths": (4,)}


RECIPE = cli.Commands("toy", Config, None, None, None)


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"optimizer": "adamx"}, "optimizer='adamx' is not allowed; use one of: sgd, momentum"),
        ({"arch": "vgg"}, "arch='vgg'"),
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"dropout": 1.5}, "dropout must be in [0, 1)"),
        ({"learning_rate": -1.0}, "learning_rate must be positive"),
        ({"widths": "8,x"}, "widths='8,x' is not a valid"),
        ({"wdith": 3}, "Unknown config field(s) ['wdith']"),
    ],
)
def test_bad_values_name_the_field(values, needle):
    with pytest.raises(ConfigError) as err:
        Config.from_dict(values)
    assert needle in str(err.value)


def test_json_round_trip(tmp_path):
    config = Config(widths=(3, 5), jit=True)
    config.save(tmp_path / "c.json")
    assert Config.load(tmp_path / "c.json") == config


def _args(*argv: str):
    return cli.build_parser(RECIPE)[0].parse_args(["train", *argv])


def test_flags_override_hparams_which_override_defaults(tmp_path):
    hparams = tmp_path / "best_hparams.json"
    hparams.write_text(json.dumps({"learning_rate": 0.05, "widths": "16,32", "epochs": 7}))
    config = cli.make_config(
        RECIPE, _args("--hparams", str(hparams), "--epochs", "3", "--no-batch-norm", "--jit")
    )
    assert config.learning_rate == 0.05 and config.widths == (16, 32)
    assert config.epochs == 3 and config.batch_norm is False and config.jit is True
    assert cli.make_config(RECIPE, _args("--tiny")).widths == (4,)


def test_resume_keeps_the_saved_config_and_refuses_contradictions(tmp_path):
    Config(epochs=5, widths=(2, 2)).save(tmp_path / "config.json")
    resumed = cli.make_config(RECIPE, _args("--run-dir", str(tmp_path), "--resume"))
    assert resumed.epochs == 5 and resumed.widths == (2, 2)
    same = cli.make_config(RECIPE, _args("--run-dir", str(tmp_path), "--resume", "--epochs", "5"))
    assert same == resumed
    with pytest.raises(ConfigError, match="epochs"):
        cli.make_config(RECIPE, _args("--run-dir", str(tmp_path), "--resume", "--epochs", "9"))
