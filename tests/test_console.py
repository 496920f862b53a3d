"""Which lines reach the console: TensorFlow's start-up lines, native chatter at run time,
real errors, data warnings (see dlrecipes.console and dlrecipes.native_log)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from pathlib import Path

import pytest

from dlrecipes import native_log
from dlrecipes.console import filter_native_lines
from tests.conftest import run_cli

STARTUP = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1795801470.478533    8474 port.cc:153] oneDNN custom operations are on.
W0000 00:00:1795801470.478863    8474 gpu_device.cc:2] Cannot dlopen some GPU libraries.
2025-09-17 14:44:05.163208: I external/local_xla/xla/tsl/cuda/cudart_stub.cc:32] No cuda drivers.
E0000 00:00:1795801473.719432    8474 cuda_platform.cc:52] failed call to cuInit: UNKNOWN (303)
E0000 00:00:1795801473.719500    8474 some_op.cc:7] a real error
/site-packages/keras/src/x.py:74: UserWarning: something Python warns about
"""


def _kept(text: str) -> list[str]:
    return [line.split("]")[-1].strip() or line for line in text.splitlines()]


def test_default_level_shows_errors_and_python_output_only():
    kept = _kept(filter_native_lines(STARTUP, has_gpu=False, level=2))
    assert kept == ["a real error", STARTUP.splitlines()[-1]]


def test_a_failed_cuinit_is_an_error_where_there_is_a_gpu():
    kept = filter_native_lines(STARTUP, has_gpu=True, level=2)
    assert "failed call to cuInit" in kept


def test_level_zero_shows_every_line_but_the_absl_preamble():
    kept = filter_native_lines(STARTUP, has_gpu=False, level=0).splitlines()
    assert kept == STARTUP.splitlines()[1:]
    warnings = filter_native_lines(STARTUP, has_gpu=False, level=1)
    assert "cuInit" in warnings and "Cannot dlopen" in warnings and "oneDNN" not in warnings


# Lines normal runs printed, as they came (dlrecipes.native_log.CHATTER).
CHATTER = """\
E0000 00:00:1796641733.168574    4045 util.cc:131] oneDNN supports DT_BOOL only on platforms with AVX-512. Falling back to the default Eigen-based implementation if present.
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
fully_quantize: 0, inference_type: 6, input_inference_type: FLOAT32, output_inference_type: FLOAT32
"""  # noqa: E501
REAL_ERROR = "E0000 00:00:1796641733.168574    4045 some_op.cc:7] a real error\n"


def test_known_chatter_is_dropped_and_lines_like_it_are_kept():
    assert filter_native_lines(CHATTER + REAL_ERROR, has_gpu=False, level=2) == REAL_ERROR
    # The same fallback for another type (MiniLM's int64 token ids) is chatter too.
    int64 = CHATTER.splitlines()[0].replace("DT_BOOL", "DT_INT64") + "\n"
    assert filter_native_lines(int64, has_gpu=False, level=2) == ""
    # Matched in full: another oneDNN error, or the same words inside another line, stay.
    other = CHATTER.splitlines()[0].replace("Falling back", "No fallback") + "\n"
    quoted = "error: INFO: Created TensorFlow Lite XNNPACK delegate for CPU. failed\n"
    assert filter_native_lines(other + quoted, has_gpu=False, level=2) == other + quoted


def _filtered(writer: str) -> subprocess.CompletedProcess:
    """Runs the Python code `writer` with its standard error piped through the native_log
    process, as `console.filter_native_stderr` does; returns what reached the end."""
    read, write = os.pipe()
    with subprocess.Popen(
        [sys.executable, "-I", native_log.__file__], stdin=read, stdout=subprocess.PIPE
    ) as log:
        os.close(read)
        subprocess.run([sys.executable, "-c", writer], stderr=write, check=False)
        os.close(write)
        out = log.stdout.read().decode()
    return subprocess.CompletedProcess(log.args, log.returncode, out)


def test_the_filter_process_drops_chatter_and_outlives_a_crash():
    """The last lines of a process that aborts still come out: the filter reads to the end."""
    fatal = "F0000 00:00:1796641733.1 4045 op.cc:9] Check failed: shape mismatch"
    writer = (
        "import os, sys\n"
        f"os.write(2, {(CHATTER + REAL_ERROR).encode()!r})\n"
        f"os.write(2, {(fatal + chr(10)).encode()!r})\n"
        "os.write(2, b'a partial line')\n"
        "os.abort()\n"
    )
    result = _filtered(writer)
    assert result.returncode == 0
    assert result.stdout == REAL_ERROR + fatal + "\na partial line"


def test_a_partial_line_is_written_out_without_waiting_for_its_newline():
    """A progress bar drawn with carriage returns never ends its line until it is done."""
    read, write = os.pipe()
    with subprocess.Popen(
        [sys.executable, "-I", native_log.__file__], stdin=read, stdout=subprocess.PIPE
    ) as log:
        os.close(read)
        os.write(write, b"\rstep 1/3")
        ready, _, _ = select.select([log.stdout], [], [], 30)
        assert ready and os.read(log.stdout.fileno(), 100) == b"\rstep 1/3"
        os.close(write)


RECIPE_LIKE = f"""\
import os
import warnings

import dlrecipes  # first, as recipes import it
import tensorflow as tf

from dlrecipes.data import TextDataWarning

# A graph op on booleans (an input, not a constant the graph would fold): with oneDNN on, and a
# CPU without AVX-512, it logs its E0000 line.
mask = tf.constant([[True, False]])
tf.function(lambda: tf.transpose(mask))()
os.write(2, {CHATTER.encode()!r})  # as native code writes them, whatever the CPU
os.write(2, {REAL_ERROR.encode()!r})  # what native code's LOG(ERROR) writes
tf.get_logger().warning(
    "5 out of the last 9 calls to <function f at 0x7f> triggered tf.function retracing."
)
for _ in range(2):  # the same data loaded twice
    warnings.warn("csv:my.csv: left out 1 empty text: row 7.", TextDataWarning, stacklevel=1)
print("done", flush=True)
raise RuntimeError("a real bug")
"""


@pytest.mark.parametrize("level", ["2", "0"])
def test_a_run_shows_real_errors_and_data_warnings_but_no_chatter(tmp_path, level):
    """What a recipe's process prints: chatter gone (all of it back with TF_CPP_MIN_LOG_LEVEL=0,
    which shows the oneDNN line was really logged), a native error, the data warning once and
    worded for the user, and the traceback of a bug."""
    script = tmp_path / "recipe_like.py"
    script.write_text(RECIPE_LIKE)
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": level}
    proc = run_cli(script, check=False, env=env, cwd=tmp_path)
    assert proc.returncode == 1 and proc.stdout == "done\n"
    err = proc.stderr
    assert REAL_ERROR in err
    assert "Traceback (most recent call last)" in err and "RuntimeError: a real bug" in err
    assert err.count("warning: csv:my.csv: left out 1 empty text: row 7.\n") == 1
    assert "TextDataWarning" not in err and "warnings.warn(" not in err
    shown = level == "0"
    assert all((line in err) == shown for line in CHATTER.splitlines()), err
    assert ("triggered tf.function retracing" in err) == shown
    # The transpose's own line, logged by oneDNN only where the CPU lacks AVX-512.
    logged = not _cpu_has_avx512()
    assert err.count("oneDNN supports DT_BOOL") == (1 + logged if shown else 0)


def _cpu_has_avx512() -> bool:
    cpuinfo = Path("/proc/cpuinfo")
    return cpuinfo.exists() and " avx512f" in cpuinfo.read_text()
