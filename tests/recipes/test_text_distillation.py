"""`recipes/text_bilstm/recipe.py train --teacher`: a tiny teacher, a tiny distilled run end to end
whose model reloads in safe mode without dlrecipes, and one-line refusals of unusable teachers."""

from __future__ import annotations

import dataclasses
import json

import keras
import pytest

from dlrecipes import distillation
from dlrecipes.distillation import transfer
from tests.conftest import recipe_module, run_cli

WORDS = {
    "pos": ["wonderful", "moving", "superb", "funny", "charming", "clever", "warm", "gripping"],
    "neg": ["dull", "tedious", "clumsy", "boring", "lifeless", "flat", "noisy", "muddled"],
}
COMMON = ["film", "story", "acting", "plot", "cast", "script", "ending", "score"]
TINY = ("--tiny", "--word-vectors", "none", "--batch-size", "16")


def run(*argv) -> int:
    """The text recipe's command line, run in this process."""
    return recipe_module("text_bilstm").main([str(a) for a in argv])


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    """A small two-class CSV of short reviews, and a tiny teacher trained on it."""
    root = tmp_path_factory.mktemp("distill")
    rows = ["text,label"]
    for label, words in WORDS.items():
        for i in range(60):
            rows.append(
                f"the {COMMON[i % 8]} is {words[i % 8]} and {words[(i * 3 + 1) % 8]} "
                f"{COMMON[(i // 8) % 8]} number {i},{label}"
            )
    csv = root / "reviews.csv"
    csv.write_text("\n".join(rows) + "\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DLRECIPES_CACHE", str(root / "cache"))
        assert run("train", *TINY, "--dataset", f"csv:{csv}", "--run-dir", root / "teacher") == 0
    return root, csv


@pytest.mark.slow
def test_a_distilled_run_writes_an_ordinary_student_and_a_side_by_side_report(
    reviews, monkeypatch, capsys
):
    root, csv = reviews
    monkeypatch.setenv("DLRECIPES_CACHE", str(root / "cache"))
    teacher = root / "teacher" / "model.keras"
    student = root / "student"
    argv = ["train", *TINY, "--dataset", f"csv:{csv}", "--teacher", teacher, "--epochs", "2"]
    assert run(*argv, "--run-dir", student) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(student)

    assert json.loads((student / "config.json").read_text())["teacher"] == str(teacher)
    assert len(list((root / "cache" / "teacher-predictions").glob("*.npy"))) == 2  # transfer, test
    metrics = json.loads((student / "metrics.json").read_text())
    side = metrics["distillation"]
    assert side["student"]["accuracy"] == pytest.approx(metrics["accuracy"])
    assert side["teacher"]["accuracy"] == pytest.approx(
        json.loads((root / "teacher" / "metrics.json").read_text())["accuracy"]
    )
    for model in ("teacher", "student"):
        assert side[model]["parameters"] > 0 and side[model]["file_bytes"] > 0
        assert side[model]["latency_ms"] > 0 and side[model]["texts_per_second"] > 0
    assert 0 <= side["agreement"] <= 1
    report = (student / "report.md").read_text()
    assert "## Teacher and student" in report and f"`{teacher}`" in report
    assert f"{100 * side['teacher']['accuracy']:.2f}%" in report
    history = (student / "history.csv").read_text().splitlines()[0].split(",")
    assert {"accuracy", "val_accuracy", "loss", "val_loss"} <= set(history)

    # The student loads in safe mode in a process that never imports dlrecipes, and reads strings.
    probe = (
        "import sys, keras, numpy as np, tensorflow as tf\n"
        "m = keras.saving.load_model(sys.argv[1], safe_mode=True)\n"
        "assert 'dlrecipes' not in sys.modules and m.input.dtype == 'string'\n"
        "p = m.predict(tf.constant(['a superb film', 'dull and flat']), verbose=0)\n"
        "assert p.shape == (2, 2) and np.allclose(p.sum(-1), 1, atol=1e-5)\n"
        "print('ok', type(m).__name__)\n"
    )
    proc = run_cli("-c", probe, student / "model.keras")
    assert proc.stdout.split() == ["ok", "Functional"]
    assert keras.saving.load_model(student / "model.keras").compiled is False


