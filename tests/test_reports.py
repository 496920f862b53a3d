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
