"""Hyperparameter search on the image recipe with tiny settings, run in this process (one
TensorFlow start for all): result files, defaults as the first trial, trials that `train` repeats
to the digit, resume, refusals, the all-trials-failed case, and how trials fit the LR schedule.
`make tune-*` runs the same through the command line; test_tuning_tuners.py runs Hyperband and
Bayesian searches."""

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

from dlrecipes import cli, runtime, tuning
from dlrecipes.errors import ConfigError
from dlrecipes.tuning import report as tuning_report
from tests.conftest import recipe_module

# Deterministic ops: a trial and `train` then agree to the digit, not only within noise.
SEARCH = ["tune", "--tiny", "--tuner", "random", "--max-epochs", "1", "--deterministic"]
# A flag that is not searched: the best trial's config must keep it, like what --tiny set.
KEPT = ["--activation", "gelu"]


def MAIN(*argv: str | Path) -> int:
    """The image recipe's command line, run in this process."""
    return recipe_module("image_classification").main([str(a) for a in argv])


pytestmark = pytest.mark.usefixtures("op_determinism")


def trials(directory: Path) -> dict[str, dict]:
    """keras-tuner's own record of every trial, by trial id."""
    files = (directory / "image_classification").glob("trial_*/trial.json")
    return {t["trial_id"]: t for t in (json.loads(f.read_text()) for f in files)}


