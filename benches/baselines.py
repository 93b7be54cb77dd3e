#!/usr/bin/env python3
"""Baseline classifiers side by side with poststelle's own model, on the same folds.

Reproduce (from the repository root; Python 3.11, Rust toolchain, about 15 minutes on 2 cores
when nothing is built yet):

    python3 -m venv /tmp/poststelle-bench-venv
    /tmp/poststelle-bench-venv/bin/pip install -r benches/requirements.txt
    /tmp/poststelle-bench-venv/bin/python benches/baselines.py

What it does:

1. `cargo build --release`, then `poststelle eval --json --export-folds FILE`: our cross-validation
   and held-out numbers, and the fold of every corpus item. The binary is looked up in
   `${CARGO_TARGET_DIR:-target}/release/poststelle`.
2. `cargo bench --bench model_speed -- --json`: our training time on 10,000 items and our
   prediction throughput on one core.
3. Baselines (scikit-learn), on exactly the folds from step 1, on one thread:
   - TF-IDF (word 1-2-grams, sublinear tf) + LinearSVC, confidence = max probability of
     CalibratedClassifierCV(cv=3, method="sigmoid"); prediction = argmax of that probability;
   - the same TF-IDF + a plain LinearSVC, confidence = max of softmax(decision_function);
   - the Paperless-ngx classifier: Paperless's text preprocessing (without NLTK) +
     CountVectorizer(analyzer="word", ngram_range=(1, 2), min_df=0.01) + MLPClassifier(tol=0.01),
     random_state fixed; confidence = max of predict_proba.
4. Prints a table and writes BENCHMARKS.md (repository root).

Real text (`--data FILE`, a JSON Lines file `{"id","text","mailbox"}` kept outside the
repository, e.g. ../shared/corpora/real-text/10kgnad-test.jsonl): `poststelle eval --data FILE`
(nested automatic selection inside the folds) against TF-IDF (word 1-2-grams + char_wb
2-5-grams, sublinear tf) + LinearSVC, plain (top-1) and calibrated (CalibratedClassifierCV,
sigmoid, cv=3: straight-through), on the same folds in the same run; prints the table (top-1,
straight-through at 98 % precision, expected calibration error) and does not write
BENCHMARKS.md (its real-text section is kept as it is; record the printed table there).
`--budget S` is passed to `poststelle eval`.

Options: --output PATH (default BENCHMARKS.md), --json PATH (raw results), --min-seconds S
(minimum duration of one throughput measurement, default 2). BENCHMARKS.md names the commit
measured (and any uncommitted changes); outside a git checkout, e.g. in a tree exported with
`git archive`, set POSTSTELLE_BENCH_REVISION to describe the source instead.
"""

import os

# The environment as the caller gave it (for `nproc`, which also obeys OMP_NUM_THREADS).
CALLER_ENV = dict(os.environ)

