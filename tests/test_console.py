"""Which of TensorFlow's start-up lines reach the console (see dlrecipes.console)."""

from __future__ import annotations

from dlrecipes.console import filter_native_lines

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
