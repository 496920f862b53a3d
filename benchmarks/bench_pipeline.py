"""The image input pipeline alone (examples per second) vs what training consumes.

If the pipeline delivers several times what a training step eats, input is not the bottleneck.
"""

from __future__ import annotations

import time

from common import EpochClock, compiled_model, load_recipe, write_result

from dlrecipes import runtime

EPOCHS = 3


def main() -> None:
    runtime.seed_everything(0)
    module = load_recipe("image_classification")
    config = module.Config()
    splits = module.load_data(config)
    n = sum(int(x.shape[0]) for x, _ in splits.train)  # also fills the cache
    start = time.perf_counter()
    for _ in range(EPOCHS):
        for _batch in splits.train:
            pass
    pipeline_rate = EPOCHS * n / (time.perf_counter() - start)

    model = compiled_model(module, config, splits)
    clock = EpochClock()
    model.fit(splits.train, epochs=EPOCHS, callbacks=[clock], verbose=0)
    steady = (clock.elapsed - clock.points[0][1]) / (EPOCHS - 1)
    train_rate = n / steady
    rows = [
        {
            "stage": "input pipeline alone (cache, shuffle, batch, augment)",
            "examples_per_s": round(pipeline_rate),
        },
        {"stage": "training step consumption (default model)", "examples_per_s": round(train_rate)},
    ]
    notes = f"The pipeline delivers {pipeline_rate / train_rate:.1f}x what training consumes."
    path = write_result(
        "pipeline",
        "Image input pipeline vs training throughput",
        rows,
        notes,
        data=("mnist_sample",),
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