@pytest.mark.slow
def test_the_recipes_transfer_set_holds_no_held_out_text_and_is_labelled_once(
    reviews, monkeypatch, capsys
):
    root, csv = reviews
    monkeypatch.setenv("DLRECIPES_CACHE", str(root / "cache"))
    module = recipe_module("text_bilstm")
    config = dataclasses.replace(
        module.Config().tiny(),
        dataset=f"csv:{csv}",
        teacher=str(root / "teacher" / "model.keras"),
        transfer_copies=8,
    )
    splits = module.load_data(config)
    ids = module.token_ids(config, splits)
    student = module.transfer_set(config, splits, ids, jit=False)
    assert student.train.element_spec[0].dtype.is_integer  # the student trains on token ids
    # The same transfer set as raw strings, to read: its teacher predictions come from the cache.
    capsys.readouterr()
    distilled = distillation.distill(
        config.teacher,
        splits,
        copies=config.transfer_copies,
        temperature=config.temperature,
        label_weight=config.label_weight,
        batch_size=config.batch_size,
        seed=config.seed,
        swap=config.swap,
        augmenter=module.AUGMENT,
    )
    assert "read from" in capsys.readouterr().out
    assert distilled.size == student.size
    transfer_texts, _ = distillation.texts_and_labels(distilled.train)
    train_texts, _ = distillation.texts_and_labels(splits.train)
    held_out = [
        *distillation.texts_and_labels(splits.validation)[0],
        *distillation.texts_and_labels(splits.test)[0],
    ]
    assert len(transfer_texts) > 4 * len(train_texts)
    normalized = {transfer.normalize(t) for t in transfer_texts}
    assert normalized.isdisjoint(transfer.normalize(t) for t in held_out)
    assert set(train_texts) <= set(transfer_texts)

    # The training split comes shuffled anew each pass; the transfer set, and so the cache key of
    # its teacher predictions, does not change with that order.
    assert distillation.texts_and_labels(splits.train)[0] != train_texts


@pytest.mark.slow
def test_unusable_teachers_and_tune_with_a_teacher_stop_with_one_line(
    reviews, tmp_path, monkeypatch, capsys
):
    root, csv = reviews
    monkeypatch.setenv("DLRECIPES_CACHE", str(root / "cache"))
    image = tmp_path / "image.keras"
    keras.Sequential(
        [keras.Input((28, 28, 1), dtype="uint8"), keras.layers.Flatten(), keras.layers.Dense(10)]
    ).save(image)
    rotten = tmp_path / "rt" / "model.keras"  # a teacher of other classes than the CSV's
    rotten.parent.mkdir()
    rotten.write_bytes((root / "teacher" / "model.keras").read_bytes())
    (rotten.parent / "metrics.json").write_text(json.dumps({"class_names": ["fresh", "rotten"]}))
    cases = {
        tmp_path / "missing.keras": "no such file",
        image: "does not classify raw text",
        rotten: "was trained on classes ['fresh', 'rotten']",
    }
    for teacher, expected in cases.items():
        run_dir = tmp_path / f"run-{teacher.stem}-{teacher.parent.name}"
        argv = ["train", *TINY, "--dataset", f"csv:{csv}", "--teacher", teacher]
        assert run(*argv, "--run-dir", run_dir) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: --teacher {teacher}") and expected in err, err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert not (run_dir / "config.json").exists()  # nothing left looking like a run

    # `tune` searches on the labels: a teacher is refused before anything is searched.
    teacher = root / "teacher" / "model.keras"
    argv = ["tune", "--tiny", "--dataset", f"csv:{csv}", "--teacher", teacher]
    assert run(*argv, "--directory", tmp_path / "tuning") == 2
    err = capsys.readouterr().err
    assert err == (
        "error: tune searches on the training labels and ignores a teacher: drop --teacher, then "
        "train with the best hyperparameters and --teacher (train --hparams ... --teacher ...).\n"
    )
    assert not (tmp_path / "tuning").exists()
