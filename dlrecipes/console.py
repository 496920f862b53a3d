"""Keeps the console the recipe's own: TensorFlow's start-up log lines and TFDS's preparation
chatter are filtered, so a run shows its own lines first.

TensorFlow 2.21 logs through absl before absl's logging is initialized, and such lines go to
standard error whatever `TF_CPP_MIN_LOG_LEVEL` says (tensorflow/tensorflow#100442): `import
tensorflow` prints oneDNN and "Could not find cuda drivers" INFO lines, and the first device query
prints a "failed call to cuInit" ERROR on a machine without a GPU. `dlrecipes` imports TensorFlow
once, at its own import, with file descriptor 2 redirected; afterwards the lines below the level
`TF_CPP_MIN_LOG_LEVEL` asks for (default 2 here, as `make` sets it) are dropped and every other
line is written out as it came. A failed `cuInit` on a machine without a GPU counts as a warning.
So `import dlrecipes` must come before `import keras` (recipes keep that order; their
`recipes/ruff.toml` tells isort so). `TF_CPP_MIN_LOG_LEVEL=0` shows everything again.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

# absl's format (`I0000 00:00:1795801470.478533 8474 port.cc:153] ...`) and TF's older one
# (`2025-09-17 14:44:05.157831: I external/...cudart_stub.cc:32] ...`).
_NATIVE_LINE = re.compile(
    r"^(?:(?P<absl>[IWEF])\d{4} [\d:.]+\s+\d+ \S+:\d+\]|[\d-]+ [\d:.]+: (?P<tsl>[IWEF]) \S+:\d+\])"
)
_LEVELS = {"I": 0, "W": 1, "E": 2, "F": 3}
_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_NO_GPU = "failed call to cuInit"


def min_log_level() -> int:
    """The lowest native log level shown: `TF_CPP_MIN_LOG_LEVEL` (0 INFO ... 3 FATAL only)."""
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def filter_native_lines(text: str, *, has_gpu: bool, level: int) -> str:
    """The lines of `text` a user should see: native log lines below `level` are dropped, with a
    failed `cuInit` counted as a warning when there is no GPU; everything else is kept."""
    kept = []
    for line in text.splitlines(keepends=True):
        if line.rstrip("\r\n") == _PREAMBLE:
            continue
        match = _NATIVE_LINE.match(line)
        if match:
            severity = _LEVELS[match["absl"] or match["tsl"]]
            if _NO_GPU in line and not has_gpu:
                severity = min(severity, _LEVELS["W"])
            if severity < level:
                continue
        kept.append(line)
    return "".join(kept)


@contextlib.contextmanager
def _native_stderr_captured() -> Iterator[io.StringIO]:
    """Redirects file descriptor 2 into a buffer for the duration; yields it once restored."""
    captured = io.StringIO()
    try:
        saved = os.dup(2)
    except OSError:  # no standard error to redirect
        yield captured
        return
    with tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.write(sink.read().decode("utf-8", "replace"))


def import_tensorflow() -> None:
    """Imports TensorFlow and lists its GPUs with the start-up log lines filtered (see above).

    Does nothing when TensorFlow was imported before: its lines are out already.
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    has_gpu = False
    try:
        with _native_stderr_captured() as captured:
            import tensorflow as tf

            # The first device query initializes CUDA (and logs its failure without a GPU). It
            # creates no logical devices, so memory growth and CPU splits can still be set.
            has_gpu = bool(tf.config.list_physical_devices("GPU"))
    finally:
        shown = filter_native_lines(captured.getvalue(), has_gpu=has_gpu, level=min_log_level())
        if shown:
            sys.stderr.write(shown)
            sys.stderr.flush()


@contextlib.contextmanager
def absl_errors_only() -> Iterator[None]:
    """Python absl logging (TFDS's) shows errors only for the duration.

    TFDS warns "Variant folder ... has no dataset_info.json" when it checks whether a dataset is
    prepared yet, which is the normal state before the first run.
    """
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        absl_logger.setLevel(level)


@contextlib.contextmanager
def tfds_bars(interactive: bool) -> Iterator[None]:
    """TFDS's tqdm bars drawn on a terminal only: a log records them as escape codes."""
    import tensorflow_datasets as tfds

    tfds.display_progress_bar(interactive)
    try:
        yield
    finally:
        tfds.display_progress_bar(True)


def prepare_embedded(builder: Any, interactive: bool) -> None:
    """Prepares an embedded TFDS dataset (built from a package) under one line of our own.

    TFDS prints "Downloading and preparing dataset Unknown size ..." (sizes it cannot know for a
    dataset built from a package) and draws tqdm bars, which a log that is not a terminal records
    as escape codes. Here the bars are drawn on a terminal only, TFDS's own lines are left out,
    and one line says what happens. Does nothing when the dataset is prepared already.

    Args:
        builder: the dataset's `tfds.core.DatasetBuilder`.
        interactive: whether output goes to a terminal (bars are drawn only then).
    """
    with absl_errors_only():
        if builder.is_prepared():
            return
        print(f"Preparing {builder.name} once under {builder.data_dir} ...", flush=True)
        with tfds_bars(interactive), contextlib.redirect_stdout(io.StringIO()):
            builder.download_and_prepare()
