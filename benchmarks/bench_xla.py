"""XLA on vs off for the image recipe's default model on this machine's CPU.

Decides `dlrecipes.runtime.JIT_ON_CPU`. The first epoch (tracing and compiling) is reported
apart from the steady-state epochs.
"""

from __future__ import annotations

import dataclasses

from common import EpochClock, compiled_model, load_recipe, write_result

from dlrecipes import runtime

EPOCHS = 3


def measure(module, jit: bool) -> EpochClock:
    runtime.seed_everything(0)
    config = dataclasses.replace(module.Config(), epochs=EPOCHS, jit=jit)
    splits = module.load_data(config)
    model = compiled_model(module, config, splits)
    clock = EpochClock()
    model.fit(splits.train, epochs=EPOCHS, callbacks=[clock], verbose=0)
    return clock


def main() -> None:
    module = load_recipe("image_classification")
    rows = []
    for jit in (False, True):
        clock = measure(module, jit)
        first = clock.points[0][1]
        steady = (clock.elapsed - first) / (EPOCHS - 1)
        rows.append(
            {
                "xla": "on" if jit else "off",
                "first_epoch_s": round(first, 1),
                "steady_epoch_s": round(steady, 2),
            }
        )
    ratio = rows[1]["steady_epoch_s"] / rows[0]["steady_epoch_s"]
    for row in rows:
        row["vs_off"] = round(row["steady_epoch_s"] / rows[0]["steady_epoch_s"], 2)
    notes = (
        f"Steady-state epoch time with XLA is {ratio:.2f}x that without, on CPU. "
        f"`JIT_ON_CPU = {runtime.JIT_ON_CPU}` in dlrecipes/runtime.py follows this measurement; "
        "on GPU XLA is on by default."
    )
    path = write_result(
        "xla_cpu",
        "XLA on vs off, image recipe default model, CPU",
        rows,
        notes,
        data=("mnist_sample",),
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