# One thread everywhere, set before numpy is imported (our model trains and predicts on one).
for _var in (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy  # noqa: E402
import sklearn  # noqa: E402
from sklearn.calibration import CalibratedClassifierCV  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.svm import LinearSVC  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PRECISION_TARGET = 0.98  # the same as poststelle::train::PRECISION_TARGET
SEED = 0
TRAIN_ITEMS = 10_000  # as in benches/model_speed.rs
REPRODUCE = (
    "python3 -m venv /tmp/poststelle-bench-venv\n"
    "/tmp/poststelle-bench-venv/bin/pip install -r benches/requirements.txt\n"
    "/tmp/poststelle-bench-venv/bin/python benches/baselines.py"
)


# ---------------------------------------------------------------------------------------------
# Data


def load_jsonl_dir(directory: Path) -> list[dict]:
    """Every `*.jsonl` in `directory`, files sorted by path (as `poststelle` reads them)."""
    items = []
    for path in sorted(directory.glob("*.jsonl")):
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                obj = json.loads(line)
                for key in ("id", "mailbox", "text"):
                    if key not in obj:
                        sys.exit(f"{path}: line {n}: no {key!r}")
                items.append(obj)
    if not items:
        sys.exit(f"no items in {directory}/*.jsonl")
    return items


def load_folds(path: Path, corpus: list[dict]) -> list[int]:
    """The fold of each corpus item, from `poststelle eval --export-folds`; checks that the
    export and the corpus read here are the same items with the same labels."""
    exported = {}
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                o = json.loads(line)
                if o["id"] in exported:
                    sys.exit(f"fold export: id {o['id']} twice")
                exported[o["id"]] = o
    ids = [it["id"] for it in corpus]
    if len(set(ids)) != len(ids):
        sys.exit("corpus ids are not unique")
    if set(ids) != set(exported):
        sys.exit(
            f"fold export has {len(exported)} items, the corpus {len(ids)}; "
            f"{len(set(ids) ^ set(exported))} ids differ"
        )
    folds = []
    for it in corpus:
        o = exported[it["id"]]
        if o["mailbox"] != it["mailbox"]:
            sys.exit(f"{it['id']}: mailbox {it['mailbox']} here, {o['mailbox']} in the fold export")
        folds.append(int(o["fold"]))
    return folds


# ---------------------------------------------------------------------------------------------
# The metric, exactly as poststelle::train::score computes it


def score(truth, predicted, confidence, target=PRECISION_TARGET) -> dict:
    """Top-1 accuracy, and the straight-through rate: sort by confidence (descending), take the
    largest prefix whose precision is >= target, cutting only between different confidences
    (a threshold cannot split ties) and only at confidences > 0."""
    n = len(truth)
    correct = [p == t for p, t in zip(predicted, truth)]
    conf = [float(c) for c in confidence]
    order = sorted(range(n), key=lambda i: -conf[i])  # stable, like Rust's sort_by
    best, ok = 0, 0
    for rank, i in enumerate(order):
        ok += correct[i]
        boundary = rank + 1 == n or conf[order[rank + 1]] < conf[i]
        if boundary and conf[i] > 0.0 and ok / (rank + 1) >= target:
            best = rank + 1
    auto_ok = sum(correct[i] for i in order[:best])
    return {
        "items": n,
        "top1": sum(correct) / max(n, 1),
        "straight_through": best / max(n, 1),
        "auto_precision": auto_ok / best if best else 0.0,
        "threshold": conf[order[best - 1]] if best else None,
    }


def at_threshold(truth, predicted, confidence, threshold) -> dict:
    """Share routed without review at a fixed threshold (chosen elsewhere), and its precision,
    as poststelle's held-out report computes it (no threshold: nothing is routed)."""
    t = 1.1 if threshold is None else threshold
    routed = [c >= t for c in confidence]
    ok = sum(1 for r, p, y in zip(routed, predicted, truth) if r and p == y)
    k = sum(routed)
    return {"straight_through": k / max(len(truth), 1), "precision": ok / k if k else 0.0}


# ---------------------------------------------------------------------------------------------
# Baselines


def paperless_preprocess(content: str) -> str:
    """Paperless-ngx's DocumentClassifier.preprocess_content without the optional NLTK step
    (stop words and stemming need NLTK data files, which are not installed here)."""
    content = content.lower().strip()
    content = re.sub(r"\s+", " ", content)
    content = re.sub(r"[^\w\s]", " ", content)
    return content


def tfidf():
    return TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True)


def softmax(d: np.ndarray) -> np.ndarray:
    d = d - d.max(axis=1, keepdims=True)
    e = np.exp(d)
    return e / e.sum(axis=1, keepdims=True)


class Baseline:
    def __init__(self, key, name, config, confidence, build, use_softmax=False):
        self.key, self.name, self.config, self.confidence = key, name, config, confidence
        self.build = build
        # Confidence from softmax(decision_function) instead of predict_proba.
        self.use_softmax = use_softmax
        self.model = None

    def fit(self, texts, labels):
        self.model = self.build()
        self.model.fit(texts, labels)
        return self

    def predict(self, texts):
        if self.use_softmax:
            p = softmax(np.asarray(self.model.decision_function(texts), dtype=np.float64))
        else:
            p = self.model.predict_proba(texts)
        best = p.argmax(axis=1)
        return list(self.model.classes_[best]), p[np.arange(len(best)), best].tolist()