def tune(*args: str | Path) -> tuple[int, str]:
    """Runs the image recipe's `tune` in this process; returns the exit status and stdout."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = MAIN(*SEARCH, *KEPT, *args)
    return code, out.getvalue()


def best_val_accuracy(run_dir: Path) -> float:
    return json.loads((run_dir / "metrics.json").read_text())["best_val_accuracy"]


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> tuple[Path, str]:
    directory = tmp_path_factory.mktemp("tune") / "search"
    code, stdout = tune("--max-trials", "2", "--directory", directory)
    assert code == 0, stdout[-3000:]
    return directory, stdout


@pytest.mark.slow
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


@pytest.mark.slow
def test_best_hparams_is_the_best_trials_whole_config(searched):
    directory, _ = searched
    best = json.loads((directory / "best_hparams.json").read_text())
    best_id = next(csv.DictReader((directory / "trials.csv").open()))["trial"]
    recorded = directory / "image_classification" / f"trial_{best_id}" / "config.json"
    assert best == json.loads(recorded.read_text())
    module = recipe_module("image_classification")
    expected = dataclasses.replace(
        module.Config().tiny(), activation="gelu", deterministic=True, epochs=1
    )
    values = trials(directory)[best_id]["hyperparameters"]["values"]
    searched_fields = {name for name in values if not name.startswith("tuner/")}
    assert {"widths", "learning_rate", "dropout"} <= searched_fields
    # Every field that was not searched is what the flags, --tiny and the defaults made it.
    assert {k: v for k, v in best.items() if k not in searched_fields} == {
        k: v for k, v in json.loads(json.dumps(expected.to_dict())).items()
        if k not in searched_fields
    }  # fmt: skip
    assert best["head"] == "flatten" and best["activation"] == "gelu"  # --tiny's, and a flag's


@pytest.mark.slow
def test_the_printed_command_trains_the_best_trial_again(searched, tmp_path):
    directory, _ = searched
    report = (directory / "tuning_report.md").read_text()
    command = next(line.split() for line in report.splitlines() if "recipe.py train" in line)
    assert command[:3] == ["python", "recipes/image_classification/recipe.py", "train"]
    assert command[3:] == ["--hparams", str(directory / "best_hparams.json")]
    assert MAIN(*command[2:], "--run-dir", tmp_path / "run") == 0
    best = next(csv.DictReader((directory / "trials.csv").open()))
    assert best_val_accuracy(tmp_path / "run") == pytest.approx(float(best["val_accuracy"]))


@pytest.mark.slow
def test_a_trial_with_the_defaults_scores_as_train_does(searched, tmp_path):
    """The defaults' trial averages the weights (`ema` 0.95) and validates the average, as
    `train` does; a bare `fit` would have scored the raw weights."""
    directory, _ = searched
    assert recipe_module("image_classification").Config().tiny().ema > 0
    code = MAIN("train", "--tiny", "--epochs", "1", "--deterministic", *KEPT, "--run-dir", tmp_path)
    assert code == 0
    rows = {r["trial"]: r for r in csv.DictReader((directory / "trials.csv").open())}
    assert best_val_accuracy(tmp_path) == pytest.approx(float(rows["0"]["val_accuracy"]))


@pytest.mark.slow
def test_first_trial_tries_the_config_defaults(searched):
    directory, _ = searched
    first = trials(directory)["0"]["hyperparameters"]["values"]
    tiny = recipe_module("image_classification").Config().tiny()
    assert first["widths"] == ",".join(map(str, tiny.widths))
    assert first["depth"] == tiny.depth and first["batch_size"] == tiny.batch_size
    assert first["learning_rate"] == pytest.approx(tiny.learning_rate)


@pytest.mark.slow
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


@pytest.mark.slow
def test_a_search_directory_is_resumed_only_as_it_was_started(searched, tmp_path, capsys):
    directory = searched[0]
    before = trials(directory)
    assert MAIN(*SEARCH, *KEPT, "--tuner", "hyperband", "--directory", directory) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: {directory} holds a random search, which --tuner hyperband cannot continue. "
        "Pass --tuner random to continue it, --overwrite to replace it, or --directory DIR to "
        "search elsewhere."
    )
    assert MAIN(*SEARCH, *KEPT, "--learning-rate", "0.005", "--directory", directory) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {directory} holds a search started with --learning-rate 0.002")
    assert "(now 0.005)" in err and "--overwrite" in err and len(err.splitlines()) == 1
    assert trials(directory) == before
    # A search recorded before search.json existed: keras-tuner cannot reload another tuner's.
    older = tmp_path / "older"
    shutil.copytree(directory, older)
    (older / "image_classification" / "search.json").unlink()
    assert MAIN(*SEARCH, *KEPT, "--tuner", "bayesian", "--directory", older) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {older} holds a search that a bayesian search cannot continue")


@pytest.mark.slow
def test_search_in_which_every_trial_fails_exits_nonzero(tmp_path, capsys):
    module = recipe_module("image_classification")

    def too_few_classes(config, info):
        # A model with 3 outputs for labels 0..9: a trial fails in its first training step.
        info = dataclasses.replace(info, class_names=info.class_names[:3])
        return module.build_model(config, info)

    def tune(config, options):
        return tuning.search(
            module.NAME,
            config,
            options,
            load_data=module.load_data,
            build_model=too_few_classes,
            fit=module.fit,
            space={"dropout": (0.0, 0.5)},
        )

    argv = [*SEARCH, "--max-trials", "1", "--directory", str(tmp_path)]
    code = cli.main(
        module.NAME,
        module.Config,
        train=module.train,
        tune=tune,
        evaluate=module.evaluate,
        argv=argv,
    )
    out = capsys.readouterr()
    assert code != 0
    assert "error: No trial completed (1 trial: 0 completed, 1 failed)" in out.err
    assert "InvalidArgumentError" in out.out  # the table shows each trial's error
    assert not (tmp_path / "best_hparams.json").exists()
    report = (tmp_path / "tuning_report.md").read_text()
    # TensorFlow's useful last line ("Received a label value of 9 which is outside the valid
    # range of [0, 3)", or with deterministic ops "indices[0] = 6 is not in [0, 3)").
    assert "No trial completed" in report and "[0, 3)" in report


@pytest.mark.slow
def test_a_diverging_trial_fails_with_the_nan_guards_message(tmp_path, capsys):
    # --learning-rate 1e6 lies far above the searched range, which widens to reach it.
    code = MAIN(*SEARCH, "--max-trials", "1", "--learning-rate", "1e6", "--directory", tmp_path)
    out = capsys.readouterr()
    assert code == 2
    assert "learning_rate: the searched range 0.0003..0.01 is widened to 0.0003..1e+06" in out.out
    assert "error: No trial completed (1 trial: 0 completed, 1 failed)" in out.err
    row = next(csv.DictReader((tmp_path / "trials.csv").open()))
    assert float(row["learning_rate"]) == 1e6
    assert "TrainingDiverged: Training diverged: loss became nan at epoch 1" in row["error"]


def test_warmup_is_capped_at_a_quarter_of_the_epochs_a_trial_trains():
    module = recipe_module("image_classification")
    config = dataclasses.replace(module.Config().tiny(), warmup_epochs=4.0)

    def compile_only(model, config, splits, run):
        model.fit = lambda *args, **kwargs: None  # the recipe's compile, without its epochs
        module.fit(model, config, splits, run)

    hypermodel = tuning.ConfigHyperModel(
        config,
        {"dropout": (0.0, 0.5)},
        load_data=module.load_data,
        build_model=module.build_model,
        fit=compile_only,
    )
    hp = keras_tuner.HyperParameters()
    hp.values.update({"tuner/epochs": 9, "tuner/initial_epoch": 3})
    # A Hyperband trial continuing another one trains 6 epochs itself; from scratch, it is 9.
    assert hypermodel.config_for(hp).epochs == 6
    assert hypermodel.config_for(hp).warmup_epochs == 1.5
    assert hypermodel.train_config(hp).epochs == 9
    assert hypermodel.train_config(hp).warmup_epochs == 2.25
    model = hypermodel.build(hp)
    hypermodel.fit(hp, model)  # a trial compiles in the recipe's own fit
    schedule = model.optimizer.get_config()["learning_rate"]["config"]
    steps = -(-4000 // config.batch_size)  # 4,000 training digits
    assert schedule["warmup_steps"] == int(1.5 * steps)
    assert schedule["warmup_steps"] + schedule["decay_steps"] == 6 * steps
    assert hypermodel.config_for(keras_tuner.HyperParameters()).epochs == config.epochs


def test_each_execution_of_a_trial_draws_other_weights_and_the_first_is_trains():
    module = recipe_module("image_classification")
    config = module.Config().tiny()
    hypermodel = tuning.ConfigHyperModel(
        config,
        {"dropout": (0.0, 0.5)},
        load_data=module.load_data,
        build_model=module.build_model,
        fit=module.fit,
    )
    hp = keras_tuner.HyperParameters()
    first, second = (hypermodel.build(hp).get_weights()[0] for _ in range(2))  # two executions
    assert (first != second).any()
    # The next trial starts again from the seed, as `train` does.
    again = hypermodel.build(keras_tuner.HyperParameters()).get_weights()[0]
    runtime.seed_everything(config.seed)
    splits = module.load_data(config)
    trained = module.build_model(config, splits.info).get_weights()[0]
    assert (again == first).all() and (trained == first).all()


def test_a_config_value_outside_the_space_is_searched_too():
    """Set by a flag, --tiny or --hparams, a value outside its dimension joins the search: a
    choice list gains it, a float range widens to reach it, as TUNING.md says."""
    config = dataclasses.replace(
        recipe_module("image_classification").Config(),
        widths=(8, 8, 8),
        learning_rate=0.05,
        dropout=0.1,
    )
    space = {"widths": [(16, 32, 64)], "learning_rate": (3e-4, 1e-2, "log"), "dropout": (0.2, 0.5)}
    hypermodel = tuning.ConfigHyperModel(config, space, load_data=None, build_model=None, fit=None)
    hp = keras_tuner.HyperParameters()
    hypermodel.declare(hp)
    assert hp.get("widths") == "8,8,8" and hp.get("learning_rate") == 0.05
    widths, learning_rate, dropout = hp.space
    assert widths.values == ["8,8,8", "16,32,64"]
    assert (learning_rate.min_value, learning_rate.max_value) == (3e-4, 0.05)
    assert learning_rate.sampling == "log"
    assert (dropout.min_value, dropout.max_value) == (0.1, 0.5)
    assert len(hypermodel.notes) == 3
    # A log-scale range cannot reach zero.
    zero = dataclasses.replace(config, l2=0.0)
    with pytest.raises(ConfigError, match=r"--l2 0 is outside the searched range 1e-06\.\.0\.001"):
        tuning.ConfigHyperModel(
            zero, {"l2": (1e-6, 1e-3, "log")}, load_data=None, build_model=None, fit=None
        )


def test_objective_direction():
    assert tuning.objective("val_loss").direction == "min"
    assert tuning.objective("val_accuracy").direction == "max"
    with pytest.raises(ValueError, match="--tuner"):
        tuning.SearchOptions(tuner="grid")


@pytest.mark.parametrize("max_epochs", [4, 9, 20, 27])
def test_hyperband_budget_is_what_keras_tuners_oracle_hands_out(tmp_path, max_epochs):
    """The oracle itself, run to its end: every trial it starts, and the epochs each trains
    (a continued trial trains `tuner/epochs - tuner/initial_epoch`)."""
    from dlrecipes.tuning.budget import hyperband_budget

    space = keras_tuner.HyperParameters()
    space.Float("x", 0.0, 1.0)
    oracle = keras_tuner.oracles.HyperbandOracle(
        objective=keras_tuner.Objective("score", "max"),
        max_epochs=max_epochs,
        factor=3,
        hyperparameters=space,
        seed=0,
    )
    oracle._set_project_dir(str(tmp_path), "budget")
    trials = epochs = 0
    while (trial := oracle.create_trial("tuner0")).status == "RUNNING":
        values = trial.hyperparameters.values
        trials += 1
        epochs += values["tuner/epochs"] - values["tuner/initial_epoch"]
        oracle.update_trial(trial.trial_id, {"score": values["x"]})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    assert trial.status == "STOPPED"
    assert hyperband_budget(max_epochs) == (trials, epochs)
