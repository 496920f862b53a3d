"""The run lifecycle every recipe shares, checked the same way on all four (`--tiny`).

A recipe tells its own story (its `train` calls `compile` and `fit` itself), so nothing stops it
from dropping a guarantee but these tests: each recipe is trained, killed with SIGKILL and
resumed (no finished epoch, and for pruning no finished variant, runs again; with
`--backup-steps` the run goes on inside the epoch it was in), stopped with Ctrl-C (SIGINT: one
line naming the run directory and the exact command that resumes it, which then completes the
run), exported (the SavedModel predicts what `model.keras` predicts on real test inputs), and
given bad input (one line, exit status 2, no run directory).
"""

from __future__ import annotations

import csv
import json
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import ROOT, recipe_module, run_cli, started

# Three processes per recipe, each a tiny training: minutes on a loaded 2-core machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

# Per recipe: extra flags that make a tiny run long enough to be stopped part-way.
FLAGS = {
    "image_classification": ["--epochs", "6"],
    "text_bilstm": ["--epochs", "6"],
    "fine_tuning": ["--head-epochs", "1", "--epochs", "4"],
    "pruning": ["--epochs", "3"],
}
WAIT = 600  # seconds a tiny run may take to get somewhere on a loaded 2-core machine


def _history(path: Path) -> list[int]:
    if not path.exists() or not path.stat().st_size:
        return []
    with path.open() as f:
        return [int(r["epoch"]) for r in csv.DictReader(f)]


def _start(recipe: str, *args: str | Path):
    """The recipe's command line in a process of its own (killed, with what it started, when
    the block is left: `conftest.started`)."""
    script = ROOT / "recipes" / recipe / "recipe.py"
    return started(
        [sys.executable, script, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As a foreground job: a suite started in the background runs with SIGINT ignored,
        # which children inherit.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for(proc: subprocess.Popen, done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not done():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the run ended before {what}:\n{out[-2000:]}\n{err[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no {what} within {WAIT} s")
        time.sleep(0.1)


def _backed_up(run_dir: Path) -> int:
    """Epochs done by the newest backup of any fit of the run (`backup/<fit>/epoch-N-step-S`)."""
    found = [int(p.name.split("-")[1]) for p in run_dir.glob("backup/*/epoch-*-step-*")]
    return max(found, default=0)


def _progress(run_dir: Path, recipe: str) -> Callable[[], int]:
    """How far a run got: epochs backed up, or for pruning finished variants."""
    if recipe == "pruning":
        return lambda: len(list(run_dir.glob("*/model.keras")))
    return lambda: _backed_up(run_dir)


def _finished_files(run_dir: Path) -> dict[str, float]:
    """Pruning: each finished variant's model file and its modification time."""
    return {str(p): p.stat().st_mtime_ns for p in run_dir.glob("*/model.keras")}


@pytest.mark.parametrize("recipe", list(FLAGS))
def test_killed_interrupted_and_resumed_runs_lose_nothing_and_repeat_nothing(recipe, tmp_path):
    run_dir = tmp_path / "run"
    train = ["train", "--tiny", *FLAGS[recipe], "--backup-steps", "2", "--export"]
    progress = _progress(run_dir, recipe)

    # 1. SIGKILL once something is finished (an epoch; for pruning, a variant) and a step backup
    # of what follows may exist.
    with _start(recipe, *train, "--run-dir", run_dir) as proc:
        _wait_for(proc, lambda: progress() >= (2 if recipe == "pruning" else 1), "an epoch")
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert not (run_dir / "metrics.json").exists(), "killed too late: the run had finished"
    backed_up = _backed_up(run_dir)  # a step backup may hold part of the epoch after these
    finished_before = _finished_files(run_dir)
    assert backed_up or finished_before

    # 2. Resumed (without --resume the directory is refused, untouched), then Ctrl-C.
    main = recipe_module(recipe).main
    assert main([*train, "--run-dir", str(run_dir)]) == 2
    done_before = progress()
    with _start(recipe, *train, "--run-dir", run_dir, "--resume") as proc:
        _wait_for(proc, lambda: progress() > done_before, "progress after resuming")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 130, err[-3000:]
    # No finished epoch ran again: the resumed run's first epoch is the one after the last.
    lines = [line for line in out.splitlines() if line.startswith("Epoch ")]
    if recipe != "pruning":
        first = int(lines[0].split()[1].split("/")[0])
        assert first == backed_up + 1, lines
    else:  # no finished variant was made again
        after = _finished_files(run_dir)
        assert {k: after[k] for k in finished_before} == finished_before
    message = err.strip().splitlines()[-1]
    assert message.startswith(f"interrupted; {run_dir} keeps what was done. Continue with: ")
    command = shlex.split(message.split("Continue with: ", 1)[1])
    resumes = ["train", "--run-dir", str(run_dir), "--resume", "--export", "saved_model"]
    assert command[2:] == resumes

    # 3. The printed command, as printed, completes the run.
    done = run_cli(*command[1:], timeout=WAIT)
    assert done.stdout.strip().splitlines()[-1] == str(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert not (run_dir / "backup").exists()
    history = _history(run_dir / "history.csv")
    assert history == sorted(set(history)) and history == list(range(len(history)))
    if recipe == "pruning":
        after = _finished_files(run_dir)
        assert {k: after[k] for k in finished_before} == finished_before
        assert {r["model"] for r in metrics["models"]} >= {"dense", "small-dense"}
    else:
        assert len(history) == metrics["epochs_run"] and len(history) > backed_up

    # 4. The export predicts what the saved Keras model predicts, on real test inputs.
    _check_export(recipe, run_dir)


def _check_export(recipe: str, run_dir: Path) -> None:
    module = recipe_module(recipe)
    config = module.Config.load(run_dir / "config.json")
    inputs, _ = next(iter(module.load_data(config).test))
    keras_model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    expected = keras_model.predict(inputs, verbose=0)
    loaded = tf.saved_model.load(str(run_dir / "saved_model"))  # kept: its variables die with it
    served = loaded.serve(inputs)
    np.testing.assert_allclose(np.asarray(served), expected, atol=1e-5)
    assert (np.asarray(served).argmax(-1) == expected.argmax(-1)).all()
    # The export's own check, on the whole test split, is in metrics.json.
    checked = json.loads((run_dir / "metrics.json").read_text())["exports"][1]
    assert checked["format"] == "saved_model" and checked["agreement"] == 1.0, checked


@pytest.mark.parametrize("recipe", list(FLAGS))
def test_bad_input_gets_one_line_exit_status_2_and_no_run_directory(recipe, tmp_path, capsys):
    main = recipe_module(recipe).main
    run_dir = tmp_path / "run"
    assert main(["train", "--tiny", "--dataset", "no_such_set", "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no_such_set" in err
    assert not run_dir.exists()