BASELINES = [
    Baseline(
        "svc_calibrated",
        "TF-IDF + LinearSVC (calibrated)",
        'TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True) + CalibratedClassifierCV('
        f'LinearSVC(random_state={SEED}), cv=3, method="sigmoid")',
        "max of the calibrated probability (predict_proba); the prediction is its argmax",
        lambda: Pipeline(
            [
                ("tfidf", tfidf()),
                (
                    "clf",
                    CalibratedClassifierCV(
                        LinearSVC(random_state=SEED), cv=3, method="sigmoid"
                    ),
                ),
            ]
        ),
    ),
    Baseline(
        "svc_softmax",
        "TF-IDF + LinearSVC (softmax of margins)",
        f"TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True) + LinearSVC(random_state={SEED})",
        "max of softmax(decision_function); the prediction is LinearSVC's own",
        lambda: Pipeline([("tfidf", tfidf()), ("clf", LinearSVC(random_state=SEED))]),
        use_softmax=True,
    ),
    Baseline(
        "paperless_mlp",
        "Paperless-ngx (CountVectorizer + MLP)",
        'Paperless preprocessing + CountVectorizer(analyzer="word", ngram_range=(1, 2), '
        f"min_df=0.01) + MLPClassifier(tol=0.01, random_state={SEED})",
        "max of predict_proba",
        lambda: Pipeline(
            [
                (
                    "vec",
                    CountVectorizer(
                        analyzer="word",
                        ngram_range=(1, 2),
                        min_df=0.01,
                        preprocessor=paperless_preprocess,
                    ),
                ),
                ("clf", MLPClassifier(tol=0.01, random_state=SEED)),
            ]
        ),
    ),
]


def throughput(b: Baseline, texts, min_seconds: float, one_at_a_time: bool) -> float:
    """Documents per second from raw text: median of 3 measurements, each predicting all texts
    repeatedly until at least `min_seconds` have passed."""
    rates = []
    for _ in range(3):
        done, start = 0, time.perf_counter()
        while True:
            if one_at_a_time:
                for t in texts:
                    b.predict([t])
            else:
                b.predict(texts)
            done += len(texts)
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        rates.append(done / elapsed)
    return statistics.median(rates)


def run_baseline(b: Baseline, corpus, folds, holdout, min_seconds) -> dict:
    texts = [it["text"] for it in corpus]
    labels = np.array([it["mailbox"] for it in corpus])
    k = max(folds) + 1
    fold_arr = np.array(folds)
    predicted = [None] * len(corpus)
    confidence = [0.0] * len(corpus)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        start = time.perf_counter()
        for f in range(k):
            train = np.flatnonzero(fold_arr != f)
            test = np.flatnonzero(fold_arr == f)
            b.fit([texts[i] for i in train], labels[train])
            p, c = b.predict([texts[i] for i in test])
            for i, pi, ci in zip(test, p, c):
                predicted[i], confidence[i] = pi, ci
        cv_seconds = time.perf_counter() - start
        cv = score(list(labels), predicted, confidence)

        # Held-out set: train on the whole corpus (timed), predict the held-out items.
        start = time.perf_counter()
        b.fit(texts, labels)
        train_corpus_s = time.perf_counter() - start
        h_truth = [it["mailbox"] for it in holdout]
        hp, hc = b.predict([it["text"] for it in holdout])
        ho = score(h_truth, hp, hc)
        ho_at = at_threshold(h_truth, hp, hc, cv["threshold"])

        # Throughput of the model trained on the whole corpus, on the corpus texts.
        batch = throughput(b, texts, min_seconds, one_at_a_time=False)
        single = throughput(b, texts, min_seconds, one_at_a_time=True)

        # Training time on 10,000 items built like benches/model_speed.rs.
        big_texts = [f"{corpus[i % len(corpus)]['text']}\nVorgang {i}" for i in range(TRAIN_ITEMS)]
        big_labels = np.array([corpus[i % len(corpus)]["mailbox"] for i in range(TRAIN_ITEMS)])
        start = time.perf_counter()
        b.fit(big_texts, big_labels)
        train_10k_s = time.perf_counter() - start
    convergence = sorted({str(w.message).split(".")[0] for w in caught if issubclass(w.category, ConvergenceWarning)})
    return {
        "name": b.name,
        "config": b.config,
        "confidence": b.confidence,
        "cv": cv,
        "cv_seconds": cv_seconds,
        "holdout": ho,
        "holdout_at_cv_threshold": ho_at,
        "train_seconds_corpus": train_corpus_s,
        "train_items": TRAIN_ITEMS,
        "train_seconds": train_10k_s,
        "predict_per_second_batch": batch,
        "predict_per_second_single": single,
        "convergence_warnings": convergence,
    }


