"""Progress bars for long steps outside fit: drawn on a terminal, silent in a log."""

from __future__ import annotations

import tensorflow_datasets as tfds

from dlrecipes import progress
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
        err = capfd.readouterr().err
        assert ("Generating splits" in err) == terminal, err[-2000:]
        assert ("\r" in err) == terminal
