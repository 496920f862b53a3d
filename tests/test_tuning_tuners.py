"""Hyperband (the default tuner) and Bayesian optimization, each a tiny search run end to end in
this process. A few batches per epoch, one-stage models, three dimensions and no weight average
(each trial's cost is mostly tracing its graphs): these tests are about the tuners, not the
accuracy, which test_tuning.py's searches check with the recipe's own search space."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from dlrecipes import cli, tuning
from dlrecipes.contract import Recipe
from tests.conftest import recipe_module

BATCHES = 4  # per epoch, of training and of validation data
SPACE = {
    "learning_rate": (3e-4, 1e-2, "log"),
    "optimizer": ["adamw", "adam", "momentum"],
    "dropout": (0.0, 0.5),
}
SMALL = ["--tiny", "--widths", "8", "--ema", "0"]


def small_recipe() -> Recipe:
    """The image recipe, each split cut to its first BATCHES batches, searching SPACE."""
    module = recipe_module("image_classification")

    def load_data(config):
        return module.load_data(config).map(lambda ds, split: ds.take(BATCHES))

    def build_hypermodel(config, info):
        return tuning.ConfigHyperModel(config, info, module.build_model, SPACE)

    name = "image_classification"
    return Recipe(name, module.Config, load_data, module.build_model, build_hypermodel)


def trial_files(directory: Path, trial_id: str, name: str) -> dict:
    return json.loads((directory / "image_classification" / f"trial_{trial_id}" / name).read_text())


@pytest.mark.slow
def test_hyperband_continues_trials_and_records_what_train_runs(tmp_path, capsys):
    # No --tuner: Hyperband is the default. --max-epochs 3: one-epoch trials, the best third of
    # them trained on to 3 epochs from their weights, and a bracket of 3-epoch trials.
    code = cli.run(
        small_recipe(), ["tune", *SMALL, "--max-epochs", "3", "--directory", str(tmp_path)]
    )
    out = capsys.readouterr()
    assert code == 0, out.err[-3000:]
    assert out.out.strip().splitlines()[-1] == str(tmp_path / "best_hparams.json")
    rows = list(csv.DictReader((tmp_path / "trials.csv").open()))
    assert {r["status"] for r in rows} == {"COMPLETED"}
    continued = [r for r in rows if r["continues"]]
    assert continued, rows
    for row in continued:
        parent = next(r for r in rows if r["trial"] == row["continues"])
        assert (parent["epochs"], row["epochs"]) == ("1", "3")
        # `train --hparams` runs the whole 3 epochs from scratch ...
        assert trial_files(tmp_path, row["trial"], "config.json")["epochs"] == 3
        # ... where the trial itself trained epochs 2 and 3 on its parent's weights.
        log = out.out.split(f" runs trial {row['trial']}\n")[1].split(" runs trial ")[0]
        assert "Epoch 1/3" not in log and "Epoch 2/3" in log and "Epoch 3/3" in log
    report = (tmp_path / "tuning_report.md").read_text()
    assert "hyperband search, objective `val_accuracy` (max)" in report
    best = json.loads((tmp_path / "best_hparams.json").read_text())
    assert best == trial_files(tmp_path, rows[0]["trial"], "config.json")


@pytest.mark.slow
def test_bayesian_search_honours_flags_outside_the_space(tmp_path, capsys):
    # --learning-rate 0.05 lies above the searched 3e-4..1e-2 and --optimizer sgd is not among
    # the choices: the range widens and the choice joins, and the first trial uses both.
    args = ["--learning-rate", "0.05", "--optimizer", "sgd", "--directory", str(tmp_path)]
    code = cli.run(
        small_recipe(),
        ["tune", *SMALL, "--tuner", "bayesian", "--max-trials", "3", "--max-epochs", "1", *args],
    )
    out = capsys.readouterr()
    assert code == 0, out.err[-3000:]
    assert "learning_rate: the searched range 0.0003..0.01 is widened to 0.0003..0.05" in out.out
    assert (
        "optimizer: sgd (the config's value) is added to the choices adamw, adam, momentum"
        in out.out
    )
    rows = {r["trial"]: r for r in csv.DictReader((tmp_path / "trials.csv").open())}
    assert sorted(rows) == ["0", "1", "2"]  # two random trials, then the Gaussian process's
    assert {r["status"] for r in rows.values()} == {"COMPLETED"}
    first = trial_files(tmp_path, "0", "config.json")
    assert (first["learning_rate"], first["optimizer"]) == (0.05, "sgd")
    assert all(3e-4 <= float(r["learning_rate"]) <= 0.05 for r in rows.values())
    space = trial_files(tmp_path, "2", "trial.json")["hyperparameters"]["space"]
    dims = {d["config"]["name"]: d["config"] for d in space}
    assert dims["learning_rate"]["max_value"] == 0.05
    assert dims["optimizer"]["values"] == ["sgd", "adamw", "adam", "momentum"]
    assert {r["optimizer"] for r in rows.values()} - {"sgd"}  # the others are searched too