# ---------------------------------------------------------------------------------------------
# Ours


def run(cmd, **kw):
    print("$ " + " ".join(shlex.quote(str(c)) for c in cmd), file=sys.stderr, flush=True)
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, check=True, **kw)


def json_line(stdout: str, what: str) -> dict:
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    sys.exit(f"{what}: no JSON line in its output:\n{stdout}")


def ours(folds_path: Path) -> tuple[dict, dict, Path]:
    target = Path(os.environ.get("CARGO_TARGET_DIR") or "target")
    if not target.is_absolute():
        target = ROOT / target
    binary = target / "release" / "poststelle"
    run(["cargo", "build", "--release"])
    if not binary.exists():
        sys.exit(f"{binary} not found after cargo build --release")
    ev = run(
        [binary, "eval", "--json", "--export-folds", folds_path],
        stdout=subprocess.PIPE,
        text=True,
    )
    evaluation = json_line(ev.stdout, "poststelle eval")
    bench = run(
        ["cargo", "bench", "--bench", "model_speed", "--", "--json"],
        stdout=subprocess.PIPE,
        text=True,
    )
    speed = json_line(bench.stdout, "cargo bench --bench model_speed")
    return evaluation, speed, binary


# ---------------------------------------------------------------------------------------------
# Report


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass

    def out(cmd):
        try:
            return subprocess.run(
                cmd, cwd=ROOT, capture_output=True, text=True, env=CALLER_ENV
            ).stdout.strip()
        except OSError:
            return ""

    commit = out(["git", "rev-parse", "--short", "HEAD"])
    if commit:
        changed = out(["git", "status", "--porcelain", "--untracked-files=no"]).splitlines()
        if changed:
            files = ", ".join(line[3:] for line in changed)
            commit += f" with uncommitted changes to {files}"
    else:
        # Outside a git checkout (e.g. an exported tree), the caller may say what it is.
        commit = os.environ.get("POSTSTELLE_BENCH_REVISION", "unknown (not a git checkout)")
    try:
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        load = "unknown"
    return {
        "load_average": load,
        "nproc": out(["nproc"]) or str(len(os.sched_getaffinity(0))),
        "cpu": cpu,
        "memory_gib": mem,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "scikit_learn": sklearn.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "rustc": out(["rustc", "--version"]),
        "commit": commit,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def pct(x):
    return "-" if x is None else f"{100 * x:.1f} %"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}"


def num(x, digits=2):
    return "-" if x is None else f"{x:,.{digits}f}"


def rows(results: dict) -> list[dict]:
    ev, sp = results["ours"]["eval"], results["ours"]["speed"]
    h = ev.get("holdout") or {}
    out = [
        {
            "name": "poststelle: rules + model (routes)",
            "cv": ev["combined"],
            "holdout": h.get("combined"),
            "holdout_at": {
                "straight_through": h.get("straight_through_at_threshold"),
                "precision": h.get("precision_at_threshold"),
            }
            if h
            else None,
            "train": sp["train_seconds"],
            "batch": None,
            "single": sp["predict_per_second"],
        },
        {
            "name": "poststelle: model alone",
            "cv": ev["model"],
            "holdout": h.get("model"),
            "holdout_at": None,
            "train": sp["train_seconds"],
            "batch": None,
            "single": sp["predict_per_second"],
        },
    ]
    for r in results["baselines"].values():
        out.append(
            {
                "name": r["name"],
                "cv": r["cv"],
                "holdout": r["holdout"],
                "holdout_at": r["holdout_at_cv_threshold"],
                "train": r["train_seconds"],
                "batch": r["predict_per_second_batch"],
                "single": r["predict_per_second_single"],
            }
        )
    return out


