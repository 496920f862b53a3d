"""Hyperparameter search on the image recipe with tiny settings, run in this process (one
TensorFlow start for all): result files, defaults as the first trial, resume, the all-trials-failed
case, and how trials fit the LR schedule. `make tune-*` runs the same through the command line."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import shutil
from pathlib import Path

import keras_tuner
import pytest

from dlrecipes import cli, tuning
from dlrecipes.contract import Recipe
from dlrecipes.tuning import report as tuning_report
from tests.conftest import ROOT, recipe_module

RECIPE = ROOT / "recipes" / "image_classification" / "recipe.py"
SEARCH = ["tune", "--tiny", "--tuner", "random", "--max-epochs", "1"]


def trials(directory: Path) -> dict[str, dict]:
    """keras-tuner's own record of every trial, by trial id."""
    files = (directory / "image_classification").glob("trial_*/trial.json")
    return {t["trial_id"]: t for t in (json.loads(f.read_text()) for f in files)}


def tune(*args: str | Path) -> tuple[int, str]:
    """Runs the image recipe's `tune` in this process; returns the exit status and stdout."""
    module = recipe_module("image_classification")
    recipe = Recipe(
        "image_classification", module.Config, module.load_data, None, module.build_hypermodel
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.run(recipe, [*SEARCH, *map(str, args)])
    return code, out.getvalue()


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> tuple[Path, str]:
    directory = tmp_path_factory.mktemp("tune") / "search"
    code, stdout = tune("--max-trials", "2", "--directory", directory)
    assert code == 0, stdout[-3000:]
    return directory, stdout


def test_search_writes_every_result_file(searched):
    directory, stdout = searched
    assert stdout.strip().splitlines()[-1] == str(directory / "best_hparams.json")
    for name in tuning_report.RESULT_FILES:
        assert (directory / name).stat().st_size > 0, name
    assert "2 trials: 2 completed, 0 failed" in stdout
    assert "| trial | status | val_accuracy |" in stdout
    rows = list(csv.DictReader((directory / "trials.csv").open()))
    assert [r["status"] for r in rows] == ["COMPLETED", "COMPLETED"]
    scores = [float(r["val_accuracy"]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    report = (directory / "tuning_report.md").read_text()
    assert "random search, objective `val_accuracy` (max)" in report
    assert "train --hparams" in report


def test_best_hparams_are_config_fields_train_accepts(searched):
    directory, _ = searched
    best = json.loads((directory / "best_hparams.json").read_text())
    module = recipe_module("image_classification")
    space = module.build_hypermodel(module.Config().tiny(), None).space
    assert set(best) == set(space)
    recipe = Recipe("image_classification", module.Config, module.load_data, None, None)
    args = cli.build_parser(recipe).parse_args(
        ["train", "--hparams", str(directory / "best_hparams.json")]
    )
    config = cli.make_config(recipe, args)
    assert config.widths == tuple(best["widths"]) and config.batch_size == best["batch_size"]


def test_first_trial_tries_the_config_defaults(searched):
    directory, _ = searched
    first = trials(directory)["0"]["hyperparameters"]["values"]
    tiny = recipe_module("image_classification").Config().tiny()
    assert first["widths"] == ",".join(map(str, tiny.widths))
    assert first["depth"] == tiny.depth and first["batch_size"] == tiny.batch_size
    assert first["learning_rate"] == pytest.approx(tiny.learning_rate)


def test_resume_runs_only_the_missing_trials(searched, tmp_path):
    directory = tmp_path / "search"
    shutil.copytree(searched[0], directory)
    before = trials(directory)
    code, stdout = tune("--max-trials", "3", "--directory", directory)
    assert code == 0, stdout[-3000:]
    assert "Reloading Tuner" in stdout
    assert stdout.count(" runs trial ") == 1  # only the new trial ran
    after = trials(directory)
    assert sorted(after) == ["0", "1", "2"]
    assert {i: after[i] for i in before} == before  # finished trials were not touched
    assert all(t["status"] == "COMPLETED" for t in after.values())


def test_search_in_which_every_trial_fails_exits_nonzero(tmp_path, capsys):
    module = recipe_module("image_classification")

    def too_few_classes(config, info):
        # A model with 3 outputs for labels 0..9: every trial fails in its first training step.
        info = dataclasses.replace(info, class_names=info.class_names[:3])
        return module.build_model(config, info)

    def hypermodel(config, info):
        return tuning.ConfigHyperModel(config, info, too_few_classes, {"dropout": (0.0, 0.5)})

    recipe = Recipe("image_classification", module.Config, module.load_data, None, hypermodel)
    code = cli.run(recipe, [*SEARCH, "--max-trials", "2", "--directory", str(tmp_path)])
    out = capsys.readouterr()
    assert code != 0
    assert "error: No trial completed (2 trials: 0 completed, 2 failed)" in out.err
    assert "InvalidArgumentError" in out.out  # the table shows each trial's error
    assert not (tmp_path / "best_hparams.json").exists()
    report = (tmp_path / "tuning_report.md").read_text()
    assert "No trial completed" in report and "Received a label value of" in report


def test_hyperband_trial_schedule_spans_the_epochs_it_trains():
    config = recipe_module("image_classification").Config().tiny()
    model_fn = recipe_module("image_classification").build_model
    hypermodel = tuning.ConfigHyperModel(config, None, model_fn, {"dropout": (0.0, 0.5)})
    hp = keras_tuner.HyperParameters()
    hp.values.update({"tuner/epochs": 9, "tuner/initial_epoch": 3})
    trial_config = hypermodel.config_for(hp)
    assert trial_config.epochs == 6
    assert trial_config.warmup_epochs <= 6 / 4
    assert hypermodel.config_for(keras_tuner.HyperParameters()).epochs == config.epochs


def test_choices_include_the_config_value_as_default():
    config = dataclasses.replace(recipe_module("image_classification").Config(), widths=(8, 8, 8))
    hypermodel = tuning.ConfigHyperModel(config, None, None, {"widths": [(16, 32, 64)]})
    hp = keras_tuner.HyperParameters()
    hypermodel.declare(hp)
    assert hp.get("widths") == "8,8,8"
    assert hp.space[0].values == ["8,8,8", "16,32,64"]


def test_objective_direction():
    assert tuning.objective("val_loss").direction == "min"
    assert tuning.objective("val_accuracy").direction == "max"
    with pytest.raises(ValueError, match="--tuner"):
        tuning.SearchOptions(tuner="grid")
