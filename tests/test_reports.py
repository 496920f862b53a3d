"""Report plots: files written without touching the matplotlib backend a user has chosen."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli

PLOTS = """
import sys
from pathlib import Path
import matplotlib
matplotlib.use("svg")  # the user's choice, e.g. a notebook's inline backend
from dlrecipes import reports
from dlrecipes.tuning import report as tuning_report

out = Path(sys.argv[1])
(out / "history.csv").write_text("epoch,loss,accuracy,val_loss,val_accuracy\\n0,1,0.5,1,0.6\\n")
reports.plot_curves(out / "history.csv", out / "curves.png")
reports.plot_confusion([[3, 1], [0, 4]], ["cat", "dog"], out / "confusion.png")
row = tuning_report.TrialRow("0", "COMPLETED", 0.9, 1, None, {}, {}, None)
summary = tuning_report.Summary("random", "val_accuracy", "max", [], [row])
tuning_report.plot_objective(summary, out / "objective.png")
print("backend", matplotlib.get_backend())
"""


@pytest.mark.slow
def test_plots_are_png_files_and_leave_the_backend_alone(tmp_path):
    proc = run_cli("-c", PLOTS, tmp_path)
    assert proc.stdout.split()[-2:] == ["backend", "svg"]
    for name in ("curves.png", "confusion.png", "objective.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_curves_tick_whole_epochs(tmp_path):
    """Two epochs of a real tiny run: the x axis reads 1 and 2, not 1.0, 1.2, ... 2.0."""
    from dlrecipes import reports

    history = tmp_path / "history.csv"
    history.write_text(
        "epoch,accuracy,loss,val_accuracy,val_loss\n"
        "0,0.7082,1.0005,0.9320,0.2593\n1,0.8857,0.3768,0.9460,0.2158\n"
    )
    fig = reports.plot_curves(history, tmp_path / "curves.png")
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks == [1, 2], ticks