def tables(results: dict) -> tuple[str, str, str]:
    rs = rows(results)
    model_row, combined_row = rs[1], rs[0]
    lines = []
    lines.append(
        "| system | CV top-1 | CV straight-through | held-out top-1 | held-out straight-through "
        "| held-out at the CV threshold: routed / precision |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|")
    for r in rs:
        ho = r["holdout"] or {}
        at = r["holdout_at"]
        at_s = "n/a" if not at or at["straight_through"] is None else (
            f"{pct(at['straight_through'])} / {pct(at['precision'])}"
        )
        lines.append(
            f"| {r['name']} | {pct(r['cv']['top1'])} | {pct(r['cv']['straight_through'])} "
            f"| {pct(ho.get('top1'))} | {pct(ho.get('straight_through'))} | {at_s} |"
        )
    quality = "\n".join(lines)

    lines = [
        "| baseline | CV top-1 | CV straight-through | held-out top-1 | held-out straight-through |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rs[2:]:
        cells = []
        for part, key in (("cv", "top1"), ("cv", "straight_through"), ("holdout", "top1"), ("holdout", "straight_through")):
            b = (r[part] or {}).get(key)
            m = (model_row[part] or {}).get(key)
            c = (combined_row[part] or {}).get(key)
            cells.append(f"{ratio(b, m)} / {ratio(b, c)}")
        lines.append(f"| {r['name']} | " + " | ".join(cells) + " |")
    ratios = "\n".join(lines)

    sp = results["ours"]["speed"]
    lines = [
        f"| system | training, {TRAIN_ITEMS:,} items | ours faster by | training, whole corpus "
        "| prediction, docs/s, one at a time | ours faster by | prediction, docs/s, batch "
        "| ours faster by |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| poststelle model | {num(sp['train_seconds'])} s | - | - | {num(sp['predict_per_second'], 0)} | - | - | - |",
    ]
    for r in results["baselines"].values():
        lines.append(
            f"| {r['name']} | {num(r['train_seconds'])} s | {ratio(r['train_seconds'], sp['train_seconds'])}x "
            f"| {num(r['train_seconds_corpus'])} s "
            f"| {num(r['predict_per_second_single'], 0)} | {ratio(sp['predict_per_second'], r['predict_per_second_single'])}x "
            f"| {num(r['predict_per_second_batch'], 0)} | {ratio(sp['predict_per_second'], r['predict_per_second_batch'])}x |"
        )
    speed = "\n".join(lines)
    return quality, ratios, speed


def markdown(results: dict) -> str:
    quality, ratios, speed = tables(results)
    m = results["machine"]
    ev = results["ours"]["eval"]
    h = ev.get("holdout") or {}
    n_holdout = h.get("items", len(results["holdout_ids"]))
    baselines = "\n".join(
        f"- **{r['name']}**: `{r['config']}`; confidence: {r['confidence']}."
        for r in results["baselines"].values()
    )
    warn = [
        f"- {r['name']}: scikit-learn warned that the optimiser did not converge "
        f"({'; '.join(r['convergence_warnings'])}). The numbers are those of the model as fitted."
        for r in results["baselines"].values()
        if r["convergence_warnings"]
    ]
    warn_text = ("\n" + "\n".join(warn)) if warn else ""
    return f"""# Benchmarks: poststelle's classifier and baseline classifiers

This file is written by `benches/baselines.py`; every number below comes from one run of it,
in which our numbers and the baselines' were measured on the same machine, on the same data and
on the same cross-validation folds.

## What is measured

- **Data**: the training corpus `training-data/corpus/*.jsonl` ({results['corpus_items']} items,
  {results['classes']} mailboxes) and the held-out set `training-data/holdout/*.jsonl`
  ({n_holdout} items), which is never used for training.
- **Cross-validation (CV)**: {ev['folds']}-fold stratified cross-validation on the corpus. The
  folds are those of `poststelle eval` (written by `poststelle eval --export-folds`); every
  system is trained on {ev['folds'] - 1} folds and predicts the remaining one, and the
  predictions of all folds are pooled.
- **Top-1**: share of items whose predicted mailbox is the right one.
- **Straight-through**: share of items that could be routed without review at a precision of at
  least {PRECISION_TARGET * 100:.0f} %. It is computed exactly as `poststelle eval` computes it: sort the
  predictions by confidence (descending) and take the largest prefix whose precision is at least
  {PRECISION_TARGET * 100:.0f} %, cutting only between different confidences (a threshold cannot split
  ties); straight-through = prefix size / number of items. On the held-out set this threshold
  is chosen on the held-out set itself (an upper bound, for every system alike). The last
  column applies the threshold chosen on the corpus CV to the held-out set instead, which is
  what happens in operation.
- **Held-out set**: every system is trained on the whole corpus and predicts the held-out set.
- **Training time**: {TRAIN_ITEMS:,} items built as in `benches/model_speed.rs` (the corpus
  repeated, each copy made distinct by an appended line `Vorgang <i>`), from raw text to a
  trained model, one thread. Our number comes from `cargo bench --bench model_speed -- --json`
  in the same run. The baselines' training time on the whole corpus ({results['corpus_items']}
  items) is shown as well.
- **Prediction throughput**: documents per second from raw text, one thread. Ours (from
  `model_speed`) predicts one document per call, median of 5 rounds of about 10,000 corpus
  texts. The baselines (trained on the whole corpus) predict all corpus texts, repeated until at
  least {results['min_seconds']:g} s have passed, median of 3 such measurements; once one document
  per call (as a router receives letters) and once as one batch per pass (scikit-learn's
  favourable case).

Our two rows: **rules + model** (`combined` in `poststelle eval --json`) is what routes a letter;
**model alone** (`model`) is the classifier without the rule files. The rule files (`rules/`)
were written while looking at the corpus, so cross-validation on the corpus favours the rules
(and so the combined row); the held-out set, which the rules' authors did not see, is the fair
comparison. The baselines use no rules; compare them with "model alone" for the classifiers
themselves, and with "rules + model" for the system as it routes.

## Command

From the repository root (Python 3.11 and a Rust toolchain; the script runs
`cargo build --release`, `poststelle eval` and `cargo bench` itself and respects
`CARGO_TARGET_DIR`):

```sh
{REPRODUCE}
```

## Machine

- nproc: {m['nproc']}; CPU: {m['cpu']}; memory: {m['memory_gib']} GiB; {m['os']}
- Python {m['python']}, scikit-learn {m['scikit_learn']}, numpy {m['numpy']}, scipy {m['scipy']}; {m['rustc']}
- commit {m['commit']}; run {m['date']}
- load average (1, 5, 15 min) when the script started: {m['load_average']}
- thread-pool variables (`OMP_NUM_THREADS` etc.) set to 1 for the baselines

## Quality

Straight-through at a precision of at least {PRECISION_TARGET * 100:.0f} %.

{quality}

## Ratios to ours

Baseline / ours; each cell gives the ratio to **our model alone** / to **our rules + model**
(above 1: the baseline is better).

{ratios}

## Speed

"Ours faster by" = baseline time / our time for training, our documents per second / the
baseline's for prediction (above 1: ours is faster). Each time is one run of this script on a
shared virtual machine; repeated runs vary.

{speed}


## Baselines

{baselines}

Notes:

- The Paperless-ngx baseline reproduces the document classifier of Paperless-ngx
  (`documents/classifier.py`): its text preprocessing (lower case, whitespace collapsed,
  non-word characters removed), `CountVectorizer(analyzer="word", ngram_range=(1, 2),
  min_df=0.01)` and `MLPClassifier(tol=0.01)` with scikit-learn's defaults otherwise
  (one hidden layer of 100 units, Adam, at most 200 epochs), with `random_state={SEED}` for
  reproducibility. Paperless's optional NLTK step (stop words and Snowball stemming) is not
  used, because it needs NLTK data files that are not installed here. Paperless itself predicts
  a label without a confidence; here the confidence is the maximum of `predict_proba`.
- The calibrated LinearSVC is trained by `CalibratedClassifierCV(cv=3)`: three LinearSVCs, each
  on two thirds of the training data, each with a sigmoid (Platt) calibration fitted on the
  remaining third; the probabilities are averaged. The plain LinearSVC row uses one LinearSVC on
  all of the training data and the softmax of its margins (uncalibrated).
- Our model's confidences: per-mailbox sigmoids (Platt scaling) of its scores and a softmax
  temperature, fitted on the held-out scores of an inner cross-validation inside each training
  part (see `src/classify/select.rs`).{warn_text}
"""


REAL_TEXT_MARKER = "<!-- real text: recorded from benches/baselines.py --data; kept by baselines.py -->"
THROUGHPUT_MARKER = "<!-- throughput of scans: recorded from benches/throughput.rs; kept by baselines.py -->"


def ece(truth, predicted, confidence, bins=10) -> float:
    """Expected calibration error over equal-width confidence bins, as poststelle's eval."""
    n = len(truth)
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        idx = [i for i, c in enumerate(confidence) if lo <= c < hi or (b == bins - 1 and c == 1.0)]
        if not idx:
            continue
        conf = sum(confidence[i] for i in idx) / len(idx)
        acc = sum(predicted[i] == truth[i] for i in idx) / len(idx)
        total += len(idx) * abs(conf - acc)
    return total / max(n, 1)


def real_text(args):
    """`--data FILE`: ours against the TF-IDF + LinearSVC baseline on the same folds."""
    items = []
    with args.data.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                items.append(json.loads(line))
    target = Path(os.environ.get("CARGO_TARGET_DIR") or "target")
    if not target.is_absolute():
        target = ROOT / target
    binary = target / "release" / "poststelle"
    run(["cargo", "build", "--release"])
    with tempfile.TemporaryDirectory() as tmp:
        folds_path = Path(tmp) / "folds.jsonl"
        start = time.perf_counter()
        ev = run(
            [binary, "eval", "--json", "--data", args.data, "--export-folds", folds_path,
             "--budget", str(args.budget)],
            stdout=subprocess.PIPE,
            text=True,
        )
        ours_s = time.perf_counter() - start
        evaluation = json_line(ev.stdout, "poststelle eval")
        folds = load_folds(folds_path, items)
    texts = [it["text"] for it in items]
    labels = np.array([it["mailbox"] for it in items])
    fold_arr = np.array(folds)

    def features():
        from sklearn.pipeline import make_union

        return make_union(
            TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
        )

    variants = {
        "plain": lambda: Pipeline([("tfidf", features()), ("clf", LinearSVC(random_state=SEED))]),
        "calibrated": lambda: Pipeline(
            [
                ("tfidf", features()),
                ("clf", CalibratedClassifierCV(LinearSVC(random_state=SEED), cv=3, method="sigmoid")),
            ]
        ),
    }
    rows = [
        (
            "poststelle (eval --data, nested selection)",
            evaluation["model"]["top1"],
            evaluation["model"]["straight_through"],
            evaluation["model"]["auto_precision"],
            evaluation.get("ece"),
            ours_s,
        )
    ]
    with threadpool_limits(limits=1):
        for key, build in variants.items():
            predicted = [None] * len(items)
            confidence = [0.0] * len(items)
            start = time.perf_counter()
            for f in range(max(folds) + 1):
                train = np.flatnonzero(fold_arr != f)
                test = np.flatnonzero(fold_arr == f)
                m = build()
                m.fit([texts[i] for i in train], labels[train])
                tt = [texts[i] for i in test]
                if key == "plain":
                    p = softmax(np.asarray(m.decision_function(tt), dtype=np.float64))
                else:
                    p = m.predict_proba(tt)
                best = p.argmax(axis=1)
                for i, b, c in zip(test, best, p[np.arange(len(best)), best]):
                    predicted[i], confidence[i] = m.classes_[b], float(c)
            secs = time.perf_counter() - start
            sc = score(list(labels), predicted, confidence)
            rows.append(
                (
                    f"TF-IDF word 1-2 + char_wb 2-5 + LinearSVC ({key})",
                    sc["top1"],
                    sc["straight_through"],
                    sc["auto_precision"],
                    ece(list(labels), predicted, confidence),
                    secs,
                )
            )
    print(f"\n{args.data.name}: {len(items)} items, {max(folds) + 1} folds (the same for all)")
    print("| model | top-1 | straight-through at 98 % | its precision | ECE | seconds (all folds) |")
    print("|---|---|---|---|---|---|")
    for name, top1, st, prec, e, secs in rows:
        e_s = "-" if e is None else f"{e:.3f}"
        print(f"| {name} | {top1 * 100:.1f} % | {st * 100:.1f} % | {prec * 100:.1f} % | {e_s} | {secs:.0f} |")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "eval": evaluation}, indent=1, default=str))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    ap.add_argument("--min-seconds", type=float, default=2.0)
    ap.add_argument("--data", type=Path, help="real text: compare on this JSON Lines file only")
    ap.add_argument("--budget", type=int, default=120, help="selection seconds for poststelle eval")
    args = ap.parse_args()
    if args.data:
        real_text(args)
        return

    corpus = load_jsonl_dir(ROOT / "training-data" / "corpus")
    holdout = load_jsonl_dir(ROOT / "training-data" / "holdout")
    overlap = {it["id"] for it in corpus} & {it["id"] for it in holdout}
    if overlap:
        sys.exit(f"held-out ids also in the corpus: {sorted(overlap)[:5]}")

    machine_info = machine()  # before anything runs, for its load average
    with tempfile.TemporaryDirectory() as tmp:
        folds_path = Path(tmp) / "folds.jsonl"
        evaluation, speed, binary = ours(folds_path)
        folds = load_folds(folds_path, corpus)
    if evaluation.get("items") != len(corpus):
        sys.exit(f"poststelle eval saw {evaluation.get('items')} items, the corpus has {len(corpus)}")

    results = {
        "machine": machine_info,
        "corpus_items": len(corpus),
        "classes": len({it["mailbox"] for it in corpus}),
        "holdout_ids": [it["id"] for it in holdout],
        "min_seconds": args.min_seconds,
        "ours": {"binary": str(binary), "eval": evaluation, "speed": speed},
        "baselines": {},
    }
    with threadpool_limits(limits=1):
        for b in BASELINES:
            print(f"baseline: {b.name} ...", file=sys.stderr, flush=True)
            results["baselines"][b.key] = run_baseline(b, corpus, folds, holdout, args.min_seconds)

    quality, ratios, speed_t = tables(results)
    print("\nQuality (straight-through at precision >= 98 %)\n" + quality)
    print("\nRatios baseline / ours (to model alone / to rules + model)\n" + ratios)
    print("\nSpeed\n" + speed_t)
    # The scan throughput section (benches/throughput.rs) is recorded by hand below a marker
    # and kept when this script rewrites the file.
    kept = ""
    if args.output.exists():
        old = args.output.read_text(encoding="utf-8")
        found = [a for a in (old.find(REAL_TEXT_MARKER), old.find(THROUGHPUT_MARKER)) if a >= 0]
        at = min(found) if found else -1
        if at >= 0:
            kept = "\n" + old[at:]
    args.output.write_text(markdown(results) + kept, encoding="utf-8")
    print(f"\nwrote {args.output}", file=sys.stderr)
    if args.json:
        slim = dict(results)
        slim["ours"] = dict(results["ours"])
        ev = dict(evaluation)
        for k in ("rules", "model", "combined"):
            if isinstance(ev.get(k), dict):
                ev[k] = {x: ev[k].get(x) for x in ("top1", "straight_through", "auto_precision", "threshold")}
        slim["ours"]["eval"] = ev
        args.json.write_text(json.dumps(slim, indent=1, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
