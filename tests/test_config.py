"""Config checks and the command line's way of building a config from flags."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from dlrecipes import cli, data
from dlrecipes.config import ConfigError, RecipeConfig
from dlrecipes.models import vision
from tests.conftest import digit_folder, recipe_module


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


def test_an_image_base_trains_with_image_settings_unless_a_flag_or_preset_says_otherwise(
    tmp_path, capsys
):
    """Fine-tuning: with a base that reads images, the fields no flag, --hparams or --tiny set
    take the image settings (a head phase first), and the choice is printed."""
    fine_tuning = recipe_module("fine_tuning")
    recipe = cli.Commands("fine_tuning", fine_tuning.Config, None, None, None)
    base = tmp_path / "model.keras"
    vision.convnet((28, 28, 1), 10, widths=(4,), convs_per_stage=1).save(base)

    def config(*argv: str):
        return cli.make_config(recipe, cli.build_parser(recipe)[0].parse_args(["train", *argv]))

    text = config("--sequence-length", "64", "--epochs", "2")  # MiniLM: nothing to choose
    assert text.head_epochs == 0 and text.learning_rate == 1e-4 and capsys.readouterr().out == ""
    images = config("--base", str(base), "--dataset", "digits", "--learning-rate", "0.002")
    assert images.head_epochs == 5 and images.epochs == 25 and images.head_learning_rate == 3e-3
    assert images.learning_rate == 0.002  # the user's flag wins
    printed = capsys.readouterr().out
    assert "reads images" in printed and "--head-epochs 5" in printed
    assert "--learning-rate" not in printed
    preset = tmp_path / "preset.json"
    preset.write_text(json.dumps({"head_epochs": 2, "epochs": 3}))
    tuned = config("--hparams", str(preset), "--base", str(base), "--dataset", "digits")
    assert (tuned.head_epochs, tuned.epochs, tuned.dropout) == (2, 3, 0.3)


@pytest.fixture(scope="module")
def long_texts(tmp_path_factory) -> Path:
    """A CSV of 60 real texts longer than any snippet: runs of 8 rt_snippets test snippets of one
    class, joined."""
    texts, labels = zip(*data.load_text("rt_snippets").test.as_numpy_iterator(), strict=True)
    path = tmp_path_factory.mktemp("long") / "long.csv"
    with path.open("w", newline="") as f:
        rows = csv.writer(f)
        rows.writerow(["text", "label"])
        for label in (0, 1):
            same = [t.decode() for t, y in zip(texts, labels, strict=True) if y == label]
            for i in range(30):
                rows.writerow([" ".join(same[8 * i : 8 * i + 8]), str(label)])
    return path


def _recipe_config(name: str, *argv: str):
    module = recipe_module(name)
    recipe = cli.Commands(name, module.Config, None, None, None)
    return cli.make_config(recipe, cli.build_parser(recipe)[0].parse_args(["train", *argv]))


def test_text_lengths_follow_the_training_texts_unless_a_flag_sets_them(long_texts, capsys):
    train = data.load_text(f"csv:{long_texts}").train
    words = np.percentile([len(t.split()) for t, _ in train.as_numpy_iterator()], 99)
    config = _recipe_config("text_bilstm", "--dataset", f"csv:{long_texts}")
    assert config.sequence_length % 8 == 0 and words <= config.sequence_length < words + 8
    assert config.sequence_length > 48  # the snippets' default, which these texts outgrow
    assert f"--sequence-length {config.sequence_length}" in capsys.readouterr().out
    given = _recipe_config(
        "text_bilstm", "--dataset", f"csv:{long_texts}", "--sequence-length", "40",
        "--epochs", "15",
    )  # fmt: skip
    assert given.sequence_length == 40 and capsys.readouterr().out == ""


def test_a_small_training_set_gets_epochs_enough_for_the_step_floor(long_texts, capsys):
    module = recipe_module("text_bilstm")
    train = data.load_text(f"csv:{long_texts}").train.cardinality().numpy()  # 48 texts
    config = _recipe_config("text_bilstm", "--dataset", f"csv:{long_texts}", "--batch-size", "16")
    steps = -(-train // 16)
    assert config.epochs == -(-module.Config.MIN_BATCHES // steps) > module.Config.epochs
    assert f"--epochs {config.epochs}" in capsys.readouterr().out
    given = _recipe_config("text_bilstm", "--dataset", f"csv:{long_texts}", "--epochs", "3")
    assert given.epochs == 3 and "--epochs" not in capsys.readouterr().out
    # Enough texts for the floor within the default epochs: the default stays.
    assert _recipe_config("text_bilstm", "--sequence-length", "48").epochs == module.Config.epochs


def test_a_teacher_run_takes_its_own_epochs_unless_given(capsys):
    """Each epoch of distillation sees the transfer set, (copies + 1)x the texts: fewer epochs."""
    teacher = recipe_module("text_bilstm").Config.TEACHER_EPOCHS
    config = _recipe_config("text_bilstm", "--teacher", "t/model.keras", "--transfer-copies", "2")
    assert config.epochs == teacher < recipe_module("text_bilstm").Config.epochs
    assert "sees 3x the texts" in capsys.readouterr().out
    given = _recipe_config("text_bilstm", "--teacher", "t/model.keras", "--epochs", "3")
    assert given.epochs == 3 and "--epochs" not in capsys.readouterr().out
    assert _recipe_config("text_bilstm").epochs == 15  # no teacher: the labels' default


def test_fine_tuning_takes_enough_steps_on_few_texts(long_texts, capsys):
    """48 training texts are 2 batches of 32: phase 2 gets epochs enough for MIN_STEPS steps."""
    config = _recipe_config("fine_tuning", "--base", "tiny-bert", "--dataset", f"csv:{long_texts}")
    assert config.epochs == recipe_module("fine_tuning").MIN_STEPS // 2
    assert config.sequence_length > 64 and config.head_epochs == 0
    assert "48 training texts" in capsys.readouterr().out
    given = _recipe_config(
        "fine_tuning", "--base", "tiny-bert", "--dataset", f"csv:{long_texts}", "--epochs", "3"
    )
    assert given.epochs == 3 and given.sequence_length == config.sequence_length


def test_tiny_never_asks_for_more_examples_per_class_than_the_data_holds(
    long_texts, tmp_path, capsys
):
    """--tiny keeps 50 examples a class; on a smaller CSV or folder it keeps what the smallest
    class holds and says so. A --labels-per-class the user gives is theirs, refused if too big."""
    fine_tuning = recipe_module("fine_tuning")
    csv_data = f"csv:{long_texts}"
    smallest = data.class_counts(data.load_text(csv_data).train, 2).min()
    config = _recipe_config("fine_tuning", "--tiny", "--dataset", csv_data)
    assert config.labels_per_class == smallest < 50
    assert f"--labels-per-class {smallest}" in capsys.readouterr().out
    assert fine_tuning.load_data(config).info.num_examples["train"] > 0  # not refused
    given = _recipe_config(
        "fine_tuning", "--tiny", "--dataset", csv_data, "--labels-per-class", "50"
    )
    assert given.labels_per_class == 50 and "labels-per-class" not in capsys.readouterr().out
    with pytest.raises(data.DatasetError, match="--labels-per-class 50 is not possible"):
        fine_tuning.load_data(given)

    base = tmp_path / "model.keras"
    vision.convnet((28, 28, 1), 3, widths=(4,), convs_per_stage=1).save(base)
    folder = f"folder:{digit_folder(tmp_path / 'digits')}"
    images = _recipe_config(
        "fine_tuning", "--tiny", "--dataset", folder, "--image-size", "28,28", "--base", str(base)
    )
    assert images.labels_per_class < 50 and images.epochs == 1  # --tiny's, not the image settings
    fine_tuning.load_data(images)


@pytest.mark.parametrize("size", [(64,), (0, 0), (28, 0), (8, 8, 8)])
def test_an_image_size_that_is_not_a_height_and_a_width_is_refused_in_one_line(size):
    config_class = recipe_module("image_classification").Config
    with pytest.raises(ConfigError, match=r"--image-size .* is not a height and a width"):
        config_class(image_size=size).validate()
    config_class(image_size=(8, 8)).validate()
