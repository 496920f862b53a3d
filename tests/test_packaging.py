"""The wheel `make dist` builds, installed apart from this checkout: it holds every recipe, and a
recipe copied out of it trains in a project outside the repository."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, started

RECIPES = sorted(p.parent.name for p in (ROOT / "recipes").glob("*/recipe.py"))


def run(*args: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Runs `args`; past 8 minutes it is killed, with what it started."""
    output = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    with started(args, cwd=cwd, env=env, **output) as proc:
        stdout, stderr = proc.communicate(timeout=480)
    if proc.returncode:
        raise AssertionError(f"{args} exited {proc.returncode}\n{stdout}\n{stderr}")
    return subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """The wheel of this checkout, built once per session by `make dist` (with this Python)."""
    dist = tmp_path_factory.mktemp("dist")
    run("make", "dist", f"PY={sys.executable}", "STAMP=", f"DIST={dist}", cwd=ROOT, env=os.environ)
    (built,) = dist.glob("dlrecipes-*.whl")
    return built


@pytest.fixture(scope="session")
def installed(wheel, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """That wheel installed into a folder of its own (dependencies come from this environment),
    and an environment whose Python imports dlrecipes from there and nowhere else."""
    site = tmp_path_factory.mktemp("site")
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index"]
    run(*pip, "--target", site, wheel, cwd=site, env=os.environ)
    return site, {**os.environ, "PYTHONPATH": str(site)}


@pytest.mark.slow
def test_the_wheel_ships_every_recipe_folder(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert RECIPES  # the checkout's recipes/<name>/recipe.py folders
    for name in RECIPES:
        assert f"dlrecipes/recipes/{name}/recipe.py" in names, name
        assert f"dlrecipes/recipes/{name}/README.md" in names, name
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


@pytest.mark.slow
def test_a_recipe_copied_from_the_installed_wheel_is_changed_and_trains_outside_the_repository(
    installed, tmp_path
):
    site, env = installed
    project = tmp_path / "elsewhere"
    project.mkdir()
    copied = run(
        sys.executable,
        "-m",
        "dlrecipes",
        "copy",
        "image-classification",
        project,
        cwd=project,
        env=env,
    )
    assert "pip install -e" not in copied.stdout and "dlrecipes-0.1.0" in copied.stdout
    recipe = project / "image_classification" / "recipe.py"
    readme = (recipe.parent / "README.md").read_text()
    for repository_only in ("make ", "benchmarks/", "../shared"):
        assert repository_only not in readme, repository_only
    assert "python image_classification/recipe.py train" in readme
    # Changed where a user changes things: the recipe's own compile and fit.
    source = recipe.read_text()
    edits = {
        'loss="sparse_categorical_crossentropy",': (
            'loss=keras.losses.SparseCategoricalCrossentropy(reduction="sum"),'
        ),
        "callbacks=run.callbacks(),": (
            "callbacks=[*run.callbacks(), keras.callbacks.LambdaCallback("
            "on_epoch_end=lambda epoch, logs: print('my callback, epoch', epoch + 1))],"
        ),
    }
    for old, new in edits.items():
        assert source.count(old) == 1, old
        source = source.replace(old, new)
    recipe.write_text(source)

    train = f"""
import runpy, sys
import dlrecipes
print("dlrecipes from", dlrecipes.__file__)
sys.argv = ["{recipe}", "train", "--tiny", "--epochs", "1", "--run-dir", "runs/x"]
runpy.run_path(sys.argv[0], run_name="__main__")
"""
    lines = run(sys.executable, "-c", train, cwd=project, env=env).stdout.strip().splitlines()
    assert lines[0] == f"dlrecipes from {site / 'dlrecipes' / '__init__.py'}"
    assert lines[-1] == "runs/x" and (project / "runs" / "x" / "model.keras").exists()
    assert "my callback, epoch 1" in lines  # the added callback ran
    # The summed loss: a batch of 64 digits sums to far more than a mean cross-entropy (< 2.4).
    history = (project / "runs" / "x" / "history.csv").read_text().splitlines()
    row = dict(zip(history[0].split(","), history[1].split(","), strict=True))
    assert float(row["loss"]) > 20, row


@pytest.mark.parametrize("name", RECIPES)
def test_a_copied_recipe_describes_the_copy_not_this_repository(name, tmp_path):
    from dlrecipes import copying

    folder = copying.copy_recipe(name, tmp_path)
    readme, code = (folder / "README.md").read_text(), (folder / "recipe.py").read_text()
    assert f"python {name}/recipe.py train" in readme
    assert "In the dlrecipes repository" not in readme and "make " not in readme
    for text in (readme, code):
        assert "../shared" not in text
        assert not re.findall(r"(?<![\w/.-])recipes/\w+", text)  # paths of this checkout
        assert not re.findall(r"make [\w-]+ ARGS=", text)


def test_copy_lists_the_recipes_and_never_overwrites(tmp_path, capsys):
    from dlrecipes import __main__ as command

    assert command.main(["list"]) == 0
    assert capsys.readouterr().out.split() == RECIPES
    assert command.main(["copy", "text-bilstm", str(tmp_path)]) == 0
    readme = (tmp_path / "text_bilstm" / "README.md").read_text()
    assert "python text_bilstm/recipe.py train" in readme and "make " not in readme
    assert command.main(["copy", "fine-tuning", str(tmp_path)]) == 0
    readme = (tmp_path / "fine_tuning" / "README.md").read_text()
    assert "--hparams fine_tuning/digits.json" in readme and "recipes/fine_tuning" not in readme
    assert (tmp_path / "fine_tuning" / "digits.json").exists()
    assert command.main(["copy", "text_bilstm", str(tmp_path)]) == 2
    assert "exists already; nothing was copied" in capsys.readouterr().err
    assert command.main(["copy", "text_lstm", str(tmp_path)]) == 2
    assert "Unknown recipe 'text_lstm'; available: " + ", ".join(RECIPES) in capsys.readouterr().err
