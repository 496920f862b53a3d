"""The transfer set: training texts plus augmented copies of them, for a teacher to label.

Tang et al. 2019 ("Distilling Task-Specific Knowledge from BERT into Simple Neural Networks") grew
the few labelled sentences of a task into a larger transfer set: each word of a sentence is masked,
or swapped for another word of the same part of speech, and sometimes only an n-gram of the
sentence is kept. The teacher then labels every copy, and the student learns what the teacher
does on sentences it has never seen. Here, without a part-of-speech tagger, a swapped word is
replaced by a random word of the training texts (`corpus_words`, the text recipe's default, which
its distillation benchmark measures) or by one of its nearest neighbours in MiniLM's word-piece
input vectors (`neighbour_words`).

Validation and test texts never enter the transfer set: a copy that reads like one of them
(ignoring case, punctuation and spacing, as the text models' vectorizer does) is left out.

Example:

>>> texts, labels = build(train_texts, train_labels, held_out=val_texts + test_texts,
...                       copies=4, replace=corpus_words(train_texts), seed=0)
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence

import numpy as np

# A masked word: the text models' vectorizer reads it as its out-of-vocabulary id.
MASK = "[UNK]"
# What the vectorizer strips (keras.layers.TextVectorization's "lower_and_strip_punctuation").
PUNCTUATION = re.compile(r"""[!"#$%&()\*\+,\-\./:;<=>?@\[\\\]\^_`{|}~']""")
# (word, random generator) -> the word to put in its place
Replace = Callable[[str, np.random.Generator], str]


def normalize(text: str) -> str:
    """`text` as the text models' vectorizer reads it: lower case, no punctuation, single spaces."""
    return " ".join(PUNCTUATION.sub("", text.lower()).split())


@dataclasses.dataclass(frozen=True)
class Augmenter:
    """Tang et al.'s augmentation of one text; the defaults are the probabilities they used.

    Each word is masked with probability `mask`, else swapped with probability `swap`; then, with
    probability `ngram`, only a random run of 1 to `max_ngram` words of the result is kept.
    """

    mask: float = 0.1
    swap: float = 0.1
    ngram: float = 0.25
    max_ngram: int = 5

    def __call__(self, text: str, replace: Replace, rng: np.random.Generator) -> str:
        words = text.split()
        draws = rng.random(len(words))
        out = [
            MASK if d < self.mask else replace(w, rng) if d < self.mask + self.swap else w
            for w, d in zip(words, draws, strict=True)
        ]
        if out and rng.random() < self.ngram:
            n = int(rng.integers(1, min(self.max_ngram, len(out)) + 1))
            start = int(rng.integers(0, len(out) - n + 1))
            out = out[start : start + n]
        return " ".join(out)


def build(
    texts: Sequence[str],
    labels: Sequence[int],
    *,
    held_out: Sequence[str],
    copies: int,
    replace: Replace,
    augmenter: Augmenter = Augmenter(),
    seed: int = 0,
) -> tuple[list[str], np.ndarray]:
    """The transfer set: `texts`, then up to `copies` augmented copies of each.

    Copies that repeat a text already in the set are dropped (Tang et al. discard duplicates), and
    so is anything that reads like a `held_out` text, labelled or not.

    Args:
        texts, labels: the labelled training texts.
        held_out: validation and test texts, which must never enter the transfer set.
        copies: augmented copies tried per training text.
        replace: what a swapped word becomes (`corpus_words`, `neighbour_words`).
        augmenter: the masking, swapping and n-gram probabilities.
        seed: seed of the random choices.

    Returns:
        The texts, and their labels: the training texts' own, -1 for an augmented copy.
    """
    rng = np.random.default_rng(seed)
    seen = {normalize(t) for t in held_out}
    out_texts: list[str] = []
    out_labels: list[int] = []

    def add(text: str, label: int) -> None:
        key = normalize(text)
        if key and key not in seen:
            seen.add(key)
            out_texts.append(text)
            out_labels.append(label)

    for text, label in zip(texts, labels, strict=True):
        add(text, int(label))
    for text in texts:
        for _ in range(copies):
            add(augmenter(text, replace, rng), -1)
    return out_texts, np.asarray(out_labels, np.int64)


def corpus_words(texts: Sequence[str]) -> Replace:
    """Swaps a word for a random word of `texts`, drawn as often as words occur there."""
    words = [w for t in texts for w in t.split()]
    return lambda word, rng: words[rng.integers(len(words))]


def neighbour_words(
    texts: Sequence[str],
    vectors: Callable[[list[str]], np.ndarray],
    k: int = 10,
    chunk: int = 2048,
) -> Replace:
    """Swaps a word for one of its `k` nearest words (cosine) among the words of `texts`.

    Args:
        texts: the training texts; their words, as the vectorizer reads them, are the candidates.
        vectors: one vector per word, e.g. `dlrecipes.data.word_vectors.input_matrix`.
        k: neighbours to choose from.
        chunk: words compared at once (memory: `chunk` x words floats).

    Returns:
        A `Replace`; a word that is not among the candidates falls back to `corpus_words`.
    """
    fallback = corpus_words(texts)
    vocabulary = sorted({normalize(w) for t in texts for w in t.split()} - {""})
    if len(vocabulary) < 2:
        return fallback
    matrix = np.asarray(vectors(vocabulary), np.float32)
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    k = min(k, len(vocabulary) - 1)
    nearest: dict[str, np.ndarray] = {}
    for start in range(0, len(vocabulary), chunk):
        similarity = matrix[start : start + chunk] @ matrix.T
        rows = np.arange(similarity.shape[0])
        similarity[rows, start + rows] = -np.inf  # not the word itself
        top = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        for row, ids in enumerate(top):
            nearest[vocabulary[start + row]] = ids

    def replace(word: str, rng: np.random.Generator) -> str:
        ids = nearest.get(normalize(word))
        if ids is None:
            return fallback(word, rng)
        return vocabulary[ids[rng.integers(len(ids))]]

    return replace
