"""Which lines that native code (TensorFlow, oneDNN, TFLite) writes to standard error a user
sees, and the process that filters them while a recipe runs.

Native code writes to file descriptor 2 directly, below Python's `sys.stderr`, so Python cannot
filter it; `dlrecipes.console.filter_native_stderr` points descriptor 2 at a pipe read by this
module, run as a process of its own (`python native_log.py`, standard library only: it must
start in milliseconds and must not import TensorFlow). A separate process, not a thread, so a
process that crashes still has its last lines (a fatal error, a stack dump) written out: this
one reads to the end of the pipe. What is dropped: native log lines below the level
`TF_CPP_MIN_LOG_LEVEL` asks for, and the `CHATTER` below; every other byte is written out
unchanged.
"""

from __future__ import annotations

import os
import re
import select
import signal
import sys

# absl's format (`I0000 00:00:1795801470.478533 8474 port.cc:153] ...`) and TF's older one
# (`2025-09-17 14:44:05.157831: I external/...cudart_stub.cc:32] ...`).
_NATIVE_LINE = re.compile(
    r"^(?:(?P<absl>[IWEF])\d{4} [\d:.]+\s+\d+ \S+:\d+\]|[\d-]+ [\d:.]+: (?P<tsl>[IWEF]) \S+:\d+\])"
)
LEVELS = {"I": 0, "W": 1, "E": 2, "F": 3}
_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_NO_GPU = "failed call to cuInit"

# Lines that normal runs print and that tell a user nothing they can act on. Each is matched in
# full, so a real error that merely mentions the same words is kept.
CHATTER = [
    # TensorFlow with oneDNN on a CPU without AVX-512 (an E-level line, though nothing failed),
    # at the first graph op on a type oneDNN takes only there: booleans (a text model's mask),
    # int64 (MiniLM's token ids): util.cc.
    re.compile(
        r"^E\d{4} [\d:.]+\s+\d+ util\.cc:\d+\] oneDNN supports DT_[A-Z0-9]+ only on platforms "
        r"with AVX-512\. Falling back to the default Eigen-based implementation if present\.$"
    ),
    # The LiteRT (TFLite) interpreter, when it loads a model.
    re.compile(r"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.$"),
    # The TFLite converter's quantizer, when it quantizes a model (int8 export).
    re.compile(
        r"^fully_quantize: \d+, inference_type: \d+, input_inference_type: \w+, "
        r"output_inference_type: \w+$"
    ),
]


def shown(line: str, *, has_gpu: bool, level: int) -> bool:
    """Whether a user sees `line`: not chatter, nor a native log line below `level` (a failed
    `cuInit` counts as a warning on a machine without a GPU)."""
    text = line.rstrip("\r\n")
    if text == _PREAMBLE or any(pattern.match(text) for pattern in CHATTER):
        return False
    match = _NATIVE_LINE.match(text)
    if not match:
        return True
    severity = LEVELS[match["absl"] or match["tsl"]]
    if _NO_GPU in text and not has_gpu:
        severity = min(severity, LEVELS["W"])
    return severity >= level


def min_log_level() -> int:
    """The lowest native log level shown: `TF_CPP_MIN_LOG_LEVEL` (0 INFO ... 3 FATAL only)."""
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


# A partial line (no newline yet) is written out after this long without more bytes: a prompt,
# or a progress bar drawn with carriage returns, must not wait for a newline that never comes.
PARTIAL_AFTER = 0.2


def run(source: int, sink: int, *, has_gpu: bool, level: int) -> None:
    """Copies `source` to `sink` until the end of `source`, without the lines not `shown`."""
    pending = b""
    while True:
        ready, _, _ = select.select([source], [], [], PARTIAL_AFTER if pending else None)
        if not ready:  # a partial line, and nothing more for a while
            _write(sink, pending)
            pending = b""
            continue
        chunk = os.read(source, 65536)
        if not chunk:
            _write(sink, pending)
            return
        *lines, pending = (pending + chunk).split(b"\n")
        kept = [
            line + b"\n"
            for line in lines
            if shown(line.decode("utf-8", "replace"), has_gpu=has_gpu, level=level)
        ]
        _write(sink, b"".join(kept))


def _write(sink: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(sink, view) :]
        except OSError:  # nobody reads standard error any more: go on draining the pipe, so
            return  # the writers never block on it


if __name__ == "__main__":
    # The filter outlives Ctrl-C (the terminal sends it to every process of the run) and a
    # SIGTERM sent to them all: it ends when the recipe's process, and every process that
    # inherited its standard error, has, after writing their last lines.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    run(0, 1, has_gpu=sys.argv[1:] == ["--has-gpu"], level=min_log_level())
