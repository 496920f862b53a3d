"""Keeps the console the recipe's own: library chatter is filtered, data warnings are worded
for the user, so a run shows its own lines and real errors only.

- TensorFlow 2.21 logs through absl before absl's logging is initialized, and such lines go to
  standard error whatever `TF_CPP_MIN_LOG_LEVEL` says (tensorflow/tensorflow#100442): `import
  tensorflow` prints oneDNN and "Could not find cuda drivers" INFO lines, and the first device
  query prints a "failed call to cuInit" ERROR on a machine without a GPU. `dlrecipes` imports
  TensorFlow once, at its own import, with file descriptor 2 redirected; the lines below the
  level `TF_CPP_MIN_LOG_LEVEL` asks for (default 2 here, as `make` sets it) are dropped and every
  other line is written out as it came. A failed `cuInit` on a machine without a GPU counts as a
  warning.
- Afterwards native code (oneDNN, the TFLite converter and interpreter) still writes lines of its
  own at run time; `filter_native_stderr` filters them the same way, and drops known chatter
  (`dlrecipes.native_log.CHATTER`), for the rest of the process's life.
- TensorFlow's Python logger warns about tf.function retracing and eager distribution calls,
  hints for TensorFlow's developers that a recipe's user cannot act on: dropped.
- Data warnings (`dlrecipes.errors.DataWarning`: rows or files left out) print once each as
  `warning: <message>`, the way the command line prints `error: <message>`, not in Python's
  `file.py:123: Category: message` format with the source line of the caller.

So `import dlrecipes` must come before `import keras` (recipes keep that order; their
`recipes/ruff.toml` tells isort so). `TF_CPP_MIN_LOG_LEVEL=0` shows everything again.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from typing import Any

from dlrecipes import native_log, progress
from dlrecipes.errors import DataWarning


def install() -> None:
    """Everything above, once; `import dlrecipes` calls it before anything imports TensorFlow."""
    has_gpu = import_tensorflow()
    if native_log.min_log_level() > 0:
        filter_native_stderr(has_gpu=has_gpu)
        logging.getLogger("tensorflow").addFilter(_drop_python_chatter)
    word_data_warnings()


def filter_native_lines(text: str, *, has_gpu: bool, level: int) -> str:
    """The lines of `text` a user should see (`native_log.shown`): native log lines below `level`
    and known chatter are dropped, with a failed `cuInit` counted as a warning when there is no
    GPU; everything else is kept."""
    return "".join(
        line
        for line in text.splitlines(keepends=True)
        if native_log.shown(line, has_gpu=has_gpu, level=level)
    )


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


def import_tensorflow() -> bool:
    """Imports TensorFlow and lists its GPUs with the start-up log lines filtered (see above);
    returns whether there is a GPU.

    When TensorFlow was imported before, its lines are out already and nothing is done; it
    returns True then (it cannot tell without a device query, and a failed cuInit where there
    might be a GPU is worth showing).
    """
    if "tensorflow" in sys.modules:
        return True
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    has_gpu = False
    try:
        with _native_stderr_captured() as captured:
            import tensorflow as tf

            # The first device query initializes CUDA (and logs its failure without a GPU). It
            # creates no logical devices, so memory growth and CPU splits can still be set.
            has_gpu = bool(tf.config.list_physical_devices("GPU"))
    finally:
        level = native_log.min_log_level()
        shown = filter_native_lines(captured.getvalue(), has_gpu=has_gpu, level=level)
        if shown:
            sys.stderr.write(shown)
            sys.stderr.flush()
    return has_gpu


# The native standard-error filter of this process (`filter_native_stderr`), once started.
_native_filter: subprocess.Popen | None = None


def filter_native_stderr(*, has_gpu: bool) -> None:
    """Filters what native code writes to standard error, for the rest of this process's life.

    File descriptor 2 becomes a pipe to a `dlrecipes.native_log` process, which writes every
    line on to the real standard error but those `native_log.shown` drops. Python's own
    `sys.stderr` keeps writing straight to the real standard error (a duplicate of the old
    descriptor 2), so tracebacks, warnings and progress bars are neither delayed nor filtered;
    a `sys.stderr` that writes elsewhere (a notebook's) is left as it is.
    Processes started from here inherit the pipe, so their native lines are filtered too.
    Does nothing the second time, on a system without pipes and `select`, or without a standard
    error.

    Args:
        has_gpu: whether this machine has a GPU (a failed cuInit is chatter only without one).
    """
    global _native_filter
    if _native_filter is not None or os.name != "posix":
        return
    try:
        real = os.dup(2)
    except OSError:  # no standard error
        return
    read, write = os.pipe()
    command = [sys.executable, "-I", native_log.__file__, *(["--has-gpu"] if has_gpu else [])]
    _native_filter = subprocess.Popen(command, stdin=read, stdout=real, stderr=real)
    os.close(read)
    stream = sys.stderr
    if _writes_to_fd_2(stream):
        stream.flush()
        sys.stderr = open(  # noqa: SIM115 - standard error, open for the life of the process
            real,
            "w",
            buffering=1,
            encoding=getattr(stream, "encoding", None) or "utf-8",
            errors="backslashreplace",
        )
    else:  # Python writes elsewhere already (a notebook's stream, pytest's capture)
        os.close(real)
    os.dup2(write, 2)
    os.close(write)


def _writes_to_fd_2(stream: Any) -> bool:
    try:
        return stream is not None and stream.fileno() == 2
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return False


def _drop_python_chatter(record: logging.LogRecord) -> bool:
    """False for TensorFlow's Python log records that are chatter (see the module docstring)."""
    message = record.getMessage()
    return not any(text in message for text in PYTHON_CHATTER)


# TensorFlow's Python warnings that normal runs print: `WARNING:tensorflow:5 out of the last 9
# calls to <function ...> triggered tf.function retracing` (predicting with models of several
# input sizes, timing models at batch 1 and 256), and "Using CollectiveAllReduceStrategy
# eagerly has significant overhead currently" (Keras 3 under MultiWorkerMirroredStrategy).
PYTHON_CHATTER = ("triggered tf.function retracing", "eagerly has significant overhead currently")


def word_data_warnings() -> None:
    """Data warnings print once each, as `warning: <message>` on standard error.

    Other warnings keep Python's format. Tests and callers that record warnings
    (`warnings.catch_warnings(record=True)`, `pytest.warns`) still see every one.
    """
    warnings.filterwarnings("once", category=DataWarning)
    if getattr(warnings.showwarning, "words_data_warnings", False):
        return
    python_format = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        if not issubclass(category, DataWarning):
            python_format(message, category, filename, lineno, file, line)
            return
        stream = file or sys.stderr
        if stream is not None:
            stream.write(f"warning: {message}\n")
            stream.flush()

    show.words_data_warnings = True
    warnings.showwarning = show


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
    one line says what happens and another when it is done; the builder's own lines (a wheel it
    fetches) are shown. Does nothing when the dataset is prepared already.

    Args:
        builder: the dataset's `tfds.core.DatasetBuilder`.
        interactive: whether output goes to a terminal (bars are drawn only then).
    """
    with absl_errors_only():
        if builder.is_prepared():
            return
        with (
            progress.step(f"Preparing {builder.name} once under {builder.data_dir}"),
            tfds_bars(interactive),
            without_tfds_lines(),
        ):
            builder.download_and_prepare()


# What TFDS prints (`termcolor.cprint`, to standard output) before and after preparing a dataset.
_TFDS_LINES = ("Downloading and preparing dataset ", " downloaded and prepared to ")


@contextlib.contextmanager
def without_tfds_lines() -> Iterator[None]:
    """Standard output without TFDS's own lines about preparing a dataset for the duration;
    every other line (a builder fetching its data says so) is written through as it ends."""
    out = sys.stdout
    kept = _LinesWithout(out, _TFDS_LINES)
    with contextlib.redirect_stdout(kept):
        try:
            yield
        finally:
            kept.close()


class _LinesWithout(io.TextIOBase):
    """A text stream that writes each finished line to `out` unless it holds one of `drop`."""

    def __init__(self, out: Any, drop: tuple[str, ...]) -> None:
        super().__init__()
        self.out, self.drop, self.pending = out, drop, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            if not any(words in line for words in self.drop):
                self.out.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.out.flush()

    def close(self) -> None:
        if self.pending and not any(words in self.pending for words in self.drop):
            self.out.write(self.pending)
        self.pending = ""
        self.out.flush()
        super().close()
